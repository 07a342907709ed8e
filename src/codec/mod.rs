//! The wire codec (in progress).
