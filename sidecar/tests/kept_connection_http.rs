//! The collection connection kept open between requests never serves a collection that was
//! replaced, reset, downloaded or imported into since it was opened: after each of those
//! paths, `meta` and the next normal sync see the file as it is now.

mod common;

use common::TestApp;
use common::packages::GenPackage;
use common::stored::col_int;
use serde_json::{Value, json};

/// Logs in and runs one complete empty sync, so that the user's connection is kept open
/// afterwards; returns the key and the `meta` answer seen after the sync.
async fn synced_once(app: &TestApp, name: &str) -> (String, Value) {
    let key = app.login_key(name).await;
    app.meta_ok(&key).await;
    full_sync_round(app, &key, "s1").await;
    let meta = app.meta_ok(&key).await;
    (key, meta)
}

/// A complete normal sync by a client that holds nothing and sends nothing.
async fn full_sync_round(app: &TestApp, key: &str, session: &str) {
    let received = app.receive(key, session, 0).await;
    app.finish_sync(key, session, received.counts()).await;
}

/// A schema-11 collection file with the given `usn` and `mod`.
fn collection_with(usn: i64, modified: i64) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("collection.anki2");
    anki_sidecar::collection::schema11::create_new_collection(&path, modified, 1_795_000_000)
        .unwrap();
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute("UPDATE col SET usn = ?1, mod = ?2", [usn, modified])
            .unwrap();
    }
    std::fs::read(&path).unwrap()
}

#[tokio::test]
async fn after_a_full_upload_meta_and_the_next_sync_see_the_uploaded_collection() {
    let app = TestApp::start().await;
    let user = app.add_user("uploader", true);
    let (key, before) = synced_once(&app, "uploader").await;
    assert_eq!(before["usn"], 1);

    let uploaded_mod = 1_800_000_000_000_i64;
    let answer = app
        .full_upload(&key, &collection_with(41, uploaded_mod))
        .await;
    assert_eq!(answer.text(), "OK");

    let meta = app.meta_ok(&key).await;
    assert_eq!(meta["usn"], 41, "meta must read the uploaded file: {meta}");
    assert_eq!(meta["mod"], uploaded_mod);
    // The next sync runs on the uploaded file: its commit takes usn 41 to 42.
    full_sync_round(&app, &key, "s2").await;
    assert_eq!(col_int(&app.collection(user), "usn"), 42);
    assert_eq!(app.meta_ok(&key).await["usn"], 42);
}

#[tokio::test]
async fn after_a_reset_meta_and_the_next_sync_see_an_empty_collection() {
    let app = TestApp::start().await;
    let user = app.add_user("resetme", true);
    let (key, before) = synced_once(&app, "resetme").await;
    assert_eq!(before["usn"], 1);
    assert_ne!(before["mod"], 0);

    let (status, report) = app
        .internal_post_json(
            &format!("/internal/v1/users/{user}/reset"),
            json!({"dry_run": false, "keep_media": false}),
        )
        .await;
    assert_eq!(status, 200, "{report}");

    let meta = app.meta_ok(&key).await;
    assert_eq!(meta["usn"], 0, "meta must read the new collection: {meta}");
    assert_eq!(meta["mod"], 0);
    assert_eq!(meta["empty"], true);
    full_sync_round(&app, &key, "s2").await;
    assert_eq!(col_int(&app.collection(user), "usn"), 1);
}

#[tokio::test]
async fn after_a_full_download_meta_sees_the_advanced_usn() {
    let app = TestApp::start().await;
    let user = app.add_user("downloader", true);
    let (key, before) = synced_once(&app, "downloader").await;
    assert_eq!(before["usn"], 1);

    let download = app.full_download(&key).await;
    assert_eq!(download.status, 200);
    let stored = col_int(&app.collection(user), "usn");
    assert_eq!(stored, 2, "a download advances the usn");
    assert_eq!(app.meta_ok(&key).await["usn"], stored);
}

#[tokio::test]
async fn after_an_import_meta_and_the_next_sync_see_the_imported_notes() {
    let app = TestApp::start().await;
    let user = app.add_user("importer", true);
    let (key, before) = synced_once(&app, "importer").await;
    assert_eq!(before["empty"], true);

    app.import_ok(user, GenPackage::standard().package()).await;

    let meta = app.meta_ok(&key).await;
    assert_eq!(
        meta["empty"], false,
        "meta must see the imported cards: {meta}"
    );
    assert_eq!(meta["mod"], col_int(&app.collection(user), "mod"));
    let received = app.receive(&key, "s2", 0).await;
    assert_eq!(received.notes.len(), 2, "the imported notes are sent");
    let abort = app.abort(&key, "s2").await;
    assert_eq!(abort.status, 200);
}

#[tokio::test]
async fn an_aborted_sync_gives_its_connection_back_without_its_changes() {
    let app = TestApp::start().await;
    let user = app.add_user("aborter", true);
    let (key, before) = synced_once(&app, "aborter").await;
    app.receive(&key, "s2", 0).await;
    let abort = app.abort(&key, "s2").await;
    assert_eq!(abort.status, 200);
    // The connection that held the sync serves the next meta outside any transaction.
    let meta = app.meta_ok(&key).await;
    assert_eq!(meta["usn"], before["usn"]);
    assert_eq!(meta["mod"], before["mod"]);
    // And a new sync can begin its transaction on it.
    full_sync_round(&app, &key, "s3").await;
    assert_eq!(col_int(&app.collection(user), "usn"), 2);
}
