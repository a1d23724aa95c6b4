//! The `cove` binary: server, CLI and sandbox init in one executable.

mod args;
mod bench;
mod bench_archive;
mod client;
mod server;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Runs inside a fresh sandbox as its PID 1: the toolbox agent.
fn serve(listener: std::os::unix::net::UnixListener, info: cove_runtime::init::AgentInfo) -> i32 {
    cove_agent::run_blocking_with(
        listener,
        cove_agent::AgentConfig {
            env: info.env,
            user: info.user,
        },
        cove_agent::AgentOptions {
            work_dir: None,
            entrypoint: info.entrypoint,
        },
    )
}

/// cove: isolated Linux sandboxes behind Daytona's API.
#[derive(Parser)]
#[command(name = "cove", version, about)]
struct Cli {
    /// API base URL for client commands.
    #[arg(
        long,
        global = true,
        env = "COVE_API_URL",
        default_value = cove_sdk::DEFAULT_API_URL
    )]
    api_url: String,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the server (API under /api, toolbox under /toolbox).
    Server(server::ServerArgs),
    /// Manage API keys in a server's data dir.
    #[command(name = "api-key", subcommand)]
    ApiKey(server::ApiKeyCmd),
    /// Create a sandbox and print its id.
    Create(client::CreateArgs),
    /// List sandboxes.
    Ls(client::LsArgs),
    /// Run a command in a sandbox; exits with the command's exit code.
    Exec(client::ExecArgs),
    /// Copy a file to or from a sandbox: `cove cp local ID:/path` or `cove cp ID:/path local`.
    Cp(client::CpArgs),
    /// Delete sandboxes.
    Rm(client::RmArgs),
    /// Benchmarks.
    #[command(subcommand)]
    Bench(bench::BenchCmd),
}

fn main() -> ExitCode {
    // Must run before any thread or tokio runtime exists: it unshares namespaces.
    if std::env::args_os()
        .nth(1)
        .is_some_and(|a| a == "__sandbox-init")
    {
        std::process::exit(cove_runtime::init::main(serve));
    }
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    use anyhow::Context;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")
}

fn run(cli: Cli) -> anyhow::Result<u8> {
    match cli.cmd {
        Cmd::Server(a) => runtime()?.block_on(server::serve(a)).map(|_| 0),
        Cmd::ApiKey(c) => runtime()?.block_on(server::api_key(c)).map(|_| 0),
        Cmd::Create(a) => runtime()?.block_on(client::create(&cli.api_url, a)),
        Cmd::Ls(a) => runtime()?.block_on(client::ls(&cli.api_url, a)),
        Cmd::Exec(a) => runtime()?.block_on(client::exec(&cli.api_url, a)),
        Cmd::Cp(a) => runtime()?.block_on(client::cp(&cli.api_url, a)),
        Cmd::Rm(a) => runtime()?.block_on(client::rm(&cli.api_url, a)),
        Cmd::Bench(b) => runtime()?.block_on(bench::run(&cli.api_url, b)),
    }
}
