//! Filesystem calls std lacks: mknod(2) for device nodes (overlay whiteouts), syncfs(2), and
//! sync_file_range(2) to start writeback early.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

use crate::{check, cpath};

/// The kind of special file [`mknod`] creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    Char,
    Block,
    Fifo,
}

/// Creates a special file at `path` with permission bits `perm` (subject to the umask) and,
/// for devices, the device number `major:minor`. A 0:0 character device is an overlayfs
/// whiteout. Needs CAP_MKNOD for devices other than whiteouts.
pub fn mknod(path: &Path, kind: NodeKind, perm: u32, major: u32, minor: u32) -> io::Result<()> {
    let c = cpath(path)?;
    let fmt = match kind {
        NodeKind::Char => libc::S_IFCHR,
        NodeKind::Block => libc::S_IFBLK,
        NodeKind::Fifo => libc::S_IFIFO,
    };
    let dev = libc::makedev(major, minor);
    let mode = fmt | (perm as libc::mode_t & 0o7777);
    // SAFETY: `c` is a valid NUL-terminated path that outlives the call; mknod only reads it.
    check(unsafe { libc::mknod(c.as_ptr(), mode, dev) }.into()).map(drop)
}

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
    use std::os::unix::fs::FileTypeExt;

    #[test]
    fn makes_a_fifo_and_syncs() {
        let dir = std::env::temp_dir().join(format!("cove-mknod-test-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let p = dir.join("f");
        let _ = std::fs::remove_file(&p);
        mknod(&p, NodeKind::Fifo, 0o600, 0, 0).unwrap();
        assert!(std::fs::symlink_metadata(&p).unwrap().file_type().is_fifo());
        let e = mknod(&p, NodeKind::Fifo, 0o600, 0, 0).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        syncfs(&File::open(&dir).unwrap()).unwrap();
        let data = dir.join("data");
        std::fs::write(&data, [7u8; 8192]).unwrap();
        start_writeback(&File::open(&data).unwrap()).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
