//! Wire types shared by the server, the agent, the Rust SDK and the CLI (Daytona's JSON shapes).

pub mod api;
pub mod error;
pub mod snapshot;
pub mod toolbox;
