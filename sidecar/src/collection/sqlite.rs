//! Opening collection files with rusqlite.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

/// Registers `unicase`, the collation schema-18 tables declare on names. Anki compares with
/// Unicode case folding; without the collation SQLite refuses to touch those tables.
pub fn register_unicase(conn: &Connection) -> rusqlite::Result<()> {
    conn.create_collation("unicase", |a, b| {
        unicase::UniCase::new(a).cmp(&unicase::UniCase::new(b))
    })
}

/// Opens an existing collection read-write, with the collation registered. The journal mode
/// the file carries is left alone: uploads arrive in WAL mode and are converted afterwards.
pub fn open_collection(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    register_unicase(&conn)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.execute_batch("PRAGMA locking_mode = NORMAL")?;
    Ok(conn)
}
