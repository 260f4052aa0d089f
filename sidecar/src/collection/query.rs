//! SQLite helpers shared by the collection, `media.db` and `imports.db`: [`from_row!`] fills
//! a struct from a row's columns in order, [`all_rows`] runs a query and collects what it
//! maps each row to, and [`open_read_write`] opens an existing file.

use std::path::Path;

use anyhow::Context;
use rusqlite::{Connection, OpenFlags, Params, Row};

/// The function that builds a struct from a row whose columns are its fields in the order
/// listed: `from_row!(Card: id, nid, did)` reads column 0 into `id`, 1 into `nid` and 2
/// into `did`. Fields after `;` are set to the given values instead. For `query_row`,
/// `query_map` and [`all_rows`].
macro_rules! from_row {
    ($ty:ident: $($field:ident),+ $(; $($fixed:ident: $value:expr),+)?) => {
        |row: &rusqlite::Row<'_>| -> rusqlite::Result<_> {
            let mut columns_read = 0;
            Ok($ty {
                $($field: {
                    columns_read += 1;
                    row.get(columns_read - 1)?
                },)+
                $($($fixed: $value,)+)?
            })
        }
    };
}
pub(crate) use from_row;

/// Runs `sql` with `params` and collects what `map` makes of each row.
pub fn all_rows<T, C: FromIterator<T>>(
    conn: &Connection,
    sql: &str,
    params: impl Params,
    map: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<C> {
    let mut statement = conn.prepare(sql)?;
    statement.query_map(params, map)?.collect()
}

/// Opens an existing SQLite file for reading and writing (never creating it), waiting up to
/// ten seconds for another connection's lock. `what` names the file in the error.
pub fn open_read_write(path: &Path, what: &str) -> anyhow::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("opening {what}"))?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    Ok(conn)
}
