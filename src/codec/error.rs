//! The one error type of the codec layer.

use std::fmt;

/// Why some bytes are not a valid frame or message.
///
/// Every decoder in [`crate::codec`] returns either a value or one of these;
/// none panics and none allocates more than the input justifies. A
/// `DecodeError` on a peer connection means the peer speaks another protocol
/// (or another version of this one) or the stream is corrupt: the connection
/// cannot be resynchronised and should be closed, with the error logged.
///
/// `field` names use dotted paths such as `"append_entries.entry_count"` or
/// `"entry.data"`; they match the layout table in [`crate::codec`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// The buffer holds only the start of a frame: at least `needed` more
    /// bytes must arrive before it can be decoded. Only
    /// [`decode_frame`](crate::codec::decode_frame) returns this; it is the
    /// "wait for more input" answer, not a malformed frame.
    /// [`FrameDecoder`](crate::codec::FrameDecoder) answers `Ok(None)` instead.
    Incomplete {
        /// The least number of further bytes that could complete the frame.
        needed: usize,
    },
    /// A frame ended inside `field`: its length prefix promised fewer bytes
    /// than its contents need.
    Truncated {
        /// The field that was cut short.
        field: &'static str,
    },
    /// A length or count in `field` is above what the protocol allows. It is
    /// rejected before anything is allocated for it.
    TooLarge {
        /// The field whose value is too large.
        field: &'static str,
        /// The value found (or, for a running total, the total so far).
        len: u64,
        /// The largest value allowed.
        max: u64,
    },
    /// A one-byte tag or boolean in `field` has a value no encoder produces.
    /// Only canonical values are accepted, so that decoding then encoding
    /// gives back exactly the bytes consumed.
    BadTag {
        /// The field holding the tag.
        field: &'static str,
        /// The value found.
        value: u8,
    },
    /// The message kind in `value` is reserved: no encoder of this version
    /// produces it, and a receiver must never act on it. Kind 11 once carried
    /// `InstallSnapshot`, which told the receiver a snapshot had arrived and
    /// was stored; only the receiver's own runtime can know that, so it is no
    /// longer a message. A peer sending it runs an older, incompatible
    /// version.
    ReservedKind {
        /// The kind found.
        value: u8,
    },
    /// A frame carried `count` bytes after the end of its message.
    TrailingBytes {
        /// How many bytes were left over.
        count: usize,
    },
    /// Every field was well formed, but together they say something
    /// impossible (for example an entry index past `u64::MAX`).
    Invalid {
        /// The field at fault.
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Incomplete { needed } => {
                write!(f, "incomplete frame: at least {needed} more bytes needed")
            }
            DecodeError::Truncated { field } => {
                write!(f, "frame ends inside `{field}`: the peer sent a malformed frame")
            }
            DecodeError::TooLarge { field, len, max } => write!(
                f,
                "`{field}` is {len}, above the limit of {max}: \
                 the peer speaks another protocol or version"
            ),
            DecodeError::BadTag { field, value } => write!(
                f,
                "`{field}` has unknown value {value}: \
                 the peer speaks another protocol or version"
            ),
            DecodeError::ReservedKind { value } => write!(
                f,
                "message kind {value} is reserved and never accepted: \
                 the peer runs an older, incompatible version"
            ),
            DecodeError::TrailingBytes { count } => {
                write!(f, "{count} unexpected bytes after the end of the message")
            }
            DecodeError::Invalid { field, reason } => write!(f, "invalid `{field}`: {reason}"),
        }
    }
}

impl std::error::Error for DecodeError {}
