//! Filesystem-wide and writeback calls std lacks: syncfs(2), and sync_file_range(2) to start
//! writeback early.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

use crate::check;

/// Flushes every dirty page and inode of the filesystem holding `f` to stable storage.
pub fn syncfs(f: &File) -> io::Result<()> {
    // SAFETY: the fd is open for the duration of the call (borrowed from `f`); syncfs only
    // names the filesystem by it.
    check(unsafe { libc::syncfs(f.as_raw_fd()) }.into()).map(drop)
}

/// Starts writing `f`'s dirty pages to disk without waiting for them (so that a later fsync
/// has less left to do).
pub fn start_writeback(f: &File) -> io::Result<()> {
    // SAFETY: the fd is open for the duration of the call (borrowed from `f`); offset 0 with
    // length 0 means "to the end of the file"; SYNC_FILE_RANGE_WRITE only starts writeback.
    check(unsafe { libc::sync_file_range(f.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE) }.into())
        .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syncs_and_starts_writeback() {
        let dir = std::env::temp_dir().join(format!("cove-syncfs-test-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        syncfs(&File::open(&dir).unwrap()).unwrap();
        let data = dir.join("data");
        std::fs::write(&data, [7u8; 8192]).unwrap();
        start_writeback(&File::open(&data).unwrap()).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
