//! Rows and objects whose values don't fit the client's types are refused with a 400, and the
//! open sync is rolled back, so nothing reaches the user's other devices (issue 11, defect 6).

mod common;

use common::TestApp;
use serde_json::{Value, json};

fn pad() -> Value {
    json!({"_pad": null})
}

/// The stored collection as it is on disk: the file and its write-ahead log.
fn collection_bytes(app: &TestApp, user: i64) -> Vec<u8> {
    let dir = app.user_dir(user);
    let mut bytes = std::fs::read(dir.join("collection.anki2")).unwrap();
    if let Ok(wal) = std::fs::read(dir.join("collection.anki2-wal")) {
        bytes.extend(wal);
    }
    bytes
}

fn count(app: &TestApp, user: i64, table: &str) -> i64 {
    // Opened as the server opens it, so that closing does not checkpoint the log into the
    // file and change its bytes.
    let conn = anki_sidecar::collection::sqlite::open_collection(
        &app.user_dir(user).join("collection.anki2"),
    )
    .unwrap();
    conn.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |row| {
        row.get(0)
    })
    .unwrap()
}

/// Opens a sync that has already stored something (a tag, a note and a card), so that a
/// rollback is visible. Returns the Basic notetype, as the server sent it.
async fn open_sync_with_changes(app: &TestApp, key: &str, session: &str) -> Value {
    let start = app
        .call(
            "start",
            key,
            session,
            json!({"minUsn": 0, "lnewer": true, "graves": null}),
        )
        .await;
    assert_eq!(start.status, 200, "{}", start.text());
    let changes = app
        .call(
            "applyChanges",
            key,
            session,
            json!({"changes": {"models": [], "decks": [[], []], "tags": ["planted"]}}),
        )
        .await;
    assert_eq!(changes.status, 200, "{}", changes.text());
    let basic = changes.json()["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|model| model["name"] == "Basic")
        .cloned()
        .expect("the stock Basic notetype");
    assert_eq!(app.call("chunk", key, session, pad()).await.status, 200);
    let good = app
        .call(
            "applyChunk",
            key,
            session,
            json!({"chunk": {"done": false, "notes": [note_row(&basic)], "cards": [card_row()]}}),
        )
        .await;
    assert_eq!(good.status, 200, "{}", good.text());
    basic
}

fn note_row(basic: &Value) -> Value {
    json!([
        1700000000100i64,
        "guid-1",
        basic["id"],
        1700000100,
        -1,
        "",
        "front\u{1f}back",
        "",
        "",
        0,
        ""
    ])
}

fn card_row() -> Value {
    json!([
        1700000000200i64,
        1700000000100i64,
        1,
        0,
        1700000100,
        -1,
        0,
        0,
        1,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        ""
    ])
}

fn with(mut row: Value, index: usize, value: Value) -> Value {
    row[index] = value;
    row
}

/// Sends `method` with `body` inside a sync that already stored data, and checks the answer
/// is a 400, the sync is over, and the collection is byte-identical to before `start`.
async fn assert_refused_and_rolled_back(method: &str, body: impl Fn(&Value) -> Value) {
    let app = TestApp::start().await;
    let alice = app.add_user("alice", true);
    let key = app.login_key("alice").await;
    let meta = app
        .call("meta", &key, "m", json!({"v": 11, "cv": "x"}))
        .await;
    assert_eq!(meta.status, 200);
    let before = collection_bytes(&app, alice);

    let basic = open_sync_with_changes(&app, &key, "s").await;
    let refused = app.call(method, &key, "s", body(&basic)).await;
    assert_eq!(refused.status, 400, "{method}: {}", refused.text());
    // The error ended the sync and discarded what it had stored.
    assert_eq!(app.call("finish", &key, "s", pad()).await.status, 409);
    assert_eq!(collection_bytes(&app, alice), before, "{method}");
    assert_eq!(count(&app, alice, "cards"), 0);
    assert_eq!(count(&app, alice, "notes"), 0);

    // Another device then syncs normally and receives nothing planted.
    let start = app
        .call(
            "start",
            &key,
            "b",
            json!({"minUsn": 0, "lnewer": false, "graves": null}),
        )
        .await;
    assert_eq!(start.status, 200);
    let changes = app
        .call(
            "applyChanges",
            &key,
            "b",
            json!({"changes": {"models": [], "decks": [[], []], "tags": []}}),
        )
        .await
        .json();
    assert!(
        !changes["tags"]
            .as_array()
            .unwrap()
            .contains(&json!("planted"))
    );
    assert_eq!(
        app.call("chunk", &key, "b", pad()).await.json(),
        json!({"done": true})
    );
}

#[tokio::test]
async fn the_poisoned_card_from_the_report_is_refused_and_rolled_back() {
    assert_refused_and_rolled_back("applyChunk", |_| {
        let poisoned = with(
            with(with(card_row(), 3, json!(70000)), 8, json!(1i64 << 40)),
            16,
            json!(300),
        );
        json!({"chunk": {"done": true, "cards": [with(poisoned, 0, json!(1700000000300i64))]}})
    })
    .await;
}

#[tokio::test]
async fn a_card_id_of_true_is_refused() {
    assert_refused_and_rolled_back(
        "applyChunk",
        |_| json!({"chunk": {"done": true, "cards": [with(card_row(), 0, json!(true))]}}),
    )
    .await;
}

#[tokio::test]
async fn a_twelve_column_note_is_refused() {
    assert_refused_and_rolled_back("applyChunk", |basic| {
        let mut row = note_row(basic);
        row.as_array_mut().unwrap().push(json!(""));
        json!({"chunk": {"done": true, "notes": [row]}})
    })
    .await;
}

#[tokio::test]
async fn a_revlog_entry_with_an_out_of_range_ease_is_refused() {
    assert_refused_and_rolled_back("applyChunk", |_| {
        json!({"chunk": {"done": true, "revlog": [[1700000000500i64, 1700000000200i64, -1, 256, 1, 0, 2500, 100, 1]]}})
    })
    .await;
}

#[tokio::test]
async fn a_grave_id_of_true_is_refused() {
    assert_refused_and_rolled_back(
        "applyGraves",
        |_| json!({"chunk": {"cards": [true], "notes": [], "decks": []}}),
    )
    .await;
}

#[tokio::test]
async fn a_notetype_with_an_out_of_range_sort_field_is_refused() {
    assert_refused_and_rolled_back("applyChanges", |basic| {
        let mut notetype = basic.clone();
        notetype["sortf"] = json!(70000);
        notetype["mod"] = json!(1900000000);
        json!({"changes": {"models": [notetype], "decks": [[], []], "tags": []}})
    })
    .await;
}

#[tokio::test]
async fn a_deck_with_a_string_collapsed_flag_is_refused() {
    assert_refused_and_rolled_back("applyChanges", |_| {
        let deck = json!({
            "id": 5, "mod": 1900000000, "name": "Bad", "usn": -1, "collapsed": "yes",
            "dyn": 0, "conf": 1, "desc": "", "lrnToday": [0, 0], "revToday": [0, 0],
            "newToday": [0, 0], "timeToday": [0, 0]
        });
        json!({"changes": {"models": [], "decks": [[deck], []], "tags": []}})
    })
    .await;
}

#[tokio::test]
async fn legacy_string_graves_in_start_still_work_and_bad_ones_are_refused() {
    let app = TestApp::start().await;
    let alice = app.add_user("alice", true);
    let key = app.login_key("alice").await;
    let ok = app
        .call(
            "start",
            &key,
            "s",
            json!({"minUsn": 0, "lnewer": false, "graves": {"cards": ["11"], "notes": [12], "decks": []}}),
        )
        .await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(app.call("abort", &key, "s", pad()).await.status, 200);
    let before = collection_bytes(&app, alice);
    for graves in [
        json!({"cards": [13, true], "notes": [], "decks": []}),
        json!({"cards": [], "notes": [1.5], "decks": []}),
        json!({"cards": [], "notes": [], "decks": ["x"]}),
    ] {
        let refused = app
            .call(
                "start",
                &key,
                "s2",
                json!({"minUsn": 0, "lnewer": false, "graves": graves}),
            )
            .await;
        assert_eq!(refused.status, 400, "{graves}: {}", refused.text());
        assert_eq!(app.call("chunk", &key, "s2", pad()).await.status, 409);
        assert_eq!(collection_bytes(&app, alice), before);
        assert_eq!(count(&app, alice, "graves"), 0);
    }
}
