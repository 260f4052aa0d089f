//! The package's collection, read into memory once it is schema 11. Its rows are untrusted:
//! anything of the wrong type is a bad package, not a server error.

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use super::ImportError;
use crate::collection::json::ColObjects;
use crate::collection::query::{all_rows, from_row};
use crate::collection::sqlite::register_unicase;

#[derive(Debug, Clone)]
pub struct SourceNote {
    pub id: i64,
    pub guid: String,
    pub notetype_id: i64,
    pub mtime: i64,
    pub tags: String,
    pub fields: String,
}

#[derive(Debug, Clone)]
pub struct SourceCard {
    pub id: i64,
    pub note_id: i64,
    pub deck_id: i64,
    pub ordinal: i64,
    pub queue: i64,
    pub due: i64,
    pub card_type: i64,
}

pub struct SourceCollection {
    pub objects: ColObjects,
    pub notes: Vec<SourceNote>,
    pub cards: Vec<SourceCard>,
}

fn bad(err: impl std::fmt::Display) -> ImportError {
    ImportError::BadPackage(format!("the package's collection is not usable: {err}"))
}

impl SourceCollection {
    pub fn read(path: &Path) -> Result<Self, ImportError> {
        let conn =
            Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(bad)?;
        register_unicase(&conn).map_err(bad)?;
        let objects = ColObjects::load(&conn).map_err(bad)?;
        let notes = all_rows(
            &conn,
            "SELECT id, guid, mid, mod, tags, flds FROM notes ORDER BY id",
            [],
            from_row!(SourceNote: id, guid, notetype_id, mtime, tags, fields),
        )
        .map_err(bad)?;
        let cards = all_rows(
            &conn,
            "SELECT id, nid, did, ord, queue, due, type FROM cards ORDER BY id",
            [],
            from_row!(SourceCard: id, note_id, deck_id, ordinal, queue, due, card_type),
        )
        .map_err(bad)?;
        Ok(Self {
            objects,
            notes,
            cards,
        })
    }
}
