//! The internal API (the second listener, bearer token): imports and the admin endpoints.

use serde_json::Value;

use super::{Response, TestApp};

pub fn imports_path(user: i64) -> String {
    format!("/internal/v1/users/{user}/imports")
}

impl TestApp {
    /// A request to the internal listener carrying the bearer token.
    pub fn internal_request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.internal))
            .bearer_auth(&self.token)
    }

    /// An internal call without a body; the answer and its JSON (or its text as a JSON
    /// string when it is not JSON).
    pub async fn internal_json(&self, method: reqwest::Method, path: &str) -> (u16, Value) {
        let response = Self::send(self.internal_request(method, path)).await;
        let text = response.text();
        (
            response.status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// An internal POST of a JSON body; the answer must be JSON.
    pub async fn internal_post_json(&self, path: &str, body: Value) -> (u16, Value) {
        let response = Self::send(
            self.internal_request(reqwest::Method::POST, path)
                .json(&body),
        )
        .await;
        (response.status, response.json())
    }

    /// An internal GET that must answer 200 with JSON.
    pub async fn internal_get_json(&self, path: &str) -> Value {
        let response = Self::send(self.internal_request(reqwest::Method::GET, path)).await;
        assert_eq!(response.status, 200);
        response.json()
    }

    /// Pushes a package to the user's imports.
    pub async fn import(&self, user: i64, package: Vec<u8>) -> Response {
        Self::send(self.internal_post(&imports_path(user), Some(&self.token), package)).await
    }

    /// Pushes a package in the background, for an import that is to wait; its answer comes
    /// with the task.
    pub fn spawn_import(&self, user: i64, package: Vec<u8>) -> tokio::task::JoinHandle<Response> {
        let request = self.internal_post(&imports_path(user), Some(&self.token), package);
        tokio::spawn(Self::send(request))
    }

    /// Pushes a package that must be accepted; returns the summary.
    pub async fn import_ok(&self, user: i64, package: Vec<u8>) -> Value {
        let response = self.import(user, package).await;
        assert_eq!(response.status, 200, "{}", response.text());
        response.json()
    }

    /// Pushes a package under an `Idempotency-Key`.
    pub async fn import_keyed(&self, user: i64, package: Vec<u8>, key: &str) -> Response {
        let request = self
            .internal_post(&imports_path(user), Some(&self.token), package)
            .header("Idempotency-Key", key);
        Self::send(request).await
    }
}
