//! What the conversion of every object kind shares: reading a row's blobs, and writing the
//! JSON values Anki's schema-11 structs hold.

use prost::Message;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, Row};
use serde_json::Value;

use super::{ConvertError, corrupt};
use crate::collection::json::JsonObject;

/// Runs `sql` and gathers what `entry` makes of each row, a key and its value, into one
/// object, in row order.
pub(super) fn object_from_rows(
    conn: &Connection,
    sql: &str,
    mut entry: impl FnMut(&Row<'_>) -> Result<(String, Value), ConvertError>,
) -> Result<JsonObject, ConvertError> {
    let mut object = JsonObject::new();
    let mut statement = conn.prepare(sql)?;
    let mut rows = statement.query([])?;
    while let Some(row) = rows.next()? {
        let (key, value) = entry(row)?;
        object.insert(key, value);
    }
    Ok(object)
}

/// [`object_from_rows`] for a table whose first column is the id: the objects `entry` makes
/// are keyed by id, and `entry` gets the id and `what`, `"{kind} {id}"`, for its errors.
pub(super) fn objects_by_id(
    conn: &Connection,
    sql: &str,
    kind: &str,
    mut entry: impl FnMut(i64, &str, &Row<'_>) -> Result<JsonObject, ConvertError>,
) -> Result<JsonObject, ConvertError> {
    object_from_rows(conn, sql, |row| {
        let id: i64 = row.get(0)?;
        let what = format!("{kind} {id}");
        Ok((id.to_string(), Value::Object(entry(id, &what, row)?)))
    })
}

/// A BLOB column's bytes. TEXT is accepted too: some tools bind JSON as text.
pub(super) fn bytes_column(
    row: &Row<'_>,
    index: usize,
    what: &str,
) -> Result<Vec<u8>, ConvertError> {
    match row.get_ref(index)? {
        ValueRef::Blob(bytes) | ValueRef::Text(bytes) => Ok(bytes.to_vec()),
        _ => Err(corrupt(format!("{what} is not a blob"))),
    }
}

pub(super) fn decode<M: Message + Default>(bytes: &[u8], what: &str) -> Result<M, ConvertError> {
    M::decode(bytes).map_err(|err| corrupt(format!("{what}: invalid protobuf: {err}")))
}

/// The JSON object kept in a protobuf `other` field, without the keys Anki reserves.
pub(super) fn legacy_keys(
    bytes: &[u8],
    reserved: &[&str],
    what: &str,
) -> Result<JsonObject, ConvertError> {
    if bytes.is_empty() {
        return Ok(JsonObject::new());
    }
    let mut keys = match serde_json::from_slice(bytes) {
        Ok(Value::Object(object)) => object,
        Ok(_) => return Err(corrupt(format!("{what}: `other` is not a JSON object"))),
        Err(err) => return Err(corrupt(format!("{what}: `other` is not JSON: {err}"))),
    };
    keys.retain(|key, _| !reserved.contains(&key.as_str()));
    Ok(keys)
}

/// Adds legacy keys after the modelled ones. A key both modelled and kept (possible only for
/// keys Anki does not reserve, e.g. a filtered deck's `terms`) keeps the modelled value.
pub(super) fn merge_legacy_keys(object: &mut JsonObject, legacy: JsonObject) {
    for (key, value) in legacy {
        object.entry(key).or_insert(value);
    }
}

/// Unwraps a `json!({...})` literal, which is always an object.
pub(super) fn into_object(value: Value) -> JsonObject {
    match value {
        Value::Object(object) => object,
        _ => JsonObject::new(),
    }
}

/// Anki keeps these values as f32 and serde writes an f32 by its shortest decimal form, so
/// 1.3 stays `1.3` instead of becoming `1.2999999523162842`.
pub(super) fn float(value: f32) -> Value {
    format!("{value}")
        .parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
        .map_or(Value::Null, Value::Number)
}

pub(super) fn floats(values: &[f32]) -> Value {
    Value::Array(values.iter().copied().map(float).collect())
}

pub(super) fn ord_u16(ord: i64, what: &str) -> Result<u16, ConvertError> {
    u16::try_from(ord).map_err(|_| corrupt(format!("{what}: ord {ord} is out of range")))
}
