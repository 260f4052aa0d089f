//! Which scheduler features a collection uses, for the `meta` check of legacy clients: a
//! client of sync version 8 cannot sync a v2-scheduler collection, and one of version 9
//! cannot sync one with the new time-zone handling (docs/legacy-protocol.md).

use anyhow::Context;
use serde_json::Value;

use crate::collection::col_row::col;

/// The first sync version that understands the v2 (and later) scheduler.
pub const SYNC_VERSION_V2_SCHEDULER: i64 = 9;
/// The first sync version that understands the new time-zone handling.
pub const SYNC_VERSION_V2_TIMEZONE: i64 = 10;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SchedulerFeatures {
    /// `schedVer` is 2 or more (absent means 1).
    pub v2_scheduler_or_later: bool,
    /// `creationOffset` is set.
    pub v2_timezone: bool,
}

impl SchedulerFeatures {
    pub fn from_conf(conf: &Value) -> Self {
        Self {
            v2_scheduler_or_later: conf.get("schedVer").and_then(Value::as_i64).unwrap_or(1) >= 2,
            v2_timezone: conf.get("creationOffset").is_some_and(|v| !v.is_null()),
        }
    }

    /// The refusal `meta` sends a client of `sync_version`, if it cannot sync this collection.
    pub fn refusal_for(&self, sync_version: i64) -> Option<&'static str> {
        if self.v2_scheduler_or_later && sync_version < SYNC_VERSION_V2_SCHEDULER {
            Some("Your client does not support the v2 scheduler")
        } else if self.v2_timezone && sync_version < SYNC_VERSION_V2_TIMEZONE {
            Some("Your client does not support the new timezone handling.")
        } else {
            None
        }
    }
}

/// The features of the collection open on `conn`, from `col.conf`. Read at every `meta`, so
/// only the two keys are kept: the rest of the config is skipped without being built.
pub fn features_of(conn: &rusqlite::Connection) -> anyhow::Result<SchedulerFeatures> {
    let conf = col(conn).conf_text().context("reading col.conf")?;
    Ok(features_of_text(&conf))
}

/// [`SchedulerFeatures::from_conf`] of the parsed `conf`, without parsing the rest of it. An
/// unreadable conf, or one that is not an object, is treated as the oldest scheduler: it never
/// blocks a client.
fn features_of_text(conf: &str) -> SchedulerFeatures {
    match serde_json::from_str::<FeatureKeys>(conf) {
        Ok(FeatureKeys {
            sched_ver,
            creation_offset,
        }) => SchedulerFeatures {
            v2_scheduler_or_later: sched_ver.as_ref().and_then(Value::as_i64).unwrap_or(1) >= 2,
            v2_timezone: creation_offset.is_some_and(|v| !v.is_null()),
        },
        Err(_) => SchedulerFeatures::default(),
    }
}

/// The two keys of `conf` the features depend on; a repeated key's last value wins, as in a
/// parsed object.
#[derive(Default)]
struct FeatureKeys {
    sched_ver: Option<Value>,
    creation_offset: Option<Value>,
}

impl<'de> serde::Deserialize<'de> for FeatureKeys {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(FeatureKeysVisitor)
    }
}

struct FeatureKeysVisitor;

impl<'de> serde::de::Visitor<'de> for FeatureKeysVisitor {
    type Value = FeatureKeys;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<FeatureKeys, A::Error> {
        let mut keys = FeatureKeys::default();
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match &*key {
                "schedVer" => keys.sched_ver = Some(map.next_value()?),
                "creationOffset" => keys.creation_offset = Some(map.next_value()?),
                _ => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        Ok(keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn v8_clients_are_refused_a_v2_collection() {
        let v2 = SchedulerFeatures::from_conf(&json!({"schedVer": 2, "creationOffset": null}));
        assert_eq!(
            v2.refusal_for(8),
            Some("Your client does not support the v2 scheduler")
        );
        assert_eq!(v2.refusal_for(9), None);
        assert_eq!(v2.refusal_for(10), None);
        let v1 = SchedulerFeatures::from_conf(&json!({}));
        assert_eq!(v1.refusal_for(8), None);
    }

    #[test]
    fn the_two_keys_are_read_as_from_the_parsed_conf() {
        for conf in [
            r#"{"schedVer": 2, "creationOffset": -60, "other": [1, {"schedVer": 1}]}"#,
            r#"{"schedVer": 1, "creationOffset": null}"#,
            r#"{"schedVer": 2.0}"#,
            r#"{"schedVer": "2", "creationOffset": 0}"#,
            r#"{"schedVer": 3, "schedVer": 1}"#,
            r#"{"creationOffset": 5, "creationOffset": null}"#,
            r#"{"sched\u0056er": 2}"#,
            r#"{}"#,
            r#"[1, 2]"#,
            r#"{"schedVer": 2"#,
            "",
        ] {
            let parsed: Value = serde_json::from_str(conf).unwrap_or(Value::Null);
            assert_eq!(
                features_of_text(conf),
                SchedulerFeatures::from_conf(&parsed),
                "{conf}"
            );
        }
    }

    #[test]
    fn v9_clients_are_refused_the_new_timezone() {
        let tz = SchedulerFeatures::from_conf(&json!({"schedVer": 2, "creationOffset": -60}));
        assert_eq!(
            tz.refusal_for(9),
            Some("Your client does not support the new timezone handling.")
        );
        assert_eq!(tz.refusal_for(10), None);
        assert_eq!(tz.refusal_for(11), None);
    }
}
