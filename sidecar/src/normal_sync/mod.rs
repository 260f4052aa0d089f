//! Normal (incremental) sync: the state kept between `start` and `finish`, and the merge
//! rules of docs/sync-protocol.md#usn-rules, docs/sync-protocol.md#normal-sync, applied to the
//! server's schema-11 collection.

pub mod changes;
pub mod chunks;
pub mod finish;
pub mod graves;
pub mod objects;
pub mod rows;
pub mod sanity;
pub mod session;
pub mod wire;

pub use session::NormalSyncSession;

/// Failures of a sync operation. `Invalid` is the client's data (400, which makes Anki ask for
/// Check Database); `Internal` is ours (500), so a server bug never blames the user's data.
#[derive(Debug, thiserror::Error)]
pub enum SyncOpError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl SyncOpError {
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::Invalid(message.into())
    }
}

crate::internal_from::internal_from!(SyncOpError: rusqlite::Error, serde_json::Error);

pub type OpResult<T> = Result<T, SyncOpError>;

/// What moved in each direction during one sync, for the outcome log line.
#[derive(Debug, Default, Clone, Copy)]
pub struct SyncCounters {
    pub graves_sent: usize,
    pub graves_received: usize,
    pub objects_sent: usize,
    pub objects_received: usize,
    pub revlog_sent: usize,
    pub revlog_received: usize,
    pub cards_sent: usize,
    pub cards_received: usize,
    pub notes_sent: usize,
    pub notes_received: usize,
}
