//! Freezing a running sandbox's processes while its files are copied (a snapshot), so the
//! copy is consistent and the sandbox cannot swap files under the copier.
//!
//! - v2: `cove/<id>/cgroup.freeze` ← `1`, then wait for `frozen 1` in `cgroup.events`;
//!   thawing writes `0`.
//! - v1: sandboxes live in the cpu, memory and pids hierarchies only, so freezing creates
//!   `freezer/cove/<id>`, moves every process of `pids/cove/<id>` into it (repeating until
//!   none is left outside: a process may fork while others are moved; a process moved into
//!   a frozen cgroup is frozen at once) and sets `FROZEN`. Thawing sets `THAWED`, moves the
//!   processes back to the server's own freezer cgroup (where they were born) and removes
//!   `freezer/cove/<id>`.
//!
//! Thawing is idempotent and works on a sandbox that is not frozen, so a restarted server
//! can thaw whatever a crash left frozen.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::cgroup::{Layout, PARENT};
use crate::error::{IoContext, RuntimeError};

/// How long freezing or thawing may take.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// Freezes every process of sandbox `id`; on failure the sandbox is thawed again.
pub fn freeze(layout: &Layout, id: &str, timeout: Duration) -> Result<(), RuntimeError> {
    let result = match layout {
        Layout::V2 { root } => freeze_v2(&root.join(PARENT).join(id), timeout),
        Layout::V1 { root } => freeze_v1(root, id, timeout),
    };
    if result.is_err() {
        if let Err(e) = thaw(layout, id, timeout) {
            tracing::warn!("sandbox {id}: thaw after a failed freeze: {e}");
        }
    }
    result.map_err(|e| RuntimeError::Other(format!("sandbox {id}: cannot freeze: {e}")))
}

/// Thaws sandbox `id` (a no-op when it is not frozen or not running).
pub fn thaw(layout: &Layout, id: &str, timeout: Duration) -> Result<(), RuntimeError> {
    match layout {
        Layout::V2 { root } => {
            let f = root.join(PARENT).join(id).join("cgroup.freeze");
            match fs::write(&f, "0") {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                r => r.ctx("write", f),
            }
        }
        Layout::V1 { root } => thaw_v1(root, id, timeout),
    }
}

fn freeze_v2(dir: &Path, timeout: Duration) -> Result<(), RuntimeError> {
    if !dir.is_dir() {
        return Err(RuntimeError::Other(format!(
            "no cgroup {} (not running)",
            dir.display()
        )));
    }
    let f = dir.join("cgroup.freeze");
    fs::write(&f, "1").ctx("write", &f)?;
    let events = dir.join("cgroup.events");
    wait(timeout, "cgroup.events to say frozen 1", || {
        Ok(fs::read_to_string(&events)
            .ctx("read", &events)?
            .lines()
            .any(|l| l.trim() == "frozen 1"))
    })
}

fn freezer_dir(root: &Path, id: &str) -> PathBuf {
    root.join("freezer").join(PARENT).join(id)
}

fn freeze_v1(root: &Path, id: &str, timeout: Duration) -> Result<(), RuntimeError> {
    let freezer = root.join("freezer");
    if !freezer.join("cgroup.procs").exists() {
        return Err(RuntimeError::Other(format!(
            "cgroup v1 without a freezer hierarchy at {}; stop the sandbox to snapshot it",
            freezer.display()
        )));
    }
    let pids_dir = root.join("pids").join(PARENT).join(id);
    if !pids_dir.is_dir() {
        return Err(RuntimeError::Other(format!(
            "no cgroup {} (not running)",
            pids_dir.display()
        )));
    }
    let fz = freezer_dir(root, id);
    fs::create_dir_all(&fz).ctx("create cgroup", &fz)?;
    let state = fz.join("freezer.state");
    wait(timeout, "every process to be frozen", || {
        let inside: HashSet<i32> = procs_under(&fz).into_iter().collect();
        let missing: Vec<i32> = procs_under(&pids_dir)
            .into_iter()
            .filter(|p| !inside.contains(p))
            .collect();
        if missing.is_empty() && fs::read_to_string(&state).ctx("read", &state)?.trim() == "FROZEN"
        {
            return Ok(true);
        }
        for pid in missing {
            move_pid(pid, &pids_dir, &fz)?;
        }
        fs::write(&state, "FROZEN").ctx("write", &state)?;
        Ok(false)
    })
}

fn thaw_v1(root: &Path, id: &str, timeout: Duration) -> Result<(), RuntimeError> {
    let fz = freezer_dir(root, id);
    if !fz.is_dir() {
        return Ok(());
    }
    let state = fz.join("freezer.state");
    fs::write(&state, "THAWED").ctx("write", &state)?;
    let home = own_freezer_cgroup(root);
    wait(timeout, "the freezer cgroup to empty", || {
        let procs = procs_under(&fz);
        if procs.is_empty() {
            return match fs::remove_dir(&fz) {
                Ok(()) => Ok(true),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
                Err(_) => Ok(false), // a process joined meanwhile (or the kernel lags)
            };
        }
        for pid in procs {
            move_pid(pid, &fz, &home)?;
        }
        Ok(false)
    })
}

/// The server's own v1 freezer cgroup, from /proc/self/cgroup (the hierarchy root if that
/// cannot be read or does not exist here).
fn own_freezer_cgroup(root: &Path) -> PathBuf {
    let freezer = root.join("freezer");
    let own = fs::read_to_string("/proc/self/cgroup")
        .ok()
        .and_then(|s| parse_own_cgroup(&s, "freezer"))
        .map(|rel| freezer.join(rel.trim_start_matches('/')))
        .filter(|p| p.join("cgroup.procs").exists());
    own.unwrap_or(freezer)
}

/// The path of controller `ctl`'s cgroup in a /proc/<pid>/cgroup text.
fn parse_own_cgroup(text: &str, ctl: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let mut it = l.splitn(3, ':');
        let (_, ctls, path) = (it.next()?, it.next()?, it.next()?);
        ctls.split(',').any(|c| c == ctl).then(|| path.to_string())
    })
}

/// Moves `pid` from cgroup `from` to `to`. The pid is pinned with a pidfd and checked to
/// still be in `from`, so a pid reused by an unrelated process after it was listed is left
/// alone. A process that exits meanwhile is fine.
fn move_pid(pid: i32, from: &Path, to: &Path) -> Result<(), RuntimeError> {
    let Ok(_pin) = cove_sys::pidfd::pidfd_open(pid) else {
        return Ok(());
    };
    if !procs_under(from).contains(&pid) {
        return Ok(());
    }
    let f = to.join("cgroup.procs");
    match fs::write(&f, pid.to_string()) {
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(()),
        r => r.ctx("write", f),
    }
}

/// Pids in `dir`'s `cgroup.procs` and in those of its descendants.
fn procs_under(dir: &Path) -> Vec<i32> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        if let Ok(s) = fs::read_to_string(d.join("cgroup.procs")) {
            out.extend(s.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
        }
        if let Ok(rd) = fs::read_dir(&d) {
            stack.extend(
                rd.flatten()
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                    .map(|e| e.path()),
            );
        }
    }
    out
}

/// Polls `done` every millisecond (doubling up to 50 ms) until it says true or `timeout`.
fn wait(
    timeout: Duration,
    what: &str,
    mut done: impl FnMut() -> Result<bool, RuntimeError>,
) -> Result<(), RuntimeError> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(1);
    loop {
        if done()? {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(RuntimeError::Other(format!(
                "gave up waiting for {what} after {}s",
                timeout.as_secs()
            )));
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests;
