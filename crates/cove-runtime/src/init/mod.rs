//! The sandbox side of boot, run by `cove __sandbox-init` before any thread exists.
//!
//! ```text
//!  host: Runtime::start ── spawn `cove __sandbox-init` (stdin: InitRequest JSON, fd 3: listener)
//!        │
//!  init parent (host namespaces)
//!        │ 1. join the sandbox cgroups (so they become the child's cgroup-namespace root)
//!        │ 2. clone(NEWUSER|NEWNS|NEWPID|NEWUTS|NEWIPC|NEWNET|NEWCGROUP)
//!        │ 3. write uid_map/gid_map "0 UID_BASE 65536", oom_score_adj -1000 ── release ──┐
//!        │                                                                               v
//!        │                                     child = sandbox PID 1 (root in its userns):
//!        │                                     overlay, /proc, /dev, /sys, pivot_root,
//!        │                                     hostname, lo up, caps, seccomp, close fds
//!        │ 4. read "ready" / "error <msg>" <──────────── status pipe ────────────────────┤
//!        │ 5. print "ready <pid>" (or "error <msg>") on stdout, exit                     v
//!  host: records pid + start time                          serve(listener, AgentInfo) forever
//! ```
//! Boot cost (measured on a 2-core VM, release build, cgroup v1): ~17 ms from `start()` to
//! ready, of which ~12 ms is the FIRST write to a v1 `cgroup.procs` (the kernel's
//! threadgroup rwsem waits for an RCU grace period). Mounting the hierarchies with
//! `favordynmods` (or CONFIG_CGROUP_FAVOR_DYNMODS) removes that; on v2 the right fix is
//! clone3(CLONE_INTO_CGROUP). Everything else (exec, clone, overlay, pivot) is ~5 ms.
//!
//! The agent keeps running from the host binary already mapped in memory (there is no exec
//! inside the sandbox), so it need not be statically linked nor present in the image.

mod child;
mod parent;

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::net::UnixListener;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::SandboxSpec;

/// Descriptor number on which `__sandbox-init` inherits the listening agent socket.
pub const LISTEN_FD: i32 = 3;

/// What the agent needs to know, handed over after the sandbox is set up.
#[derive(Debug, Clone)]
pub struct AgentInfo {
    pub env: BTreeMap<String, String>,
    pub user: String,
    /// The image's entrypoint, started by the agent at boot (empty: none).
    pub entrypoint: Vec<String>,
}

/// The JSON document `__sandbox-init` reads on stdin.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct InitRequest {
    pub spec: SandboxSpec,
    /// Inherited fd of the listening unix socket (always [`LISTEN_FD`]).
    pub listen_fd: i32,
    pub upper: PathBuf,
    pub work: PathBuf,
    pub rootfs: PathBuf,
    /// `cgroup.procs` files to join before cloning.
    pub cgroup_procs: Vec<PathBuf>,
}

/// Reads the spec from stdin, boots the sandbox and calls `serve` inside it (as its PID 1,
/// after pivot_root) with the listening agent socket. Never returns in the sandbox.
///
/// On the host side it prints exactly one line on stdout, `ready <host pid>` or
/// `error <message>`, and returns the process exit code (0 on ready).
pub fn main(serve: fn(UnixListener, AgentInfo) -> i32) -> i32 {
    let mut input = String::new();
    if let Err(e) = std::io::stdin().read_to_string(&mut input) {
        println!("error read init request from stdin: {e}");
        return 1;
    }
    let req: InitRequest = match serde_json::from_str(&input) {
        Ok(r) => r,
        Err(e) => {
            println!("error parse init request from stdin: {e}");
            return 1;
        }
    };
    match parent::run(&req, serve) {
        Ok(pid) => {
            println!("ready {pid}");
            0
        }
        Err(msg) => {
            println!("error {}", msg.replace('\n', " "));
            1
        }
    }
}
