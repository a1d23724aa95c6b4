//! Tests of the layer copy: metadata fidelity, whiteouts and opaque dirs as overlayfs reads
//! them (real overlay mounts, as root), and refusals.

use super::*;
use std::os::unix::fs::{lchown, symlink};

fn is_root() -> bool {
    fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

fn set_mtime(p: &Path, secs: i64) {
    inode::lutimes(p, (secs, 1), (secs, 123_456_789)).unwrap();
}

fn xattr(p: &Path, name: &[u8]) -> Option<Vec<u8>> {
    inode::lgetxattr(p, name).ok()
}

#[test]
fn overlay_bookkeeping_xattrs_are_dropped_but_opaque_kept() {
    assert!(keep_xattr(b"user.overlay.opaque"));
    assert!(keep_xattr(b"user.mine"));
    assert!(keep_xattr(b"security.capability"));
    assert!(!keep_xattr(b"user.overlay.origin"));
    assert!(!keep_xattr(b"user.overlay.impure"));
    assert!(!keep_xattr(b"trusted.overlay.opaque"));
}

#[test]
fn copy_keeps_types_owners_modes_links_xattrs_and_times() {
    if !is_root() {
        eprintln!("skipping: needs root (chown, mknod of whiteouts)");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let (src, dst) = (t.path().join("upper"), t.path().join("layer"));
    fs::create_dir_all(src.join("a")).unwrap();
    fs::create_dir_all(src.join("o")).unwrap();
    let f = src.join("a/f");
    fs::write(&f, b"hello").unwrap();
    lchown(&f, Some(1_001_000), Some(1_001_000)).unwrap();
    fs::set_permissions(&f, fs::Permissions::from_mode(0o4755)).unwrap();
    inode::lsetxattr(&f, b"user.mine", b"v").unwrap();
    set_mtime(&f, 1_600_000_000);
    fs::hard_link(&f, src.join("a/g")).unwrap();
    symlink("../nowhere", src.join("a/l")).unwrap();
    lchown(src.join("a/l"), Some(1_000_000), Some(1_000_000)).unwrap();
    set_mtime(&src.join("a/l"), 1_500_000_000);
    inode::mknod(&src.join("p"), libc::S_IFIFO, 0).unwrap();
    fs::set_permissions(src.join("p"), fs::Permissions::from_mode(0o620)).unwrap();
    let w = src.join("w");
    inode::mknod(&w, libc::S_IFCHR, 0).unwrap();
    fs::hard_link(&w, src.join("o/w2")).unwrap();
    inode::lsetxattr(&src.join("o"), OPAQUE_XATTR, b"y").unwrap();
    inode::lsetxattr(&src.join("o"), b"user.overlay.origin", b"junk").unwrap();
    fs::write(src.join("o/new"), b"").unwrap();
    lchown(src.join("a"), Some(1_000_000), Some(1_000_000)).unwrap();
    fs::set_permissions(src.join("a"), fs::Permissions::from_mode(0o750)).unwrap();
    set_mtime(&src.join("a"), 1_400_000_000);
    set_mtime(&src.join("o"), 1_300_000_000);
    set_mtime(&src, 1_200_000_000);

    let stats = copy_layer(&src, &dst).unwrap();
    assert_eq!(stats.bytes, 5);
    assert_eq!(stats.entries, 9, "a, a/f, a/g, a/l, p, w, o, o/w2, o/new");
    assert!(!t.path().join(".tmp-layer").exists());

    let md = fs::symlink_metadata(dst.join("a/f")).unwrap();
    assert_eq!(fs::read(dst.join("a/f")).unwrap(), b"hello");
    assert_eq!(
        (md.uid(), md.gid(), md.mode() & 0o7777),
        (1_001_000, 1_001_000, 0o4755)
    );
    assert_eq!((md.mtime(), md.mtime_nsec()), (1_600_000_000, 123_456_789));
    assert_eq!(
        xattr(&dst.join("a/f"), b"user.mine").as_deref(),
        Some(&b"v"[..])
    );
    let g = fs::symlink_metadata(dst.join("a/g")).unwrap();
    assert_eq!((g.ino(), g.nlink()), (md.ino(), 2), "hard link kept");

    let l = fs::symlink_metadata(dst.join("a/l")).unwrap();
    assert!(l.file_type().is_symlink());
    assert_eq!(
        fs::read_link(dst.join("a/l")).unwrap(),
        Path::new("../nowhere")
    );
    assert_eq!((l.uid(), l.mtime()), (1_000_000, 1_500_000_000));

    let p = fs::symlink_metadata(dst.join("p")).unwrap();
    assert!(p.file_type().is_fifo());
    assert_eq!(p.mode() & 0o7777, 0o620);
    let w = fs::symlink_metadata(dst.join("w")).unwrap();
    assert!(w.file_type().is_char_device() && w.rdev() == 0, "whiteout");
    let w2 = fs::symlink_metadata(dst.join("o/w2")).unwrap();
    assert_eq!(w2.ino(), w.ino());

    assert_eq!(
        xattr(&dst.join("o"), OPAQUE_XATTR).as_deref(),
        Some(&b"y"[..])
    );
    assert_eq!(xattr(&dst.join("o"), b"user.overlay.origin"), None);
    let a = fs::symlink_metadata(dst.join("a")).unwrap();
    assert_eq!((a.uid(), a.mode() & 0o7777), (1_000_000, 0o750));
    assert_eq!(a.mtime(), 1_400_000_000, "dir times set after its children");
    assert_eq!(
        fs::symlink_metadata(dst.join("o")).unwrap().mtime(),
        1_300_000_000
    );
    assert_eq!(fs::symlink_metadata(&dst).unwrap().mtime(), 1_200_000_000);
}

#[test]
fn device_nodes_fail_the_copy_and_leave_nothing() {
    if !is_root() {
        eprintln!("skipping: needs root (mknod)");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let (src, dst) = (t.path().join("upper"), t.path().join("layer"));
    fs::create_dir_all(src.join("d")).unwrap();
    fs::write(src.join("d/f"), b"x").unwrap();
    inode::mknod(
        &src.join("d/null"),
        libc::S_IFCHR | 0o666,
        libc::makedev(1, 3),
    )
    .unwrap();
    let e = copy_layer(&src, &dst).unwrap_err().to_string();
    assert!(e.contains("device node 1:3"), "{e}");
    assert!(!dst.exists() && !t.path().join(".tmp-layer").exists());
}

#[test]
fn an_existing_layer_is_not_overwritten() {
    let t = tempfile::tempdir().unwrap();
    let (src, dst) = (t.path().join("upper"), t.path().join("layer"));
    fs::create_dir_all(&src).unwrap();
    fs::create_dir_all(dst.join("keep")).unwrap();
    assert!(copy_layer(&src, &dst).is_err());
    assert!(dst.join("keep").is_dir());
}

/// An overlay mount that is detached when dropped (also when an assertion fails).
struct Mounted(PathBuf);

impl Mounted {
    fn overlay(target: &Path, opts: &str) -> Self {
        cove_sys::mount::mount(Some("overlay"), target, Some("overlay"), 0, Some(opts)).unwrap();
        Self(target.to_path_buf())
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = cove_sys::mount::umount2(&self.0, cove_sys::mount::MNT_DETACH);
    }
}

#[test]
fn copied_upper_works_as_a_lower_layer() {
    if !is_root() {
        eprintln!("skipping: needs root (overlay mounts)");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let p = |s: &str| t.path().join(s);
    for d in ["base/d", "upper", "work", "m", "layer-m"] {
        fs::create_dir_all(p(d)).unwrap();
    }
    fs::write(p("base/keep"), b"k").unwrap();
    fs::write(p("base/gone"), b"g").unwrap();
    fs::write(p("base/d/old"), b"o").unwrap();
    {
        // What a sandbox does: delete a base file, replace a base dir, add a file.
        let opts = format!(
            "lowerdir={},upperdir={},workdir={},userxattr",
            p("base").display(),
            p("upper").display(),
            p("work").display()
        );
        let m = Mounted::overlay(&p("m"), &opts);
        fs::remove_file(m.0.join("gone")).unwrap();
        fs::remove_dir_all(m.0.join("d")).unwrap();
        fs::create_dir(m.0.join("d")).unwrap();
        fs::write(m.0.join("d/new"), b"n").unwrap();
        fs::write(m.0.join("added"), b"a").unwrap();
    }
    copy_layer(&p("upper"), &p("layer")).unwrap();
    let opts = format!(
        "lowerdir={}:{},userxattr",
        p("layer").display(),
        p("base").display()
    );
    let m = Mounted::overlay(&p("layer-m"), &opts);
    let mut names: Vec<String> = fs::read_dir(&m.0)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["added", "d", "keep"], "whiteout hides gone");
    let d: Vec<_> = fs::read_dir(m.0.join("d"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(d, ["new"], "opaque dir hides the base's d/old");
    assert_eq!(fs::read(m.0.join("d/new")).unwrap(), b"n");
}

#[test]
fn remove_takes_the_layer_and_an_unfinished_copy() {
    let t = tempfile::tempdir().unwrap();
    let dst = t.path().join("l1");
    fs::create_dir_all(dst.join("x")).unwrap();
    fs::create_dir_all(t.path().join(".tmp-l1/y")).unwrap();
    fs::create_dir_all(t.path().join("l2")).unwrap();
    remove(&dst).unwrap();
    assert!(!dst.exists() && !t.path().join(".tmp-l1").exists());
    assert!(t.path().join("l2").exists(), "other layers untouched");
    remove(&dst).unwrap();
}
