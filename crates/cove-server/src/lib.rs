//! The control plane: Daytona-compatible API, store, auth, toolbox proxy, Socket.IO events.
//!
//! Request path: `auth` (bearer key → organization) → `api::*` handlers or `proxy` (toolbox) →
//! `lifecycle::Manager` (store first, then the runtime) → `events` (Socket.IO push).

pub mod api;
pub mod auth;
pub mod error;
pub mod events;
pub mod failpoint;
pub mod lifecycle;
pub mod objects;
pub mod preview;
pub mod proxy;
pub mod reconciler;
pub mod signed;
pub mod snapshot;
pub mod store;
pub mod timers;
pub mod ttl;

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cove_runtime::{Runtime, RuntimeConfig};

/// Errors of the server library.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot prepare data dir {path}")]
    DataDir {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error("store query failed")]
    Query(#[from] sqlx::Error),
    #[error(transparent)]
    Runtime(#[from] cove_runtime::RuntimeError),
    #[error(transparent)]
    Objects(#[from] objects::ObjectsError),
    #[error("cannot listen on {addr}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("server failed")]
    Serve(#[source] std::io::Error),
}

/// How `cove server` was started.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// Image cache; default `<data_dir>/images`.
    pub images_dir: Option<PathBuf>,
    /// A key accepted as-is (seeded into the store on start), from `COVE_API_KEY`.
    pub api_key: Option<String>,
    /// Base URL clients reach the server at; default: taken from each request's Host header.
    pub public_url: Option<String>,
    /// The `cove` executable (for `cove __sandbox-init`).
    pub init_exe: PathBuf,
    /// Boot every sandbox with `no_new_privs` (setuid programs such as `sudo` stop working).
    pub no_new_privs: bool,
    /// Seconds in a timer "minute" (auto-stop/delete intervals); 60 except in tests.
    pub minute_secs: u64,
    /// Where archives go: `s3://bucket[/prefix]` (AWS_* variables) or `file:///dir`;
    /// default `<data_dir>/objects`.
    pub object_store: Option<String>,
}

/// Now as an RFC 3339 UTC timestamp with milliseconds (`2026-01-01T00:00:00.000Z`).
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Creates the data dir so that sandbox uids (unprivileged on the host) can traverse it.
fn prepare_data_dir(dir: &Path) -> Result<(), ServerError> {
    let err = |source| ServerError::DataDir {
        path: dir.display().to_string(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(err)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o711)).map_err(err)?;
    Ok(())
}

/// Opens the store, seeds the configured key, settles sandboxes left by a previous run and
/// builds the router. Does not start the default image build (see [`run`]).
pub async fn app(
    cfg: &ServerConfig,
) -> Result<(axum::Router, Arc<lifecycle::Manager>), ServerError> {
    failpoint::init();
    prepare_data_dir(&cfg.data_dir)?;
    api::dto::set_data_dir(&cfg.data_dir);
    let pool = store::open(&cfg.data_dir).await?;
    if let Some(key) = &cfg.api_key {
        store::keys::insert(&pool, "COVE_API_KEY", key).await?;
    }
    let images_dir = cfg
        .images_dir
        .clone()
        .unwrap_or_else(|| cfg.data_dir.join("images"));
    let runtime = Runtime::new(RuntimeConfig {
        data_dir: cfg.data_dir.clone(),
        images_dir,
        init_exe: cfg.init_exe.clone(),
    })?;
    let objects =
        objects::Objects::open(cfg.object_store.as_deref(), &cfg.data_dir.join("objects"))?;
    tracing::info!("archives go to {}", objects.describe());
    let mut manager = lifecycle::Manager::new(pool.clone(), Arc::new(runtime), Arc::new(objects));
    manager.no_new_privs = cfg.no_new_privs;
    manager.minute = std::time::Duration::from_secs(cfg.minute_secs.max(1));
    let manager = Arc::new(manager);
    // Before the sweep of unused layers in reconcile_at_start: rows naming host paths.
    let migrated = store::layers::migrate(&pool).await?;
    if migrated > 0 {
        tracing::info!("snapshots: {migrated} rows now name their layers without host paths");
    }
    manager.reconcile_at_start().await?;
    manager.spawn_sweep_archives();
    let state = api::AppState {
        pool,
        manager: manager.clone(),
        public_url: cfg.public_url.clone(),
        keys: Default::default(),
        snapshot_gate: Default::default(),
    };
    Ok((api::router(state), manager))
}

/// Runs the server until the process is stopped: binds, starts building the default image
/// (progress in the log) and serves.
pub async fn run(cfg: ServerConfig) -> Result<(), ServerError> {
    let (app, manager) = app(&cfg).await?;
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .map_err(|source| ServerError::Listen {
            addr: cfg.listen,
            source,
        })?;
    manager.kick_image_build();
    if let Err(e) = manager
        .runtime
        .start_disk_pool(api::sandbox::DEFAULT_DISK_GIB as u32)
    {
        tracing::warn!("disk pool: {e}; every create formats its own disk image");
    }
    manager.spawn_timers();
    tracing::info!("cove server listening on http://{}", cfg.listen);
    axum::serve(listener, app).await.map_err(ServerError::Serve)
}

/// Creates a new API key named `name` in the store under `data_dir` and returns it (shown once).
pub async fn create_api_key(data_dir: &Path, name: &str) -> Result<String, ServerError> {
    prepare_data_dir(data_dir)?;
    let pool = store::open(data_dir).await?;
    let key = store::keys::generate();
    store::keys::insert(&pool, name, &key).await?;
    pool.close().await;
    Ok(key)
}
