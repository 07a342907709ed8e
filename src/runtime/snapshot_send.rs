//! The leader's side of a snapshot transfer to one follower, as the
//! runtime runs it for now (the core decides when and to whom).

use bytes::Bytes;

use crate::membership::SnapshotMeta;
use crate::types::{Instant, Term};

/// A snapshot on its way to one follower. The file stays open, so a newer
/// snapshot replacing it on disk does not cut the transfer short.
pub(super) struct Transfer {
    pub(super) meta: SnapshotMeta,
    /// The leader's term when it started.
    pub(super) term: Term,
    pub(super) file: std::fs::File,
    pub(super) total_bytes: u64,
    /// The next byte to send.
    pub(super) next_offset: u64,
    /// The bytes the follower holds.
    pub(super) acked: u64,
    /// When an acknowledgement last moved the transfer.
    pub(super) last_progress: Instant,
    /// When the unacknowledged chunks were last sent again.
    pub(super) last_resend: Instant,
}

impl Transfer {
    /// When the transfer next needs attention if nothing arrives: a resend
    /// of what is unacknowledged, or giving up.
    pub(super) fn next_deadline(&self, stall_timeout: std::time::Duration) -> Instant {
        let give_up = self.last_progress + stall_timeout;
        if self.next_offset > self.acked {
            give_up.min(self.last_progress.max(self.last_resend) + RESEND_AFTER)
        } else {
            give_up
        }
    }

    /// Sends again from what the follower holds: chunks were lost (the
    /// connection dropped, or nothing moved for a while).
    pub(super) fn rewind(&mut self, now: Instant) {
        self.next_offset = self.acked;
        self.last_resend = now;
    }
}

/// How long a snapshot transfer may make no progress before the chunks
/// after the acknowledged ones are sent again.
pub(super) const RESEND_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

/// Reads `len` bytes at `offset` of `file`.
pub(super) fn read_chunk(file: &std::fs::File, offset: u64, len: usize) -> std::io::Result<Bytes> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0; len];
    file.read_exact_at(&mut buf, offset)?;
    Ok(Bytes::from(buf))
}
