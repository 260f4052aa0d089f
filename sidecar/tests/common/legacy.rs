//! The legacy transport (sync versions 8–10): multipart bodies, gzip or raw `data`, plain
//! answers, as Anki 2.1.50–2.1.56 send them.

use std::io::Write;

use serde_json::{Value, json};

use super::{Response, TestApp};

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

pub const BOUNDARY: &str = "------------------------legacyBoundary42";

/// A multipart body in the layout of the legacy Rust client: `data` first (with a file name),
/// then the text parts.
pub fn multipart(parts: &[(&str, &[u8])]) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, value) in parts {
        body.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
        if *name == "data" {
            body.extend_from_slice(
                b"Content-Disposition: form-data; name=\"data\"; filename=\"data\"\r\n\
                  Content-Type: application/octet-stream\r\n\r\n",
            );
        } else {
            body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
            );
        }
        body.extend_from_slice(value);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

impl TestApp {
    /// Sends a multipart POST without the `anki-sync` header; the answer is kept as sent, and
    /// a 200 must be plain (no `anki-original-size`).
    pub async fn legacy_post(&self, path: &str, body: Vec<u8>) -> Response {
        let response = self
            .http
            .post(format!("{}/{path}", self.base))
            .header(
                "content-type",
                format!("multipart/form-data; boundary={BOUNDARY}"),
            )
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        if status == 200 {
            assert!(
                response.headers().get("anki-original-size").is_none(),
                "legacy answers are plain"
            );
        }
        let body = response.bytes().await.unwrap().to_vec();
        Response { status, body }
    }

    /// A collection call as 2.1.50 sends it: gzip `data`, `c=1`, `k`, `s`.
    pub async fn legacy_call(
        &self,
        method: &str,
        key: &str,
        session: &str,
        data: Value,
    ) -> Response {
        let data = gzip(data.to_string().as_bytes());
        let mut parts: Vec<(&str, &[u8])> = vec![("data", &data), ("c", b"1")];
        if !key.is_empty() {
            parts.push(("k", key.as_bytes()));
            parts.push(("s", session.as_bytes()));
        }
        self.legacy_post(&format!("sync/{method}"), multipart(&parts))
            .await
    }

    /// A collection call whose `data` is already gzipped (e.g. a full upload), in session `s`.
    pub async fn legacy_call_bytes(&self, method: &str, key: &str, gzipped: &[u8]) -> Response {
        self.legacy_post(
            &format!("sync/{method}"),
            multipart(&[
                ("data", gzipped),
                ("c", b"1"),
                ("k", key.as_bytes()),
                ("s", b"s"),
            ]),
        )
        .await
    }

    /// A legacy `hostKey` with the password `secret`; returns the key.
    pub async fn legacy_login(&self, user: &str) -> String {
        let answer = self
            .legacy_call("hostKey", "", "", json!({"u": user, "p": "secret"}))
            .await;
        assert_eq!(answer.status, 200, "{}", answer.text());
        answer.json()["key"].as_str().unwrap().to_string()
    }
}
