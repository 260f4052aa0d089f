//! Anki sync server (protocol v11) that lives beside a Django app.
//!
//! The crate is split by concept: `transport` speaks the wire format, `auth` checks Django
//! users and host keys, `db` reads Django's database, `storage` owns the per-user files,
//! `collection` knows the collection file's formats, `normal_sync` the incremental merge,
//! `media` the media store, `import` the merge of `.apkg` packages. `user_data` is the
//! service floor above them: every operation on one user's data, under that user's lock, off
//! the async executor. `handlers` translate between the wire and `user_data`.

pub mod auth;
pub mod cli_import;
pub mod clock;
pub mod collection;
pub mod config;
pub mod connections;
pub mod db;
pub mod error;
pub mod fault;
pub mod handlers;
pub mod import;
mod internal_from;
pub mod limits;
pub mod media;
pub mod metrics;
pub mod normal_sync;
pub mod note_text;
pub mod request_log;
pub mod server;
pub mod spool;
pub mod state;
pub mod storage;
pub mod sync_log;
pub mod transport;
pub mod user_data;
