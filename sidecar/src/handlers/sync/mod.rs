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
use axum::routing::post;

use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/hostKey", post(host_key::host_key))
        .route("/meta", post(meta::meta))
        .route("/upload", post(upload::upload))
        .route("/download", post(download::download))
        .route("/start", post(start::start))
        .route("/applyGraves", post(apply_graves::apply_graves))
        .route("/applyChanges", post(apply_changes::apply_changes))
        .route("/chunk", post(chunk::chunk))
        .route("/applyChunk", post(apply_chunk::apply_chunk))
        .route("/sanityCheck2", post(sanity_check::sanity_check))
        .route("/finish", post(finish::finish))
        .route("/abort", post(abort::abort))
        .fallback(super::unknown_method("sync"))
}
