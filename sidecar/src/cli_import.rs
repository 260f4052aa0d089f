//! `anki-sidecar import`: pushes an `.apkg` into a user's collection through the internal API,
//! for admins and scripts. It talks HTTP like Django does, so it works against a running
//! sidecar on this or another machine and never touches the data folder itself.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;
use reqwest::StatusCode;

#[derive(Debug, Clone, Args)]
pub struct ImportArgs {
    /// The Django user: a numeric id, or a username.
    #[arg(long)]
    pub user: String,

    /// The `.apkg` file to import.
    pub package: PathBuf,

    /// Base URL of the internal listener. Default: http://<SIDECAR_INTERNAL_ADDR>.
    #[arg(long, env = "SIDECAR_INTERNAL_URL")]
    pub url: Option<String>,

    /// Makes a retried push a no-op that returns the first answer.
    #[arg(long)]
    pub idempotency_key: Option<String>,
}

/// Where the internal API is, from `--url` or the listener address the server binds.
pub fn base_url(url: Option<&str>, internal_addr: std::net::SocketAddr) -> String {
    match url {
        Some(url) => url.trim_end_matches('/').to_string(),
        None => {
            // A wildcard bind address is not something to connect to.
            let host = if internal_addr.ip().is_unspecified() {
                "127.0.0.1".to_string()
            } else {
                internal_addr.ip().to_string()
            };
            let host = if internal_addr.is_ipv6() && !internal_addr.ip().is_unspecified() {
                format!("[{host}]")
            } else {
                host
            };
            format!("http://{host}:{}", internal_addr.port())
        }
    }
}

/// A numeric `--user` is an id; anything else is a username to look up.
pub fn parse_user(user: &str) -> UserRef {
    match user.parse::<i64>() {
        Ok(id) if id > 0 => UserRef::Id(id),
        _ => UserRef::Username(user.to_string()),
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum UserRef {
    Id(i64),
    Username(String),
}

fn explain(status: StatusCode, body: &str, what: &str) -> anyhow::Error {
    let message = body.trim();
    match status {
        StatusCode::FORBIDDEN | StatusCode::UNAUTHORIZED => anyhow::anyhow!(
            "{what}: the internal token was refused ({status}): {message}. \
             Set SIDECAR_INTERNAL_TOKEN to the server's token."
        ),
        StatusCode::NOT_FOUND => anyhow::anyhow!("{what}: not found ({status}): {message}"),
        _ => anyhow::anyhow!("{what}: the server answered {status}: {message}"),
    }
}

async fn send(request: reqwest::RequestBuilder, base: &str) -> anyhow::Result<reqwest::Response> {
    request.send().await.map_err(|err| {
        if err.is_connect() {
            anyhow::anyhow!(
                "cannot reach the sidecar's internal API at {base}: {err}. \
                 Is the sidecar running, and is --url (or SIDECAR_INTERNAL_ADDR) right?"
            )
        } else {
            anyhow::anyhow!("request to {base} failed: {err}")
        }
    })
}

/// Sends `request` and reads the answer as JSON. A failure status is explained as the failure
/// of `what`; an answer that is not JSON is the error `unexpected`.
async fn send_for_json(
    request: reqwest::RequestBuilder,
    base: &str,
    what: &str,
    unexpected: &'static str,
) -> anyhow::Result<serde_json::Value> {
    let response = send(request, base).await?;
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    if !status.is_success() {
        return Err(explain(status, &text, what));
    }
    serde_json::from_str(&text).context(unexpected)
}

async fn resolve_user(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    user: UserRef,
) -> anyhow::Result<i64> {
    let username = match user {
        UserRef::Id(id) => return Ok(id),
        UserRef::Username(username) => username,
    };
    let mut url = reqwest::Url::parse(base).context("invalid --url")?;
    url.path_segments_mut()
        .map_err(|()| anyhow::anyhow!("invalid --url {base}"))?
        .extend(["internal", "v1", "users", "by-username", &username]);
    let request = client.get(url).bearer_auth(token);
    let what = format!("looking up user {username:?}");
    let answer =
        send_for_json(request, base, &what, "unexpected answer to the user lookup").await?;
    answer
        .get("user_id")
        .and_then(serde_json::Value::as_i64)
        .context("unexpected answer to the user lookup")
}

/// Runs the import and prints the server's summary.
pub async fn run(
    args: ImportArgs,
    internal_addr: std::net::SocketAddr,
    token: Option<String>,
) -> anyhow::Result<()> {
    let Some(token) = token.filter(|token| !token.is_empty()) else {
        bail!("no internal token: set SIDECAR_INTERNAL_TOKEN (or pass --internal-token)");
    };
    let base = base_url(args.url.as_deref(), internal_addr);
    let file = tokio::fs::File::open(&args.package)
        .await
        .with_context(|| format!("cannot open {}", args.package.display()))?;
    let size = file.metadata().await?.len();
    let client = reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(10))
        .build()?;
    let user_id = resolve_user(&client, &base, &token, parse_user(&args.user)).await?;

    // Streamed: a deck with media can be large.
    let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(file));
    let mut request = client
        .post(format!("{base}/internal/v1/users/{user_id}/imports"))
        .bearer_auth(&token)
        .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
        .header(reqwest::header::CONTENT_LENGTH, size)
        .body(body);
    if let Some(key) = &args.idempotency_key {
        request = request.header("Idempotency-Key", key);
    }
    let what = format!("importing {}", args.package.display());
    let summary = send_for_json(request, &base, &what, "the server's answer is not JSON").await?;
    println!("{}", serde_json::to_string_pretty(&summary)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_users_are_ids_and_the_rest_usernames() {
        assert_eq!(parse_user("42"), UserRef::Id(42));
        assert_eq!(parse_user("alice"), UserRef::Username("alice".into()));
        assert_eq!(parse_user("-3"), UserRef::Username("-3".into()));
    }

    #[test]
    fn the_default_url_follows_the_internal_listener() {
        assert_eq!(
            base_url(None, "127.0.0.1:8081".parse().unwrap()),
            "http://127.0.0.1:8081"
        );
        assert_eq!(
            base_url(None, "0.0.0.0:9000".parse().unwrap()),
            "http://127.0.0.1:9000"
        );
        assert_eq!(
            base_url(Some("http://h:1/"), "127.0.0.1:8081".parse().unwrap()),
            "http://h:1"
        );
    }
}
