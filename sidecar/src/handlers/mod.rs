//! HTTP handlers, one endpoint per file, named after the protocol method.
//! They translate between wire types and storage; they hold no SQL.

pub mod health;
pub mod internal;
pub mod msync;
pub mod sync;

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use serde::Deserialize;

use crate::auth::client_ip;
use crate::error::ApiError;
use crate::state::AppState;
use crate::sync_log::ClientTag;
use crate::transport::SyncHeader;
use crate::transport::header::HEADER_NAME;

/// The body of argument-less calls: `{"_pad":null}` from current clients, `{}` from older
/// ones. Any other key is refused, as on the official server (protocol §1.2).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmptyInput {
    #[serde(rename = "_pad", default)]
    _pad: Option<serde_json::Value>,
}

/// Who is syncing, for the sync's log line: the client's IP from the configured source and
/// its version from the `anki-sync` header. Never rejects a request.
impl FromRequestParts<AppState> for ClientTag {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|info| info.0);
        let ip = client_ip::resolve(state.settings.ip_header, &parts.headers, peer);
        let version = SyncHeader::parse(parts.headers.get(HEADER_NAME).map(|v| v.as_bytes()))
            .map(|header| header.client_version)
            .unwrap_or_default();
        Ok(ClientTag::new(ip, &version))
    }
}
