//! Login throttling that cannot lock the real user out, bounded login fields, deactivation
//! that revokes keys for good, and 404s for unknown users on the admin endpoints.

mod common;

use std::time::{Duration, Instant};

use common::TestApp;
use serde_json::json;

const ALICE_IP: &str = "198.51.100.10";
const ATTACKER_IP: &str = "203.0.113.66";

#[tokio::test]
async fn an_attacker_on_one_address_throttles_only_that_address() {
    let app = TestApp::start_with(&["--login-max-failures=3", "--ip-header=x-real-ip"]).await;
    app.add_user("alice", true);
    let mut statuses = Vec::new();
    for _ in 0..20 {
        statuses.push(app.login_from(ATTACKER_IP, "alice", "guess").await.status);
    }
    assert_eq!(statuses[..3], [403, 403, 403]);
    assert!(statuses[3..].iter().all(|&s| s == 429), "{statuses:?}");
    // The attacker's address stays throttled, even with the right password...
    assert_eq!(
        app.login_from(ATTACKER_IP, "alice", "secret").await.status,
        429
    );
    assert_eq!(
        app.login_from(ATTACKER_IP, "ALICE", "guess").await.status,
        429
    );
    // ...and alice, from her own address, which never logged in before, gets in.
    let alice = app.login_from(ALICE_IP, "alice", "secret").await;
    assert_eq!(alice.status, 200, "{}", alice.text());
    let key = alice.json()["key"].as_str().unwrap().to_string();
    assert_eq!(app.meta(&key).await.status, 200);
}

#[tokio::test]
async fn an_attack_from_many_addresses_does_not_lock_out_a_known_device() {
    let app = TestApp::start_with(&["--login-max-failures=3", "--ip-header=x-real-ip"]).await;
    app.add_user("alice", true);
    // Alice's device has logged in from her address before.
    assert_eq!(
        app.login_from(ALICE_IP, "alice", "secret").await.status,
        200
    );

    // Forty guesses from twenty addresses: more than the username-wide budget (5 x 3).
    let mut statuses = Vec::new();
    for i in 0..20 {
        let ip = format!("192.0.2.{}", i + 1);
        for _ in 0..2 {
            statuses.push(app.login_from(&ip, "alice", "guess").await.status);
        }
    }
    assert_eq!(statuses.iter().filter(|&&s| s == 403).count(), 15);
    assert!(statuses[15..].iter().all(|&s| s == 429), "{statuses:?}");
    // A further unknown address is throttled for alice; other usernames are not.
    assert_eq!(
        app.login_from("192.0.2.200", "alice", "guess").await.status,
        429
    );
    assert_eq!(
        app.login_from("192.0.2.200", "bob", "guess").await.status,
        403
    );

    // Alice logs in from her address, again and again; her failures there do not add up to
    // the attacker's.
    for _ in 0..2 {
        let alice = app.login_from(ALICE_IP, "alice", "secret").await;
        assert_eq!(alice.status, 200, "{}", alice.text());
    }
    assert_eq!(app.login_from(ALICE_IP, "alice", "typo").await.status, 403);
    assert_eq!(
        app.login_from(ALICE_IP, "alice", "secret").await.status,
        200
    );
}

#[tokio::test]
async fn a_spray_of_usernames_from_one_address_is_throttled_and_bounded() {
    let app = TestApp::start_with(&["--login-max-failures=3", "--ip-header=x-real-ip"]).await;
    app.add_user("alice", true);
    let mut statuses = Vec::new();
    for i in 0..40 {
        let username = format!("random-{i}");
        statuses.push(app.login_from(ATTACKER_IP, &username, "guess").await.status);
    }
    // The address's budget is 5 x 3: after that, nothing more is counted or stored.
    assert!(statuses[..15].iter().all(|&s| s == 403), "{statuses:?}");
    assert!(statuses[15..].iter().all(|&s| s == 429), "{statuses:?}");
    let rows: i64 = app
        .db()
        .query_row("SELECT COUNT(*) FROM sidecar_login_failures", [], |row| {
            row.get(0)
        })
        .unwrap();
    assert_eq!(
        rows,
        1 + 15 * 2,
        "one address row, and a user and a pair row per guess"
    );
    assert_eq!(
        app.login_from(ALICE_IP, "alice", "secret").await.status,
        200
    );
}

#[tokio::test]
async fn oversized_credentials_are_refused_before_storage() {
    let app = TestApp::start().await;
    app.add_user("alice", true);
    let long_name = "u".repeat(151);
    let response = app.login(&long_name, "secret").await;
    assert_eq!(response.status, 400, "{}", response.text());
    assert!(response.text().contains("username longer than 150"));
    assert_eq!(app.login(&"v".repeat(1_000), "secret").await.status, 400);
    let response = app.login("alice", &"p".repeat(4097)).await;
    assert_eq!(response.status, 400, "{}", response.text());
    assert!(response.text().contains("password longer than 4096"));
    let rows: i64 = app
        .db()
        .query_row("SELECT COUNT(*) FROM sidecar_login_failures", [], |row| {
            row.get(0)
        })
        .unwrap();
    assert_eq!(rows, 0, "nothing refused for its size is stored");
    // The longest real username still works, and what is stored about it is bounded.
    assert_eq!(app.login(&"w".repeat(150), "guess").await.status, 403);
    let longest: i64 = app
        .db()
        .query_row(
            "SELECT MAX(LENGTH(subject)) FROM sidecar_login_failures",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert!(longest <= 150 + 40, "{longest}");
    assert_eq!(app.login("alice", "secret").await.status, 200);
}

#[tokio::test]
async fn deactivation_revokes_keys_for_good_on_the_next_request() {
    let app = TestApp::start().await;
    let alice = app.add_user("alice", true);
    let key = app.login_key("alice").await;
    let second = app.login_key("alice").await;
    assert_eq!(app.meta(&key).await.status, 200);

    let set_active = |active: bool| {
        app.db()
            .execute(
                "UPDATE auth_user SET is_active = ?1 WHERE id = ?2",
                rusqlite::params![active, alice],
            )
            .unwrap();
    };
    set_active(false);
    assert_eq!(app.meta(&key).await.status, 403);
    set_active(true);
    // Both devices stay logged out, also the one that made no request while inactive.
    assert_eq!(app.meta(&key).await.status, 403);
    assert_eq!(app.meta(&second).await.status, 403);
    let fresh = app.login_key("alice").await;
    assert_eq!(app.meta(&fresh).await.status, 200);
}

#[tokio::test]
async fn the_sweep_revokes_keys_of_users_deactivated_without_any_request() {
    let app = TestApp::start_with(&["--auth-sweep-secs=1"]).await;
    let alice = app.add_user("alice", true);
    let bob = app.add_user("bob", true);
    let alice_key = app.login_key("alice").await;
    let bob_key = app.login_key("bob").await;
    app.db()
        .execute("UPDATE auth_user SET is_active = 0 WHERE id = ?1", [alice])
        .unwrap();

    // Bounded wait for the sweep: no request of alice's reaches the server meanwhile.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let keys: i64 = app
            .db()
            .query_row(
                "SELECT COUNT(*) FROM sidecar_host_keys WHERE user_id = ?1",
                [alice],
                |row| row.get(0),
            )
            .unwrap();
        if keys == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the sweep never revoked the keys"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    app.db()
        .execute("UPDATE auth_user SET is_active = 1 WHERE id = ?1", [alice])
        .unwrap();
    assert_eq!(app.meta(&alice_key).await.status, 403);
    assert_eq!(
        app.meta(&bob_key).await.status,
        200,
        "active users keep theirs"
    );
    let _ = bob;
}

#[tokio::test]
async fn admin_endpoints_answer_404_for_unknown_users() {
    let app = TestApp::start().await;
    let alice = app.add_user("alice", true);
    let internal = |method: reqwest::Method, path: String| app.internal_request(method, &path);
    for user_id in [alice + 1000, 0, -1] {
        let stats = TestApp::send(internal(
            reqwest::Method::GET,
            format!("/internal/v1/users/{user_id}/stats"),
        ))
        .await;
        assert_eq!(stats.status, 404, "{}", stats.text());
        assert!(stats.text().contains(&format!("no user with id {user_id}")));
        let reset = TestApp::send(
            internal(
                reqwest::Method::POST,
                format!("/internal/v1/users/{user_id}/reset"),
            )
            .json(&json!({"dry_run": false})),
        )
        .await;
        assert_eq!(reset.status, 404, "{}", reset.text());
        let revoke = TestApp::send(internal(
            reqwest::Method::DELETE,
            format!("/internal/v1/users/{user_id}/host-keys"),
        ))
        .await;
        assert_eq!(revoke.status, 404, "{}", revoke.text());
    }
    assert!(!app.user_dir(alice + 1000).exists(), "nothing was created");
    // Known users still get their answers.
    let stats = TestApp::send(internal(
        reqwest::Method::GET,
        format!("/internal/v1/users/{alice}/stats"),
    ))
    .await;
    assert_eq!(stats.status, 200);
    let revoke = TestApp::send(internal(
        reqwest::Method::DELETE,
        format!("/internal/v1/users/{alice}/host-keys"),
    ))
    .await;
    assert_eq!(revoke.status, 200);
    assert_eq!(revoke.json()["revoked"], 0);
}

/// The calls of an open sync do not look their key up again within a few seconds of the
/// lookup at `meta`; a revocation made through the sidecar must still end the sync at its
/// next call.
#[tokio::test]
async fn a_revocation_ends_an_open_sync_at_its_next_call() {
    let app = TestApp::start().await;
    let alice = app.add_user("alice", true);
    app.add_user("bob", true);
    let key = app.login_key("alice").await;
    let other = app.login_key("bob").await;
    app.start_sync(&key, "s1", 0, false).await;
    app.start_sync(&other, "s2", 0, false).await;
    assert_eq!(app.chunk(&key, "s1").await.status, 200);
    assert_eq!(app.chunk(&other, "s2").await.status, 200);

    let revoke = TestApp::send(app.internal_request(
        reqwest::Method::DELETE,
        &format!("/internal/v1/users/{alice}/host-keys"),
    ))
    .await;
    assert_eq!(revoke.status, 200);
    assert_eq!(revoke.json()["revoked"], 1);
    assert_eq!(app.chunk(&key, "s1").await.status, 403);
    // Another user's open sync goes on: the lookup is made again and still finds the key.
    assert_eq!(app.chunk(&other, "s2").await.status, 200);
    assert_eq!(app.meta(&other).await.status, 200);
}

/// A key found dead at `meta` (here: its password changed in Django's table) is deleted,
/// and that deletion voids what the open-sync calls of every key remembered.
#[tokio::test]
async fn a_key_found_dead_is_not_trusted_inside_an_open_sync() {
    let app = TestApp::start().await;
    let alice = app.add_user("alice", true);
    let phone = app.login_key("alice").await;
    let laptop = app.login_key("alice").await;
    app.start_sync(&phone, "s1", 0, false).await;
    assert_eq!(app.chunk(&phone, "s1").await.status, 200);
    app.db()
        .execute(
            "UPDATE auth_user SET password = 'pbkdf2_sha256$1000$other$x' WHERE id = ?1",
            [alice],
        )
        .unwrap();
    // The laptop's meta sees the change and deletes that key; the phone's open sync,
    // remembered moments ago, is looked up again and refused.
    assert_eq!(app.meta(&laptop).await.status, 403);
    assert_eq!(app.chunk(&phone, "s1").await.status, 403);
}

/// The media calls after `msync/begin` take a key verified moments ago; a revocation made
/// through the sidecar must still refuse every one of them at once.
#[tokio::test]
async fn a_revocation_refuses_the_media_calls_after_begin() {
    let app = TestApp::start().await;
    let (alice, key) = alice_in_a_media_sync(&app).await;
    assert_eq!(app.media_sanity(&key, 0).await.status, 200);

    let revoke = TestApp::send(app.internal_request(
        reqwest::Method::DELETE,
        &format!("/internal/v1/users/{alice}/host-keys"),
    ))
    .await;
    assert_eq!(revoke.json()["revoked"], 1);
    assert_eq!(app.media_changes(&key, 0).await.status, 403);
    assert_eq!(app.media_sanity(&key, 0).await.status, 403);
    assert_eq!(app.download_files(&key, json!(["a.png"])).await.status, 403);
    let zip = common::media::media_zip(&json!([["a.png", "0"]]), &[("0", b"x")], false);
    assert_eq!(app.upload_media_zip(&key, zip).await.status, 403);
}

/// `msync/begin` looks its key up even when a media call verified it moments before: a
/// password changed in Django's table ends the device's media sync at its next `begin`, and
/// the key found dead is not trusted by the calls after it either.
#[tokio::test]
async fn media_begin_always_looks_the_key_up() {
    let app = TestApp::start().await;
    let (alice, key) = alice_in_a_media_sync(&app).await;
    app.db()
        .execute(
            "UPDATE auth_user SET password = 'pbkdf2_sha256$1000$other$x' WHERE id = ?1",
            [alice],
        )
        .unwrap();
    assert_eq!(app.media_begin(&key, "anki,test").await.status, 403);
    assert_eq!(app.media_changes(&key, 0).await.status, 403);
}

/// Alice logged in, with a media sync begun and one call after `begin` made: her id and key.
async fn alice_in_a_media_sync(app: &TestApp) -> (i64, String) {
    let alice = app.add_user("alice", true);
    let key = app.login_key("alice").await;
    assert_eq!(app.media_begin(&key, "anki,test").await.status, 200);
    assert_eq!(app.media_changes(&key, 0).await.status, 200);
    (alice, key)
}
