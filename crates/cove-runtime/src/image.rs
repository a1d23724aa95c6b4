//! The default image: Debian bookworm built once with debootstrap, cached in `images_dir`.
//!
//! ```text
//! images_dir/.lock                 flock: one builder at a time, across processes
//! images_dir/.build-default-<pid>/ work in progress (removed by the next builder if stale)
//! images_dir/default/rootfs/       the finished layer (ownership shifted by UID_BASE)
//! images_dir/default/image.json    the ImageRef; written before the atomic rename
//! ```
//! Shelling out (debootstrap, chroot, apt) happens only here, never on the create path.
//! debootstrap and the chroot script run under `unshare --mount` so that a killed build
//! cannot leave proc/sys/dev mounts behind in the host namespace.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use tokio::process::Command;

use crate::build_cmd::run_streaming;
use crate::error::{IoContext, RuntimeError};
use crate::fsutil::{make_traversable, remove_tree};
use crate::shift::shift_tree;
use crate::ImageRef;

/// Name of the default image.
pub const DEFAULT_IMAGE: &str = "default";

/// Where the default image's layers are (or will be, once built) under `images_dir`.
pub fn default_layers(images_dir: &Path) -> Vec<PathBuf> {
    vec![images_dir.join(DEFAULT_IMAGE).join("rootfs")]
}
/// Env var overriding debootstrap's default mirror.
pub const MIRROR_ENV: &str = "COVE_DEBIAN_MIRROR";

const INCLUDE: &str =
    "python3,python3-pip,python3-venv,git,curl,ca-certificates,procps,sudo,passwd";

/// Script run inside the chroot after debootstrap (nodejs/npm break debootstrap's --include).
const CHROOT_SCRIPT: &str = "set -e
mount -t proc proc /proc
apt-get update
apt-get install -y --no-install-recommends nodejs npm
apt-get clean
rm -rf /var/lib/apt/lists/*
getent group daytona >/dev/null || groupadd -g 1000 daytona
id daytona >/dev/null 2>&1 || useradd -m -u 1000 -g 1000 -G sudo -s /bin/bash -d /home/daytona daytona
umount /proc
";

/// The image recorded in `dir/image.json`, if the build finished.
/// The finished default image under `images_dir`, if any. Its `image.json` marks a finished
/// build; the layers are where the images dir is now (it may have moved since the build).
fn read_image(images_dir: &Path) -> Option<ImageRef> {
    let s = fs::read_to_string(images_dir.join(DEFAULT_IMAGE).join("image.json")).ok()?;
    let mut img: ImageRef = serde_json::from_str(&s).ok()?;
    img.layers = default_layers(images_dir);
    Some(img)
}

/// Returns the default image, building it first if needed (see module docs).
pub async fn ensure_default(
    images_dir: &Path,
    progress: &(dyn Fn(&str) + Send + Sync),
) -> Result<ImageRef, RuntimeError> {
    let final_dir = images_dir.join(DEFAULT_IMAGE);
    if let Some(img) = read_image(images_dir) {
        return Ok(img);
    }
    fs::create_dir_all(images_dir).ctx("create", images_dir)?;
    let lock_path = images_dir.join(".lock");
    let lock = tokio::task::spawn_blocking(move || -> Result<fs::File, RuntimeError> {
        let f = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .ctx("open", &lock_path)?;
        cove_sys::pidfd::flock_exclusive(&f).ctx("flock", &lock_path)?;
        Ok(f)
    })
    .await
    .map_err(|e| RuntimeError::Other(format!("image lock task: {e}")))??;
    // Someone else may have finished while we waited.
    if let Some(img) = read_image(images_dir) {
        return Ok(img);
    }
    let result = build(images_dir, &final_dir, progress).await;
    drop(lock);
    result
}

async fn build(
    images_dir: &Path,
    final_dir: &Path,
    progress: &(dyn Fn(&str) + Send + Sync),
) -> Result<ImageRef, RuntimeError> {
    // We hold the lock: any other build dir is a leftover of a killed build.
    for e in fs::read_dir(images_dir)
        .ctx("read dir", images_dir)?
        .flatten()
    {
        if e.file_name().to_string_lossy().starts_with(".build-") {
            progress(&format!("removing stale build dir {}", e.path().display()));
            remove_tree(&e.path())?;
        }
    }
    if final_dir.exists() {
        remove_tree(final_dir)?; // no image.json: not a finished image
    }
    let tmp = images_dir.join(format!(".build-{DEFAULT_IMAGE}-{}", std::process::id()));
    let rootfs = tmp.join("rootfs");
    fs::create_dir_all(&tmp).ctx("create", &tmp)?;

    progress(&format!(
        "building the default image (debootstrap bookworm) in {}",
        tmp.display()
    ));
    let mut cmd = Command::new("unshare");
    cmd.args([
        "--mount",
        "--propagation",
        "private",
        "debootstrap",
        "--variant=minbase",
    ])
    .arg(format!("--include={INCLUDE}"))
    .arg("bookworm")
    .arg(&rootfs);
    if let Ok(mirror) = std::env::var(MIRROR_ENV) {
        if !mirror.is_empty() {
            cmd.arg(mirror);
        }
    }
    run_streaming(cmd, progress).await?;

    let policy = rootfs.join("usr/sbin/policy-rc.d");
    fs::write(&policy, "#!/bin/sh\nexit 101\n").ctx("write", &policy)?;
    fs::set_permissions(&policy, fs::Permissions::from_mode(0o755)).ctx("chmod", &policy)?;
    let resolv = rootfs.join("etc/resolv.conf");
    let _ = fs::remove_file(&resolv);
    if let Ok(host) = fs::read("/etc/resolv.conf") {
        fs::write(&resolv, host).ctx("write", &resolv)?;
    }
    let mut cmd = Command::new("unshare");
    cmd.args(["--mount", "--propagation", "private", "chroot"])
        .arg(&rootfs)
        .args(["/bin/sh", "-c", CHROOT_SCRIPT])
        .env_clear()
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .env("DEBIAN_FRONTEND", "noninteractive")
        .env("LC_ALL", "C")
        .env("HOME", "/root");
    run_streaming(cmd, progress).await?;
    fs::remove_file(&policy).ctx("remove", &policy)?;

    let sudoers = rootfs.join("etc/sudoers.d/daytona");
    fs::write(&sudoers, "daytona ALL=(ALL) NOPASSWD:ALL\n").ctx("write", &sudoers)?;
    fs::set_permissions(&sudoers, fs::Permissions::from_mode(0o440)).ctx("chmod", &sudoers)?;

    progress("shifting image ownership into the sandbox uid range");
    let r = rootfs.clone();
    let n = tokio::task::spawn_blocking(move || shift_tree(&r))
        .await
        .map_err(|e| RuntimeError::Other(format!("shift task: {e}")))??;
    progress(&format!("shifted {n} entries"));

    let img = ImageRef {
        name: DEFAULT_IMAGE.into(),
        layers: default_layers(images_dir),
        entrypoint: Vec::new(),
    };
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o755)).ctx("chmod", &tmp)?;
    let json = tmp.join("image.json");
    fs::write(
        &json,
        serde_json::to_vec_pretty(&img).expect("serializable"),
    )
    .ctx("write", &json)?;
    fs::rename(&tmp, final_dir).ctx("rename into place", final_dir)?;
    make_traversable(final_dir)?;
    progress(&format!("default image ready at {}", final_dir.display()));
    Ok(img)
}

/// Path of an image's first layer dir for `name` under `images_dir` (for tests and tools).
pub fn layer_dir(images_dir: &Path, name: &str) -> PathBuf {
    images_dir.join(name).join("rootfs")
}
