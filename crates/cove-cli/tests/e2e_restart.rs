//! End-to-end: restart safety. A SIGKILLed server comes back on the same data dir with its
//! sandboxes (processes, files) intact, and a crash right after each transition is written
//! (`COVE_FAILPOINT`) settles into a consistent state whose runtime matches the store; a crash
//! mid-archive or mid-restore never loses a sandbox's files.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::{labelled, nonce, sh, wait_until_async, Server};
use cove_runtime::{Runtime, RuntimeConfig};
use cove_sdk::{Client, Sandbox};

/// The runtime's view of the server's data dir (for "is PID 1 alive").
fn runtime(srv: &Server) -> Runtime {
    Runtime::new(RuntimeConfig {
        data_dir: srv.data_dir(),
        images_dir: common::images_dir(),
        init_exe: PathBuf::from(env!("CARGO_BIN_EXE_cove")),
    })
    .expect("runtime")
}

async fn state(c: &Client, id: &str) -> String {
    c.get(id)
        .await
        .unwrap_or_else(|e| panic!("get {id}: {e}"))
        .state
        .unwrap_or_default()
}

/// Writes a file and starts `sleep 1000` in the background; returns its pid inside.
async fn seed(c: &Client, sb: &Sandbox) -> String {
    let (code, out) = sh(
        c,
        sb,
        &format!(
            "echo data-{} > $HOME/restart.txt; nohup sleep 1000 >/dev/null 2>&1 & echo $!",
            sb.id
        ),
    )
    .await;
    assert_eq!(code, 0, "{out}");
    out.trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_keeps_sandboxes() {
    let mut srv = Server::start();
    let c = srv.client();
    let tag = nonce();
    let mut started = Vec::new();
    for _ in 0..2 {
        let sb = c.create(&labelled("restart", &tag)).await.expect("create");
        let pid = seed(&c, &sb).await;
        started.push((sb, pid));
    }
    let stopped = c.create(&labelled("restart", &tag)).await.expect("create");
    seed(&c, &stopped).await;
    c.stop(&stopped.id).await.expect("stop");
    let pid1s: Vec<i32> = started
        .iter()
        .map(|(sb, _)| runtime(&srv).running(&sb.id).expect("running").pid)
        .collect();

    srv.kill9();
    srv.restart(None);

    let rt = runtime(&srv);
    for ((sb, pid), pid1) in started.iter().zip(pid1s) {
        assert_eq!(state(&c, &sb.id).await, "started", "{}", sb.id);
        assert_eq!(
            rt.running(&sb.id).map(|r| r.pid),
            Some(pid1),
            "PID 1 adopted"
        );
        let (code, out) = sh(
            &c,
            sb,
            &format!(
                "kill -0 {pid} && cat /proc/{pid}/cmdline | tr '\\0' ' ' && cat $HOME/restart.txt"
            ),
        )
        .await;
        assert_eq!(code, 0, "{out}");
        assert_eq!(out, format!("sleep 1000 data-{}\n", sb.id));
    }
    assert_eq!(state(&c, &stopped.id).await, "stopped");
    assert!(
        rt.running(&stopped.id).is_none(),
        "stopped sandbox has no PID 1"
    );
    let sb = c.start(&stopped.id).await.expect("start after restart");
    assert_eq!(sb.state.as_deref(), Some("started"));
    assert_eq!(
        sh(&c, &sb, "cat $HOME/restart.txt").await,
        (0, format!("data-{}\n", sb.id))
    );
}

/// Waits for the server to abort at its failpoint and starts it again without one.
fn crashed_then_restart(srv: &mut Server, point: &str) {
    assert!(
        srv.wait_exit(Duration::from_secs(60)),
        "server did not abort at {point}:\n{}",
        srv.log()
    );
    srv.restart(None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_mid_transition_settles() {
    let mut srv = Server::start();
    let c = srv.client();
    let tag = nonce();

    // after:creating → error "not booted" at start-up, then the reconciler's first tick
    // finishes the create.
    srv.kill9();
    srv.restart(Some("after:creating"));
    assert!(
        c.create(&labelled("fp", &tag)).await.is_err(),
        "the connection drops"
    );
    crashed_then_restart(&mut srv, "after:creating");
    let list = c.list(None).await.expect("list");
    assert_eq!(list.len(), 1, "{list:?}");
    let id = list[0].id.clone();
    let booted = wait_until_async(Duration::from_secs(30), || async {
        state(&c, &id).await == "started"
    })
    .await;
    assert!(booted, "{}\n{}", state(&c, &id).await, srv.log());
    assert!(
        srv.log()
            .contains(&format!("reconcile: {id} creating → error")),
        "{}",
        srv.log()
    );
    assert!(srv.log().contains("reconciler: retrying"), "{}", srv.log());
    let sb = c.get(&id).await.expect("get");
    assert!(sb.error_reason.is_none(), "{sb:?}");
    assert_eq!(sh(&c, &sb, "echo ok").await, (0, "ok\n".into()));

    // after:stopping → stopped, no PID 1.
    srv.kill9();
    srv.restart(Some("after:stopping"));
    assert!(c.stop(&sb.id).await.is_err());
    crashed_then_restart(&mut srv, "after:stopping");
    assert_eq!(state(&c, &sb.id).await, "stopped");
    assert!(
        runtime(&srv).running(&sb.id).is_none(),
        "stopped has no PID 1"
    );

    // after:starting → stopped (rolled back), no PID 1; start works.
    srv.kill9();
    srv.restart(Some("after:starting"));
    assert!(c.start(&sb.id).await.is_err());
    crashed_then_restart(&mut srv, "after:starting");
    assert_eq!(state(&c, &sb.id).await, "stopped");
    assert!(
        runtime(&srv).running(&sb.id).is_none(),
        "stopped has no PID 1"
    );
    let sb = c.start(&sb.id).await.expect("start");
    assert_eq!(sb.state.as_deref(), Some("started"));
    assert!(runtime(&srv).running(&sb.id).is_some());

    // after:destroying → gone, files and all.
    srv.kill9();
    srv.restart(Some("after:destroying"));
    assert!(c.delete(&sb.id).await.is_err());
    crashed_then_restart(&mut srv, "after:destroying");
    let err = c.get(&sb.id).await.expect_err("deleted");
    assert_eq!(err.status(), Some(404), "{err}");
    assert!(runtime(&srv).running(&sb.id).is_none());
    assert!(!srv.data_dir().join("sandboxes").join(&sb.id).exists());
}

fn object(srv: &Server, id: &str) -> PathBuf {
    srv.data_dir()
        .join("objects/sandboxes")
        .join(id)
        .join("upper.tar.zst")
}

fn upper(srv: &Server, id: &str) -> PathBuf {
    runtime(srv).upper_dir(id)
}

/// The sandbox's file, read through a start (which restores an archived sandbox).
async fn started_file(c: &Client, id: &str) -> String {
    let sb = c.start(id).await.expect("start");
    assert_eq!(sb.state.as_deref(), Some("started"));
    let (code, out) = sh(c, &sb, "cat $HOME/restart.txt").await;
    assert_eq!(code, 0, "{out}");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_mid_archive_or_restore_never_loses_files() {
    let mut srv = Server::start();
    let c = srv.client();
    let sb = c.create(&labelled("fp", &nonce())).await.expect("create");
    seed(&c, &sb).await;
    let want = format!("data-{}\n", sb.id);
    c.stop(&sb.id).await.expect("stop");

    // after:archiving → the upload never happened: stopped, local files kept.
    srv.kill9();
    srv.restart(Some("after:archiving"));
    assert!(c.archive(&sb.id).await.is_err(), "the connection drops");
    crashed_then_restart(&mut srv, "after:archiving");
    assert_eq!(state(&c, &sb.id).await, "stopped");
    assert!(upper(&srv, &sb.id).is_dir(), "local files kept");
    assert!(!object(&srv, &sb.id).exists());
    assert_eq!(started_file(&c, &sb.id).await, want);
    c.stop(&sb.id).await.expect("stop");

    // after:archive-uploaded → the object is complete: archived, local files freed.
    srv.kill9();
    srv.restart(Some("after:archive-uploaded"));
    assert!(c.archive(&sb.id).await.is_err());
    crashed_then_restart(&mut srv, "after:archive-uploaded");
    assert_eq!(state(&c, &sb.id).await, "archived");
    assert!(!upper(&srv, &sb.id).exists(), "local files freed");
    assert!(object(&srv, &sb.id).is_file());

    // after:restoring → back to archived (a partial restore is wiped); start restores.
    srv.kill9();
    srv.restart(Some("after:restoring"));
    assert!(c.start(&sb.id).await.is_err());
    crashed_then_restart(&mut srv, "after:restoring");
    assert_eq!(state(&c, &sb.id).await, "archived");
    assert!(!upper(&srv, &sb.id).exists());
    assert!(object(&srv, &sb.id).is_file(), "the archive is kept");
    assert!(runtime(&srv).running(&sb.id).is_none());
    assert_eq!(started_file(&c, &sb.id).await, want);
    assert!(
        common::wait_until(Duration::from_secs(30), || !object(&srv, &sb.id).exists()),
        "the archive goes once the restore is on disk"
    );

    // Objects nothing needs (one the store does not name, e.g. left by a crash mid-upload;
    // one of a sandbox that is gone) are swept after a restart.
    srv.kill9();
    std::fs::create_dir_all(object(&srv, &sb.id).parent().unwrap()).unwrap();
    std::fs::write(object(&srv, &sb.id), b"left by a crash").unwrap();
    let orphan = object(&srv, "no-such-sandbox");
    std::fs::create_dir_all(orphan.parent().unwrap()).unwrap();
    std::fs::write(&orphan, b"orphan").unwrap();
    srv.restart(None);
    assert!(
        common::wait_until(Duration::from_secs(30), || !orphan.exists()
            && !object(&srv, &sb.id).exists()),
        "swept"
    );
    assert_eq!(state(&c, &sb.id).await, "started");
}
