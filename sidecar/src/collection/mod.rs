//! The collection file's formats: opening it, the schema-11 layout the server keeps, the
//! schema-18 protobuf blobs, and the conversion from uploaded schemas to 11.

pub mod cached;
pub mod census;
pub mod col_row;
pub mod convert;
pub mod graves;
pub mod intake;
pub mod json;
pub mod kept;
pub mod proto;
pub mod query;
pub mod row_counts;
pub mod rows;
pub mod schema11;
pub mod schema_guard;
pub mod sqlite;
#[cfg(test)]
pub(crate) mod test_support;
pub mod wal_writes;
