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

/// The features of the collection open on `conn`, from `col.conf`.
pub fn features_of(conn: &rusqlite::Connection) -> anyhow::Result<SchedulerFeatures> {
    let conf = col(conn).conf_text().context("reading col.conf")?;
    // An unreadable conf is treated as the oldest scheduler: it never blocks a client.
    let conf: Value = serde_json::from_str(&conf).unwrap_or(Value::Null);
    Ok(SchedulerFeatures::from_conf(&conf))
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
