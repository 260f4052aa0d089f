//! `sanityCheck2`: both sides count their rows and objects (docs/sync-protocol.md#sanity-check).

use rusqlite::Connection;
use serde_json::{Value, json};

use super::OpResult;
use super::wire::SanityCheckResponse;
use crate::collection::census::{ColCensus, ColumnMemos};
use crate::collection::row_counts::row_counts;
use crate::collection::sqlite::CachedQuery;

/// The server's counts in the client's layout, or None when a row still has `usn = -1`
/// (which would mean an object was stored unsynced). Neither grows with the collection: the
/// `usn = -1` checks are index lookups (`ix_*_usn`, and the server's graves index), and the row
/// counts are kept on the connection (`collection::row_counts`).
pub fn server_counts(conn: &Connection, memo: &mut ColumnMemos) -> OpResult<Option<Value>> {
    for table in ["cards", "notes", "revlog", "graves"] {
        if has_unsynced_rows(conn, table)? {
            return Ok(None);
        }
    }
    let objects = ColCensus::load(conn, memo)?;
    if objects.any_unsynced() {
        return Ok(None);
    }
    let rows = row_counts(conn)?;
    Ok(Some(json!([
        [0, 0, 0],
        rows.cards,
        rows.notes,
        rows.revlog,
        rows.graves,
        objects.models.count,
        objects.decks.count,
        objects.dconf.count,
    ])))
}

/// Whether `table` has a row with `usn = -1`.
///
/// Asked as the smallest usn, which SQLite reads at one end of the `usn` index whatever the
/// planner statistics say. `COUNT(*) ... WHERE usn = -1` was a full scan of that index in
/// files carrying Anki's `ANALYZE` statistics (every row with the same usn makes the equality
/// look useless to the planner): 200,000 entries read per table at every sanity check
/// (issue 13). Only a table holding a usn below -1, which no client writes, is counted.
fn has_unsynced_rows(conn: &Connection, table: &str) -> OpResult<bool> {
    let smallest: Option<i64> = conn.cached_row(&smallest_usn_sql(table), [], |row| row.get(0))?;
    Ok(match smallest {
        None => false,
        Some(usn) if usn >= 0 => false,
        Some(-1) => true,
        Some(_) => {
            let unsynced: i64 = conn.cached_row(
                &format!("SELECT COUNT(*) FROM {table} WHERE usn = -1"),
                [],
                |row| row.get(0),
            )?;
            unsynced > 0
        }
    })
}

fn smallest_usn_sql(table: &str) -> String {
    format!("SELECT MIN(usn) FROM {table}")
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

pub fn sanity_check(
    conn: &Connection,
    memo: &mut ColumnMemos,
    client: &Value,
) -> OpResult<SanityCheckResponse> {
    let server = server_counts(conn, memo)?;
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
    use crate::collection::graves::ensure_graves_indexes;
    use crate::collection::test_support::{
        open_new_collection, query_plan, use_statistics_of_200k_notes,
    };

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

    /// Issue 13: the sanity check must not read every row. The `usn = -1` checks read one
    /// end of an index, also when the file carries the statistics Anki's `ANALYZE` leaves in
    /// a 200,000-note collection whose rows all have the same usn.
    #[test]
    fn unsynced_checks_read_one_end_of_an_index() {
        let (_dir, conn) = open_new_collection();
        ensure_graves_indexes(&conn);
        conn.execute_batch(
            "INSERT INTO graves (usn, oid, type) VALUES (1, 1, 0), (1, 2, 0), (1, 3, 1);",
        )
        .unwrap();
        use_statistics_of_200k_notes(&conn);
        for table in ["cards", "notes", "revlog", "graves"] {
            let plan = query_plan(&conn, &smallest_usn_sql(table), []);
            let index = if table == "graves" {
                "ix_sidecar_graves_usn".to_string()
            } else {
                format!("ix_{table}_usn")
            };
            assert_eq!(
                plan,
                format!("SEARCH {table} USING COVERING INDEX {index}"),
                "{table}"
            );
        }
    }

    #[test]
    fn unsynced_rows_are_found_whatever_the_other_usns() {
        let (_dir, conn) = open_new_collection();
        let insert = |usn: i64, oid: i64| {
            conn.execute(
                "INSERT INTO graves (usn, oid, type) VALUES (?1, ?2, 0)",
                [usn, oid],
            )
            .unwrap();
        };
        assert!(!has_unsynced_rows(&conn, "graves").unwrap(), "empty");
        insert(3, 1);
        assert!(!has_unsynced_rows(&conn, "graves").unwrap());
        insert(-7, 2);
        assert!(
            !has_unsynced_rows(&conn, "graves").unwrap(),
            "a usn below -1 is not -1"
        );
        insert(-1, 3);
        assert!(has_unsynced_rows(&conn, "graves").unwrap());
        conn.execute_batch("DELETE FROM graves WHERE usn = -7")
            .unwrap();
        assert!(has_unsynced_rows(&conn, "graves").unwrap());
    }

    /// The counts sent are the tables' rows, after the sync's writes and after a rollback.
    #[test]
    fn counts_are_the_rows_before_and_after_a_rollback() {
        let (_dir, conn) = open_new_collection();
        let rows = |conn: &Connection| {
            let counts = server_counts(conn, &mut ColumnMemos::default())
                .unwrap()
                .unwrap();
            [1, 2, 3, 4].map(|index| counts[index].as_i64().unwrap())
        };
        assert_eq!(rows(&conn), [0, 0, 0, 0]);
        conn.execute_batch("BEGIN IMMEDIATE").unwrap();
        conn.execute_batch(
            "INSERT INTO revlog (id, cid, usn, ease, ivl, lastIvl, factor, time, type) \
             VALUES (1, 1, 4, 1, 1, 1, 1, 1, 1), (2, 1, 4, 1, 1, 1, 1, 1, 1);
             INSERT INTO graves (usn, oid, type) VALUES (4, 7, 0);",
        )
        .unwrap();
        assert_eq!(rows(&conn), [0, 0, 2, 1]);
        conn.execute_batch("ROLLBACK").unwrap();
        assert_eq!(rows(&conn), [0, 0, 0, 0]);
        let unsynced = "INSERT INTO graves (usn, oid, type) VALUES (-1, 8, 0)";
        conn.execute_batch(unsynced).unwrap();
        assert_eq!(
            server_counts(&conn, &mut ColumnMemos::default()).unwrap(),
            None,
            "a row with usn -1"
        );
    }
}
