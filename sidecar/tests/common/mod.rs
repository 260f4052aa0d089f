//! Test harness: a sidecar on port 0 over a temporary Django-shaped SQLite database, and one
//! protocol client for it. `TestApp` starts the server and creates users; the v11 transport
//! (zstd bodies, the `anki-sync` header, `anki-original-size`) is handled here and nowhere
//! else. The calls themselves are grouped by family:
//! - `sync`: login aside, the collection calls (meta, start … finish, full upload/download);
//! - `media`: the `/msync/` calls;
//! - `internal`: the internal API with the bearer token (imports, admin);
//! - `legacy`: the multipart transport of sync versions 8–10;
//! - `stored`: reading what the server stored on disk, as a test checks it;
//! - `packages`: `.apkg` packages built in the tests.
#![allow(dead_code)]

pub mod internal;
pub mod legacy;
pub mod media;
pub mod packages;
pub mod stored;
pub mod sync;

use std::path::PathBuf;

use anki_sidecar::config::Settings;
use anki_sidecar::server;
use clap::Parser;
use serde_json::Value;

/// `secret`, hashed by Django 5.2's PBKDF2PasswordHasher with 1000 iterations (kept low so
/// the tests stay fast; the hasher reads the count from the string).
pub const SECRET_HASH: &str =
    "pbkdf2_sha256$1000$fixedsalt0123456$LtDxXBUkRZQftI9lcNBk4rG26Gphvp7JAPmBY3fMsG4=";

/// Django's own DDL for `auth_user` on SQLite, as `manage.py migrate` creates it.
const AUTH_USER_DDL: &str = r#"CREATE TABLE "auth_user" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "password" varchar(128) NOT NULL, "last_login" datetime NULL, "is_superuser" bool NOT NULL, "username" varchar(150) NOT NULL UNIQUE, "last_name" varchar(150) NOT NULL, "email" varchar(254) NOT NULL, "is_staff" bool NOT NULL, "is_active" bool NOT NULL, "date_joined" datetime NOT NULL, "first_name" varchar(150) NOT NULL)"#;

#[derive(Parser)]
struct TestCli {
    #[command(flatten)]
    settings: Settings,
}

pub struct TestApp {
    pub base: String,
    pub internal: String,
    pub token: String,
    pub dir: tempfile::TempDir,
    /// The data folder (`dir/data`, or the shared one of a cluster node).
    pub data_dir: PathBuf,
    pub http: reqwest::Client,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Response {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|err| {
            panic!("not JSON ({err}): {}", String::from_utf8_lossy(&self.body))
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl TestApp {
    pub async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// Starts a server with extra command-line settings, e.g. `["--max-body-mb", "1"]`.
    pub async fn start_with(extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db_path = dir.path().join("db.sqlite3");
        {
            let conn = rusqlite::Connection::open(&db_path).unwrap();
            conn.execute_batch(AUTH_USER_DDL).unwrap();
        }
        let token = "test-internal-token".to_string();
        let data_dir: PathBuf = dir.path().join("data");
        let mut args = vec![
            "test".to_string(),
            format!("--database-url=sqlite:///{}", db_path.display()),
            format!("--data-dir={}", data_dir.display()),
            format!("--internal-token={token}"),
            "--public-addr=127.0.0.1:0".into(),
            "--internal-addr=127.0.0.1:0".into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        Self::launch(dir, data_dir, token, args).await
    }

    /// Starts a cluster-mode node on Django's database `database_url` (PostgreSQL) and the
    /// shared `data_dir`.
    pub async fn start_node(database_url: &str, data_dir: &std::path::Path, node: &str) -> Self {
        Self::start_node_with(database_url, data_dir, node, &[]).await
    }

    /// [`Self::start_node`] with extra command-line settings.
    pub async fn start_node_with(
        database_url: &str,
        data_dir: &std::path::Path,
        node: &str,
        extra: &[&str],
    ) -> Self {
        let token = "test-internal-token".to_string();
        let mut args = vec![
            "test".to_string(),
            format!("--database-url={database_url}"),
            format!("--data-dir={}", data_dir.display()),
            format!("--internal-token={token}"),
            format!("--node-id={node}"),
            "--public-addr=127.0.0.1:0".into(),
            "--internal-addr=127.0.0.1:0".into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        Self::launch(tempfile::tempdir().unwrap(), data_dir.into(), token, args).await
    }

    async fn launch(
        dir: tempfile::TempDir,
        data_dir: PathBuf,
        token: String,
        args: Vec<String>,
    ) -> Self {
        let settings = TestCli::parse_from(args).settings;
        let state = server::build_state(settings).await.expect("server state");
        let public = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let internal = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", public.local_addr().unwrap());
        let internal_base = format!("http://{}", internal.local_addr().unwrap());
        let (sender, receiver) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(server::launch_with_listeners(
            state,
            public,
            internal,
            async move {
                let _ = receiver.await;
            },
        ));
        Self {
            base,
            internal: internal_base,
            token,
            dir,
            data_dir,
            http: reqwest::Client::new(),
            shutdown: Some(sender),
        }
    }

    pub fn db(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(self.dir.path().join("db.sqlite3")).unwrap()
    }

    /// Inserts a Django user whose password is `secret`; returns its id.
    pub fn add_user(&self, username: &str, active: bool) -> i64 {
        let conn = self.db();
        conn.execute(
            "INSERT INTO auth_user (password, is_superuser, username, last_name, email, is_staff, \
             is_active, date_joined, first_name) VALUES (?1, 0, ?2, '', '', 0, ?3, '2026-01-01', '')",
            rusqlite::params![SECRET_HASH, username, active],
        )
        .unwrap();
        conn.last_insert_rowid()
    }

    pub fn user_dir(&self, user_id: i64) -> PathBuf {
        self.data_dir.join("users").join(user_id.to_string())
    }

    /// Sends a raw v11 request: `header` is the `anki-sync` value (None: no header), `body`
    /// is sent as is.
    pub async fn raw(&self, method: &str, header: Option<String>, body: Vec<u8>) -> Response {
        self.raw_path(&format!("sync/{method}"), header, body).await
    }

    async fn raw_path(&self, path: &str, header: Option<String>, body: Vec<u8>) -> Response {
        self.raw_path_with(path, header, &[], body).await
    }

    /// The one place a v11 request is sent and its answer decoded: `extra` are more request
    /// headers; a 200 answer must carry `anki-original-size` and is zstd-decoded.
    async fn raw_path_with(
        &self,
        path: &str,
        header: Option<String>,
        extra: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Response {
        let mut request = self.http.post(format!("{}/{path}", self.base)).body(body);
        if let Some(header) = header {
            request = request.header("anki-sync", header);
        }
        for (name, value) in extra {
            request = request.header(*name, *value);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let original_size = response
            .headers()
            .get("anki-original-size")
            .map(|v| v.to_str().unwrap().parse::<usize>().unwrap());
        let bytes = response.bytes().await.unwrap().to_vec();
        let body = if status == 200 {
            let size = original_size.expect("200 responses carry anki-original-size");
            let decoded = zstd::decode_all(&bytes[..]).unwrap();
            assert_eq!(decoded.len(), size);
            decoded
        } else {
            bytes
        };
        Response { status, body }
    }

    /// A raw `/msync/` request.
    pub async fn raw_media(&self, method: &str, header: Option<String>, body: Vec<u8>) -> Response {
        self.raw_path(&format!("msync/{method}"), header, body)
            .await
    }

    pub async fn call_media(&self, method: &str, key: &str, body: Value) -> Response {
        let compressed = zstd::encode_all(body.to_string().as_bytes(), 0).unwrap();
        self.raw_media(method, Some(Self::header(key, "media")), compressed)
            .await
    }

    /// A POST to the internal listener with a raw body; `token` None sends no bearer token.
    pub fn internal_post(
        &self,
        path: &str,
        token: Option<&str>,
        body: Vec<u8>,
    ) -> reqwest::RequestBuilder {
        let request = self
            .http
            .post(format!("{}{path}", self.internal))
            .header("content-type", "application/octet-stream")
            .body(body);
        match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// A GET on the public listener (e.g. `/health`); the body is kept as sent.
    pub async fn public_get(&self, path: &str) -> Response {
        Self::send(self.http.get(format!("{}{path}", self.base))).await
    }

    /// The `host:port` of the public listener, for tests that speak raw TCP.
    pub fn public_address(&self) -> String {
        self.base.trim_start_matches("http://").to_string()
    }

    /// Sends a request built elsewhere; the body is kept as sent (internal answers are not zstd).
    pub async fn send(request: reqwest::RequestBuilder) -> Response {
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let body = response.bytes().await.unwrap().to_vec();
        Response { status, body }
    }

    pub fn header(key: &str, session: &str) -> String {
        serde_json::json!({"v": 11, "k": key, "c": "test,1", "s": session}).to_string()
    }

    /// A well-formed call with a zstd JSON body.
    pub async fn call(&self, method: &str, key: &str, session: &str, body: Value) -> Response {
        let compressed = zstd::encode_all(body.to_string().as_bytes(), 0).unwrap();
        self.raw(method, Some(Self::header(key, session)), compressed)
            .await
    }

    pub async fn login(&self, username: &str, password: &str) -> Response {
        self.call(
            "hostKey",
            "",
            "login",
            serde_json::json!({"u": username, "p": password}),
        )
        .await
    }

    /// A login as if from `ip` (the test servers trust `X-Real-IP`).
    pub async fn login_from(&self, ip: &str, username: &str, password: &str) -> Response {
        let body = serde_json::json!({"u": username, "p": password}).to_string();
        self.raw_path_with(
            "sync/hostKey",
            Some(Self::header("", "login")),
            &[("x-real-ip", ip)],
            zstd::encode_all(body.as_bytes(), 0).unwrap(),
        )
        .await
    }

    pub async fn login_key(&self, username: &str) -> String {
        let response = self.login(username, "secret").await;
        assert_eq!(response.status, 200, "{}", response.text());
        response.json()["key"].as_str().unwrap().to_string()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(sender) = self.shutdown.take() {
            let _ = sender.send(());
        }
    }
}
