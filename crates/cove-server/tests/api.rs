//! The API's edges without sandboxes: auth, error envelopes, validation, Socket.IO handshake.

use std::net::SocketAddr;

use cove_server::{app, ServerConfig};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

const KEY: &str = "test-key-123";

struct Server {
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

async fn server() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let cfg = ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().join("data"),
        images_dir: Some(dir.path().join("images")),
        api_key: Some(KEY.into()),
        public_url: None,
        init_exe: "/nonexistent/cove".into(),
        no_new_privs: false,
        minute_secs: 60,
        object_store: None,
    };
    let (router, _) = app(&cfg).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    Server { addr, _dir: dir }
}

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

async fn envelope(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let ct = resp
        .headers()
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert!(ct.starts_with("application/json"), "content type {ct}");
    (status, resp.json().await.unwrap())
}

#[tokio::test]
async fn health_needs_no_key_but_everything_else_does() {
    let s = server().await;
    let r = client()
        .get(format!("http://{}/api/health", s.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = client()
        .get(format!("http://{}/api/sandbox", s.addr))
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    let (status, body) = envelope(r).await;
    assert_eq!(status, 401);
    assert_eq!(body["statusCode"], 401);
    assert_eq!(body["source"], "DAYTONA_API");
    assert_eq!(body["path"], "/api/sandbox");
    assert_eq!(body["method"], "GET");
    let r = client()
        .post(format!("http://{}/toolbox/x/process/execute", s.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn unknown_sandbox_is_404_envelope() {
    let s = server().await;
    let r = client()
        .get(format!("http://{}/api/sandbox/nope", s.addr))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    let (status, body) = envelope(r).await;
    assert_eq!(status, 404);
    assert_eq!(body["code"], "NOT_FOUND");
    assert!(body["message"].as_str().unwrap().contains("nope"));
    let r = client()
        .delete(format!("http://{}/api/sandbox/nope", s.addr))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = client()
        .post(format!("http://{}/toolbox/nope/process/execute", s.addr))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn bad_create_bodies_are_400_and_store_nothing() {
    let s = server().await;
    let url = format!("http://{}/api/sandbox", s.addr);
    for body in [
        "{not json",
        r#"{"labels": {"a": 1}}"#,
        r#"{"cpu": "1"}"#,
        r#"{"cpu": 0}"#,
        r#"{"name": "a b"}"#,
    ] {
        let r = client()
            .post(&url)
            .bearer_auth(KEY)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let (status, b) = envelope(r).await;
        assert_eq!(status, 400, "{body}: {b}");
        assert!(!b["message"].as_str().unwrap().is_empty());
    }
    let r = client().get(&url).bearer_auth(KEY).send().await.unwrap();
    let list: Value = r.json().await.unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 0);
    assert!(list["nextCursor"].is_null());
}

#[tokio::test]
async fn config_is_complete() {
    let s = server().await;
    let r = client()
        .get(format!("http://{}/api/config", s.addr))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    let c: Value = r.json().await.unwrap();
    for k in [
        "version",
        "oidc",
        "linkedAccountsEnabled",
        "announcements",
        "proxyToolboxUrl",
        "defaultSnapshot",
        "maintananceMode",
    ] {
        assert!(!c[k].is_null(), "{k} missing");
    }
    assert!(c["analyticsApiUrl"].is_null());
}

async fn socket_handshake(addr: SocketAddr, token: &str) -> String {
    let url = format!("ws://{addr}/api/socket.io/?source=sdk-python&EIO=4&transport=websocket");
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let open = ws.next().await.unwrap().unwrap().into_text().unwrap();
    assert!(open.starts_with("0{"), "{open}");
    let v: Value = serde_json::from_str(&open[1..]).unwrap();
    assert_eq!(v["pingInterval"], 25000);
    ws.send(Message::Text(format!("40{{\"token\":\"{token}\"}}").into()))
        .await
        .unwrap();
    ws.next()
        .await
        .unwrap()
        .unwrap()
        .into_text()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn socket_io_connect_checks_the_key() {
    let s = server().await;
    assert!(socket_handshake(s.addr, KEY)
        .await
        .starts_with("40{\"sid\""));
    assert!(socket_handshake(s.addr, "wrong").await.starts_with("44"));
}
