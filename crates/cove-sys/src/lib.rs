//! Thin, safe wrappers over the Linux syscalls cove needs. The only crate with `unsafe`.

pub mod caps;
pub mod fd;
pub mod fifo;
pub mod fs;
pub mod inode;
pub mod loopdev;
pub mod mount;
pub mod net;
pub mod ns;
pub mod pidfd;
pub mod process;
pub mod pty;
pub mod sched;
pub mod seccomp;

use std::ffi::CString;
use std::io;
use std::path::Path;

/// Converts a path to a C string, mapping interior NULs to `InvalidInput`.
pub fn cpath(p: &Path) -> io::Result<CString> {
    use std::os::unix::ffi::OsStrExt;
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, format!("NUL in path {p:?}")))
}

/// Converts a string to a C string, mapping interior NULs to `InvalidInput`.
pub fn cstr(s: &str) -> io::Result<CString> {
    CString::new(s)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, format!("NUL in {s:?}")))
}

/// Turns a libc return value into `io::Result`, reading errno on -1.
pub(crate) fn check(rc: libc::c_long) -> io::Result<libc::c_long> {
    if rc == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}
