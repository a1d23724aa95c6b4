//! `favordynmods` on the cgroup2 mount: makes moving a process into a cgroup cheap.
//!
//! Every migration into a cgroup (a sandbox's init writing its pid to `cgroup.procs`) takes the
//! kernel's global `cgroup_threadgroup_rwsem` for writing. In its default "fast readers" mode
//! that write waits for an RCU grace period (~12 ms here), which dominated a sandbox's boot.
//! The cgroup2 mount option `favordynmods` (Linux ≥ 6.0) keeps that rwsem in the mode where
//! writers don't wait, at a small cost on fork and exit; it is global, so setting it on the
//! cgroup2 mount also speeds up migrations in cgroup v1 hierarchies (hybrid hosts).
//! Remounting keeps the mount's other options (`nsdelegate`, `memory_recursiveprot`, …),
//! which a cgroup2 remount would otherwise clear.

use std::fs;
use std::path::PathBuf;

use crate::error::RuntimeError;

const OPTION: &str = "favordynmods";

/// The cgroup2 mount point and its super options from mountinfo text, if cgroup2 is mounted.
pub fn cgroup2_mount(mountinfo: &str) -> Option<(PathBuf, String)> {
    mountinfo.lines().find_map(|l| {
        let (_, post) = l.split_once(" - ")?;
        let mut f = post.split(' ');
        let fstype = f.next()?;
        let _source = f.next()?;
        let super_opts = f.next()?;
        let target = l.split(' ').nth(4)?;
        (fstype == "cgroup2").then(|| (PathBuf::from(target), super_opts.into()))
    })
}

/// The data string for a remount adding `favordynmods` to `super_opts`, or `None` if it is
/// already set. `rw`/`ro` are mount flags, not cgroup options, so they are left out.
pub fn remount_data(super_opts: &str) -> Option<String> {
    let opts: Vec<&str> = super_opts
        .split(',')
        .filter(|o| !o.is_empty() && *o != "rw" && *o != "ro")
        .collect();
    if opts.contains(&OPTION) {
        return None;
    }
    Some(
        opts.into_iter()
            .chain([OPTION])
            .collect::<Vec<_>>()
            .join(","),
    )
}

/// Turns `favordynmods` on for the host's cgroup2 mount. Returns the mount point if it was
/// changed, `None` if there is no cgroup2 mount or it already had the option.
pub fn favor_dynmods() -> Result<Option<PathBuf>, RuntimeError> {
    let info = fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| RuntimeError::io("read", "/proc/self/mountinfo", e))?;
    let Some((target, super_opts)) = cgroup2_mount(&info) else {
        return Ok(None);
    };
    let Some(data) = remount_data(&super_opts) else {
        return Ok(None);
    };
    cove_sys::mount::mount(
        None,
        &target,
        Some("cgroup2"),
        cove_sys::mount::MS_REMOUNT,
        Some(&data),
    )
    .map_err(|e| RuntimeError::io("remount cgroup2 with favordynmods", &target, e))?;
    Ok(Some(target))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
25 30 0:22 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
26 25 0:23 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw
27 25 0:24 / /sys/fs/cgroup/pids rw,nosuid shared:11 - cgroup cgroup rw,pids
";

    #[test]
    fn finds_the_cgroup2_mount() {
        assert_eq!(
            cgroup2_mount(HYBRID),
            Some(("/sys/fs/cgroup/unified".into(), "rw".into()))
        );
        let v2 = "30 1 0:26 / /sys/fs/cgroup rw shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n";
        assert_eq!(
            cgroup2_mount(v2),
            Some((
                "/sys/fs/cgroup".into(),
                "rw,nsdelegate,memory_recursiveprot".into()
            ))
        );
        assert_eq!(cgroup2_mount(&HYBRID.replace("cgroup2", "cgroupX")), None);
    }

    #[test]
    fn remount_keeps_other_options() {
        assert_eq!(remount_data("rw").as_deref(), Some("favordynmods"));
        assert_eq!(
            remount_data("rw,nsdelegate,memory_recursiveprot").as_deref(),
            Some("nsdelegate,memory_recursiveprot,favordynmods")
        );
        assert_eq!(remount_data("rw,nsdelegate,favordynmods"), None);
    }
}
