//! Crash-injection hooks for restart tests: `COVE_FAILPOINT=<name>` (read once, at server
//! start) makes the server abort at the named point, e.g. `after:creating` — right after that
//! transition is written to the store and before the runtime acts on it. `fail:<action>`
//! (`fail:stop`, `fail:destroy`, `fail:boot`) instead makes the first attempt of that runtime action fail, to test
//! that the reconciler retries it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

static ARMED: OnceLock<Option<String>> = OnceLock::new();

/// Reads `COVE_FAILPOINT` (first call wins; later calls change nothing).
pub fn init() {
    ARMED.get_or_init(|| {
        let name = std::env::var("COVE_FAILPOINT")
            .ok()
            .filter(|s| !s.is_empty());
        if let Some(n) = &name {
            tracing::warn!("failpoint armed: the server aborts at {n:?}");
        }
        name
    });
}

/// Aborts the process if the armed failpoint is `name`.
pub fn hit(name: &str) {
    if ARMED.get().and_then(Option::as_deref) == Some(name) {
        eprintln!("failpoint {name:?} hit: aborting");
        std::process::abort();
    }
}

static FAILED_ONCE: AtomicBool = AtomicBool::new(false);

/// True the first time it is called with the armed failpoint's name (`fail:<action>`); the
/// caller then fails that action with an injected error.
pub fn fail_once(name: &str) -> bool {
    ARMED.get().and_then(Option::as_deref) == Some(name)
        && !FAILED_ONCE.swap(true, Ordering::SeqCst)
}
