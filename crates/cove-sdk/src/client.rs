//! The API client: sandbox lifecycle over `{api}/sandbox…` (spec §7) and toolbox process calls.
//!
//! Lifecycle calls wait like the official SDKs (spec §7.4): `create`/`start` until `started`,
//! `stop` until `stopped`, polling `GET /sandbox/{id}`; an `error` state fails the wait.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use cove_types::api::{state, CreateSandbox, ListSandboxesResponse, Sandbox, SandboxLabels};
use cove_types::toolbox::{CodeRunRequest, ExecuteRequest, ExecuteResponse};
use reqwest::{Method, RequestBuilder};
use serde::de::DeserializeOwned;

use crate::error::{parse_error_body, Error};
use crate::urls::{api_url, enc, list_query, toolbox_url};

/// Where a client points when nothing is configured.
pub const DEFAULT_API_URL: &str = "http://127.0.0.1:3000/api";

/// How many times a GET is sent again after a connection-level failure (stale kept-alive
/// connections after a server restart).
const STALE_RETRIES: usize = 3;

/// A client for one cove (or Daytona-compatible) server.
pub struct Client {
    pub(crate) http: reqwest::Client,
    api_url: String,
    api_key: String,
    /// How long lifecycle calls wait for the target state.
    wait_timeout: Duration,
    /// `toolboxProxyUrl` per sandbox id, learnt from every Sandbox we saw.
    proxies: Mutex<HashMap<String, String>>,
}

fn http_client(keep_alive: bool) -> Result<reqwest::Client, Error> {
    let mut b =
        reqwest::Client::builder().user_agent(concat!("cove-sdk/", env!("CARGO_PKG_VERSION")));
    if !keep_alive {
        b = b.pool_max_idle_per_host(0);
    }
    b.build()
        .map_err(|e| Error::Config(format!("cannot build HTTP client: {e}")))
}

impl Client {
    /// A client for `api_url` (e.g. `http://127.0.0.1:3000/api`) authenticating with `api_key`.
    pub fn new(api_url: impl Into<String>, api_key: impl Into<String>) -> Result<Self, Error> {
        let api_url = api_url.into().trim_end_matches('/').to_string();
        if !(api_url.starts_with("http://") || api_url.starts_with("https://")) {
            return Err(Error::Config(format!(
                "API URL {api_url:?} must start with http:// or https://"
            )));
        }
        let http = http_client(true)?;
        Ok(Self {
            http,
            api_url,
            api_key: api_key.into(),
            wait_timeout: Duration::from_secs(600),
            proxies: Mutex::new(HashMap::new()),
        })
    }

    /// From `COVE_API_URL`/`COVE_API_KEY`, falling back to `DAYTONA_API_URL`/`DAYTONA_API_KEY`;
    /// the URL defaults to [`DEFAULT_API_URL`], the key is required.
    pub fn from_env() -> Result<Self, Error> {
        let var = |a: &str, b: &str| {
            std::env::var(a)
                .ok()
                .filter(|v| !v.is_empty())
                .or_else(|| std::env::var(b).ok().filter(|v| !v.is_empty()))
        };
        let url = var("COVE_API_URL", "DAYTONA_API_URL").unwrap_or_else(|| DEFAULT_API_URL.into());
        let key = var("COVE_API_KEY", "DAYTONA_API_KEY").ok_or_else(|| {
            Error::Config("set COVE_API_KEY (or DAYTONA_API_KEY) to an API key".into())
        })?;
        Self::new(url, key)
    }

    /// Opens a new connection for every request instead of keeping connections alive: for
    /// talking to a server that is killed and restarted (a kept-alive connection to the old
    /// process fails on first use, and only a GET can safely be sent again).
    pub fn without_connection_reuse(mut self) -> Result<Self, Error> {
        self.http = http_client(false)?;
        Ok(self)
    }

    /// Sets how long `create`, `start` and `stop` wait for their target state (default 10 min:
    /// the first create on a machine builds the default image).
    pub fn with_wait_timeout(mut self, timeout: Duration) -> Self {
        self.wait_timeout = timeout;
        self
    }

    /// The API base URL this client talks to.
    pub fn api_url(&self) -> &str {
        &self.api_url
    }

    pub(crate) fn request(&self, method: Method, url: &str) -> RequestBuilder {
        self.http.request(method, url).bearer_auth(&self.api_key)
    }

    /// Sends `req`, maps non-2xx to [`Error::Api`], returns the successful response.
    pub(crate) async fn send(
        &self,
        method: &Method,
        url: &str,
        req: RequestBuilder,
    ) -> Result<reqwest::Response, Error> {
        let transport = |e| Error::Transport {
            method: method.to_string(),
            url: url.to_string(),
            source: e,
        };
        // A kept-alive connection to a server that has since restarted fails on first use; a
        // GET is safe to send again, and the pool drops each dead connection it tried.
        let template = (*method == Method::GET).then(|| req.try_clone()).flatten();
        let mut result = req.send().await;
        for _ in 0..STALE_RETRIES {
            let stale = matches!(&result, Err(e) if e.is_request() || e.is_connect());
            match template.as_ref().and_then(RequestBuilder::try_clone) {
                Some(again) if stale => result = again.send().await,
                _ => break,
            }
        }
        let resp = result.map_err(transport)?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let body = resp.bytes().await.map_err(transport)?;
        let (message, envelope) = parse_error_body(&body);
        Err(Error::Api {
            method: method.to_string(),
            url: url.to_string(),
            status: status.as_u16(),
            message,
            envelope,
        })
    }

    /// Sends a request with an optional JSON body and decodes a JSON answer.
    pub(crate) async fn json<T: DeserializeOwned>(
        &self,
        method: Method,
        url: &str,
        body: Option<&(dyn erased::Json + Sync)>,
    ) -> Result<T, Error> {
        let mut req = self.request(method.clone(), url);
        if let Some(b) = body {
            req = req
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(b.to_json());
        }
        let resp = self.send(&method, url, req).await?;
        let bytes = resp.bytes().await.map_err(|e| Error::Transport {
            method: method.to_string(),
            url: url.to_string(),
            source: e,
        })?;
        serde_json::from_slice(&bytes).map_err(|e| Error::Decode {
            url: url.to_string(),
            reason: format!("{e} in {}", String::from_utf8_lossy(&bytes)),
        })
    }

    fn remember(&self, sb: &Sandbox) {
        if !sb.toolbox_proxy_url.is_empty() {
            if let Ok(mut m) = self.proxies.lock() {
                m.insert(sb.id.clone(), sb.toolbox_proxy_url.clone());
                m.insert(sb.name.clone(), sb.toolbox_proxy_url.clone());
            }
        }
    }

    pub(crate) fn sandbox_url(&self, id: &str, rest: &str) -> String {
        api_url(&self.api_url, &format!("sandbox/{}{rest}", enc(id)))
    }

    /// `POST /sandbox`, then waits until the sandbox is `started`.
    pub async fn create(&self, req: &CreateSandbox) -> Result<Sandbox, Error> {
        let url = api_url(&self.api_url, "sandbox");
        let sb: Sandbox = self.json(Method::POST, &url, Some(req)).await?;
        self.remember(&sb);
        self.wait_for(sb, &[state::STARTED]).await
    }

    /// `GET /sandbox/{idOrName}`.
    pub async fn get(&self, id_or_name: &str) -> Result<Sandbox, Error> {
        let sb: Sandbox = self
            .json(Method::GET, &self.sandbox_url(id_or_name, ""), None)
            .await?;
        self.remember(&sb);
        Ok(sb)
    }

    /// `GET /sandbox`, following `nextCursor` to the end; `labels` must all match.
    pub async fn list(
        &self,
        labels: Option<&BTreeMap<String, String>>,
    ) -> Result<Vec<Sandbox>, Error> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let url = format!(
                "{}{}",
                api_url(&self.api_url, "sandbox"),
                list_query(labels, cursor.as_deref())
            );
            let page: ListSandboxesResponse = self.json(Method::GET, &url, None).await?;
            page.items.iter().for_each(|s| self.remember(s));
            out.extend(page.items);
            match page.next_cursor {
                Some(c) if !c.is_empty() && cursor.as_deref() != Some(c.as_str()) => {
                    cursor = Some(c)
                }
                _ => return Ok(out),
            }
        }
    }

    /// `DELETE /sandbox/{idOrName}` (does not wait for `destroyed`).
    pub async fn delete(&self, id_or_name: &str) -> Result<(), Error> {
        let url = self.sandbox_url(id_or_name, "");
        let req = self.request(Method::DELETE, &url);
        self.send(&Method::DELETE, &url, req).await?;
        if let Ok(mut m) = self.proxies.lock() {
            m.remove(id_or_name);
        }
        Ok(())
    }

    /// `POST /sandbox/{id}/start`, then waits for `started`.
    pub async fn start(&self, id_or_name: &str) -> Result<Sandbox, Error> {
        let url = self.sandbox_url(id_or_name, "/start");
        let sb: Sandbox = self.json(Method::POST, &url, None).await?;
        self.remember(&sb);
        self.wait_for(sb, &[state::STARTED]).await
    }

    /// `POST /sandbox/{id}/stop`, then waits for `stopped`.
    pub async fn stop(&self, id_or_name: &str) -> Result<Sandbox, Error> {
        let url = self.sandbox_url(id_or_name, "/stop");
        let req = self.request(Method::POST, &url);
        self.send(&Method::POST, &url, req).await?;
        let sb = self.get(id_or_name).await?;
        self.wait_for(sb, &[state::STOPPED, state::DESTROYED]).await
    }

    /// `POST /sandbox/{id}/archive` (the sandbox must be stopped); answers once it is
    /// `archived`. `start` restores it.
    pub async fn archive(&self, id_or_name: &str) -> Result<Sandbox, Error> {
        let url = self.sandbox_url(id_or_name, "/archive");
        let sb: Sandbox = self.json(Method::POST, &url, None).await?;
        self.wait_for(sb, &[state::ARCHIVED]).await
    }

    /// `PUT /sandbox/{id}/labels` (replaces all labels); returns the new labels.
    pub async fn set_labels(
        &self,
        id_or_name: &str,
        labels: BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, String>, Error> {
        let url = self.sandbox_url(id_or_name, "/labels");
        let body = SandboxLabels { labels };
        let out: SandboxLabels = self.json(Method::PUT, &url, Some(&body)).await?;
        Ok(out.labels)
    }

    /// Polls `GET /sandbox/{id}` until its state is one of `targets` (spec §7.4).
    async fn wait_for(&self, mut sb: Sandbox, targets: &[&str]) -> Result<Sandbox, Error> {
        let deadline = Instant::now() + self.wait_timeout;
        let mut delay = Duration::from_millis(20);
        loop {
            let st = sb.state.clone().unwrap_or_default();
            if targets.contains(&st.as_str()) {
                return Ok(sb);
            }
            if st == state::ERROR || st == "build_failed" {
                return Err(Error::State {
                    id: sb.id.clone(),
                    reason: format!(
                        "entered state {st}: {}",
                        sb.error_reason.clone().unwrap_or_default()
                    ),
                });
            }
            if Instant::now() > deadline {
                return Err(Error::State {
                    id: sb.id.clone(),
                    reason: format!(
                        "still {st} after {:?}, wanted {}",
                        self.wait_timeout,
                        targets.join("|")
                    ),
                });
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_millis(500));
            sb = match self.get(&sb.id).await {
                Ok(s) => s,
                Err(e) if e.status() == Some(404) && targets.contains(&state::DESTROYED) => {
                    return Ok(sb)
                }
                Err(e) => return Err(e),
            };
        }
    }

    /// The toolbox URL for `path` of sandbox `id` (`toolboxProxyUrl/id/path`).
    pub(crate) async fn toolbox(&self, id: &str, path: &str) -> Result<String, Error> {
        let known = self.proxies.lock().ok().and_then(|m| m.get(id).cloned());
        let proxy = match known {
            Some(p) => p,
            None => {
                let sb = self.get(id).await?;
                if sb.toolbox_proxy_url.is_empty() {
                    let u: cove_types::api::Url = self
                        .json(
                            Method::GET,
                            &self.sandbox_url(id, "/toolbox-proxy-url"),
                            None,
                        )
                        .await?;
                    u.url
                } else {
                    sb.toolbox_proxy_url
                }
            }
        };
        Ok(toolbox_url(&proxy, id, path))
    }

    /// `POST {tb}/process/execute`: runs a shell command, returns its exit code and output.
    pub async fn exec(&self, id: &str, req: &ExecuteRequest) -> Result<ExecuteResponse, Error> {
        let url = self.toolbox(id, "process/execute").await?;
        self.json(Method::POST, &url, Some(req)).await
    }

    /// `POST {tb}/process/code-run`: runs code (language defaults to python).
    pub async fn code_run(&self, id: &str, req: &CodeRunRequest) -> Result<ExecuteResponse, Error> {
        let url = self.toolbox(id, "process/code-run").await?;
        let mut req = req.clone();
        if req.language.is_none() {
            req.language = Some("python".into());
        }
        self.json(Method::POST, &url, Some(&req)).await
    }
}

/// Object-safe JSON serialization for request bodies.
pub(crate) mod erased {
    /// Anything serializable to a JSON body.
    pub trait Json {
        fn to_json(&self) -> Vec<u8>;
    }
    impl<T: serde::Serialize> Json for T {
        fn to_json(&self) -> Vec<u8> {
            serde_json::to_vec(self).unwrap_or_default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};
    use std::net::{TcpListener, TcpStream};

    /// Reads one request head from `s` (no body: GETs only).
    fn read_head(s: &TcpStream) -> bool {
        let mut r = BufReader::new(s);
        let mut line = String::new();
        loop {
            line.clear();
            match r.read_line(&mut line) {
                Ok(0) | Err(_) => return false,
                Ok(_) if line == "\r\n" => return true,
                Ok(_) => {}
            }
        }
    }

    /// A GET whose kept-alive connection the server dropped (as a restarted server's old
    /// process did) is sent again on a new connection.
    #[tokio::test]
    async fn a_get_on_a_dead_kept_alive_connection_is_sent_again() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            const OK: &[u8] =
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 30\r\n\r\n{\"items\":[],\"nextCursor\":null}";
            // Connection 1: answers one request and stays open, then drops the next one.
            let (first, _) = l.accept().unwrap();
            assert!(read_head(&first));
            (&first).write_all(OK).unwrap();
            assert!(read_head(&first));
            drop(first);
            // Connection 2: the retry.
            let (second, _) = l.accept().unwrap();
            assert!(read_head(&second));
            (&second).write_all(OK).unwrap();
        });
        let c = Client::new(format!("http://127.0.0.1:{port}/api"), "k").unwrap();
        assert!(c.list(None).await.unwrap().is_empty());
        assert!(
            c.list(None).await.unwrap().is_empty(),
            "sent again after the dead connection"
        );
        server.join().unwrap();
    }

    #[test]
    fn new_rejects_non_http_urls_and_trims_slash() {
        assert!(Client::new("127.0.0.1:3000", "k").is_err());
        let c = Client::new("http://127.0.0.1:3000/api/", "k").unwrap();
        assert_eq!(c.api_url(), "http://127.0.0.1:3000/api");
        assert_eq!(
            c.sandbox_url("a/b", "/start"),
            "http://127.0.0.1:3000/api/sandbox/a%2Fb/start"
        );
    }
}
