//! `POST /process/execute` and `POST /process/code-run` (spec §10.1, §10.2).

pub mod direct;
pub mod reaper;
pub mod service;

use std::path::PathBuf;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use cove_types::toolbox::{CodeRunRequest, ExecuteRequest, ExecuteResponse};

use crate::error::{json_response, ApiError, JsonBody};
use crate::state::{Identity, SharedState};
use service::{RunSpec, DEFAULT_PATH};

/// Errors of process execution.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("command must not be empty")]
    EmptyCommand,
    #[error("working directory {0} does not exist or is not a directory")]
    BadCwd(String),
    #[error("{0}")]
    Unsupported(String),
    #[error("failed to start {program}: {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("command timed out after {0} seconds")]
    Timeout(u64),
    #[error("process I/O failed: {0}")]
    Io(std::io::Error),
}

impl From<ProcessError> for ApiError {
    fn from(e: ProcessError) -> Self {
        let (status, code) = match &e {
            ProcessError::EmptyCommand | ProcessError::BadCwd(_) | ProcessError::Unsupported(_) => {
                (StatusCode::BAD_REQUEST, "BAD_REQUEST")
            }
            ProcessError::Spawn { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                (StatusCode::BAD_REQUEST, "BAD_REQUEST")
            }
            ProcessError::Timeout(_) => (StatusCode::REQUEST_TIMEOUT, "PROCESS_EXECUTION_TIMEOUT"),
            ProcessError::Spawn { .. } | ProcessError::Io(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_SERVER_ERROR")
            }
        };
        ApiError::new(status, code, e.to_string())
    }
}

pub fn routes() -> Router<SharedState> {
    Router::new()
        .route("/process/execute", post(execute))
        .route("/process/code-run", post(code_run))
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Base env, then the sandbox env, then the request's envs (later entries win).
pub(crate) fn build_env(
    st: &SharedState,
    id: &Identity,
    extra: Option<&std::collections::BTreeMap<String, String>>,
) -> Vec<(String, String)> {
    let shell = if id.shell.is_empty() {
        "/bin/sh".to_string()
    } else {
        id.shell.clone()
    };
    let mut env = vec![
        ("HOME".to_string(), id.home.display().to_string()),
        ("USER".to_string(), id.name.clone()),
        ("LOGNAME".to_string(), id.name.clone()),
        ("SHELL".to_string(), shell),
        ("PATH".to_string(), DEFAULT_PATH.to_string()),
        ("HOSTNAME".to_string(), hostname()),
    ];
    env.extend(st.env.iter().map(|(k, v)| (k.clone(), v.clone())));
    if let Some(extra) = extra {
        env.extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    env
}

fn timeout_of(t: Option<u64>) -> Option<Duration> {
    t.filter(|t| *t > 0).map(Duration::from_secs)
}

fn respond(out: service::RunOutput) -> Response {
    let resp = ExecuteResponse {
        exit_code: out.exit_code,
        result: String::from_utf8_lossy(&out.output).into_owned(),
    };
    json_response(StatusCode::OK, &resp)
}

/// `oom_score_adj` of everything the agent spawns: 0 when the agent itself runs at -1000 (set
/// by the host at boot), else 100, which on a sandbox's OOM makes any of its processes a
/// likelier pick than the agent (the host may lack CAP_SYS_RESOURCE to lower the agent's; a
/// flood of small processes would otherwise get the agent, the sandbox's PID 1, killed).
pub(crate) fn child_oom_score_adj() -> i32 {
    static ADJ: std::sync::OnceLock<i32> = std::sync::OnceLock::new();
    *ADJ.get_or_init(|| {
        let own = std::fs::read_to_string("/proc/self/oom_score_adj")
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
            .unwrap_or(0);
        if own < 0 {
            0
        } else {
            100
        }
    })
}

/// The shell commands run with: bash when the image has it, else sh.
pub(crate) fn shell() -> PathBuf {
    if std::path::Path::new("/bin/bash").exists() {
        "/bin/bash".into()
    } else {
        "/bin/sh".into()
    }
}

async fn execute(
    State(st): State<SharedState>,
    JsonBody(req): JsonBody<ExecuteRequest>,
) -> Result<Response, ApiError> {
    if req.command.trim().is_empty() {
        return Err(ProcessError::EmptyCommand.into());
    }
    let id = st.identity(req.user.as_deref())?;
    let cwd = match req.cwd.as_deref().filter(|c| !c.is_empty()) {
        Some(c) => st.resolve(c),
        None => st.work_dir.clone(),
    };
    let mut env = build_env(&st, &id, req.envs.as_ref());
    let (program, args) = match direct::direct(&req.command, &cwd, &env) {
        Some(d) => {
            env.extend(d.extra_env);
            (d.program, d.args)
        }
        None => (shell(), vec!["-c".into(), req.command]),
    };
    let spec = RunSpec {
        program,
        args,
        cwd,
        env,
        stdin: None,
        timeout: timeout_of(req.timeout),
        creds: id.creds,
    };
    Ok(respond(service::run(spec).await?))
}

fn find_ts_node(env: &[(String, String)]) -> bool {
    service::which("ts-node", env).is_some()
        || [
            "/usr/local/lib/node_modules/ts-node",
            "/usr/lib/node_modules/ts-node",
        ]
        .iter()
        .any(|p| std::path::Path::new(p).exists())
}

async fn code_run(
    State(st): State<SharedState>,
    JsonBody(req): JsonBody<CodeRunRequest>,
) -> Result<Response, ApiError> {
    let id = st.identity(None)?;
    let env = build_env(&st, &id, req.envs.as_ref());
    let argv = req.argv.unwrap_or_default();
    let lang = req
        .language
        .as_deref()
        .unwrap_or("python")
        .to_ascii_lowercase();
    let mut temp: Option<PathBuf> = None;
    let (prog, mut args, stdin) = match lang.as_str() {
        "" | "python" | "python3" => (
            "python3",
            vec!["-u".to_string(), "-".to_string()],
            Some(req.code.into_bytes()),
        ),
        "javascript" | "js" => ("node", vec!["-".to_string()], Some(req.code.into_bytes())),
        "typescript" | "ts" => {
            if service::which("npx", &env).is_none() || !find_ts_node(&env) {
                return Err(ProcessError::Unsupported(
                    "typescript code-run needs node, npx and ts-node in the sandbox (npm install -g typescript ts-node)".into(),
                )
                .into());
            }
            let path =
                std::env::temp_dir().join(format!("cove-code-{}.ts", crate::fs::random_token()));
            std::fs::write(&path, req.code.as_bytes()).map_err(ProcessError::Io)?;
            st.chown_to(&path, &id);
            let a = vec![
                "--no-install".into(),
                "ts-node".into(),
                "-T".into(),
                path.display().to_string(),
            ];
            temp = Some(path);
            ("npx", a, None)
        }
        other => {
            return Err(ProcessError::Unsupported(format!(
                "unsupported language: {other} (python, javascript, typescript)"
            ))
            .into())
        }
    };
    args.extend(argv);
    let program = service::which(prog, &env).ok_or_else(|| {
        ProcessError::Unsupported(format!(
            "{prog} is not installed in the sandbox (not found in PATH)"
        ))
    })?;
    let spec = RunSpec {
        program,
        args,
        cwd: st.work_dir.clone(),
        env,
        stdin,
        timeout: timeout_of(req.timeout),
        creds: id.creds,
    };
    let result = service::run(spec).await;
    if let Some(p) = temp {
        let _ = std::fs::remove_file(p);
    }
    Ok(respond(result?))
}
