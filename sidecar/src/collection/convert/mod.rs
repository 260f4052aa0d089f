//! Converting an uploaded collection (schema 11 or 14–18) to schema 11 in place
//! (docs/design.md#schema-11-on-the-server, docs/sync-protocol.md#schema-18-blobs,
//! docs/sync-protocol.md#schema-11, docs/sync-protocol.md#json-objects).
//!
//! The JSON produced here is what Anki's own downgrade to schema 11 produces: the same keys,
//! the same quirks (inverted `new.order`, negated `autoplay`/`replayq`, ease ×1000, retention
//! in percent) and the same integer widths, so a full upload followed by a full download gives
//! the client back every notetype, deck, deck config and config value it sent. Keys Anki does
//! not model travel in the protobuf field `other` (255) as a JSON object; they are merged back,
//! minus the keys Anki reserves for modelled fields.
//!
//! What schema 11 cannot hold, and is therefore dropped: the tags table's `collapsed` flag and
//! `config` blob, and the per-template `mtime_secs`/`usn` columns.

mod config_and_tags;
mod deck_configs;
mod decks;
mod notetypes;
#[cfg(test)]
pub(crate) mod tests;
mod values;

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior};
use serde_json::Value;

use self::config_and_tags::{config_from_table, tags_from_table};
use self::deck_configs::{InitialEase, deck_configs_from_json_rows, deck_configs_from_tables};
use self::decks::decks_from_tables;
use self::notetypes::notetypes_from_tables;
use super::schema11::{SCHEMA11_INDEXES, schema11_index_ddl};
use crate::collection::json::{ColObjects, JsonObject};

#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error("unsupported collection schema version {0}")]
    UnsupportedVersion(i64),
    #[error("corrupt collection: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    #[error("the path {0:?} is not UTF-8")]
    NonUtf8Path(std::path::PathBuf),
}

fn corrupt(message: impl Into<String>) -> ConvertError {
    ConvertError::Corrupt(message.into())
}

/// Tables that schema 14–18 added; none of them exists in schema 11.
const LATER_SCHEMA_TABLES: [&str; 7] = [
    "notetypes",
    "fields",
    "templates",
    "decks",
    "deck_config",
    "config",
    "tags",
];

fn is_supported(version: i64) -> bool {
    version == 11 || (14..=18).contains(&version)
}

pub fn schema_version(conn: &Connection) -> Result<i64, ConvertError> {
    match conn.query_row("SELECT ver FROM col", [], |row| row.get::<_, i64>(0)) {
        Ok(version) => Ok(version),
        Err(rusqlite::Error::QueryReturnedNoRows) => Err(corrupt("the col table has no row")),
        Err(rusqlite::Error::InvalidColumnType(..)) => Err(corrupt("col.ver is not an integer")),
        Err(rusqlite::Error::SqliteFailure(_, Some(message))) if message.contains("no such") => {
            Err(corrupt(message))
        }
        Err(err) => Err(err.into()),
    }
}

/// Rewrites an open collection at schema 11 or 14–18 to schema 11, in one transaction: on any
/// error nothing is changed. A schema-11 file is only checked.
pub fn convert_to_schema11(conn: &Connection) -> Result<(), ConvertError> {
    let version = schema_version(conn)?;
    if !is_supported(version) {
        return Err(ConvertError::UnsupportedVersion(version));
    }
    let tx = Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
    // Every version keeps these; without them the file is no collection a client can use.
    for table in ["notes", "cards", "revlog", "graves"] {
        require_table(&tx, table, version)?;
    }
    if version == 11 {
        for column in ["conf", "models", "decks", "dconf", "tags"] {
            col_json(&tx, column)?;
        }
        return Ok(());
    }
    let objects = read_objects(&tx, version)?;
    reshape_tables_to_schema11(&tx)?;
    tx.execute(
        "UPDATE col SET ver = 11, conf = ?1, models = ?2, decks = ?3, dconf = ?4, tags = ?5",
        [
            Value::Object(objects.conf).to_string(),
            Value::Object(objects.models).to_string(),
            Value::Object(objects.decks).to_string(),
            Value::Object(objects.dconf).to_string(),
            Value::Object(objects.tags).to_string(),
        ],
    )?;
    tx.commit()?;
    Ok(())
}

/// The page size of every stored collection (Anki's own).
const PAGE_SIZE: i64 = 4096;

/// A converted file is rewritten compacted only when more than one page in this many is free.
/// A client vacuums its collection before uploading it, so the free pages of a converted file
/// are the few the conversion itself freed (the later schemas' tables and indexes, about 7% of
/// a 300,000-note collection), which later syncs reuse; rewriting the whole file for them
/// cost more than the rest of the upload (docs/performance.md#full-upload).
const COMPACT_WHEN_FREE_ABOVE_ONE_IN: i64 = 4;

/// Where the finished collection is.
#[derive(Debug, PartialEq, Eq)]
pub enum Finished {
    /// The converted file itself.
    InPlace,
    /// A compacted copy, written to the path given to [`finish_as_standalone_file`].
    Compacted,
}

/// Makes the converted file a self-contained rollback-journal database of 4 KiB pages. When
/// its page size differs or much of it is free, a compacted copy is written to `copy` (which
/// must not exist or be empty) with `VACUUM INTO`, which writes each page once, and the file
/// itself is left as it is; otherwise the file is used in place. Nothing here is synced to
/// disk: the caller syncs the result before it renames it into place. VACUUM cannot run inside
/// a transaction, so this is separate from the conversion.
pub fn finish_as_standalone_file(conn: &Connection, copy: &Path) -> Result<Finished, ConvertError> {
    conn.query_row("PRAGMA journal_mode = DELETE", [], |_| Ok(()))?;
    let page_size: i64 = conn.query_row("PRAGMA page_size", [], |row| row.get(0))?;
    let pages: i64 = conn.query_row("PRAGMA page_count", [], |row| row.get(0))?;
    let free: i64 = conn.query_row("PRAGMA freelist_count", [], |row| row.get(0))?;
    if page_size == PAGE_SIZE && free * COMPACT_WHEN_FREE_ABOVE_ONE_IN <= pages {
        return Ok(Finished::InPlace);
    }
    let copy = copy
        .to_str()
        .ok_or_else(|| ConvertError::NonUtf8Path(copy.to_path_buf()))?;
    conn.execute_batch(&format!("PRAGMA page_size = {PAGE_SIZE}"))?;
    conn.execute("VACUUM INTO ?1", [copy])?;
    Ok(Finished::Compacted)
}

/// Reads each kind of object from where this schema version keeps it: 14 moved deck configs,
/// config and tags into tables, 15 moved notetypes and decks.
fn read_objects(conn: &Connection, version: i64) -> Result<ColObjects, ConvertError> {
    for table in ["deck_config", "config", "tags"] {
        require_table(conn, table, version)?;
    }
    if version >= 15 {
        for table in ["notetypes", "fields", "templates", "decks"] {
            require_table(conn, table, version)?;
        }
    }
    let (models, decks) = if version >= 15 {
        (notetypes_from_tables(conn)?, decks_from_tables(conn)?)
    } else {
        (col_json(conn, "models")?, col_json(conn, "decks")?)
    };
    let dconf = match version {
        14 => deck_configs_from_json_rows(conn)?,
        // Schema 15 stored the starting ease ×100 (250 for 2.5); 16 went back to 2.5.
        15 => deck_configs_from_tables(conn, InitialEase::Percent)?,
        _ => deck_configs_from_tables(conn, InitialEase::Ratio)?,
    };
    Ok(ColObjects {
        conf: config_from_table(conn)?,
        models,
        decks,
        dconf,
        tags: tags_from_table(conn)?,
    })
}

fn table_exists(conn: &Connection, name: &str) -> Result<bool, ConvertError> {
    Ok(conn
        .query_row(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1",
            [name],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

fn require_table(conn: &Connection, name: &str, version: i64) -> Result<(), ConvertError> {
    if table_exists(conn, name)? {
        Ok(())
    } else {
        Err(corrupt(format!(
            "a schema-{version} collection has no `{name}` table"
        )))
    }
}

/// Drops what schema 14–18 added, gives `graves` its schema-11 shape, and makes sure the
/// seven schema-11 indexes exist.
fn reshape_tables_to_schema11(conn: &Connection) -> Result<(), ConvertError> {
    for table in LATER_SCHEMA_TABLES {
        conn.execute_batch(&format!("DROP TABLE IF EXISTS {table}"))?;
    }
    if !graves_has_schema11_shape(conn)? {
        conn.execute_batch(
            "CREATE TABLE graves_schema11 (
                 usn integer NOT NULL,
                 oid integer NOT NULL,
                 type integer NOT NULL
             );
             INSERT INTO graves_schema11 (usn, oid, type) SELECT usn, oid, type FROM graves;
             DROP TABLE graves;
             ALTER TABLE graves_schema11 RENAME TO graves;",
        )?;
    }
    // A client upgrading from 11 creates `idx_notes_mid`, `idx_cards_odid` and the others
    // without IF NOT EXISTS, and fails if they are still there.
    let extra_indexes: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")?
        .query_map([], |row| row.get::<_, String>(0))?
        .filter(|name| {
            name.as_ref().map_or(true, |name| {
                !SCHEMA11_INDEXES.iter().any(|(ix, _)| ix == name)
            })
        })
        .collect::<Result<_, _>>()?;
    for index in extra_indexes {
        conn.execute_batch(&format!("DROP INDEX \"{}\"", index.replace('"', "\"\"")))?;
    }
    conn.execute_batch(&schema11_index_ddl())?;
    forget_statistics_of_missing_objects(conn)
}

/// DROP removes the planner statistics of what it drops, but a file can carry older rows for
/// tables or indexes that were renamed away; they would only mislead the planner.
fn forget_statistics_of_missing_objects(conn: &Connection) -> Result<(), ConvertError> {
    for statistics in ["sqlite_stat1", "sqlite_stat4"] {
        if table_exists(conn, statistics)? {
            conn.execute_batch(&format!(
                "DELETE FROM {statistics} \
                 WHERE tbl NOT IN (SELECT name FROM sqlite_master WHERE type = 'table') \
                 OR (idx IS NOT NULL AND idx NOT IN (SELECT name FROM sqlite_master))"
            ))?;
        }
    }
    Ok(())
}

/// Schema 11 has `graves (usn, oid, type)` without a primary key; schema 18 reorders the
/// columns and makes (oid, type) a WITHOUT ROWID primary key.
fn graves_has_schema11_shape(conn: &Connection) -> Result<bool, ConvertError> {
    let columns: Vec<(String, i64)> = conn
        .prepare("SELECT name, pk FROM pragma_table_info('graves') ORDER BY cid")?
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let names: Vec<&str> = columns.iter().map(|(name, _)| name.as_str()).collect();
    let has_primary_key = columns.iter().any(|(_, pk)| *pk != 0);
    Ok(names == ["usn", "oid", "type"] && !has_primary_key)
}

fn col_json(conn: &Connection, column: &str) -> Result<JsonObject, ConvertError> {
    let text: String = conn
        .query_row(&format!("SELECT {column} FROM col"), [], |row| {
            row.get::<_, String>(0)
        })
        .map_err(|err| match err {
            rusqlite::Error::InvalidColumnType(..) => corrupt(format!("col.{column} is not text")),
            other => other.into(),
        })?;
    match serde_json::from_str(&text) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(_) => Err(corrupt(format!("col.{column} is not a JSON object"))),
        Err(err) => Err(corrupt(format!("col.{column} is not valid JSON: {err}"))),
    }
}
