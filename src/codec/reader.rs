//! A checked cursor over a byte buffer.
//!
//! Every take names the field it reads, so that a short input reports which
//! field it ended in. Nothing here indexes a slice or trusts a length: a take
//! either gets all its bytes or fails with [`DecodeError::Truncated`].

use byteorder::{LittleEndian, ReadBytesExt};
use bytes::Bytes;

use super::error::DecodeError;

/// Reads little-endian fields from the front of a [`Bytes`], handing out
/// payloads as zero-copy slices of it.
pub(crate) struct Reader<'a> {
    /// The whole input, kept so that payloads can be sliced out of it
    /// without copying.
    whole: &'a Bytes,
    /// The bytes not consumed yet. Invariant: always a suffix of `whole`.
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader positioned at the start of `whole`.
    pub(crate) fn new(whole: &'a Bytes) -> Reader<'a> {
        Reader { whole, rest: whole.as_ref() }
    }

    /// How many bytes are left to read.
    pub(crate) fn remaining(&self) -> usize {
        self.rest.len()
    }

    /// Reads one byte.
    pub(crate) fn u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        self.rest.read_u8().map_err(|_| DecodeError::Truncated { field })
    }

    /// Reads a little-endian `u32`.
    pub(crate) fn u32(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        self.rest.read_u32::<LittleEndian>().map_err(|_| DecodeError::Truncated { field })
    }

    /// Reads a little-endian `u64`.
    pub(crate) fn u64(&mut self, field: &'static str) -> Result<u64, DecodeError> {
        self.rest.read_u64::<LittleEndian>().map_err(|_| DecodeError::Truncated { field })
    }

    /// Reads a boolean byte. Only `0` and `1` are accepted, so that
    /// re-encoding gives back the same byte.
    pub(crate) fn bool(&mut self, field: &'static str) -> Result<bool, DecodeError> {
        match self.u8(field)? {
            0 => Ok(false),
            1 => Ok(true),
            value => Err(DecodeError::BadTag { field, value }),
        }
    }

    /// Takes the next `len` bytes as a slice sharing the input's memory.
    /// The caller has already checked `len` against its `MAX_*` limit; this
    /// checks it against what remains.
    pub(crate) fn bytes(&mut self, len: usize, field: &'static str) -> Result<Bytes, DecodeError> {
        let (taken, rest) = self.rest.split_at_checked(len).ok_or(DecodeError::Truncated { field })?;
        self.rest = rest;
        // `taken` lies inside `whole` by the invariant on `rest`.
        Ok(self.whole.slice_ref(taken))
    }

    /// Ends reading, rejecting any bytes left over.
    pub(crate) fn finish(self) -> Result<(), DecodeError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes { count: self.rest.len() })
        }
    }
}
