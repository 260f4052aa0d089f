//! `sanityCheck2`: both sides count their rows and objects (docs/sync-protocol.md#sanity-check).

use rusqlite::Connection;
use serde_json::{Value, json};

use super::OpResult;
use super::wire::SanityCheckResponse;
use crate::collection::census::ColCensus;
use crate::collection::sqlite::CachedQuery;

/// The server's counts in the client's layout, or None when a row still has `usn = -1`
/// (which would mean an object was stored unsynced).
pub fn server_counts(conn: &Connection) -> OpResult<Option<Value>> {
    for table in ["cards", "notes", "revlog", "graves"] {
        let unsynced: i64 = conn.cached_row(
            &format!("SELECT COUNT(*) FROM {table} WHERE usn = -1"),
            [],
            |row| row.get(0),
        )?;
        if unsynced > 0 {
            return Ok(None);
        }
    }
    let objects = ColCensus::load(conn)?;
    if objects.any_unsynced() {
        return Ok(None);
    }
    let count = |table: &str| -> OpResult<i64> {
        Ok(
            conn.cached_row(&format!("SELECT COUNT(*) FROM {table}"), [], |row| {
                row.get(0)
            })?,
        )
    };
    Ok(Some(json!([
        [0, 0, 0],
        count("cards")?,
        count("notes")?,
        count("revlog")?,
        count("graves")?,
        objects.models.count,
        objects.decks.count,
        objects.dconf.count,
    ])))
}

/// Due counts and graves are zeroed on both sides before comparing: current clients send no
/// due counts, and older ones may hold duplicate graves.
fn comparable(counts: &Value) -> Option<Value> {
    let mut values = counts.as_array()?.clone();
    if values.len() != 8 {
        return None;
    }
    values[0] = json!([0, 0, 0]);
    values[4] = json!(0);
    Some(Value::Array(values))
}

pub fn sanity_check(conn: &Connection, client: &Value) -> OpResult<SanityCheckResponse> {
    let server = server_counts(conn)?;
    let client = comparable(client);
    let server = server.as_ref().and_then(comparable);
    let ok = client.is_some() && client == server;
    Ok(SanityCheckResponse {
        status: if ok { "ok" } else { "bad" },
        c: client,
        s: server,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graves_and_due_counts_are_ignored() {
        let a = json!([[3, 1, 2], 3, 3, 1, 5, 6, 3, 1]);
        let b = json!([[0, 0, 0], 3, 3, 1, 0, 6, 3, 1]);
        assert_eq!(comparable(&a), comparable(&b));
        assert_ne!(
            comparable(&a),
            comparable(&json!([[0, 0, 0], 4, 3, 1, 0, 6, 3, 1]))
        );
        assert_eq!(comparable(&json!([1, 2])), None);
    }
}
