//! Loop devices: attach a file to a free `/dev/loopN` (detached automatically when its last
//! user, e.g. a mount, goes away), tell a device its file grew, and grow a mounted ext4.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::check;

// <linux/loop.h>
const LOOP_SET_FD: libc::Ioctl = 0x4C00;
const LOOP_CLR_FD: libc::Ioctl = 0x4C01;
const LOOP_SET_STATUS64: libc::Ioctl = 0x4C04;
const LOOP_SET_CAPACITY: libc::Ioctl = 0x4C07;
const LOOP_CONFIGURE: libc::Ioctl = 0x4C0A;
const LOOP_CTL_GET_FREE: libc::Ioctl = 0x4C82;
const LO_FLAGS_AUTOCLEAR: u32 = 4;
const LO_FLAGS_DIRECT_IO: u32 = 16;
const LO_NAME_SIZE: usize = 64;
const LO_KEY_SIZE: usize = 32;
/// `_IOW('f', 16, __u64)` from <linux/ext4.h>.
const EXT4_IOC_RESIZE_FS: libc::Ioctl = 0x4008_6610;
/// Major number of loop block devices.
pub const LOOP_MAJOR: u32 = 7;

/// `struct loop_info64`.
#[repr(C)]
#[derive(Clone, Copy)]
struct LoopInfo64 {
    lo_device: u64,
    lo_inode: u64,
    lo_rdevice: u64,
    lo_offset: u64,
    lo_sizelimit: u64,
    lo_number: u32,
    lo_encrypt_type: u32,
    lo_encrypt_key_size: u32,
    lo_flags: u32,
    lo_file_name: [u8; LO_NAME_SIZE],
    lo_crypt_name: [u8; LO_NAME_SIZE],
    lo_encrypt_key: [u8; LO_KEY_SIZE],
    lo_init: [u64; 2],
}

/// `struct loop_config`.
#[repr(C)]
struct LoopConfig {
    fd: u32,
    block_size: u32,
    info: LoopInfo64,
    reserved: [u64; 8],
}

fn info(flags: u32, file: &Path) -> LoopInfo64 {
    let mut name = [0u8; LO_NAME_SIZE];
    let bytes = std::os::unix::ffi::OsStrExt::as_bytes(file.as_os_str());
    let n = bytes.len().min(LO_NAME_SIZE - 1);
    name[..n].copy_from_slice(&bytes[..n]);
    LoopInfo64 {
        lo_device: 0,
        lo_inode: 0,
        lo_rdevice: 0,
        lo_offset: 0,
        lo_sizelimit: 0,
        lo_number: 0,
        lo_encrypt_type: 0,
        lo_encrypt_key_size: 0,
        lo_flags: flags,
        lo_file_name: name,
        lo_crypt_name: [0; LO_NAME_SIZE],
        lo_encrypt_key: [0; LO_KEY_SIZE],
        lo_init: [0; 2],
    }
}

/// An attached loop device. Its file descriptor keeps it attached; once every user (this fd,
/// mounts of it) is gone the kernel detaches it (`LO_FLAGS_AUTOCLEAR`).
#[derive(Debug)]
pub struct LoopDevice {
    pub path: PathBuf,
    pub file: File,
}

/// Path of loop device `n`, creating its node if the host's /dev does not (no devtmpfs).
fn open_node(n: u32) -> io::Result<(PathBuf, File)> {
    let path = PathBuf::from(format!("/dev/loop{n}"));
    let open = || {
        OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(&path)
    };
    match open() {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let c = crate::cpath(&path)?;
            let dev = libc::makedev(LOOP_MAJOR, n);
            // SAFETY: `c` is a valid NUL-terminated path for the duration of the call.
            let rc = unsafe { libc::mknod(c.as_ptr(), libc::S_IFBLK | 0o660, dev) };
            match check(rc.into()) {
                Err(e) if e.raw_os_error() != Some(libc::EEXIST) => return Err(e),
                _ => {}
            }
            Ok((path.clone(), open()?))
        }
        r => Ok((path.clone(), r?)),
    }
}

/// Binds `backing` to loop device `dev` with `flags`: `LOOP_CONFIGURE`, or on kernels older
/// than 5.8 `LOOP_SET_FD` + `LOOP_SET_STATUS64`. `EBUSY` if the device is already bound.
fn configure(dev: &File, backing: &File, path: &Path, flags: u32) -> io::Result<()> {
    let cfg = LoopConfig {
        fd: backing.as_raw_fd() as u32,
        block_size: 0,
        info: info(flags, path),
        reserved: [0; 8],
    };
    // SAFETY: `dev` is an open loop device; LOOP_CONFIGURE reads one `struct loop_config`,
    // which `cfg` is (repr(C), same layout) and which lives across the call.
    let rc = unsafe { libc::ioctl(dev.as_raw_fd(), LOOP_CONFIGURE, &cfg as *const LoopConfig) };
    match check(rc.into()) {
        Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOTTY)) => {}
        r => return r.map(drop),
    }
    // SAFETY: LOOP_SET_FD takes a file descriptor by value; `backing` is open.
    let rc = unsafe { libc::ioctl(dev.as_raw_fd(), LOOP_SET_FD, backing.as_raw_fd()) };
    check(rc.into())?;
    let i = cfg.info;
    // SAFETY: LOOP_SET_STATUS64 reads one `struct loop_info64`, which `i` is and which lives
    // across the call.
    let rc = unsafe { libc::ioctl(dev.as_raw_fd(), LOOP_SET_STATUS64, &i as *const LoopInfo64) };
    if let Err(e) = check(rc.into()) {
        // SAFETY: LOOP_CLR_FD takes no argument; undoes our LOOP_SET_FD on an open device.
        unsafe { libc::ioctl(dev.as_raw_fd(), LOOP_CLR_FD, 0) };
        return Err(e);
    }
    Ok(())
}

/// Attaches the regular file `backing` (opened read-write) to a free loop device with
/// `LO_FLAGS_AUTOCLEAR` and, where the file's filesystem supports it, direct I/O (no second
/// copy of the data in the host's page cache, and a flush of the device does not wait for
/// other files' writeback). Another process may grab the same free device between
/// `LOOP_CTL_GET_FREE` and the bind; that is retried with the next free device.
pub fn attach(backing: &Path) -> io::Result<LoopDevice> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(backing)?;
    let ctl = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open("/dev/loop-control")?;
    let mut last = io::Error::from_raw_os_error(libc::EBUSY);
    for _ in 0..32 {
        // SAFETY: LOOP_CTL_GET_FREE takes no argument and returns a device number or -1.
        let n = check(unsafe { libc::ioctl(ctl.as_raw_fd(), LOOP_CTL_GET_FREE) }.into())?;
        let (path, dev) = open_node(n as u32)?;
        let mut r = configure(
            &dev,
            &file,
            backing,
            LO_FLAGS_AUTOCLEAR | LO_FLAGS_DIRECT_IO,
        );
        if matches!(&r, Err(e) if e.raw_os_error() == Some(libc::EINVAL)) {
            // Direct I/O refused (the backing filesystem lacks it on some kernels).
            r = configure(&dev, &file, backing, LO_FLAGS_AUTOCLEAR);
        }
        match r {
            Ok(()) => return Ok(LoopDevice { path, file: dev }),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => last = e,
            Err(e) => return Err(e),
        }
    }
    Err(last)
}

/// Whether loop devices can be attached here (`/dev/loop-control` opens read-write).
pub fn available() -> bool {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/loop-control")
        .is_ok()
}

/// The loop device node (`/dev/loopN`) whose device number is `rdev`, if it is a loop device.
pub fn node_of(rdev: u64) -> Option<PathBuf> {
    (libc::major(rdev) == LOOP_MAJOR)
        .then(|| PathBuf::from(format!("/dev/loop{}", libc::minor(rdev))))
}

/// The file bound to loop device `dev` (a `/dev/loopN` path), from sysfs; `None` if unbound.
pub fn backing_file(dev: &Path) -> Option<PathBuf> {
    let name = dev.file_name()?.to_str()?;
    let s = std::fs::read_to_string(format!("/sys/block/{name}/loop/backing_file")).ok()?;
    Some(PathBuf::from(s.trim_end_matches('\n')))
}

/// Every loop device bound to `file` (same device and inode), e.g. one left attached
/// (but not mounted) by a crash.
pub fn devices_of(file: &Path) -> io::Result<Vec<PathBuf>> {
    let md = std::fs::metadata(file)?;
    let mut out = Vec::new();
    for e in std::fs::read_dir("/sys/block")? {
        let name = e?.file_name();
        let Some(name) = name.to_str().filter(|n| n.starts_with("loop")) else {
            continue;
        };
        let dev = PathBuf::from(format!("/dev/{name}"));
        let same = backing_file(&dev)
            .and_then(|b| std::fs::metadata(b).ok())
            .is_some_and(|b| b.dev() == md.dev() && b.ino() == md.ino());
        if same {
            out.push(dev);
        }
    }
    Ok(out)
}

/// Makes loop device `dev` re-read its backing file's size (`LOOP_SET_CAPACITY`).
pub fn set_capacity(dev: &Path) -> io::Result<()> {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(dev)?;
    if !f.metadata()?.file_type().is_block_device() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not a block device", dev.display()),
        ));
    }
    // SAFETY: LOOP_SET_CAPACITY takes no argument; `f` is an open block device.
    let rc = unsafe { libc::ioctl(f.as_raw_fd(), LOOP_SET_CAPACITY, 0) };
    check(rc.into()).map(drop)
}

/// Grows the ext4 filesystem mounted at `mountpoint` to `blocks` filesystem blocks, online
/// (`EXT4_IOC_RESIZE_FS`, what `resize2fs` does for a mounted filesystem).
pub fn ext4_resize(mountpoint: &Path, blocks: u64) -> io::Result<()> {
    let dir = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(mountpoint)?;
    // SAFETY: EXT4_IOC_RESIZE_FS reads one u64 (the new block count) from the pointer, which
    // points to `blocks` for the duration of the call.
    let rc = unsafe { libc::ioctl(dir.as_raw_fd(), EXT4_IOC_RESIZE_FS, &blocks as *const u64) };
    check(rc.into()).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn structs_have_the_kernel_layout() {
        assert_eq!(std::mem::size_of::<LoopInfo64>(), 232);
        assert_eq!(std::mem::size_of::<LoopConfig>(), 304);
    }

    #[test]
    fn loop_nodes_by_device_number() {
        assert_eq!(
            node_of(libc::makedev(7, 12)),
            Some(PathBuf::from("/dev/loop12"))
        );
        assert_eq!(node_of(libc::makedev(8, 1)), None);
    }

    #[test]
    fn long_names_are_truncated_with_a_nul() {
        let long = PathBuf::from(format!("/{}", "x".repeat(100)));
        let i = info(LO_FLAGS_AUTOCLEAR, &long);
        assert_eq!(i.lo_file_name[LO_NAME_SIZE - 1], 0);
        assert_eq!(i.lo_flags, LO_FLAGS_AUTOCLEAR);
    }
}
