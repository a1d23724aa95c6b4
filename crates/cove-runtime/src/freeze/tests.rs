//! Tests of freezing: the v2 file protocol on a fake tree, and a real freeze of a real
//! process in the host's cgroups and, on a hybrid host, in its v2 hierarchy (as root).

use super::*;
use crate::cgroup::{self, Limits};
use crate::sys::RealSys;

#[test]
fn own_cgroup_is_parsed_per_controller() {
    let text = "12:pids:/a\n6:freezer:/x/y\n4:cpu,cpuacct:/c\n0::/unified\n";
    assert_eq!(parse_own_cgroup(text, "freezer").as_deref(), Some("/x/y"));
    assert_eq!(parse_own_cgroup(text, "cpu").as_deref(), Some("/c"));
    assert_eq!(parse_own_cgroup(text, "memory"), None);
}

#[test]
fn v2_writes_freeze_and_waits_for_the_event() {
    let t = tempfile::tempdir().unwrap();
    let layout = Layout::V2 {
        root: t.path().into(),
    };
    let dir = t.path().join(PARENT).join("sb");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("cgroup.events"), "populated 1\nfrozen 1\n").unwrap();
    freeze(&layout, "sb", Duration::from_secs(1)).unwrap();
    assert_eq!(fs::read_to_string(dir.join("cgroup.freeze")).unwrap(), "1");
    thaw(&layout, "sb", TIMEOUT).unwrap();
    assert_eq!(fs::read_to_string(dir.join("cgroup.freeze")).unwrap(), "0");

    // Never frozen: the freeze gives up and thaws again.
    fs::write(dir.join("cgroup.events"), "populated 1\nfrozen 0\n").unwrap();
    let e = freeze(&layout, "sb", Duration::from_millis(20)).unwrap_err();
    assert!(e.to_string().contains("frozen 1"), "{e}");
    assert_eq!(fs::read_to_string(dir.join("cgroup.freeze")).unwrap(), "0");

    let e = freeze(&layout, "absent", TIMEOUT).unwrap_err();
    assert!(e.to_string().contains("not running"), "{e}");
    thaw(&layout, "absent", TIMEOUT).unwrap();
}

/// A shell loop that appends to `out` every 5 ms until killed.
fn ticking(out: &Path) -> std::process::Child {
    std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "while :; do echo x >> {}; sleep 0.005; done",
            out.display()
        ))
        .spawn()
        .unwrap()
}

/// Size of a file that a shell loop appends to while it runs.
fn size(p: &Path) -> u64 {
    fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

#[test]
fn a_frozen_process_makes_no_progress_until_thawed() {
    let root = Path::new(cgroup::DEFAULT_ROOT);
    let Ok(layout) = cgroup::detect(root) else {
        eprintln!("skipping: no cgroups");
        return;
    };
    if !fs::metadata("/proc/self").is_ok_and(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0) {
        eprintln!("skipping: needs root");
        return;
    }
    if matches!(layout, Layout::V1 { .. }) && !root.join("freezer/cgroup.procs").exists() {
        eprintln!("skipping: cgroup v1 without a freezer");
        return;
    }
    let id = format!("freeze-test-{}", std::process::id());
    let limits = Limits {
        cpu: 0,
        memory_mib: 0,
        pids_max: 64,
    };
    let procs = layout.create(&RealSys, &id, limits).unwrap();
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("ticks");
    let mut child = ticking(&out);
    for p in &procs {
        fs::write(p, child.id().to_string()).unwrap();
    }
    let result = freeze_stops_and_thaw_resumes(&layout, &id, &out);
    let _ = thaw(&layout, &id, TIMEOUT);
    let _ = child.kill();
    let _ = child.wait();
    layout.remove(&id, TIMEOUT).unwrap();
    result.unwrap();
}

/// Freezes sandbox `id` (whose process appends to `out`), checks it makes no progress, thaws
/// it and checks it goes on; thawing twice is fine.
fn freeze_stops_and_thaw_resumes(layout: &Layout, id: &str, out: &Path) -> Result<(), String> {
    assert!(wait_for(|| size(out) > 0), "loop never ran");
    freeze(layout, id, TIMEOUT).map_err(|e| e.to_string())?;
    let frozen_at = size(out);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(size(out), frozen_at, "output grew while frozen");
    thaw(layout, id, TIMEOUT).map_err(|e| e.to_string())?;
    assert!(wait_for(|| size(out) > frozen_at), "no progress after thaw");
    if let Layout::V1 { root } = layout {
        assert!(!freezer_dir(root, id).exists(), "freezer cgroup removed");
    }
    thaw(layout, id, TIMEOUT).map_err(|e| e.to_string()) // idempotent
}

/// The v2 freeze against the kernel on a hybrid host: `cgroup.freeze` is a core file of
/// every v2 cgroup, so the controller-less v2 hierarchy beside the v1 controllers can freeze
/// a real process (on a pure-v2 host the test above already runs the v2 path).
#[test]
fn v2_freeze_on_the_hosts_v2_hierarchy() {
    let unified = Path::new(cgroup::DEFAULT_ROOT).join("unified");
    if !unified.join("cgroup.procs").exists() {
        eprintln!("skipping: no separate cgroup v2 hierarchy (pure v1 or pure v2 host)");
        return;
    }
    let root = unified.join(format!("cove-freeze-test-{}", std::process::id()));
    let id = "sb";
    let dir = root.join(PARENT).join(id);
    if let Err(e) = fs::create_dir_all(&dir) {
        eprintln!(
            "skipping: cannot create {} ({e}); needs root",
            dir.display()
        );
        return;
    }
    if !dir.join("cgroup.freeze").exists() {
        let _ = fs::remove_dir(&dir);
        eprintln!("skipping: kernel without cgroup.freeze");
        return;
    }
    let layout = Layout::V2 { root: root.clone() };
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("ticks");
    let mut child = ticking(&out);
    fs::write(dir.join("cgroup.procs"), child.id().to_string()).unwrap();
    let result = freeze_stops_and_thaw_resumes(&layout, id, &out);
    let _ = thaw(&layout, id, TIMEOUT);
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        wait_for(|| fs::remove_dir(&dir).is_ok()),
        "{} still busy",
        dir.display()
    );
    fs::remove_dir(root.join(PARENT)).unwrap();
    fs::remove_dir(&root).unwrap();
    result.unwrap();
}

fn wait_for(mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    false
}
