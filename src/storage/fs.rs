//! The file system the log runs on: a small trait with two implementations,
//! the real disk ([`RealFs`]) and an in-memory simulation that can crash
//! ([`SimFs`](super::SimFs)).
//!
//! The trait holds exactly what the log needs and nothing more, so that the
//! simulation has few semantics to get right: positional reads and writes,
//! preallocation, `fdatasync`, and the directory operations whose durability
//! needs an fsync of the directory (create, rename, remove).

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;

/// A file system: directories of named files, and an advisory lock per
/// directory.
pub trait Fs {
    /// An open file.
    type File: FsFile;
    /// A held directory lock; dropping it releases the lock.
    type Lock;

    /// Creates `dir` and its parents if they do not exist.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Takes the exclusive lock on `dir` without waiting. Fails with
    /// [`io::ErrorKind::WouldBlock`] if someone else holds it.
    fn lock_dir(&self, dir: &Path) -> io::Result<Self::Lock>;
    /// The names of the regular files in `dir`, in no particular order.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// Opens an existing file for reading and writing.
    fn open(&self, path: &Path) -> io::Result<Self::File>;
    /// Creates a file for reading and writing, emptying it if it exists.
    /// The new name is durable only after [`Fs::sync_dir`].
    fn create(&self, path: &Path) -> io::Result<Self::File>;
    /// Renames `from` to `to`, atomically replacing `to` if it exists.
    /// Durable only after [`Fs::sync_dir`].
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes a file. Durable only after [`Fs::sync_dir`].
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// Makes every create, rename and remove in `dir` durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
}

/// An open file: positional IO, so that no call depends on a cursor.
pub trait FsFile {
    /// The file's length in bytes.
    fn size_bytes(&self) -> io::Result<u64>;
    /// Fills `buf` from the bytes at `offset`; fails if the file ends first.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()>;
    /// Writes all of `data` at `offset`, growing the file if needed.
    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()>;
    /// Reserves disk space so the file is at least `len` bytes long, the
    /// new bytes reading as zeros. Never shrinks the file.
    fn allocate(&mut self, len: u64) -> io::Result<()>;
    /// Makes the file's data (and the metadata needed to read it, such as
    /// its length) durable: `fdatasync`.
    fn sync_data(&mut self) -> io::Result<()>;
}

/// The real file system, through `std::fs` and fs2.
#[derive(Clone, Copy, Debug, Default)]
pub struct RealFs;

impl Fs for RealFs {
    type File = File;
    type Lock = File;

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir_all(dir)
    }

    fn lock_dir(&self, dir: &Path) -> io::Result<File> {
        use fs2::FileExt;
        let file =
            OpenOptions::new().read(true).write(true).create(true).truncate(false).open(dir.join("LOCK"))?;
        match file.try_lock_exclusive() {
            Ok(()) => Ok(file),
            Err(e) if e.raw_os_error() == fs2::lock_contended_error().raw_os_error() => {
                Err(io::Error::new(io::ErrorKind::WouldBlock, e))
            }
            Err(e) => Err(e),
        }
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                if let Ok(name) = entry.file_name().into_string() {
                    names.push(name);
                }
            }
        }
        Ok(names)
    }

    fn open(&self, path: &Path) -> io::Result<File> {
        OpenOptions::new().read(true).write(true).open(path)
    }

    fn create(&self, path: &Path) -> io::Result<File> {
        OpenOptions::new().read(true).write(true).create(true).truncate(true).open(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    #[cfg(unix)]
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }

    #[cfg(not(unix))]
    fn sync_dir(&self, _dir: &Path) -> io::Result<()> {
        // Windows cannot open a directory as a file; NTFS journals renames.
        Ok(())
    }
}

impl FsFile for File {
    fn size_bytes(&self) -> io::Result<u64> {
        Ok(self.metadata()?.len())
    }

    #[cfg(unix)]
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        std::os::unix::fs::FileExt::read_exact_at(self, buf, offset)
    }

    #[cfg(not(unix))]
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        use std::io::{Read, Seek, SeekFrom};
        let mut file = self;
        file.seek(SeekFrom::Start(offset))?;
        file.read_exact(buf)
    }

    #[cfg(unix)]
    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        std::os::unix::fs::FileExt::write_all_at(self, data, offset)
    }

    #[cfg(not(unix))]
    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        use std::io::{Seek, SeekFrom, Write};
        self.seek(SeekFrom::Start(offset))?;
        self.write_all(data)
    }

    fn allocate(&mut self, len: u64) -> io::Result<()> {
        match fs2::FileExt::allocate(self, len) {
            Ok(()) => Ok(()),
            // fs2 reports `errno` after `posix_fallocate`, which returns its
            // error instead of setting `errno`, so the error it gives is
            // often meaningless. Most failures here are a full disk; say so
            // when the numbers agree.
            Err(e) => {
                let wanted = len.saturating_sub(FsFile::size_bytes(self).unwrap_or(0));
                let full = free_space_of(self).is_some_and(|free| free < wanted);
                if full {
                    Err(io::Error::new(
                        io::ErrorKind::StorageFull,
                        format!("cannot preallocate {len} bytes: not enough free space"),
                    ))
                } else {
                    Err(e)
                }
            }
        }
    }

    fn sync_data(&mut self) -> io::Result<()> {
        File::sync_data(self)
    }
}

/// Free bytes on the file system holding `file`, where the platform says.
fn free_space_of(_file: &File) -> Option<u64> {
    // fs2 asks by path; Linux names an open file's path in /proc/self/fd.
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::io::AsRawFd;
        let link = format!("/proc/self/fd/{}", _file.as_raw_fd());
        let path = std::fs::read_link(link).ok()?;
        fs2::available_space(path.parent()?).ok()
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}
