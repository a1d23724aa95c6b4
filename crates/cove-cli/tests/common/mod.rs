//! Test harness for end-to-end tests: a real `cove server` on a free loopback port with a
//! temporary data dir, a wait-until helper, and cleanup (sandboxes deleted, server killed).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::future::Future;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cove_sdk::{Client, CreateSandbox, ExecuteRequest, Sandbox};

/// Where the shared default-image cache lives (built once per machine).
pub fn images_dir() -> PathBuf {
    std::env::var_os("COVE_IMAGES_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/cove/images"))
}

/// Polls `cond` every 20 ms until it holds; false after `timeout`.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Async twin of [`wait_until`].
pub async fn wait_until_async<F, Fut>(timeout: Duration, mut cond: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if cond().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A running `cove server`, stopped (with its sandboxes deleted) on drop.
pub struct Server {
    child: Child,
    pub port: u16,
    pub key: String,
    pub api_url: String,
    pub root: tempfile::TempDir,
    extra: Vec<String>,
}

/// A free loopback port below the kernel's ephemeral range. A server restarted on the same
/// port must find it free again: a port from the ephemeral range can meanwhile become the
/// local port of any outgoing connection on the machine (tests make thousands).
fn free_port() -> u16 {
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let (from, to) = if low > 12000 {
        (10000, low)
    } else {
        (low.max(1024), low.max(1024) + 1000)
    };
    for _ in 0..1000 {
        let port = from + (rand::random::<u16>() % (to - from));
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port in {from}..{to}")
}

/// Whether the server on `port` answers `GET /api/sandbox` with 200 for `key`.
fn answers(port: u16, key: &str) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let req = format!(
        "GET /api/sandbox?limit=1 HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\nConnection: close\r\n\r\n"
    );
    let mut head = [0u8; 12];
    s.write_all(req.as_bytes()).is_ok()
        && s.read_exact(&mut head).is_ok()
        && head.starts_with(b"HTTP/1.1 200")
}

/// Spawns `cove server` on `root/data`, appending its output to `root/server.log`.
fn spawn(
    root: &std::path::Path,
    port: u16,
    key: &str,
    extra: &[String],
    failpoint: Option<&str>,
) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(root.join("server.log"))
        .expect("server.log");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cove"));
    // Its own process group: a signal meant for the test's group never reaches the server.
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    cmd.arg("server")
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--data-dir")
        .arg(root.join("data"))
        .arg("--images-dir")
        .arg(images_dir())
        .args(extra)
        .env("COVE_API_KEY", key)
        .env_remove("COVE_API_URL")
        .env_remove("COVE_FAILPOINT")
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log fd"))
        .stderr(log);
    if let Some(fp) = failpoint {
        cmd.env("COVE_FAILPOINT", fp);
    }
    cmd.spawn().expect("cannot start `cove server`")
}

impl Server {
    /// Starts the server and waits until it accepts connections.
    pub fn start() -> Server {
        Self::start_with(&[])
    }

    /// [`Server::start`] with extra `cove server` arguments.
    pub fn start_with(extra: &[&str]) -> Server {
        let root = tempfile::Builder::new()
            .prefix("cove-e2e-")
            .tempdir()
            .expect("cannot create a temp dir");
        let key = format!("e2e-{:016x}", rand::random::<u64>());
        let port = free_port();
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let child = spawn(root.path(), port, &key, &extra, None);
        let mut srv = Server {
            child,
            port,
            key,
            api_url: format!("http://127.0.0.1:{port}/api"),
            root,
            extra,
        };
        srv.wait_up();
        srv
    }

    /// Waits until this server answers an authenticated API call (not merely a TCP connect:
    /// the port must be served by this process, with this key).
    fn wait_up(&mut self) {
        let port = self.port;
        let key = self.key.clone();
        let up = wait_until(Duration::from_secs(60), || {
            answers(port, &key) || self.exited()
        });
        assert!(
            up && !self.exited(),
            "cove server did not come up on port {port}:\n{}",
            self.log()
        );
    }

    /// The server's data dir (kept across [`Server::restart`]).
    pub fn data_dir(&self) -> PathBuf {
        self.root.path().join("data")
    }

    /// Kills the server with SIGKILL (no cleanup at all) and reaps it.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits until the server exits on its own (e.g. at a failpoint); false after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> bool {
        let ok = wait_until(timeout, || self.exited());
        let _ = self.child.try_wait();
        ok
    }

    /// Starts the server again on the same data dir, port and key (the previous process must
    /// be gone), with `COVE_FAILPOINT=<failpoint>` if given.
    pub fn restart(&mut self, failpoint: Option<&str>) {
        assert!(
            self.exited(),
            "restart: the previous server is still running"
        );
        self.child = spawn(
            self.root.path(),
            self.port,
            &self.key,
            &self.extra,
            failpoint,
        );
        self.wait_up();
    }

    fn exited(&mut self) -> bool {
        !matches!(self.child.try_wait(), Ok(None))
    }

    /// Whether the server process is still running.
    pub fn alive(&mut self) -> bool {
        !self.exited()
    }

    /// The server's output so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.root.path().join("server.log")).unwrap_or_default()
    }

    /// An SDK client with the right key; waits long enough for a first-time image build. It
    /// does not keep connections alive: tests kill and restart the server under it.
    pub fn client(&self) -> Client {
        Client::new(&self.api_url, &self.key)
            .and_then(Client::without_connection_reuse)
            .expect("client")
            .with_wait_timeout(Duration::from_secs(1800))
    }

    /// A client with a wrong key.
    pub fn client_with_key(&self, key: &str) -> Client {
        Client::new(&self.api_url, key).expect("client")
    }

    /// The server's origin, e.g. `http://127.0.0.1:1234`.
    pub fn origin(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = self.log();
            let tail: String = log
                .lines()
                .rev()
                .take(60)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("\n");
            eprintln!("---- cove server log (tail) ----\n{tail}\n--------------------------------");
        }
        // Delete what the test left behind, from a thread with its own runtime (we may be
        // inside the test's runtime).
        let (url, key) = (self.api_url.clone(), self.key.clone());
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                let c = Client::new(url, key).ok()?;
                for s in c.list(None).await.ok()? {
                    let _ = c.delete(&s.id).await;
                }
                let _ = wait_until_async(Duration::from_secs(30), || async {
                    c.list(None).await.map(|l| l.is_empty()).unwrap_or(true)
                })
                .await;
                Some(())
            })
        })
        .join();
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        if !wait_until(Duration::from_secs(10), || self.exited()) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        cleanup_data_dir(self.root.path());
    }
}

/// After the server is gone: destroys (through the runtime, as the server would) every
/// sandbox it left behind — PID 1 killed, cgroups and disk mount removed — then lazily
/// unmounts whatever is still mounted under `root`, so no process, mount or loop device
/// outlives the test.
pub fn cleanup_data_dir(root: &std::path::Path) {
    let data = root.join("data");
    let ids: Vec<String> = std::fs::read_dir(data.join("sandboxes"))
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    if !ids.is_empty() {
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            let sandboxes = cove_runtime::Runtime::new(cove_runtime::RuntimeConfig {
                data_dir: data,
                images_dir: images_dir(),
                init_exe: PathBuf::from(env!("CARGO_BIN_EXE_cove")),
            })
            .ok()?;
            rt.block_on(async {
                for id in ids {
                    if let Err(e) = sandboxes.destroy(&id).await {
                        eprintln!("cleanup: destroy {id}: {e}");
                    }
                }
            });
            Some(())
        })
        .join();
    }
    for m in mounts_under(root) {
        let _ = cove_sys::mount::umount2(&m, cove_sys::mount::MNT_DETACH);
    }
}

/// Mount points at or below `dir` (from /proc/self/mountinfo), deepest first.
pub fn mounts_under(dir: &std::path::Path) -> Vec<PathBuf> {
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut v: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| PathBuf::from(p.replace("\\040", " ")))
        .filter(|p| p.starts_with(&dir))
        .collect();
    v.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    v
}

/// A create request with one label.
pub fn labelled(k: &str, v: &str) -> CreateSandbox {
    CreateSandbox {
        labels: BTreeMap::from([(k.to_string(), v.to_string())]),
        ..Default::default()
    }
}

/// Runs `cmd` in `sb` and returns (exit code, output); panics on transport/API errors.
pub async fn sh(c: &Client, sb: &Sandbox, cmd: &str) -> (i32, String) {
    let out = c
        .exec(
            &sb.id,
            &ExecuteRequest {
                command: cmd.to_string(),
                timeout: Some(120),
                ..Default::default()
            },
        )
        .await
        .unwrap_or_else(|e| panic!("exec {cmd:?} in {} failed: {e}", sb.id));
    (out.exit_code, out.result)
}

/// A random suffix for labels and file names.
pub fn nonce() -> String {
    format!("{:012x}", rand::random::<u64>() & 0xffff_ffff_ffff)
}
