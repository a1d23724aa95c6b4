//! `cove server` and `cove api-key create`: thin wrappers over cove-server.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};

#[derive(Args)]
pub struct ServerArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:3000")]
    listen: SocketAddr,
    /// Where the store and sandboxes live.
    #[arg(long, default_value = "/var/lib/cove")]
    data_dir: PathBuf,
    /// Image cache (default: <data-dir>/images).
    #[arg(long)]
    images_dir: Option<PathBuf>,
    /// Base URL clients reach this server at (default: from each request's Host header).
    #[arg(long)]
    public_url: Option<String>,
    /// Boot sandboxes with no_new_privs: setuid programs (sudo) stop working inside them.
    #[arg(long, env = "COVE_NO_NEW_PRIVS")]
    no_new_privs: bool,
    /// Where archived sandboxes' files go: s3://bucket[/prefix] (any S3-compatible service,
    /// configured by AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION,
    /// AWS_ALLOW_HTTP) or file:///dir [default: <data-dir>/objects].
    #[arg(long, value_name = "URL")]
    object_store: Option<String>,
    /// Length of a timer minute in seconds (tests shorten it).
    #[arg(long, default_value_t = 60, hide = true)]
    minute_seconds: u64,
    /// Leave the host's cgroup2 mount options alone. By default the server adds
    /// `favordynmods` to them, which makes a sandbox's boot ~12 ms faster (see
    /// docs/ARCHITECTURE.md) at a small cost on every fork and exit on the host.
    #[arg(long, env = "COVE_NO_FAVORDYNMODS")]
    no_favordynmods: bool,
    /// An API key accepted as-is.
    #[arg(long, env = "COVE_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
}

#[derive(Subcommand)]
pub enum ApiKeyCmd {
    /// Create an API key and print it (shown once).
    Create {
        /// A name to recognise the key by.
        name: String,
        /// The server's data dir.
        #[arg(long, default_value = "/var/lib/cove")]
        data_dir: PathBuf,
    },
}

pub async fn serve(a: ServerArgs) -> anyhow::Result<()> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
    let init_exe =
        std::env::current_exe().context("cannot find the path of the cove executable")?;
    if a.api_key.is_none() {
        eprintln!("note: COVE_API_KEY is not set; create a key with `cove api-key create NAME`");
    }
    if !a.no_favordynmods {
        match cove_runtime::dynmods::favor_dynmods() {
            Ok(Some(at)) => tracing::info!(
                "added favordynmods to the cgroup2 mount at {} (faster sandbox boots; --no-favordynmods to keep it as it was)",
                at.display()
            ),
            Ok(None) => {}
            Err(e) => tracing::warn!("could not set favordynmods on cgroup2 (sandbox boots stay ~12 ms slower): {e}"),
        }
    }
    let cfg = cove_server::ServerConfig {
        listen: a.listen,
        data_dir: a.data_dir.clone(),
        images_dir: a.images_dir,
        api_key: a.api_key.filter(|k| !k.is_empty()),
        public_url: a.public_url,
        no_new_privs: a.no_new_privs,
        minute_secs: a.minute_seconds,
        object_store: a.object_store,
        init_exe,
    };
    cove_server::run(cfg).await.with_context(|| {
        format!(
            "server on {} with data dir {} failed",
            a.listen,
            a.data_dir.display()
        )
    })
}

pub async fn api_key(c: ApiKeyCmd) -> anyhow::Result<()> {
    match c {
        ApiKeyCmd::Create { name, data_dir } => {
            let key = cove_server::create_api_key(&data_dir, &name)
                .await
                .with_context(|| {
                    format!("cannot create API key {name:?} in {}", data_dir.display())
                })?;
            println!("{key}");
            Ok(())
        }
    }
}
