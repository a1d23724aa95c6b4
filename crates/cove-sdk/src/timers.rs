//! Lifecycle timers of a sandbox: auto-stop, auto-archive, auto-delete intervals and the TTL.

use cove_types::api::Sandbox;
use reqwest::Method;

use crate::{Client, Error};

/// Which timer [`Client::set_timer`] sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timer {
    /// Stop after this many idle minutes (0 = never).
    AutoStop,
    /// Archive after this many minutes stopped (0 = the maximum).
    AutoArchive,
    /// Delete after this many minutes stopped (0 = on stop, -1 = never).
    AutoDelete,
    /// Destroy this many minutes from now, whatever the state (0 = no TTL).
    Ttl,
}

impl Timer {
    fn path(self) -> &'static str {
        match self {
            Self::AutoStop => "autostop",
            Self::AutoArchive => "autoarchive",
            Self::AutoDelete => "autodelete",
            Self::Ttl => "ttl",
        }
    }
}

impl Client {
    /// `POST /sandbox/{id}/{autostop|autoarchive|autodelete|ttl}/{minutes}`.
    pub async fn set_timer(
        &self,
        id_or_name: &str,
        timer: Timer,
        minutes: i64,
    ) -> Result<Sandbox, Error> {
        let url = self.sandbox_url(id_or_name, &format!("/{}/{minutes}", timer.path()));
        self.json(Method::POST, &url, None).await
    }
}
