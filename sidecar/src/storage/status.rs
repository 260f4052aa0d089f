//! What `meta` reports about a collection, and creating one for a new user.

use anyhow::Context;
use rusqlite::OptionalExtension;

use super::{UserFiles, rollover_crt};
use crate::clock::now_millis;
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
}

/// Creates the user's folder and a new schema-11 collection if there is none yet.
pub fn ensure_collection(files: &UserFiles) -> anyhow::Result<()> {
    files.ensure_dir().context("creating the user folder")?;
    let path = files.collection();
    if !path.exists() {
        let now = now_millis();
        schema11::create_new_collection(&path, now, rollover_crt(now / 1000))
            .context("creating a new collection")?;
        let conn = sqlite::open_collection(&path).context("opening the new collection")?;
        crate::normal_sync::graves::ensure_graves_indexes(&conn);
        tracing::info!(path = %path.display(), "created a new collection");
    }
    Ok(())
}

pub fn read_status(files: &UserFiles) -> anyhow::Result<CollectionStatus> {
    let path = files.collection();
    let conn = sqlite::open_collection(&path).context("opening the collection")?;
    let status = read_status_from(&conn, std::fs::metadata(&path)?.len())?;
    // New and uploaded collections get the server's graves indexes when they are written;
    // older files get them here, once, so that `start` finds them and an interrupted sync
    // leaves the file exactly as it was.
    crate::normal_sync::graves::ensure_graves_indexes(&conn);
    Ok(status)
}

pub fn read_status_from(
    conn: &rusqlite::Connection,
    file_size: u64,
) -> anyhow::Result<CollectionStatus> {
    let (modified_ms, schema_ms, usn) = conn
        .query_row("SELECT mod, scm, usn FROM col WHERE id = 1", [], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
        })
        .context("reading the col row")?;
    let any_card: Option<i64> = conn
        .query_row("SELECT 1 FROM cards LIMIT 1", [], |row| row.get(0))
        .optional()?;
    Ok(CollectionStatus {
        modified_ms,
        schema_ms,
        usn,
        empty: any_card.is_none(),
        file_size,
    })
}
