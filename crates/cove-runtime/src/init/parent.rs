//! The host side of `__sandbox-init`: join cgroups, clone the sandbox, map its ids, release it
//! and relay its status.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;

use cove_sys::ns::{self, Forked};

use super::{child, AgentInfo, InitRequest};
use crate::idmap::id_map;
use crate::sys::{RealSys, Sys};

/// Namespaces every sandbox gets.
pub const NS_FLAGS: i32 = ns::CLONE_NEWUSER
    | ns::CLONE_NEWNS
    | ns::CLONE_NEWPID
    | ns::CLONE_NEWUTS
    | ns::CLONE_NEWIPC
    | ns::CLONE_NEWNET
    | ns::CLONE_NEWCGROUP;

/// Boots the sandbox; returns its host pid once it reported ready.
pub fn run(req: &InitRequest, serve: fn(UnixListener, AgentInfo) -> i32) -> Result<i32, String> {
    let sys = RealSys;
    let me = ns::getpid().to_string();
    for procs in &req.cgroup_procs {
        sys.write_file(procs, &me)
            .map_err(|e| format!("join cgroup {}: {e}", procs.display()))?;
    }
    let (release_r, release_w) = cove_sys::fd::pipe().map_err(|e| format!("pipe: {e}"))?;
    let (status_r, status_w) = cove_sys::fd::pipe().map_err(|e| format!("pipe: {e}"))?;

    match ns::fork_into(NS_FLAGS)
        .map_err(|e| format!("clone with namespace flags {NS_FLAGS:#x}: {e}"))?
    {
        Forked::Child => {
            drop(release_w);
            drop(status_r);
            child::run(req, release_r, status_w, serve)
        }
        Forked::Parent { child } => {
            drop(release_r);
            drop(status_w);
            let setup = || -> Result<(), String> {
                let map = id_map();
                for f in ["uid_map", "gid_map"] {
                    let p = PathBuf::from(format!("/proc/{child}/{f}"));
                    sys.write_file(&p, &map)
                        .map_err(|e| format!("write {map:?} to {}: {e}", p.display()))?;
                }
                // The agent must survive an OOM inside its sandbox; it resets this to 0 for
                // the commands it spawns.
                let p = PathBuf::from(format!("/proc/{child}/oom_score_adj"));
                // Lowering it needs CAP_SYS_RESOURCE; without it (some hosts drop it) the
                // agent stays at 0 and raises its commands to 100 instead, so they remain the
                // OOM killer's picks even when they are many small processes.
                match sys.write_file(&p, "-1000") {
                    Err(e) if e.raw_os_error() == Some(libc::EACCES) => eprintln!(
                        "cove sandbox init: warning: write -1000 to {}: {e} (no CAP_SYS_RESOURCE?)",
                        p.display()
                    ),
                    r => r.map_err(|e| format!("write -1000 to {}: {e}", p.display()))?,
                }
                File::from(release_w)
                    .write_all(b"1")
                    .map_err(|e| format!("release sandbox: {e}"))
            };
            if let Err(e) = setup() {
                let _ = cove_sys::pidfd::kill(child, libc::SIGKILL);
                return Err(e);
            }
            let mut line = String::new();
            BufReader::new(File::from(status_r))
                .read_line(&mut line)
                .map_err(|e| format!("read sandbox status: {e}"))?;
            match line
                .trim_end()
                .split_once(' ')
                .unwrap_or((line.trim_end(), ""))
            {
                ("ready", _) => Ok(child),
                ("error", msg) => Err(msg.to_string()),
                _ => {
                    let _ = cove_sys::pidfd::kill(child, libc::SIGKILL);
                    Err(format!("sandbox pid {child} exited during boot without a status (see the sandbox log)"))
                }
            }
        }
    }
}
