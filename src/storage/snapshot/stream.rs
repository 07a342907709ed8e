//! The streams of a snapshot's data: [`SnapshotWriter`] takes one,
//! [`SnapshotReader`] reads one back. Both use a fixed amount of memory
//! whatever the snapshot's size, and both keep the file's checksum as they
//! go.

use std::fmt;
use std::io::{self, Read, Write};
use std::path::PathBuf;

use byteorder::{LittleEndian, ReadBytesExt, WriteBytesExt};

use super::format::{SnapshotFile, SNAPSHOT_TRAILER_BYTES};
use super::SnapshotStore;
use crate::membership::SnapshotMeta;
use crate::storage::error::StorageError;
use crate::storage::fs::{Fs, FsFile, RealFs};

/// The buffer a [`SnapshotWriter`] fills before writing to its file.
const WRITE_BUFFER_BYTES: usize = 64 << 10;

/// A snapshot being taken: write the application's state into it (it is a
/// buffered [`io::Write`] that checksums as it goes, using a fixed amount of
/// memory whatever the size), then [`SnapshotWriter::finish`] it. Dropping
/// it unfinished removes its temporary file.
pub struct SnapshotWriter<'a, F: Fs = RealFs> {
    store: &'a mut SnapshotStore<F>,
    meta: SnapshotMeta,
    temp: PathBuf,
    file: F::File,
    /// Bytes not yet written to the file: at most [`WRITE_BUFFER_BYTES`] of
    /// data (the header before the data may be longer).
    buf: Vec<u8>,
    /// Bytes written to the file: where `buf` goes.
    written_bytes: u64,
    /// CRC32C of the bytes written to the file.
    crc: u32,
    /// Where the data starts: the header's length.
    data_start: u64,
    /// CRC32C of the header, before the data.
    prefix_crc: u32,
    /// Data bytes accepted so far.
    data_len: u64,
    /// The first write error; every later write and the finish fail.
    failed: Option<(io::ErrorKind, String)>,
    /// Set once the file is in place, so that drop leaves it there.
    installed: bool,
}

impl<F: Fs> fmt::Debug for SnapshotWriter<'_, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SnapshotWriter")
            .field("meta", &self.meta)
            .field("temp", &self.temp)
            .field("data_len", &self.data_len)
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

impl<'a, F: Fs> SnapshotWriter<'a, F> {
    /// A writer into the new, empty file `temp` for the snapshot `meta`,
    /// whose encoded header is `header`.
    pub(super) fn new(
        store: &'a mut SnapshotStore<F>,
        meta: SnapshotMeta,
        temp: PathBuf,
        file: F::File,
        mut header: Vec<u8>,
    ) -> SnapshotWriter<'a, F> {
        let data_start = header.len() as u64;
        let prefix_crc = crc32c::crc32c(&header);
        header.reserve(WRITE_BUFFER_BYTES);
        SnapshotWriter {
            store,
            meta,
            temp,
            file,
            buf: header,
            written_bytes: 0,
            crc: 0,
            data_start,
            prefix_crc,
            data_len: 0,
            failed: None,
            installed: false,
        }
    }

    /// What the snapshot covers.
    pub fn meta(&self) -> &SnapshotMeta {
        &self.meta
    }

    /// Whether a write to the file failed; [`finish`](Self::finish) then
    /// reports it.
    pub fn failed(&self) -> bool {
        self.failed.is_some()
    }

    /// Data bytes written so far.
    pub fn data_len(&self) -> u64 {
        self.data_len
    }

    /// Completes the snapshot: writes the trailer, fsyncs the file, renames
    /// it into place, fsyncs the directory, and only then removes the
    /// previous snapshot. Returns what the snapshot covers; from here on it
    /// is the store's current snapshot, and the log may be compacted up to
    /// its index. Fails if any earlier write failed.
    pub fn finish(mut self) -> Result<SnapshotMeta, StorageError> {
        if let Some((kind, message)) = &self.failed {
            return Err(StorageError::out_of_space(
                "write",
                &self.temp,
                io::Error::new(*kind, message.clone()),
            ));
        }
        self.buf.write_u64::<LittleEndian>(self.data_len).expect("writing to a Vec cannot fail");
        if let Err(e) = self.flush_buf() {
            return Err(StorageError::out_of_space("write", &self.temp, e));
        }
        let crc_offset = self.written_bytes;
        let mut crc = Vec::with_capacity(4);
        crc.write_u32::<LittleEndian>(self.crc).expect("writing to a Vec cannot fail");
        self.file
            .write_at(crc_offset, &crc)
            .map_err(|e| StorageError::out_of_space("write", &self.temp, e))?;
        self.file.sync_data().map_err(|e| StorageError::sync(&self.temp, e))?;
        let info = SnapshotFile {
            meta: self.meta.clone(),
            data_start: self.data_start,
            data_len: self.data_len,
            file_len: crc_offset + 4,
            prefix_crc: self.prefix_crc,
        };
        debug_assert_eq!(info.file_len, info.data_end() + SNAPSHOT_TRAILER_BYTES as u64);
        let file = self.store.fs.open(&self.temp).map_err(|e| StorageError::io("open", &self.temp, e))?;
        self.store.install(&self.temp, info, file)?;
        self.installed = true;
        Ok(self.meta.clone())
    }

    /// Writes `buf` out to the file, extending the checksum over it.
    fn flush_buf(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let result = self.file.write_at(self.written_bytes, &self.buf);
        if let Err(e) = &result {
            self.failed = Some((e.kind(), e.to_string()));
        }
        result?;
        self.crc = crc32c::crc32c_append(self.crc, &self.buf);
        self.written_bytes += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }

    fn check_failed(&self) -> io::Result<()> {
        match &self.failed {
            Some((kind, message)) => {
                Err(io::Error::new(*kind, format!("an earlier write failed: {message}")))
            }
            None => Ok(()),
        }
    }
}

impl<F: Fs> Write for SnapshotWriter<'_, F> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.check_failed()?;
        if self.buf.len() + data.len() > WRITE_BUFFER_BYTES {
            self.flush_buf()?;
        }
        if data.len() >= WRITE_BUFFER_BYTES {
            // Large writes go straight to the file, without a copy.
            if let Err(e) = self.file.write_at(self.written_bytes, data) {
                self.failed = Some((e.kind(), e.to_string()));
                return Err(e);
            }
            self.crc = crc32c::crc32c_append(self.crc, data);
            self.written_bytes += data.len() as u64;
        } else {
            self.buf.extend_from_slice(data);
        }
        self.data_len += data.len() as u64;
        Ok(data.len())
    }

    /// Writes the buffered bytes to the file. Nothing is durable before
    /// [`SnapshotWriter::finish`].
    fn flush(&mut self) -> io::Result<()> {
        self.check_failed()?;
        self.flush_buf()
    }
}

impl<F: Fs> Drop for SnapshotWriter<'_, F> {
    fn drop(&mut self) {
        if !self.installed {
            // Best effort: open removes any temporary left behind.
            let _ = self.store.fs.remove(&self.temp);
        }
    }
}

/// A stream of a snapshot's data, from [`SnapshotStore::reader`]. The file
/// was checked when the store opened or installed it; the stream checks the
/// checksum again as it reads, and at the end of the data fails with
/// [`io::ErrorKind::InvalidData`] if the file changed since. It never reads
/// past the data, whatever the file holds now.
pub struct SnapshotReader<F: Fs = RealFs> {
    file: F::File,
    path: PathBuf,
    info: SnapshotFile,
    /// The next byte to read. Invariant: in `[data_start, data_end]`.
    position: u64,
    /// CRC32C of the file's bytes before `position`.
    crc: u32,
    /// The trailer was checked at the end of the data.
    done: bool,
}

impl<F: Fs> fmt::Debug for SnapshotReader<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SnapshotReader")
            .field("path", &self.path)
            .field("meta", &self.info.meta)
            .field("position", &self.position)
            .finish_non_exhaustive()
    }
}

impl<F: Fs> SnapshotReader<F> {
    /// A reader of the data of the checked snapshot file `file`.
    pub(super) fn new(file: F::File, path: PathBuf, info: SnapshotFile) -> SnapshotReader<F> {
        SnapshotReader { file, path, position: info.data_start, crc: info.prefix_crc, info, done: false }
    }

    /// What the snapshot covers.
    pub fn meta(&self) -> &SnapshotMeta {
        &self.info.meta
    }

    /// The data's length in bytes.
    pub fn data_len(&self) -> u64 {
        self.info.data_len
    }

    /// Checks the trailer against the checksum of what was read.
    fn check_trailer(&mut self) -> io::Result<()> {
        let changed = |what: String| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("snapshot {} changed since it was checked: {what}", self.path.display()),
            )
        };
        let mut trailer = [0; SNAPSHOT_TRAILER_BYTES];
        self.file.read_at(self.info.data_end(), &mut trailer)?;
        let mut r = &trailer[..];
        let data_len = r.read_u64::<LittleEndian>()?;
        let stored_crc = r.read_u32::<LittleEndian>()?;
        let crc = crc32c::crc32c_append(self.crc, &trailer[..8]);
        if data_len != self.info.data_len {
            return Err(changed(format!(
                "its trailer says {data_len} data bytes, not {}",
                self.info.data_len
            )));
        }
        if crc != stored_crc {
            return Err(changed(format!(
                "checksum {stored_crc:#010x} does not match its bytes ({crc:#010x})"
            )));
        }
        let file_len = self.file.size_bytes()?;
        if file_len != self.info.file_len {
            return Err(changed(format!("it is {file_len} bytes long, not {}", self.info.file_len)));
        }
        Ok(())
    }
}

impl<F: Fs> Read for SnapshotReader<F> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let remaining = self.info.data_end() - self.position;
        if remaining == 0 {
            if !self.done && !buf.is_empty() {
                self.check_trailer()?;
                self.done = true;
            }
            return Ok(0);
        }
        let n = remaining.min(buf.len() as u64) as usize;
        let out = &mut buf[..n];
        self.file.read_at(self.position, out)?;
        self.crc = crc32c::crc32c_append(self.crc, out);
        self.position += n as u64;
        Ok(n)
    }
}
