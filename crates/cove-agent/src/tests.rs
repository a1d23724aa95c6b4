//! End-to-end tests of the router: served on a unix socket in a tempdir, driven by hyper.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};

use crate::{router_with, serve, AgentConfig, AgentOptions};

struct Agent {
    _dir: tempfile::TempDir,
    sock: PathBuf,
    work: PathBuf,
}

struct Resp {
    status: StatusCode,
    ct: String,
    body: Bytes,
}

impl Resp {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }
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
    async fn call(
        &self,
        method: Method,
        uri: &str,
        ct: Option<&str>,
        body: impl Into<Bytes>,
    ) -> Resp {
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
            .send_request(b.body(Full::new(body.into())).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let ct = resp
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        Resp { status, ct, body }
    }

    async fn post_json(&self, uri: &str, v: Value) -> Resp {
        self.call(
            Method::POST,
            uri,
            Some("application/json"),
            serde_json::to_vec(&v).unwrap(),
        )
        .await
    }

    async fn exec(&self, v: Value) -> Resp {
        self.post_json("/process/execute", v).await
    }
}

fn assert_envelope(r: &Resp, status: u16, code: &str) {
    assert_eq!(r.status.as_u16(), status, "body: {:?}", r.body);
    assert_eq!(r.ct, "application/json");
    let v = r.json();
    assert_eq!(v["statusCode"], status);
    assert_eq!(v["code"], code);
    assert_eq!(v["source"], "DAYTONA_DAEMON");
    assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()));
    assert!(v["timestamp"].as_str().is_some());
    assert!(v["method"].as_str().is_some_and(|m| !m.is_empty()));
}

fn multipart(parts: &[(&str, Option<&str>, &[u8])]) -> (String, Vec<u8>) {
    let b = "XbOuNdArYx";
    let mut body = Vec::new();
    for (name, filename, data) in parts {
        body.extend_from_slice(
            format!("--{b}\r\nContent-Disposition: form-data; name=\"{name}\"").as_bytes(),
        );
        if let Some(f) = filename {
            body.extend_from_slice(
                format!("; filename=\"{f}\"\r\nContent-Type: application/octet-stream").as_bytes(),
            );
        }
        body.extend_from_slice(b"\r\n\r\n");
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{b}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={b}"), body)
}

/// (name, filename, bytes) of each part of a multipart response.
async fn parse_multipart(r: &Resp) -> Vec<(String, String, Bytes)> {
    let boundary = multer::parse_boundary(&r.ct).unwrap();
    let body = r.body.clone();
    let stream = futures_util::stream::once(async move { Ok::<_, std::io::Error>(body) });
    let mut mp = multer::Multipart::new(stream, boundary);
    let mut out = Vec::new();
    while let Some(f) = mp.next_field().await.unwrap() {
        let (n, fname) = (
            f.name().unwrap().to_string(),
            f.file_name().unwrap().to_string(),
        );
        out.push((n, fname, f.bytes().await.unwrap()));
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn exec_exit_code_output_cwd_env() {
    let a = start().await;
    let r = a
        .exec(json!({"command": "echo out; echo err >&2; echo out2; exit 3"}))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.ct, "application/json");
    assert_eq!(
        r.json(),
        json!({"exitCode": 3, "result": "out\nerr\nout2\n"})
    );

    std::fs::create_dir_all(a.work.join("sub")).unwrap();
    let r = a.exec(json!({"command": "pwd", "cwd": "sub"})).await;
    assert_eq!(
        r.json()["result"],
        format!("{}\n", a.work.join("sub").display())
    );
    let r = a.exec(json!({"command": "pwd"})).await;
    assert_eq!(r.json()["result"], format!("{}\n", a.work.display()));

    let r = a.exec(json!({"command": "echo $SANDBOX_VAR $E $PATH; test -n \"$HOME$USER$HOSTNAME\"", "envs": {"E": "1", "SANDBOX_VAR": "override"}})).await;
    assert_eq!(
        r.json()["result"],
        "override 1 /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"
    );
    assert_eq!(r.json()["exitCode"], 0);
    let r = a
        .exec(json!({"command": "echo $SANDBOX_VAR; cat; echo done"}))
        .await;
    assert_eq!(r.json()["result"], "sv\ndone\n", "stdin must be /dev/null");

    let r = a
        .exec(json!({"command": "pwd", "cwd": "does/not/exist"}))
        .await;
    assert_envelope(&r, 400, "BAD_REQUEST");
    let r = a.exec(json!({"command": "  \n\t "})).await;
    assert_envelope(&r, 400, "BAD_REQUEST");
}

#[tokio::test(flavor = "multi_thread")]
async fn exec_as_other_user_when_root() {
    if cove_sys::process::geteuid() != 0 {
        return;
    }
    let a = start().await;
    let r = a
        .exec(json!({"command": "id -u; id -g", "cwd": "/", "user": "nobody"}))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.json()["result"], "65534\n65534\n");
    let r = a
        .exec(json!({"command": "id -u", "user": "no-such-user-xyz"}))
        .await;
    assert_envelope(&r, 400, "BAD_REQUEST");
}

#[tokio::test(flavor = "multi_thread")]
async fn exec_timeout_kills_process_group() {
    let a = start().await;
    let marker = a.work.join("survivor");
    let t0 = Instant::now();
    let cmd = format!("(sleep 2; touch {}) & sleep 30", marker.display());
    let r = a.exec(json!({"command": cmd, "timeout": 1})).await;
    assert_envelope(&r, 408, "PROCESS_EXECUTION_TIMEOUT");
    assert!(t0.elapsed() < Duration::from_secs(10));
    // The background child was in the same group: it must be dead, never touching the marker.
    let r = a
        .exec(json!({"command": "sleep 2.5; echo ok", "timeout": 10}))
        .await;
    assert_eq!(r.json()["result"], "ok\n");
    assert!(!marker.exists(), "background child survived the timeout");
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_json_and_unknown_route_use_envelope() {
    let a = start().await;
    let r = a
        .call(
            Method::POST,
            "/process/execute",
            Some("application/json"),
            "{not json",
        )
        .await;
    assert_envelope(&r, 400, "INVALID_REQUEST_BODY");
    let r = a
        .call(Method::POST, "/process/execute", None, "{\"cwd\": \"/\"}")
        .await;
    assert_envelope(&r, 400, "INVALID_REQUEST_BODY");
    let r = a.call(Method::GET, "/nope", None, "").await;
    assert_envelope(&r, 404, "NOT_FOUND");
    let r = a.call(Method::GET, "/files/info?depth=x", None, "").await;
    assert_eq!(r.status, 400);
    for p in ["/", "/health", "/version", "/work-dir", "/user-home-dir"] {
        let r = a.call(Method::GET, p, None, "").await;
        assert_eq!(r.status, 200, "{p}");
        assert_eq!(r.ct, "application/json");
    }
    let r = a.call(Method::GET, "/work-dir", None, "").await;
    assert_eq!(r.json()["dir"], a.work.display().to_string());
}

#[tokio::test(flavor = "multi_thread")]
async fn code_run_python() {
    let a = start().await;
    let code = "import sys\nprint('hi', sys.argv[1:])\nsys.exit(4)";
    let r = a
        .post_json(
            "/process/code-run",
            json!({"code": code, "language": "python", "argv": ["a", "b"]}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(
        r.json(),
        json!({"exitCode": 4, "result": "hi ['a', 'b']\n"})
    );
    let r = a
        .post_json(
            "/process/code-run",
            json!({"code": "import os; print(os.environ['Q'])", "envs": {"Q": "z"}}),
        )
        .await;
    assert_eq!(r.json()["result"], "z\n");
    let r = a
        .post_json(
            "/process/code-run",
            json!({"code": "import time; time.sleep(20)", "timeout": 1}),
        )
        .await;
    assert_envelope(&r, 408, "PROCESS_EXECUTION_TIMEOUT");
    let r = a
        .post_json(
            "/process/code-run",
            json!({"code": "x", "language": "cobol"}),
        )
        .await;
    assert_envelope(&r, 400, "BAD_REQUEST");
}

#[tokio::test(flavor = "multi_thread")]
async fn upload_download_roundtrip_relative_and_absolute() {
    let a = start().await;
    let abs = a.work.join("abs/deep/b.bin");
    let abs_s = abs.display().to_string();
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    // Python order: all paths first, then all files.
    let (ct, body) = multipart(&[
        ("files[0].path", None, b"d/e/a.txt"),
        ("files[1].path", None, abs_s.as_bytes()),
        (
            "files[0].file",
            Some("d/e/a.txt"),
            b"hello\r\n--not-a-boundary",
        ),
        ("files[1].file", Some(&abs_s), &big),
    ]);
    let r = a
        .call(Method::POST, "/files/bulk-upload", Some(&ct), body)
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(
        std::fs::read(a.work.join("d/e/a.txt")).unwrap(),
        b"hello\r\n--not-a-boundary"
    );
    assert_eq!(std::fs::read(&abs).unwrap(), big);

    let r = a
        .post_json(
            "/files/bulk-download",
            json!({"paths": ["d/e/a.txt", abs_s, "missing.txt", "d"]}),
        )
        .await;
    assert_eq!(r.status, 200);
    assert!(
        r.ct.starts_with("multipart/form-data; boundary="),
        "{}",
        r.ct
    );
    assert!(r.body.ends_with(b"--\r\n"));
    let parts = parse_multipart(&r).await;
    assert_eq!(parts.len(), 4);
    assert_eq!(
        parts[0],
        (
            "file".into(),
            "d/e/a.txt".into(),
            Bytes::from_static(b"hello\r\n--not-a-boundary")
        )
    );
    assert_eq!(
        (parts[1].0.as_str(), parts[1].1.as_str()),
        ("file", abs_s.as_str())
    );
    assert_eq!(parts[1].2, big);
    assert_eq!(
        (parts[2].0.as_str(), parts[2].1.as_str()),
        ("error", "missing.txt")
    );
    let e: Value = serde_json::from_slice(&parts[2].2).unwrap();
    assert_eq!(
        (
            e["statusCode"].clone(),
            e["code"].clone(),
            e["source"].clone()
        ),
        (json!(404), json!("FILE_NOT_FOUND"), json!("DAYTONA_DAEMON"))
    );
    let e: Value = serde_json::from_slice(&parts[3].2).unwrap();
    assert_eq!(e["code"], "INVALID_FILE_PATH");

    let r = a
        .call(Method::GET, "/files/download?path=d/e/a.txt", None, "")
        .await;
    assert_eq!(
        (r.status, r.body.as_ref()),
        (StatusCode::OK, &b"hello\r\n--not-a-boundary"[..])
    );
    let r = a
        .post_json("/files/bulk-download", json!({"paths": []}))
        .await;
    assert_envelope(&r, 400, "BAD_REQUEST");
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_multipart_leaves_no_file() {
    let a = start().await;
    std::fs::create_dir_all(a.work.join("up")).unwrap();
    // Truncated: the file part never reaches a boundary.
    let body = "--B\r\nContent-Disposition: form-data; name=\"files[0].path\"\r\n\r\nup/t.txt\r\n--B\r\nContent-Disposition: form-data; name=\"files[0].file\"; filename=\"up/t.txt\"\r\n\r\npartial data";
    let r = a
        .call(
            Method::POST,
            "/files/bulk-upload",
            Some("multipart/form-data; boundary=B"),
            body,
        )
        .await;
    assert_envelope(&r, 400, "BAD_REQUEST");
    assert!(
        entries(&a.work.join("up")).is_empty(),
        "left: {:?}",
        entries(&a.work.join("up"))
    );
    let r = a
        .call(
            Method::POST,
            "/files/bulk-upload",
            Some("application/json"),
            "{}",
        )
        .await;
    assert_envelope(&r, 400, "BAD_REQUEST");
    // Per-file failure: destination is an existing directory.
    let (ct, body) = multipart(&[
        ("files[0].path", None, b"up"),
        ("files[0].file", Some("up"), b"x"),
    ]);
    let r = a
        .call(Method::POST, "/files/bulk-upload", Some(&ct), body)
        .await;
    assert_eq!(r.status, 400);
    assert!(r.json()["errors"][0].as_str().unwrap().starts_with("up: "));
}

#[tokio::test(flavor = "multi_thread")]
async fn list_info_folder_delete() {
    let a = start().await;
    let r = a
        .call(Method::POST, "/files/folder?path=x/y/z&mode=750", None, "")
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let md = std::fs::metadata(a.work.join("x/y/z")).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&md.permissions()) & 0o777,
        0o750
    );
    std::fs::write(a.work.join("x/f.txt"), "abc").unwrap();
    std::fs::set_permissions(
        a.work.join("x/f.txt"),
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();

    let r = a.call(Method::GET, "/files?path=x", None, "").await;
    assert_eq!(r.status, 200);
    let v = r.json();
    let names: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["f.txt", "y"]);
    assert_eq!(v[0]["size"], 3);
    assert_eq!(v[0]["isDir"], false);
    assert_eq!(v[0]["mode"], "-rw-r--r--");
    assert_eq!(v[0]["permissions"], "0644");
    assert_eq!(v[1]["isDir"], true);
    assert!(
        v[0]["owner"].as_str().is_some()
            && v[0]["group"].as_str().is_some()
            && v[0]["modTime"].as_str().is_some()
    );
    let r = a
        .call(Method::GET, "/files/?path=x&depth=3", None, "")
        .await;
    let paths: Vec<String> = r
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap().to_string())
        .collect();
    assert!(
        paths.contains(&a.work.join("x/y/z").display().to_string()),
        "{paths:?}"
    );

    let r = a
        .call(Method::GET, "/files/info?path=x/f.txt", None, "")
        .await;
    assert_eq!(r.json()["name"], "f.txt");
    let r = a
        .call(Method::GET, "/files/info?path=x/nope", None, "")
        .await;
    assert_envelope(&r, 404, "FILE_NOT_FOUND");

    let r = a
        .call(Method::DELETE, "/files?path=x&recursive=false", None, "")
        .await;
    assert_envelope(&r, 400, "INVALID_FILE_PATH");
    let r = a
        .call(Method::DELETE, "/files?path=x/f.txt", None, "")
        .await;
    assert_eq!(r.status, 204);
    assert!(!a.work.join("x/f.txt").exists());
    let r = a
        .call(Method::DELETE, "/files?path=x&recursive=true", None, "")
        .await;
    assert_eq!(r.status, 204);
    assert!(!a.work.join("x").exists());
    let r = a
        .call(Method::DELETE, "/files?path=x&recursive=true", None, "")
        .await;
    assert_envelope(&r, 404, "FILE_NOT_FOUND");
}

/// State letter of /proc/<pid>/stat, if the process still exists.
fn proc_state(pid: i32) -> Option<char> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    s.rsplit_once(')')
        .and_then(|(_, rest)| rest.trim_start().chars().next())
}

#[tokio::test(flavor = "multi_thread")]
async fn orphans_are_reaped() {
    // Behave like PID 1: orphaned grandchildren are re-parented to this process.
    cove_sys::process::set_child_subreaper().unwrap();
    let a = start().await;
    let n = 40;
    let cmd = format!(
        "for i in $(seq {n}); do sh -c 'sleep 0.1; echo $$ >> pids' >/dev/null 2>&1 & done; exit 0"
    );
    let r = a.exec(json!({"command": cmd})).await;
    assert_eq!(r.json()["exitCode"], 0);
    let deadline = Instant::now() + Duration::from_secs(20);
    let pids: Vec<i32> = loop {
        let text = std::fs::read_to_string(a.work.join("pids")).unwrap_or_default();
        let pids: Vec<i32> = text.lines().filter_map(|l| l.trim().parse().ok()).collect();
        if pids.len() == n {
            break pids;
        }
        assert!(Instant::now() < deadline, "orphans did not run");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    loop {
        let left: Vec<(i32, char)> = pids
            .iter()
            .filter_map(|p| proc_state(*p).map(|s| (*p, s)))
            .collect();
        if left.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "orphans left unreaped: {left:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
