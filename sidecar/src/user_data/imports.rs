//! Server-side import of an `.apkg` (docs/design.md#server-side-import): waits for the user's sync
//! to end, answers a retry with the same `Idempotency-Key` from the ledger, and counts every
//! outcome.

use tokio::time::Instant;

use super::cluster::Acquire;
use super::{UserData, UserDataError, UserDataResult, blocking};
use crate::import::ledger::Ledger;
use crate::import::{ImportError, ImportLimits, ImportSummary, apply_package};

/// What an import answers: the summary of the merge, also when it is replayed.
pub type ImportReply = ImportSummary;

enum Outcome {
    Applied(ImportSummary),
    Replayed(ImportSummary),
    /// The key was used before for a different package.
    KeyReused,
}

impl UserData {
    /// Merges the spooled package (whose SHA-256 is `sha256`) into the user's collection.
    ///
    /// The import waits for an open normal sync to end instead of breaking it, at most
    /// `SIDECAR_IMPORT_WAIT_SECS`, and is woken when it ends. A key seen before answers the
    /// stored summary (`replayed`), or `KeyReused` when the package differs.
    pub async fn import_package(
        &self,
        key: Option<String>,
        package: tempfile::NamedTempFile,
        sha256: String,
    ) -> UserDataResult<ImportReply> {
        crate::fault::point("import:spooled");
        let wait = std::time::Duration::from_secs(self.settings.import_wait_secs);
        let deadline = Instant::now() + wait;
        let Some(mut slot) = self
            .registry
            .lock_between_syncs(self.user_id, deadline)
            .await
        else {
            return Err(UserDataError::Syncing {
                retry_after: super::RETRY_AFTER,
            });
        };
        // Cluster mode: a sync open on another node is waited for in the same way, up to the
        // same deadline, woken by its end (PostgreSQL's lock queue).
        slot.hold_cluster(Acquire::Until(deadline)).await?;
        let limits = ImportLimits {
            max_collection_bytes: self.settings.max_uncompressed_bytes(),
        };
        // The merge writes the collection and `media.db` through its own connections: the
        // kept ones are closed first, so that they never serve what they read before.
        let kept = slot.take_files();
        let files = self.files.clone();
        let outcome = blocking(move || {
            drop(kept);
            Ok::<_, UserDataError>(merge_once(&files, key, &package, &sha256, limits))
        })
        .await?;
        slot.unlock().await;

        let user_id = self.user_id;
        match outcome {
            Ok(Outcome::Applied(summary)) => {
                tracing::info!(user_id, import_id = summary.import_id, "import applied");
                crate::metrics::import_result("applied");
                Ok(summary)
            }
            Ok(Outcome::Replayed(summary)) => {
                tracing::info!(user_id, import_id = summary.import_id, "import replayed");
                crate::metrics::import_result("replayed");
                Ok(summary)
            }
            Ok(Outcome::KeyReused) => {
                crate::metrics::import_result("refused");
                Err(UserDataError::KeyReused)
            }
            Err(err @ ImportError::BadPackage(_)) => {
                crate::metrics::import_result("refused");
                Err(err.into())
            }
            Err(err @ ImportError::Internal(_)) => {
                crate::metrics::import_result("failed");
                Err(err.into())
            }
        }
    }
}

/// The import under the user's lock: the ledger's answer for a known key, or the merge and
/// its record in the ledger.
fn merge_once(
    files: &crate::storage::UserFiles,
    key: Option<String>,
    package: &tempfile::NamedTempFile,
    sha256: &str,
    limits: ImportLimits,
) -> Result<Outcome, ImportError> {
    let mut ledger = Ledger::open(files)?;
    if let Some(key) = key.as_deref()
        && let Some(past) = ledger.find_by_key(key)?
    {
        if past.package_sha256 != sha256 {
            return Ok(Outcome::KeyReused);
        }
        let mut summary: ImportSummary =
            serde_json::from_str(&past.summary).map_err(anyhow::Error::from)?;
        summary.replayed = true;
        return Ok(Outcome::Replayed(summary));
    }
    let mut summary = apply_package(files, package.path(), limits)?;
    crate::fault::point("import:merged");
    let id = ledger.record(
        key.as_deref(),
        sha256,
        |id| {
            let mut stored = summary.clone();
            stored.import_id = id;
            Ok(serde_json::to_string(&stored)?)
        },
        package.path(),
    )?;
    summary.import_id = id;
    crate::fault::point("import:recorded");
    Ok(Outcome::Applied(summary))
}
