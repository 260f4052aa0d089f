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
fn null_or_empty_string<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
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
