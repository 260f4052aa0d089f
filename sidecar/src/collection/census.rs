//! How many notetypes, decks and deck configs the `col` row holds, and whether any of them
//! (or any tag) is still unsynced, read without building the objects.
//!
//! `sanityCheck2` needs only these facts at every sync; parsing every notetype into
//! [`serde_json::Value`]s to count them cost more than the rest of the check. The answers are
//! exactly those of [`ColObjects`](super::json::ColObjects): the same keys (a key repeated in
//! the text counts once, its last value wins), the same lenient reading of `usn`, and the same
//! errors for a column that is not a JSON object.

use std::collections::HashMap;
use std::fmt;

use anyhow::{Context, anyhow};
use rusqlite::Connection;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::Value;

use super::col_row::col;
use super::json::as_i64_lenient;

/// One JSON column: how many keys, and whether any entry is unsynced.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Census {
    pub count: usize,
    pub unsynced: bool,
}

/// The census of the `col` row's notetypes, decks, deck configs and tags.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ColCensus {
    pub models: Census,
    pub decks: Census,
    pub dconf: Census,
    pub tags: Census,
}

impl ColCensus {
    /// The census of the `col` row on `conn`; each column's part comes from `memos` when its
    /// text is the one last scanned there.
    pub fn load(conn: &Connection, memos: &mut ColumnMemos) -> anyhow::Result<Self> {
        let columns = col(conn).object_columns().context("reading the col row")?;
        Ok(Self {
            models: memos.facts(Column::Models, &columns.models)?.census,
            decks: memos.facts(Column::Decks, &columns.decks)?.census,
            dconf: memos.facts(Column::Dconf, &columns.dconf)?.census,
            tags: memos.facts(Column::Tags, &columns.tags)?.census,
        })
    }

    pub fn any_unsynced(&self) -> bool {
        self.models.unsynced || self.decks.unsynced || self.dconf.unsynced || self.tags.unsynced
    }
}

/// What a column's values are.
#[derive(Clone, Copy, Debug)]
enum Entry {
    /// An object with a `usn` key, read leniently; a value that is not an object is never
    /// unsynced.
    Object,
    /// The usn itself, as an integer (tags).
    TagUsn,
}

/// The four JSON columns of the `col` row that hold usns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Column {
    Models,
    Decks,
    Dconf,
    Tags,
}

impl Column {
    fn name(self) -> &'static str {
        match self {
            Self::Models => "models",
            Self::Decks => "decks",
            Self::Dconf => "dconf",
            Self::Tags => "tags",
        }
    }

    fn entry(self) -> Entry {
        match self {
            Self::Tags => Entry::TagUsn,
            _ => Entry::Object,
        }
    }
}

/// Each JSON column's facts from its last scan on a connection, with the text they were read
/// from (`collection::cached::CachedCollection` keeps one set). `applyChanges` and
/// `sanityCheck2` need these facts at every sync, and most columns (the notetypes, most of
/// the row, the deck configs, the tags) do not change in a review sync; scanning and parsing
/// them was the largest part of both calls (docs/performance.md, "The notetypes scanned
/// once" and "Only the columns a sync touches"). A scan is reused only for exactly the same
/// text, so the answers are those of a new scan; errors are never kept.
#[derive(Default)]
pub struct ColumnMemos([Option<(String, ColumnFacts)>; 4]);

/// Columns longer than this are scanned every time rather than kept, bounding what a kept
/// connection holds.
const MEMO_MAX_BYTES: usize = 256 * 1024;

/// What the syncs need to know of a column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ColumnFacts {
    census: Census,
    /// The highest `usn` of an entry, read as `applyChanges` reads it: objects' usns
    /// (entries that are not objects are skipped), tags' usns (one that is not an integer
    /// counts as 0).
    max_usn: Option<i64>,
}

impl ColumnMemos {
    /// Whether any entry of `column` in `text` has `usn >= min_usn`, as
    /// [`ColObjects`](super::json::ColObjects) would find it, without building the objects.
    pub fn any_since(&mut self, column: Column, text: &str, min_usn: i64) -> anyhow::Result<bool> {
        Ok(self
            .facts(column, text)?
            .max_usn
            .is_some_and(|usn| usn >= min_usn))
    }

    fn facts(&mut self, column: Column, text: &str) -> anyhow::Result<ColumnFacts> {
        let slot = &mut self.0[column as usize];
        if let Some((scanned, facts)) = slot.as_ref()
            && scanned == text
        {
            return Ok(*facts);
        }
        *slot = None;
        let usns = scan(text, column.name(), column.entry())?;
        let max_usn = match column.entry() {
            Entry::Object => usns.values().flatten().copied().max(),
            Entry::TagUsn => usns.values().map(|usn| usn.unwrap_or(0)).max(),
        };
        let facts = ColumnFacts {
            census: census_of(&usns),
            max_usn,
        };
        if text.len() <= MEMO_MAX_BYTES {
            *slot = Some((text.to_owned(), facts));
        }
        Ok(facts)
    }
}

fn census_of(usns: &HashMap<String, Option<i64>>) -> Census {
    Census {
        count: usns.len(),
        unsynced: usns.values().any(|usn| *usn == Some(-1)),
    }
}

/// Key -> the entry's usn (None: an object entry that is not an object, or a tag whose value
/// is not an integer).
fn scan(text: &str, column: &str, entry: Entry) -> anyhow::Result<HashMap<String, Option<i64>>> {
    if text.trim().is_empty() {
        return Ok(HashMap::new());
    }
    let mut deserializer = serde_json::Deserializer::from_str(text);
    ColumnSeed(entry)
        .deserialize(&mut deserializer)
        .and_then(|found| deserializer.end().map(|()| found))
        .map_err(|err| {
            if err.classify() == serde_json::error::Category::Data {
                anyhow!("col.{column} is not a JSON object")
            } else {
                anyhow::Error::new(err).context(format!("col.{column} is not JSON"))
            }
        })
}

/// The column's top-level object: key -> that entry's usn.
struct ColumnSeed(Entry);

impl<'de> DeserializeSeed<'de> for ColumnSeed {
    type Value = HashMap<String, Option<i64>>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ColumnSeed {
    type Value = HashMap<String, Option<i64>>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = HashMap::new();
        while let Some(key) = map.next_key::<String>()? {
            let usn = match self.0 {
                Entry::Object => map.next_value::<ObjectUsn>()?.0,
                Entry::TagUsn => map.next_value::<Value>()?.as_i64(),
            };
            found.insert(key, usn);
        }
        Ok(found)
    }
}

/// An entry's `usn`, read leniently as [`super::json::object_usn`] does (missing: 0), or None
/// when the entry is not an object.
struct ObjectUsn(Option<i64>);

impl<'de> serde::Deserialize<'de> for ObjectUsn {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ObjectUsnVisitor)
    }
}

struct ObjectUsnVisitor;

impl<'de> Visitor<'de> for ObjectUsnVisitor {
    type Value = ObjectUsn;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ObjectUsn, A::Error> {
        let mut usn = None;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if key == "usn" {
                // A repeated key: the last one wins, as in a parsed object.
                usn = Some(map.next_value::<Value>()?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(ObjectUsn(Some(
            usn.as_ref().and_then(as_i64_lenient).unwrap_or(0),
        )))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<ObjectUsn, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(ObjectUsn(None))
    }

    fn visit_bool<E>(self, _: bool) -> Result<ObjectUsn, E> {
        Ok(ObjectUsn(None))
    }
    fn visit_i64<E>(self, _: i64) -> Result<ObjectUsn, E> {
        Ok(ObjectUsn(None))
    }
    fn visit_u64<E>(self, _: u64) -> Result<ObjectUsn, E> {
        Ok(ObjectUsn(None))
    }
    fn visit_f64<E>(self, _: f64) -> Result<ObjectUsn, E> {
        Ok(ObjectUsn(None))
    }
    fn visit_str<E>(self, _: &str) -> Result<ObjectUsn, E> {
        Ok(ObjectUsn(None))
    }
    fn visit_unit<E>(self) -> Result<ObjectUsn, E> {
        Ok(ObjectUsn(None))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;
    use crate::collection::json::{JsonObject, object_usn};

    /// A column's census from a new scan, with no memo.
    fn census(text: &str, column: &str, entry: Entry) -> anyhow::Result<Census> {
        Ok(census_of(&scan(text, column, entry)?))
    }

    /// The column as `ColObjects` parses it (None where that fails).
    fn parsed_map(text: &str) -> Option<JsonObject> {
        if text.trim().is_empty() {
            return Some(JsonObject::new());
        }
        match serde_json::from_str(text).ok()? {
            Value::Object(map) => Some(map),
            _ => None,
        }
    }

    /// What `ColObjects` says of a column, for comparison.
    fn parsed(text: &str, entry: Entry) -> Option<Census> {
        let map = parsed_map(text)?;
        let unsynced = match entry {
            Entry::Object => map
                .values()
                .filter_map(Value::as_object)
                .any(|object| object_usn(object) == -1),
            Entry::TagUsn => map.values().any(|usn| usn.as_i64() == Some(-1)),
        };
        Some(Census {
            count: map.len(),
            unsynced,
        })
    }

    const COLUMNS: [Column; 4] = [Column::Models, Column::Decks, Column::Dconf, Column::Tags];

    fn check(text: &str) {
        for entry in [Entry::Object, Entry::TagUsn] {
            assert_eq!(census(text, "x", entry).ok(), parsed(text, entry), "{text}");
        }
        // Memos that scanned another text first, then answer this one from a scan and again
        // from what they kept.
        let mut memos = ColumnMemos::default();
        for column in COLUMNS {
            memos.facts(column, r#"{"1": {"usn": 7}, "2": 9}"#).unwrap();
        }
        for round in ["scanned", "kept"] {
            for column in COLUMNS {
                let census = memos.facts(column, text).ok().map(|facts| facts.census);
                assert_eq!(
                    census,
                    parsed(text, column.entry()),
                    "{text} {column:?} {round}"
                );
                for min_usn in [-2, -1, 0, 1, 2] {
                    let expected = parsed_since(text, column.entry(), min_usn);
                    let found = memos.any_since(column, text, min_usn).ok();
                    assert_eq!(found, expected, "{text} {column:?} {min_usn} {round}");
                }
            }
        }
    }

    /// What `applyChanges` finds pending in a parsed column.
    fn parsed_since(text: &str, entry: Entry, min_usn: i64) -> Option<bool> {
        let map = parsed_map(text)?;
        Some(match entry {
            Entry::Object => map
                .values()
                .filter_map(Value::as_object)
                .any(|object| object_usn(object) >= min_usn),
            Entry::TagUsn => map.values().any(|usn| usn.as_i64().unwrap_or(0) >= min_usn),
        })
    }

    #[test]
    fn agrees_with_the_parsed_objects() {
        for text in [
            "",
            "  ",
            "{}",
            r#"{"1": {"id": 1, "usn": 3}, "2": {"usn": -1, "name": "x"}}"#,
            r#"{"1": {"usn": "-1"}, "2": {"usn": -1.5}}"#,
            r#"{"1": {"usn": true}, "2": 5, "3": [1, {"usn": -1}], "4": null}"#,
            r#"{"1": {"usn": -1}, "1": {"usn": 2}}"#,
            r#"{"1": {"usn": 2}, "1": {"usn": -1}}"#,
            r#"{"1": {"usn": -1, "usn": 4}}"#,
            r#"{"a": -1, "b": 0}"#,
            r#"{"a": "-1"}"#,
            r#"{"a": {"nested": {"usn": -1}}}"#,
            "[]",
            "3",
            "{",
            r#"{"a": 1} x"#,
        ] {
            check(text);
        }
    }

    #[test]
    fn errors_name_the_column_as_the_parsed_path_does() {
        let not_object = census("[1]", "models", Entry::Object).unwrap_err();
        assert_eq!(not_object.to_string(), "col.models is not a JSON object");
        let not_json = census("{", "decks", Entry::Object).unwrap_err();
        assert_eq!(not_json.to_string(), "col.decks is not JSON");
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            (-3i64..3).prop_map(Value::from),
            (-3.0f64..3.0).prop_map(Value::from),
            prop_oneof![Just("-1"), Just(" 2 "), Just("x")].prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..3).prop_map(Value::from),
                prop::collection::vec((prop_oneof![Just("usn"), Just("id")], inner), 0..3)
                    .prop_map(|pairs| {
                        let map: serde_json::Map<String, Value> =
                            pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
                        Value::Object(map)
                    }),
            ]
        })
    }

    proptest! {
        #[test]
        fn agrees_on_any_column(entries in prop::collection::vec(("[a-c]", json_value()), 0..6)) {
            // Written by hand so that repeated keys stay in the text.
            let body: Vec<String> = entries
                .iter()
                .map(|(key, value)| format!("{}: {}", json!(key), value))
                .collect();
            check(&format!("{{{}}}", body.join(", ")));
        }
    }
}
