//! One log line per sync attempt, for operators (docs/operations.md, "Logs and metrics").
//!
//! Every kind of sync ends in `SyncLine::emit`, so the line has one format:
//!
//! ```text
//! sync kind=normal outcome=committed user_id=42 ip=203.0.113.7 client=26.09.3,29bb700b,linux
//!      usn_before=17 usn_after=18 received=cards:3,notes:2,... sent=cards:0,... ms=412
//! ```
//!
//! Handlers take a `ClientTag` (the client's IP from the configured source and its version
//! from the `anki-sync` header) and fill in the rest when the attempt ends.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::Path;
use std::time::Instant;

/// Longest client version string logged; the rest is cut.
const CLIENT_VERSION_MAX: usize = 64;

/// Who is syncing: never rejects a request, it only describes it for the log.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientTag {
    pub ip: Option<IpAddr>,
    /// The `c` of the `anki-sync` header, reduced to characters safe in a log line.
    pub client: String,
}

impl ClientTag {
    /// The tag of a client at `ip` whose `anki-sync` header names `client_version`.
    pub fn new(ip: Option<IpAddr>, client_version: &str) -> Self {
        Self {
            ip,
            client: log_safe(client_version),
        }
    }
}

/// Keeps what a version string is made of, so a client cannot forge fields or lines.
fn log_safe(raw: &str) -> String {
    raw.chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | ',' | '_' | '-' | '+' | ':'))
        .take(CLIENT_VERSION_MAX)
        .collect()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Normal,
    FullUpload,
    FullDownload,
    Media,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Normal => "normal",
            Kind::FullUpload => "full_upload",
            Kind::FullDownload => "full_download",
            Kind::Media => "media",
        }
    }
}

/// Counts as `name:value` pairs, e.g. `cards:3,notes:2`.
#[derive(Clone, Debug, Default)]
pub struct Counts(Vec<(&'static str, u64)>);

impl Counts {
    pub fn with(mut self, name: &'static str, value: impl TryInto<u64>) -> Self {
        self.0.push((name, value.try_into().unwrap_or(u64::MAX)));
        self
    }

    fn render(&self) -> String {
        let mut out = String::new();
        for (i, (name, value)) in self.0.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "{name}:{value}");
        }
        if out.is_empty() { "-".into() } else { out }
    }
}

pub struct SyncLine<'a> {
    pub kind: Kind,
    pub user_id: i64,
    pub client: &'a ClientTag,
    pub outcome: &'a str,
    pub usn_before: Option<i64>,
    pub usn_after: Option<i64>,
    pub received: Counts,
    pub sent: Counts,
    pub started: Instant,
}

impl SyncLine<'_> {
    pub fn emit(&self) {
        let show = |usn: Option<i64>| usn.map_or_else(|| "-".to_string(), |u| u.to_string());
        let ip = self
            .client
            .ip
            .map_or_else(|| "-".to_string(), |ip| ip.to_string());
        let client = if self.client.client.is_empty() {
            "-"
        } else {
            &self.client.client
        };
        // Outcomes are our own words; spaces become underscores so that every field is one
        // `key=value` token.
        let outcome = self.outcome.replace(' ', "_");
        tracing::info!(
            target: "sidecar::sync",
            kind = %self.kind.as_str(),
            outcome = %outcome,
            user_id = self.user_id,
            ip = %ip,
            client = %client,
            usn_before = %show(self.usn_before),
            usn_after = %show(self.usn_after),
            received = %self.received.render(),
            sent = %self.sent.render(),
            ms = self.started.elapsed().as_millis() as u64,
            "sync"
        );
    }
}

/// `col.usn` of a collection file, if it can be read; for the log only.
pub fn collection_usn(path: &Path) -> Option<i64> {
    if !path.exists() {
        return None;
    }
    let conn =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .ok()?;
    conn.busy_timeout(std::time::Duration::from_secs(5)).ok()?;
    crate::collection::col_row::col(&conn)
        .usn()
        .ok()
        .map(i64::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_versions_cannot_forge_fields() {
        assert_eq!(log_safe("26.09.3,29bb700b,linux"), "26.09.3,29bb700b,linux");
        assert_eq!(log_safe("x ok=1\nsync kind=evil"), "xok1synckindevil");
        assert_eq!(log_safe(&"9".repeat(500)).len(), CLIENT_VERSION_MAX);
    }

    #[test]
    fn counts_render_as_name_value_pairs() {
        let counts = Counts::default().with("cards", 3usize).with("notes", 2i32);
        assert_eq!(counts.render(), "cards:3,notes:2");
        assert_eq!(Counts::default().render(), "-");
        assert_eq!(
            Counts::default().with("bad", -1i64).render(),
            format!("bad:{}", u64::MAX)
        );
    }
}
