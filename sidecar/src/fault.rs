//! Fault injection for the crash tests (tests/e2e/test_faults.py).
//!
//! `SIDECAR_FAULT_POINT=<name>` makes the process abort, without unwinding, running
//! destructors or flushing anything, the moment it reaches the point of that name: the same
//! state a kill -9 leaves at that instant, reached deterministically. Unset (always, in
//! production) a point costs one atomic load.

use std::sync::OnceLock;

static ARMED: OnceLock<Option<String>> = OnceLock::new();

/// The named points, in the order a request reaches them. Tests name them; keep in step.
pub const POINTS: &[&str] = &[
    // Full upload: body spooled, before the user's lock; converted, before the swap; swapped,
    // before the answer.
    "upload:spooled",
    "upload:converted",
    "upload:installed",
    // Normal sync: a chunk applied inside the open transaction; finish before and after the
    // commit.
    "sync:chunk-applied",
    "sync:before-commit",
    "sync:committed",
    // Media upload: files moved into place, before media.db commits; committed, before the
    // answer.
    "media:files-placed",
    "media:committed",
    // Import: package spooled; merged into the collection, before the ledger records it;
    // recorded, before the answer.
    "import:spooled",
    "import:merged",
    "import:recorded",
];

/// Arms the point named by the setting. The first call wins (one server per process).
pub fn arm(point: Option<String>) {
    let point = point.filter(|name| !name.is_empty());
    if let Some(name) = &point {
        if !POINTS.contains(&name.as_str()) {
            tracing::error!(point = %name, "unknown fault point; nothing is armed");
            let _ = ARMED.set(None);
            return;
        }
        tracing::warn!(point = %name, "fault injection armed: the process will abort there");
    }
    let _ = ARMED.set(point);
}

/// Aborts the process if `name` is the armed point.
pub fn point(name: &'static str) {
    debug_assert!(POINTS.contains(&name), "unlisted fault point {name}");
    if let Some(Some(armed)) = ARMED.get()
        && armed == name
    {
        eprintln!("fault injection: aborting at {name}");
        std::process::abort();
    }
}
