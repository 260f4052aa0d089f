//! Normal sync driven by a scripted client at HTTP level: session rules and atomicity.

mod common;

use common::TestApp;
use common::sync::{basic_notetype_id, no_changes};
use serde_json::{Value, json};

fn note_and_card(notetype_id: i64) -> Value {
    json!({
        "done": true,
        "notes": [[1700000000100i64, "guid-1", notetype_id, 1700000100, -1, " tag ", "front\u{1f}back", "", "", 0, ""]],
        "cards": [[1700000000200i64, 1700000000100i64, 1, 0, 1700000100, -1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, "{}"]],
    })
}

#[tokio::test]
async fn stateful_calls_need_the_session_that_started() {
    let app = TestApp::start().await;
    app.add_user("alice", true);
    let key = app.login_key("alice").await;
    assert_eq!(app.chunk(&key, "s1").await.status, 409);
    app.start_sync(&key, "s1", 0, false).await;
    assert_eq!(app.chunk(&key, "other").await.status, 409);
    assert_eq!(app.chunk(&key, "s1").await.status, 200);
    // abort ignores the key and can be repeated.
    for _ in 0..3 {
        let abort = app.abort(&key, "whatever").await;
        assert_eq!(abort.status, 200);
        assert_eq!(abort.json(), Value::Null);
    }
    assert_eq!(app.chunk(&key, "s1").await.status, 409);
    // Unknown keys in argument-less calls are refused, as on the official server.
    app.start_sync(&key, "s2", 0, false).await;
    assert_eq!(
        app.call("chunk", &key, "s2", json!({"x": 1})).await.status,
        400
    );
}

#[tokio::test]
async fn an_interrupted_sync_leaves_the_collection_as_it_was() {
    let app = TestApp::start().await;
    let alice = app.add_user("alice", true);
    let key = app.login_key("alice").await;
    assert_eq!(app.meta_in(&key, "m").await.status, 200);
    let before = std::fs::read(app.user_dir(alice).join("collection.anki2")).unwrap();

    app.start_sync(&key, "s1", 0, true).await;
    let changes = app
        .apply_changes(
            &key,
            "s1",
            json!({"models": [], "decks": [[], []], "tags": ["fresh"]}),
        )
        .await;
    assert_eq!(changes.status, 200);
    let notetype = basic_notetype_id(&changes.json());
    assert_eq!(app.chunk(&key, "s1").await.json()["done"], true);
    let applied = app.apply_chunk(&key, "s1", note_and_card(notetype)).await;
    assert_eq!(applied.status, 200, "{}", applied.text());
    // The client vanishes here. A later meta (any device) ends the sync.
    assert_eq!(app.meta_in(&key, "m2").await.status, 200);
    let after = std::fs::read(app.user_dir(alice).join("collection.anki2")).unwrap();
    assert_eq!(before, after, "the file is byte-identical to before start");
    assert_eq!(app.count_rows(alice, "notes"), 0);
}

#[tokio::test]
async fn a_complete_sync_commits_with_the_server_usn() {
    let app = TestApp::start().await;
    let alice = app.add_user("alice", true);
    let key = app.login_key("alice").await;
    let meta = app.meta(&key).await.json();
    assert_eq!(meta["usn"], 0);

    app.start_sync(&key, "s", 0, true).await;
    let changes = app.apply_changes(&key, "s", json!({"models": [], "decks": [[], []], "tags": ["fresh"], "conf": {"curDeck": 1, "schedVer": 2}, "crt": 1700000000}))
        .await
        .json();
    assert!(
        changes.get("conf").is_none(),
        "the newer client sends config, the server does not"
    );
    let notetype = basic_notetype_id(&changes);
    let models = changes["models"].as_array().unwrap().len() as i64;
    let decks = changes["decks"][0].as_array().unwrap().len() as i64;
    let dconf = changes["decks"][1].as_array().unwrap().len() as i64;
    assert_eq!(app.chunk(&key, "s").await.json(), json!({"done": true}));
    assert_eq!(
        app.apply_chunk(&key, "s", note_and_card(notetype))
            .await
            .status,
        200
    );
    let sanity = app
        .call(
            "sanityCheck2",
            &key,
            "s",
            json!({"client": [[0,0,0], 1, 1, 0, 0, models, decks, dconf]}),
        )
        .await
        .json();
    assert_eq!(sanity["status"], "ok", "{sanity}");
    let finish = app.finish(&key, "s").await;
    assert_eq!(finish.status, 200);
    let modified = finish.json().as_i64().unwrap();

    let meta = app.meta_in(&key, "s2").await.json();
    assert_eq!(meta["mod"], modified);
    assert_eq!(meta["usn"], 1);
    assert_eq!(meta["empty"], false);
    let conn = rusqlite::Connection::open(app.user_dir(alice).join("collection.anki2")).unwrap();
    let (usn, sfld, csum): (i64, String, i64) = conn
        .query_row("SELECT usn, sfld, csum FROM notes", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap();
    assert_eq!((usn, sfld.as_str()), (0, "front"));
    assert_eq!(
        csum,
        i64::from(anki_sidecar::note_text::field_checksum("front"))
    );
    let conf: String = conn
        .query_row("SELECT conf FROM col", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&conf).unwrap(),
        json!({"curDeck": 1, "schedVer": 2})
    );

    // A second device with minUsn 0 receives the note; its card rows carry usn 0.
    app.start_sync(&key, "b", 0, false).await;
    let answer = app.apply_changes(&key, "b", no_changes()).await.json();
    assert_eq!(answer["crt"], 1700000000);
    assert!(answer["tags"].as_array().unwrap().contains(&json!("fresh")));
    let chunk = app.chunk(&key, "b").await.json();
    assert_eq!(chunk["notes"][0][1], "guid-1");
    assert_eq!(chunk["notes"][0][7], "", "sfld goes out as a string");
    assert_eq!(chunk["cards"][0][5], 0);
}

#[tokio::test]
async fn a_failed_sanity_check_rolls_back() {
    let app = TestApp::start().await;
    let alice = app.add_user("alice", true);
    let key = app.login_key("alice").await;
    app.start_sync(&key, "s", 0, true).await;
    let changes = app.apply_changes(&key, "s", no_changes()).await.json();
    let notetype = basic_notetype_id(&changes);
    app.chunk(&key, "s").await;
    app.apply_chunk(&key, "s", note_and_card(notetype)).await;
    let sanity = app
        .call(
            "sanityCheck2",
            &key,
            "s",
            json!({"client": [[0,0,0], 9, 9, 0, 0, 1, 1, 1]}),
        )
        .await
        .json();
    assert_eq!(sanity["status"], "bad");
    assert_eq!(app.finish(&key, "s").await.status, 409);
    assert_eq!(app.count_rows(alice, "notes"), 0);
}

#[tokio::test]
async fn notes_with_a_missing_notetype_are_refused_with_400() {
    let app = TestApp::start().await;
    let alice = app.add_user("alice", true);
    let key = app.login_key("alice").await;
    app.start_sync(&key, "s", 0, true).await;
    app.apply_changes(&key, "s", no_changes()).await;
    app.chunk(&key, "s").await;
    let refused = app.apply_chunk(&key, "s", note_and_card(42)).await;
    assert_eq!(refused.status, 400);
    // The error ended the sync.
    assert_eq!(app.finish(&key, "s").await.status, 409);
    assert_eq!(app.count_rows(alice, "cards"), 0);
}

#[tokio::test]
async fn an_idle_sync_is_rolled_back_after_the_timeout() {
    let app = TestApp::start_with(&["--sync-idle-timeout-secs=1"]).await;
    let alice = app.add_user("alice", true);
    let key = app.login_key("alice").await;
    app.start_sync(&key, "s", 0, true).await;
    let changes = app
        .apply_changes(
            &key,
            "s",
            json!({"models": [], "decks": [[], []], "tags": ["idle"]}),
        )
        .await
        .json();
    let notetype = basic_notetype_id(&changes);
    app.chunk(&key, "s").await;
    app.apply_chunk(&key, "s", note_and_card(notetype)).await;
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert_eq!(app.finish(&key, "s").await.status, 409);
    assert_eq!(app.count_rows(alice, "notes"), 0);
}
