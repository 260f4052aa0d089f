//! The import API at HTTP level (`POST /internal/v1/users/{id}/imports`), with packages built
//! in the test the way genanki and Anki write them, and the result read back as a syncing
//! client would see it.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::TestApp;
use common::internal::imports_path;
use common::packages::{
    DUMMY_NOTE_GUID, FIXTURE_BASIC_ID, GEN_NOTETYPE_ID, GEN_TIME_MS, GenNote, GenPackage,
    LATE_CARD_ID, LATE_NOTE_GUID, LATE_NOTE_ID, LATE_PIC, MediaEntries, MediaEntry, PIC_BYTES,
    dummy_legacy_collection, latest_package, latest_package_raw,
    schema18_collection_with_media_note, sha1_hex, sha1_of, zip_members,
};
use common::stored::{
    all_files, assert_nothing_pending, col_int, col_json, count, deck_named, guids, id_of, now_ms,
    server_counts, stored_note,
};
use common::sync::pad;
use prost::Message;
use rusqlite::Connection;
use serde_json::{Value, json};

#[tokio::test]
async fn a_genanki_package_reaches_a_fresh_user_and_a_syncing_client() {
    let app = TestApp::start().await;
    let alice = app.add_user("alice", true);
    let mut package = GenPackage::standard();
    package
        .media
        .push(("unused.png".into(), b"no note shows this".to_vec()));

    let before = now_ms();
    let summary = app.import_ok(alice, package.package()).await;
    let after = now_ms();
    assert_eq!(
        summary,
        json!({
            "import_id": 1, "replayed": false,
            "package": {"format": "legacy1", "notes": 2, "cards": 2, "media_files": 2},
            "notes": {"added": 2, "updated": 0, "skipped": 0},
            "cards": {"added": 2},
            "decks": {"added": 2, "matched": 0},
            "notetypes": {"added": 1, "updated": 0, "matched": 0},
            "media": {"added": 1, "renamed": 0, "unchanged": 0},
        })
    );

    let conn = app.collection(alice);
    assert_eq!(
        col_int(&conn, "usn"),
        0,
        "an import does not advance the usn"
    );
    assert_nothing_pending(&conn);
    let first = stored_note(&conn, "gen-guid-1");
    assert_eq!(first.id, 1_700_000_000_100, "the package's note id is kept");
    assert_eq!(first.mid, GEN_NOTETYPE_ID);
    assert_eq!(first.mtime, GEN_TIME_MS / 1000, "the incoming mod is kept");
    let (sfld, csum) = anki_sidecar::note_text::derived_columns(&first.flds, 0);
    assert_eq!(
        (first.sfld.as_str(), first.csum),
        (sfld.as_str(), i64::from(csum)),
        "sfld and csum recomputed, not genanki's csum 0"
    );
    assert_eq!(first.tags.trim(), "generated");
    let decks = col_json(&conn, "decks");
    let sub = deck_named(&decks, "GenDeck::Sub").expect("the package's deck");
    assert!(deck_named(&decks, "GenDeck").is_some(), "its parent too");
    assert_eq!(sub["dyn"], 0);
    let sub_id = id_of(&sub["id"]);
    let mut statement = conn
        .prepare("SELECT nid, did, ord, type, queue, due, data FROM cards ORDER BY nid")
        .unwrap();
    let cards: Vec<(i64, i64, i64, i64, i64, i64, String)> = statement
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
            ))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(cards.len(), 2);
    for (nid, did, ord, card_type, queue, due, data) in &cards {
        assert_eq!((*did, *ord, *card_type, *queue), (sub_id, 0, 0, 0), "{nid}");
        assert!(
            (1..1_000_000).contains(due),
            "a new card's due is a queue position: {due}"
        );
        assert!(
            serde_json::from_str::<Value>(data).is_ok_and(|data| data.is_object()),
            "card data is a JSON object, not genanki's empty string: {data:?}"
        );
    }
    assert_ne!(cards[0].5, cards[1].5, "each note gets its own position");
    let next_position = col_json(&conn, "conf")["nextPos"].as_i64().unwrap();
    assert!(next_position > cards.iter().map(|card| card.5).max().unwrap());
    drop(statement);
    drop(conn);

    // A fresh device: the server now has cards and a changed collection.
    let key = app.login_key("alice").await;
    let server = app.meta_ok(&key).await;
    assert_eq!(server["empty"], false);
    let modified = server["mod"].as_i64().unwrap();
    assert!(
        (before..=after).contains(&modified),
        "col.mod is the import time: {modified} not in {before}..={after}"
    );
    assert_eq!(server["usn"], 0);
    assert!(server["media_usn"].as_i64().unwrap() > 0);

    let received = app.receive(&key, "s1", 0).await;
    let model = received.changes["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|model| id_of(&model["id"]) == GEN_NOTETYPE_ID)
        .expect("the imported notetype is sent");
    assert_eq!(model["usn"], 0);
    assert_eq!(model["name"], "GenModel");
    assert_eq!(model["flds"].as_array().unwrap().len(), 2);
    assert_eq!(received.deck("GenDeck::Sub")["usn"], 0);
    assert_eq!(received.deck("GenDeck")["usn"], 0);
    assert_eq!(received.notes.len(), 2);
    let sent = received.note("gen-guid-1");
    assert_eq!(sent[0], 1_700_000_000_100i64);
    assert_eq!(sent[4], 0, "sent with the server usn");
    assert_eq!(sent[6], "<img src=\"pic.png\">\u{1f}first back");
    assert_eq!(received.cards.len(), 2);
    for card in &received.cards {
        assert_eq!(card[5], 0);
        assert_eq!(id_of(&card[2]), sub_id);
    }
    assert!(
        received.changes["tags"]
            .as_array()
            .unwrap()
            .contains(&json!("generated")),
        "the note's tag is registered: {}",
        received.changes["tags"]
    );
    let counts = received.counts();
    app.finish_sync(&key, "s1", counts).await;
    assert_eq!(app.meta_ok(&key).await["usn"], 1);

    let (media_usn, entries) = app.media_state(&key).await;
    assert!(media_usn > 0);
    let (usn, sha1) = &entries["pic.png"];
    assert!(*usn > 0 && *usn <= media_usn);
    assert_eq!(sha1, &sha1_hex(PIC_BYTES));
    assert_eq!(entries.len(), 1, "only the referenced file: {entries:?}");
    assert_eq!(app.download_media(&key, "pic.png").await, PIC_BYTES);
}

#[tokio::test]
async fn importing_again_skips_and_a_newer_note_updates() {
    let app = TestApp::start().await;
    let alice = app.add_user("alice", true);
    let package = GenPackage::standard();
    app.import_ok(alice, package.package()).await;
    // Sync once so the server usn moves to 1: later writes must carry 1, not 0.
    let key = app.login_key("alice").await;
    app.meta_ok(&key).await;
    let received = app.receive(&key, "s1", 0).await;
    app.finish_sync(&key, "s1", received.counts()).await;

    let again = app.import_ok(alice, package.package()).await;
    assert_eq!(again["import_id"], 2);
    assert_eq!(
        again["notes"],
        json!({"added": 0, "updated": 0, "skipped": 2})
    );
    assert_eq!(again["cards"], json!({"added": 0}));
    assert_eq!(again["decks"], json!({"added": 0, "matched": 2}));
    assert_eq!(
        again["notetypes"],
        json!({"added": 0, "updated": 0, "matched": 1})
    );
    assert_eq!(
        again["media"],
        json!({"added": 0, "renamed": 0, "unchanged": 0}),
        "only media of added or updated notes is considered (docs/sync-protocol.md#imported-media)"
    );
    {
        let conn = app.collection(alice);
        assert_eq!(count(&conn, "SELECT COUNT(*) FROM notes"), 2);
        assert_eq!(count(&conn, "SELECT COUNT(*) FROM cards"), 2);
        assert_eq!(col_json(&conn, "models").as_object().unwrap().len(), 6);
        assert_eq!(count(&conn, "SELECT COUNT(*) FROM notes WHERE usn = 1"), 0);
    }

    let mut edited = package.clone();
    edited.notes[0].fields[1] = "edited back".into();
    edited.notes[0].tags = vec!["edited".into()];
    edited.notes[0].mtime += 100;
    let summary = app.import_ok(alice, edited.package()).await;
    assert_eq!(
        summary["notes"],
        json!({"added": 0, "updated": 1, "skipped": 1})
    );
    assert_eq!(summary["cards"], json!({"added": 0}));
    let conn = app.collection(alice);
    assert_nothing_pending(&conn);
    let note = stored_note(&conn, "gen-guid-1");
    assert_eq!(note.id, 1_700_000_000_100, "the user's note id is kept");
    assert_eq!(note.flds, "<img src=\"pic.png\">\u{1f}edited back");
    assert_eq!(
        note.mtime,
        GEN_TIME_MS / 1000 + 100,
        "the incoming mod is kept"
    );
    assert_eq!(note.usn, 1, "written with the server's current usn");
    assert_eq!(note.tags.trim(), "edited", "tags are replaced");
    assert_eq!(count(&conn, "SELECT COUNT(*) FROM cards"), 2);
    let counts = server_counts(&conn);
    drop(conn);

    // A client that already synced receives exactly the update.
    let server = app.meta_ok(&key).await;
    assert_eq!(server["usn"], 1);
    let received = app.receive(&key, "s2", 1).await;
    assert_eq!(received.notes.len(), 1, "{:?}", received.notes);
    assert_eq!(received.note("gen-guid-1")[6], note.flds);
    assert!(received.cards.is_empty());
    app.finish_sync(&key, "s2", counts).await;

    // An edit that is older than the user's copy changes nothing.
    let mut older = package.clone();
    older.notes[0].fields[1] = "stale back".into();
    older.notes[0].mtime += 50;
    let summary = app.import_ok(alice, older.package()).await;
    assert_eq!(
        summary["notes"],
        json!({"added": 0, "updated": 0, "skipped": 2})
    );
    let conn = app.collection(alice);
    assert_eq!(stored_note(&conn, "gen-guid-1").flds, note.flds);
}

#[tokio::test]
async fn an_idempotency_key_replays_the_first_answer() {
    let app = TestApp::start().await;
    let alice = app.add_user("alice", true);
    let bob = app.add_user("bob", true);
    let package = GenPackage::standard();
    // Built once: every build has fresh random ids in its stock notetypes, so other bytes.
    let bytes = package.package();

    let first = app.import_keyed(alice, bytes.clone(), "push-1").await;
    assert_eq!(first.status, 200, "{}", first.text());
    let first = first.json();
    assert_eq!(first["replayed"], false);
    assert_eq!(first["notes"]["added"], 2);
    let collection_path = app.user_dir(alice).join("collection.anki2");
    let stored = std::fs::read(&collection_path).unwrap();

    let replay = app.import_keyed(alice, bytes.clone(), "push-1").await;
    assert_eq!(replay.status, 200, "{}", replay.text());
    let mut replay = replay.json();
    assert_eq!(replay["replayed"], true);
    replay["replayed"] = json!(false);
    assert_eq!(
        replay, first,
        "the first answer, not a fresh (all skipped) one"
    );
    assert_eq!(std::fs::read(&collection_path).unwrap(), stored);

    let mut edited = package.clone();
    edited.notes[0].fields[1] = "edited back".into();
    edited.notes[0].mtime += 100;
    let reused = app.import_keyed(alice, edited.package(), "push-1").await;
    assert_eq!(reused.status, 409, "{}", reused.text());
    assert_eq!(std::fs::read(&collection_path).unwrap(), stored);

    let second = app.import_keyed(alice, edited.package(), "push-2").await;
    assert_eq!(second.status, 200, "{}", second.text());
    let second = second.json();
    assert_eq!(second["import_id"], 2);
    assert_eq!(second["replayed"], false);
    assert_eq!(second["notes"]["updated"], 1);

    let mut late_replay = app
        .import_keyed(alice, bytes.clone(), "push-1")
        .await
        .json();
    assert_eq!(late_replay["replayed"], true);
    late_replay["replayed"] = json!(false);
    assert_eq!(late_replay, first);

    // Sequence numbers and keys belong to one user.
    let for_bob = app.import_keyed(bob, bytes.clone(), "push-1").await;
    assert_eq!(for_bob.status, 200, "{}", for_bob.text());
    let for_bob = for_bob.json();
    assert_eq!(for_bob["import_id"], 1);
    assert_eq!(for_bob["replayed"], false);
    assert_eq!(for_bob["notes"]["added"], 2);

    let too_long = app
        .import_keyed(alice, bytes.clone(), &"k".repeat(201))
        .await;
    assert_eq!(too_long.status, 400, "{}", too_long.text());
}

#[tokio::test]
async fn a_conflicting_media_name_is_renamed_and_the_note_follows() {
    let app = TestApp::start().await;
    let alice = app.add_user("alice", true);
    let key = app.login_key("alice").await;
    let users_pic: &[u8] = b"the user's own, different picture";
    let shared: &[u8] = b"ID3 a sound both sides have";
    app.upload_media(&key, &[("pic.png", users_pic), ("same.mp3", shared)])
        .await;
    let (usn_before, _) = app.media_state(&key).await;
    assert_eq!(usn_before, 2);

    let mut package = GenPackage::standard();
    package.notes[1].fields[1] = "[sound:same.mp3]".into();
    // Legacy names are normalized (NFC) on import; the package spells this one decomposed.
    let decomposed = "cafe\u{301}.png";
    let composed = "caf\u{e9}.png";
    package.notes.push(GenNote::new(
        1_700_000_000_102,
        "gen-guid-3",
        &[&format!("<img src=\"{decomposed}\">"), "third back"],
    ));
    package.media.push(("same.mp3".into(), shared.to_vec()));
    package
        .media
        .push((decomposed.into(), b"a cafe picture".to_vec()));
    let summary = app.import_ok(alice, package.package()).await;
    assert_eq!(
        summary["media"],
        json!({"added": 1, "renamed": 1, "unchanged": 1})
    );
    assert_eq!(summary["notes"]["added"], 3);

    let renamed = format!("pic-{}.png", sha1_hex(PIC_BYTES));
    let (media_usn, entries) = app.media_state(&key).await;
    assert_eq!(media_usn, 4, "two new files, two new media USNs");
    assert_eq!(entries["pic.png"], (1, sha1_hex(users_pic)), "left alone");
    assert_eq!(
        entries["same.mp3"].0, 2,
        "identical content is not re-registered"
    );
    assert!(entries[&renamed].0 > 2);
    assert_eq!(entries[&renamed].1, sha1_hex(PIC_BYTES));
    assert!(entries[composed].0 > 2);
    assert!(!entries.contains_key(decomposed));
    assert_eq!(app.download_media(&key, &renamed).await, PIC_BYTES);
    assert_eq!(app.download_media(&key, "pic.png").await, users_pic);

    let conn = app.collection(alice);
    let first = stored_note(&conn, "gen-guid-1");
    assert_eq!(
        first.flds,
        format!("<img src=\"{renamed}\">\u{1f}first back")
    );
    assert_eq!(
        stored_note(&conn, "gen-guid-2").flds,
        "second front\u{1f}[sound:same.mp3]"
    );
    assert!(
        stored_note(&conn, "gen-guid-3")
            .flds
            .starts_with(&format!("<img src=\"{composed}\">")),
        "the reference follows the normalized name"
    );
    drop(conn);
    app.meta_ok(&key).await;
    let received = app.receive(&key, "s", 0).await;
    assert_eq!(received.note("gen-guid-1")[6], first.flds);
    app.abort(&key, "s").await;
}

#[tokio::test]
async fn a_latest_format_package_imports() {
    let app = TestApp::start().await;
    let alice = app.add_user("alice", true);
    let package = latest_package(
        &schema18_collection_with_media_note(),
        &[("late.png", LATE_PIC)],
    );
    let summary = app.import_ok(alice, package).await;
    assert_eq!(
        summary,
        json!({
            "import_id": 1, "replayed": false,
            "package": {"format": "latest", "notes": 8, "cards": 11, "media_files": 1},
            "notes": {"added": 8, "updated": 0, "skipped": 0},
            "cards": {"added": 11},
            "decks": {"added": 4, "matched": 0},
            "notetypes": {"added": 3, "updated": 0, "matched": 0},
            "media": {"added": 1, "renamed": 0, "unchanged": 0},
        })
    );

    let conn = app.collection(alice);
    assert_nothing_pending(&conn);
    let stored = guids(&conn);
    assert_eq!(stored.len(), 8);
    assert!(stored.contains(LATE_NOTE_GUID));
    assert!(
        !stored.contains(DUMMY_NOTE_GUID),
        "the dummy collection.anki2 is ignored"
    );
    let late = stored_note(&conn, LATE_NOTE_GUID);
    assert_eq!(late.id, LATE_NOTE_ID);
    assert_eq!(late.mid, FIXTURE_BASIC_ID);
    assert_eq!(late.flds, "<img src=\"late.png\">\u{1f}late back");
    let models = col_json(&conn, "models");
    let models = models.as_object().unwrap();
    let names: BTreeSet<&str> = models
        .values()
        .map(|model| model["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), models.len(), "notetype names stay unique");
    assert!(names.contains("Vocab (custom)"));
    assert!(!names.contains("Dummy"));
    let vocab = models
        .values()
        .find(|model| model["name"] == "Vocab (custom)")
        .unwrap();
    assert_eq!(vocab["flds"].as_array().unwrap().len(), 3);
    assert_eq!(vocab["tmpls"].as_array().unwrap().len(), 2);
    let decks = col_json(&conn, "decks");
    for name in ["Parent", "Parent::Child", "Filtered", "Filtered::Cram"] {
        let deck = deck_named(&decks, name).unwrap_or_else(|| panic!("deck {name}"));
        assert_eq!(
            deck["dyn"], 0,
            "{name}: without scheduling no deck is filtered"
        );
    }
    assert!(deck_named(&decks, "Dummy").is_none());
    // Deck options are not imported (docs/sync-protocol.md#merge-rules), so no deck may point at
    // the package's.
    let dconf = col_json(&conn, "dconf");
    for deck in decks.as_object().unwrap().values() {
        if deck["dyn"] == 0 {
            let conf = id_of(&deck["conf"]).to_string();
            assert!(
                dconf.get(&conf).is_some(),
                "{} uses options {conf}",
                deck["name"]
            );
        }
    }
    let late_card: (i64, i64) = conn
        .query_row(
            "SELECT nid, did FROM cards WHERE id = ?1",
            [LATE_CARD_ID],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .unwrap();
    assert_eq!(late_card.0, LATE_NOTE_ID);
    assert_eq!(
        late_card.1,
        id_of(&deck_named(&decks, "Parent").unwrap()["id"])
    );
    let deck_ids: BTreeMap<i64, &Value> = decks
        .as_object()
        .unwrap()
        .values()
        .map(|deck| (id_of(&deck["id"]), deck))
        .collect();
    let mut statement = conn
        .prepare("SELECT id, did, odid, type, queue, due, ivl, reps FROM cards")
        .unwrap();
    let cards: Vec<[i64; 8]> = statement
        .query_map([], |r| {
            Ok([
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
                r.get(7)?,
            ])
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(cards.len(), 11);
    for [id, did, odid, card_type, queue, due, ivl, reps] in &cards {
        assert!(
            deck_ids.contains_key(did),
            "card {id} in missing deck {did}"
        );
        assert_eq!(
            (*odid, *card_type, *queue, *ivl, *reps),
            (0, 0, 0, 0, 0),
            "card {id} arrives as a new card"
        );
        assert!((1..1_000_000).contains(due), "card {id}: due {due}");
    }
    drop(statement);
    drop(conn);

    let key = app.login_key("alice").await;
    assert_eq!(app.meta_ok(&key).await["empty"], false);
    let received = app.receive(&key, "s", 0).await;
    assert_eq!(received.notes.len(), 8);
    assert_eq!(received.cards.len(), 11);
    let tags = &received.changes["tags"];
    for tag in ["late", "easy", "de"] {
        assert!(tags.as_array().unwrap().contains(&json!(tag)), "{tags}");
    }
    app.finish_sync(&key, "s", received.counts()).await;
    let (_, entries) = app.media_state(&key).await;
    assert_eq!(entries["late.png"].1, sha1_hex(LATE_PIC));
    assert_eq!(app.download_media(&key, "late.png").await, LATE_PIC);
}

#[tokio::test]
async fn a_changed_notetype_becomes_a_new_notetype_without_a_full_sync() {
    let app = TestApp::start().await;
    let alice = app.add_user("alice", true);
    let key = app.login_key("alice").await;
    let original = GenPackage::standard();
    app.import_ok(alice, original.package()).await;
    let scm = app.meta_ok(&key).await["scm"].clone();

    let mut widened = GenPackage::standard();
    widened.field_names.push("Extra".into());
    widened.notetype_mtime += 100;
    widened.media.clear();
    widened.notes = vec![
        GenNote::new(1_700_000_000_300, "wide-1", &["w1", "b1", "x1"]),
        GenNote::new(1_700_000_000_301, "wide-2", &["w2", "b2", "x2"]),
    ];
    let summary = app.import_ok(alice, widened.package()).await;
    assert_eq!(
        summary["notetypes"],
        json!({"added": 1, "updated": 0, "matched": 0})
    );
    assert_eq!(summary["notes"]["added"], 2);
    assert_eq!(
        app.meta_ok(&key).await["scm"],
        scm,
        "no full sync is forced"
    );

    let conn = app.collection(alice);
    assert_nothing_pending(&conn);
    let models = col_json(&conn, "models");
    let kept = &models[GEN_NOTETYPE_ID.to_string()];
    assert_eq!(
        kept["flds"].as_array().unwrap().len(),
        2,
        "the user's notetype is untouched"
    );
    let wide = stored_note(&conn, "wide-1");
    assert_ne!(wide.mid, GEN_NOTETYPE_ID);
    let added = &models[wide.mid.to_string()];
    assert_eq!(added["flds"].as_array().unwrap().len(), 3);
    assert_eq!(id_of(&added["id"]), wide.mid);
    assert_ne!(added["name"], kept["name"], "names stay unique");
    assert_eq!(stored_note(&conn, "wide-2").mid, wide.mid);
    assert_eq!(stored_note(&conn, "gen-guid-1").mid, GEN_NOTETYPE_ID);
    let model_count = models.as_object().unwrap().len();
    drop(conn);

    // The same package again finds the copy made last time instead of adding another.
    let again = app.import_ok(alice, widened.package()).await;
    assert_eq!(again["notetypes"]["added"], 0, "{again}");
    assert_eq!(
        again["notes"],
        json!({"added": 0, "updated": 0, "skipped": 2})
    );
    let conn = app.collection(alice);
    assert_eq!(
        col_json(&conn, "models").as_object().unwrap().len(),
        model_count
    );
    drop(conn);

    // Same schema and newer: the notetype is updated in place, still without a full sync.
    let mut restyled = GenPackage::standard();
    restyled.css = ".card { color: green; }".into();
    restyled.notetype_mtime += 200;
    let summary = app.import_ok(alice, restyled.package()).await;
    assert_eq!(
        summary["notetypes"],
        json!({"added": 0, "updated": 1, "matched": 0})
    );
    let conn = app.collection(alice);
    let models = col_json(&conn, "models");
    let updated = &models[GEN_NOTETYPE_ID.to_string()];
    assert_eq!(updated["css"], ".card { color: green; }");
    assert_eq!(updated["usn"], col_int(&conn, "usn"));
    assert_eq!(models.as_object().unwrap().len(), model_count);
    drop(conn);
    assert_eq!(app.meta_ok(&key).await["scm"], scm);
}

#[tokio::test]
async fn bad_packages_are_refused_and_change_nothing() {
    let app = TestApp::start().await;
    let alice = app.add_user("alice", true);
    let key = app.login_key("alice").await;
    app.import_ok(alice, GenPackage::standard().package()).await;

    let standard = GenPackage::standard();
    let good_collection = standard.collection();
    let map = standard.media_map().to_string();
    let mut evil = GenPackage::standard();
    evil.media = vec![("../evil.png".into(), b"evil".to_vec())];
    evil.notes[0].fields[0] = "<img src=\"../evil.png\">".into();
    let mut nested = GenPackage::standard();
    nested.media = vec![("a/b.png".into(), b"evil".to_vec())];
    nested.notes[0].fields[0] = "<img src=\"a/b.png\">".into();
    // These two fail late, after media could have been staged: each brings a new file.
    let with_fresh_media = |guid: &str| {
        let mut package = GenPackage::standard();
        package.notes[0].guid = guid.into();
        package.notes[0].fields[0] = "<img src=\"fresh.png\">".into();
        package.media = vec![("fresh.png".into(), b"never to be stored".to_vec())];
        package
    };
    let mut uneven = with_fresh_media("uneven-1");
    uneven.notes[1].guid = "uneven".into();
    uneven.notes[1].fields.push("a third field".into());
    let no_template = with_fresh_media("no-template");
    let no_template = no_template.package_from(
        &no_template.collection_with(|conn| {
            conn.execute("UPDATE cards SET ord = 5", []).unwrap();
        }),
        &no_template.media_map().to_string(),
    );

    let latest_collection =
        zstd::encode_all(&schema18_collection_with_media_note()[..], 0).unwrap();
    let entries = |sha1: Vec<u8>| {
        let entries = MediaEntries {
            entries: vec![MediaEntry {
                name: "late.png".into(),
                size: LATE_PIC.len() as u32,
                sha1,
            }],
        };
        entries.encode_to_vec()
    };
    let good_entries = zstd::encode_all(&entries(sha1_of(LATE_PIC).to_vec())[..], 0).unwrap();
    let good_files = vec![zstd::encode_all(LATE_PIC, 0).unwrap()];
    let mut truncated = latest_collection.clone();
    truncated.truncate(truncated.len() / 2);
    let mut too_new = zip::ZipArchive::new(std::io::Cursor::new(latest_package(
        &schema18_collection_with_media_note(),
        &[],
    )))
    .unwrap();
    let mut too_new_members: Vec<(String, Vec<u8>)> = Vec::new();
    for index in 0..too_new.len() {
        let mut file = too_new.by_index(index).unwrap();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut file, &mut data).unwrap();
        let name = file.name().to_string();
        if name == "meta" {
            data = vec![0x08, 0x07];
        }
        too_new_members.push((name, data));
    }

    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("garbage bytes", b"this is not a zip file at all".to_vec()),
        ("empty body", Vec::new()),
        (
            "zip without a collection",
            zip_members(
                &[("media".into(), b"{}".to_vec())],
                zip::CompressionMethod::Deflated,
            ),
        ),
        (
            "collection is not SQLite",
            standard.package_from(b"just some text, not a database", &map),
        ),
        (
            "schema version 99",
            standard.package_from(
                &standard.collection_with(|conn| {
                    conn.execute("UPDATE col SET ver = 99", []).unwrap();
                }),
                &map,
            ),
        ),
        (
            "media map is not JSON",
            standard.package_from(&good_collection, "{not json"),
        ),
        ("media named ../evil.png", evil.package()),
        ("media named a/b.png", nested.package()),
        ("a note with a field too many", uneven.package()),
        ("a card of a template the notetype lacks", no_template),
        (
            "latest: collection is not zstd",
            latest_package_raw(b"not zstd at all", &good_entries, &good_files),
        ),
        (
            "latest: truncated zstd collection",
            latest_package_raw(&truncated, &good_entries, &good_files),
        ),
        (
            "latest: media map is not zstd",
            latest_package_raw(
                &latest_collection,
                &entries(sha1_of(LATE_PIC).to_vec()),
                &good_files,
            ),
        ),
        (
            "latest: referenced media file is not zstd",
            latest_package_raw(&latest_collection, &good_entries, &[LATE_PIC.to_vec()]),
        ),
        (
            "latest: media sha1 is not 20 bytes",
            latest_package_raw(
                &latest_collection,
                &zstd::encode_all(&entries(vec![1, 2, 3])[..], 0).unwrap(),
                &good_files,
            ),
        ),
        (
            "latest: media name not normalized",
            latest_package(
                &schema18_collection_with_media_note(),
                &[("cafe\u{301}.png", LATE_PIC)],
            ),
        ),
        (
            "meta names an unknown version",
            zip_members(&too_new_members, zip::CompressionMethod::Stored),
        ),
    ];

    let user_dir = app.user_dir(alice);
    let collection_path = user_dir.join("collection.anki2");
    let stored = std::fs::read(&collection_path).unwrap();
    let files = all_files(&user_dir);
    let server = app.meta_ok(&key).await;
    let media = app.media_state(&key).await;
    for (name, package) in cases {
        let response = app.import(alice, package).await;
        assert_eq!(response.status, 400, "{name}: {}", response.text());
        assert!(!response.text().trim().is_empty(), "{name}: says why");
        assert_eq!(
            std::fs::read(&collection_path).unwrap(),
            stored,
            "{name}: the collection changed"
        );
        assert_eq!(all_files(&user_dir), files, "{name}: files changed");
    }
    let after = app.meta_ok(&key).await;
    assert_eq!(
        (&after["mod"], &after["usn"], &after["scm"]),
        (&server["mod"], &server["usn"], &server["scm"])
    );
    assert_eq!(app.media_state(&key).await, media);
    let data_root = app.dir.path();
    assert!(
        !all_files(data_root)
            .iter()
            .any(|path| path.ends_with("evil.png") || path.ends_with("b.png")),
        "no hostile name was written anywhere"
    );
    assert!(!user_dir.join("media/fresh.png").exists());

    // Nothing stuck: a good package still goes through.
    let summary = app.import_ok(alice, GenPackage::standard().package()).await;
    assert_eq!(summary["notes"]["skipped"], 2);
}

#[tokio::test]
async fn only_the_internal_listener_with_the_token_may_import() {
    let app = TestApp::start().await;
    let alice = app.add_user("alice", true);
    let package = GenPackage::standard().package();
    let path = imports_path(alice);

    let anonymous = TestApp::send(app.internal_post(&path, None, package.clone())).await;
    assert_eq!(anonymous.status, 403, "{}", anonymous.text());
    let wrong =
        TestApp::send(app.internal_post(&path, Some("not-the-token"), package.clone())).await;
    assert_eq!(wrong.status, 403, "{}", wrong.text());
    let unknown = app.import(9999, package.clone()).await;
    assert_eq!(unknown.status, 404, "{}", unknown.text());
    let public = TestApp::send(
        app.http
            .post(format!("{}{path}", app.base))
            .bearer_auth(&app.token)
            .body(package.clone()),
    )
    .await;
    assert_eq!(public.status, 404, "{}", public.text());

    assert!(
        !app.user_dir(alice).join("collection.anki2").exists(),
        "no refused request created a collection"
    );
    assert!(!app.user_dir(9999).exists());

    let limited = TestApp::start_with(&["--max-body-mb=1"]).await;
    let bob = limited.add_user("bob", true);
    let mut big = GenPackage::standard();
    // Random bytes, so that deflate cannot shrink the package under the limit.
    let mut noise = vec![0u8; 1_500_000];
    rand::fill(&mut noise[..]);
    big.media.push(("noise.bin".into(), noise));
    let too_large = limited.import(bob, big.package()).await;
    assert_eq!(too_large.status, 413, "{}", too_large.text());
    assert!(!limited.user_dir(bob).join("collection.anki2").exists());
}

#[tokio::test]
async fn an_import_waits_for_a_sync_in_progress() {
    let app = TestApp::start().await;
    let alice = app.add_user("alice", true);
    let key = app.open_sync("alice").await;
    let counts = server_counts(&app.collection(alice));

    let pending = app.spawn_import(alice, GenPackage::standard().package());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!pending.is_finished(), "the import waits for the sync");
    assert_eq!(
        count(&app.collection(alice), "SELECT COUNT(*) FROM notes"),
        0
    );

    let finished_mod = app.finish_sync(&key, "s", counts).await;
    let response = tokio::time::timeout(Duration::from_secs(10), pending)
        .await
        .expect("the import ends once the sync has")
        .unwrap();
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.json()["notes"]["added"], 2);
    let server = app.meta_ok(&key).await;
    assert!(server["mod"].as_i64().unwrap() > finished_mod);
    assert_eq!(server["usn"], 1);
    let conn = app.collection(alice);
    assert_eq!(count(&conn, "SELECT COUNT(*) FROM notes WHERE usn = 1"), 2);
}

#[tokio::test]
async fn an_import_gives_up_with_503_when_the_sync_does_not_end() {
    let app = TestApp::start_with(&["--import-wait-secs=1"]).await;
    let alice = app.add_user("alice", true);
    let key = app.open_sync("alice").await;
    let stored = std::fs::read(app.user_dir(alice).join("collection.anki2")).unwrap();

    let response = app
        .internal_post(
            &imports_path(alice),
            Some(&app.token),
            GenPackage::standard().package(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert!(response.headers().get("retry-after").is_some());
    assert_eq!(
        std::fs::read(app.user_dir(alice).join("collection.anki2")).unwrap(),
        stored
    );
    // The sync was not broken by the waiting import.
    assert_eq!(app.chunk(&key, "s").await.status, 200);
}

#[tokio::test]
async fn undelivered_imports_survive_a_full_upload_until_a_sync_delivers_them() {
    let app = TestApp::start().await;
    let alice = app.add_user("alice", true);
    let key = app.login_key("alice").await;
    app.import_ok(alice, GenPackage::standard().package()).await;
    let expected: BTreeSet<String> = ["gen-guid-1", "gen-guid-2"].map(String::from).into();

    // A device that never saw the import replaces the collection.
    let uploaded_mod = 1_795_000_000_000;
    app.full_upload_fresh_collection(&key, uploaded_mod).await;
    let conn = app.collection(alice);
    assert_eq!(guids(&conn), expected, "the import was merged again");
    assert_eq!(count(&conn, "SELECT COUNT(*) FROM cards"), 2);
    assert_nothing_pending(&conn);
    assert!(deck_named(&col_json(&conn, "decks"), "GenDeck::Sub").is_some());
    drop(conn);
    let server = app.meta_ok(&key).await;
    assert_ne!(
        server["mod"], uploaded_mod,
        "the uploading device must see a change and sync again"
    );

    // Uploading again before any sync: the import is still undelivered.
    app.full_upload_fresh_collection(&key, uploaded_mod).await;
    let conn = app.collection(alice);
    assert_eq!(
        guids(&conn),
        expected,
        "merged again after the second upload"
    );
    let counts = server_counts(&conn);
    drop(conn);
    app.meta_ok(&key).await;

    // That device's next normal sync receives the notes; the import is delivered.
    let received = app.receive(&key, "s", 0).await;
    assert_eq!(received.notes.len(), 2);
    app.finish_sync(&key, "s", counts).await;

    app.full_upload_fresh_collection(&key, uploaded_mod).await;
    let conn = app.collection(alice);
    assert!(
        guids(&conn).is_empty(),
        "a delivered import is not merged into a later upload"
    );
}

#[tokio::test]
async fn legacy2_packages_import() {
    let app = TestApp::start().await;
    let alice = app.add_user("alice", true);
    let package = GenPackage::standard();
    let member = package.collection();
    let media: Vec<(String, Vec<u8>)> = vec![
        ("media".into(), package.media_map().to_string().into_bytes()),
        ("0".into(), PIC_BYTES.to_vec()),
    ];
    // As modern Anki writes it with "support older versions" ticked
    // (docs/sync-protocol.md#package-versions).
    let mut with_meta: Vec<(String, Vec<u8>)> = vec![
        ("meta".into(), vec![0x08, 0x02]),
        ("collection.anki21".into(), member.clone()),
        ("collection.anki2".into(), dummy_legacy_collection()),
    ];
    with_meta.extend(media.iter().cloned());
    let summary = app
        .import_ok(
            alice,
            zip_members(&with_meta, zip::CompressionMethod::Deflated),
        )
        .await;
    assert_eq!(summary["package"]["format"], "legacy2");
    assert_eq!(summary["notes"]["added"], 2);
    assert_eq!(summary["media"]["added"], 1);
    let conn = app.collection(alice);
    assert!(!guids(&conn).contains(DUMMY_NOTE_GUID));
    drop(conn);

    // Without `meta`, a `collection.anki21` member alone makes it LEGACY_2 too.
    let bob = app.add_user("bob", true);
    let mut without_meta: Vec<(String, Vec<u8>)> = vec![
        ("collection.anki2".into(), dummy_legacy_collection()),
        ("collection.anki21".into(), member),
    ];
    without_meta.extend(media);
    let summary = app
        .import_ok(
            bob,
            zip_members(&without_meta, zip::CompressionMethod::Deflated),
        )
        .await;
    assert_eq!(summary["package"]["format"], "legacy2");
    assert_eq!(summary["notes"]["added"], 2);
    assert!(!guids(&app.collection(bob)).contains(DUMMY_NOTE_GUID));
}

#[tokio::test]
async fn ankis_merge_rules_apply() {
    let app = TestApp::start().await;
    let alice = app.add_user("alice", true);
    let key = app.login_key("alice").await;
    app.import_ok(alice, GenPackage::standard().package()).await;
    let sub_id = id_of(
        &deck_named(&col_json(&app.collection(alice), "decks"), "GenDeck::Sub").unwrap()["id"],
    );

    let future_id = now_ms() + 3 * 86_400_000;
    let mut package = GenPackage::standard();
    // Decks match by name, ignoring case.
    package.deck_name = "gendeck::SUB".into();
    let mut tagged = GenNote::new(1_700_000_000_110, "tagged", &["tagged front", ""]);
    tagged.tags = vec!["marked".into(), "leech".into(), "keep".into()];
    let mut other_notetype = GenNote::new(1_700_000_000_111, "gen-guid-2", &["moved", "x"]);
    other_notetype.mtime += 1000;
    package.notes = vec![
        // The id is taken by gen-guid-1, so it moves up by 999.
        GenNote::new(1_700_000_000_100, "collide", &["collide front", ""]),
        GenNote::new(future_id, "future", &["future front", ""]),
        tagged,
        other_notetype,
    ];
    package.media = vec![
        ("_static.css".into(), b"/* used by templates */".to_vec()),
        ("unused.png".into(), b"nothing shows this".to_vec()),
    ];
    let collection_bytes = package.collection_with(|conn| {
        // gen-guid-2 exists for the user under GenModel; here it belongs to another notetype.
        let models: String = conn
            .query_row("SELECT models FROM col", [], |row| row.get(0))
            .unwrap();
        let mut models: serde_json::Map<String, Value> = serde_json::from_str(&models).unwrap();
        let mut other = models[&GEN_NOTETYPE_ID.to_string()].clone();
        other["id"] = json!("1700000000002");
        other["name"] = json!("Other model");
        models.insert("1700000000002".into(), other);
        conn.execute(
            "UPDATE col SET models = ?1",
            [Value::Object(models).to_string()],
        )
        .unwrap();
        conn.execute(
            "UPDATE notes SET mid = 1700000000002 WHERE guid = 'gen-guid-2'",
            [],
        )
        .unwrap();
    });
    let summary = app
        .import_ok(
            alice,
            package.package_from(&collection_bytes, &package.media_map().to_string()),
        )
        .await;
    assert_eq!(
        summary["notes"],
        json!({"added": 3, "updated": 0, "skipped": 1}),
        "{summary}"
    );
    assert_eq!(summary["cards"]["added"], 3);
    assert_eq!(summary["decks"]["added"], 0, "{summary}");
    assert_eq!(
        summary["media"],
        json!({"added": 1, "renamed": 0, "unchanged": 0})
    );

    let conn = app.collection(alice);
    assert_nothing_pending(&conn);
    assert_eq!(stored_note(&conn, "collide").id, 1_700_000_000_100 + 999);
    let future = stored_note(&conn, "future");
    let limit = now_ms() + 86_400_000;
    assert!(future.id > 0 && future.id <= limit, "note id {}", future.id);
    let future_card: i64 = conn
        .query_row("SELECT id FROM cards WHERE nid = ?1", [future.id], |row| {
            row.get(0)
        })
        .unwrap();
    assert!(
        future_card > 0 && future_card <= limit,
        "card id {future_card}"
    );
    assert_eq!(stored_note(&conn, "tagged").tags.trim(), "keep");
    let untouched = stored_note(&conn, "gen-guid-2");
    assert_eq!(untouched.mid, GEN_NOTETYPE_ID);
    assert_eq!(untouched.flds, "second front\u{1f}second back");
    let in_sub = count(
        &conn,
        &format!("SELECT COUNT(*) FROM cards WHERE did = {sub_id}"),
    );
    assert_eq!(in_sub, 5, "the new cards joined the user's GenDeck::Sub");
    let decks = col_json(&conn, "decks");
    let lower: Vec<String> = decks
        .as_object()
        .unwrap()
        .values()
        .map(|deck| deck["name"].as_str().unwrap().to_lowercase())
        .collect();
    let distinct: BTreeSet<&String> = lower.iter().collect();
    assert_eq!(distinct.len(), lower.len(), "no deck twice: {lower:?}");
    drop(conn);

    let (_, entries) = app.media_state(&key).await;
    assert!(
        entries.contains_key("_static.css"),
        "static files are copied unreferenced"
    );
    assert!(!entries.contains_key("unused.png"));
}

#[tokio::test]
async fn a_full_download_delivers_imports() {
    let app = TestApp::start().await;
    let alice = app.add_user("alice", true);
    let key = app.login_key("alice").await;
    app.import_ok(alice, GenPackage::standard().package()).await;
    app.meta_ok(&key).await;
    let download = app.call("download", &key, "full", pad()).await;
    assert_eq!(download.status, 200, "{}", download.text());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("downloaded.anki2");
    std::fs::write(&path, &download.body).unwrap();
    let downloaded = Connection::open(&path).unwrap();
    assert_eq!(
        count(
            &downloaded,
            "SELECT COUNT(*) FROM notes WHERE guid LIKE 'gen-guid-%'"
        ),
        2,
        "the downloaded file holds the import"
    );
    drop(downloaded);

    app.full_upload_fresh_collection(&key, 1_795_000_000_000)
        .await;
    assert!(
        guids(&app.collection(alice)).is_empty(),
        "the device that downloaded the import chose to drop it"
    );
}

#[tokio::test]
async fn concurrent_pushes_with_one_key_apply_once() {
    let app = TestApp::start().await;
    let alice = app.add_user("alice", true);
    let bytes = GenPackage::standard().package();
    let requests: Vec<_> = (0..4)
        .map(|_| {
            let request = app
                .internal_post(&imports_path(alice), Some(&app.token), bytes.clone())
                .header("Idempotency-Key", "same-push");
            tokio::spawn(TestApp::send(request))
        })
        .collect();
    let mut answers = Vec::new();
    for request in requests {
        let response = request.await.unwrap();
        assert_eq!(response.status, 200, "{}", response.text());
        answers.push(response.json());
    }
    let applied: Vec<&Value> = answers
        .iter()
        .filter(|answer| answer["replayed"] == false)
        .collect();
    assert_eq!(applied.len(), 1, "{answers:?}");
    for answer in &answers {
        assert_eq!(answer["import_id"], 1);
        assert_eq!(answer["notes"]["added"], 2);
    }
    let conn = app.collection(alice);
    assert_eq!(count(&conn, "SELECT COUNT(*) FROM notes"), 2);
    assert_eq!(count(&conn, "SELECT COUNT(*) FROM cards"), 2);
}
