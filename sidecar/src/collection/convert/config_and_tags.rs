//! Config and tags: schema 14 and later keep them in the `config` and `tags` tables; schema
//! 11 as JSON in `col.conf` and `col.tags`.

use rusqlite::Connection;
use serde_json::{Value, json};

use super::values::bytes_column;
use super::{ConvertError, corrupt};
use crate::collection::json::JsonObject;

// ---------------------------------------------------------------------------------------------
// Config and tags (docs/sync-protocol.md#config-and-tags)

pub(super) fn config_from_table(conn: &Connection) -> Result<JsonObject, ConvertError> {
    let mut config = JsonObject::new();
    let mut statement = conn.prepare("SELECT key, val FROM config ORDER BY key")?;
    let mut rows = statement.query([])?;
    while let Some(row) = rows.next()? {
        let key: String = row.get(0)?;
        let what = format!("config `{key}`");
        let value: Value = serde_json::from_slice(&bytes_column(row, 1, &what)?)
            .map_err(|err| corrupt(format!("{what} is not JSON: {err}")))?;
        config.insert(key, value);
    }
    Ok(config)
}

pub(super) fn tags_from_table(conn: &Connection) -> Result<JsonObject, ConvertError> {
    let mut tags = JsonObject::new();
    let mut statement = conn.prepare("SELECT tag, usn FROM tags ORDER BY tag")?;
    let mut rows = statement.query([])?;
    while let Some(row) = rows.next()? {
        tags.insert(row.get(0)?, json!(row.get::<_, i64>(1)?));
    }
    Ok(tags)
}
