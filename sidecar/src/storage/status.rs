//! What `meta` reports about a collection, and creating one for a new user.

use anyhow::Context;

use super::scheduler::{SchedulerFeatures, features_of};
use super::{UserFiles, rollover_crt};
use crate::clock::now_millis;
use crate::collection::cached::CachedCollection;
use crate::collection::col_row::{MetaTimes, col};
use crate::collection::sqlite::in_one_read;
use crate::collection::{schema11, sqlite};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CollectionStatus {
    /// `col.mod`, ms. 0 for an untouched new collection, so a fresh client sees no changes.
    pub modified_ms: i64,
    /// `col.scm`, ms.
    pub schema_ms: i64,
    pub usn: i32,
    /// No rows in `cards`: decides the direction the client offers for a full sync.
    pub empty: bool,
    pub file_size: u64,
    /// What legacy clients are checked against (`scheduler.rs`), read on the same
    /// connection, so that `meta` opens the collection once.
    pub features: SchedulerFeatures,
}

/// Creates the user's folder and a new schema-11 collection if there is none yet.
pub fn ensure_collection(files: &UserFiles) -> anyhow::Result<()> {
    let path = files.collection();
    if !path.exists() {
        files.ensure_dir().context("creating the user folder")?;
        // Journals without their file belong to a collection that was deleted or moved
        // aside; next to the new file they would be replayed into it.
        super::remove_stale_journals(&path).context("removing stale journals")?;
        let now = now_millis();
        schema11::create_new_collection(&path, now, rollover_crt(now / 1000))
            .context("creating a new collection")?;
        let conn = sqlite::open_collection(&path).context("opening the new collection")?;
        sqlite::use_wal(&conn).context("switching the new collection to WAL")?;
        crate::collection::graves::ensure_graves_indexes(&conn);
        tracing::info!(path = %path.display(), "created a new collection");
    }
    Ok(())
}

pub fn read_status(files: &UserFiles) -> anyhow::Result<CollectionStatus> {
    let path = files.collection();
    let mut conn = CachedCollection::open(&path).context("opening the collection")?;
    read_status_on(files, &mut conn)
}

/// [`read_status`] on the user's open collection `conn`. The file's one-time checks run at the
/// first use of each connection.
pub fn read_status_on(
    files: &UserFiles,
    conn: &mut CachedCollection,
) -> anyhow::Result<CollectionStatus> {
    let status = read_status_from(conn, std::fs::metadata(files.collection())?.len())?;
    if !conn.checked {
        // Uploaded collections and those stored before WAL was used switch here, at the first
        // `meta` after they were installed (no sync is open then).
        sqlite::use_wal(conn).context("switching the collection to WAL")?;
        // New and uploaded collections get the server's graves indexes when they are written;
        // older files get them here, once, so that `start` finds them and an interrupted sync
        // leaves the file exactly as it was.
        crate::collection::graves::ensure_graves_indexes(conn);
        conn.checked = true;
    }
    Ok(status)
}

pub fn read_status_from(
    conn: &rusqlite::Connection,
    file_size: u64,
) -> anyhow::Result<CollectionStatus> {
    // One read transaction for the three reads: one snapshot, and the log's read lock
    // taken and released once rather than at each statement.
    in_one_read(conn, |conn| {
        let MetaTimes {
            modified_ms,
            schema_ms,
            usn,
        } = col(conn).meta_times().context("reading the col row")?;
        let any_card = crate::collection::rows::has_cards(conn)?;
        Ok(CollectionStatus {
            modified_ms,
            schema_ms,
            usn,
            empty: !any_card,
            file_size,
            features: features_of(conn)?,
        })
    })
}
