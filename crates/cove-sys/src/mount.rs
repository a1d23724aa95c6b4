//! mount(2), umount2(2) and pivot_root(2).

use std::io;
use std::path::Path;

use crate::{check, cpath, cstr};

pub use libc::MNT_DETACH;

macro_rules! flags {
    ($($name:ident),*) => {$(
        #[allow(clippy::unnecessary_cast)] // c_ulong is u64 only on 64-bit targets
        #[doc = concat!("`", stringify!($name), "` as u64.")]
        pub const $name: u64 = libc::$name as u64;
    )*};
}
flags!(
    MS_BIND, MS_MOVE, MS_NODEV, MS_NOEXEC, MS_NOSUID, MS_PRIVATE, MS_RDONLY, MS_REC, MS_REMOUNT,
    MS_SLAVE
);

/// mount(2). `source`, `fstype` and `data` may be absent.
pub fn mount(
    source: Option<&str>,
    target: &Path,
    fstype: Option<&str>,
    flags: u64,
    data: Option<&str>,
) -> io::Result<()> {
    let source = source.map(cstr).transpose()?;
    let fstype = fstype.map(cstr).transpose()?;
    let data = data.map(cstr).transpose()?;
    let target = cpath(target)?;
    let ptr = |c: &Option<std::ffi::CString>| c.as_ref().map_or(std::ptr::null(), |c| c.as_ptr());
    // SAFETY: every pointer is either null or points to a NUL-terminated string that outlives
    // the call; the kernel only reads them.
    let rc = unsafe {
        libc::mount(
            ptr(&source),
            target.as_ptr(),
            ptr(&fstype),
            flags as libc::c_ulong,
            ptr(&data).cast(),
        )
    };
    check(rc.into()).map(drop)
}

/// umount2(2).
pub fn umount2(target: &Path, flags: i32) -> io::Result<()> {
    let target = cpath(target)?;
    // SAFETY: `target` is a valid NUL-terminated string for the duration of the call.
    let rc = unsafe { libc::umount2(target.as_ptr(), flags) };
    check(rc.into()).map(drop)
}

/// pivot_root(2) (no libc wrapper, so a raw syscall).
pub fn pivot_root(new_root: &Path, put_old: &Path) -> io::Result<()> {
    let new_root = cpath(new_root)?;
    let put_old = cpath(put_old)?;
    // SAFETY: both arguments are valid NUL-terminated strings for the duration of the call.
    let rc = unsafe { libc::syscall(libc::SYS_pivot_root, new_root.as_ptr(), put_old.as_ptr()) };
    check(rc).map(drop)
}
