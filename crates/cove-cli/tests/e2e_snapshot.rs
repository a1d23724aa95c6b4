//! End-to-end: a server crash in the middle of `POST /sandbox/{id}/snapshot` (right after the
//! sandbox is marked `snapshotting`, and while a started sandbox is frozen for the copy)
//! leaves, after a restart, the sandbox in its actual state (thawed, processes and files
//! intact), the snapshot in `error`, and no layer dir behind.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{labelled, nonce, sh, Server};
use serde_json::{json, Value};

async fn raw(
    srv: &Server,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .request(method, format!("{}{path}", srv.api_url))
        .bearer_auth(&srv.key)
        .timeout(Duration::from_secs(60));
    if let Some(b) = body {
        req = req.json(&b);
    }
    match req.send().await {
        Ok(r) => {
            let status = r.status().as_u16();
            (status, r.json().await.unwrap_or(Value::Null))
        }
        Err(_) => (0, Value::Null), // the server aborted mid-request
    }
}

/// Whether the sandbox's processes are frozen (cgroup v1 freezer or v2 cgroup.freeze).
fn frozen(id: &str) -> bool {
    let root = Path::new("/sys/fs/cgroup");
    let v1 = root.join("freezer/cove").join(id).join("freezer.state");
    let v2 = root.join("cove").join(id).join("cgroup.events");
    std::fs::read_to_string(v1).is_ok_and(|s| s.trim() == "FROZEN")
        || std::fs::read_to_string(v2).is_ok_and(|s| s.lines().any(|l| l == "frozen 1"))
}

fn crashed_then_restart(srv: &mut Server, point: &str) {
    assert!(
        srv.wait_exit(Duration::from_secs(60)),
        "server did not abort at {point}:\n{}",
        srv.log()
    );
    srv.restart(None);
}

/// Asserts the snapshot named `name` is in `error` and that no layer dir of it is left.
async fn interrupted(srv: &Server, name: &str) {
    let (status, snap) = raw(
        srv,
        reqwest::Method::GET,
        &format!("/snapshots/{name}"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{snap}");
    assert_eq!(snap["state"], "error", "{snap}");
    assert!(
        snap["errorReason"]
            .as_str()
            .unwrap_or("")
            .contains("server stopped"),
        "{snap}"
    );
    let id = snap["id"].as_str().expect("id");
    let layers = srv.data_dir().join("layers");
    assert!(!layers.join(id).exists() && !layers.join(format!(".tmp-{id}")).exists());
    let (status, _) = raw(
        srv,
        reqwest::Method::DELETE,
        &format!("/snapshots/{id}"),
        None,
    )
    .await;
    assert_eq!(status, 200, "an errored snapshot can be deleted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_mid_snapshot_settles() {
    let mut srv = Server::start();
    let c = srv.client();
    let tag = nonce();
    let sb = c.create(&labelled("snap", &tag)).await.expect("create");
    let (code, out) = sh(
        &c,
        &sb,
        "echo kept > $HOME/kept.txt; nohup sleep 1000 >/dev/null 2>&1 & echo $!",
    )
    .await;
    assert_eq!(code, 0, "{out}");
    let sleeper = out.trim().to_string();

    // Frozen when the server dies: a restart thaws it and keeps it started.
    srv.kill9();
    srv.restart(Some("after:frozen"));
    let name = format!("frozen-{tag}");
    let path = format!("/sandbox/{}/snapshot", sb.id);
    let (status, body) = raw(
        &srv,
        reqwest::Method::POST,
        &path,
        Some(json!({"name": name})),
    )
    .await;
    assert_eq!(
        (status, body["state"].as_str()),
        (200, Some("snapshotting")),
        "{body}"
    );
    assert!(
        srv.wait_exit(Duration::from_secs(60)),
        "no abort:\n{}",
        srv.log()
    );
    assert!(frozen(&sb.id), "the crash happened while frozen");
    srv.restart(None);
    assert!(!frozen(&sb.id), "thawed at restart");
    let got = c.get(&sb.id).await.expect("get");
    assert_eq!(got.state.as_deref(), Some("started"), "{got:?}");
    let (code, out) = sh(&c, &sb, &format!("kill -0 {sleeper} && cat $HOME/kept.txt")).await;
    assert_eq!(
        (code, out.as_str()),
        (0, "kept\n"),
        "processes and files intact"
    );
    interrupted(&srv, &name).await;

    // Stopped, crash right after `snapshotting` is written: back to stopped.
    c.stop(&sb.id).await.expect("stop");
    srv.kill9();
    srv.restart(Some("after:snapshotting"));
    let name = format!("stopped-{tag}");
    raw(
        &srv,
        reqwest::Method::POST,
        &path,
        Some(json!({"name": name})),
    )
    .await;
    crashed_then_restart(&mut srv, "after:snapshotting");
    let got = c.get(&sb.id).await.expect("get");
    assert_eq!(got.state.as_deref(), Some("stopped"), "{got:?}");
    interrupted(&srv, &name).await;

    // And the sandbox can still be snapshotted and used.
    let name = format!("after-{tag}");
    let (status, _) = raw(
        &srv,
        reqwest::Method::POST,
        &path,
        Some(json!({"name": name})),
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        common::wait_until_async(Duration::from_secs(60), || async {
            c.get(&sb.id)
                .await
                .is_ok_and(|s| s.state.as_deref() == Some("stopped"))
        })
        .await
    );
    let (_, snap) = raw(
        &srv,
        reqwest::Method::GET,
        &format!("/snapshots/{name}"),
        None,
    )
    .await;
    assert_eq!(snap["state"], "active", "{snap}");
    let (status, _) = raw(
        &srv,
        reqwest::Method::DELETE,
        &format!("/snapshots/{name}"),
        None,
    )
    .await;
    assert_eq!(status, 200);
}
