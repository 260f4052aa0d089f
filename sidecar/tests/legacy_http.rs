//! The legacy transport (sync versions 8–10: multipart, gzip or raw `data`, plain answers) at
//! HTTP level, as Anki 2.1.50–2.1.56 send it. The real clients are in tests/e2e.

mod common;

use common::TestApp;
use common::legacy::{gzip, multipart};
use common::sync::basic_notetype_id;
use serde_json::{Value, json};

#[tokio::test]
async fn gzip_and_raw_data_parts_are_both_read() {
    let app = TestApp::start().await;
    app.add_user("alice", true);
    // gzip, as in every collection call of the legacy clients.
    let key = app.legacy_login("alice").await;
    assert!(!key.is_empty());
    let wrong = app
        .legacy_call("hostKey", "", "", json!({"u": "alice", "p": "nope"}))
        .await;
    assert_eq!(wrong.status, 403);

    // Raw (`c=0`), as media calls send it.
    let data = json!({"v": 10, "cv": "anki,2.1.50 (abc),lin"}).to_string();
    let raw = app
        .legacy_post(
            "sync/meta",
            multipart(&[
                ("data", data.as_bytes()),
                ("c", b"0"),
                ("k", key.as_bytes()),
                ("s", b"abcdefghij"),
            ]),
        )
        .await;
    assert_eq!(raw.status, 200, "{}", raw.text());
    let meta = raw.json();
    assert_eq!(meta["cont"], true);
    assert_eq!(meta["usn"], 0);
    assert_eq!(meta["empty"], true);
    // The same answer through gzip.
    let gz = app
        .legacy_call("meta", &key, "abcdefghij", json!({"v": 10, "cv": "x"}))
        .await;
    assert_eq!(gz.json()["scm"], meta["scm"]);
    // And a v11 client still gets zstd with its header.
    let v11 = app.meta(&key).await;
    assert_eq!(v11.json()["scm"], meta["scm"]);
}

#[tokio::test]
async fn a_missing_data_part_means_an_empty_object() {
    let app = TestApp::start().await;
    app.add_user("alice", true);
    let key = app.legacy_login("alice").await;
    // AnkiDroid sends downloads without `data`: the raw schema-11 file comes back.
    let download = app
        .legacy_post(
            "sync/download",
            multipart(&[("k", key.as_bytes()), ("s", b"s")]),
        )
        .await;
    assert_eq!(download.status, 200, "{}", download.text());
    assert!(download.body.starts_with(b"SQLite format 3\0"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.anki2");
    std::fs::write(&path, &download.body).unwrap();
    let ver: i64 = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row("SELECT ver FROM col", [], |row| row.get(0))
        .unwrap();
    assert_eq!(ver, 11);
    // An empty `data` part is the same as none.
    let abort = app
        .legacy_post(
            "sync/abort",
            multipart(&[("data", b""), ("k", key.as_bytes()), ("s", b"s")]),
        )
        .await;
    assert_eq!(abort.status, 200);
    assert_eq!(abort.text(), "null");
    // `meta` without data has no version: the client is told it is too old (501).
    let meta = app
        .legacy_post("sync/meta", multipart(&[("k", key.as_bytes())]))
        .await;
    assert_eq!(meta.status, 501);
}

#[tokio::test]
async fn broken_requests_get_a_clean_4xx() {
    // Caps of the JSON family (every call but login and the uploads), as for v11.
    let app = TestApp::start_with(&["--json-max-body-mb", "1"]).await;
    app.add_user("alice", true);
    let key = app.legacy_login("alice").await;

    // A multipart body that ends in the middle of a part.
    let mut truncated = multipart(&[("data", b"{}"), ("k", key.as_bytes())]);
    truncated.truncate(truncated.len() - 20);
    assert_eq!(app.legacy_post("sync/abort", truncated).await.status, 400);
    // No boundary at all.
    let response = app
        .http
        .post(format!("{}/sync/abort", app.base))
        .header("content-type", "multipart/form-data")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    // `c=1` but the data is not gzip.
    let bad_gzip = app
        .legacy_post(
            "sync/meta",
            multipart(&[("data", b"{\"v\":10}"), ("c", b"1"), ("k", key.as_bytes())]),
        )
        .await;
    assert_eq!(bad_gzip.status, 400, "{}", bad_gzip.text());
    assert!(bad_gzip.text().contains("gzip"));
    // A part over the body cap (1 MiB here) is refused while it is read.
    let big = vec![b'x'; 1024 * 1024 + 10];
    let oversized = app
        .legacy_post(
            "sync/applyChunk",
            multipart(&[("data", &big), ("c", b"0"), ("k", key.as_bytes())]),
        )
        .await;
    assert_eq!(oversized.status, 413);
    // gzip that inflates past the uncompressed cap stops at the cap (`meta` reads its body
    // without an open sync; `applyChunk` would answer 409 before reading it).
    app.add_user("bob", true);
    let key = app.legacy_login("bob").await;
    let bomb = gzip(&vec![b' '; 3 * 1024 * 1024]);
    assert!(bomb.len() < 64 * 1024);
    let inflated = app
        .legacy_post(
            "sync/meta",
            multipart(&[("data", &bomb), ("c", b"1"), ("k", key.as_bytes())]),
        )
        .await;
    assert_eq!(inflated.status, 413);
    // A legacy request with a revoked or unknown key is a 403, like v11.
    let unknown = app
        .legacy_call("meta", "0123456789abcdef", "s", json!({"v": 10}))
        .await;
    assert_eq!(unknown.status, 403);
}

#[tokio::test]
async fn a_legacy_normal_sync_with_v10_due_counts_commits() {
    let app = TestApp::start().await;
    let alice = app.add_user("alice", true);
    let key = app.legacy_login("alice").await;
    let s = "legacysess";
    let meta = app
        .legacy_call("meta", &key, s, json!({"v": 10, "cv": "x"}))
        .await;
    assert_eq!(meta.json()["cont"], true);
    // Legacy clients send their graves inside `start`.
    let start = app
        .legacy_call(
            "start",
            &key,
            s,
            json!({"minUsn": 0, "lnewer": true, "graves": {"cards": [], "notes": [], "decks": []}}),
        )
        .await;
    assert_eq!(start.status, 200, "{}", start.text());
    let changes = app
        .legacy_call(
            "applyChanges",
            &key,
            s,
            json!({"changes": {"models": [], "decks": [[], []], "tags": ["legacy"]}}),
        )
        .await
        .json();
    let notetype = basic_notetype_id(&changes);
    let models = changes["models"].as_array().unwrap().len();
    let decks = changes["decks"][0].as_array().unwrap().len();
    let dconf = changes["decks"][1].as_array().unwrap().len();
    assert_eq!(
        app.legacy_call("chunk", &key, s, json!({})).await.json()["done"],
        true
    );
    let chunk = json!({
        "done": true,
        "notes": [[1700000000100i64, "guid-1", notetype, 1700000100, -1, "", "front\u{1f}back", "", "", 0, ""]],
        "cards": [[1700000000200i64, 1700000000100i64, 1, 0, 1700000100, -1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, "{}"]],
    });
    let applied = app
        .legacy_call("applyChunk", &key, s, json!({"chunk": chunk}))
        .await;
    assert_eq!(applied.status, 200, "{}", applied.text());
    // v10 clients put real due counts (new, learning, review) first; v11 clients send zeros.
    let sanity = app
        .legacy_call(
            "sanityCheck2",
            &key,
            s,
            json!({"client": [[1, 0, 0], 1, 1, 0, 0, models, decks, dconf]}),
        )
        .await;
    assert_eq!(sanity.status, 200);
    assert_eq!(sanity.json()["status"], "ok", "{}", sanity.text());
    // `finish` answers a bare number.
    let finish = app.legacy_call("finish", &key, s, json!({})).await;
    assert_eq!(finish.status, 200);
    let modified: i64 = finish.text().parse().expect("a bare number");
    assert!(modified > 0);
    let conn = rusqlite::Connection::open(app.user_dir(alice).join("collection.anki2")).unwrap();
    let notes: i64 = conn
        .query_row("SELECT COUNT(*) FROM notes", [], |row| row.get(0))
        .unwrap();
    assert_eq!(notes, 1);
}

#[tokio::test]
async fn a_legacy_full_upload_answers_ok() {
    let app = TestApp::start().await;
    app.add_user("alice", true);
    let key = app.legacy_login("alice").await;
    let download = app.legacy_call("download", &key, "s", json!({})).await;
    assert_eq!(download.status, 200);
    let upload = app
        .legacy_call_bytes("upload", &key, &gzip(&download.body))
        .await;
    assert_eq!(upload.status, 200);
    assert_eq!(upload.text(), "OK");
    let garbage = app
        .legacy_call_bytes("upload", &key, &gzip(b"not a collection"))
        .await;
    assert_eq!(garbage.status, 200);
    assert_ne!(garbage.text(), "OK");
}

#[tokio::test]
async fn a_v8_client_is_told_it_cannot_sync_a_v2_scheduler_collection() {
    let app = TestApp::start().await;
    app.add_user("alice", true);
    let key = app.legacy_login("alice").await;
    let meta = app
        .legacy_call("meta", &key, "s", json!({"v": 8, "cv": "x"}))
        .await;
    assert_eq!(meta.status, 200);
    let meta = meta.json();
    assert_eq!(meta["cont"], false);
    assert_eq!(meta["msg"], "Your client does not support the v2 scheduler");
    let v9 = app
        .legacy_call("meta", &key, "s", json!({"v": 9, "cv": "x"}))
        .await;
    assert_eq!(v9.json()["cont"], true);
}

#[tokio::test]
async fn legacy_media_begins_with_a_get_and_continues_with_sk() {
    let app = TestApp::start().await;
    app.add_user("alice", true);
    let key = app.legacy_login("alice").await;
    let begin = app
        .http
        .get(format!(
            "{}/msync/begin?k={key}&v=anki%2C2.1.50%20%28abc%29%2Clin",
            app.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(begin.status().as_u16(), 200);
    assert!(begin.headers().get("anki-original-size").is_none());
    let begin: Value = serde_json::from_slice(&begin.bytes().await.unwrap()).unwrap();
    assert_eq!(begin, json!({"data": {"usn": 0, "sk": key}, "err": ""}));
    let sk = begin["data"]["sk"].as_str().unwrap();

    let changes = app
        .legacy_post(
            "msync/mediaChanges",
            multipart(&[("data", br#"{"lastUsn":0}"#), ("sk", sk.as_bytes())]),
        )
        .await;
    assert_eq!(changes.status, 200, "{}", changes.text());
    assert_eq!(changes.json(), json!({"data": [], "err": ""}));
    let sanity = app
        .legacy_post(
            "msync/mediaSanity",
            multipart(&[("data", br#"{"local":0}"#), ("sk", sk.as_bytes())]),
        )
        .await;
    assert_eq!(sanity.json(), json!({"data": "OK", "err": ""}));
    // A GET begin with a bad key is refused like any other call.
    let bad = app
        .http
        .get(format!("{}/msync/begin?k=nope&v=x", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status().as_u16(), 403);
}

/// A raw (`c=0`) upload far past the size a `data` part is kept in memory: it is spooled to an
/// unnamed temporary file, installed whole, and leaves no file behind in the data folder.
#[tokio::test]
async fn a_large_legacy_upload_is_spooled_and_installed_whole() {
    let app = TestApp::start().await;
    let user_id = app.add_user("alice", true);
    let key = app.legacy_login("alice").await;
    let download = app.legacy_call("download", &key, "s", json!({})).await;
    assert_eq!(download.status, 200);

    // The downloaded collection with one note whose field is 3 MiB of varied text.
    let scratch = tempfile::tempdir().unwrap();
    let path = scratch.path().join("collection.anki2");
    std::fs::write(&path, &download.body).unwrap();
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let field: String = (0..3 * 1024 * 1024)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            char::from(b'a' + (state >> 59) as u8 % 26)
        })
        .collect();
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        let mid: i64 = conn
            .query_row("SELECT id FROM notetypes LIMIT 1", [], |row| row.get(0))
            .or_else(|_| {
                let models: String =
                    conn.query_row("SELECT models FROM col", [], |row| row.get(0))?;
                let models: Value = serde_json::from_str(&models).unwrap();
                let first = models.as_object().unwrap().keys().next().unwrap().clone();
                Ok::<i64, rusqlite::Error>(first.parse().unwrap())
            })
            .unwrap();
        conn.execute(
            "INSERT INTO notes VALUES (1700000000000, 'bigfield01', ?1, 1700000000, -1, '', \
             ?2, 'front', 0, 0, '')",
            rusqlite::params![mid, format!("front\u{1f}{field}")],
        )
        .unwrap();
    }
    let raw = std::fs::read(&path).unwrap();
    assert!(raw.len() > 3 * 1024 * 1024);

    let upload = app
        .legacy_post(
            "sync/upload",
            multipart(&[
                ("data", &raw),
                ("c", b"0"),
                ("k", key.as_bytes()),
                ("s", b"s"),
            ]),
        )
        .await;
    assert_eq!(upload.status, 200, "{}", upload.text());
    assert_eq!(upload.text(), "OK");

    let stored =
        rusqlite::Connection::open(app.user_dir(user_id).join("collection.anki2")).unwrap();
    let flds: String = stored
        .query_row(
            "SELECT flds FROM notes WHERE guid = 'bigfield01'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(flds, format!("front\u{1f}{field}"));
    let users = app.user_dir(user_id).parent().unwrap().to_path_buf();
    let leftovers: Vec<_> = std::fs::read_dir(&users)
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .filter(|name| name.to_string_lossy().starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
