//! The Redis-protocol key-value service, without IO: the pieces a server
//! connection and the replicated state machine are built from.
//!
//! A connection's path through them:
//!
//! 1. bytes from the socket go into a [`RequestParser`], which yields
//!    requests as argument lists (zero-copy slices of the receive buffer), or
//!    a [`RespError`] after which the connection replies
//!    [`RespError::reply`] and closes;
//! 2. [`Command::parse`] types each request, or gives a [`CommandError`]
//!    whose [`reply`](CommandError::reply) is sent instead (the connection
//!    stays open);
//! 3. by [`Command::class`]:
//!    - a [`WriteOp`] is encoded with [`encode_write`] (after checking
//!      [`write_entry_len`] against the entry limit) and proposed; when the
//!      entry commits, every replica decodes it with [`decode_write`] and
//!      applies it to its [`Store`], and the proposer (named by the
//!      runtime's envelope around the entry) sends the [`Reply`] of
//!      [`Store::apply`] to its client;
//!    - a [`ReadOp`] is encoded with [`encode_read`] and handed to the
//!      runtime's read path; once a linearizable read index is applied it is
//!      decoded with [`decode_read`] and answered by [`Store::query`];
//!    - a [`LocalOp`] is answered at once by [`answer_local`];
//! 4. each [`Reply`] is encoded into the connection's output buffer, in
//!    request order.
//!
//! A replica's whole map is saved with [`Store::write_snapshot`] and
//! rebuilt with [`Store::read_snapshot`], streamed (layout in [`snapshot`]).
//!
//! Every decoder here (the request parser, [`decode_write`],
//! [`decode_read`], [`Store::read_snapshot`]) is total: any bytes give a value or a typed error, never
//! a panic, and nothing is allocated for a length before it is checked.

mod command;
pub mod entry;
mod local;
mod reply;
mod resp;
pub mod snapshot;
mod store;

#[cfg(test)]
mod tests;

pub use self::command::{
    ClientOp, Command, CommandClass, CommandError, CommandQuery, LocalOp, MemberOp, ReadOp, SetCondition,
    WriteOp, COMMAND_NAMES,
};
pub use self::entry::{
    decode_read, decode_write, encode_read, encode_write, write_entry_len, EntryDecodeError,
};
pub use self::local::{answer_local, ClientState, ServerInfo, REDIS_VERSION};
pub use self::reply::{
    write_array_header, write_bulk, write_error, write_integer, write_null_array, write_null_bulk,
    write_simple, Reply,
};
pub use self::resp::{
    parse_i64, RequestParser, RespError, RespLimits, ARGS_MAX_DEFAULT, BULK_BYTES_MAX_DEFAULT,
    INLINE_BYTES_MAX_DEFAULT, REQUEST_BYTES_MAX_DEFAULT,
};
pub use self::snapshot::{SnapshotError, SnapshotFormatError, SNAPSHOT_ITEM_BYTES_MAX};
pub use self::store::Store;
