//! The `anki-sync` request header (docs/sync-protocol.md#the-anki-sync-header).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde::Deserialize;

use crate::error::ApiError;

pub const HEADER_NAME: &str = "anki-sync";
pub const SYNC_VERSION_MIN: u8 = 8;
pub const SYNC_VERSION_MAX: u8 = 11;

/// The parsed header. All four keys are required, as on the official server.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct SyncHeader {
    #[serde(rename = "v")]
    pub version: u8,
    /// Host key; empty for `hostKey`.
    #[serde(rename = "k")]
    pub host_key: String,
    /// Client version string: informational, logged, never parsed.
    #[serde(rename = "c")]
    pub client_version: String,
    /// Session key of this sync operation.
    #[serde(rename = "s")]
    pub session_key: String,
}

impl SyncHeader {
    /// A request in neither wire format, or of a sync version outside 8–11, comes from a
    /// client this server cannot serve: 501, which every Anki generation shows as "your Anki
    /// version is too old, please update" (a 400 would send the user to Check Database).
    /// See docs/connecting-clients.md.
    pub fn parse(raw: Option<&[u8]>) -> Result<Self, ApiError> {
        let raw = raw.ok_or_else(|| {
            ApiError::ClientTooOld(
                "neither an anki-sync header nor a multipart (legacy) sync request: \
                 this Anki version is not supported; please update Anki"
                    .into(),
            )
        })?;
        let header: SyncHeader = serde_json::from_slice(raw)
            .map_err(|err| ApiError::bad_request(format!("malformed anki-sync header: {err}")))?;
        if !(SYNC_VERSION_MIN..=SYNC_VERSION_MAX).contains(&header.version) {
            return Err(ApiError::ClientTooOld(format!(
                "sync version {} is not supported (this server speaks {SYNC_VERSION_MIN} to \
                 {SYNC_VERSION_MAX}); please update Anki",
                header.version
            )));
        }
        Ok(header)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for SyncHeader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        if let Some(header) = parts.extensions.get::<SyncHeader>() {
            return Ok(header.clone());
        }
        let header = Self::parse(parts.headers.get(HEADER_NAME).map(|v| v.as_bytes()))?;
        parts.extensions.insert(header.clone());
        Ok(header)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_real_client_header() {
        let header = SyncHeader::parse(Some(
            br#"{"v":11,"k":"abc","c":"26.09.3,29bb700b,linux","s":"dnnCWQ"}"#,
        ))
        .unwrap();
        assert_eq!(header.version, 11);
        assert_eq!(header.host_key, "abc");
        assert_eq!(header.session_key, "dnnCWQ");
    }

    #[test]
    fn refuses_bad_headers_with_400() {
        for raw in [
            Some(&b"not json"[..]),
            Some(&br#"{"v":11,"k":"","c":"x"}"#[..]),
            Some(&br#"{"v":"11","k":"","c":"x","s":"y"}"#[..]),
        ] {
            let err = SyncHeader::parse(raw).unwrap_err();
            assert_eq!(err.status(), 400, "{raw:?}");
        }
    }

    #[test]
    fn tells_unsupported_clients_they_are_too_old() {
        for raw in [
            None,
            Some(&br#"{"v":12,"k":"","c":"x","s":"y"}"#[..]),
            Some(&br#"{"v":7,"k":"","c":"x","s":"y"}"#[..]),
        ] {
            let err = SyncHeader::parse(raw).unwrap_err();
            assert_eq!(err.status(), 501, "{raw:?}");
        }
    }
}
