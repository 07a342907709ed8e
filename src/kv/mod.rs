//! The Redis-protocol key-value service, without IO: the pieces a server
//! connection and the replicated state machine are built from.
//!
//! Bytes from a client's socket go into a [`RequestParser`], which yields
//! requests as argument lists (zero-copy slices of the receive buffer), or
//! a [`RespError`] after which the connection replies [`RespError::reply`]
//! and closes. [`Command::parse`] types each request, or gives a
//! [`CommandError`] whose [`reply`](CommandError::reply) is sent instead
//! (the connection stays open). By [`Command::class`], a [`WriteOp`] goes
//! through the Raft log, a [`ReadOp`] waits for a linearizable read index,
//! and a [`LocalOp`] is answered at once by [`answer_local`]. Answers are
//! [`Reply`]s, encoded into the connection's output buffer in request order.
//!
//! Every decoder here is total: any bytes give a value or a typed error,
//! never a panic, and nothing is allocated for a length before it is
//! checked.

mod command;
mod local;
mod reply;
mod resp;

#[cfg(test)]
mod tests;

pub use self::command::{
    ClientOp, Command, CommandClass, CommandError, CommandQuery, LocalOp, ReadOp, SetCondition, WriteOp,
    COMMAND_NAMES,
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
