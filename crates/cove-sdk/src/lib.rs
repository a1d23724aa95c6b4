//! cove-sdk: a Rust client for cove's (Daytona-compatible) API and toolbox.
//!
//! ```no_run
//! # async fn demo() -> Result<(), cove_sdk::Error> {
//! let client = cove_sdk::Client::from_env()?;
//! let sb = client.create(&Default::default()).await?;
//! let out = client.exec(&sb.id, &cove_sdk::ExecuteRequest { command: "echo hi".into(), ..Default::default() }).await?;
//! assert_eq!(out.result, "hi\n");
//! client.delete(&sb.id).await?;
//! # Ok(()) }
//! ```

mod client;
mod error;
mod files;
mod multipart;
mod timers;
mod urls;

pub use client::{Client, DEFAULT_API_URL};
pub use cove_types::api::{CreateSandbox, ListSandboxesResponse, Sandbox, SandboxLabels};
pub use cove_types::error::ErrorEnvelope;
pub use cove_types::toolbox::{CodeRunRequest, ExecuteRequest, ExecuteResponse};
pub use error::Error;
pub use timers::Timer;
