//! The JSON objects of a schema-11 `col` row: notetypes (`models`), decks, deck configs
//! (`dconf`), config (`conf`) and tags. Normal sync and server-side import read and write them
//! through this one type, so the rules (usn, unique names) live in one place.
//!
//! Objects are kept as the JSON the client sent, so keys we do not model survive untouched
//! (docs/sync-protocol.md#json-objects: "keep unknown keys that clients send, and send them back
//! unchanged").

use anyhow::{Context, anyhow};
use rusqlite::Connection;
use serde_json::{Map, Value};

use super::col_row::{ObjectColumn, ObjectColumns, col};

pub type JsonObject = Map<String, Value>;

#[derive(Debug, Clone)]
pub struct ColObjects {
    /// `"<id>"` -> notetype.
    pub models: JsonObject,
    /// `"<id>"` -> deck.
    pub decks: JsonObject,
    /// `"<id>"` -> deck config.
    pub dconf: JsonObject,
    /// key -> any JSON.
    pub conf: JsonObject,
    /// tag name -> usn.
    pub tags: JsonObject,
}

/// A selection of the `col` row's JSON parts: those to parse, or those a change may have
/// altered and that are written back.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Parts {
    pub models: bool,
    pub decks: bool,
    pub dconf: bool,
    pub conf: bool,
    pub tags: bool,
}

impl Parts {
    pub const ALL: Self = Self {
        models: true,
        decks: true,
        dconf: true,
        conf: true,
        tags: true,
    };
}

fn parse_object(text: &str, column: &str) -> anyhow::Result<JsonObject> {
    if text.trim().is_empty() {
        return Ok(JsonObject::new());
    }
    match serde_json::from_str(text).with_context(|| format!("col.{column} is not JSON"))? {
        Value::Object(map) => Ok(map),
        _ => Err(anyhow!("col.{column} is not a JSON object")),
    }
}

impl ColObjects {
    pub fn load(conn: &Connection) -> anyhow::Result<Self> {
        let columns = col(conn).object_columns().context("reading the col row")?;
        Self::parse(&columns, Parts::ALL)
    }

    /// The objects of `columns`; the parts not in `wanted` are left unparsed and empty (the
    /// caller must then not write them back).
    pub fn parse(columns: &ObjectColumns, wanted: Parts) -> anyhow::Result<Self> {
        let part = |on: bool, text: &str, column: &str| {
            if on {
                parse_object(text, column)
            } else {
                Ok(JsonObject::new())
            }
        };
        Ok(Self {
            models: part(wanted.models, &columns.models, "models")?,
            decks: part(wanted.decks, &columns.decks, "decks")?,
            dconf: part(wanted.dconf, &columns.dconf, "dconf")?,
            conf: part(wanted.conf, &columns.conf, "conf")?,
            tags: part(wanted.tags, &columns.tags, "tags")?,
        })
    }

    pub fn save(&self, conn: &Connection) -> anyhow::Result<()> {
        col(conn)
            .set_object_columns(&ObjectColumns {
                models: serde_json::to_string(&self.models)?,
                decks: serde_json::to_string(&self.decks)?,
                dconf: serde_json::to_string(&self.dconf)?,
                conf: serde_json::to_string(&self.conf)?,
                tags: serde_json::to_string(&self.tags)?,
            })
            .context("writing the col row")?;
        Ok(())
    }

    /// Writes back only the parts `touched` names; the others keep their stored text, so a
    /// sync that sent one deck does not serialize and rewrite every notetype.
    pub fn save_touched(&self, conn: &Connection, touched: Parts) -> anyhow::Result<()> {
        let parts = [
            (touched.models, ObjectColumn::Models, &self.models),
            (touched.decks, ObjectColumn::Decks, &self.decks),
            (touched.dconf, ObjectColumn::Dconf, &self.dconf),
            (touched.conf, ObjectColumn::Conf, &self.conf),
            (touched.tags, ObjectColumn::Tags, &self.tags),
        ];
        let mut columns = Vec::new();
        for (_, column, object) in parts.into_iter().filter(|(on, _, _)| *on) {
            columns.push((column, serde_json::to_string(object)?));
        }
        col(conn)
            .set_some_object_columns(&columns)
            .context("writing the col row")?;
        Ok(())
    }

    /// Whether a tag exists, ignoring case as Anki does.
    pub fn has_tag(&self, tag: &str) -> bool {
        let wanted = unicase::UniCase::new(tag);
        self.tags
            .keys()
            .any(|existing| unicase::UniCase::new(existing.as_str()) == wanted)
    }

    /// Registers a tag unless one with that name exists in any case; returns whether it did.
    pub fn register_tag(&mut self, tag: &str, usn: i32) -> bool {
        if tag.is_empty() || self.has_tag(tag) {
            return false;
        }
        self.tags.insert(tag.to_string(), Value::from(usn));
        true
    }

    /// A name that no other object in `objects` (other than `own_id`) has, ignoring case,
    /// found by appending `+` as Anki does.
    pub fn unique_name(objects: &JsonObject, own_id: &str, name: &str) -> String {
        let mut candidate = name.to_string();
        loop {
            let wanted = unicase::UniCase::new(candidate.as_str());
            let taken = objects.iter().any(|(id, object)| {
                id != own_id
                    && object
                        .get("name")
                        .and_then(Value::as_str)
                        .is_some_and(|other| unicase::UniCase::new(other) == wanted)
            });
            if !taken {
                return candidate;
            }
            candidate.push('+');
        }
    }
}

/// An object's id as the map key: ids may arrive as integers or numeric strings.
pub fn object_id(object: &JsonObject) -> Option<i64> {
    match object.get("id")? {
        Value::Number(number) => number.as_i64(),
        Value::String(text) => text.parse().ok(),
        _ => None,
    }
}

/// `mod` of a notetype, deck or deck config, in seconds; missing counts as 0.
pub fn object_mtime(object: &JsonObject) -> i64 {
    object.get("mod").and_then(as_i64_lenient).unwrap_or(0)
}

pub fn object_usn(object: &JsonObject) -> i64 {
    object.get("usn").and_then(as_i64_lenient).unwrap_or(0)
}

/// Integers, floats (truncated) and numeric strings, as Anki's parsers accept them.
pub fn as_i64_lenient(value: &Value) -> Option<i64> {
    match value {
        Value::Number(number) => number
            .as_i64()
            .or_else(|| number.as_f64().map(|float| float as i64)),
        Value::String(text) => text.trim().parse().ok(),
        Value::Bool(flag) => Some(i64::from(*flag)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unique_names_append_plus_ignoring_case() {
        let objects: JsonObject = serde_json::from_value(json!({
            "1": {"id": 1, "name": "Basic"},
            "2": {"id": 2, "name": "basic+"},
        }))
        .unwrap();
        assert_eq!(ColObjects::unique_name(&objects, "3", "BASIC"), "BASIC++");
        assert_eq!(ColObjects::unique_name(&objects, "1", "Basic"), "Basic");
        assert_eq!(ColObjects::unique_name(&objects, "3", "Cloze"), "Cloze");
    }

    #[test]
    fn only_the_touched_parts_are_written_back() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            r#"CREATE TABLE col (id integer primary key, models text, decks text, dconf text,
                                 conf text, tags text);
               INSERT INTO col VALUES (1, '{ "1": {"id": 1} }', '{"1": {"id": 1}}', '{ }',
                                       '{"a": 1}', '{}');"#,
        )
        .unwrap();
        let mut objects = ColObjects::load(&conn).unwrap();
        objects
            .decks
            .insert("2".into(), json!({"id": 2, "name": "New"}));
        objects.register_tag("leech", 5);
        objects.conf.insert("b".into(), json!(2));
        objects
            .save_touched(
                &conn,
                Parts {
                    decks: true,
                    tags: true,
                    ..Parts::default()
                },
            )
            .unwrap();
        let row: (String, String, String, String, String) = conn
            .query_row(
                "SELECT models, decks, dconf, conf, tags FROM col",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )
            .unwrap();
        // Untouched parts keep their stored text exactly, even a change not asked for.
        assert_eq!(row.0, r#"{ "1": {"id": 1} }"#);
        assert_eq!(row.2, "{ }");
        assert_eq!(row.3, r#"{"a": 1}"#);
        assert_eq!(row.1, r#"{"1":{"id":1},"2":{"id":2,"name":"New"}}"#);
        assert_eq!(row.4, r#"{"leech":5}"#);
        objects.save_touched(&conn, Parts::default()).unwrap();
        assert_eq!(ColObjects::load(&conn).unwrap().decks, objects.decks);
    }

    #[test]
    fn ids_can_be_strings() {
        let object: JsonObject = serde_json::from_value(json!({"id": "1700000000001"})).unwrap();
        assert_eq!(object_id(&object), Some(1_700_000_000_001));
        assert_eq!(as_i64_lenient(&json!(2.9)), Some(2));
    }
}
