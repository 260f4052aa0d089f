//! Media sync at HTTP level: protocol shapes, and hostile uploads that must change nothing.

mod common;

use common::TestApp;
use common::media::media_zip;
use common::packages::schema18_fixture_path;
use common::stored::all_files;
use serde_json::{Value, json};
use sha1::{Digest, Sha1};

#[tokio::test]
async fn upload_list_download_and_sanity() {
    let app = TestApp::start().await;
    let alice = app.add_user("alice", true);
    let key = app.login_key("alice").await;

    let begin = app.media_begin(&key, "anki,test").await;
    assert_eq!(
        begin.json(),
        json!({"data": {"usn": 0, "sk": key}, "err": ""})
    );

    let zip = media_zip(
        &json!([["a.png", "0"], ["b c.mp3", "1"], ["never.jpg", null]]),
        &[("0", b"first"), ("1", b"second")],
        false,
    );
    let answer = app.upload_media_zip(&key, zip).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    // Three entries processed; two changed something, so the usn advanced twice.
    assert_eq!(answer.json(), json!({"data": [3, 2], "err": ""}));

    // The same content again changes nothing and keeps the usn.
    let again = app
        .upload_media_zip(
            &key,
            media_zip(&json!([["a.png", "0"]]), &[("0", b"first")], false),
        )
        .await;
    assert_eq!(again.json()["data"], json!([1, 2]));

    let deleted = app
        .upload_media_zip(&key, media_zip(&json!([["b c.mp3", ""]]), &[], false))
        .await;
    assert_eq!(deleted.json()["data"], json!([1, 3]));

    let changes = app.media_changes(&key, 0).await.json();
    let sha1_first = hex::encode(Sha1::digest(b"first"));
    assert_eq!(
        changes,
        json!({"data": [["a.png", 1, sha1_first], ["b c.mp3", 3, ""]], "err": ""})
    );
    let later = app.media_changes(&key, 3).await.json();
    assert_eq!(later, json!({"data": [], "err": ""}));

    let meta = app.meta(&key).await.json();
    assert_eq!(meta["media_usn"], 3);

    let download = app.download_files(&key, json!(["a.png"])).await;
    assert_eq!(download.status, 200);
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(download.body)).unwrap();
    let mut meta_text = String::new();
    std::io::Read::read_to_string(&mut archive.by_name("_meta").unwrap(), &mut meta_text).unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&meta_text).unwrap(),
        json!({"0": "a.png"})
    );
    let mut content = Vec::new();
    std::io::Read::read_to_end(&mut archive.by_name("0").unwrap(), &mut content).unwrap();
    assert_eq!(content, b"first");

    let missing = app.download_files(&key, json!(["b c.mp3"])).await;
    assert_eq!(missing.status, 409);
    let names: Vec<String> = (0..26).map(|i| format!("{i}.png")).collect();
    let too_many = app.download_files(&key, json!(names)).await;
    assert_eq!(too_many.status, 400);

    let ok = app.media_sanity(&key, 1).await.json();
    assert_eq!(ok, json!({"data": "OK", "err": ""}));
    let bad = app.media_sanity(&key, 5).await.json();
    assert_eq!(bad, json!({"data": "mediaSanity", "err": ""}));
    assert_eq!(all_files(&app.user_dir(alice).join("media")), vec!["a.png"]);
}

#[tokio::test]
async fn downloads_are_a_prefix_cut_after_the_size_limit() {
    let app = TestApp::start().await;
    app.add_user("alice", true);
    let key = app.login_key("alice").await;
    let big = vec![7u8; 2_000_000];
    let zip = media_zip(
        &json!([["one.bin", "0"], ["two.bin", "1"], ["three.bin", "2"]]),
        &[("0", &big), ("1", &big), ("2", b"small")],
        false,
    );
    assert_eq!(app.upload_media_zip(&key, zip).await.status, 200);
    let download = app
        .download_files(&key, json!(["one.bin", "two.bin", "three.bin"]))
        .await;
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(download.body)).unwrap();
    let mut meta_text = String::new();
    std::io::Read::read_to_string(&mut archive.by_name("_meta").unwrap(), &mut meta_text).unwrap();
    // The second file takes the total past 2.5 MiB, so it is the last one sent.
    assert_eq!(
        serde_json::from_str::<Value>(&meta_text).unwrap(),
        json!({"0": "one.bin", "1": "two.bin"})
    );
}

#[tokio::test]
async fn hostile_uploads_change_nothing_and_good_syncs_still_work() {
    let app = TestApp::start().await;
    let alice = app.add_user("alice", true);
    let key = app.login_key("alice").await;
    let long_name = format!("{}.png", "a".repeat(296));
    let zeros = vec![0u8; 200 * 1024 * 1024];
    let bomb = media_zip(&json!([["bomb.bin", "0"]]), &[("0", &zeros)], true);
    drop(zeros);
    assert!(bomb.len() < 1024 * 1024, "the bomb is small on the wire");

    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "../x",
            media_zip(&json!([["../x", "0"]]), &[("0", b"evil")], false),
        ),
        (
            "a/b",
            media_zip(&json!([["a/b", "0"]]), &[("0", b"evil")], false),
        ),
        (
            "/etc/x",
            media_zip(&json!([["/etc/x", "0"]]), &[("0", b"evil")], false),
        ),
        (
            "NUL byte",
            media_zip(&json!([["x\u{0}y.png", "0"]]), &[("0", b"evil")], false),
        ),
        (
            "300 bytes",
            media_zip(&json!([[long_name, "0"]]), &[("0", b"evil")], false),
        ),
        ("zip bomb", bomb),
        (
            "_meta names a missing member",
            media_zip(&json!([["a.png", "1"]]), &[("0", b"evil")], false),
        ),
        (
            "member not in _meta",
            media_zip(
                &json!([["a.png", "0"]]),
                &[("0", b"ok"), ("1", b"smuggled")],
                false,
            ),
        ),
        ("not a zip", b"PK\x03\x04 but not really".to_vec()),
    ];
    for (name, zip) in cases {
        let response = app.upload_media_zip(&key, zip).await;
        assert!(
            (400..500).contains(&response.status),
            "{name}: got {} {}",
            response.status,
            response.text()
        );
    }
    let user_dir = app.user_dir(alice);
    assert!(
        all_files(&user_dir.join("media")).is_empty(),
        "nothing was written"
    );
    let leftovers: Vec<String> = all_files(&user_dir)
        .into_iter()
        .filter(|path| path != "media.db")
        .collect();
    assert!(leftovers.is_empty(), "no temp files left: {leftovers:?}");
    assert!(!app.dir.path().join("x").exists());

    let good = app
        .upload_media_zip(
            &key,
            media_zip(&json!([["fine.png", "0"]]), &[("0", b"ok")], false),
        )
        .await;
    assert_eq!(good.json()["data"], json!([1, 1]));
}

#[tokio::test]
async fn a_full_upload_keeps_the_servers_media() {
    let app = TestApp::start().await;
    let alice = app.add_user("alice", true);
    let key = app.login_key("alice").await;
    let zip = media_zip(&json!([["kept.png", "0"]]), &[("0", b"keep me")], false);
    assert_eq!(app.upload_media_zip(&key, zip).await.status, 200);

    let collection = std::fs::read(schema18_fixture_path()).unwrap();
    let answer = app.full_upload(&key, &collection).await;
    assert_eq!(answer.text(), "OK");

    let meta = app.meta(&key).await.json();
    assert_eq!(meta["media_usn"], 1);
    let changes = app.media_changes(&key, 0).await.json();
    assert_eq!(changes["data"][0][0], "kept.png");
    assert!(app.user_dir(alice).join("media/kept.png").exists());
}
