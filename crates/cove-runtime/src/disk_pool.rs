//! A warm pool of formatted, already mounted disk images of the default size under
//! `<data-dir>/disk-pool/`, refilled by a background thread: a create takes one with a rename
//! of the image and a move of its mount, so neither `mkfs` nor a loop attach and ext4 mount
//! (which waits for a flush of the data dir's filesystem) is on the create path.
//!
//! An entry is `<stem>.img` (ready) with its filesystem mounted at `mnt/<stem>/` (a separate
//! mount of its own, see [`Stage::prepare_dir`]; images stay outside it, as a rename cannot
//! cross mounts). While being made, the image is `.tmp-<pid>-<n>.img` and becomes
//! `<stem>.img` only once mounted, so a crash never leaves a half-made ready entry. Taking claims the image by renaming it away
//! (atomic: two takers never get the same one), then moves the mount. A start drops every
//! entry left by an earlier process and refills.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// What the pool does with images: the real one formats with `mkfs.ext4` and mounts through a
/// loop device; tests use plain files and directories.
pub trait Stage: Send + Sync {
    /// Creates `img` (absent) as a formatted image of `gib` GiB.
    fn format(&self, img: &Path, gib: u32) -> io::Result<()>;
    /// Mounts the image `img` at the empty directory `dir`.
    fn mount(&self, img: &Path, dir: &Path) -> io::Result<()>;
    /// Moves the mount at `from` to the empty directory `to`.
    fn move_mount(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Detaches whatever is mounted at `dir` (nothing mounted is fine).
    fn unmount(&self, dir: &Path) -> io::Result<()>;
    /// Prepares the directory the pool mounts its images under (so mounts can be moved out
    /// of it).
    fn prepare_dir(&self, dir: &Path) -> io::Result<()>;
}

/// Bytes in `gib` GiB.
pub fn gib_bytes(gib: u32) -> u64 {
    u64::from(gib) << 30
}

/// The pool of one directory and one image size.
pub struct Pool {
    dir: PathBuf,
    gib: u32,
    target: usize,
    stage: Arc<dyn Stage>,
    kicked: Mutex<bool>,
    wake: Condvar,
}

static SEQ: AtomicU64 = AtomicU64::new(0);

/// A name part no other call (in any process) returns.
pub fn unique() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "{}-{nanos}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

impl Pool {
    /// A pool of `target` images of `gib` GiB in `dir` (created when first filled).
    pub fn new(dir: PathBuf, gib: u32, target: usize, stage: Arc<dyn Stage>) -> Self {
        Self {
            dir,
            gib,
            target,
            stage,
            kicked: Mutex::new(false),
            wake: Condvar::new(),
        }
    }

    /// Size of the pool's images, GiB.
    pub fn gib(&self) -> u32 {
        self.gib
    }

    /// Where the pool mounts its images.
    pub fn mounts(&self) -> PathBuf {
        self.dir.join("mnt")
    }

    fn mount_of(&self, stem: &str) -> PathBuf {
        self.mounts().join(stem)
    }

    /// Stems of the ready entries, in no particular order.
    pub fn ready(&self) -> Vec<String> {
        let Ok(rd) = fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        rd.filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let stem = name.strip_suffix(".img")?;
                (!stem.starts_with('.')).then(|| stem.to_string())
            })
            .collect()
    }

    /// Moves a ready entry to a sandbox: its image to `img` (same filesystem) and its mount to
    /// `mnt` (created if missing), then wakes the refill. `false` if none is ready (the caller
    /// formats its own). If the mount cannot be moved, the image is still the caller's, left
    /// unmounted (the caller mounts it).
    pub fn take(&self, img: &Path, mnt: &Path) -> io::Result<bool> {
        let mut got = false;
        for stem in self.ready() {
            let from = self.mount_of(&stem);
            match fs::rename(self.dir.join(format!("{stem}.img")), img) {
                Ok(()) => {}
                // Taken by someone else meanwhile.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            }
            got = true;
            fs::create_dir_all(mnt)?;
            if let Err(e) = self.stage.move_mount(&from, mnt) {
                tracing::warn!(
                    "disk pool: moving {} to {} failed ({e}); mounting the image afresh",
                    from.display(),
                    mnt.display()
                );
                self.stage.unmount(&from)?;
            }
            let _ = fs::remove_dir(&from);
            break;
        }
        self.kick();
        Ok(got)
    }

    /// Makes one ready entry.
    fn make_one(&self) -> io::Result<()> {
        let tmp = self.dir.join(format!(
            ".tmp-{}-{}.img",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let stem = unique();
        let mnt = self.mount_of(&stem);
        let made = self.stage.format(&tmp, self.gib).and_then(|()| {
            fs::create_dir(&mnt)?;
            self.stage.mount(&tmp, &mnt)
        });
        if let Err(e) = made {
            let _ = self.stage.unmount(&mnt);
            let _ = fs::remove_dir(&mnt);
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        fs::rename(&tmp, self.dir.join(format!("{stem}.img")))
    }

    /// Makes entries until `target` are ready; returns how many it made.
    pub fn fill(&self) -> io::Result<usize> {
        // Not create_dir_all: a pool whose data dir is gone (a test's) stays gone.
        for d in [self.dir.clone(), self.mounts()] {
            match fs::create_dir(&d) {
                Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
                _ => {}
            }
        }
        let mut made = 0;
        while self.ready().len() < self.target {
            self.make_one()?;
            made += 1;
        }
        Ok(made)
    }

    /// Removes every entry, ready or half-made, that no live process is making (a start
    /// inherits them from an earlier process); returns how many images it removed.
    pub fn clean(&self) -> usize {
        let Ok(rd) = fs::read_dir(&self.dir) else {
            return 0;
        };
        let names: Vec<String> = rd
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .collect();
        let live = |name: &str| {
            name.strip_prefix(".tmp-")
                .and_then(|rest| rest.split('-').next()?.parse::<u32>().ok())
                .is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists())
        };
        let mut removed = 0;
        if let Ok(rd) = fs::read_dir(self.mounts()) {
            for e in rd.filter_map(|e| e.ok()) {
                let _ = self.stage.unmount(&e.path());
                let _ = fs::remove_dir(e.path());
            }
        }
        for name in &names {
            if name.ends_with(".img") && !live(name) && fs::remove_file(self.dir.join(name)).is_ok()
            {
                removed += 1;
            }
        }
        removed
    }

    /// Wakes the refill thread.
    pub fn kick(&self) {
        *self.kicked.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.wake.notify_one();
    }

    /// Empties the pool (see [`Pool::clean`]), then keeps it full from a thread of its own for
    /// the life of the process (woken by [`Pool::take`]; after a failure it retries a minute
    /// later).
    pub fn spawn_refill(self: Arc<Self>) -> io::Result<()> {
        fs::create_dir_all(self.mounts())?;
        self.stage.prepare_dir(&self.mounts())?;
        self.clean();
        std::thread::Builder::new()
            .name("cove-disk-pool".into())
            .spawn(move || {
                // Refilling must not slow down the creates it serves (2 cores are common).
                if let Err(e) = cove_sys::sched::background_thread() {
                    tracing::debug!("disk pool: cannot lower the refill thread's priority: {e}");
                }
                loop {
                    let wait = match self.fill() {
                        Ok(_) => Duration::from_secs(600),
                        Err(e) => {
                            tracing::warn!(
                                "disk pool {}: making an image failed: {e}",
                                self.dir.display()
                            );
                            Duration::from_secs(60)
                        }
                    };
                    let g = self.kicked.lock().unwrap_or_else(|p| p.into_inner());
                    let (mut g, _) = self
                        .wake
                        .wait_timeout_while(g, wait, |k| !*k)
                        .unwrap_or_else(|p| p.into_inner());
                    *g = false;
                }
            })
            .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicUsize};

    /// Images are sparse files; "mounting" writes a marker file into the directory, a move
    /// is a rename of the directory's contents, "unmounting" empties it.
    #[derive(Default)]
    struct FakeStage {
        formats: AtomicUsize,
        fail_format: AtomicBool,
        fail_move: AtomicBool,
    }

    impl Stage for FakeStage {
        fn format(&self, img: &Path, gib: u32) -> io::Result<()> {
            self.formats.fetch_add(1, Ordering::SeqCst);
            let f = fs::File::create_new(img)?;
            if self.fail_format.load(Ordering::SeqCst) {
                return Err(io::Error::other("mkfs failed"));
            }
            f.set_len(gib_bytes(gib))
        }
        fn mount(&self, img: &Path, dir: &Path) -> io::Result<()> {
            fs::write(dir.join("mounted"), img.to_string_lossy().as_bytes())
        }
        fn move_mount(&self, from: &Path, to: &Path) -> io::Result<()> {
            if self.fail_move.load(Ordering::SeqCst) {
                return Err(io::Error::from_raw_os_error(libc::EINVAL));
            }
            fs::rename(from.join("mounted"), to.join("mounted"))
        }
        fn unmount(&self, dir: &Path) -> io::Result<()> {
            match fs::remove_file(dir.join("mounted")) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            }
        }
        fn prepare_dir(&self, _dir: &Path) -> io::Result<()> {
            Ok(())
        }
    }

    fn pool(dir: &Path, target: usize) -> (Pool, Arc<FakeStage>) {
        let f = Arc::new(FakeStage::default());
        (Pool::new(dir.join("pool"), 3, target, f.clone()), f)
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn fills_to_target_and_take_moves_image_and_mount() {
        let t = tempfile::tempdir().unwrap();
        let (p, f) = pool(t.path(), 2);
        assert_eq!(p.fill().unwrap(), 2);
        assert_eq!(p.fill().unwrap(), 0, "already full");
        assert_eq!(f.formats.load(Ordering::SeqCst), 2);
        let (img, mnt) = (t.path().join("disk.img"), t.path().join("sb/disk"));
        assert!(p.take(&img, &mnt).unwrap());
        assert_eq!(fs::metadata(&img).unwrap().len(), 3 << 30);
        let marker = fs::read_to_string(mnt.join("mounted")).unwrap();
        assert!(marker.contains("/pool/.tmp-"), "{marker}");
        assert_eq!(p.ready().len(), 1);
        assert_eq!(
            entries(&t.path().join("pool")).len(),
            2,
            "one .img, and mnt/"
        );
        assert_eq!(entries(&p.mounts()).len(), 1, "its mount point");
        assert!(p
            .take(&t.path().join("b.img"), &t.path().join("b"))
            .unwrap());
        assert!(!p
            .take(&t.path().join("c.img"), &t.path().join("c"))
            .unwrap());
        assert!(!t.path().join("c.img").exists());
        assert_eq!(entries(&t.path().join("pool")), ["mnt"]);
        assert!(entries(&p.mounts()).is_empty());
        assert_eq!(p.fill().unwrap(), 2, "refilled");
    }

    #[test]
    fn a_failed_move_leaves_the_image_to_the_taker_unmounted() {
        let t = tempfile::tempdir().unwrap();
        let (p, f) = pool(t.path(), 1);
        p.fill().unwrap();
        f.fail_move.store(true, Ordering::SeqCst);
        let (img, mnt) = (t.path().join("disk.img"), t.path().join("disk"));
        assert!(p.take(&img, &mnt).unwrap());
        assert!(img.is_file());
        assert!(!mnt.join("mounted").exists());
        assert!(entries(&p.mounts()).is_empty(), "pool mount undone");
    }

    #[test]
    fn a_failed_format_leaves_nothing() {
        let t = tempfile::tempdir().unwrap();
        let (p, f) = pool(t.path(), 1);
        f.fail_format.store(true, Ordering::SeqCst);
        let e = p.fill().unwrap_err();
        assert!(e.to_string().contains("mkfs failed"), "{e}");
        assert_eq!(entries(&t.path().join("pool")), ["mnt"]);
        assert!(entries(&p.mounts()).is_empty());
        f.fail_format.store(false, Ordering::SeqCst);
        assert_eq!(p.fill().unwrap(), 1);
    }

    #[test]
    fn clean_drops_everything_but_live_temps() {
        let t = tempfile::tempdir().unwrap();
        let (p, _) = pool(t.path(), 2);
        p.fill().unwrap();
        let dir = t.path().join("pool");
        // pid_max is at most 2^22, so this pid cannot exist.
        fs::write(dir.join(".tmp-99999999-0.img"), b"").unwrap();
        let live = dir.join(format!(".tmp-{}-7.img", std::process::id()));
        fs::write(&live, b"").unwrap();
        fs::create_dir(p.mounts().join("orphan")).unwrap();
        assert_eq!(p.clean(), 3, "two ready images and a dead temp");
        assert_eq!(
            entries(&dir),
            [live.file_name().unwrap().to_str().unwrap(), "mnt"]
        );
        assert!(entries(&p.mounts()).is_empty());
        // Temp files are never taken.
        assert!(!p
            .take(&t.path().join("x.img"), &t.path().join("x"))
            .unwrap());
    }

    #[test]
    fn refill_thread_refills_after_take() {
        let t = tempfile::tempdir().unwrap();
        let (p, _) = pool(t.path(), 2);
        let p = Arc::new(p);
        p.clone().spawn_refill().unwrap();
        let full = |p: &Pool| {
            (0..500).any(|_| {
                std::thread::sleep(Duration::from_millis(10));
                p.ready().len() == 2
            })
        };
        assert!(full(&p));
        assert!(p
            .take(&t.path().join("a.img"), &t.path().join("a"))
            .unwrap());
        assert!(full(&p), "refilled after a take");
    }
}
