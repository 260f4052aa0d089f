//! Rows and objects whose values don't fit the client's types are refused with a 400, and the
//! open sync is rolled back, so nothing reaches the user's other devices (issue 11, defect 6).

mod common;

use common::TestApp;
use common::sync::{basic_notetype, no_changes};
use serde_json::{Value, json};

/// Opens a sync that has already stored something (a tag, a note and a card), so that a
/// rollback is visible. Returns the Basic notetype, as the server sent it.
async fn open_sync_with_changes(app: &TestApp, key: &str, session: &str) -> Value {
    app.start_sync(key, session, 0, true).await;
    let changes = app
        .apply_changes(
            key,
            session,
            json!({"models": [], "decks": [[], []], "tags": ["planted"]}),
        )
        .await;
    assert_eq!(changes.status, 200, "{}", changes.text());
    let basic = basic_notetype(&changes.json());
    assert_eq!(app.chunk(key, session).await.status, 200);
    let good = app
        .apply_chunk(
            key,
            session,
            json!({"done": false, "notes": [note_row(&basic)], "cards": [card_row()]}),
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
    let meta = app.meta_in(&key, "m").await;
    assert_eq!(meta.status, 200);
    let before = app.collection_bytes(alice);

    let basic = open_sync_with_changes(&app, &key, "s").await;
    let refused = app.call(method, &key, "s", body(&basic)).await;
    assert_eq!(refused.status, 400, "{method}: {}", refused.text());
    // The error ended the sync and discarded what it had stored.
    assert_eq!(app.finish(&key, "s").await.status, 409);
    assert_eq!(app.collection_bytes(alice), before, "{method}");
    assert_eq!(app.count_rows(alice, "cards"), 0);
    assert_eq!(app.count_rows(alice, "notes"), 0);

    // Another device then syncs normally and receives nothing planted.
    app.start_sync(&key, "b", 0, false).await;
    let changes = app.apply_changes(&key, "b", no_changes()).await.json();
    assert!(
        !changes["tags"]
            .as_array()
            .unwrap()
            .contains(&json!("planted"))
    );
    assert_eq!(app.chunk(&key, "b").await.json(), json!({"done": true}));
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
    assert_eq!(app.abort(&key, "s").await.status, 200);
    let before = app.collection_bytes(alice);
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
        assert_eq!(app.chunk(&key, "s2").await.status, 409);
        assert_eq!(app.collection_bytes(alice), before);
        assert_eq!(app.count_rows(alice, "graves"), 0);
    }
}
