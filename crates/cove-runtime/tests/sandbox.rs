//! End-to-end: boots real sandboxes from the default image (root needed; the image is built
//! on first use into $COVE_IMAGES_DIR or /var/cache/cove/images) and checks isolation.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Instant;

use cove_runtime::{Running, Runtime, RuntimeConfig, SandboxSpec};

fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// Runs `cmd` in the sandbox through the test agent; returns (output, exit code).
fn sh(r: &Running, cmd: &str) -> (String, i32) {
    let mut s = UnixStream::connect(&r.socket)
        .unwrap_or_else(|e| panic!("connect {}: {e}", r.socket.display()));
    s.write_all(cmd.as_bytes()).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (body, code) = out
        .trim_end()
        .rsplit_once("exit=")
        .unwrap_or_else(|| panic!("no exit line in {out:?}"));
    (body.to_string(), code.trim().parse().unwrap())
}

fn spec(id: &str, image: cove_runtime::ImageRef, memory_mib: u64) -> SandboxSpec {
    SandboxSpec {
        id: id.into(),
        image,
        env: BTreeMap::new(),
        user: "daytona".into(),
        cpu: 1,
        memory_mib,
        disk_gib: 1,
        pids_max: 256,
        no_new_privs: false,
        mounts: Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sandboxes_are_isolated() {
    if !is_root() {
        eprintln!("skipping: needs root");
        return;
    }
    let images =
        std::env::var("COVE_IMAGES_DIR").unwrap_or_else(|_| "/var/cache/cove/images".into());
    let data = tempfile::tempdir().unwrap();
    let rt = Runtime::new(RuntimeConfig {
        data_dir: data.path().into(),
        images_dir: PathBuf::from(images),
        init_exe: env!("CARGO_BIN_EXE_cove-runtime-test-init").into(),
    })
    .unwrap();
    let image = rt
        .ensure_default_image(&|l| eprintln!("image: {l}"))
        .await
        .unwrap();

    let suffix = std::process::id();
    let (a, b) = (format!("rt-a-{suffix}"), format!("rt-b-{suffix}"));
    let t = Instant::now();
    let ra = rt.start(&spec(&a, image.clone(), 512)).await.unwrap();
    let boot = t.elapsed();
    println!("boot time (start() to ready): {boot:?}");
    eprintln!("boot time (start() to ready): {boot:?}");
    let rb = rt.start(&spec(&b, image.clone(), 512)).await.unwrap();
    assert_eq!(rt.running(&a), Some(ra.clone()));
    // start is idempotent while running
    assert_eq!(rt.start(&spec(&a, image.clone(), 512)).await.unwrap(), ra);

    let (h, c) = sh(&ra, "hostname");
    assert_eq!((h.trim(), c), (a.as_str(), 0));
    let (ps, _) = sh(&ra, "ls /proc | grep -E '^[0-9]+$' | wc -l");
    assert!(
        ps.trim().parse::<u32>().unwrap() <= 6,
        "only its own processes: {ps}"
    );
    let (one, _) = sh(&ra, "cat /proc/1/cmdline | tr '\\0' ' '");
    assert!(one.contains("__sandbox-init"), "pid 1 is the agent: {one}");
    let (map, _) = sh(&ra, "cat /proc/self/uid_map");
    assert!(!map.contains("4294967295"), "{map}");
    assert_eq!(
        map.split_whitespace().collect::<Vec<_>>(),
        ["0", "1000000", "65536"]
    );
    let (id, _) = sh(&ra, "id -u; sudo -u daytona id -u");
    let ids: Vec<&str> = id
        .lines()
        .filter(|l| l.chars().all(|c| c.is_ascii_digit()))
        .collect();
    assert_eq!(ids, ["0", "1000"], "sudo works (setuid kept): {id}");
    let (_, c) = sh(&ra, "sudo -u daytona sudo -n true");
    assert_eq!(c, 0, "passwordless sudo for daytona");

    // Host files are invisible; writes stay inside.
    let secret = data.path().join("host-secret");
    std::fs::write(&secret, "x").unwrap();
    let (_, c) = sh(&ra, &format!("test -e {}", secret.display()));
    assert_ne!(c, 0, "host file visible");
    let (_, c) = sh(&ra, "test -e /root/.cargo");
    assert_ne!(c, 0, "host /root visible");
    let (_, c) = sh(
        &ra,
        &format!("echo inside > /tmp/written-{suffix} && mkdir -p /root/x"),
    );
    assert_eq!(c, 0);
    assert!(
        !Path::new(&format!("/tmp/written-{suffix}")).exists(),
        "write reached the host"
    );

    // Two sandboxes don't see each other's files.
    let (_, c) = sh(&rb, &format!("test -e /tmp/written-{suffix}"));
    assert_ne!(c, 0, "b sees a's file");

    // Hardening: no mounts, no nested user namespaces, lo is up.
    let (_, c) = sh(&ra, "mount -t tmpfs t /mnt");
    assert_ne!(c, 0, "mount allowed");
    let (o, c) = sh(&ra, "unshare -U true");
    assert_ne!(c, 0, "unshare -U allowed: {o}");
    let (o, _) = sh(&ra, "cat /sys/class/net/lo/operstate; ls /sys/class/net");
    assert!(o.contains("lo") && !o.contains("eth"), "{o}");
    let (o, c) = sh(&ra, "python3 -c 'import socket; s=socket.socket(); s.bind((\"127.0.0.1\",0)); s.listen(); print(\"ok\")'");
    assert_eq!((o.trim(), c), ("ok", 0));

    // The memory limit kills the allocating process, not PID 1.
    let (o, c) = sh(&ra, "python3 -c 'b=b\"x\"*(2*1024**3); print(len(b))'");
    assert_ne!(c, 0, "allocation beyond the limit succeeded: {o}");
    let (h, c) = sh(&ra, "hostname");
    assert_eq!((h.trim(), c), (a.as_str(), 0), "PID 1 survived the OOM");

    // Stop keeps files; start again sees them.
    rt.stop(&a, false).await.unwrap();
    assert_eq!(rt.running(&a), None);
    assert!(
        !Path::new(&format!("/sys/fs/cgroup/memory/cove/{a}")).exists(),
        "cgroup removed"
    );
    rt.stop(&a, false).await.unwrap(); // idempotent
    let ra = rt.start(&spec(&a, image.clone(), 512)).await.unwrap();
    let (o, _) = sh(&ra, &format!("cat /tmp/written-{suffix}"));
    assert_eq!(o.trim(), "inside", "upper kept across stop/start");

    // A frozen sandbox (a snapshot whose thaw failed, say) still stops, and starts again.
    rt.freeze(&a).await.unwrap();
    let t = Instant::now();
    rt.stop(&a, true).await.unwrap();
    eprintln!("stop of a frozen sandbox: {:?}", t.elapsed());
    assert_eq!(rt.running(&a), None);
    let ra = rt.start(&spec(&a, image.clone(), 512)).await.unwrap();
    assert_eq!(sh(&ra, "echo up").0.trim(), "up");

    rt.destroy(&a).await.unwrap();
    rt.destroy(&b).await.unwrap();
    assert!(!data.path().join("sandboxes").join(&a).exists());
    rt.destroy(&b).await.unwrap(); // idempotent
    assert!(!Path::new(&format!("/proc/{}", rb.pid)).exists() || rt.running(&b).is_none());
}
