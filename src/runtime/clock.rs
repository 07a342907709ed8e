//! The runtime's one clock: monotonic time since the node started, in the
//! core's [`Instant`].

use std::time::Duration;

use crate::types::Instant;

/// Reads the monotonic clock as a core [`Instant`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct Clock {
    start: std::time::Instant,
}

impl Clock {
    pub(crate) fn new() -> Clock {
        Clock { start: std::time::Instant::now() }
    }

    pub(crate) fn now(&self) -> Instant {
        Instant::from_nanos(u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX))
    }

    /// How long from now until `deadline`; zero if it passed.
    pub(crate) fn until(&self, deadline: Instant) -> Duration {
        deadline.saturating_duration_since(self.now())
    }
}
