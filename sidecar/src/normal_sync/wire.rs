//! JSON shapes of the normal-sync calls (docs/sync-protocol.md#normal-sync,
//! docs/sync-protocol.md#json-objects). Storage rows are translated to and from these in the
//! operation modules; handlers only move them.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::collection::json::JsonObject;

/// Deletions, as the server stores and sends them.
#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Graves {
    #[serde(default)]
    pub cards: Vec<i64>,
    #[serde(default)]
    pub notes: Vec<i64>,
    #[serde(default)]
    pub decks: Vec<i64>,
}

/// `len` and `is_empty` of the types of graves: the ids of cards, notes and decks together.
macro_rules! graves_len {
    ($($graves:ty),+) => {$(
        impl $graves {
            pub fn len(&self) -> usize {
                self.cards.len() + self.notes.len() + self.decks.len()
            }

            pub fn is_empty(&self) -> bool {
                self.len() == 0
            }
        }
    )+};
}

graves_len!(Graves, IncomingGraves);

/// Deletions as a client sends them. The ids are read by `graves::read_graves` inside the
/// sync, so that a bad id rolls the sync back (old clients sent ids as strings in `start`).
#[derive(Debug, Default, Clone, Deserialize)]
pub struct IncomingGraves {
    #[serde(default, deserialize_with = "null_as_empty")]
    pub cards: Vec<Value>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub notes: Vec<Value>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub decks: Vec<Value>,
}

fn null_as_empty<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<Value>, D::Error> {
    Ok(Option::<Vec<Value>>::deserialize(deserializer)?.unwrap_or_default())
}

/// `null` and `""` both mean "absent" in legacy payloads.
///
/// The field is still read as a JSON value first, because that decides which inputs are
/// accepted. Read straight into the target type instead, a struct would refuse a key given
/// twice (the value keeps the last one), would skip numbers under unknown keys without
/// checking their range, and serde_json's raw-value key, which a value reads as JSON text,
/// would become an ordinary key. Building the value costs no more than building the object or
/// lists it holds; what used to be wasted was building them a second time from it, which
/// [`FromLegacyValue`] avoids by moving them out.
fn null_or_empty_string<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: FromLegacyValue,
{
    let value = Option::<Value>::deserialize(deserializer)?;
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) if text.is_empty() => Ok(None),
        Some(other) => T::from_legacy_value(other)
            .map(Some)
            .map_err(serde::de::Error::custom),
    }
}

/// A field type read through [`null_or_empty_string`]. Every implementation must give the
/// same result as `serde_json::from_value`, which is the default; the others exist so that a
/// large value (a config object, lists of deleted ids) is moved rather than copied.
trait FromLegacyValue: serde::de::DeserializeOwned {
    fn from_legacy_value(value: Value) -> serde_json::Result<Self> {
        serde_json::from_value(value)
    }
}

/// A number is small: converting it costs nothing worth avoiding.
impl FromLegacyValue for i64 {}

impl FromLegacyValue for JsonObject {
    /// `from_value` would build the same object again, key by key in the same order (the
    /// crate enables serde_json's `preserve_order`), so the object is simply taken.
    fn from_legacy_value(value: Value) -> serde_json::Result<Self> {
        match value {
            Value::Object(object) => Ok(object),
            // Anything else is refused, with the usual message.
            other => serde_json::from_value(other),
        }
    }
}

impl FromLegacyValue for IncomingGraves {
    /// As the derived reading of an object: the three lists by name, a missing or `null` list
    /// empty, other keys ignored, and the first bad list (in the object's order) refused.
    fn from_legacy_value(value: Value) -> serde_json::Result<Self> {
        let Value::Object(object) = value else {
            // The rarer shapes (the lists as an array) and the refusals.
            return serde_json::from_value(value);
        };
        let mut graves = IncomingGraves::default();
        for (key, value) in object {
            let list = match key.as_str() {
                "cards" => &mut graves.cards,
                "notes" => &mut graves.notes,
                "decks" => &mut graves.decks,
                _ => continue,
            };
            *list = match value {
                Value::Null => Vec::new(),
                Value::Array(ids) => ids,
                other => serde_json::from_value(other)?,
            };
        }
        Ok(graves)
    }
}

#[derive(Debug, Deserialize)]
pub struct StartRequest {
    #[serde(rename = "minUsn")]
    pub min_usn: i32,
    #[serde(rename = "lnewer")]
    pub local_is_newer: bool,
    #[serde(default, deserialize_with = "null_or_empty_string")]
    pub graves: Option<IncomingGraves>,
}

#[derive(Debug, Deserialize)]
pub struct ApplyGravesRequest {
    pub chunk: IncomingGraves,
}

/// Notetypes, decks, deck configs, tags, and (from the newer side) config and `crt`.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct UnchunkedChanges {
    #[serde(default)]
    pub models: Vec<JsonObject>,
    /// `[decks, deck configs]`.
    #[serde(default)]
    pub decks: (Vec<JsonObject>, Vec<JsonObject>),
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "null_or_empty_string"
    )]
    pub conf: Option<JsonObject>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "null_or_empty_string"
    )]
    pub crt: Option<i64>,
}

#[derive(Debug, Deserialize)]
pub struct ApplyChangesRequest {
    pub changes: UnchunkedChanges,
}

/// Rows as JSON arrays in the exact column order of docs/sync-protocol.md#chunks. Values stay
/// generic because clients may send floats where integers are stored.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Chunk {
    #[serde(default)]
    pub done: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub revlog: Vec<Vec<Value>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cards: Vec<Vec<Value>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<Vec<Value>>,
}

#[derive(Debug, Deserialize)]
pub struct ApplyChunkRequest {
    pub chunk: Chunk,
}

#[derive(Debug, Deserialize)]
pub struct SanityCheckRequest {
    pub client: Value,
}

#[derive(Debug, Serialize)]
pub struct SanityCheckResponse {
    pub status: &'static str,
    pub c: Option<Value>,
    pub s: Option<Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_legacy_grave_shapes() {
        let start: StartRequest = serde_json::from_str(
            r#"{"minUsn":4,"lnewer":true,"graves":{"cards":["1"],"decks":["2","3"],"notes":[4]}}"#,
        )
        .unwrap();
        let graves = start.graves.unwrap();
        assert_eq!(graves.cards, vec![Value::from("1")]);
        assert_eq!(graves.decks, vec![Value::from("2"), Value::from("3")]);
        assert_eq!(graves.notes, vec![Value::from(4)]);
        for body in [
            r#"{"minUsn":0,"lnewer":false,"graves":null}"#,
            r#"{"minUsn":0,"lnewer":false,"graves":""}"#,
            r#"{"minUsn":0,"lnewer":false}"#,
        ] {
            let start: StartRequest = serde_json::from_str(body).unwrap();
            assert!(start.graves.is_none(), "{body}");
        }
    }

    /// The reading as it was before [`FromLegacyValue`]: the value built, then converted again
    /// by `from_value`. The reference the new reading must match.
    fn copying_null_or_empty_string<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
    where
        D: Deserializer<'de>,
        T: serde::de::DeserializeOwned,
    {
        let value = Option::<Value>::deserialize(deserializer)?;
        match value {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) if text.is_empty() => Ok(None),
            Some(other) => serde_json::from_value(other)
                .map(Some)
                .map_err(serde::de::Error::custom),
        }
    }

    #[derive(Deserialize)]
    #[serde(bound = "T: serde::de::DeserializeOwned")]
    struct Copying<T> {
        #[serde(default, deserialize_with = "copying_null_or_empty_string")]
        field: Option<T>,
    }

    #[derive(Deserialize)]
    #[serde(bound = "T: FromLegacyValue")]
    struct Moving<T> {
        #[serde(default, deserialize_with = "null_or_empty_string")]
        field: Option<T>,
    }

    /// `field` as a request carries it: every shape accepted or refused before, and the corners
    /// where reading a struct straight from the text would differ (repeated keys, bad numbers
    /// under unknown keys, serde_json's raw-value key, which it reads as JSON text).
    const FIELDS: &[Option<&str>] = &[
        None,
        Some("null"),
        Some(r#""""#),
        Some(r#""x""#),
        Some(r#""0""#),
        Some(r#"" ""#),
        Some("true"),
        Some("false"),
        Some("0"),
        Some("1"),
        Some("-1"),
        Some("1700000000"),
        Some("9223372036854775807"),
        Some("9223372036854775808"),
        Some("-9223372036854775808"),
        Some("-9223372036854775809"),
        Some("18446744073709551616"),
        Some("1.0"),
        Some("1.5"),
        Some("-0.0"),
        Some("1e3"),
        Some("1e400"),
        Some("[]"),
        Some("[null]"),
        Some("[1,2,3]"),
        Some(r#"[[1],["2"],[3]]"#),
        Some("[[1]]"),
        Some("[[1],null,[3]]"),
        Some("[[1],[2],[3],[4]]"),
        Some("{}"),
        Some(r#"{"a":1}"#),
        Some(r#"{"b":1,"a":2.5,"c":[true,null,{"d":"e"}]}"#),
        Some(r#"{"a":1,"a":2}"#),
        Some(r#"{"cards":[1,"2",1.5],"notes":null,"decks":[]}"#),
        Some(r#"{"decks":[3],"cards":[1],"notes":[2]}"#),
        Some(r#"{"cards":null}"#),
        Some(r#"{"cards":5}"#),
        Some(r#"{"cards":""}"#),
        Some(r#"{"cards":{}}"#),
        Some(r#"{"cards":[1],"cards":[2]}"#),
        Some(r#"{"cards":5,"cards":[]}"#),
        Some(r#"{"decks":5,"cards":"x"}"#),
        Some(r#"{"x":1,"cards":[2]}"#),
        Some(r#"{"x":1e400}"#),
        Some(r#"{"x":1e400,"cards":[]}"#),
        Some(r#"{"x":{"y":[1,{"z":null}]}}"#),
        Some(r#"{"$serde_json::private::RawValue":"{\"cards\":[7],\"a\":1}"}"#),
        Some(r#"{"$serde_json::private::RawValue":"5"}"#),
        Some(r#"{"$serde_json::private::RawValue":"null"}"#),
        Some(r#"{"$serde_json::private::RawValue":"\"\""}"#),
        Some(r#"{"$serde_json::private::RawValue":"[[1],[2],[3]]"}"#),
        Some(r#"{"$serde_json::private::RawValue":"not json"}"#),
        Some(r#"{"$serde_json::private::RawValue":5}"#),
        Some(r#"{"$serde_json::private::RawValue":"5","a":1}"#),
        Some(r#"{"a":1,"$serde_json::private::RawValue":"5"}"#),
        Some(r#"{"a":{"$serde_json::private::RawValue":"[1]"}}"#),
        Some(r#"{"cards":[{"$serde_json::private::RawValue":"[1]"}]}"#),
    ];

    /// Reads every entry of [`FIELDS`] both ways, and requires the same value (down to the
    /// order of keys and the kind of each number) or the same refusal.
    fn reads_like_copying<T: FromLegacyValue + std::fmt::Debug>() {
        let (mut accepted, mut refused) = (0, 0);
        for field in FIELDS {
            let body = match field {
                Some(text) => format!(r#"{{"field":{text}}}"#),
                None => "{}".to_string(),
            };
            let copying = serde_json::from_slice::<Copying<T>>(body.as_bytes()).map(|c| c.field);
            let moving = serde_json::from_slice::<Moving<T>>(body.as_bytes()).map(|m| m.field);
            match (copying, moving) {
                (Ok(copying), Ok(moving)) => {
                    assert_eq!(format!("{copying:?}"), format!("{moving:?}"), "{body}");
                    accepted += 1;
                }
                (Err(copying), Err(moving)) => {
                    assert_eq!(copying.to_string(), moving.to_string(), "{body}");
                    refused += 1;
                }
                (copying, moving) => panic!("{body}: before {copying:?}, now {moving:?}"),
            }
        }
        // Both branches ran: the table holds shapes of each kind for this type.
        assert!(accepted > 1 && refused > 1, "{accepted} {refused}");
    }

    #[test]
    fn graves_read_as_before() {
        reads_like_copying::<IncomingGraves>();
    }

    #[test]
    fn config_reads_as_before() {
        reads_like_copying::<JsonObject>();
    }

    #[test]
    fn creation_time_reads_as_before() {
        reads_like_copying::<i64>();
    }

    #[test]
    fn changes_serialize_without_conf_when_absent() {
        let changes = UnchunkedChanges::default();
        assert_eq!(
            serde_json::to_string(&changes).unwrap(),
            r#"{"models":[],"decks":[[],[]],"tags":[]}"#
        );
    }

    #[test]
    fn chunks_omit_empty_lists() {
        let chunk = Chunk {
            done: true,
            ..Default::default()
        };
        assert_eq!(serde_json::to_string(&chunk).unwrap(), r#"{"done":true}"#);
    }
}
