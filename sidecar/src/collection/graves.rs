//! The `graves` table: the deletions a sync sends to the user's other devices, and the
//! indexes the server keeps on it.

use rusqlite::Connection;

/// What a grave's `oid` names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i64)]
pub enum GraveKind {
    Card = 0,
    Note = 1,
    Deck = 2,
}

impl GraveKind {
    fn from_column(kind: i64) -> Option<Self> {
        match kind {
            0 => Some(Self::Card),
            1 => Some(Self::Note),
            2 => Some(Self::Deck),
            _ => None,
        }
    }
}

/// Indexes the server keeps on `graves`, which schema 11 leaves unindexed: without them each
/// grave recorded by `applyGraves` scans the whole table (quadratic in the request, and slow
/// for every user with a long deletion history), and `start` scans it for pending graves.
/// They live only in the server's copy: [`drop_graves_indexes`] removes them from the file a
/// full download sends, so clients get exactly Anki's schema. An upload arrives without them
/// and the next `start` adds them again.
pub const GRAVES_INDEXES: [(&str, &str); 2] = [
    ("ix_sidecar_graves_oid", "graves (oid, type)"),
    ("ix_sidecar_graves_usn", "graves (usn)"),
];

/// Creates the server's graves indexes if missing. Must run outside the sync transaction,
/// or a rollback would drop them again. A failure (a full disk) is logged, not fatal: syncs
/// still work, only slower.
pub fn ensure_graves_indexes(conn: &Connection) {
    for (name, on) in GRAVES_INDEXES {
        if let Err(err) = conn.execute_batch(&format!("CREATE INDEX IF NOT EXISTS {name} ON {on}"))
        {
            tracing::warn!(index = name, error = %err, "could not create a graves index");
        }
    }
}

/// Removes the server's graves indexes, from a copy about to be sent to a client.
pub fn drop_graves_indexes(conn: &Connection) -> rusqlite::Result<()> {
    for (name, _) in GRAVES_INDEXES {
        conn.execute_batch(&format!("DROP INDEX IF EXISTS {name}"))?;
    }
    Ok(())
}

/// The graves with `usn >= min_usn`, as (oid, kind); graves of a kind Anki does not know are
/// left out.
pub fn graves_since(conn: &Connection, min_usn: i32) -> rusqlite::Result<Vec<(i64, GraveKind)>> {
    let mut statement = conn.prepare_cached("SELECT oid, type FROM graves WHERE usn >= +?1")?;
    let rows = statement.query_map([min_usn], |row| {
        Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?))
    })?;
    let mut graves = Vec::new();
    for row in rows {
        let (oid, kind) = row?;
        if let Some(kind) = GraveKind::from_column(kind) {
            graves.push((oid, kind));
        }
    }
    Ok(graves)
}

/// Records a grave with `usn`. A grave that exists already keeps its usn ("insert or ignore"
/// on (oid, type)).
pub fn record_grave(
    conn: &Connection,
    usn: i32,
    oid: i64,
    kind: GraveKind,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO graves (usn, oid, type) SELECT ?1, ?2, ?3 \
         WHERE NOT EXISTS (SELECT 1 FROM graves WHERE oid = ?2 AND type = ?3)",
    )?
    .execute((usn, oid, kind as i64))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collection::test_support::open_new_collection;

    #[test]
    fn graves_are_recorded_once_and_read_back_by_usn() {
        let (_dir, conn) = open_new_collection();
        record_grave(&conn, 3, 10, GraveKind::Card).unwrap();
        record_grave(&conn, 4, 10, GraveKind::Card).unwrap();
        record_grave(&conn, 4, 10, GraveKind::Note).unwrap();
        record_grave(&conn, 5, 20, GraveKind::Deck).unwrap();
        conn.execute_batch("INSERT INTO graves (usn, oid, type) VALUES (6, 30, 9)")
            .unwrap();
        assert_eq!(
            graves_since(&conn, 3).unwrap(),
            [
                (10, GraveKind::Card),
                (10, GraveKind::Note),
                (20, GraveKind::Deck)
            ]
        );
        assert_eq!(
            graves_since(&conn, 4).unwrap(),
            [(10, GraveKind::Note), (20, GraveKind::Deck)],
            "the card's grave kept its first usn"
        );
    }
}
