//! PTY tests: the router served on a unix socket, driven by hyper (REST) and tungstenite (WS).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::UnixStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::{router_with, serve, AgentConfig, AgentOptions};

const WAIT: Duration = Duration::from_secs(15);
const EXIT_CONTROL: &str = "X-Daytona-Pty-Exit-Control";

struct Agent {
    _dir: tempfile::TempDir,
    sock: PathBuf,
    work: PathBuf,
}

async fn start() -> Agent {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    let sock = dir.path().join("agent.sock");
    let listener = tokio::net::UnixListener::bind(&sock).unwrap();
    let cfg = AgentConfig {
        env: BTreeMap::from([("SANDBOX_VAR".to_string(), "sv".to_string())]),
        user: "cove-test-no-such-user".into(),
    };
    let opts = AgentOptions {
        work_dir: Some(work.clone()),
        ..Default::default()
    };
    tokio::spawn(serve(listener, router_with(cfg, opts)));
    Agent {
        _dir: dir,
        sock,
        work,
    }
}

impl Agent {
    async fn rest(&self, method: Method, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
        let stream = UnixStream::connect(&self.sock).await.unwrap();
        let (mut tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(conn);
        let body = body.map(|v| v.to_string()).unwrap_or_default();
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .header("host", "agent")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .unwrap();
        let resp = tx.send_request(req).await.unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let v = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, v)
    }

    /// Opens a WebSocket; Err carries the HTTP status of a refused upgrade.
    async fn ws(&self, uri: &str, protocols: Option<&str>) -> Result<Client, (u16, Value)> {
        let stream = UnixStream::connect(&self.sock).await.unwrap();
        let mut req = format!("ws://agent{uri}").into_client_request().unwrap();
        if let Some(p) = protocols {
            req.headers_mut()
                .insert("sec-websocket-protocol", p.parse().unwrap());
        }
        match tokio_tungstenite::client_async(req, stream).await {
            Ok((ws, resp)) => Ok(Client {
                ws,
                protocol: resp
                    .headers()
                    .get("sec-websocket-protocol")
                    .map(|v| v.to_str().unwrap().to_string()),
                out: Vec::new(),
                controls: Vec::new(),
                close: None,
            }),
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
                let status = resp.status().as_u16();
                let body = resp.body().as_deref().unwrap_or_default();
                Err((status, serde_json::from_slice(body).unwrap_or(Value::Null)))
            }
            Err(e) => panic!("websocket failed: {e}"),
        }
    }
}

struct Client {
    ws: WebSocketStream<UnixStream>,
    protocol: Option<String>,
    out: Vec<u8>,
    controls: Vec<Value>,
    close: Option<(u16, String)>,
}

impl Client {
    /// Receives one frame; false once the connection is over.
    async fn pump(&mut self) -> bool {
        match tokio::time::timeout(WAIT, self.ws.next()).await {
            Err(_) => panic!(
                "no frame within {WAIT:?}; output so far: {}",
                String::from_utf8_lossy(&self.out)
            ),
            Ok(None) | Ok(Some(Err(_))) => false,
            Ok(Some(Ok(msg))) => {
                match msg {
                    Message::Binary(b) => self.out.extend_from_slice(&b),
                    Message::Text(t) => match serde_json::from_str::<Value>(&t) {
                        Ok(v) if v["type"] == "control" => self.controls.push(v),
                        _ => self.out.extend_from_slice(t.as_bytes()),
                    },
                    Message::Close(f) => {
                        self.close = f.map(|f| (u16::from(f.code), f.reason.to_string()));
                    }
                    _ => {}
                }
                true
            }
        }
    }

    fn output(&self) -> String {
        String::from_utf8_lossy(&self.out).into_owned()
    }

    async fn wait_output(&mut self, pat: &str) {
        while !self.output().contains(pat) {
            assert!(
                self.pump().await,
                "closed before {pat:?}: {}",
                self.output()
            );
        }
    }

    async fn wait_control(&mut self, status: &str) -> Value {
        loop {
            if let Some(v) = self.controls.iter().find(|v| v["status"] == status) {
                return v.clone();
            }
            assert!(self.pump().await, "closed before control {status}");
        }
    }

    /// Reads until the server's close frame (or the end of the stream).
    async fn wait_closed(&mut self) -> Option<(u16, String)> {
        while self.close.is_none() && self.pump().await {}
        self.close.clone()
    }

    async fn send(&mut self, s: &str) {
        self.ws
            .send(Message::binary(s.as_bytes().to_vec()))
            .await
            .unwrap();
    }
}

fn envs_token(envs: &Value) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let data = envs.to_string().into_bytes();
    let mut s = String::from("X-Daytona-Pty-Envs~");
    for chunk in data.chunks(3) {
        let n = chunk.iter().fold(0u32, |a, b| (a << 8) | u32::from(*b)) << (8 * (3 - chunk.len()));
        for i in 0..=chunk.len() {
            s.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    s
}

#[tokio::test(flavor = "multi_thread")]
async fn create_connect_io_resize_and_exit_code() {
    let a = start().await;
    let protos = format!("{}, {EXIT_CONTROL}", envs_token(&json!({"FOO": "bar"})));
    let mut c = a
        .ws(
            "/process/pty/create-connect?id=t1&cols=100&rows=30",
            Some(&protos),
        )
        .await
        .unwrap();
    assert_eq!(c.protocol.as_deref(), Some(EXIT_CONTROL));
    assert!(c.pump().await);
    assert_eq!(
        c.controls.first().map(|v| v["status"].clone()),
        Some("connected".into())
    );

    c.send("echo hi-$FOO-$TERM-$SANDBOX_VAR; pwd\n").await;
    c.wait_output("hi-bar-xterm-256color-sv").await;
    c.wait_output(&a.work.display().to_string()).await;
    c.send("stty size\n").await;
    c.wait_output("30 100").await;

    let (st, info) = a.rest(Method::GET, "/process/pty/t1", None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(info["active"], true);
    assert_eq!(
        (info["cols"].as_i64(), info["rows"].as_i64()),
        (Some(100), Some(30))
    );
    assert_eq!(info["envs"], json!({"FOO": "bar"}));
    assert_eq!(info["lazyStart"], false);
    assert!(info["createdAt"].is_string() && info["cwd"].is_string());

    let (st, info) = a
        .rest(
            Method::POST,
            "/process/pty/t1/resize",
            Some(json!({"cols": 150, "rows": 40})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{info}");
    assert_eq!(
        (info["cols"].as_i64(), info["rows"].as_i64()),
        (Some(150), Some(40))
    );
    c.send("stty size\n").await;
    c.wait_output("40 150").await;

    c.send("exit 3\n").await;
    let exited = c.wait_control("exited").await;
    assert_eq!(exited["exitCode"], 3);
    assert_eq!(exited["exitReason"], "non-zero exit");
    let (code, reason) = c.wait_closed().await.expect("close frame");
    assert_eq!(code, 1011);
    assert_eq!(
        serde_json::from_str::<Value>(&reason).unwrap(),
        json!({"exitCode": 3, "exitReason": "non-zero exit"})
    );

    let (_, info) = a.rest(Method::GET, "/process/pty/t1", None).await;
    assert_eq!(info["active"], false);
    let (st, body) = a
        .rest(
            Method::POST,
            "/process/pty/t1/resize",
            Some(json!({"cols": 10, "rows": 10})),
        )
        .await;
    assert_eq!(st, StatusCode::GONE);
    assert_eq!(body["code"], "SESSION_ENDED");
}

#[tokio::test(flavor = "multi_thread")]
async fn resize_sends_sigwinch_to_the_foreground_program() {
    let a = start().await;
    let mut c = a
        .ws(
            "/process/pty/create-connect?id=w&cols=80&rows=24",
            Some(EXIT_CONTROL),
        )
        .await
        .unwrap();
    c.wait_control("connected").await;
    c.send("bash -c 'trap \"echo WINCH \\$(stty size)\" WINCH; echo RE\"\"ADY; while :; do sleep 0.05; done'\n")
        .await;
    c.wait_output("READY").await;
    let (st, _) = a
        .rest(
            Method::POST,
            "/process/pty/w/resize",
            Some(json!({"cols": 132, "rows": 43})),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    c.wait_output("WINCH 43 132").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_ends_session_with_sigkill() {
    let a = start().await;
    let mut c = a
        .ws("/process/pty/create-connect?id=k", Some(EXIT_CONTROL))
        .await
        .unwrap();
    c.wait_control("connected").await;
    c.send("sleep 1000 & echo BG-\"\"STARTED\n").await;
    c.wait_output("BG-STARTED").await;
    let (_, list) = a.rest(Method::GET, "/process/pty", None).await;
    assert_eq!(list["sessions"].as_array().unwrap().len(), 1);

    let (st, body) = a.rest(Method::DELETE, "/process/pty/k", None).await;
    assert_eq!(st, StatusCode::OK);
    assert!(body.is_object());
    let exited = c.wait_control("exited").await;
    assert_eq!(exited["exitCode"], 137);
    assert_eq!(exited["exitReason"], "SIGKILL");
    assert_eq!(c.wait_closed().await.map(|c| c.0), Some(1011));

    let (st, _) = a.rest(Method::GET, "/process/pty/k", None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (_, list) = a.rest(Method::GET, "/process/pty", None).await;
    assert_eq!(list["sessions"], json!([]));
}

#[tokio::test(flavor = "multi_thread")]
async fn two_clients_share_one_pty() {
    let a = start().await;
    let (st, body) = a
        .rest(
            Method::POST,
            "/process/pty",
            Some(json!({"id": "shared", "cols": 90, "rows": 20})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{body}");
    assert_eq!(body["sessionId"], "shared");
    let mut c1 = a
        .ws("/process/pty/shared/connect", Some(EXIT_CONTROL))
        .await
        .unwrap();
    let mut c2 = a
        .ws("/process/pty/shared/connect", Some(EXIT_CONTROL))
        .await
        .unwrap();
    c1.wait_control("connected").await;
    c2.wait_control("connected").await;
    c1.send("echo FROM-\"\"ONE\n").await;
    c1.wait_output("FROM-ONE").await;
    c2.wait_output("FROM-ONE").await;
    c2.send("echo FROM-\"\"TWO\n").await;
    c1.wait_output("FROM-TWO").await;
    c2.wait_output("FROM-TWO").await;
    c2.send("exit\n").await;
    for c in [&mut c1, &mut c2] {
        assert_eq!(c.wait_control("exited").await["exitCode"], 0);
        let (code, reason) = c.wait_closed().await.unwrap();
        assert_eq!((code, reason.as_str()), (1000, r#"{"exitCode":0}"#));
    }
    // A client attaching after the exit learns the exit code at once.
    let mut late = a
        .ws("/process/pty/shared/connect", Some(EXIT_CONTROL))
        .await
        .unwrap();
    assert_eq!(late.wait_control("exited").await["exitCode"], 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn errors_protocols_and_pings() {
    let a = start().await;
    for (m, uri) in [
        (Method::GET, "/process/pty/nope"),
        (Method::DELETE, "/process/pty/nope"),
        (Method::POST, "/process/pty/nope/resize"),
    ] {
        let body = (m == Method::POST).then(|| json!({"cols": 10, "rows": 10}));
        let (st, v) = a.rest(m, uri, body).await;
        assert_eq!(st, StatusCode::NOT_FOUND, "{uri}");
        assert_eq!(v["source"], "DAYTONA_DAEMON");
        assert_eq!(v["statusCode"], 404);
    }
    // Unknown id on connect: upgrade, then an error control message and close.
    let mut c = a
        .ws("/process/pty/nope/connect", Some(EXIT_CONTROL))
        .await
        .unwrap();
    let err = c.wait_control("error").await;
    assert!(err["error"].as_str().unwrap().contains("not found"));
    assert_ne!(c.wait_closed().await.map(|c| c.0), Some(1000));

    // No subprotocol offered: none echoed; the first one when exit-control is not offered.
    let mut c = a
        .ws("/process/pty/create-connect?id=p1", None)
        .await
        .unwrap();
    assert_eq!(c.protocol, None);
    c.wait_control("connected").await;
    let c2 = a
        .ws(
            "/process/pty/create-connect?id=p2",
            Some("X-Daytona-SDK-Version~1, other"),
        )
        .await
        .unwrap();
    assert_eq!(c2.protocol.as_deref(), Some("X-Daytona-SDK-Version~1"));

    // Duplicate id and bad sizes are refused before the upgrade.
    let (st, v) = a
        .ws("/process/pty/create-connect?id=p1", Some(EXIT_CONTROL))
        .await
        .err()
        .unwrap();
    assert_eq!((st, v["code"].as_str()), (409, Some("CONFLICT")));
    let (st, _) = a
        .ws(
            "/process/pty/create-connect?id=p3&cols=0",
            Some(EXIT_CONTROL),
        )
        .await
        .err()
        .unwrap();
    assert_eq!(st, 400);
    let (st, v) = a
        .ws(
            "/process/pty/create-connect?id=p4&cwd=/no/such/dir",
            Some(EXIT_CONTROL),
        )
        .await
        .err()
        .unwrap();
    assert_eq!((st, v["code"].as_str()), (400, Some("BAD_REQUEST")));

    // Pings are answered.
    c.ws.send(Message::Ping(Bytes::from_static(b"hb")))
        .await
        .unwrap();
    loop {
        let m = tokio::time::timeout(WAIT, c.ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if let Message::Pong(p) = m {
            assert_eq!(&p[..], b"hb");
            break;
        }
    }
}
