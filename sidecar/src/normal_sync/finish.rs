//! `finish`: commit the sync (docs/sync-protocol.md#finish).

use rusqlite::Connection;

use super::OpResult;
use crate::clock::now_millis;
use crate::collection::col_row::col;

/// Sets `ls` and `mod` to now, advances the usn, and commits. Returns now in milliseconds,
/// which the client stores as its own `mod` so that both sides agree there are no changes.
pub fn finish(conn: &Connection, server_usn: i32) -> OpResult<i64> {
    let now = now_millis();
    col(conn).record_sync(now, server_usn + 1)?;
    conn.execute_batch("COMMIT")?;
    Ok(now)
}
