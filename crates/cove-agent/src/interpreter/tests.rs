//! Tests of the interpreter: contexts, state, streaming, errors, timeouts, REST routes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::sync::mpsc;

use super::service::{Context, Outcome, Registry};
use super::types::{CreateContextRequest, WireMessage};
use crate::state::{AgentState, SharedState};

fn state(dir: &tempfile::TempDir) -> SharedState {
    let work = dir.path().join("work");
    Arc::new(AgentState::new(
        BTreeMap::from([("SANDBOX_VAR".to_string(), "sv".to_string())]),
        "cove-test-no-such-user".into(),
        Some(work),
    ))
}

/// Everything one run reported, in order; the final outcome last.
struct Run {
    msgs: Vec<(Instant, WireMessage)>,
    end: Outcome,
}

impl Run {
    fn text(&self, kind: &str) -> String {
        self.msgs
            .iter()
            .filter(|(_, m)| m.kind == kind)
            .filter_map(|(_, m)| m.text.clone())
            .collect()
    }

    fn error(&self) -> Option<&WireMessage> {
        self.msgs.iter().map(|(_, m)| m).find(|m| m.kind == "error")
    }
}

async fn run_with(ctx: &Arc<Context>, code: &str, envs: &[(&str, &str)], t: Option<u64>) -> Run {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let envs = envs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    tokio::spawn(
        ctx.clone()
            .run(code.into(), envs, t.map(Duration::from_secs), tx),
    );
    let mut msgs = Vec::new();
    loop {
        let out = tokio::time::timeout(Duration::from_secs(30), rx.recv())
            .await
            .expect("run did not finish")
            .expect("run task ended without an outcome");
        match out {
            Outcome::Msg(m) => msgs.push((Instant::now(), m)),
            end => return Run { msgs, end },
        }
    }
}

async fn run(ctx: &Arc<Context>, code: &str) -> Run {
    run_with(ctx, code, &[], None).await
}

#[tokio::test(flavor = "multi_thread")]
async fn state_persists_and_contexts_are_isolated() {
    let dir = tempfile::tempdir().unwrap();
    let st = state(&dir);
    let reg = Registry::default();
    let def = reg.get(&st, None).unwrap();
    let r = run(&def, "x = 41").await;
    assert_eq!(r.end, Outcome::Completed);
    assert!(r.msgs.is_empty(), "{:?}", r.msgs);
    let r = run(&def, "print(x + 1)").await;
    assert_eq!(r.end, Outcome::Completed);
    assert_eq!(r.text("stdout"), "42\n");

    // The default context is shared ("default" and no id are the same) but not listed.
    let again = reg.get(&st, Some("default")).unwrap();
    assert_eq!(run(&again, "print(x)").await.text("stdout"), "41\n");
    assert!(reg.list().is_empty());

    let info = reg
        .create(&st, CreateContextRequest::default())
        .await
        .unwrap();
    assert!(info.active);
    assert_eq!(info.language, "python");
    assert_eq!(info.cwd, st.work_dir.display().to_string());
    assert_eq!(reg.list(), vec![info.clone()]);
    let other = reg.get(&st, Some(&info.id)).unwrap();
    let r = run(&other, "print(x)").await;
    assert_eq!(r.end, Outcome::Completed);
    assert_eq!(r.error().unwrap().name.as_deref(), Some("NameError"));
    // Runs in the work dir, as the sandbox user, with the sandbox env.
    let r = run(
        &other,
        "import os; print(os.getcwd()); print(os.environ['SANDBOX_VAR'])",
    )
    .await;
    assert_eq!(r.text("stdout"), format!("{}\nsv\n", st.work_dir.display()));

    reg.delete(&info.id).unwrap();
    assert!(reg.list().is_empty());
    assert!(reg.get(&st, Some(&info.id)).is_err());
    assert!(reg.delete(&info.id).is_err());
    assert!(reg.delete("default").is_err());
}

#[tokio::test(flavor = "multi_thread")]
async fn output_is_streamed_in_order_and_errors_reported() {
    let dir = tempfile::tempdir().unwrap();
    let st = state(&dir);
    let reg = Registry::default();
    let ctx = reg.get(&st, None).unwrap();
    let code = "import sys, time, os\nprint('a')\nsys.stderr.write('e1\\n')\ntime.sleep(0.6)\nprint('b')\nos.system('echo sub')\n";
    let r = run(&ctx, code).await;
    assert_eq!(r.end, Outcome::Completed);
    assert_eq!(r.text("stdout"), "a\nb\nsub\n");
    assert_eq!(r.text("stderr"), "e1\n");
    // 'a' was delivered before the sleep, not buffered until the end.
    let a = r
        .msgs
        .iter()
        .find(|(_, m)| m.text.as_deref() == Some("a\n"));
    let b = r
        .msgs
        .iter()
        .find(|(_, m)| m.text.as_deref().is_some_and(|t| t.starts_with('b')));
    let (ta, tb) = (a.expect("a alone").0, b.expect("b").0);
    assert!(tb - ta >= Duration::from_millis(400), "{:?}", tb - ta);

    let r = run(
        &ctx,
        "print('before')\ndef f():\n    raise ValueError('bad value')\nf()\n",
    )
    .await;
    assert_eq!(r.end, Outcome::Completed);
    assert_eq!(r.text("stdout"), "before\n");
    let e = r.error().unwrap();
    assert_eq!(e.name.as_deref(), Some("ValueError"));
    assert_eq!(e.value.as_deref(), Some("bad value"));
    let tb = e.traceback.as_deref().unwrap();
    assert!(
        tb.contains("Traceback") && tb.contains("raise ValueError('bad value')"),
        "{tb}"
    );
    assert!(!tb.contains("driver"), "{tb}");

    let r = run(&ctx, "def (:").await;
    assert_eq!(r.error().unwrap().name.as_deref(), Some("SyntaxError"));
    // exit() does not kill the context.
    let r = run(&ctx, "y = 5\nraise SystemExit(3)").await;
    assert_eq!(r.end, Outcome::Completed);
    assert!(r.error().is_none());
    assert_eq!(run(&ctx, "print(y)").await.text("stdout"), "5\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn envs_apply_to_one_run_only() {
    let dir = tempfile::tempdir().unwrap();
    let st = state(&dir);
    let reg = Registry::default();
    let ctx = reg.get(&st, None).unwrap();
    let code = "import os; print(os.environ.get('ZZ', '-'))";
    let r = run_with(&ctx, code, &[("ZZ", "1")], None).await;
    assert_eq!(r.text("stdout"), "1\n");
    assert_eq!(run(&ctx, code).await.text("stdout"), "-\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn timeout_interrupts_and_keeps_state() {
    let dir = tempfile::tempdir().unwrap();
    let st = state(&dir);
    let reg = Registry::default();
    let ctx = reg.get(&st, None).unwrap();
    run(&ctx, "keep = 7").await;
    let t0 = Instant::now();
    let r = run_with(
        &ctx,
        "import time\nprint('go')\ntime.sleep(60)",
        &[],
        Some(1),
    )
    .await;
    assert_eq!(r.end, Outcome::Timeout);
    assert_eq!(r.text("stdout"), "go\n");
    assert!(t0.elapsed() < Duration::from_secs(10));
    // Interrupted (KeyboardInterrupt), not restarted: state survives.
    assert_eq!(run(&ctx, "print(keep)").await.text("stdout"), "7\n");

    // A cell that swallows the interrupt is killed; the context restarts (state lost).
    let stubborn = "import time\nwhile True:\n    try:\n        time.sleep(60)\n    except KeyboardInterrupt:\n        pass\n";
    let r = run_with(&ctx, stubborn, &[], Some(1)).await;
    assert_eq!(r.end, Outcome::Timeout);
    let r = run(&ctx, "print('alive')\nprint(keep)").await;
    assert_eq!(r.end, Outcome::Completed);
    assert_eq!(r.text("stdout"), "alive\n");
    assert_eq!(r.error().unwrap().name.as_deref(), Some("NameError"));
}

#[tokio::test(flavor = "multi_thread")]
async fn runs_in_one_context_are_serialized() {
    let dir = tempfile::tempdir().unwrap();
    let st = state(&dir);
    let reg = Registry::default();
    let ctx = reg.get(&st, None).unwrap();
    run(&ctx, "n = 0").await;
    let code = "import time\nv = n\ntime.sleep(0.2)\nn = v + 1\nprint(n)";
    let (a, b, c) = tokio::join!(run(&ctx, code), run(&ctx, code), run(&ctx, code));
    let mut got: Vec<String> = [a, b, c].iter().map(|r| r.text("stdout")).collect();
    got.sort();
    assert_eq!(got, vec!["1\n", "2\n", "3\n"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn delete_kills_a_running_context() {
    let dir = tempfile::tempdir().unwrap();
    let st = state(&dir);
    let reg = Arc::new(Registry::default());
    let info = reg
        .create(&st, CreateContextRequest::default())
        .await
        .unwrap();
    let ctx = reg.get(&st, Some(&info.id)).unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let code = "print('x')\nimport time\ntime.sleep(60)";
    tokio::spawn(ctx.clone().run(code.into(), BTreeMap::new(), None, tx));
    // Wait until the cell runs, then delete.
    let first = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .unwrap();
    assert!(matches!(first, Some(Outcome::Msg(_))), "{first:?}");
    reg.delete(&info.id).unwrap();
    let end = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(end, Outcome::Failed(ref m) if m.contains("deleted")),
        "{end:?}"
    );
    assert!(!ctx.info().active);
}

async fn call(sock: &std::path::Path, method: Method, uri: &str, body: &str) -> (u16, Value) {
    let stream = tokio::net::UnixStream::connect(sock).await.unwrap();
    let (mut tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header("host", "agent")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap();
    let resp = tx.send_request(req).await.unwrap();
    let status = resp.status().as_u16();
    let ct = resp.headers()["content-type"].to_str().unwrap().to_string();
    assert_eq!(ct, "application/json");
    let b = resp.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&b).unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn context_routes() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    std::fs::create_dir_all(work.join("sub")).unwrap();
    let sock = dir.path().join("agent.sock");
    let listener = tokio::net::UnixListener::bind(&sock).unwrap();
    let cfg = crate::AgentConfig {
        env: BTreeMap::new(),
        user: "cove-test-no-such-user".into(),
    };
    let opts = crate::AgentOptions {
        work_dir: Some(work.clone()),
        ..Default::default()
    };
    tokio::spawn(crate::serve(listener, crate::router_with(cfg, opts)));
    let base = "/process/interpreter/context";

    let (s, v) = call(&sock, Method::POST, base, "{}").await;
    assert_eq!(s, 200, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    assert_eq!(v["active"], true);
    assert_eq!(v["language"], "python");
    assert_eq!(v["cwd"], work.display().to_string());
    assert!(v["createdAt"].as_str().is_some());

    let (s, v2) = call(
        &sock,
        Method::POST,
        base,
        r#"{"cwd":"sub","language":"python"}"#,
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(v2["cwd"], work.join("sub").display().to_string());

    let (s, l) = call(&sock, Method::GET, base, "").await;
    assert_eq!(s, 200);
    let ids: Vec<&str> = l["contexts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![id.as_str(), v2["id"].as_str().unwrap()]);

    let (s, v) = call(&sock, Method::POST, base, r#"{"cwd":"nope"}"#).await;
    assert_eq!((s, v["code"].as_str()), (400, Some("BAD_REQUEST")));
    let (s, v) = call(&sock, Method::POST, base, r#"{"language":"ruby"}"#).await;
    assert_eq!((s, v["source"].as_str()), (400, Some("DAYTONA_DAEMON")));

    let (s, v) = call(&sock, Method::DELETE, &format!("{base}/{id}"), "").await;
    assert_eq!(s, 200);
    assert!(v["message"].as_str().is_some());
    let (s, v) = call(&sock, Method::DELETE, &format!("{base}/{id}"), "").await;
    assert_eq!((s, v["code"].as_str()), (404, Some("NOT_FOUND")));
    let (_, l) = call(&sock, Method::GET, base, "").await;
    assert_eq!(l["contexts"].as_array().unwrap().len(), 1);
}
