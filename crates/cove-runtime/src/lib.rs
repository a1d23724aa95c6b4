//! The linux backend: images, overlay rootfs, namespaces, cgroups, seccomp. Only this crate mounts.
//!
//! The signatures in this file are the contract with cove-server and cove-cli.

pub mod archive;
mod build_cmd;
pub mod cgroup;
pub mod disk;
pub mod disk_pool;
pub mod dynmods;
mod e2fs;
pub mod error;
mod freeze;
mod fsutil;
pub mod idmap;
pub mod image;
pub mod init;
pub mod layer;
pub mod rootfs;
mod sandbox;
mod seccomp;
mod shift;
pub mod sys;

pub use error::RuntimeError;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::Arc;

use error::IoContext;

use serde::{Deserialize, Serialize};

/// Where the runtime keeps things.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// `<data-dir>/sandboxes/<id>/{upper,work,rootfs,agent.sock}` live under here.
    pub data_dir: PathBuf,
    /// Image cache (may be shared by several servers, e.g. every test on a machine).
    pub images_dir: PathBuf,
    /// The `cove` executable, run as `cove __sandbox-init` to boot a sandbox.
    pub init_exe: PathBuf,
}

/// A built image: its read-only layers, lowest first.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ImageRef {
    pub name: String,
    pub layers: Vec<PathBuf>,
    /// The command a sandbox of this image runs at boot (a snapshot's `entrypoint`), in the
    /// agent's `entrypoint` session; empty for none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entrypoint: Vec<String>,
}

/// What a sandbox is booted with.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SandboxSpec {
    pub id: String,
    pub image: ImageRef,
    pub env: BTreeMap<String, String>,
    /// Default OS user for commands (e.g. `daytona`).
    pub user: String,
    pub cpu: u32,
    pub memory_mib: u64,
    pub disk_gib: u32,
    pub pids_max: u32,
    /// Set `no_new_privs` on the sandbox's PID 1 (inherited by every process in it). Off by
    /// default because it breaks `sudo` (setuid), which Daytona's image provides.
    #[serde(default)]
    pub no_new_privs: bool,
    /// Host directories bind-mounted read-write into the sandbox (volumes).
    #[serde(default)]
    pub mounts: Vec<BindMount>,
}

/// A host directory bind-mounted into a sandbox at boot (before `pivot_root`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BindMount {
    /// Host directory (a volume's directory).
    pub source: PathBuf,
    /// Absolute path inside the sandbox; created if missing.
    pub target: String,
    /// Relative directory inside `source` to mount instead of `source` itself; created if
    /// missing, and it must stay inside `source` (no `..`, no symlinks on the way).
    #[serde(default)]
    pub subpath: Option<String>,
}

/// A running sandbox as the runtime reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct Running {
    /// Host pid of the sandbox's PID 1 (the agent).
    pub pid: i32,
    /// Host path of the agent's unix socket.
    pub socket: PathBuf,
}

/// The linux backend.
pub struct Runtime {
    pub cfg: RuntimeConfig,
    disks: Arc<disk::Disks>,
}

impl Runtime {
    /// Probes the host for loop devices and `mkfs.ext4` (warning once if disk sizes cannot be
    /// enforced); starts nothing.
    pub fn new(cfg: RuntimeConfig) -> Result<Self, RuntimeError> {
        Ok(Self {
            cfg,
            disks: Arc::new(disk::Disks::probe()),
        })
    }

    /// Keeps a few formatted disk images of `gib` GiB (the default size) ready under
    /// `<data-dir>/disk-pool/`, refilled by a background thread, so creates need no mkfs.
    pub fn start_disk_pool(&self, gib: u32) -> Result<(), RuntimeError> {
        self.disks
            .start_pool(self.cfg.data_dir.join("disk-pool"), gib)
    }

    /// Whether each sandbox's disk size is enforced (its own ext4 image).
    pub fn disks_enforced(&self) -> bool {
        self.disks.enforced()
    }

    /// Builds (once, under a lock shared by every process using `images_dir`) and returns the
    /// default image; `progress` gets each line of build output.
    pub async fn ensure_default_image(
        &self,
        progress: &(dyn Fn(&str) + Send + Sync),
    ) -> Result<ImageRef, RuntimeError> {
        image::ensure_default(&self.cfg.images_dir, progress).await
    }

    /// Boots a sandbox (creating its upper dir if new, reusing it after a stop).
    pub async fn start(&self, spec: &SandboxSpec) -> Result<Running, RuntimeError> {
        let (cfg, spec, disks) = (self.cfg.clone(), spec.clone(), self.disks.clone());
        blocking(move || sandbox::start(&cfg, &disks, &spec)).await
    }

    /// Makes the sandbox's file tree ready (see [`sandbox::prepare_files`]) and returns its
    /// upper dir, where its files live.
    pub async fn prepare_files(&self, id: &str, disk_gib: u32) -> Result<PathBuf, RuntimeError> {
        let (cfg, id, disks) = (self.cfg.clone(), id.to_string(), self.disks.clone());
        blocking(move || sandbox::prepare_files(&cfg, &disks, &id, disk_gib).map(|d| d.upper()))
            .await
    }

    /// The sandbox's upper dir (its files), inside its mounted disk; it does not exist while
    /// the disk is not mounted (after a host reboot, until [`Runtime::prepare_files`] or a
    /// start) or the files are archived.
    pub fn upper_dir(&self, id: &str) -> PathBuf {
        sandbox::Dirs::new(&self.cfg, id).upper()
    }

    /// Where snapshot layer `name` lives: `<data>/layers/<name>`.
    pub fn layer_dir(&self, name: &str) -> PathBuf {
        self.cfg.data_dir.join("layers").join(name)
    }

    /// Freezes every process of a running sandbox (for a consistent copy of its files).
    pub async fn freeze(&self, id: &str) -> Result<(), RuntimeError> {
        let id = id.to_string();
        blocking(move || {
            sandbox::validate_id(&id)?;
            let layout = cgroup::detect(std::path::Path::new(cgroup::DEFAULT_ROOT))?;
            freeze::freeze(&layout, &id, freeze::TIMEOUT)
        })
        .await
    }

    /// Thaws a sandbox; a no-op unless it is frozen.
    pub async fn thaw(&self, id: &str) -> Result<(), RuntimeError> {
        let id = id.to_string();
        blocking(move || {
            sandbox::validate_id(&id)?;
            let layout = cgroup::detect(std::path::Path::new(cgroup::DEFAULT_ROOT))?;
            freeze::thaw(&layout, &id, freeze::TIMEOUT)
        })
        .await
    }

    /// Copies a sandbox's files (`upper`, from [`Runtime::upper_dir`]) into the new read-only
    /// layer `name` (see [`layer`]); returns its path and what was copied.
    pub async fn copy_layer(
        &self,
        upper: PathBuf,
        name: &str,
    ) -> Result<(PathBuf, layer::LayerStats), RuntimeError> {
        sandbox::validate_id(name)?;
        let dst = self.layer_dir(name);
        blocking(move || {
            let parent = dst.parent().expect("layer dir has a parent");
            fs::create_dir_all(parent).ctx("create", parent)?;
            fs::set_permissions(parent, fs::Permissions::from_mode(0o711)).ctx("chmod", parent)?;
            fsutil::make_traversable(parent)?;
            let stats = layer::copy_layer(&upper, &dst)?;
            Ok((dst, stats))
        })
        .await
    }

    /// Removes layer `name` and any unfinished copy of it; a missing layer is fine.
    pub async fn remove_layer(&self, name: &str) -> Result<(), RuntimeError> {
        sandbox::validate_id(name)?;
        let dst = self.layer_dir(name);
        blocking(move || layer::remove(&dst)).await
    }

    /// Whether the sandbox's files exist locally (its disk image or plain upper dir), mounted
    /// or not.
    pub fn has_files(&self, id: &str) -> bool {
        has_files(&self.cfg.data_dir, id)
    }

    /// Grows a stopped sandbox's disk to `gib` GiB (never shrinks): unmounted, grown, mounted
    /// again; created and mounted if missing. Does nothing where disk sizes are not enforced.
    pub async fn resize_disk(&self, id: &str, gib: u32) -> Result<(), RuntimeError> {
        let (cfg, id, disks) = (self.cfg.clone(), id.to_string(), self.disks.clone());
        blocking(move || sandbox::prepare_files(&cfg, &disks, &id, gib).map(drop)).await
    }

    /// Kills every process of the sandbox; keeps its files.
    pub async fn stop(&self, id: &str, force: bool) -> Result<(), RuntimeError> {
        let (cfg, id) = (self.cfg.clone(), id.to_string());
        blocking(move || sandbox::stop(&cfg, &id, force)).await
    }

    /// Stops the sandbox and removes its local files, keeping its root dir (after an archive).
    pub async fn release_files(&self, id: &str) -> Result<(), RuntimeError> {
        let (cfg, id) = (self.cfg.clone(), id.to_string());
        blocking(move || sandbox::release_files(&cfg, &id)).await
    }

    /// Stops the sandbox and removes its files and cgroups.
    pub async fn destroy(&self, id: &str) -> Result<(), RuntimeError> {
        let (cfg, id) = (self.cfg.clone(), id.to_string());
        blocking(move || sandbox::destroy(&cfg, &id)).await
    }

    /// Rewrites a running sandbox's cgroup limits (cpu cores, memory MiB; 0 = unlimited) live.
    /// Fails if its cgroups do not exist (not running).
    pub async fn resize(&self, id: &str, cpu: u32, memory_mib: u64) -> Result<(), RuntimeError> {
        let id = id.to_string();
        blocking(move || {
            sandbox::validate_id(&id)?;
            let layout = cgroup::detect(std::path::Path::new(cgroup::DEFAULT_ROOT))?;
            layout.resize(&sys::RealSys, &id, cpu, memory_mib)
        })
        .await
    }

    /// The running sandbox, if its PID 1 is alive (used to adopt sandboxes after a restart).
    pub fn running(&self, id: &str) -> Option<Running> {
        sandbox::running(&self.cfg, id)
    }
}

/// Whether sandbox `id` of the data dir `data_dir` has its files locally (see
/// [`Runtime::has_files`]).
pub fn has_files(data_dir: &std::path::Path, id: &str) -> bool {
    sandbox::validate_id(id).is_ok() && sandbox::Dirs::at(data_dir, id).has_files()
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, RuntimeError> + Send + 'static,
) -> Result<T, RuntimeError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| RuntimeError::Other(format!("runtime task failed: {e}")))?
}
