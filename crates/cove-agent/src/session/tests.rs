//! Session endpoint tests: the router served on a unix socket, driven by hyper.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{router_with, serve, AgentConfig, AgentOptions};

struct Agent {
    _dir: tempfile::TempDir,
    sock: PathBuf,
}

async fn start() -> Agent {
    start_with_entrypoint(Vec::new()).await
}

async fn start_with_entrypoint(entrypoint: Vec<String>) -> Agent {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    let sock = dir.path().join("agent.sock");
    let listener = tokio::net::UnixListener::bind(&sock).unwrap();
    let cfg = AgentConfig {
        env: BTreeMap::new(),
        user: "cove-test-no-such-user".into(),
    };
    let router = router_with(
        cfg,
        AgentOptions {
            work_dir: Some(work),
            entrypoint,
        },
    );
    tokio::spawn(serve(listener, router));
    Agent { _dir: dir, sock }
}

impl Agent {
    async fn call(&self, method: Method, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
        let stream = tokio::net::UnixStream::connect(&self.sock).await.unwrap();
        let (mut tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(conn);
        let b = Request::builder()
            .method(method)
            .uri(uri)
            .header("host", "agent")
            .header("content-type", "application/json");
        let body = body
            .map(|v| serde_json::to_vec(&v).unwrap())
            .unwrap_or_default();
        let resp = tx
            .send_request(b.body(Full::new(Bytes::from(body))).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let ct = resp
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string());
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        if bytes.is_empty() {
            return (status, Value::Null);
        }
        assert_eq!(ct.as_deref(), Some("application/json"));
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    async fn exec(&self, sid: &str, cmd: &str, run_async: bool) -> (StatusCode, Value) {
        self.call(
            Method::POST,
            &format!("/process/session/{sid}/exec"),
            Some(json!({"command": cmd, "runAsync": run_async})),
        )
        .await
    }

    /// Opens the follow-logs WebSocket and returns (binary payloads concatenated, close code).
    async fn follow(&self, uri: &str) -> (Vec<u8>, u16) {
        let mut s = tokio::net::UnixStream::connect(&self.sock).await.unwrap();
        let req = format!(
            "GET {uri} HTTP/1.1\r\nHost: agent\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        s.write_all(req.as_bytes()).await.unwrap();
        let mut buf = Vec::new();
        let mut b = [0u8; 4096];
        let head_end = loop {
            let n = s.read(&mut b).await.unwrap();
            assert!(n > 0, "closed during handshake");
            buf.extend_from_slice(&b[..n]);
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        assert!(!head.to_ascii_lowercase().contains("sec-websocket-protocol"));
        let mut data = buf[head_end..].to_vec();
        let mut payload = Vec::new();
        loop {
            // Parse complete frames (server frames are unmasked).
            while data.len() >= 2 {
                let op = data[0] & 0x0f;
                let (len, hdr) = match data[1] & 0x7f {
                    126 if data.len() >= 4 => (u16::from_be_bytes([data[2], data[3]]) as usize, 4),
                    127 if data.len() >= 10 => (
                        u64::from_be_bytes(data[2..10].try_into().unwrap()) as usize,
                        10,
                    ),
                    126 | 127 => break,
                    l => (l as usize, 2),
                };
                if data.len() < hdr + len {
                    break;
                }
                let body = data[hdr..hdr + len].to_vec();
                data.drain(..hdr + len);
                match op {
                    2 => payload.extend_from_slice(&body),
                    8 => return (payload, u16::from_be_bytes([body[0], body[1]])),
                    other => panic!("unexpected opcode {other}"),
                }
            }
            let n = s.read(&mut b).await.unwrap();
            assert!(n > 0, "closed without a close frame");
            data.extend_from_slice(&b[..n]);
        }
    }
}

async fn wait_exit(a: &Agent, sid: &str, cid: &str) -> Value {
    for _ in 0..500 {
        let (st, v) = a
            .call(
                Method::GET,
                &format!("/process/session/{sid}/command/{cid}"),
                None,
            )
            .await;
        assert_eq!(st, 200);
        if v.get("exitCode").is_some() {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("command {cid} never finished");
}

#[tokio::test(flavor = "multi_thread")]
async fn session_lifecycle_state_persists() {
    let a = start().await;
    let (st, _) = a
        .call(
            Method::POST,
            "/process/session",
            Some(json!({"sessionId": "s1"})),
        )
        .await;
    assert_eq!(st, 201);
    let (st, v) = a
        .call(
            Method::POST,
            "/process/session",
            Some(json!({"sessionId": "s1"})),
        )
        .await;
    assert_eq!(st, 409);
    assert_eq!(v["code"], "CONFLICT");

    let (st, v) = a.exec("s1", "export A=1; cd /tmp", false).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["exitCode"], 0);
    let (_, v) = a
        .exec(
            "s1",
            "echo $A $PWD; echo oops >&2; exit_code_probe() { return 7; }; exit_code_probe",
            false,
        )
        .await;
    assert_eq!(v["stdout"], "1 /tmp\n");
    assert_eq!(v["stderr"], "oops\n");
    // stdout and stderr are read from separate pipes: their interleaving in `output` is only
    // approximate, so check the content, not the order.
    let output = v["output"].as_str().unwrap_or_default();
    assert!(
        output.contains("1 /tmp\n") && output.contains("oops\n") && output.len() == 12,
        "{output:?}"
    );
    assert_eq!(v["exitCode"], 7);
    assert!(v["cmdId"].as_str().is_some_and(|c| !c.is_empty()));

    let (_, v) = a.exec("s1", "false", false).await;
    assert_eq!(v["exitCode"], 1);
    let (_, v) = a.exec("s1", "echo $?", false).await;
    assert_eq!(v["stdout"], "1\n");

    // A syntax error stays inside its command.
    let (_, v) = a.exec("s1", "echo \"unterminated", false).await;
    assert_ne!(v["exitCode"], 0);
    let (_, v) = a.exec("s1", "echo still $A", false).await;
    assert_eq!(v["stdout"], "still 1\n");

    // A background child does not hold the call.
    let (_, v) = a.exec("s1", "sleep 30 & echo started", false).await;
    assert_eq!(v["stdout"], "started\n");

    let (st, v) = a.call(Method::GET, "/process/session/s1", None).await;
    assert_eq!(st, 200);
    assert_eq!(v["sessionId"], "s1");
    assert_eq!(v["commands"].as_array().unwrap().len(), 7);
    assert_eq!(v["commands"][1]["exitCode"], 7);
    let (_, v) = a.call(Method::GET, "/process/session", None).await;
    assert_eq!(v.as_array().unwrap().len(), 1);

    let (st, _) = a.call(Method::DELETE, "/process/session/s1", None).await;
    assert_eq!(st, 204);
    let (st, v) = a.call(Method::GET, "/process/session/s1", None).await;
    assert_eq!(st, 404);
    assert_eq!(v["source"], "DAYTONA_DAEMON");
    let (st, _) = a.exec("s1", "true", false).await;
    assert_eq!(st, 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn async_exec_logs_follow_and_input() {
    let a = start().await;
    a.call(
        Method::POST,
        "/process/session",
        Some(json!({"sessionId": "s"})),
    )
    .await;
    let (st, v) = a
        .exec(
            "s",
            "echo out; sleep 0.1; echo err >&2; sleep 0.2; echo out2; exit 3",
            true,
        )
        .await;
    assert_eq!(st, 202);
    let cid = v["cmdId"].as_str().unwrap().to_string();
    let (st, v) = a
        .call(
            Method::GET,
            &format!("/process/session/s/command/{cid}"),
            None,
        )
        .await;
    assert_eq!(st, 200);
    assert!(v.get("exitCode").is_none(), "{v}");
    let (payload, code) = a
        .follow(&format!(
            "/process/session/s/command/{cid}/logs?follow=true"
        ))
        .await;
    assert_eq!(code, 1000);
    let text = String::from_utf8_lossy(&payload).to_string();
    assert!(
        text.starts_with("\x01\x01\x01") || text.starts_with("\x02\x02\x02"),
        "{text:?}"
    );
    assert!(text.contains("\x02\x02\x02err\n"), "{text:?}");
    assert!(text.ends_with("out2\n"), "{text:?}");
    let v = wait_exit(&a, "s", &cid).await;
    assert_eq!(v["exitCode"], 3);
    // `exit` ended the shell: the session is gone for new commands.
    let (st, v) = a.exec("s", "true", false).await;
    assert_eq!(st, 410, "{v}");
    let (st, v) = a
        .call(
            Method::GET,
            &format!("/process/session/s/command/{cid}/logs"),
            None,
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(
        v,
        json!({"output": "out\nerr\nout2\n", "stdout": "out\nout2\n", "stderr": "err\n"})
    );

    a.call(
        Method::POST,
        "/process/session",
        Some(json!({"sessionId": "in"})),
    )
    .await;
    let (_, v) = a.exec("in", "read x; echo got $x", true).await;
    let cid = v["cmdId"].as_str().unwrap().to_string();
    let (st, _) = a
        .call(
            Method::POST,
            &format!("/process/session/in/command/{cid}/input"),
            Some(json!({"data": "hello\n"})),
        )
        .await;
    assert_eq!(st, 204);
    let v = wait_exit(&a, "in", &cid).await;
    assert_eq!(v["exitCode"], 0);
    let (_, v) = a
        .call(
            Method::GET,
            &format!("/process/session/in/command/{cid}/logs"),
            None,
        )
        .await;
    assert_eq!(v["stdout"], "hello\ngot hello\n");
    let (st, v) = a
        .call(
            Method::POST,
            &format!("/process/session/in/command/{cid}/input"),
            Some(json!({"data": "x"})),
        )
        .await;
    assert_eq!(st, 410);
    assert_eq!(v["code"], "COMMAND_ALREADY_COMPLETED");
    let (st, v) = a
        .call(Method::GET, "/process/session/in/command/nope", None)
        .await;
    assert_eq!(st, 404);
    assert_eq!(v["code"], "NOT_FOUND");
    let (st, _) = a
        .call(Method::GET, "/process/session/nope/command/x/logs", None)
        .await;
    assert_eq!(st, 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn entrypoint_is_empty() {
    let a = start().await;
    let (st, v) = a
        .call(Method::GET, "/process/session/entrypoint", None)
        .await;
    assert_eq!(
        (st, v),
        (
            StatusCode::OK,
            json!({"sessionId": "entrypoint", "commands": []})
        )
    );
    let (_, v) = a
        .call(Method::GET, "/process/session/entrypoint/logs", None)
        .await;
    assert_eq!(v, json!({"output": "", "stdout": "", "stderr": ""}));
    let (payload, code) = a
        .follow("/process/session/entrypoint/logs?follow=true")
        .await;
    assert_eq!((payload.len(), code), (0, 1000));
}

#[tokio::test(flavor = "multi_thread")]
async fn entrypoint_runs_at_start_with_its_logs() {
    let argv = [
        "sh",
        "-c",
        "echo \"out $0\"; echo err >&2; sleep 30",
        "it's",
    ];
    let a = start_with_entrypoint(argv.iter().map(|s| s.to_string()).collect()).await;
    let mut info = Value::Null;
    for _ in 0..200 {
        info = a
            .call(Method::GET, "/process/session/entrypoint", None)
            .await
            .1;
        if info["commands"].as_array().is_some_and(|c| !c.is_empty()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let cmd = &info["commands"][0];
    assert_eq!(
        cmd["command"], r#"'sh' '-c' 'echo "out $0"; echo err >&2; sleep 30' 'it'\''s'"#,
        "{info}"
    );
    assert!(cmd.get("exitCode").is_none(), "still running: {info}");
    let mut logs = Value::Null;
    for _ in 0..200 {
        logs = a
            .call(Method::GET, "/process/session/entrypoint/logs", None)
            .await
            .1;
        if logs["stderr"] == "err\n" && logs["stdout"] == "out it's\n" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        (&logs["stdout"], &logs["stderr"]),
        (&json!("out it's\n"), &json!("err\n"))
    );
    // The user's sessions do not list it, and its name stays reserved.
    let (_, list) = a.call(Method::GET, "/process/session", None).await;
    assert_eq!(list, json!([]));
    let (st, _) = a
        .call(
            Method::POST,
            "/process/session",
            Some(json!({"sessionId": "entrypoint"})),
        )
        .await;
    assert_eq!(st, StatusCode::CONFLICT);
}
