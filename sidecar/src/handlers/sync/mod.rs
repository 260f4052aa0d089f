//! `/sync/*`: login, collection state, full and normal sync
//! (docs/sync-protocol.md#login-and-host-keys, docs/sync-protocol.md#normal-sync,
//! docs/sync-protocol.md#full-sync).

pub mod abort;
pub mod apply_changes;
pub mod apply_chunk;
pub mod apply_graves;
pub mod chunk;
pub mod download;
pub mod finish;
pub mod host_key;
pub mod meta;
pub mod sanity_check;
pub mod start;
pub mod upload;

use axum::Router;

use crate::state::AppState;

pub fn router() -> Router<AppState> {
    super::post_calls![
        "/hostKey" => host_key,
        "/meta" => meta,
        "/upload" => upload,
        "/download" => download,
        "/start" => start,
        "/applyGraves" => apply_graves,
        "/applyChanges" => apply_changes,
        "/chunk" => chunk,
        "/applyChunk" => apply_chunk,
        "/sanityCheck2" => sanity_check,
        "/finish" => finish,
        "/abort" => abort,
    ]
    .fallback(super::unknown_method("sync"))
}
