//! The sync data of users deleted in Django: listed, and removed only once the user is gone.

mod common;

use common::TestApp;
use serde_json::json;

#[tokio::test]
async fn a_deleted_users_folder_and_keys_are_listed_and_removed_but_a_live_user_is_refused() {
    let app = TestApp::start().await;
    let alice = app.add_user("alice", true);
    let bob = app.add_user("bob", true);
    for name in ["alice", "bob"] {
        let key = app.login_key(name).await;
        app.meta(&key).await;
    }
    assert!(app.user_dir(alice).join("collection.anki2").exists());
    let (status, listed) = app
        .internal_json(reqwest::Method::GET, "/internal/v1/deleted-users")
        .await;
    assert_eq!(status, 200);
    assert_eq!(listed, json!({"users": []}));

    // A live user's data is never removed here.
    let (status, refused) = app
        .internal_json(
            reqwest::Method::DELETE,
            &format!("/internal/v1/deleted-users/{bob}"),
        )
        .await;
    assert_eq!(status, 409, "{refused}");
    assert!(app.user_dir(bob).exists());

    // Alice is deleted in Django (her row goes; the sidecar's rows and folder stay).
    app.db()
        .execute("DELETE FROM auth_user WHERE id = ?1", [alice])
        .unwrap();
    let (_, listed) = app
        .internal_json(reqwest::Method::GET, "/internal/v1/deleted-users")
        .await;
    assert_eq!(
        listed,
        json!({"users": [{"user_id": alice, "folder": true, "host_keys": 1}]})
    );

    let (status, removed) = app
        .internal_json(
            reqwest::Method::DELETE,
            &format!("/internal/v1/deleted-users/{alice}"),
        )
        .await;
    assert_eq!(status, 200, "{removed}");
    assert_eq!(
        removed,
        json!({"user_id": alice, "folder_removed": true, "host_keys_removed": 1})
    );
    assert!(!app.user_dir(alice).exists());
    assert!(app.user_dir(bob).exists());
    let (_, listed) = app
        .internal_json(reqwest::Method::GET, "/internal/v1/deleted-users")
        .await;
    assert_eq!(listed, json!({"users": []}));

    // Removing again is harmless.
    let (status, again) = app
        .internal_json(
            reqwest::Method::DELETE,
            &format!("/internal/v1/deleted-users/{alice}"),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(again["folder_removed"], false);
}

#[tokio::test]
async fn a_reset_can_keep_only_the_media_files() {
    let app = TestApp::start().await;
    let carol = app.add_user("carol", true);
    let key = app.login_key("carol").await;
    app.meta(&key).await;
    let dir = app.user_dir(carol);
    std::fs::create_dir_all(dir.join("media")).unwrap();
    std::fs::write(dir.join("media/a.png"), b"png").unwrap();
    std::fs::write(dir.join("media.db"), b"a broken media database").unwrap();
    std::fs::write(dir.join(".download-stale"), b"left by a crash").unwrap();
    // A reset must work even when the collection itself is broken.
    std::fs::write(dir.join("collection.anki2"), b"not a database").unwrap();

    let (status, report) = app
        .internal_post_json(
            &format!("/internal/v1/users/{carol}/reset"),
            json!({"dry_run": false, "media": "keep_files"}),
        )
        .await;
    assert_eq!(status, 200);

    assert_eq!(report["media"], "keep_files");
    assert_eq!(report["keep_media"], true);
    assert_eq!(report["leftovers"], 1);
    assert!(!dir.join("collection.anki2").exists());
    assert!(!dir.join("media.db").exists());
    assert!(!dir.join(".download-stale").exists());
    assert!(dir.join("media/a.png").exists());
}
