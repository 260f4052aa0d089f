//! Normal sync driven by a scripted client at HTTP level: session rules and atomicity.

mod common;

use common::TestApp;
use serde_json::{Value, json};

fn pad() -> Value {
    json!({"_pad": null})
}

async fn begin(app: &TestApp, key: &str, session: &str, min_usn: i64, lnewer: bool) -> Value {
    let start = app
        .call(
            "start",
            key,
            session,
            json!({"minUsn": min_usn, "lnewer": lnewer, "graves": null}),
        )
        .await;
    assert_eq!(start.status, 200, "{}", start.text());
    start.json()
}

fn basic_notetype_id(changes: &Value) -> i64 {
    changes["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|model| model["name"] == "Basic")
        .map(|model| model["id"].as_i64().unwrap())
        .expect("the stock Basic notetype")
}

fn note_and_card(notetype_id: i64) -> Value {
    json!({
        "done": true,
        "notes": [[1700000000100i64, "guid-1", notetype_id, 1700000100, -1, " tag ", "front\u{1f}back", "", "", 0, ""]],
        "cards": [[1700000000200i64, 1700000000100i64, 1, 0, 1700000100, -1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, "{}"]],
    })
}

fn count(app: &TestApp, user: i64, table: &str) -> i64 {
    let conn = rusqlite::Connection::open(app.user_dir(user).join("collection.anki2")).unwrap();
    conn.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |row| {
        row.get(0)
    })
    .unwrap()
}

#[tokio::test]
async fn stateful_calls_need_the_session_that_started() {
    let app = TestApp::start().await;
    app.add_user("alice", true);
    let key = app.login_key("alice").await;
    assert_eq!(app.call("chunk", &key, "s1", pad()).await.status, 409);
    begin(&app, &key, "s1", 0, false).await;
    assert_eq!(app.call("chunk", &key, "other", pad()).await.status, 409);
    assert_eq!(app.call("chunk", &key, "s1", pad()).await.status, 200);
    // abort ignores the key and can be repeated.
    for _ in 0..3 {
        let abort = app.call("abort", &key, "whatever", pad()).await;
        assert_eq!(abort.status, 200);
        assert_eq!(abort.json(), Value::Null);
    }
    assert_eq!(app.call("chunk", &key, "s1", pad()).await.status, 409);
    // Unknown keys in argument-less calls are refused, as on the official server.
    begin(&app, &key, "s2", 0, false).await;
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
    assert_eq!(
        app.call("meta", &key, "m", json!({"v": 11, "cv": "x"}))
            .await
            .status,
        200
    );
    let before = std::fs::read(app.user_dir(alice).join("collection.anki2")).unwrap();

    begin(&app, &key, "s1", 0, true).await;
    let changes = app
        .call(
            "applyChanges",
            &key,
            "s1",
            json!({"changes": {"models": [], "decks": [[], []], "tags": ["fresh"]}}),
        )
        .await;
    assert_eq!(changes.status, 200);
    let notetype = basic_notetype_id(&changes.json());
    assert_eq!(
        app.call("chunk", &key, "s1", pad()).await.json()["done"],
        true
    );
    let applied = app
        .call(
            "applyChunk",
            &key,
            "s1",
            json!({"chunk": note_and_card(notetype)}),
        )
        .await;
    assert_eq!(applied.status, 200, "{}", applied.text());
    // The client vanishes here. A later meta (any device) ends the sync.
    assert_eq!(
        app.call("meta", &key, "m2", json!({"v": 11, "cv": "x"}))
            .await
            .status,
        200
    );
    let after = std::fs::read(app.user_dir(alice).join("collection.anki2")).unwrap();
    assert_eq!(before, after, "the file is byte-identical to before start");
    assert_eq!(count(&app, alice, "notes"), 0);
}

#[tokio::test]
async fn a_complete_sync_commits_with_the_server_usn() {
    let app = TestApp::start().await;
    let alice = app.add_user("alice", true);
    let key = app.login_key("alice").await;
    let meta = app
        .call("meta", &key, "s", json!({"v": 11, "cv": "x"}))
        .await
        .json();
    assert_eq!(meta["usn"], 0);

    begin(&app, &key, "s", 0, true).await;
    let changes = app
        .call("applyChanges", &key, "s", json!({"changes": {"models": [], "decks": [[], []], "tags": ["fresh"], "conf": {"curDeck": 1, "schedVer": 2}, "crt": 1700000000}}))
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
    assert_eq!(
        app.call("chunk", &key, "s", pad()).await.json(),
        json!({"done": true})
    );
    assert_eq!(
        app.call(
            "applyChunk",
            &key,
            "s",
            json!({"chunk": note_and_card(notetype)})
        )
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
    let finish = app.call("finish", &key, "s", pad()).await;
    assert_eq!(finish.status, 200);
    let modified = finish.json().as_i64().unwrap();

    let meta = app
        .call("meta", &key, "s2", json!({"v": 11, "cv": "x"}))
        .await
        .json();
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
    begin(&app, &key, "b", 0, false).await;
    let answer = app
        .call(
            "applyChanges",
            &key,
            "b",
            json!({"changes": {"models": [], "decks": [[], []], "tags": []}}),
        )
        .await
        .json();
    assert_eq!(answer["crt"], 1700000000);
    assert!(answer["tags"].as_array().unwrap().contains(&json!("fresh")));
    let chunk = app.call("chunk", &key, "b", pad()).await.json();
    assert_eq!(chunk["notes"][0][1], "guid-1");
    assert_eq!(chunk["notes"][0][7], "", "sfld goes out as a string");
    assert_eq!(chunk["cards"][0][5], 0);
}

#[tokio::test]
async fn a_failed_sanity_check_rolls_back() {
    let app = TestApp::start().await;
    let alice = app.add_user("alice", true);
    let key = app.login_key("alice").await;
    begin(&app, &key, "s", 0, true).await;
    let changes = app
        .call(
            "applyChanges",
            &key,
            "s",
            json!({"changes": {"models": [], "decks": [[], []], "tags": []}}),
        )
        .await
        .json();
    let notetype = basic_notetype_id(&changes);
    app.call("chunk", &key, "s", pad()).await;
    app.call(
        "applyChunk",
        &key,
        "s",
        json!({"chunk": note_and_card(notetype)}),
    )
    .await;
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
    assert_eq!(app.call("finish", &key, "s", pad()).await.status, 409);
    assert_eq!(count(&app, alice, "notes"), 0);
}

#[tokio::test]
async fn notes_with_a_missing_notetype_are_refused_with_400() {
    let app = TestApp::start().await;
    let alice = app.add_user("alice", true);
    let key = app.login_key("alice").await;
    begin(&app, &key, "s", 0, true).await;
    app.call(
        "applyChanges",
        &key,
        "s",
        json!({"changes": {"models": [], "decks": [[], []], "tags": []}}),
    )
    .await;
    app.call("chunk", &key, "s", pad()).await;
    let refused = app
        .call("applyChunk", &key, "s", json!({"chunk": note_and_card(42)}))
        .await;
    assert_eq!(refused.status, 400);
    // The error ended the sync.
    assert_eq!(app.call("finish", &key, "s", pad()).await.status, 409);
    assert_eq!(count(&app, alice, "cards"), 0);
}

#[tokio::test]
async fn an_idle_sync_is_rolled_back_after_the_timeout() {
    let app = TestApp::start_with(&["--sync-idle-timeout-secs=1"]).await;
    let alice = app.add_user("alice", true);
    let key = app.login_key("alice").await;
    begin(&app, &key, "s", 0, true).await;
    let changes = app
        .call(
            "applyChanges",
            &key,
            "s",
            json!({"changes": {"models": [], "decks": [[], []], "tags": ["idle"]}}),
        )
        .await
        .json();
    let notetype = basic_notetype_id(&changes);
    app.call("chunk", &key, "s", pad()).await;
    app.call(
        "applyChunk",
        &key,
        "s",
        json!({"chunk": note_and_card(notetype)}),
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert_eq!(app.call("finish", &key, "s", pad()).await.status, 409);
    assert_eq!(count(&app, alice, "notes"), 0);
}
