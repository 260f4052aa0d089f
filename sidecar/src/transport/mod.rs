//! The v11 wire format: the `anki-sync` header, zstd request bodies with size caps, and zstd
//! responses carrying `anki-original-size` (docs/architecture.md, "Inside the sidecar").
//! `legacy` decodes the multipart format of sync versions 8–10 into the same requests, and the
//! readers and answers follow its wire (docs/legacy-protocol.md).

pub mod body;
pub mod header;
pub mod import_body;
pub mod legacy;
pub mod response;

pub use body::{BodyLimits, read_json, read_json_sized, read_to_file};
pub use header::SyncHeader;
pub use response::SyncResponse;
