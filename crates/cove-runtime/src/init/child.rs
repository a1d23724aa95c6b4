//! The sandbox's PID 1 before it becomes the agent: everything from the release byte to
//! `serve`. Runs inside the new namespaces; never returns.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixListener;

use cove_sys::caps::{self, cap};
use cove_sys::ns;

use super::{AgentInfo, InitRequest, LISTEN_FD};
use crate::rootfs::{self, RootfsPaths};
use crate::sys::RealSys;

/// Docker's default capability set; everything else leaves the bounding set.
pub const KEEP_CAPS: [u32; 14] = [
    cap::CHOWN,
    cap::DAC_OVERRIDE,
    cap::FSETID,
    cap::FOWNER,
    cap::MKNOD,
    cap::NET_RAW,
    cap::SETGID,
    cap::SETUID,
    cap::SETFCAP,
    cap::SETPCAP,
    cap::NET_BIND_SERVICE,
    cap::SYS_CHROOT,
    cap::KILL,
    cap::AUDIT_WRITE,
];

/// Bit mask of [`KEEP_CAPS`].
pub fn keep_mask() -> u64 {
    KEEP_CAPS.iter().fold(0, |m, c| m | (1u64 << c))
}

/// Waits for the release byte, boots, reports, then serves until `serve` returns.
pub fn run(
    req: &InitRequest,
    release: OwnedFd,
    status: OwnedFd,
    serve: fn(UnixListener, AgentInfo) -> i32,
) -> ! {
    let mut b = [0u8; 1];
    if !matches!(File::from(release).read(&mut b), Ok(1)) {
        ns::exit_now(1); // the parent died before mapping our ids
    }
    let mut status = File::from(status);
    match boot(req, &status) {
        Ok(listener) => {
            let _ = status.write_all(b"ready\n");
            drop(status);
            let info = AgentInfo {
                env: req.spec.env.clone(),
                user: req.spec.user.clone(),
                entrypoint: req.spec.image.entrypoint.clone(),
            };
            std::process::exit(serve(listener, info))
        }
        Err(msg) => {
            let _ = writeln!(status, "error {}", msg.replace('\n', " "));
            ns::exit_now(1)
        }
    }
}

fn boot(req: &InitRequest, status: &File) -> Result<UnixListener, String> {
    ns::become_user(0, 0).map_err(|e| format!("become root of the user namespace: {e}"))?;
    ns::set_dumpable().map_err(|e| format!("set dumpable: {e}"))?;
    let paths = RootfsPaths {
        layers: req.spec.image.layers.clone(),
        upper: req.upper.clone(),
        work: req.work.clone(),
        rootfs: req.rootfs.clone(),
        mounts: req.spec.mounts.clone(),
    };
    rootfs::setup(&RealSys, &paths).map_err(|e| e.to_string())?;
    ns::sethostname(&req.spec.id).map_err(|e| format!("sethostname {:?}: {e}", req.spec.id))?;
    if let Err(e) = rootfs::ensure_hosts_entry(std::path::Path::new("/etc/hosts"), &req.spec.id) {
        // Not fatal: only `sudo` complains about an unresolvable hostname.
        eprintln!(
            "cove sandbox init: warning: add {:?} to /etc/hosts: {e}",
            req.spec.id
        );
    }
    cove_sys::net::interface_up("lo").map_err(|e| format!("bring up interface lo: {e}"))?;

    let null = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map_err(|e| format!("open /dev/null: {e}"))?;
    for fd in [0, 1] {
        cove_sys::fd::dup2(null.as_raw_fd(), fd)
            .map_err(|e| format!("redirect fd {fd} to /dev/null: {e}"))?;
    }
    drop(null);

    // Capabilities and seccomp. We deliberately do NOT set no_new_privs: it would be
    // inherited by every command the agent runs and break setuid binaries such as `sudo`,
    // which Daytona's image provides and users rely on. Privilege gained through setuid stays
    // inside the user namespace (root here is UID_BASE on the host), within the bounded
    // capability set below and under the seccomp filter. (docs/threat-model.md)
    if req.spec.no_new_privs {
        caps::set_no_new_privs().map_err(|e| format!("set no_new_privs: {e}"))?;
    }
    let keep = keep_mask();
    caps::drop_bounding_except(keep).map_err(|e| format!("drop capability bounding set: {e}"))?;
    // Installing a filter without no_new_privs needs CAP_SYS_ADMIN (of our userns): do it
    // before dropping the effective set.
    for (i, prog) in crate::seccomp::programs()?.iter().enumerate() {
        cove_sys::seccomp::install(prog)
            .map_err(|e| format!("install seccomp program {i}: {e}"))?;
    }
    caps::set_caps(keep).map_err(|e| format!("set capabilities to {keep:#x}: {e}"))?;

    cove_sys::fd::close_all_except(&[LISTEN_FD, status.as_raw_fd()])
        .map_err(|e| format!("close inherited fds: {e}"))?;
    cove_sys::fd::listener_from_fd(req.listen_fd)
        .map_err(|e| format!("adopt listener fd {}: {e}", req.listen_fd))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_dockers_default_caps_only() {
        let m = keep_mask();
        assert_eq!(m.count_ones(), 14);
        assert_eq!(m & (1 << 21), 0, "no CAP_SYS_ADMIN");
        assert_eq!(m & (1 << 12), 0, "no CAP_NET_ADMIN");
        assert_eq!(m, 0xa80425fb);
    }
}
