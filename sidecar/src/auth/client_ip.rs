//! The client's IP, from the socket or from the trusted proxy header that is configured.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::request::Parts;

use crate::config::IpSource;
use crate::error::ApiError;
use crate::state::AppState;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

pub fn resolve(source: IpSource, headers: &HeaderMap, peer: Option<SocketAddr>) -> Option<IpAddr> {
    let from_header = |name: &str, rightmost: bool| {
        let value = headers.get(name)?.to_str().ok()?;
        let candidate = if rightmost {
            value.rsplit(',').next()
        } else {
            Some(value)
        }?;
        candidate.trim().parse::<IpAddr>().ok()
    };
    match source {
        IpSource::None => peer.map(|addr| addr.ip()),
        IpSource::XRealIp => from_header("x-real-ip", false),
        IpSource::XForwardedFor => from_header("x-forwarded-for", true),
    }
}

/// The address of the TCP peer (the proxy, behind one), as the accept loop recorded it.
pub fn peer(parts: &Parts) -> Option<SocketAddr> {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0)
}

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        resolve(state.settings.ip_header, &parts.headers, peer(parts))
            .map(ClientIp)
            .ok_or_else(|| {
                // A proxy that forgets the header would otherwise make every client share
                // one throttling bucket.
                ApiError::bad_request("missing or invalid client IP header from the proxy")
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_the_configured_source() {
        let mut headers = HeaderMap::new();
        headers.insert("x-real-ip", "203.0.113.7".parse().unwrap());
        headers.insert("x-forwarded-for", "10.0.0.1, 198.51.100.2".parse().unwrap());
        let peer: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        assert_eq!(
            resolve(IpSource::None, &headers, Some(peer)),
            Some("127.0.0.1".parse().unwrap())
        );
        assert_eq!(
            resolve(IpSource::XRealIp, &headers, Some(peer)),
            Some("203.0.113.7".parse().unwrap())
        );
        assert_eq!(
            resolve(IpSource::XForwardedFor, &headers, Some(peer)),
            Some("198.51.100.2".parse().unwrap())
        );
        assert_eq!(
            resolve(IpSource::XRealIp, &HeaderMap::new(), Some(peer)),
            None
        );
    }
}
