//! Host side of a sandbox's lifecycle: start (dirs, cgroups, socket, spawn init), stop,
//! destroy, and pid-reuse-safe liveness from `sandboxes/<id>/pid`.
//!
//! ```text
//!   (none) ──start──> running ──stop──> stopped (files kept) ──start──> running
//!                        │                   │
//!                        └──────destroy──────┴──> (none)
//! ```
//!
//! A sandbox's files (the overlay's upper and work dirs) live in its own ext4 image,
//! `disk.img`, mounted at `disk/` (see [`crate::disk`]); the mount stays while the sandbox
//! exists, stopped or not. Where disks cannot be enforced they are plain dirs `upper/` and
//! `work/` instead, and a sandbox that has a plain `upper/` keeps using it.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{chown, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::cgroup::{self, Limits};
use crate::disk::{self, Disks};
use crate::error::{IoContext, RuntimeError};
use crate::fsutil::{make_traversable, remove_tree};
use crate::idmap::UID_BASE;
use crate::init::{InitRequest, LISTEN_FD};
use crate::sys::RealSys;
use crate::{Running, RuntimeConfig, SandboxSpec};

const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Checks that `id` is usable as a directory name, cgroup name and hostname.
pub fn validate_id(id: &str) -> Result<(), RuntimeError> {
    let ok = !id.is_empty()
        && id.len() <= 63
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(RuntimeError::InvalidId(id.into()))
    }
}

/// Paths of one sandbox.
pub struct Dirs {
    pub root: PathBuf,
}

impl Dirs {
    pub fn new(cfg: &RuntimeConfig, id: &str) -> Self {
        Self::at(&cfg.data_dir, id)
    }
    /// The dirs of sandbox `id` under `data_dir`.
    pub fn at(data_dir: &Path, id: &str) -> Self {
        Self {
            root: data_dir.join("sandboxes").join(id),
        }
    }
    /// The sandbox's files: inside its mounted disk, or the plain dir where there is one.
    pub fn upper(&self) -> PathBuf {
        if self.plain() {
            self.plain_upper()
        } else {
            self.disk_mount().join("upper")
        }
    }
    /// overlayfs's work dir, next to [`Dirs::upper`].
    pub fn work(&self) -> PathBuf {
        if self.plain() {
            self.root.join("work")
        } else {
            self.disk_mount().join("work")
        }
    }
    /// A plain upper dir (no enforced disk: unsupported host, or made by an older cove).
    fn plain_upper(&self) -> PathBuf {
        self.root.join("upper")
    }
    fn plain(&self) -> bool {
        self.plain_upper().is_dir()
    }
    /// The sandbox's disk image.
    pub fn disk_image(&self) -> PathBuf {
        self.root.join("disk.img")
    }
    /// Where the disk image is mounted.
    pub fn disk_mount(&self) -> PathBuf {
        self.root.join("disk")
    }
    /// Whether the sandbox's files exist (its disk image or plain upper dir), mounted or not.
    pub fn has_files(&self) -> bool {
        self.plain() || self.disk_image().is_file()
    }
    pub fn rootfs(&self) -> PathBuf {
        self.root.join("rootfs")
    }
    pub fn socket(&self) -> PathBuf {
        self.root.join("agent.sock")
    }
    pub fn pidfile(&self) -> PathBuf {
        self.root.join("pid")
    }
    pub fn log(&self) -> PathBuf {
        self.root.join("agent.log")
    }
}

/// (state, start time in clock ticks) of a live process, from /proc/<pid>/stat.
fn proc_stat(pid: i32) -> Option<(char, u64)> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    let mut f = rest.split(' ');
    let state = f.next()?.chars().next()?;
    // Fields after the comm: state is #3, starttime is #22.
    let start = f.nth(18)?.parse().ok()?;
    Some((state, start))
}

/// The sandbox's PID 1 if the pid file names a live process with the recorded start time.
pub fn running(cfg: &RuntimeConfig, id: &str) -> Option<Running> {
    validate_id(id).ok()?;
    let d = Dirs::new(cfg, id);
    let s = fs::read_to_string(d.pidfile()).ok()?;
    let mut it = s.split_whitespace();
    let pid: i32 = it.next()?.parse().ok()?;
    let start: u64 = it.next()?.parse().ok()?;
    match proc_stat(pid)? {
        (state, st) if st == start && state != 'Z' && state != 'X' => Some(Running {
            pid,
            socket: d.socket(),
        }),
        _ => None,
    }
}

fn limits(spec: &SandboxSpec) -> Limits {
    Limits {
        cpu: spec.cpu,
        memory_mib: spec.memory_mib,
        pids_max: spec.pids_max,
    }
}

fn mkdir_owned(dir: &Path, mode: u32, owner: Option<u32>) -> Result<(), RuntimeError> {
    fs::create_dir_all(dir).ctx("create", dir)?;
    fs::set_permissions(dir, fs::Permissions::from_mode(mode)).ctx("chmod", dir)?;
    if let Some(id) = owner {
        chown(dir, Some(id), Some(id)).ctx("chown", dir)?;
    }
    Ok(())
}

/// Makes the sandbox's file tree ready to be written (its upper dir, where its files live),
/// creating what is missing and keeping what exists: its disk image of `disk_gib` GiB is
/// created, mounted if it is not (after a host reboot) and grown if smaller. `start` calls it;
/// so does a restore, before it unpacks an archive into [`Dirs::upper`].
pub fn prepare_files(
    cfg: &RuntimeConfig,
    disks: &Disks,
    id: &str,
    disk_gib: u32,
) -> Result<Dirs, RuntimeError> {
    validate_id(id)?;
    let d = Dirs::new(cfg, id);
    mkdir_owned(&d.root, 0o711, None)?;
    make_traversable(&d.root)?;
    if disks.enforced() && !d.plain() {
        disks.ensure(&d.disk_image(), &d.disk_mount(), disk_gib)?;
    } else {
        mkdir_owned(&d.plain_upper(), 0o755, Some(UID_BASE))?;
    }
    for sub in [d.upper(), d.work(), d.rootfs()] {
        mkdir_owned(&sub, 0o755, Some(UID_BASE))?;
    }
    Ok(d)
}

/// Boots sandbox `spec.id` (see `init` for the sandbox side). Idempotent: a running sandbox
/// is returned as is.
pub fn start(
    cfg: &RuntimeConfig,
    disks: &Disks,
    spec: &SandboxSpec,
) -> Result<Running, RuntimeError> {
    validate_id(&spec.id)?;
    if let Some(r) = running(cfg, &spec.id) {
        return Ok(r);
    }
    let d = prepare_files(cfg, disks, &spec.id, spec.disk_gib)?;
    let layout = cgroup::detect(Path::new(cgroup::DEFAULT_ROOT))?;
    let cgroup_procs = layout.create(&RealSys, &spec.id, limits(spec))?;

    let result = spawn_init(cfg, spec, &d, cgroup_procs);
    if result.is_err() {
        let _ = layout.remove(&spec.id, STOP_TIMEOUT);
        let _ = fs::remove_file(d.socket());
    }
    result
}

fn spawn_init(
    cfg: &RuntimeConfig,
    spec: &SandboxSpec,
    d: &Dirs,
    cgroup_procs: Vec<PathBuf>,
) -> Result<Running, RuntimeError> {
    let sock = d.socket();
    match fs::remove_file(&sock) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(RuntimeError::io("remove stale socket", &sock, e))
        }
        _ => {}
    }
    let listener = UnixListener::bind(&sock).ctx("bind agent socket", &sock)?;
    fs::set_permissions(&sock, fs::Permissions::from_mode(0o600)).ctx("chmod", &sock)?;
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(d.log())
        .ctx("open", d.log())?;

    let req = InitRequest {
        spec: spec.clone(),
        listen_fd: LISTEN_FD,
        upper: d.upper(),
        work: d.work(),
        rootfs: d.rootfs(),
        cgroup_procs,
    };
    let mut cmd = Command::new(&cfg.init_exe);
    cmd.arg("__sandbox-init")
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(log);
    cmd.env(
        "PATH",
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    );
    for k in ["RUST_LOG", "RUST_BACKTRACE"] {
        if let Ok(v) = std::env::var(k) {
            cmd.env(k, v);
        }
    }
    let fd: std::os::fd::OwnedFd = listener.into();
    cove_sys::fd::pass_fd(&mut cmd, &fd, LISTEN_FD);
    let mut child = cmd.spawn().ctx("spawn sandbox init", &cfg.init_exe)?;
    drop(fd);
    let boot_err = |message: String| RuntimeError::Boot {
        id: spec.id.clone(),
        message,
    };
    {
        let mut stdin = child.stdin.take().expect("piped");
        let json = serde_json::to_vec(&req).expect("serializable");
        stdin
            .write_all(&json)
            .map_err(|e| boot_err(format!("write init request: {e}")))?;
    }
    let mut line = String::new();
    let read = BufReader::new(child.stdout.take().expect("piped")).read_line(&mut line);
    let status = child.wait().ctx("wait for sandbox init", &cfg.init_exe)?;
    read.map_err(|e| boot_err(format!("read init status: {e}")))?;
    let line = line.trim_end();
    let pid: i32 = match line.split_once(' ') {
        Some(("ready", pid)) => pid
            .parse()
            .map_err(|_| boot_err(format!("bad init status line {line:?}")))?,
        Some(("error", msg)) => return Err(boot_err(msg.into())),
        _ => {
            let log = fs::read_to_string(d.log()).unwrap_or_default();
            let tail: Vec<&str> = log
                .lines()
                .rev()
                .take(5)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            return Err(boot_err(format!(
                "{} exited ({status}) without a status; log {}: {}",
                cfg.init_exe.display(),
                d.log().display(),
                tail.join(" | ")
            )));
        }
    };
    let (_, start) = proc_stat(pid)
        .ok_or_else(|| boot_err(format!("sandbox pid {pid} vanished right after boot")))?;
    let pidfile = d.pidfile();
    fs::write(&pidfile, format!("{pid} {start}\n")).ctx("write", &pidfile)?;
    Ok(Running { pid, socket: sock })
}

/// Kills the sandbox's PID 1 (its whole pid namespace dies with it), waits for the exit,
/// empties and removes its cgroups. Keeps its files. Already stopped is fine.
pub fn stop(cfg: &RuntimeConfig, id: &str, _force: bool) -> Result<(), RuntimeError> {
    // `force` is accepted for the API; PID 1 of a pid namespace ignores signals it has no
    // handler for, so stop is always a SIGKILL.
    validate_id(id)?;
    let d = Dirs::new(cfg, id);
    let layout = cgroup::detect(Path::new(cgroup::DEFAULT_ROOT));
    if let Some(r) = running(cfg, id) {
        if let Ok(pidfd) = cove_sys::pidfd::pidfd_open(r.pid) {
            // The pidfd now pins this process; re-check it is still ours before killing.
            if running(cfg, id).is_some_and(|again| again.pid == r.pid) {
                cove_sys::pidfd::pidfd_send_signal(&pidfd, libc::SIGKILL)
                    .ctx("kill sandbox pid 1", format!("/proc/{}", r.pid))?;
                // A frozen sandbox (a snapshot's thaw failed, or a crash came mid-copy) keeps
                // the kill pending until it is thawed; thawing one that is not is a no-op.
                if let Ok(layout) = &layout {
                    if let Err(e) = crate::freeze::thaw(layout, id, STOP_TIMEOUT) {
                        tracing::warn!("sandbox {id}: thaw before stop: {e}");
                    }
                }
                let exited = cove_sys::pidfd::wait_exit(&pidfd, STOP_TIMEOUT)
                    .ctx("wait for sandbox pid 1", format!("/proc/{}", r.pid))?;
                if !exited {
                    return Err(RuntimeError::Timeout {
                        id: id.into(),
                        what: "PID 1 exit",
                        secs: STOP_TIMEOUT.as_secs(),
                    });
                }
            }
        }
    }
    if let Ok(layout) = layout {
        layout.remove(id, STOP_TIMEOUT)?;
    }
    for f in [d.pidfile(), d.socket()] {
        match fs::remove_file(&f) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(RuntimeError::io("remove", f, e))
            }
            _ => {}
        }
    }
    Ok(())
}

/// Stops the sandbox and removes its local files (its disk, or its plain upper and work
/// dirs), keeping its root dir: what an archive does once the files are safely in object
/// storage. Idempotent.
pub fn release_files(cfg: &RuntimeConfig, id: &str) -> Result<(), RuntimeError> {
    stop(cfg, id, true)?;
    let d = Dirs::new(cfg, id);
    disk::release(&d.disk_image(), &d.disk_mount())?;
    for dir in [d.plain_upper(), d.root.join("work")] {
        remove_tree(&dir)?;
    }
    Ok(())
}

/// Stops the sandbox and removes `data_dir/sandboxes/<id>` entirely (its disk unmounted first).
pub fn destroy(cfg: &RuntimeConfig, id: &str) -> Result<(), RuntimeError> {
    stop(cfg, id, true)?;
    let d = Dirs::new(cfg, id);
    disk::release(&d.disk_image(), &d.disk_mount())?;
    remove_tree(&d.root)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        for ok in ["a", "sb-1_x.y", &"a".repeat(63)] {
            validate_id(ok).unwrap();
        }
        for bad in ["", ".", "..", "a/b", "a b", &"a".repeat(64), ".hidden"] {
            let e = validate_id(bad).unwrap_err().to_string();
            assert!(e.contains(&format!("{bad:?}")), "{e}");
        }
    }

    #[test]
    fn own_stat_parses() {
        let (state, start) = proc_stat(std::process::id() as i32).unwrap();
        assert!(state == 'R' || state == 'S', "{state}");
        assert!(start > 0);
    }

    #[test]
    fn running_needs_matching_start_time() {
        let t = tempfile::tempdir().unwrap();
        let cfg = RuntimeConfig {
            data_dir: t.path().into(),
            images_dir: t.path().into(),
            init_exe: "/x".into(),
        };
        let d = Dirs::new(&cfg, "sb");
        fs::create_dir_all(&d.root).unwrap();
        let me = std::process::id() as i32;
        let (_, start) = proc_stat(me).unwrap();
        fs::write(d.pidfile(), format!("{me} {start}\n")).unwrap();
        assert_eq!(running(&cfg, "sb").map(|r| r.pid), Some(me));
        fs::write(d.pidfile(), format!("{me} {}\n", start + 1)).unwrap();
        assert_eq!(running(&cfg, "sb"), None, "pid reused by another process");
        assert_eq!(running(&cfg, "missing"), None);
    }
}
