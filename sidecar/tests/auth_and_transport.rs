//! HTTP-level tests of login, host keys and hostile transport input.

mod common;

use common::TestApp;
use serde_json::json;

#[tokio::test]
async fn health_answers_ok() {
    let app = TestApp::start().await;
    let response = app.public_get("/health").await;
    assert_eq!(response.status, 200);
    let body = response.json();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["database"], "ok");
    assert_eq!(body["data_dir"], "ok");
    assert!(
        body.get("node").is_none(),
        "single mode names no node: {body}"
    );
}

#[tokio::test]
async fn single_mode_responses_carry_no_node_header() {
    let app = TestApp::start().await;
    let response = app
        .http
        .get(format!("{}/health", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers().get("x-sidecar-node").is_none());
}

#[tokio::test]
async fn health_names_an_unwritable_data_folder() {
    let app = TestApp::start().await;
    let users = app.dir.path().join("data").join("users");
    std::fs::remove_dir_all(&users).unwrap();
    let response = app.public_get("/health").await;
    assert_eq!(response.status, 503);
    let body = response.json();
    assert_eq!(body["status"], "unavailable");
    assert_eq!(body["database"], "ok");
    assert_eq!(body["data_dir"], "not writable");
}

#[tokio::test]
async fn login_issues_a_key_that_opens_meta() {
    let app = TestApp::start().await;
    app.add_user("alice", true);
    let key = app.login_key("alice").await;
    assert_eq!(key.len(), 64);
    let meta = app.meta_in(&key, "s1").await;
    assert_eq!(meta.status, 200, "{}", meta.text());
    let meta = meta.json();
    assert_eq!(meta["mod"], 0);
    assert_eq!(meta["usn"], 0);
    assert_eq!(meta["empty"], true);
    assert_eq!(meta["cont"], true);
    assert_eq!(meta["hostNum"], 0);
    assert_eq!(meta["media_usn"], 0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(
        (meta["ts"].as_i64().unwrap() - now).abs() < 10,
        "ts is in seconds"
    );
    // Only the hash of the key is stored.
    let stored: String = app
        .db()
        .query_row("SELECT key_hash FROM sidecar_host_keys", [], |row| {
            row.get(0)
        })
        .unwrap();
    assert_ne!(stored, key);
}

#[tokio::test]
async fn bad_credentials_and_inactive_users_get_403() {
    let app = TestApp::start().await;
    app.add_user("alice", true);
    app.add_user("bob", false);
    assert_eq!(app.login("alice", "wrong").await.status, 403);
    assert_eq!(app.login("nobody", "secret").await.status, 403);
    assert_eq!(app.login("bob", "secret").await.status, 403);
}

#[tokio::test]
async fn keys_die_with_a_password_change_or_deactivation() {
    let app = TestApp::start().await;
    let alice = app.add_user("alice", true);
    let carol = app.add_user("carol", true);
    let alice_key = app.login_key("alice").await;
    let carol_key = app.login_key("carol").await;
    let meta = json!({"v": 11, "cv": "test"});
    app.db()
        .execute(
            "UPDATE auth_user SET password = 'pbkdf2_sha256$1000$other$x' WHERE id = ?1",
            [alice],
        )
        .unwrap();
    assert_eq!(
        app.call("meta", &alice_key, "s", meta.clone()).await.status,
        403
    );
    app.db()
        .execute("UPDATE auth_user SET is_active = 0 WHERE id = ?1", [carol])
        .unwrap();
    assert_eq!(
        app.call("meta", &carol_key, "s", meta.clone()).await.status,
        403
    );
    assert_eq!(
        app.call("meta", "not-a-key", "s", meta.clone())
            .await
            .status,
        403
    );
    assert_eq!(app.call("meta", "", "s", meta).await.status, 403);
}

#[tokio::test]
async fn failed_logins_are_throttled() {
    let app = TestApp::start_with(&["--login-max-failures=3"]).await;
    app.add_user("alice", true);
    for _ in 0..3 {
        assert_eq!(app.login("alice", "wrong").await.status, 403);
    }
    // From the address that failed, even the right password waits out the window (other
    // addresses are not affected: see auth_hardening.rs).
    assert_eq!(app.login("alice", "secret").await.status, 429);
    assert_eq!(app.login("ALICE", "wrong").await.status, 429);
}

#[tokio::test]
async fn hostile_transport_input_gets_4xx_and_the_server_keeps_serving() {
    let app = TestApp::start_with(&["--json-max-body-mb=1"]).await;
    app.add_user("alice", true);
    let key = app.login_key("alice").await;
    let header = TestApp::header(&key, "s");
    let meta_body = zstd::encode_all(&br#"{"v":11,"cv":"x"}"#[..], 0).unwrap();
    let cases: Vec<(&str, Option<String>, Vec<u8>, u16)> = vec![
        // Neither v11 nor legacy: the client is told to update (501), never "Check Database".
        ("no header", None, meta_body.clone(), 501),
        (
            "header not JSON",
            Some("{nope".into()),
            meta_body.clone(),
            400,
        ),
        (
            "header missing keys",
            Some(r#"{"v":11,"k":"x"}"#.into()),
            meta_body.clone(),
            400,
        ),
        (
            "version 12",
            Some(json!({"v":12,"k":key,"c":"x","s":"s"}).to_string()),
            meta_body.clone(),
            501,
        ),
        (
            "body not zstd",
            Some(header.clone()),
            b"{\"v\":11}".to_vec(),
            400,
        ),
        (
            "body not JSON",
            Some(header.clone()),
            zstd::encode_all(&b"{{{"[..], 0).unwrap(),
            400,
        ),
        (
            "compressed body too large",
            Some(header.clone()),
            vec![7u8; 2 * 1024 * 1024],
            413,
        ),
        (
            "decompressed body too large",
            Some(header.clone()),
            zstd::encode_all(&vec![b' '; 3 * 1024 * 1024][..], 3).unwrap(),
            413,
        ),
    ];
    for (name, header, body, expected) in cases {
        let response = app.raw("meta", header, body).await;
        assert_eq!(response.status, expected, "{name}: {}", response.text());
    }
    let unknown = app
        .raw("bogus", Some(TestApp::header(&key, "s")), meta_body.clone())
        .await;
    assert_eq!(unknown.status, 400);
    let meta = app.meta(&key).await;
    assert_eq!(meta.status, 200);
    let old = app
        .call("meta", &key, "s", json!({"v": 7, "cv": "x"}))
        .await;
    assert_eq!(old.status, 501);
}

#[tokio::test]
async fn internal_api_requires_the_token() {
    let app = TestApp::start().await;
    let alice = app.add_user("alice", true);
    let key = app.login_key("alice").await;
    let url = format!("{}/internal/v1/users/{alice}/host-keys", app.internal);
    let no_token = app.http.delete(&url).send().await.unwrap();
    assert_eq!(no_token.status(), 403);
    let wrong = app
        .http
        .delete(&url)
        .bearer_auth("nope")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 403);
    // The public listener does not serve the internal API at all.
    let public = app
        .http
        .delete(format!("{}/internal/v1/users/{alice}/host-keys", app.base))
        .bearer_auth(&app.token)
        .send()
        .await
        .unwrap();
    assert_eq!(public.status(), 404);
    let revoked = TestApp::send(app.internal_request(
        reqwest::Method::DELETE,
        &format!("/internal/v1/users/{alice}/host-keys"),
    ))
    .await;
    assert_eq!(revoked.status, 200);
    let meta = app.meta(&key).await;
    assert_eq!(meta.status, 403, "a revoked key is refused");
}

#[tokio::test]
async fn metrics_are_served_on_the_internal_listener_with_the_token() {
    let app = TestApp::start().await;
    app.add_user("alice", true);
    let key = app.login_key("alice").await;
    app.meta(&key).await;
    let url = format!("{}/metrics", app.internal);
    assert_eq!(app.http.get(&url).send().await.unwrap().status(), 403);
    let response = TestApp::send(app.internal_request(reqwest::Method::GET, "/metrics")).await;
    assert_eq!(response.status, 200);
    let text = response.text();
    assert!(text.contains("sidecar_requests_total"), "{text}");
    assert!(text.contains("route=\"sync/meta\""), "{text}");
    let public = app
        .http
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(public.status(), 404);
}
