//! Unit tests of the runtime, with real threads, sockets and files.
