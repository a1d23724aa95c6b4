//! Archives of a sandbox's files (its overlay upper dir): a tar stream compressed with zstd,
//! written and read as streams so an archive is never held in memory.
//!
//! Everything an overlay upper dir holds survives a round trip: regular files, directories
//! (empty ones too), symlinks, hard links, FIFOs and device nodes (a 0:0 character device is
//! an overlay whiteout), numeric owners (the shifted uids, e.g. 1000000+), mode bits
//! (setuid included), every extended attribute (`user.overlay.opaque` on opaque dirs,
//! `security.capability`, ACLs) as PAX `SCHILY.xattr.*` records, and mtimes (whole seconds).
//! Sockets are skipped: they mean nothing once the processes that bound them are gone. The
//! root entry `./` carries the dir's own owner, mode and xattrs.
//!
//! Unpacking trusts nothing in the stream: paths must be relative without `..`, nothing is
//! written below a symlink the archive itself created, hard links must point at an entry
//! unpacked before them, and the only device node made is the 0:0 whiteout.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use cove_sys::inode;
use tar::{EntryType, Header};

/// Prefix of the PAX records holding extended attributes, the value hex-encoded. Not GNU tar's
/// `SCHILY.xattr.` with raw bytes: xattr values are binary (overlay's `origin` is a file
/// handle) and the `tar` crate's PAX reader splits records at every `\n` byte, so a raw value
/// holding one made the archive unreadable.
const XATTR_PAX: &str = "COVE.xattr.hex.";

fn hex(bytes: &[u8]) -> Vec<u8> {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    bytes
        .iter()
        .flat_map(|b| [DIGITS[usize::from(b >> 4)], DIGITS[usize::from(b & 15)]])
        .collect()
}

fn unhex(text: &[u8]) -> Option<Vec<u8>> {
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    if !text.len().is_multiple_of(2) {
        return None;
    }
    text.chunks(2)
        .map(|p| Some(digit(p[0])? << 4 | digit(p[1])?))
        .collect()
}
/// Read/write buffer for file data.
const BUF: usize = 1 << 20;

/// zstd level of archives. Level 1 on the calling thread: written files are often already
/// compressed, and on incompressible data zstd's worker threads cost more than they save
/// (measured: 1 GiB of random bytes packs in ~0.5 s single-threaded, ~1.1 s with 2 workers).
pub const LEVEL: i32 = 1;

/// A failed pack or unpack: what was done, to which path, and why.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("archive: {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("archive: bad entry {path:?}: {why}")]
    Bad { path: String, why: String },
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> ArchiveError + 'a {
    move |source| ArchiveError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

fn bad(path: impl std::fmt::Debug, why: impl Into<String>) -> ArchiveError {
    ArchiveError::Bad {
        path: format!("{path:?}").trim_matches('"').to_string(),
        why: why.into(),
    }
}

/// What a pack or unpack went through.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// Entries (the root dir included).
    pub entries: u64,
    /// Bytes of regular-file data.
    pub file_bytes: u64,
}

/// Writes `dir` as a tar compressed with zstd at `level` ([`LEVEL`]) to `out`; returns `out`
/// once the archive is complete.
pub fn pack<W: Write>(dir: &Path, out: W, level: i32) -> Result<(W, Stats), ArchiveError> {
    let enc = zstd::stream::write::Encoder::new(out, level).map_err(io_err("zstd", dir))?;
    let mut p = Packer {
        tar: tar::Builder::new(enc),
        links: HashMap::new(),
        stats: Stats::default(),
    };
    let root = fs::symlink_metadata(dir).map_err(io_err("stat", dir))?;
    if !root.is_dir() {
        return Err(bad(dir, "is not a directory"));
    }
    p.entry(dir, Path::new("./"), &root)?;
    p.walk(dir, Path::new(""))?;
    let stats = p.stats;
    let enc = p.tar.into_inner().map_err(io_err("finish tar", dir))?;
    let out = enc.finish().map_err(io_err("finish zstd", dir))?;
    Ok((out, stats))
}

struct Packer<W: Write> {
    tar: tar::Builder<W>,
    /// (dev, inode) of multiply-linked non-directories → the name they were archived under.
    links: HashMap<(u64, u64), PathBuf>,
    stats: Stats,
}

impl<W: Write> Packer<W> {
    fn walk(&mut self, dir: &Path, rel: &Path) -> Result<(), ArchiveError> {
        let mut names: Vec<_> = fs::read_dir(dir)
            .map_err(io_err("read dir", dir))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()
            .map_err(io_err("read dir", dir))?;
        names.sort();
        for name in names {
            let path = dir.join(&name);
            let rel = rel.join(&name);
            let md = fs::symlink_metadata(&path).map_err(io_err("stat", &path))?;
            self.entry(&path, &rel, &md)?;
            if md.is_dir() {
                self.walk(&path, &rel)?;
            }
        }
        Ok(())
    }

    fn entry(&mut self, path: &Path, rel: &Path, md: &fs::Metadata) -> Result<(), ArchiveError> {
        let ft = md.file_type();
        if ft.is_socket() {
            return Ok(());
        }
        let mut h = Header::new_gnu();
        h.set_mode(md.mode() & 0o7777);
        h.set_uid(u64::from(md.uid()));
        h.set_gid(u64::from(md.gid()));
        h.set_mtime(u64::try_from(md.mtime()).unwrap_or(0));
        h.set_size(0);
        let w = io_err("write archive", path);
        if !ft.is_dir() && md.nlink() > 1 {
            if let Some(first) = self.links.get(&(md.dev(), md.ino())) {
                h.set_entry_type(EntryType::Link);
                let first = first.clone();
                self.tar.append_link(&mut h, rel, first).map_err(w)?;
                self.stats.entries += 1;
                return Ok(());
            }
            self.links.insert((md.dev(), md.ino()), rel.to_path_buf());
        }
        self.xattrs(path)?;
        if ft.is_dir() {
            h.set_entry_type(EntryType::Directory);
            let name = if rel == Path::new("./") {
                rel.to_path_buf()
            } else {
                let mut s = rel.as_os_str().to_owned();
                s.push("/");
                PathBuf::from(s)
            };
            self.tar.append_data(&mut h, name, io::empty()).map_err(w)?;
        } else if ft.is_file() {
            h.set_entry_type(EntryType::Regular);
            h.set_size(md.len());
            let f = open_same(path, md)?;
            let data = BufReader::with_capacity(BUF, Exact::new(f, md.len()));
            self.tar.append_data(&mut h, rel, data).map_err(w)?;
            self.stats.file_bytes += md.len();
        } else if ft.is_symlink() {
            h.set_entry_type(EntryType::Symlink);
            let target = fs::read_link(path).map_err(io_err("read link", path))?;
            self.tar.append_link(&mut h, rel, target).map_err(w)?;
        } else {
            let (kind, major, minor) = if ft.is_fifo() {
                (EntryType::Fifo, 0, 0)
            } else if ft.is_char_device() {
                let r = md.rdev();
                (EntryType::Char, libc::major(r), libc::minor(r))
            } else if ft.is_block_device() {
                let r = md.rdev();
                (EntryType::Block, libc::major(r), libc::minor(r))
            } else {
                return Err(bad(path, "unknown file type"));
            };
            h.set_entry_type(kind);
            h.set_device_major(major)
                .map_err(io_err("set device", path))?;
            h.set_device_minor(minor)
                .map_err(io_err("set device", path))?;
            self.tar.append_data(&mut h, rel, io::empty()).map_err(w)?;
        }
        self.stats.entries += 1;
        Ok(())
    }

    /// Writes the PAX record of `path`'s extended attributes (if it has any).
    fn xattrs(&mut self, path: &Path) -> Result<(), ArchiveError> {
        let names = match inode::llistxattr(path) {
            Ok(n) => n,
            Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => return Ok(()),
            Err(e) => return Err(io_err("list xattrs of", path)(e)),
        };
        let mut recs: Vec<(String, Vec<u8>)> = Vec::new();
        for name in names {
            let value = match inode::lgetxattr(path, &name) {
                Ok(v) => v,
                Err(e) if e.raw_os_error() == Some(libc::ENODATA) => continue,
                Err(e) => return Err(io_err("read xattr of", path)(e)),
            };
            let name = String::from_utf8(name)
                .map_err(|n| bad(path, format!("xattr name {:?} is not UTF-8", n.as_bytes())))?;
            recs.push((format!("{XATTR_PAX}{name}"), hex(&value)));
        }
        recs.sort();
        self.tar
            .append_pax_extensions(recs.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
            .map_err(io_err("write archive", path))
    }
}

/// Opens the regular file `path` without following a symlink and checks it is the inode `md`
/// describes (nothing swapped it since the walk saw it).
fn open_same(path: &Path, md: &fs::Metadata) -> Result<File, ArchiveError> {
    let f = File::options()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(io_err("open", path))?;
    let now = f.metadata().map_err(io_err("stat", path))?;
    if (now.dev(), now.ino()) != (md.dev(), md.ino()) {
        return Err(bad(path, "changed while being archived"));
    }
    Ok(f)
}

/// Reads exactly `len` bytes of a file (an error if it is shorter; the rest is ignored), so
/// a tar entry always matches the size in its header.
struct Exact {
    f: File,
    left: u64,
}

impl Exact {
    fn new(f: File, len: u64) -> Self {
        Self { f, left: len }
    }
}

impl Read for Exact {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let max = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.f.read(&mut buf[..max])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "file shrank while being archived",
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// Unpacks a zstd-compressed tar from `input` into `dir` (which must exist and be empty; see
/// [`clear_dir`]). The root entry's owner, mode and xattrs are applied to `dir` itself.
pub fn unpack<R: Read>(input: R, dir: &Path) -> Result<Stats, ArchiveError> {
    let dec = zstd::stream::read::Decoder::new(input).map_err(io_err("zstd", dir))?;
    let mut ar = tar::Archive::new(dec);
    let mut u = Unpacker {
        dir,
        symlinks: HashSet::new(),
        dirs: Vec::new(),
        stats: Stats::default(),
        buf: vec![0; BUF],
    };
    for entry in ar.entries().map_err(io_err("read archive for", dir))? {
        let entry = entry.map_err(io_err("read archive for", dir))?;
        u.entry(entry)?;
    }
    // Directories last, deepest first: adding children changes a dir's mtime, and a
    // read-only dir must stay writable until its children exist.
    for (path, meta) in u.dirs.iter().rev() {
        meta.apply(path, false)?;
    }
    Ok(u.stats)
}

/// Owner, mode, xattrs and mtime of an entry, applied once its node exists.
struct Meta {
    uid: u32,
    gid: u32,
    mode: u32,
    mtime: i64,
    xattrs: Vec<(String, Vec<u8>)>,
}

impl Meta {
    fn apply(&self, path: &Path, symlink: bool) -> Result<(), ArchiveError> {
        // Owner before mode (chown clears setuid bits), xattrs after both (chown drops
        // `security.capability`).
        std::os::unix::fs::lchown(path, Some(self.uid), Some(self.gid))
            .map_err(io_err("chown", path))?;
        if !symlink {
            fs::set_permissions(path, fs::Permissions::from_mode(self.mode))
                .map_err(io_err("chmod", path))?;
        }
        for (name, value) in &self.xattrs {
            inode::lsetxattr(path, name.as_bytes(), value).map_err(io_err("set xattr on", path))?;
        }
        let t = (self.mtime, 0);
        inode::lutimes(path, t, t).map_err(io_err("set mtime of", path))
    }
}

struct Unpacker<'a> {
    dir: &'a Path,
    /// Symlinks unpacked so far (relative): nothing may be unpacked below one.
    symlinks: HashSet<PathBuf>,
    dirs: Vec<(PathBuf, Meta)>,
    stats: Stats,
    buf: Vec<u8>,
}

/// `p` as plain relative components (`./` alone is the root, as an empty path); `None` if it
/// has `..`, is absolute, or is empty.
fn relative(p: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            _ => return None,
        }
    }
    (!out.as_os_str().is_empty() || p.components().next() == Some(Component::CurDir)).then_some(out)
}

impl Unpacker<'_> {
    /// `dir/rel` for an archive path, refusing escapes and paths through unpacked symlinks.
    fn target(&self, raw: &Path) -> Result<(PathBuf, PathBuf), ArchiveError> {
        let rel =
            relative(raw).ok_or_else(|| bad(raw, "not a relative path inside the archive"))?;
        if rel.ancestors().skip(1).any(|a| self.symlinks.contains(a)) {
            return Err(bad(raw, "lies below a symlink"));
        }
        Ok((self.dir.join(&rel), rel))
    }

    fn entry<R: Read>(&mut self, mut e: tar::Entry<'_, R>) -> Result<(), ArchiveError> {
        let raw = e
            .path()
            .map_err(io_err("read archive for", self.dir))?
            .into_owned();
        let (path, rel) = self.target(&raw)?;
        let h = e.header().clone();
        let num = |r: io::Result<u64>| r.map_err(|err| bad(&raw, err.to_string()));
        let mut xattrs = Vec::new();
        if let Some(exts) = e
            .pax_extensions()
            .map_err(io_err("read archive for", self.dir))?
        {
            for ext in exts {
                let ext = ext.map_err(io_err("read archive for", self.dir))?;
                let key = ext.key().map_err(|_| bad(&raw, "PAX key is not UTF-8"))?;
                if let Some(name) = key.strip_prefix(XATTR_PAX) {
                    let value = unhex(ext.value_bytes())
                        .ok_or_else(|| bad(&raw, format!("xattr {name}: value is not hex")))?;
                    xattrs.push((name.to_string(), value));
                }
            }
        }
        let meta = Meta {
            uid: u32::try_from(num(h.uid())?).map_err(|_| bad(&raw, "uid out of range"))?,
            gid: u32::try_from(num(h.gid())?).map_err(|_| bad(&raw, "gid out of range"))?,
            mode: num(h.mode().map(u64::from))? as u32 & 0o7777,
            mtime: i64::try_from(num(h.mtime())?).unwrap_or(0),
            xattrs,
        };
        let made = |e| io_err("create", &path)(e);
        let kind = h.entry_type();
        match kind {
            EntryType::Directory => {
                if rel.as_os_str().is_empty() {
                    // The root: exists already.
                } else {
                    fs::create_dir(&path).map_err(made)?;
                }
                self.dirs.push((path.clone(), meta));
                self.stats.entries += 1;
                return Ok(());
            }
            EntryType::Regular | EntryType::Continuous => {
                let f = File::options()
                    .write(true)
                    .create_new(true)
                    .open(&path)
                    .map_err(made)?;
                let mut w = BufWriter::with_capacity(BUF, f);
                let n = copy(&mut e, &mut w, &mut self.buf).map_err(io_err("write", &path))?;
                w.flush().map_err(io_err("write", &path))?;
                self.stats.file_bytes += n;
            }
            EntryType::Symlink => {
                let target = e
                    .link_name()
                    .map_err(io_err("read archive for", self.dir))?
                    .ok_or_else(|| bad(&raw, "symlink without a target"))?;
                std::os::unix::fs::symlink(&target, &path).map_err(made)?;
                self.symlinks.insert(rel);
                meta.apply(&path, true)?;
                self.stats.entries += 1;
                return Ok(());
            }
            EntryType::Link => {
                let target = e
                    .link_name()
                    .map_err(io_err("read archive for", self.dir))?
                    .ok_or_else(|| bad(&raw, "hard link without a target"))?;
                let (src, _) = self.target(&target)?;
                let md = fs::symlink_metadata(&src).map_err(io_err("stat", &src))?;
                if md.is_dir() {
                    return Err(bad(&raw, "hard link to a directory"));
                }
                fs::hard_link(&src, &path).map_err(made)?;
                self.stats.entries += 1;
                return Ok(());
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let dev = |r: io::Result<Option<u32>>| {
                    r.map(Option::unwrap_or_default)
                        .map_err(|err| bad(&raw, err.to_string()))
                };
                let (major, minor) = (dev(h.device_major())?, dev(h.device_minor())?);
                // A sandbox can only create 0:0 character devices (overlay whiteouts);
                // anything else would be a device node planted from outside.
                let fmt = match kind {
                    EntryType::Fifo => libc::S_IFIFO,
                    EntryType::Char if (major, minor) == (0, 0) => libc::S_IFCHR,
                    _ => return Err(bad(&raw, format!("device node {major}:{minor} refused"))),
                };
                inode::mknod(&path, fmt | meta.mode, 0).map_err(made)?;
            }
            other => return Err(bad(&raw, format!("unsupported entry type {other:?}"))),
        }
        meta.apply(&path, false)?;
        self.stats.entries += 1;
        Ok(())
    }
}

/// Copies all of `r` into `w` through `buf` (large reads and writes); returns the byte count.
fn copy(r: &mut impl Read, w: &mut impl Write, buf: &mut [u8]) -> io::Result<u64> {
    let mut n = 0u64;
    loop {
        let k = match r.read(buf) {
            Ok(0) => return Ok(n),
            Ok(k) => k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        w.write_all(&buf[..k])?;
        n += k as u64;
    }
}

/// Removes everything inside `dir`, keeping `dir` itself (it may be a mount point); a
/// missing `dir` is an error.
pub fn clear_dir(dir: &Path) -> Result<(), ArchiveError> {
    for e in fs::read_dir(dir).map_err(io_err("read dir", dir))? {
        let e = e.map_err(io_err("read dir", dir))?;
        let p = e.path();
        let is_dir = e.file_type().map_err(io_err("stat", &p))?.is_dir();
        let r = if is_dir {
            fs::remove_dir_all(&p)
        } else {
            fs::remove_file(&p)
        };
        r.map_err(io_err("remove", &p))?;
    }
    Ok(())
}

/// Flushes every dirty page of the filesystem holding `dir` to disk (syncfs).
pub fn sync_fs(dir: &Path) -> Result<(), ArchiveError> {
    let f = File::open(dir).map_err(io_err("open", dir))?;
    cove_sys::fs::syncfs(&f).map_err(io_err("syncfs", dir))
}

#[cfg(test)]
#[path = "archive_tests.rs"]
mod tests;
