//! End-to-end: lifecycle timers survive a server restart. Timer inputs (intervals, TTL
//! deadlines, when a sandbox stopped, last activity) live in the store, so a timer that comes
//! due while the server is down fires once it is back. A "minute" is 1 s here.

mod common;

use std::time::Duration;

use common::{labelled, nonce, wait_until_async, Server};
use cove_sdk::{Client, Timer};

/// The sandbox's state as a list shows it, or "gone" (a list is not activity on a sandbox; a
/// GET would be, and would keep resetting its idle timer).
async fn state_or_gone(c: &Client, id: &str) -> String {
    let all = c.list(None).await.expect("list");
    all.into_iter()
        .find(|sb| sb.id == id)
        .map_or("gone".into(), |sb| sb.state.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timers_fire_after_a_restart() {
    let mut srv = Server::start_with(&["--minute-seconds", "1"]);
    let c = srv.client();
    let tag = nonce();
    let mk = || labelled("timers", &tag);

    let idle = c.create(&mk()).await.expect("create idle");
    c.set_timer(&idle.id, Timer::AutoStop, 4).await.unwrap();

    let stopped = c.create(&mk()).await.expect("create stopped");
    c.set_timer(&stopped.id, Timer::AutoStop, 0).await.unwrap();
    c.set_timer(&stopped.id, Timer::AutoDelete, 4)
        .await
        .unwrap();
    c.stop(&stopped.id).await.expect("stop");

    let ttl = c.create(&mk()).await.expect("create ttl");
    c.set_timer(&ttl.id, Timer::AutoStop, 0).await.unwrap();
    let sb = c.set_timer(&ttl.id, Timer::Ttl, 4).await.unwrap();
    assert!(sb.auto_destroy_at.is_some(), "TTL deadline shown: {sb:?}");

    // A control with every timer off stays as it is.
    let keep = c.create(&mk()).await.expect("create keep");
    c.set_timer(&keep.id, Timer::AutoStop, 0).await.unwrap();

    // The server dies before any timer is due and stays down past every deadline.
    srv.kill9();
    tokio::time::sleep(Duration::from_secs(6)).await;
    srv.restart(None);
    let c = srv.client();

    let settled = wait_until_async(Duration::from_secs(20), || async {
        state_or_gone(&c, &idle.id).await == "stopped"
            && state_or_gone(&c, &stopped.id).await == "gone"
            && state_or_gone(&c, &ttl.id).await == "gone"
    })
    .await;
    assert!(
        settled,
        "after restart: idle={} stopped={} ttl={}\n{}",
        state_or_gone(&c, &idle.id).await,
        state_or_gone(&c, &stopped.id).await,
        state_or_gone(&c, &ttl.id).await,
        srv.log()
    );
    assert_eq!(state_or_gone(&c, &keep.id).await, "started");
    for id in [&idle.id, &keep.id] {
        c.delete(id).await.expect("delete");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttl_validates_and_clears() {
    let srv = Server::start_with(&["--minute-seconds", "1"]);
    let c = srv.client();
    let sb = c.create(&labelled("ttl", &nonce())).await.expect("create");
    for bad in ["-1", "abc", "1.5"] {
        let url = format!("{}/sandbox/{}/ttl/{bad}", srv.api_url, sb.id);
        let r = reqwest::Client::new()
            .post(&url)
            .bearer_auth(&srv.key)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "ttl/{bad}");
        let body: serde_json::Value = r.json().await.unwrap();
        assert!(
            body["message"]
                .as_str()
                .unwrap_or("")
                .contains("ttlMinutes"),
            "{body}"
        );
    }
    let fresh = c
        .list(None)
        .await
        .unwrap()
        .into_iter()
        .find(|s| s.id == sb.id);
    assert_eq!(
        fresh.unwrap().auto_destroy_at,
        None,
        "rejected TTLs set nothing"
    );
    // Set then cleared: the sandbox outlives the deadline it no longer has.
    c.set_timer(&sb.id, Timer::Ttl, 2).await.unwrap();
    let cleared = c.set_timer(&sb.id, Timer::Ttl, 0).await.unwrap();
    assert_eq!(cleared.auto_destroy_at, None);
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(state_or_gone(&c, &sb.id).await, "started");
    c.delete(&sb.id).await.expect("delete");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconciler_retries_a_failed_destroy() {
    let mut srv = Server::start_with(&["--minute-seconds", "1"]);
    srv.kill9();
    // The first destroy fails (injected); nothing else does.
    srv.restart(Some("fail:destroy"));
    let c = srv.client();
    let sb = c
        .create(&labelled("retry", &nonce()))
        .await
        .expect("create");
    let dir = srv.data_dir().join("sandboxes").join(&sb.id);
    assert!(dir.is_dir());
    let err = c.delete(&sb.id).await.expect_err("injected failure");
    assert_eq!(err.status(), Some(500), "{err}");
    // Retried by the reconciler on a later tick: gone, files and all.
    let gone = wait_until_async(Duration::from_secs(15), || async {
        state_or_gone(&c, &sb.id).await == "gone"
    })
    .await;
    assert!(
        gone,
        "still {}\n{}",
        state_or_gone(&c, &sb.id).await,
        srv.log()
    );
    assert!(!dir.exists(), "{} left behind", dir.display());
    assert!(srv.log().contains("reconciler: retrying"), "{}", srv.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconciler_retries_a_failed_boot() {
    let mut srv = Server::start_with(&["--minute-seconds", "1"]);
    srv.kill9();
    // The first boot fails (injected); the reconciler boots it on a later tick.
    srv.restart(Some("fail:boot"));
    let c = srv.client();
    let err = c
        .create(&labelled("retry", &nonce()))
        .await
        .expect_err("the first boot fails");
    let cove_sdk::Error::State { id, reason } = err else {
        panic!("not a state error: {err}");
    };
    assert!(reason.contains("injected"), "{reason}");
    let sb = c.get(&id).await.expect("get");
    let booted = wait_until_async(Duration::from_secs(15), || async {
        state_or_gone(&c, &sb.id).await == "started"
    })
    .await;
    assert!(booted, "{}\n{}", state_or_gone(&c, &sb.id).await, srv.log());
    let (code, out) = common::sh(&c, &sb, "echo ok").await;
    assert_eq!((code, out.as_str()), (0, "ok\n"));
    let got = c.get(&sb.id).await.expect("get");
    assert_eq!(got.error_reason, None, "{got:?}");
    c.delete(&sb.id).await.expect("delete");
}
