//! The toolbox daemon: PID 1 in every sandbox, serving Daytona's toolbox API on a unix socket.
//!
//! Modules: `process` (execute, code-run, the zombie reaper), `fs` (files, bulk up/download),
//! `info` (health, version, dirs), `error` (the `DAYTONA_DAEMON` envelope), `users`
//! (/etc/passwd parsing), `state` (config, identity, path resolution).

pub mod error;
pub mod fs;
pub mod git;
pub mod info;
pub mod interpreter;
pub mod ports;
pub mod process;
pub mod pty;
pub mod session;
pub mod state;
pub mod users;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::Router;

use state::AgentState;

/// How the agent runs commands.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// The sandbox's environment (from the create request), applied to every command.
    pub env: BTreeMap<String, String>,
    /// Default OS user for commands and file ownership (e.g. `daytona`).
    pub user: String,
}

/// Optional settings beyond [`AgentConfig`].
#[derive(Debug, Clone, Default)]
pub struct AgentOptions {
    /// Work dir for relative paths and commands (the image's WORKDIR); default: the user's home.
    pub work_dir: Option<PathBuf>,
    /// A command started at boot in the `entrypoint` session (an image's entrypoint); empty
    /// for none.
    pub entrypoint: Vec<String>,
}

/// The toolbox API as an axum router (state resolved now; starts the reaper on first spawn).
pub fn router(cfg: AgentConfig) -> Router {
    router_with(cfg, AgentOptions::default())
}

/// [`router`] with [`AgentOptions`].
pub fn router_with(cfg: AgentConfig, opts: AgentOptions) -> Router {
    let st = Arc::new(AgentState::new(cfg.env, cfg.user, opts.work_dir));
    let sessions = Arc::new(session::service::Sessions::new());
    if !opts.entrypoint.is_empty() {
        let (s, st, argv) = (sessions.clone(), st.clone(), opts.entrypoint);
        tokio::spawn(async move {
            if let Err(e) = s.start_entrypoint(&st, &argv).await {
                eprintln!("cove-agent: entrypoint {argv:?} not started: {e}");
            }
        });
    }
    Router::new()
        .merge(info::routes())
        .merge(process::routes())
        .merge(session::routes(sessions))
        .merge(git::routes())
        .merge(pty::routes())
        .merge(interpreter::routes())
        .merge(ports::routes())
        .merge(fs::routes().layer(DefaultBodyLimit::disable()))
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(DefaultBodyLimit::max(64 << 20))
        .layer(axum::middleware::from_fn(error::with_request_ctx))
        .with_state(st)
}

/// Serves `router` on `listener` until it fails.
pub async fn serve(listener: tokio::net::UnixListener, router: Router) -> std::io::Result<()> {
    // Start the reaper before anything can become our child (orphans re-parented to PID 1).
    let _ = process::reaper::Reaper::global();
    axum::serve(listener, router).await
}

/// Builds a tokio runtime and serves the toolbox API on `listener` until the process ends.
/// Returns an exit code only when serving fails.
pub fn run_blocking(listener: UnixListener, cfg: AgentConfig) -> i32 {
    run_blocking_with(listener, cfg, AgentOptions::default())
}

/// [`run_blocking`] with [`AgentOptions`].
pub fn run_blocking_with(listener: UnixListener, cfg: AgentConfig, opts: AgentOptions) -> i32 {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cove-agent: cannot build runtime: {e}");
            return 1;
        }
    };
    rt.block_on(async move {
        if let Err(e) = listener.set_nonblocking(true) {
            eprintln!("cove-agent: {e}");
            return 1;
        }
        let listener = match tokio::net::UnixListener::from_std(listener) {
            Ok(l) => l,
            Err(e) => {
                eprintln!("cove-agent: {e}");
                return 1;
            }
        };
        match serve(listener, router_with(cfg, opts)).await {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("cove-agent: serve failed: {e}");
                1
            }
        }
    })
}
