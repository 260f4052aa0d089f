//! The v11 wire format: the `anki-sync` header, zstd request bodies with size caps, and zstd
//! responses carrying `anki-original-size` (protocol §1).

pub mod body;
pub mod header;
pub mod response;

pub use body::{BodyLimits, read_json, read_to_file};
pub use header::SyncHeader;
pub use response::SyncResponse;
