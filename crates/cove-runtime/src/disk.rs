//! Per-sandbox disks: a sparse ext4 image `sandboxes/<id>/disk.img` of the sandbox's disk size,
//! attached to a loop device and mounted by the host at `sandboxes/<id>/disk`, holding the
//! overlay's upper and work dirs. Writing past the size fails with ENOSPC inside the sandbox
//! and touches nothing else.
//!
//! Images of the default size come mounted from a warm pool ([`crate::disk_pool`]); other
//! sizes are formatted and mounted on demand (`mkfs.ext4`, ~0.1 s). The mount stays across
//! stop/start and is re-made when found missing (after a host reboot). A grow (a resize of a
//! stopped sandbox) is done offline: unmount, wait for the loop device to detach, `e2fsck
//! -fp`, `resize2fs`, mount again (online growth needs CAP_SYS_RESOURCE, which a
//! containerised host may lack). Without loop devices or `mkfs.ext4` the runtime warns once
//! and sandboxes use a plain upper dir on the data dir's filesystem (no enforcement).

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use cove_sys::loopdev;
use cove_sys::mount::{MNT_DETACH, MS_BIND, MS_MOVE, MS_NODEV, MS_NOSUID, MS_PRIVATE};

use crate::disk_pool::{gib_bytes, Pool, Stage};
use crate::e2fs::{self, fs_bytes};
use crate::error::{IoContext, RuntimeError};
use crate::fsutil::{mounts_under, remove_tree};

/// Ready images kept in the pool (each a mounted filesystem on a loop device).
const POOL_TARGET: usize = 4;
/// ext4 mount options: freed blocks are punched out of the sparse image (`discard`); inode
/// tables of a sparse image already read as zeros, so they are not zeroed in the background.
const MOUNT_OPTS: &str = "discard,noinit_itable";
/// How long an unmounted image may take to be released by the kernel before a grow gives up.
const DETACH_TIMEOUT: Duration = Duration::from_secs(10);

/// The real pool stage: `mkfs.ext4`, loop device + ext4 mount, `MS_MOVE`.
struct Ext4Stage {
    mkfs: PathBuf,
}

impl Stage for Ext4Stage {
    fn format(&self, img: &Path, gib: u32) -> io::Result<()> {
        e2fs::mkfs(&self.mkfs, img, gib)
    }
    fn mount(&self, img: &Path, dir: &Path) -> io::Result<()> {
        mount_image(img, dir).map_err(io::Error::other)
    }
    fn move_mount(&self, from: &Path, to: &Path) -> io::Result<()> {
        let from = from
            .to_str()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path is not UTF-8"))?;
        cove_sys::mount::mount(Some(from), to, None, MS_MOVE, None)
    }
    fn unmount(&self, dir: &Path) -> io::Result<()> {
        match cove_sys::mount::umount2(dir, MNT_DETACH) {
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOENT)) => Ok(()),
            r => r,
        }
    }
    /// Makes the pool dir a private mount of its own: a mount under a shared one (`/` on
    /// systemd hosts) cannot be moved, and pool mounts need not appear in other namespaces.
    fn prepare_dir(&self, dir: &Path) -> io::Result<()> {
        let dir = &fs::canonicalize(dir)?;
        if !mounts_under(dir).iter().any(|m| m == dir) {
            let src = dir
                .to_str()
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path is not UTF-8"))?;
            cove_sys::mount::mount(Some(src), dir, None, MS_BIND, None)?;
        }
        cove_sys::mount::mount(None, dir, None, MS_PRIVATE, None)
    }
}

/// Whether sandboxes get enforced disks, and the pool of ready images.
pub struct Disks {
    /// `None` when loop devices or `mkfs.ext4` are missing (plain upper dirs then).
    mkfs: Option<PathBuf>,
    pool: OnceLock<Arc<Pool>>,
}

impl Disks {
    /// Probes the host once; warns if disk sizes cannot be enforced.
    pub fn probe() -> Self {
        let mkfs = e2fs::find_tool("mkfs.ext4");
        let loops = loopdev::available();
        if !loops || mkfs.is_none() {
            tracing::warn!(
                "sandbox disk sizes are NOT enforced: {} unavailable; sandboxes write to plain \
                 directories on the data dir's filesystem (see docs/threat-model.md)",
                match (loops, mkfs.is_some()) {
                    (false, false) =>
                        "loop devices (/dev/loop-control) and mkfs.ext4 (e2fsprogs) are",
                    (false, true) => "loop devices (/dev/loop-control) are",
                    _ => "mkfs.ext4 (e2fsprogs) is",
                }
            );
        }
        Self {
            mkfs: mkfs.filter(|_| loops),
            pool: OnceLock::new(),
        }
    }

    /// Whether sandboxes get their own ext4 disk.
    pub fn enforced(&self) -> bool {
        self.mkfs.is_some()
    }

    /// Starts keeping a pool of mounted `gib`-GiB images in `dir` (once; later calls do
    /// nothing).
    pub fn start_pool(&self, dir: PathBuf, gib: u32) -> Result<(), RuntimeError> {
        let Some(mkfs) = &self.mkfs else {
            return Ok(());
        };
        let mut started = Ok(());
        self.pool.get_or_init(|| {
            let stage = Arc::new(Ext4Stage { mkfs: mkfs.clone() });
            let pool = Arc::new(Pool::new(dir.clone(), gib, POOL_TARGET, stage));
            started = pool.clone().spawn_refill().ctx("start disk pool", &dir);
            pool
        });
        started
    }

    /// Makes `img` a formatted image of `gib` GiB: from the pool (already mounted at `mnt`)
    /// when it holds that size, else formatted here (not mounted yet).
    fn create(&self, img: &Path, mnt: &Path, gib: u32) -> Result<(), RuntimeError> {
        let mkfs = self.mkfs.as_ref().expect("create only when enforced");
        if let Some(pool) = self.pool.get().filter(|p| p.gib() == gib) {
            if pool
                .take(img, mnt)
                .ctx("take an image from the disk pool for", img)?
            {
                return Ok(());
            }
        }
        let tmp = img.with_extension("img.tmp");
        e2fs::remove_file(&tmp)?;
        e2fs::mkfs(mkfs, &tmp, gib).ctx("format disk image", &tmp)?;
        fs::rename(&tmp, img).ctx("rename into place", img)
    }

    /// Makes sure `img` exists with at least `gib` GiB and is mounted at `mnt`; a smaller
    /// one (after a resize) is unmounted, grown and mounted again. Never shrinks.
    pub fn ensure(&self, img: &Path, mnt: &Path, gib: u32) -> Result<(), RuntimeError> {
        if !img.exists() {
            self.create(img, mnt, gib)?;
        }
        fs::create_dir_all(mnt).ctx("create", mnt)?;
        let mut mounted = is_mounted(mnt)?;
        if fs_bytes(img)? < gib_bytes(gib) {
            if mounted {
                unmount_and_wait(img, mnt)?;
                mounted = false;
            }
            e2fs::grow(img, gib)?;
        }
        if !mounted {
            mount_image(img, mnt)?;
        }
        Ok(())
    }
}

/// Unmounts `mnt` (not lazily: a busy disk is an error) and waits until no loop device is
/// bound to `img`, i.e. the kernel has let go of the filesystem.
fn unmount_and_wait(img: &Path, mnt: &Path) -> Result<(), RuntimeError> {
    cove_sys::mount::umount2(mnt, 0).ctx("unmount", mnt)?;
    let deadline = Instant::now() + DETACH_TIMEOUT;
    while !loopdev::devices_of(img)
        .ctx("list loop devices of", img)?
        .is_empty()
    {
        if Instant::now() >= deadline {
            return Err(RuntimeError::Other(format!(
                "{} is still in use {}s after its unmount",
                img.display(),
                DETACH_TIMEOUT.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}

/// Whether a filesystem is mounted at `dir` (its device differs from its parent's).
pub fn is_mounted(dir: &Path) -> Result<bool, RuntimeError> {
    let parent = dir.parent().unwrap_or(Path::new("/"));
    let (a, b) = (
        fs::metadata(dir).ctx("stat", dir)?,
        fs::metadata(parent).ctx("stat", parent)?,
    );
    Ok(a.dev() != b.dev() || a.ino() == b.ino())
}

/// Attaches `img` to a loop device and mounts it at `mnt`. A device still bound to this image
/// (left by a crash, or by a lazy unmount that is not finished) is mounted instead of binding
/// a second one, so one filesystem is never mounted through two devices.
fn mount_image(img: &Path, mnt: &Path) -> Result<(), RuntimeError> {
    let flags = MS_NOSUID | MS_NODEV;
    for dev in loopdev::devices_of(img).unwrap_or_default() {
        let src = dev.to_string_lossy();
        if cove_sys::mount::mount(Some(&src), mnt, Some("ext4"), flags, Some(MOUNT_OPTS)).is_ok() {
            return Ok(());
        }
    }
    let dev = loopdev::attach(img).ctx("attach a loop device to", img)?;
    let src = dev.path.to_string_lossy().into_owned();
    cove_sys::mount::mount(Some(&src), mnt, Some("ext4"), flags, Some(MOUNT_OPTS)).map_err(|e| {
        RuntimeError::Other(format!(
            "mount {src} ({}) on {}: {e}",
            img.display(),
            mnt.display()
        ))
    })
    // `dev` is closed here: the mount holds the device, and unmounting detaches it.
}

/// Unmounts (lazily) the image mounted at `mnt` and removes `mnt` and `img`; the loop device
/// detaches itself once the filesystem is released. Missing pieces are fine.
pub fn release(img: &Path, mnt: &Path) -> Result<(), RuntimeError> {
    remove_tree(mnt)?;
    e2fs::remove_file(img)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::idmap::UID_BASE;
    use std::process::Command;

    #[test]
    fn mount_points_are_told_apart_from_plain_dirs() {
        let t = tempfile::tempdir().unwrap();
        assert!(!is_mounted(t.path()).unwrap());
        assert!(is_mounted(Path::new("/proc")).unwrap());
        assert!(is_mounted(Path::new("/")).unwrap(), "/ is its own parent");
        assert!(is_mounted(&t.path().join("missing")).is_err());
    }

    fn fallocate(path: &Path, mib: u64) -> Result<(), String> {
        let out = Command::new("fallocate")
            .arg("-l")
            .arg(format!("{mib}MiB"))
            .arg(path)
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    fn attached(img: &Path) -> usize {
        loopdev::devices_of(img).map_or(0, |v| v.len())
    }

    /// The real thing (needs root, loop devices and mkfs.ext4): a 1 GiB disk refuses a
    /// second GiB, survives an unmount (a host reboot), grows online, reuses a device still
    /// bound to it, and leaves no loop device behind once released.
    #[test]
    fn real_disk_is_enforced_remounted_grown_and_released() {
        let disks = Disks::probe();
        if !disks.enforced() || fs::metadata("/proc/self").map_or(true, |m| m.uid() != 0) {
            eprintln!("skipping: needs root, loop devices and mkfs.ext4");
            return;
        }
        let t = tempfile::tempdir().unwrap();
        let (img, mnt) = (t.path().join("disk.img"), t.path().join("disk"));
        // Whatever happens, nothing stays mounted.
        struct Unmount(PathBuf);
        impl Drop for Unmount {
            fn drop(&mut self) {
                let _ = remove_tree(&self.0);
            }
        }
        let _guard = Unmount(mnt.clone());
        disks.ensure(&img, &mnt, 1).unwrap();
        assert!(is_mounted(&mnt).unwrap());
        assert_eq!(fs_bytes(&img).unwrap(), 1 << 30);
        let root = fs::metadata(&mnt).unwrap();
        assert_eq!((root.uid(), root.gid()), (UID_BASE, UID_BASE));
        assert_eq!(fs::metadata(&img).unwrap().len(), 1 << 30);
        assert!(
            fs::metadata(&img).unwrap().blocks() * 512 < 64 << 20,
            "the image is sparse"
        );
        fallocate(&mnt.join("a"), 700).unwrap();
        let e = fallocate(&mnt.join("b"), 400).unwrap_err();
        assert!(e.contains("No space left on device"), "{e}");

        // Unmounted behind our back (a reboot): mounted again with the files.
        cove_sys::mount::umount2(&mnt, 0).unwrap();
        assert!(!is_mounted(&mnt).unwrap());
        disks.ensure(&img, &mnt, 1).unwrap();
        assert!(mnt.join("a").is_file());

        // Grown online to 2 GiB: the 400 MiB now fit.
        disks.ensure(&img, &mnt, 2).unwrap();
        assert_eq!(fs::metadata(&img).unwrap().len(), 2 << 30);
        assert_eq!(fs_bytes(&img).unwrap(), 2 << 30);
        assert!(mnt.join("a").is_file(), "files kept by the grow");
        fallocate(&mnt.join("b"), 400).unwrap();
        // A smaller size never shrinks it.
        disks.ensure(&img, &mnt, 1).unwrap();
        assert_eq!(fs::metadata(&img).unwrap().len(), 2 << 30);

        // A device still bound to the image is reused, not a second one bound.
        cove_sys::mount::umount2(&mnt, 0).unwrap();
        let held = loopdev::attach(&img).unwrap();
        disks.ensure(&img, &mnt, 2).unwrap();
        let rdev = fs::metadata(&held.path).unwrap().rdev();
        assert_eq!(fs::metadata(&mnt).unwrap().dev(), rdev);
        assert_eq!(attached(&img), 1);
        drop(held);

        let probe = t.path().join("probe");
        fs::hard_link(&img, &probe).unwrap();
        release(&img, &mnt).unwrap();
        assert!(!img.exists() && !mnt.exists());
        let freed = (0..200).any(|_| {
            std::thread::sleep(std::time::Duration::from_millis(10));
            attached(&probe) == 0
        });
        assert!(freed, "the loop device was not detached");
    }

    /// The pool for real (root): entries are mounted ahead; a create of the default size gets
    /// one by a rename and a mount move; the pool refills; a restart's clean unmounts all.
    #[test]
    fn real_pool_hands_out_mounted_disks() {
        let disks = Disks::probe();
        if !disks.enforced() || fs::metadata("/proc/self").map_or(true, |m| m.uid() != 0) {
            eprintln!("skipping: needs root, loop devices and mkfs.ext4");
            return;
        }
        let t = tempfile::tempdir().unwrap();
        struct Unmount(PathBuf);
        impl Drop for Unmount {
            fn drop(&mut self) {
                for m in mounts_under(&self.0) {
                    let _ = cove_sys::mount::umount2(&m, MNT_DETACH);
                }
            }
        }
        let _guard = Unmount(t.path().to_path_buf());
        let pool_dir = t.path().join("pool");
        disks.start_pool(pool_dir.clone(), 1).unwrap();
        let pool = disks.pool.get().unwrap().clone();
        let full = || {
            (0..1000).any(|_| {
                std::thread::sleep(Duration::from_millis(10));
                pool.ready().len() == POOL_TARGET
            })
        };
        assert!(full(), "pool not filled");
        let pool_mnt = pool_dir.join("mnt");
        assert!(
            mounts_under(&pool_dir).contains(&pool_mnt),
            "pool mounts dir is a mount"
        );

        let (img, mnt) = (t.path().join("sb/disk.img"), t.path().join("sb/disk"));
        fs::create_dir_all(t.path().join("sb")).unwrap();
        disks.ensure(&img, &mnt, 1).unwrap();
        assert!(is_mounted(&mnt).unwrap());
        let dev = fs::metadata(&mnt).unwrap().dev();
        let node = loopdev::node_of(dev).unwrap();
        let backing = loopdev::backing_file(&node).unwrap();
        assert_eq!(backing, img, "the mount moved with its image");
        assert!(full(), "pool refilled after the take");

        release(&img, &mnt).unwrap();
        assert!(!img.exists() && !mnt.exists());
        // A restart drops the pool's entries and their mounts.
        assert_eq!(pool.clean(), POOL_TARGET);
        assert_eq!(mounts_under(&pool_dir), [pool_mnt]);
    }

    #[test]
    fn release_of_nothing_is_fine() {
        let t = tempfile::tempdir().unwrap();
        let (img, mnt) = (t.path().join("disk.img"), t.path().join("disk"));
        release(&img, &mnt).unwrap();
        fs::create_dir(&mnt).unwrap();
        fs::write(&img, b"x").unwrap();
        release(&img, &mnt).unwrap();
        assert!(!img.exists() && !mnt.exists());
    }
}
