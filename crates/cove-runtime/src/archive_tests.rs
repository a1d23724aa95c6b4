//! Round trips of `archive::pack`/`unpack` on real temp dirs, and hostile archives refused.

use super::*;
use std::collections::BTreeMap;
use std::os::unix::fs::symlink;

fn is_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .and_then(|l| l.split_whitespace().nth(2))
        == Some("0")
}

/// Everything an archive must keep, per relative path.
fn describe(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut inodes: HashMap<u64, String> = HashMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let md = fs::symlink_metadata(&p).unwrap();
        let rel = p.strip_prefix(root).unwrap().display().to_string();
        let ft = md.file_type();
        let mut xs: Vec<String> = inode::llistxattr(&p)
            .map(|names| {
                names
                    .iter()
                    .map(|n| {
                        let v = inode::lgetxattr(&p, n).unwrap();
                        format!(
                            "{}={}",
                            String::from_utf8_lossy(n),
                            String::from_utf8_lossy(&v)
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        xs.sort();
        let kind = if ft.is_dir() {
            let mut kids: Vec<_> = fs::read_dir(&p)
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            kids.sort();
            stack.extend(kids);
            "dir".to_string()
        } else if ft.is_symlink() {
            format!("link->{}", fs::read_link(&p).unwrap().display())
        } else if ft.is_file() {
            let first = inodes
                .entry(md.ino())
                .or_insert_with(|| rel.clone())
                .clone();
            format!("file {:?} first={first}", fs::read(&p).unwrap())
        } else if ft.is_char_device() {
            format!("char {}", md.rdev())
        } else {
            format!("other {:?}", ft)
        };
        let mode = if ft.is_symlink() {
            0
        } else {
            md.mode() & 0o7777
        };
        out.insert(
            rel,
            format!(
                "{kind} mode={mode:o} owner={}:{} mtime={} xattrs={xs:?}",
                md.uid(),
                md.gid(),
                md.mtime()
            ),
        );
    }
    out
}

fn set_mtime(p: &Path, secs: i64) {
    inode::lutimes(p, (secs, 0), (secs, 0)).unwrap();
}

/// A tree with one of everything that needs no privilege.
fn sample(root: &Path) {
    fs::create_dir_all(root.join("home/daytona/empty")).unwrap();
    fs::write(root.join("home/daytona/a.txt"), "hello\n").unwrap();
    let bin: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    fs::write(root.join("home/daytona/blob.bin"), &bin).unwrap();
    fs::write(root.join("home/daytona/secret"), "s").unwrap();
    fs::set_permissions(
        root.join("home/daytona/secret"),
        fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    fs::set_permissions(
        root.join("home/daytona/empty"),
        fs::Permissions::from_mode(0o555),
    )
    .unwrap();
    symlink("a.txt", root.join("home/daytona/rel-link")).unwrap();
    symlink("/nowhere/at/all", root.join("home/daytona/dangling")).unwrap();
    fs::hard_link(
        root.join("home/daytona/a.txt"),
        root.join("home/daytona/hard"),
    )
    .unwrap();
    inode::mknod(&root.join("home/fifo"), libc::S_IFIFO | 0o640, 0).unwrap();
    let long = "x".repeat(120);
    fs::create_dir_all(root.join(&long).join(&long)).unwrap();
    fs::write(root.join(&long).join(&long).join(&long), "deep").unwrap();
    // user.* xattrs (overlay's opaque marker among them) where the filesystem has them.
    if inode::lsetxattr(&root.join("home"), b"user.overlay.opaque", b"y").is_ok() {
        inode::lsetxattr(&root.join("home/daytona/a.txt"), b"user.note", b"kept").unwrap();
        // Binary values (overlay's origin is a file handle): newlines, '=', NULs, high bytes.
        let binary = b"\n=\0\xff 12 x=y\n\n";
        inode::lsetxattr(&root.join("home/daytona"), b"user.overlay.origin", binary).unwrap();
    }
    for (p, t) in [
        ("home/daytona/a.txt", 1_600_000_000),
        ("home/daytona/rel-link", 1_500_000_000),
        ("home/daytona/empty", 1_400_000_000),
        ("home", 1_300_000_000),
    ] {
        set_mtime(&root.join(p), t);
    }
}

fn round_trip(src: &Path) -> (Stats, Stats, PathBuf, tempfile::TempDir) {
    let (buf, packed) = pack(src, Vec::new(), LEVEL).unwrap();
    let t = tempfile::tempdir().unwrap();
    let dst = t.path().join("upper");
    fs::create_dir(&dst).unwrap();
    let unpacked = unpack(&buf[..], &dst).unwrap();
    (packed, unpacked, dst, t)
}

#[test]
fn round_trip_keeps_everything() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("upper");
    fs::create_dir(&src).unwrap();
    sample(&src);
    fs::set_permissions(&src, fs::Permissions::from_mode(0o751)).unwrap();
    let (packed, unpacked, dst, _keep) = round_trip(&src);
    assert_eq!(packed, unpacked);
    assert_eq!(packed.file_bytes, 6 + 300_000 + 1 + 4);
    assert_eq!(describe(&src), describe(&dst));
    let hard = fs::metadata(dst.join("home/daytona/hard")).unwrap();
    assert_eq!(
        hard.ino(),
        fs::metadata(dst.join("home/daytona/a.txt")).unwrap().ino()
    );
}

#[test]
fn round_trip_keeps_whiteouts_owners_and_privileged_xattrs() {
    if !is_root() {
        eprintln!("skipped: needs root (mknod of a whiteout, chown)");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("upper");
    fs::create_dir(&src).unwrap();
    sample(&src);
    fs::create_dir(src.join("etc")).unwrap();
    inode::mknod(&src.join("etc/motd"), libc::S_IFCHR, 0).unwrap();
    fs::write(src.join("etc/setuid"), "x").unwrap();
    let shifted = 1_000_000 + 1001;
    for p in [
        "etc/setuid",
        "home/daytona/secret",
        "home/daytona/rel-link",
        "etc",
    ] {
        std::os::unix::fs::lchown(src.join(p), Some(shifted), Some(shifted)).unwrap();
    }
    fs::set_permissions(src.join("etc/setuid"), fs::Permissions::from_mode(0o4755)).unwrap();
    inode::lsetxattr(&src.join("etc"), b"trusted.overlay.opaque", b"y").unwrap();
    let (_, _, dst, _keep) = round_trip(&src);
    assert_eq!(describe(&src), describe(&dst));
    let md = fs::symlink_metadata(dst.join("etc/motd")).unwrap();
    assert!(md.file_type().is_char_device() && md.rdev() == 0);
    assert_eq!(
        fs::metadata(dst.join("etc/setuid")).unwrap().mode() & 0o7777,
        0o4755
    );
}

/// An uncompressed tar from `build`, compressed for `unpack`.
fn hostile(build: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    build(&mut b);
    let raw = b.into_inner().unwrap();
    zstd::encode_all(&raw[..], 1).unwrap()
}

fn header(kind: EntryType, size: u64) -> Header {
    let mut h = Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_size(size);
    h
}

#[test]
fn unpack_refuses_escapes() {
    let t = tempfile::tempdir().unwrap();
    let outside = t.path().join("outside");
    fs::create_dir(&outside).unwrap();
    let dst = t.path().join("upper");
    fs::create_dir(&dst).unwrap();

    // `..` in a name (written raw: the builder refuses it).
    let dotdot = hostile(|b| {
        let mut h = header(EntryType::Regular, 1);
        h.as_old_mut().name[..9].copy_from_slice(b"../escape");
        h.set_cksum();
        b.append(&h, &b"x"[..]).unwrap();
    });
    let e = unpack(&dotdot[..], &dst).unwrap_err().to_string();
    assert!(e.contains("../escape") && e.contains("relative"), "{e}");
    assert!(!t.path().join("escape").exists());

    // A file written through a symlink the archive planted.
    let through = hostile(|b| {
        let mut h = header(EntryType::Symlink, 0);
        b.append_link(&mut h, "link", &outside).unwrap();
        let mut h = header(EntryType::Regular, 1);
        b.append_data(&mut h, "link/evil", &b"x"[..]).unwrap();
    });
    clear_dir(&dst).unwrap();
    let e = unpack(&through[..], &dst).unwrap_err().to_string();
    assert!(
        e.contains("link/evil") && e.contains("below a symlink"),
        "{e}"
    );
    assert!(!outside.join("evil").exists());

    // A hard link to a file outside.
    fs::write(outside.join("target"), "t").unwrap();
    let hard = hostile(|b| {
        let mut h = header(EntryType::Link, 0);
        h.as_old_mut().name[..4].copy_from_slice(b"hard");
        h.as_old_mut().linkname[..13].copy_from_slice(b"../outside/ta");
        h.set_cksum();
        b.append(&h, io::empty()).unwrap();
    });
    clear_dir(&dst).unwrap();
    let e = unpack(&hard[..], &dst).unwrap_err().to_string();
    assert!(e.contains("relative"), "{e}");
    assert_eq!(fs::read_dir(&dst).unwrap().count(), 0);

    // A device node other than a whiteout (e.g. a disk).
    let disk = hostile(|b| {
        let mut h = header(EntryType::Block, 0);
        h.set_device_major(8).unwrap();
        h.set_device_minor(0).unwrap();
        b.append_data(&mut h, "sda", io::empty()).unwrap();
    });
    let e = unpack(&disk[..], &dst).unwrap_err().to_string();
    assert!(e.contains("sda") && e.contains("8:0 refused"), "{e}");
    assert!(!dst.join("sda").exists());
}

#[test]
fn unpack_reports_a_truncated_archive() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    fs::create_dir(&src).unwrap();
    let data: Vec<u8> = (0..2_000_000u32).map(|i| (i % 253) as u8).collect();
    fs::write(src.join("big"), &data).unwrap();
    let (buf, _) = pack(&src, Vec::new(), LEVEL).unwrap();
    let dst = t.path().join("dst");
    fs::create_dir(&dst).unwrap();
    assert!(unpack(&buf[..buf.len() / 2], &dst).is_err());
}

#[test]
fn clear_dir_keeps_the_dir() {
    let t = tempfile::tempdir().unwrap();
    sample(t.path());
    clear_dir(t.path()).unwrap();
    assert!(t.path().is_dir());
    assert_eq!(fs::read_dir(t.path()).unwrap().count(), 0);
}
