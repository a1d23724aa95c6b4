//! Router-level tests of the git endpoints (and a small harness the fs op tests share): the
//! agent is served on a unix socket in a tempdir and driven by hyper; git runs on the host.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};

use crate::{router_with, serve, AgentConfig, AgentOptions};

pub(crate) struct Agent {
    _dir: tempfile::TempDir,
    sock: PathBuf,
    pub work: PathBuf,
}

pub(crate) struct Resp {
    pub status: StatusCode,
    pub body: Bytes,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }

    /// Asserts a `DAYTONA_DAEMON` envelope with `status` and `code`.
    pub fn expect_err(&self, status: u16, code: &str) {
        assert_eq!(
            self.status.as_u16(),
            status,
            "body: {}",
            String::from_utf8_lossy(&self.body)
        );
        let v = self.json();
        assert_eq!(v["code"], code, "{v}");
        assert_eq!(v["source"], "DAYTONA_DAEMON");
    }

    pub fn expect_ok(&self) -> &Self {
        assert!(
            self.status.is_success(),
            "{}: {}",
            self.status,
            String::from_utf8_lossy(&self.body)
        );
        self
    }
}

pub(crate) async fn start() -> Agent {
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
            work_dir: Some(work.clone()),
            ..Default::default()
        },
    );
    tokio::spawn(serve(listener, router));
    Agent {
        _dir: dir,
        sock,
        work,
    }
}

impl Agent {
    pub async fn call(&self, method: Method, uri: &str, ct: Option<&str>, body: Vec<u8>) -> Resp {
        let stream = tokio::net::UnixStream::connect(&self.sock).await.unwrap();
        let (mut tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(conn);
        let mut b = Request::builder()
            .method(method)
            .uri(uri)
            .header("host", "agent");
        if let Some(ct) = ct {
            b = b.header("content-type", ct);
        }
        let resp = tx
            .send_request(b.body(Full::new(Bytes::from(body))).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        Resp { status, body }
    }

    pub async fn json(&self, method: Method, uri: &str, v: Value) -> Resp {
        let body = serde_json::to_vec(&v).unwrap();
        self.call(method, uri, Some("application/json"), body).await
    }

    pub async fn get(&self, uri: &str) -> Resp {
        self.call(Method::GET, uri, None, Vec::new()).await
    }
}

fn names(status: &Value) -> Vec<(String, String, String)> {
    status["fileStatus"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["name"].as_str().unwrap().to_string(),
                f["staging"].as_str().unwrap().to_string(),
                f["worktree"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn full_flow_against_a_local_bare_repo() {
    let a = start().await;
    let post = |uri: &'static str, v: Value| {
        let a = &a;
        async move { a.json(Method::POST, uri, v).await }
    };
    let origin = a.work.join("origin.git").display().to_string();
    let r = post(
        "/git/init",
        json!({"path": "origin.git", "bare": true, "initial_branch": "main"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED);
    post("/git/clone", json!({"url": origin, "path": "one"}))
        .await
        .expect_ok();

    std::fs::write(a.work.join("one/a.txt"), "hello\n").unwrap();
    let st = a.get("/git/status?path=one").await.expect_ok().json();
    assert_eq!(st["currentBranch"], "main");
    assert_eq!(
        names(&st),
        vec![("a.txt".into(), "Untracked".into(), "Untracked".into())]
    );
    post("/git/add", json!({"path": "one", "files": ["a.txt"]}))
        .await
        .expect_ok();
    let st = a.get("/git/status?path=one").await.json();
    assert_eq!(names(&st)[0].1, "Added");
    let c = post(
        "/git/commit",
        json!({"path": "one", "message": "first", "author": "Ann", "email": "ann@x.org", "allow_empty": false}),
    )
    .await
    .expect_ok()
    .json();
    let hash = c["hash"].as_str().unwrap().to_string();
    assert_eq!(hash.len(), 40);
    // Nothing staged: a commit without allow_empty fails, with it succeeds.
    post(
        "/git/commit",
        json!({"path": "one", "message": "x", "author": "Ann", "email": "ann@x.org", "allow_empty": false}),
    )
    .await
    .expect_err(400, "BAD_REQUEST");
    post("/git/push", json!({"path": "one", "set_upstream": true}))
        .await
        .expect_ok();
    let st = a.get("/git/status?path=one").await.json();
    assert_eq!(st["branchPublished"], true);
    assert_eq!(
        (st["ahead"].as_i64(), st["behind"].as_i64()),
        (Some(0), Some(0))
    );
    assert_eq!(st["upstream"], "origin/main");

    // Branches: create (switches), duplicate, checkout, delete.
    let r = post("/git/branches", json!({"path": "one", "name": "dev"})).await;
    assert_eq!(r.status, StatusCode::CREATED);
    post("/git/branches", json!({"path": "one", "name": "dev"}))
        .await
        .expect_err(409, "GIT_BRANCH_EXISTS");
    let b = a.get("/git/branches?path=one").await.json();
    assert_eq!(b, json!({"branches": ["dev", "main"], "current": "dev"}));
    post("/git/checkout", json!({"path": "one", "branch": "main"}))
        .await
        .expect_ok();
    post("/git/checkout", json!({"path": "one", "branch": "nope"}))
        .await
        .expect_err(404, "GIT_BRANCH_NOT_FOUND");
    let r = a
        .json(
            Method::DELETE,
            "/git/branches",
            json!({"path": "one", "name": "dev"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    a.json(
        Method::DELETE,
        "/git/branches",
        json!({"path": "one", "name": "dev"}),
    )
    .await
    .expect_err(404, "GIT_BRANCH_NOT_FOUND");

    // A second clone pushes; the first pulls.
    post(
        "/git/clone",
        json!({"url": origin, "path": "two", "branch": "main"}),
    )
    .await
    .expect_ok();
    std::fs::write(a.work.join("two/b.txt"), "from two\n").unwrap();
    post("/git/add", json!({"path": "two", "files": ["."]}))
        .await
        .expect_ok();
    post(
        "/git/commit",
        json!({"path": "two", "message": "second", "author": "Bo", "email": "bo@x.org"}),
    )
    .await
    .expect_ok();
    post("/git/push", json!({"path": "two"})).await.expect_ok();
    post("/git/pull", json!({"path": "one"})).await.expect_ok();
    assert_eq!(
        std::fs::read_to_string(a.work.join("one/b.txt")).unwrap(),
        "from two\n"
    );
    let h = a.get("/git/history?path=one").await.json();
    assert_eq!(h[0]["message"], "second");
    assert_eq!(h[1]["hash"], hash.as_str());
    assert_eq!(h[1]["author"], "Ann");

    // A diverged push is rejected.
    std::fs::write(a.work.join("two/c.txt"), "c\n").unwrap();
    post("/git/add", json!({"path": "two", "files": ["c.txt"]}))
        .await
        .expect_ok();
    post(
        "/git/commit",
        json!({"path": "two", "message": "c", "author": "Bo", "email": "bo@x.org"}),
    )
    .await
    .expect_ok();
    post(
        "/git/commit",
        json!({"path": "one", "message": "d", "author": "Ann", "email": "ann@x.org", "allow_empty": true}),
    )
    .await
    .expect_ok();
    post("/git/push", json!({"path": "two"})).await.expect_ok();
    post("/git/push", json!({"path": "one"}))
        .await
        .expect_err(409, "GIT_PUSH_REJECTED");

    // Remotes and local config.
    let r = a.get("/git/remotes?path=one").await.json();
    assert_eq!(r, json!({"remotes": [{"name": "origin", "url": origin}]}));
    let r = post(
        "/git/remotes",
        json!({"path": "one", "name": "origin", "url": "/x"}),
    )
    .await;
    r.expect_err(409, "CONFLICT");
    post(
        "/git/config",
        json!({"path": "one", "scope": "local", "key": "cove.test", "value": "v 1"}),
    )
    .await
    .expect_ok();
    let v = a
        .get("/git/config?key=cove.test&scope=local&path=one")
        .await
        .json();
    assert_eq!(v, json!({"value": "v 1"}));
    let v = a
        .get("/git/config?key=cove.unset&scope=local&path=one")
        .await
        .json();
    assert_eq!(v, json!({"value": null}));

    // Reset and restore.
    std::fs::write(a.work.join("one/a.txt"), "changed\n").unwrap();
    post("/git/add", json!({"path": "one", "files": ["a.txt"]}))
        .await
        .expect_ok();
    post(
        "/git/restore",
        json!({"path": "one", "files": ["a.txt"], "staged": true}),
    )
    .await
    .expect_ok();
    let st = a.get("/git/status?path=one").await.json();
    assert_eq!(
        names(&st),
        vec![("a.txt".into(), "Unmodified".into(), "Modified".into())]
    );
    post("/git/reset", json!({"path": "one", "mode": "hard"}))
        .await
        .expect_ok();
    assert_eq!(
        std::fs::read_to_string(a.work.join("one/a.txt")).unwrap(),
        "hello\n"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_repos_fail_fast_with_domain_codes() {
    let a = start().await;
    let t = Instant::now();
    a.json(
        Method::POST,
        "/git/clone",
        json!({"url": "file:///nonexistent/repo.git", "path": "x", "username": "u", "password": "p"}),
    )
    .await
    .expect_err(404, "GIT_REPO_NOT_FOUND");
    a.json(
        Method::POST,
        "/git/clone",
        json!({"url": "/nonexistent/repo.git", "path": "y"}),
    )
    .await
    .expect_err(404, "GIT_REPO_NOT_FOUND");
    assert!(t.elapsed() < Duration::from_secs(10));
    a.get("/git/status?path=missing")
        .await
        .expect_err(404, "GIT_REPO_NOT_FOUND");
    std::fs::create_dir_all(a.work.join("plain")).unwrap();
    a.get("/git/status?path=plain")
        .await
        .expect_err(404, "GIT_REPO_NOT_FOUND");
    a.json(Method::POST, "/git/add", json!({"path": "plain"}))
        .await
        .expect_err(400, "INVALID_REQUEST_BODY");
}

#[tokio::test(flavor = "multi_thread")]
async fn credentials_reach_git_through_askpass_only() {
    // A remote helper that prints what git's askpass yields, then fails like a 401.
    let a = start().await;
    let bin = a.work.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let helper = bin.join("git-remote-cove");
    std::fs::write(
        &helper,
        "#!/bin/sh\nu=$(\"$GIT_ASKPASS\" 'Username for x:')\np=$(\"$GIT_ASKPASS\" 'Password for x:')\necho \"got $u/$p\" > \"$(dirname \"$0\")/seen\"\necho 'fatal: Authentication failed' >&2\nexit 1\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    // The helper is found through the sandbox env's PATH.
    let path = format!(
        "{}:{}",
        bin.display(),
        crate::process::service::DEFAULT_PATH
    );
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("s");
    let listener = tokio::net::UnixListener::bind(&sock).unwrap();
    let cfg = AgentConfig {
        env: BTreeMap::from([("PATH".to_string(), path)]),
        user: "cove-test-no-such-user".into(),
    };
    let router = router_with(
        cfg,
        AgentOptions {
            work_dir: Some(a.work.clone()),
            ..Default::default()
        },
    );
    tokio::spawn(serve(listener, router));
    let b = Agent {
        _dir: dir,
        sock,
        work: a.work.clone(),
    };
    let r = b
        .json(
            Method::POST,
            "/git/clone",
            json!({"url": "cove::somewhere", "path": "z", "username": "alice", "password": "s3cret"}),
        )
        .await;
    r.expect_err(401, "GIT_AUTH_FAILED");
    assert!(!String::from_utf8_lossy(&r.body).contains("s3cret"));
    assert_eq!(
        std::fs::read_to_string(bin.join("seen")).unwrap(),
        "got alice/s3cret\n"
    );
}
