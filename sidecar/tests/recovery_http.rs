//! Recovery of damaged per-user files, seen through the sync API (issue 11, defect 3 and the
//! recovery path for every per-user file; docs/operations.md, "Recovery of per-user files").

mod common;

use common::TestApp;
use common::sync::basic_notetype_id;
use serde_json::json;

/// A first media upload on a full disk left `media.db` at 0 bytes; every `meta` then answered
/// 500 ("no such table") for ever, and the client never got past it.
#[tokio::test]
async fn meta_survives_an_empty_media_db_and_lists_the_files_on_disk() {
    let app = TestApp::start().await;
    let user = app.add_user("emptymedia", true);
    let key = app.login_key("emptymedia").await;
    assert_eq!(app.meta(&key).await.status, 200);
    let dir = app.user_dir(user);
    std::fs::create_dir_all(dir.join("media")).unwrap();
    std::fs::write(dir.join("media").join("kept.png"), b"png bytes").unwrap();
    std::fs::write(dir.join("media.db"), b"").unwrap();

    let answer = app.meta(&key).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let media_usn = answer.json()["media_usn"].as_i64().unwrap();
    assert!(media_usn > 0);
    let changes = app.media_changes(&key, 0).await.json();
    assert_eq!(changes["data"][0][0], "kept.png");
    assert_eq!(changes["data"][0][1], media_usn);
    let sanity = app.media_sanity(&key, 1).await.json();
    assert_eq!(sanity["data"], "OK");
}

/// A damaged collection is moved aside and replaced: meta answers with a new schema time
/// (the client full-syncs) and an empty server (the client offers to upload).
#[tokio::test]
async fn meta_replaces_a_damaged_collection_and_the_client_is_sent_to_a_full_sync() {
    let app = TestApp::start().await;
    let user = app.add_user("badcol", true);
    let key = app.login_key("badcol").await;
    let before = app.meta(&key).await.json();
    let dir = app.user_dir(user);
    std::fs::write(dir.join("collection.anki2"), vec![0x5a; 64 * 1024]).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(5));

    let answer = app.meta(&key).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let after = answer.json();
    assert_eq!(after["empty"], true);
    assert_ne!(after["scm"], before["scm"]);
    let kept: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|name| name.starts_with("collection.anki2.corrupt-"))
        // The damaged file's write-ahead log and index go aside with it.
        .filter(|name| !name.ends_with("-wal") && !name.ends_with("-shm"))
        .collect();
    assert_eq!(kept.len(), 1);
    let metrics = TestApp::send(app.internal_request(reqwest::Method::GET, "/metrics")).await;
    assert!(
        metrics
            .text()
            .contains("sidecar_storage_recoveries_total{file=\"collection\"}"),
        "{}",
        metrics.text()
    );
}

/// Damage that meta's cheap checks cannot see (pages in the middle of the file) surfaces in
/// the middle of a sync: the collection is replaced right away, so the next meta sends the
/// client to a full sync instead of failing at the same place for ever.
#[tokio::test]
async fn corruption_found_during_a_sync_replaces_the_collection() {
    use std::io::{Seek, SeekFrom, Write};

    let app = TestApp::start().await;
    let user = app.add_user("midsync", true);
    let key = app.login_key("midsync").await;
    let before = app.meta(&key).await.json();
    app.start_sync(&key, "s1", 0, true).await;
    let basic = basic_notetype_id(&app.apply_no_changes(&key, "s1").await);

    // Every page after the first (the header and the schema) becomes noise.
    let path = app.user_dir(user).join("collection.anki2");
    let size = std::fs::metadata(&path).unwrap().len();
    let mut file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.seek(SeekFrom::Start(4096)).unwrap();
    file.write_all(&vec![0xa5u8; (size - 4096) as usize])
        .unwrap();
    file.sync_all().unwrap();
    drop(file);

    let chunk = json!({
        "done": true,
        "notes": [[1700000000100i64, "guid-1", basic, 1700000100, -1, "", "front\u{1f}back", "", "", 0, ""]],
        "cards": [[1700000000200i64, 1700000000100i64, 1, 0, 1700000100, -1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, "{}"]],
    });
    let applied = app.apply_chunk(&key, "s1", json!(chunk)).await;
    assert_eq!(applied.status, 500, "{}", applied.text());
    // Replaced by the failing call itself, before any meta.
    let kept = std::fs::read_dir(app.user_dir(user))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|name| name.starts_with("collection.anki2.corrupt-"))
        .filter(|name| !name.ends_with("-wal") && !name.ends_with("-shm"))
        .count();
    assert_eq!(kept, 1);

    let after = app.meta(&key).await;
    assert_eq!(after.status, 200, "{}", after.text());
    let after = after.json();
    assert_eq!(after["empty"], true);
    assert_ne!(after["scm"], before["scm"]);
}
