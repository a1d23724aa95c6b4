//! Inode calls std lacks: mknod(2), utimensat(2) on the link itself, and l{list,get,set}xattr(2).
//! None of them follows a symlink in the last path component.

use std::io;
use std::path::Path;

use crate::{check, cpath};

/// mknod(2): `mode` carries the file type (`S_IFCHR`, `S_IFIFO`, `S_IFSOCK`, …) and the
/// permission bits (subject to the umask); `dev` is used for device nodes.
pub fn mknod(path: &Path, mode: u32, dev: u64) -> io::Result<()> {
    let c = cpath(path)?;
    // SAFETY: `c` is a valid NUL-terminated path that outlives the call; mknod only reads it.
    check(unsafe { libc::mknod(c.as_ptr(), mode as libc::mode_t, dev as libc::dev_t) }.into())
        .map(drop)
}

/// Sets the access and modification times of `path` itself (a symlink is not followed);
/// each time is (seconds, nanoseconds) since the epoch.
pub fn lutimes(path: &Path, atime: (i64, i64), mtime: (i64, i64)) -> io::Result<()> {
    let c = cpath(path)?;
    let ts = |(sec, nsec): (i64, i64)| libc::timespec {
        tv_sec: sec as libc::time_t,
        tv_nsec: nsec as _,
    };
    let times = [ts(atime), ts(mtime)];
    // SAFETY: `c` is a valid NUL-terminated path and `times` an array of two timespecs, both
    // alive for the duration of the call, which only reads them.
    let rc = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    check(rc.into()).map(drop)
}

/// Calls `fill(buf_ptr, len)` (a size query with len 0 first, then the real call), retrying
/// while the value grows between the two calls (ERANGE).
fn sized(mut fill: impl FnMut(*mut libc::c_void, usize) -> isize) -> io::Result<Vec<u8>> {
    loop {
        let n = check(fill(std::ptr::null_mut(), 0) as libc::c_long)? as usize;
        let mut buf = vec![0u8; n];
        if n == 0 {
            return Ok(buf);
        }
        match check(fill(buf.as_mut_ptr().cast(), n) as libc::c_long) {
            Ok(got) => {
                buf.truncate(got as usize);
                return Ok(buf);
            }
            Err(e) if e.raw_os_error() == Some(libc::ERANGE) => continue,
            Err(e) => return Err(e),
        }
    }
}

/// The names of the extended attributes of `path` itself (a symlink is not followed).
pub fn llistxattr(path: &Path) -> io::Result<Vec<Vec<u8>>> {
    let c = cpath(path)?;
    let raw = sized(|buf, len| {
        // SAFETY: `c` is a valid NUL-terminated path; `buf` is null with `len` 0 (a size
        // query) or points to `len` writable bytes owned by `sized`.
        unsafe { libc::llistxattr(c.as_ptr(), buf.cast(), len) }
    })?;
    Ok(raw
        .split(|b| *b == 0)
        .filter(|n| !n.is_empty())
        .map(<[u8]>::to_vec)
        .collect())
}

/// The value of extended attribute `name` of `path` itself.
pub fn lgetxattr(path: &Path, name: &[u8]) -> io::Result<Vec<u8>> {
    let c = cpath(path)?;
    let n = std::ffi::CString::new(name)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in xattr name"))?;
    sized(|buf, len| {
        // SAFETY: `c` and `n` are valid NUL-terminated strings; `buf` is null with `len` 0 (a
        // size query) or points to `len` writable bytes owned by `sized`.
        unsafe { libc::lgetxattr(c.as_ptr(), n.as_ptr(), buf, len) }
    })
}

/// Sets extended attribute `name` of `path` itself to `value` (created or replaced).
pub fn lsetxattr(path: &Path, name: &[u8], value: &[u8]) -> io::Result<()> {
    let c = cpath(path)?;
    let n = std::ffi::CString::new(name)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in xattr name"))?;
    // SAFETY: `c` and `n` are valid NUL-terminated strings and `value` a live slice of
    // `value.len()` bytes; the kernel only reads them.
    let rc = unsafe {
        libc::lsetxattr(
            c.as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    check(rc.into()).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{FileTypeExt, MetadataExt};

    #[test]
    fn fifo_times_and_xattrs() {
        let t = std::env::temp_dir().join(format!("cove-inode-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&t);
        std::fs::create_dir_all(&t).unwrap();
        let f = t.join("fifo");
        mknod(&f, libc::S_IFIFO | 0o640, 0).unwrap();
        assert!(std::fs::symlink_metadata(&f).unwrap().file_type().is_fifo());
        let e = mknod(&f, libc::S_IFIFO | 0o640, 0).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);

        let l = t.join("link");
        std::os::unix::fs::symlink("/nonexistent", &l).unwrap();
        lutimes(&l, (1_000_000, 5), (2_000_000, 7)).unwrap();
        let md = std::fs::symlink_metadata(&l).unwrap();
        assert_eq!((md.mtime(), md.mtime_nsec()), (2_000_000, 7));

        let d = t.join("dir");
        std::fs::create_dir(&d).unwrap();
        match lsetxattr(&d, b"user.cove.test", b"y") {
            Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => {
                eprintln!("skipping xattr checks: not supported on {}", t.display());
            }
            r => {
                r.unwrap();
                assert!(llistxattr(&d)
                    .unwrap()
                    .contains(&b"user.cove.test".to_vec()));
                assert_eq!(lgetxattr(&d, b"user.cove.test").unwrap(), b"y");
                let e = lgetxattr(&d, b"user.cove.absent").unwrap_err();
                assert_eq!(e.raw_os_error(), Some(libc::ENODATA));
            }
        }
        std::fs::remove_dir_all(&t).unwrap();
    }
}
