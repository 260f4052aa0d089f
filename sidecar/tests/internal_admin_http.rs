//! The admin part of the internal API: per-user stats and a safe reset.

mod common;

use common::TestApp;
use serde_json::json;

#[tokio::test]
async fn stats_and_reset_follow_the_users_data() {
    let app = TestApp::start().await;
    let alice = app.add_user("alice", true);
    let stats = app
        .internal_get_json(&format!("/internal/v1/users/{alice}/stats"))
        .await;
    assert_eq!(stats["has_collection"], false);
    assert_eq!(stats["devices"], 0);

    let key = app.login_key("alice").await;
    let meta = app.meta(&key).await.json();
    let stats = app
        .internal_get_json(&format!("/internal/v1/users/{alice}/stats"))
        .await;
    assert_eq!(stats["has_collection"], true);
    assert_eq!(stats["cards"], 0);
    assert_eq!(stats["devices"], 1);
    assert!(stats["last_seen"].as_i64().unwrap() > 0);

    // A dry run is the default and changes nothing.
    let (status, report) = app
        .internal_post_json(&format!("/internal/v1/users/{alice}/reset"), json!({}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(report["dry_run"], true);
    assert!(app.user_dir(alice).join("collection.anki2").exists());

    let (status, report) = app
        .internal_post_json(
            &format!("/internal/v1/users/{alice}/reset"),
            json!({"dry_run": false, "keep_media": false}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(report["dry_run"], false);
    assert!(!app.user_dir(alice).join("collection.anki2").exists());
    // The key still works, and the next meta shows a brand-new collection.
    let fresh = app.meta(&key).await.json();
    assert_eq!(fresh["mod"], 0);
    assert_ne!(
        fresh["scm"], meta["scm"],
        "a client with cards is offered a full upload"
    );
}
