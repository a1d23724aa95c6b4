//! Copying a sandbox's overlay upper dir into a new read-only image layer (a snapshot).
//!
//! The copy keeps everything overlayfs and the sandbox rely on: file types, contents, modes
//! (setuid included), ownership (already shifted into the sandbox range), symlinks, hard
//! links, whiteouts (char device 0:0), the opaque-dir xattr (`user.overlay.opaque`; sandboxes
//! mount overlay with `userxattr`), other xattrs, and access/modification times. Other
//! `user.overlay.*` / `trusted.overlay.*` xattrs (origin, impure, …) describe the sandbox's
//! own overlay and are dropped: they mean nothing in a lower layer.
//!
//! The source belongs to an untrusted sandbox (frozen or stopped while we copy), so nothing
//! is ever followed: directories are opened `O_NOFOLLOW` and read through `/proc/self/fd/N`,
//! files are opened `O_NOFOLLOW` and checked to be the inode that was stat'ed, and anything
//! that is not a plain file, dir, symlink, fifo, socket or whiteout fails the copy.
//!
//! The copy is made in `.tmp-<name>` next to `dst` and renamed into place, so `dst` exists
//! only complete.

use std::collections::HashMap;
use std::fs::{self, File, Metadata};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use cove_sys::inode;

use crate::error::{IoContext, RuntimeError};
use crate::fsutil::remove_tree;

/// The xattr that marks an overlay dir opaque when mounted with `userxattr`.
pub const OPAQUE_XATTR: &[u8] = b"user.overlay.opaque";

/// What a copy produced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LayerStats {
    /// Bytes of regular-file content (each hard-linked inode counted once).
    pub bytes: u64,
    /// Entries created (hard links included, the root excluded).
    pub entries: u64,
}

/// Whether xattr `name` is carried into the layer (see the module docs).
pub fn keep_xattr(name: &[u8]) -> bool {
    name == OPAQUE_XATTR
        || !(name.starts_with(b"user.overlay.") || name.starts_with(b"trusted.overlay."))
}

/// Copies the tree at `src` to `dst` (which must not exist) through `.tmp-<name of dst>`;
/// on failure nothing is left at either path.
pub fn copy_layer(src: &Path, dst: &Path) -> Result<LayerStats, RuntimeError> {
    let tmp = tmp_path(dst)?;
    if fs::symlink_metadata(dst).is_ok() {
        return Err(RuntimeError::io(
            "create layer",
            dst,
            std::io::ErrorKind::AlreadyExists.into(),
        ));
    }
    remove_tree(&tmp)?;
    let result = copy_tree(src, &tmp).and_then(|stats| {
        fs::rename(&tmp, dst).ctx("rename into place", dst)?;
        Ok(stats)
    });
    if result.is_err() {
        let _ = remove_tree(&tmp);
    }
    result
}

/// Where the copy to `dst` is made before it is renamed into place.
fn tmp_path(dst: &Path) -> Result<PathBuf, RuntimeError> {
    let name = dst
        .file_name()
        .ok_or_else(|| RuntimeError::Other(format!("bad layer path {}", dst.display())))?;
    Ok(dst.with_file_name(format!(".tmp-{}", name.to_string_lossy())))
}

/// Removes layer `dst` and any unfinished copy of it; missing ones are fine.
pub fn remove(dst: &Path) -> Result<(), RuntimeError> {
    remove_tree(&tmp_path(dst)?)?;
    remove_tree(dst)
}

/// A source directory held open, so that its entries are reached through the fd and not
/// through a path the sandbox could have swapped for a symlink.
struct SrcDir(Rc<File>);

impl SrcDir {
    fn open(path: &Path, expect: Option<&Metadata>) -> Result<Self, RuntimeError> {
        let f = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW)
            .open(path)
            .ctx("open dir", path)?;
        check_same(&f, path, expect)?;
        Ok(Self(Rc::new(f)))
    }
    fn path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/self/fd/{}", self.0.as_raw_fd()))
    }
}

/// Fails unless the opened `f` is the inode `expect` described (it was not swapped).
fn check_same(f: &File, path: &Path, expect: Option<&Metadata>) -> Result<(), RuntimeError> {
    let Some(want) = expect else { return Ok(()) };
    let got = f.metadata().ctx("stat", path)?;
    if (got.dev(), got.ino()) != (want.dev(), want.ino()) {
        return Err(RuntimeError::Other(format!(
            "{} changed while it was being copied",
            path.display()
        )));
    }
    Ok(())
}

struct Copier {
    dev: u64,
    /// (dev, ino) of a multiply-linked source inode → its first copy.
    links: HashMap<(u64, u64), PathBuf>,
    /// Directories created, in creation order (their times are set last, deepest first).
    dirs: Vec<(PathBuf, Metadata)>,
    stats: LayerStats,
}

fn copy_tree(src: &Path, dst: &Path) -> Result<LayerStats, RuntimeError> {
    let root = SrcDir::open(src, None)?;
    let md = root.0.metadata().ctx("stat", src)?;
    let mut c = Copier {
        dev: md.dev(),
        links: HashMap::new(),
        dirs: Vec::new(),
        stats: LayerStats::default(),
    };
    fs::create_dir(dst).ctx("create", dst)?;
    // The root is reached by its own (trusted) path: /proc/self/fd/N is itself a link.
    c.attrs(src, dst, &md)?;
    c.dirs.push((dst.to_path_buf(), md));
    let mut stack = vec![(root, dst.to_path_buf())];
    while let Some((dir, dst_dir)) = stack.pop() {
        let base = dir.path();
        for entry in fs::read_dir(&base).ctx("read dir", &base)? {
            let name = entry.ctx("read dir", &base)?.file_name();
            let (s, d) = (base.join(&name), dst_dir.join(&name));
            if let Some(sub) = c.entry(&s, &d)? {
                stack.push((sub, d));
            }
        }
    }
    for (d, md) in c.dirs.iter().rev() {
        set_times(d, md)?;
    }
    Ok(c.stats)
}

impl Copier {
    /// Copies one entry; returns the opened source dir when it is a directory to descend.
    fn entry(&mut self, s: &Path, d: &Path) -> Result<Option<SrcDir>, RuntimeError> {
        let md = fs::symlink_metadata(s).ctx("stat", s)?;
        let ft = md.file_type();
        if md.dev() != self.dev {
            // A mount point inside the upper dir (never made by overlayfs): not ours to copy.
            return Ok(None);
        }
        self.stats.entries += 1;
        if ft.is_dir() {
            let sub = SrcDir::open(s, Some(&md))?;
            fs::create_dir(d).ctx("create", d)?;
            self.attrs(s, d, &md)?;
            self.dirs.push((d.to_path_buf(), md));
            return Ok(Some(sub));
        }
        let key = (md.dev(), md.ino());
        if md.nlink() > 1 {
            if let Some(first) = self.links.get(&key) {
                fs::hard_link(first, d).ctx("link", d)?;
                return Ok(None);
            }
        }
        let perm = md.mode() & 0o7777;
        if ft.is_file() {
            let mut from = fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW | libc::O_NOCTTY | libc::O_NONBLOCK)
                .open(s)
                .ctx("open", s)?;
            check_same(&from, s, Some(&md))?;
            let mut to = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(d)
                .ctx("create", d)?;
            self.stats.bytes += std::io::copy(&mut from, &mut to).ctx("copy", d)?;
        } else if ft.is_symlink() {
            let target = fs::read_link(s).ctx("readlink", s)?;
            std::os::unix::fs::symlink(&target, d).ctx("symlink", d)?;
        } else if ft.is_char_device() && md.rdev() == 0 {
            inode::mknod(d, libc::S_IFCHR | perm, 0).ctx("mknod whiteout", d)?;
        } else if ft.is_fifo() {
            inode::mknod(d, libc::S_IFIFO | perm, 0).ctx("mknod fifo", d)?;
        } else if ft.is_socket() {
            inode::mknod(d, libc::S_IFSOCK | perm, 0).ctx("mknod socket", d)?;
        } else {
            return Err(RuntimeError::Other(format!(
                "{}: device node {}:{} in a sandbox's files (only whiteouts 0:0 are expected)",
                s.display(),
                libc::major(md.rdev()),
                libc::minor(md.rdev())
            )));
        }
        self.attrs(s, d, &md)?;
        set_times(d, &md)?;
        if md.nlink() > 1 {
            self.links.insert(key, d.to_path_buf());
        }
        Ok(None)
    }

    /// Owner, mode (after the chown, which clears setuid/setgid) and xattrs of `s` onto `d`.
    fn attrs(&self, s: &Path, d: &Path, md: &Metadata) -> Result<(), RuntimeError> {
        std::os::unix::fs::lchown(d, Some(md.uid()), Some(md.gid())).ctx("lchown", d)?;
        let symlink = md.file_type().is_symlink();
        if !symlink {
            fs::set_permissions(d, fs::Permissions::from_mode(md.mode() & 0o7777))
                .ctx("chmod", d)?;
        }
        let names = match inode::llistxattr(s) {
            Ok(n) => n,
            Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => return Ok(()),
            Err(e) => return Err(RuntimeError::io("list xattrs", s, e)),
        };
        for name in names.iter().filter(|n| keep_xattr(n)) {
            let value = match inode::lgetxattr(s, name) {
                Ok(v) => v,
                // Removed between the list and the read.
                Err(e) if e.raw_os_error() == Some(libc::ENODATA) => continue,
                Err(e) => return Err(RuntimeError::io("read xattr", s, e)),
            };
            inode::lsetxattr(d, name, &value).map_err(|e| {
                RuntimeError::Other(format!(
                    "set xattr {} on {}: {e}",
                    String::from_utf8_lossy(name),
                    d.display()
                ))
            })?;
        }
        Ok(())
    }
}

fn set_times(d: &Path, md: &Metadata) -> Result<(), RuntimeError> {
    inode::lutimes(
        d,
        (md.atime(), md.atime_nsec()),
        (md.mtime(), md.mtime_nsec()),
    )
    .ctx("set times", d)
}

#[cfg(test)]
mod tests;
