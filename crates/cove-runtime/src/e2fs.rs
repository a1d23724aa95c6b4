//! e2fsprogs, run as tools: `mkfs.ext4` to format a disk image, `e2fsck` + `resize2fs` to grow
//! an unmounted one; and the size of an image's filesystem read from its superblock.

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::disk_pool::gib_bytes;
use crate::error::{IoContext, RuntimeError};
use crate::idmap::UID_BASE;

/// Filesystem block size of every image.
pub const BLOCK: u64 = 4096;

/// An e2fsprogs tool on PATH or in the usual sbin dirs (a server's PATH may lack them).
pub fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/local/sbin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Runs `exe args…`; exit codes in `ok` count as success. The error carries its output.
fn run(exe: &Path, args: &[&std::ffi::OsStr], ok: &[i32]) -> io::Result<()> {
    let out = Command::new(exe)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()?;
    if out.status.code().is_some_and(|c| ok.contains(&c)) {
        return Ok(());
    }
    Err(io::Error::other(format!(
        "{} {:?}: {}: {} {}",
        exe.display(),
        args,
        out.status,
        String::from_utf8_lossy(&out.stdout).trim(),
        String::from_utf8_lossy(&out.stderr).trim()
    )))
}

/// Creates `img` (absent) as a sparse file of `gib` GiB holding an ext4 filesystem: lazy
/// inode table and journal init (a sparse file reads as zeros anyway), nothing reserved for
/// root, the root dir owned by the sandboxes' root (`UID_BASE`).
pub fn mkfs(exe: &Path, img: &Path, gib: u32) -> io::Result<()> {
    File::create_new(img)?.set_len(gib_bytes(gib))?;
    let opts = format!(
        "lazy_itable_init=1,lazy_journal_init=1,nodiscard,root_owner={UID_BASE}:{UID_BASE}"
    );
    let block = BLOCK.to_string();
    let args: [&std::ffi::OsStr; 11] = [
        "-q".as_ref(),
        "-F".as_ref(),
        "-b".as_ref(),
        block.as_ref(),
        "-m".as_ref(),
        "0".as_ref(),
        "-L".as_ref(),
        "cove".as_ref(),
        "-E".as_ref(),
        opts.as_ref(),
        img.as_os_str(),
    ];
    run(exe, &args, &[0])
}

/// Grows the filesystem in the unmounted image `img` (and the file) to `gib` GiB.
pub fn grow(img: &Path, gib: u32) -> Result<(), RuntimeError> {
    let tool = |name: &str| {
        find_tool(name).ok_or_else(|| RuntimeError::Other(format!("{name} (e2fsprogs) not found")))
    };
    // resize2fs wants a filesystem checked since its last mount; 1 = errors fixed.
    let fsck = tool("e2fsck")?;
    run(
        &fsck,
        &["-f".as_ref(), "-p".as_ref(), img.as_os_str()],
        &[0, 1],
    )
    .ctx("check", img)?;
    let size = format!("{}K", gib_bytes(gib) / 1024);
    let resize = tool("resize2fs")?;
    run(&resize, &[img.as_os_str(), size.as_ref()], &[0]).ctx("grow", img)
}

/// Size in bytes of the ext4 filesystem in `img`, from its superblock.
pub fn fs_bytes(img: &Path) -> Result<u64, RuntimeError> {
    let mut sb = [0u8; 1024];
    File::open(img)
        .and_then(|f| f.read_exact_at(&mut sb, 1024))
        .ctx("read superblock of", img)?;
    superblock_bytes(&sb)
        .ok_or_else(|| RuntimeError::Other(format!("{}: no ext4 superblock", img.display())))
}

/// Size in bytes of an ext2/3/4 filesystem from its 1024-byte superblock.
fn superblock_bytes(sb: &[u8; 1024]) -> Option<u64> {
    let u32_at = |o: usize| u32::from_le_bytes(sb[o..o + 4].try_into().expect("4 bytes"));
    if u16::from_le_bytes([sb[0x38], sb[0x39]]) != 0xEF53 {
        return None;
    }
    let lo = u64::from(u32_at(0x4));
    let hi = if u32_at(0x60) & 0x80 != 0 {
        u64::from(u32_at(0x150))
    } else {
        0
    };
    let block = 1024u64.checked_shl(u32_at(0x18))?;
    ((hi << 32) | lo).checked_mul(block)
}

/// Removes `path`; a missing file is fine.
pub fn remove_file(path: &Path) -> Result<(), RuntimeError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(RuntimeError::io("remove", path, e)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn superblock_size() {
        let mut sb = [0u8; 1024];
        assert_eq!(superblock_bytes(&sb), None, "no magic");
        sb[0x38..0x3a].copy_from_slice(&0xEF53u16.to_le_bytes());
        sb[0x4..0x8].copy_from_slice(&786_432u32.to_le_bytes());
        sb[0x18..0x1c].copy_from_slice(&2u32.to_le_bytes()); // 1024 << 2 = 4 KiB blocks
        assert_eq!(superblock_bytes(&sb), Some(3 << 30));
        sb[0x150..0x154].copy_from_slice(&1u32.to_le_bytes());
        assert_eq!(
            superblock_bytes(&sb),
            Some(3 << 30),
            "high word needs the 64bit feature"
        );
        sb[0x60] = 0x80;
        assert_eq!(superblock_bytes(&sb), Some(((1 << 32) + 786_432) * 4096));
    }

    #[test]
    fn mkfs_makes_a_sparse_ext4_image_of_the_size() {
        let Some(exe) = find_tool("mkfs.ext4") else {
            eprintln!("skipping: no mkfs.ext4");
            return;
        };
        let t = tempfile::tempdir().unwrap();
        let img = t.path().join("a.img");
        mkfs(&exe, &img, 1).unwrap();
        assert_eq!(fs_bytes(&img).unwrap(), 1 << 30);
        let e = mkfs(&exe, &img, 1).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
    }
}
