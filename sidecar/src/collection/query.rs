//! Reading SQLite rows: [`from_row!`] fills a struct from a row's columns in order, and
//! [`all_rows`] runs a query and collects what it maps each row to.

use rusqlite::{Connection, Params, Row};

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
