//! Conversion of whole collections: the real schema-18 fixture and its older-schema variants,
//! damaged files, and the round trip with the real client.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use rusqlite::params;
use rusqlite::types::Value as SqlValue;

use prost::Message;
use rusqlite::Connection;
use serde_json::{Value, json};

use super::*;
use crate::collection::proto::{DeckCommon, DeckConfigConfig};
use crate::collection::schema11::SCHEMA11_INDEXES;
use crate::collection::sqlite::open_collection;
use crate::collection::test_support::{query_column, query_value};

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/schema18.anki2");
const EXPECTED: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/schema18.expected.json"
);

/// Finishes the converted file open on `conn` at `path`, and returns where the result is.
fn finish(conn: &Connection, path: &Path) -> PathBuf {
    let copy = path.with_extension("compacted");
    match finish_as_standalone_file(conn, &copy).unwrap() {
        Finished::InPlace => path.to_path_buf(),
        Finished::Compacted => copy,
    }
}

fn fixture_copy() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("collection.anki2");
    std::fs::copy(FIXTURE, &path).unwrap();
    (dir, path)
}

/// What Anki's Python API showed for the fixture (`make_schema18_fixture.py`).
fn expected() -> Value {
    serde_json::from_str(&std::fs::read_to_string(EXPECTED).unwrap()).unwrap()
}

/// The five JSON columns of `col`, parsed.
fn col_objects(conn: &Connection) -> Value {
    let mut all = JsonObject::new();
    for column in ["conf", "models", "decks", "dconf", "tags"] {
        all.insert(
            column.into(),
            Value::Object(col_json(conn, column).unwrap()),
        );
    }
    Value::Object(all)
}

fn rows(conn: &Connection, sql: &str) -> Vec<Vec<SqlValue>> {
    let mut statement = conn.prepare(sql).unwrap();
    let width = statement.column_count();
    statement
        .query_map([], |row| (0..width).map(|i| row.get(i)).collect())
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// Every leaf where `got` differs from `want`. Object key order is ignored: it carries no
/// meaning in these objects, and Anki's own order comes from hash maps.
fn json_differences(path: &str, got: &Value, want: &Value, out: &mut Vec<String>) {
    match (got, want) {
        (Value::Object(got), Value::Object(want)) => {
            let keys: BTreeSet<&String> = got.keys().chain(want.keys()).collect();
            for key in keys {
                let here = format!("{path}.{key}");
                match (got.get(key), want.get(key)) {
                    (Some(g), Some(w)) => json_differences(&here, g, w, out),
                    (Some(g), None) => out.push(format!("{here}: unexpected {g}")),
                    (None, Some(w)) => out.push(format!("{here}: missing, want {w}")),
                    (None, None) => {}
                }
            }
        }
        (Value::Array(g), Value::Array(w)) if g.len() == w.len() => {
            for (index, (g, w)) in g.iter().zip(w).enumerate() {
                json_differences(&format!("{path}[{index}]"), g, w, out);
            }
        }
        _ if got == want => {}
        _ => out.push(format!("{path}: got {got}, want {want}")),
    }
}

fn assert_same_json(got: &Value, want: &Value) {
    let mut differences = Vec::new();
    json_differences("col", got, want, &mut differences);
    assert!(differences.is_empty(), "{}", differences.join("\n"));
}

fn by_id(list: &Value) -> Value {
    Value::Object(
        list.as_array()
            .unwrap()
            .iter()
            .map(|object| (object["id"].to_string(), object.clone()))
            .collect(),
    )
}

fn assert_schema11_shape(conn: &Connection) {
    assert_eq!(schema_version(conn).unwrap(), 11);
    assert_eq!(query_value::<String>(conn, "PRAGMA integrity_check"), "ok");
    assert_eq!(
        query_column::<String>(
            conn,
            "SELECT name FROM sqlite_master WHERE type = 'table' \
             AND name NOT LIKE 'sqlite_%' ORDER BY name"
        ),
        ["cards", "col", "graves", "notes", "revlog"]
    );
    assert_eq!(
        rows(
            conn,
            "SELECT name, pk FROM pragma_table_info('graves') ORDER BY cid"
        ),
        [["usn", "oid", "type"]
            .map(|name| vec![SqlValue::Text(name.into()), SqlValue::Integer(0)])]
        .concat()
    );
    let graves_sql =
        query_column::<String>(conn, "SELECT sql FROM sqlite_master WHERE name = 'graves'");
    assert!(!graves_sql[0].to_uppercase().contains("WITHOUT ROWID"));
    let mut want_indexes: Vec<&str> = SCHEMA11_INDEXES.iter().map(|(name, _)| *name).collect();
    want_indexes.sort();
    assert_eq!(
        query_column::<String>(
            conn,
            "SELECT name FROM sqlite_master WHERE type = 'index' ORDER BY name"
        ),
        want_indexes
    );
    let stale_statistics = query_column::<String>(
        conn,
        "SELECT tbl || '/' || coalesce(idx, '') FROM sqlite_stat1 \
         WHERE tbl NOT IN (SELECT name FROM sqlite_master) \
         OR (idx IS NOT NULL AND idx NOT IN (SELECT name FROM sqlite_master))",
    );
    assert!(stale_statistics.is_empty(), "{stale_statistics:?}");
}

#[test]
fn converts_the_real_schema18_fixture_to_what_anki_shows() {
    let (_dir, path) = fixture_copy();
    let conn = open_collection(&path).unwrap();
    assert_eq!(schema_version(&conn).unwrap(), 18);
    let data_queries = [
        "SELECT * FROM notes ORDER BY id",
        "SELECT * FROM cards ORDER BY id",
        "SELECT * FROM revlog ORDER BY id",
        "SELECT usn, oid, type FROM graves ORDER BY oid, type",
        "SELECT id, crt, mod, scm, dty, usn, ls FROM col",
    ];
    let before: Vec<_> = data_queries.iter().map(|sql| rows(&conn, sql)).collect();

    convert_to_schema11(&conn).unwrap();
    let path = finish(&conn, &path);
    drop(conn);
    let conn = open_collection(&path).unwrap();
    assert_schema11_shape(&conn);
    assert_eq!(
        query_value::<String>(&conn, "PRAGMA journal_mode"),
        "delete"
    );
    let after: Vec<_> = data_queries.iter().map(|sql| rows(&conn, sql)).collect();
    assert_eq!(
        after, before,
        "notes, cards, revlog, graves and col metadata are kept"
    );

    let expected = expected();
    let counts = &expected["counts"];
    for (index, table) in ["notes", "cards", "revlog", "graves"].iter().enumerate() {
        assert_eq!(json!(after[index].len()), counts[*table], "{table}");
    }
    assert!(
        !after[3].is_empty(),
        "the fixture has graves to carry across"
    );

    // Anki's Python API shows exactly the schema-11 JSON that its backend writes when it
    // downgrades, so every object must match in full: ids, `mod`, `usn`, legacy keys and
    // all. Only two things differ in form: the API lists objects where the column maps
    // `"<id>"` to them, and it lists tag names where the column maps each name to its usn
    // (that usn comes from the fixture's tags table, dumped alongside).
    let got = col_objects(&conn);
    let want = json!({
        "models": by_id(&expected["models"]),
        "decks": by_id(&expected["decks"]),
        "dconf": by_id(&expected["dconf"]),
        "conf": expected["conf"],
        "tags": expected["tag_usns"],
    });
    assert_same_json(&got, &want);
    let mut tag_names: Vec<&String> = got["tags"].as_object().unwrap().keys().collect();
    tag_names.sort();
    let mut want_names: Vec<&str> = expected["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|tag| tag.as_str().unwrap())
        .collect();
    want_names.sort();
    assert_eq!(tag_names, want_names);

    // Spot checks of the quirks, so a regenerated fixture cannot silently lose them.
    let decks = got["decks"].as_object().unwrap();
    let child = named(&got["decks"], "Parent::Child");
    assert_eq!(child["desiredRetention"], 87);
    assert_eq!(child["md"], true);
    assert_eq!(child["myDeckKey"], json!({"kept": ["as", "is"]}));
    assert!(child["newToday"][0].as_i64().unwrap() > 0);
    let filtered = decks.values().find(|d| d["dyn"] == 1).unwrap();
    assert_eq!(filtered["separate"], true);
    assert_eq!(filtered["terms"][0], json!(["tag:geo*", 50, 1]));
    let custom = named(&got["dconf"], "Custom options");
    assert_eq!(custom["new"]["order"], 0);
    assert_eq!(custom["new"]["initialFactor"], 2300);
    assert_eq!(custom["autoplay"], false);
    assert_eq!(custom["replayq"], false);
    assert_eq!(custom["new"]["myNewKey"], "nested legacy key");
    let vocab = named(&got["models"], "Vocab (custom)");
    assert_eq!(vocab["sortf"], 1);
    assert_eq!(vocab["tmpls"][1]["myTmplKey"], 42);
    assert_eq!(vocab["flds"][2]["media"], json!(["legacy-field-key.jpg"]));
}

/// The object called `name` in a map of objects by id (`decks`, `dconf`, `models`).
fn named<'a>(objects: &'a Value, name: &str) -> &'a Value {
    objects
        .as_object()
        .unwrap()
        .values()
        .find(|object| object["name"] == name)
        .unwrap()
}

/// Converts a copy of the fixture after `prepare` has reshaped it, and checks the result
/// is a clean schema-11 file.
fn convert_variant(prepare: impl FnOnce(&Connection)) -> Value {
    let (_dir, path) = fixture_copy();
    let conn = open_collection(&path).unwrap();
    prepare(&conn);
    convert_to_schema11(&conn).unwrap();
    let finished = finish(&conn, &path);
    let conn = open_collection(&finished).unwrap();
    assert_schema11_shape(&conn);
    col_objects(&conn)
}

fn as_schema17(conn: &Connection) {
    conn.execute_batch(
        "ALTER TABLE graves RENAME TO graves18;
         CREATE TABLE graves (usn integer NOT NULL, oid integer NOT NULL, type integer NOT NULL);
         INSERT INTO graves SELECT usn, oid, type FROM graves18;
         DROP TABLE graves18;
         UPDATE col SET ver = 17;",
    )
    .unwrap();
}

fn as_schema16(conn: &Connection) {
    as_schema17(conn);
    conn.execute_batch(
        "CREATE TEMP TABLE tags17 AS SELECT tag, usn FROM tags;
         DROP TABLE tags;
         CREATE TABLE tags (tag text NOT NULL PRIMARY KEY COLLATE unicase, usn integer NOT NULL)
             WITHOUT ROWID;
         INSERT INTO tags SELECT tag, usn FROM tags17;
         UPDATE col SET ver = 16;",
    )
    .unwrap();
}

fn as_schema15(conn: &Connection) {
    as_schema16(conn);
    let configs = rows(conn, "SELECT id, config FROM deck_config");
    for row in configs {
        let (SqlValue::Integer(id), SqlValue::Blob(bytes)) = (&row[0], &row[1]) else {
            panic!("unexpected deck_config row {row:?}");
        };
        let mut config = DeckConfigConfig::decode(bytes.as_slice()).unwrap();
        config.initial_ease *= 100.0;
        conn.execute(
            "UPDATE deck_config SET config = ?1 WHERE id = ?2",
            params![config.encode_to_vec(), id],
        )
        .unwrap();
    }
    conn.execute_batch("UPDATE col SET ver = 15").unwrap();
}

#[test]
fn schemas_15_to_17_give_the_same_json_as_18() {
    let from_18 = convert_variant(|_| {});
    assert_same_json(&convert_variant(as_schema17), &from_18);
    assert_same_json(&convert_variant(as_schema16), &from_18);
    assert_same_json(&convert_variant(as_schema15), &from_18);
}

#[test]
fn schema_14_gives_the_same_json_as_18() {
    let from_18 = convert_variant(|_| {});
    let from_14 = convert_variant(|conn| {
        // Schema 14 is schema 11 with deck configs, config and tags moved into tables,
        // deck configs still as JSON.
        convert_to_schema11(conn).unwrap();
        let objects = col_objects(conn);
        conn.execute_batch(
            "CREATE TABLE deck_config (id integer PRIMARY KEY NOT NULL,
                 name text NOT NULL COLLATE unicase, mtime_secs integer NOT NULL,
                 usn integer NOT NULL, config blob NOT NULL);
             CREATE TABLE config (KEY text NOT NULL PRIMARY KEY, usn integer NOT NULL,
                 mtime_secs integer NOT NULL, val blob NOT NULL) WITHOUT ROWID;
             CREATE TABLE tags (tag text NOT NULL PRIMARY KEY COLLATE unicase,
                 usn integer NOT NULL) WITHOUT ROWID;
             UPDATE col SET ver = 14, dconf = '', conf = '', tags = '';",
        )
        .unwrap();
        for (id, config) in objects["dconf"].as_object().unwrap() {
            conn.execute(
                "INSERT INTO deck_config VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    id.parse::<i64>().unwrap(),
                    config["name"].as_str().unwrap(),
                    config["mod"].as_i64().unwrap(),
                    config["usn"].as_i64().unwrap(),
                    serde_json::to_vec(config).unwrap(),
                ],
            )
            .unwrap();
        }
        for (key, value) in objects["conf"].as_object().unwrap() {
            conn.execute(
                "INSERT INTO config VALUES (?1, 0, 0, ?2)",
                params![key, serde_json::to_vec(value).unwrap()],
            )
            .unwrap();
        }
        for (tag, usn) in objects["tags"].as_object().unwrap() {
            conn.execute(
                "INSERT INTO tags VALUES (?1, ?2)",
                params![tag, usn.as_i64().unwrap()],
            )
            .unwrap();
        }
    });
    assert_same_json(&from_14, &from_18);
}

#[test]
fn schema_11_is_left_as_it_is() {
    let (_dir, path) = fixture_copy();
    let conn = open_collection(&path).unwrap();
    convert_to_schema11(&conn).unwrap();
    let before = rows(&conn, "SELECT * FROM col");
    let schema_before = rows(&conn, "SELECT * FROM sqlite_master ORDER BY name");
    convert_to_schema11(&conn).unwrap();
    assert_eq!(rows(&conn, "SELECT * FROM col"), before);
    assert_eq!(
        rows(&conn, "SELECT * FROM sqlite_master ORDER BY name"),
        schema_before
    );
}

/// Runs the conversion on a damaged copy of the fixture, and checks nothing was changed.
fn conversion_error(damage: impl FnOnce(&Connection)) -> ConvertError {
    let (_dir, path) = fixture_copy();
    let conn = open_collection(&path).unwrap();
    damage(&conn);
    let before = rows(&conn, "SELECT * FROM col");
    let schema_before = rows(&conn, "SELECT * FROM sqlite_master ORDER BY name");
    let err = convert_to_schema11(&conn).unwrap_err();
    assert_eq!(rows(&conn, "SELECT * FROM col"), before, "rolled back");
    assert_eq!(
        rows(&conn, "SELECT * FROM sqlite_master ORDER BY name"),
        schema_before,
        "rolled back"
    );
    assert!(conn.is_autocommit(), "no transaction left open");
    err
}

fn assert_corrupt(err: ConvertError, mentioning: &str) {
    match err {
        ConvertError::Corrupt(message) => {
            assert!(
                message.contains(mentioning),
                "{message:?} should mention {mentioning:?}"
            )
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

/// Replaces deck 1's `common` blob with one whose `other` holds `other`.
fn set_deck_other(conn: &Connection, other: &[u8]) {
    let common = DeckCommon {
        other: other.to_vec(),
        ..Default::default()
    };
    conn.execute(
        "UPDATE decks SET common = ?1 WHERE id = 1",
        [common.encode_to_vec()],
    )
    .unwrap();
}

#[test]
fn damaged_blobs_and_json_are_reported_and_change_nothing() {
    assert_corrupt(
        conversion_error(|conn| {
            conn.execute_batch(
                "UPDATE notetypes SET config = x'ffffffff' \
                 WHERE id = (SELECT min(id) FROM notetypes)",
            )
            .unwrap();
        }),
        "invalid protobuf",
    );
    assert_corrupt(
        conversion_error(|conn| set_deck_other(conn, b"{not json")),
        "`other` is not JSON",
    );
    assert_corrupt(
        conversion_error(|conn| set_deck_other(conn, b"[1, 2]")),
        "not a JSON object",
    );
    assert_corrupt(
        conversion_error(|conn| {
            conn.execute_batch("UPDATE decks SET kind = x'' WHERE id = 1")
                .unwrap();
        }),
        "neither normal nor filtered",
    );
    assert_corrupt(
        conversion_error(|conn| {
            conn.execute_batch("UPDATE config SET val = CAST('{' AS BLOB) WHERE key = 'curDeck'")
                .unwrap();
        }),
        "config `curDeck` is not JSON",
    );
    assert_corrupt(
        conversion_error(|conn| {
            conn.execute_batch("DROP TABLE fields").unwrap();
        }),
        "no `fields` table",
    );
    assert_corrupt(
        conversion_error(|conn| {
            conn.execute_batch("DROP TABLE revlog").unwrap();
        }),
        "no `revlog` table",
    );
    assert_corrupt(
        conversion_error(|conn| {
            conn.execute_batch("DELETE FROM col").unwrap();
        }),
        "no row",
    );
}

#[test]
fn schema_11_with_invalid_json_is_reported() {
    let (_dir, path) = fixture_copy();
    let conn = open_collection(&path).unwrap();
    convert_to_schema11(&conn).unwrap();
    conn.execute_batch("UPDATE col SET decks = 'not json'")
        .unwrap();
    assert_corrupt(convert_to_schema11(&conn).unwrap_err(), "col.decks");
    conn.execute_batch("UPDATE col SET decks = '{}', models = '[]'")
        .unwrap();
    assert_corrupt(convert_to_schema11(&conn).unwrap_err(), "col.models");
    assert!(conn.is_autocommit());
}

#[test]
fn versions_clients_refuse_are_refused() {
    for version in [10, 12, 13, 19] {
        let err = conversion_error(|conn| {
            conn.execute("UPDATE col SET ver = ?1", [version]).unwrap();
        });
        assert!(
            matches!(err, ConvertError::UnsupportedVersion(v) if v == version),
            "{err:?}"
        );
    }
}

/// An in-memory database with the schema-18 tables of decks and notetypes, empty.
pub(super) fn schema18_tables() -> Connection {
    let conn = Connection::open_in_memory().unwrap();
    crate::collection::sqlite::register_unicase(&conn).unwrap();
    conn.execute_batch(
        "CREATE TABLE decks (id integer PRIMARY KEY NOT NULL, name text NOT NULL COLLATE unicase,
             mtime_secs integer NOT NULL, usn integer NOT NULL, common blob NOT NULL,
             kind blob NOT NULL);
         CREATE TABLE notetypes (id integer NOT NULL PRIMARY KEY,
             name text NOT NULL COLLATE unicase, mtime_secs integer NOT NULL,
             usn integer NOT NULL, config blob NOT NULL);
         CREATE TABLE fields (ntid integer NOT NULL, ord integer NOT NULL,
             name text NOT NULL COLLATE unicase, config blob NOT NULL,
             PRIMARY KEY (ntid, ord)) WITHOUT ROWID;
         CREATE TABLE templates (ntid integer NOT NULL, ord integer NOT NULL,
             name text NOT NULL COLLATE unicase, mtime_secs integer NOT NULL,
             usn integer NOT NULL, config blob NOT NULL,
             PRIMARY KEY (ntid, ord)) WITHOUT ROWID;",
    )
    .unwrap();
    conn
}

/// The design's round trip with the real client: a schema-18 upload, converted here, then
/// downloaded and opened (upgraded) by Anki, must show what the client uploaded. Needs
/// `ANKI_PYTHON` pointing at a Python with the `anki` package, e.g.
/// `ANKI_PYTHON=$PWD/.venv/bin/python cargo test -p anki-sidecar --lib collection -- --ignored`.
#[test]
#[ignore = "needs the anki Python package (set ANKI_PYTHON)"]
fn real_client_reads_back_the_converted_fixture() {
    let (_dir, path) = fixture_copy();
    let conn = open_collection(&path).unwrap();
    convert_to_schema11(&conn).unwrap();
    let path = finish(&conn, &path);
    drop(conn);
    real_client_checks(&path, &["--expected", EXPECTED, "--add-notes"]);
}

/// Runs `tests/fixtures/check_schema11_opens.py` on the collection at `path` with the Python
/// that `ANKI_PYTHON` names, and fails unless the real client finds no problem.
pub(crate) fn real_client_checks(path: &Path, options: &[&str]) {
    let python = std::env::var("ANKI_PYTHON").expect("set ANKI_PYTHON");
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/check_schema11_opens.py"
    );
    let output = std::process::Command::new(python)
        .arg(script)
        .arg(path)
        .args(options)
        .output()
        .unwrap();
    println!("{}", String::from_utf8_lossy(&output.stdout));
    eprintln!("{}", String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "the real client found problems");
}

/// A schema-11 collection at `path` with `filler` notes of about 500 bytes each, in
/// `page_size` pages; the rows past `kept` are deleted again, leaving their pages free.
fn collection_with_free_pages(path: &Path, page_size: i64, filler: i64, kept: i64) {
    crate::collection::schema11::create_new_collection(path, 1_795_336_565_177, 1_795_320_000)
        .unwrap();
    let conn = Connection::open(path).unwrap();
    conn.execute_batch(&format!(
        "PRAGMA page_size = {page_size}; VACUUM;
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {filler})
         INSERT INTO notes SELECT i, 'g' || i, 1, 0, 0, '', randomblob(500), 'x', 0, 0, ''
         FROM n;
         DELETE FROM notes WHERE id > {kept};"
    ))
    .unwrap();
}

fn free_and_total_pages(conn: &Connection) -> (i64, i64) {
    (
        query_value(conn, "PRAGMA freelist_count"),
        query_value(conn, "PRAGMA page_count"),
    )
}

#[test]
fn a_file_with_few_free_pages_is_finished_in_place_without_a_copy() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("few-free.anki2");
    collection_with_free_pages(&path, 4096, 1000, 900);
    let conn = open_collection(&path).unwrap();
    let (free, pages) = free_and_total_pages(&conn);
    assert!(free > 0 && free * 4 <= pages, "{free} of {pages}");
    let copy = dir.path().join("copy.anki2");
    assert_eq!(
        finish_as_standalone_file(&conn, &copy).unwrap(),
        Finished::InPlace
    );
    assert!(!copy.exists());
    drop(conn);
    let conn = open_collection(&path).unwrap();
    assert_eq!(
        query_value::<String>(&conn, "PRAGMA journal_mode"),
        "delete"
    );
    assert_eq!(query_value::<i64>(&conn, "SELECT count(*) FROM notes"), 900);
}

#[test]
fn a_mostly_free_file_is_compacted_into_the_copy() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mostly-free.anki2");
    collection_with_free_pages(&path, 4096, 1000, 100);
    let conn = open_collection(&path).unwrap();
    let (free, pages) = free_and_total_pages(&conn);
    assert!(free * 4 > pages, "{free} of {pages}");
    let copy = dir.path().join("copy.anki2");
    std::fs::File::create(&copy).unwrap();
    assert_eq!(
        finish_as_standalone_file(&conn, &copy).unwrap(),
        Finished::Compacted
    );
    drop(conn);
    let conn = open_collection(&copy).unwrap();
    let (free, pages_after) = free_and_total_pages(&conn);
    assert_eq!(free, 0);
    assert!(pages_after < pages, "{pages_after} of {pages}");
    assert_eq!(
        query_value::<String>(&conn, "PRAGMA journal_mode"),
        "delete"
    );
    assert_eq!(query_value::<String>(&conn, "PRAGMA integrity_check"), "ok");
    assert_eq!(query_value::<i64>(&conn, "SELECT count(*) FROM notes"), 100);
}

#[test]
fn a_file_of_another_page_size_is_rewritten_in_4_kib_pages() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("small-pages.anki2");
    collection_with_free_pages(&path, 1024, 200, 200);
    let conn = open_collection(&path).unwrap();
    assert_eq!(query_value::<i64>(&conn, "PRAGMA page_size"), 1024);
    let copy = dir.path().join("copy.anki2");
    assert_eq!(
        finish_as_standalone_file(&conn, &copy).unwrap(),
        Finished::Compacted
    );
    drop(conn);
    let conn = open_collection(&copy).unwrap();
    assert_eq!(query_value::<i64>(&conn, "PRAGMA page_size"), 4096);
    assert_eq!(
        query_value::<String>(&conn, "PRAGMA journal_mode"),
        "delete"
    );
    assert_eq!(query_value::<i64>(&conn, "SELECT count(*) FROM notes"), 200);
}
