//! Config and tags: schema 14 and later keep them in the `config` and `tags` tables; schema
//! 11 as JSON in `col.conf` and `col.tags`.

use rusqlite::Connection;
use serde_json::{Value, json};

use super::values::{bytes_column, object_from_rows};
use super::{ConvertError, corrupt};
use crate::collection::json::JsonObject;

// ---------------------------------------------------------------------------------------------
// Config and tags (docs/sync-protocol.md#config-and-tags)

pub(super) fn config_from_table(conn: &Connection) -> Result<JsonObject, ConvertError> {
    object_from_rows(conn, "SELECT key, val FROM config ORDER BY key", |row| {
        let key: String = row.get(0)?;
        let what = format!("config `{key}`");
        let value: Value = serde_json::from_slice(&bytes_column(row, 1, &what)?)
            .map_err(|err| corrupt(format!("{what} is not JSON: {err}")))?;
        Ok((key, value))
    })
}

pub(super) fn tags_from_table(conn: &Connection) -> Result<JsonObject, ConvertError> {
    object_from_rows(conn, "SELECT tag, usn FROM tags ORDER BY tag", |row| {
        Ok((row.get(0)?, json!(row.get::<_, i64>(1)?)))
    })
}
