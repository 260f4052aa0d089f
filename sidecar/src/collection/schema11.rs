//! The schema-11 layout and a new collection for a new user (docs/sync-protocol.md#schema-11,
//! docs/sync-protocol.md#a-new-collection).
//!
//! A new collection is built as schema 11: the JSON columns of `col` carry the default config,
//! deck 1, deck config 1 and the stock notetypes. Clients upgrade it when they download it.
//! The defaults below are the ones Anki itself writes into a new collection; the ignored test
//! `real_client_opens_a_new_collection` compares them with a collection Anki made.

use std::fs::File;
use std::path::Path;

use anyhow::Context;
use rusqlite::Connection;
use serde_json::{Map, Value, json};

/// The five tables of schema 11.
pub const SCHEMA11_TABLES: &str = "
CREATE TABLE col (
    id integer PRIMARY KEY,
    crt integer NOT NULL,
    mod integer NOT NULL,
    scm integer NOT NULL,
    ver integer NOT NULL,
    dty integer NOT NULL,
    usn integer NOT NULL,
    ls integer NOT NULL,
    conf text NOT NULL,
    models text NOT NULL,
    decks text NOT NULL,
    dconf text NOT NULL,
    tags text NOT NULL
);
CREATE TABLE notes (
    id integer PRIMARY KEY,
    guid text NOT NULL,
    mid integer NOT NULL,
    mod integer NOT NULL,
    usn integer NOT NULL,
    tags text NOT NULL,
    flds text NOT NULL,
    sfld integer NOT NULL,
    csum integer NOT NULL,
    flags integer NOT NULL,
    data text NOT NULL
);
CREATE TABLE cards (
    id integer PRIMARY KEY,
    nid integer NOT NULL,
    did integer NOT NULL,
    ord integer NOT NULL,
    mod integer NOT NULL,
    usn integer NOT NULL,
    type integer NOT NULL,
    queue integer NOT NULL,
    due integer NOT NULL,
    ivl integer NOT NULL,
    factor integer NOT NULL,
    reps integer NOT NULL,
    lapses integer NOT NULL,
    left integer NOT NULL,
    odue integer NOT NULL,
    odid integer NOT NULL,
    flags integer NOT NULL,
    data text NOT NULL
);
CREATE TABLE revlog (
    id integer PRIMARY KEY,
    cid integer NOT NULL,
    usn integer NOT NULL,
    ease integer NOT NULL,
    ivl integer NOT NULL,
    lastIvl integer NOT NULL,
    factor integer NOT NULL,
    time integer NOT NULL,
    type integer NOT NULL
);
CREATE TABLE graves (
    usn integer NOT NULL,
    oid integer NOT NULL,
    type integer NOT NULL
);
";

/// The seven indexes of schema 11: (name, `table (columns)`).
pub const SCHEMA11_INDEXES: [(&str, &str); 7] = [
    ("ix_notes_usn", "notes (usn)"),
    ("ix_cards_usn", "cards (usn)"),
    ("ix_revlog_usn", "revlog (usn)"),
    ("ix_cards_nid", "cards (nid)"),
    ("ix_cards_sched", "cards (did, queue, due)"),
    ("ix_revlog_cid", "revlog (cid)"),
    ("ix_notes_csum", "notes (csum)"),
];

/// `CREATE INDEX IF NOT EXISTS` statements for [`SCHEMA11_INDEXES`].
pub fn schema11_index_ddl() -> String {
    SCHEMA11_INDEXES
        .iter()
        .map(|(name, on)| format!("CREATE INDEX IF NOT EXISTS {name} ON {on};\n"))
        .collect()
}

const CARD_CSS: &str = ".card {\n    font-family: arial;\n    font-size: 20px;\n    line-height: 1.5;\n    text-align: center;\n    color: black;\n    background-color: white;\n}\n";
const CLOZE_CSS: &str = ".cloze {\n    font-weight: bold;\n    color: blue;\n}\n.nightMode .cloze {\n    color: lightblue;\n}\n";
pub const LATEX_PRE: &str = "\\documentclass[12pt]{article}\n\\special{papersize=3in,5in}\n\\usepackage[utf8]{inputenc}\n\\usepackage{amssymb,amsmath}\n\\pagestyle{empty}\n\\setlength{\\parindent}{0in}\n\\begin{document}\n";
pub const LATEX_POST: &str = "\\end{document}";

const BASIC_ANSWER: &str = "{{FrontSide}}\n\n<hr id=answer>\n\n{{Back}}";
const REVERSED_ANSWER: &str = "{{FrontSide}}\n\n<hr id=answer>\n\n{{Front}}";

struct StockField {
    name: &'static str,
    /// Cloze notetypes mark which field is which, so renamed fields are still recognised.
    tag: Option<u32>,
    prevent_deletion: bool,
}

const fn plain_field(name: &'static str) -> StockField {
    StockField {
        name,
        tag: None,
        prevent_deletion: false,
    }
}

struct StockTemplate {
    name: &'static str,
    question: &'static str,
    answer: &'static str,
}

const fn template(
    name: &'static str,
    question: &'static str,
    answer: &'static str,
) -> StockTemplate {
    StockTemplate {
        name,
        question,
        answer,
    }
}

/// The fields of the basic notetypes, and the first card of all three.
const FRONT_AND_BACK: &[StockField] = &[plain_field("Front"), plain_field("Back")];
const FRONT_CARD: StockTemplate = template("Card 1", "{{Front}}", BASIC_ANSWER);

struct StockNotetype {
    name: &'static str,
    /// 0 standard, 1 cloze
    kind: u8,
    /// `originalStockKind`: 1 basic … 5 cloze
    stock_kind: u8,
    fields: &'static [StockField],
    templates: &'static [StockTemplate],
    /// `req`, the legacy card-generation rules, as Anki computes them for these templates:
    /// (card ordinal, "any"/"all", the field ordinals the question needs).
    requirements: &'static [(u32, &'static str, &'static [u32])],
}

/// Anki's order; the first becomes `curModel`. Image Occlusion is left out: clients add it
/// themselves the first time the user picks it.
const STOCK_NOTETYPES: [StockNotetype; 5] = [
    StockNotetype {
        name: "Basic",
        kind: 0,
        stock_kind: 1,
        requirements: &[(0, "any", &[0])],
        fields: FRONT_AND_BACK,
        templates: &[FRONT_CARD],
    },
    StockNotetype {
        name: "Basic (and reversed card)",
        kind: 0,
        stock_kind: 2,
        requirements: &[(0, "any", &[0]), (1, "any", &[1])],
        fields: FRONT_AND_BACK,
        templates: &[FRONT_CARD, template("Card 2", "{{Back}}", REVERSED_ANSWER)],
    },
    StockNotetype {
        name: "Basic (optional reversed card)",
        kind: 0,
        stock_kind: 3,
        requirements: &[(0, "any", &[0]), (1, "all", &[1, 2])],
        fields: &[
            plain_field("Front"),
            plain_field("Back"),
            plain_field("Add Reverse"),
        ],
        templates: &[
            FRONT_CARD,
            template(
                "Card 2",
                "{{#Add Reverse}}{{Back}}{{/Add Reverse}}",
                REVERSED_ANSWER,
            ),
        ],
    },
    StockNotetype {
        name: "Basic (type in the answer)",
        kind: 0,
        stock_kind: 4,
        requirements: &[(0, "any", &[0, 1])],
        fields: FRONT_AND_BACK,
        templates: &[template(
            "Card 1",
            "{{Front}}\n\n{{type:Back}}",
            "{{Front}}\n\n<hr id=answer>\n\n{{type:Back}}",
        )],
    },
    StockNotetype {
        name: "Cloze",
        kind: 1,
        stock_kind: 5,
        requirements: &[(0, "any", &[0])],
        fields: &[
            StockField {
                name: "Text",
                tag: Some(0),
                prevent_deletion: true,
            },
            StockField {
                name: "Back Extra",
                tag: Some(1),
                prevent_deletion: false,
            },
        ],
        templates: &[template(
            "Cloze",
            "{{cloze:Text}}",
            "{{cloze:Text}}<br>\n{{Back Extra}}",
        )],
    },
];

/// The JSON of each item, made with its ordinal, as notetypes list fields and templates.
fn with_ords<T>(items: &[T], json: impl Fn(&T, usize) -> Value) -> Vec<Value> {
    items
        .iter()
        .enumerate()
        .map(|(ord, item)| json(item, ord))
        .collect()
}

fn stock_notetype_json(id: i64, stock: &StockNotetype) -> Value {
    // Field and template ids are random 64-bit numbers, as in Anki: imports use them to
    // recognise the same field across collections.
    let fields = with_ords(stock.fields, |field, ord| {
        json!({
            "name": field.name, "ord": ord, "sticky": false, "rtl": false,
            "font": "Arial", "size": 20, "description": "", "plainText": false,
            "collapsed": false, "excludeFromSearch": false, "id": rand::random::<i64>(),
            "tag": field.tag, "preventDeletion": field.prevent_deletion,
        })
    });
    let templates = with_ords(stock.templates, |template, ord| {
        json!({
            "name": template.name, "ord": ord, "qfmt": template.question,
            "afmt": template.answer, "bqfmt": "", "bafmt": "", "did": null, "bfont": "",
            "bsize": 0, "id": rand::random::<i64>(),
        })
    });
    let css = if stock.kind == 1 {
        format!("{CARD_CSS}{CLOZE_CSS}")
    } else {
        CARD_CSS.to_string()
    };
    let requirements: Vec<Value> = stock
        .requirements
        .iter()
        .map(|(card, kind, fields)| json!([card, kind, fields]))
        .collect();
    // `mod` 0 and `usn` 0 as in a collection Anki creates: nothing to send in a normal sync.
    json!({
        "id": id, "name": stock.name, "type": stock.kind, "mod": 0, "usn": 0, "sortf": 0,
        "did": null, "tmpls": templates, "flds": fields, "css": css,
        "latexPre": LATEX_PRE, "latexPost": LATEX_POST, "latexsvg": false,
        "req": requirements, "originalStockKind": stock.stock_kind,
    })
}

/// The stock notetypes as `(id, JSON)`, Basic first. Ids count up from `first_id` (ms), as
/// Anki's do.
pub fn stock_notetypes(first_id: i64) -> Vec<(i64, Value)> {
    STOCK_NOTETYPES
        .iter()
        .zip(first_id..)
        .map(|(stock, id)| (id, stock_notetype_json(id, stock)))
        .collect()
}

/// Deck 1, "Default", with every key the client's parser requires (docs/sync-protocol.md#decks).
pub fn default_deck() -> Value {
    json!({
        "id": 1, "mod": 0, "name": "Default", "usn": 0,
        "lrnToday": [0, 0], "revToday": [0, 0], "newToday": [0, 0], "timeToday": [0, 0],
        "collapsed": true, "browserCollapsed": true, "desc": "", "dyn": 0, "conf": 1,
        "extendNew": 0, "extendRev": 0, "reviewLimit": null, "newLimit": null,
        "reviewLimitToday": null, "newLimitToday": null, "desiredRetention": null,
    })
}

/// Deck config 1, "Default", with the defaults of a new collection
/// (docs/sync-protocol.md#schema-18-blobs, docs/sync-protocol.md#deck-configs).
pub fn default_deck_config() -> Value {
    json!({
        "id": 1, "mod": 0, "name": "Default", "usn": 0, "maxTaken": 60, "autoplay": true,
        "timer": 0, "replayq": true,
        "new": {"bury": false, "delays": [1.0, 10.0], "initialFactor": 2500, "ints": [1, 4, 0],
                "order": 1, "perDay": 20},
        "rev": {"bury": false, "ease4": 1.3, "ivlFct": 1.0, "maxIvl": 36500, "perDay": 200,
                "hardFactor": 1.2},
        "lapse": {"delays": [10.0], "leechAction": 1, "leechFails": 8, "minInt": 1, "mult": 0.0},
        "dyn": false, "newMix": 0, "newPerDayMinimum": 0, "interdayLearningMix": 0,
        "reviewOrder": 0, "newSortOrder": 0, "newGatherPriority": 0,
        "buryInterdayLearning": false, "fsrsWeights": [], "fsrsParams5": [], "fsrsParams6": [],
        "desiredRetention": 0.9, "ignoreRevlogsBeforeDate": "",
        "easyDaysPercentages": [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0],
        "stopTimerOnAnswer": false, "secondsToShowQuestion": 0.0, "secondsToShowAnswer": 0.0,
        "questionAction": 0, "answerAction": 0, "waitForAudio": true, "sm2Retention": 0.9,
        "weightSearch": "",
    })
}

/// The default config (docs/sync-protocol.md#a-new-collection), with `curModel` pointing at Basic.
/// `schedVer` 2 and `sched2021` matter: without them clients fall back to the v1 scheduler and
/// refuse to study. `creationOffset` is null because the server does not know the user's time zone.
pub fn default_config(basic_id: i64) -> Value {
    json!({
        "activeDecks": [1], "curDeck": 1, "newSpread": 0, "collapseTime": 1200, "timeLim": 0,
        "estTimes": true, "dueCounts": true, "curModel": basic_id, "nextPos": 1,
        "sortType": "noteFld", "sortBackwards": false, "addToCur": true,
        "dayLearnFirst": false, "schedVer": 2, "creationOffset": null, "sched2021": true,
    })
}

fn write_new_collection(conn: &mut Connection, now_ms: i64, crt_secs: i64) -> anyhow::Result<()> {
    // page_size only takes effect before the first table exists.
    conn.execute_batch("PRAGMA page_size = 4096; PRAGMA legacy_file_format = OFF;")?;
    conn.query_row("PRAGMA journal_mode = DELETE", [], |_| Ok(()))?;
    let tx = conn.transaction()?;
    tx.execute_batch(SCHEMA11_TABLES)?;
    tx.execute_batch(&schema11_index_ddl())?;
    let notetypes = stock_notetypes(now_ms);
    let basic_id = notetypes[0].0;
    let models: Map<String, Value> = notetypes
        .into_iter()
        .map(|(id, notetype)| (id.to_string(), notetype))
        .collect();
    tx.execute(
        "INSERT INTO col (id, crt, mod, scm, ver, dty, usn, ls, conf, models, decks, dconf, tags) \
         VALUES (1, ?1, 0, ?2, 11, 0, 0, 0, ?3, ?4, ?5, ?6, '{}')",
        rusqlite::params![
            crt_secs,
            now_ms,
            default_config(basic_id).to_string(),
            Value::Object(models).to_string(),
            json!({"1": default_deck()}).to_string(),
            json!({"1": default_deck_config()}).to_string(),
        ],
    )?;
    tx.commit()?;
    Ok(())
}

/// Creates a new schema-11 collection at `path`. It is built in a temporary file in the same
/// folder, synced, and renamed into place, so a crash never leaves a half-written collection.
/// An existing file at `path` is never replaced: that would destroy a user's collection.
pub fn create_new_collection(path: &Path, now_ms: i64, crt_secs: i64) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let temp = tempfile::Builder::new()
        .prefix(".new-collection-")
        .suffix(".anki2")
        .tempfile_in(dir)
        .context("creating a temporary file for the new collection")?;
    {
        let mut conn = Connection::open(temp.path())?;
        write_new_collection(&mut conn, now_ms, crt_secs)?;
        conn.close().map_err(|(_, err)| err)?;
    }
    temp.as_file().sync_all()?;
    temp.persist_noclobber(path)
        .map_err(|err| err.error)
        .with_context(|| format!("moving the new collection to {}", path.display()))?;
    File::open(dir)?.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW_MS: i64 = 1_795_336_565_177;
    const CRT: i64 = 1_795_320_000;

    fn col_json(conn: &Connection, column: &str) -> Value {
        let text: String = conn
            .query_row(&format!("SELECT {column} FROM col"), [], |r| r.get(0))
            .unwrap();
        serde_json::from_str(&text).unwrap()
    }

    fn assert_has_keys(object: &Value, keys: &[&str], what: &str) {
        for key in keys {
            assert!(object.get(key).is_some(), "{what} lacks `{key}`: {object}");
        }
    }

    #[test]
    fn a_new_collection_is_valid_schema_11_with_the_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("collection.anki2");
        create_new_collection(&path, NOW_MS, CRT).unwrap();
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(
            leftovers,
            vec![std::ffi::OsString::from("collection.anki2")]
        );

        let conn = Connection::open(&path).unwrap();
        let pragma = |name: &str| -> String {
            conn.query_row(&format!("PRAGMA {name}"), [], |r| {
                r.get::<_, rusqlite::types::Value>(0)
            })
            .map(|v| match v {
                rusqlite::types::Value::Integer(i) => i.to_string(),
                rusqlite::types::Value::Text(t) => t,
                other => format!("{other:?}"),
            })
            .unwrap()
        };
        assert_eq!(pragma("integrity_check"), "ok");
        assert_eq!(pragma("journal_mode"), "delete");
        assert_eq!(pragma("page_size"), "4096");

        let row: (i64, i64, i64, i64, i64, i64, i64, i64) = conn
            .query_row(
                "SELECT id, crt, mod, scm, ver, dty, usn, ls FROM col",
                [],
                |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                        r.get(6)?,
                        r.get(7)?,
                    ))
                },
            )
            .unwrap();
        assert_eq!(row, (1, CRT, 0, NOW_MS, 11, 0, 0, 0));

        let indexes: Vec<String> = crate::collection::test_support::query_column(
            &conn,
            "SELECT name FROM sqlite_master WHERE type = 'index' ORDER BY name",
        );
        let mut want: Vec<String> = SCHEMA11_INDEXES
            .iter()
            .map(|(n, _)| n.to_string())
            .collect();
        want.sort();
        assert_eq!(indexes, want);

        let conf = col_json(&conn, "conf");
        assert_eq!(conf["schedVer"], 2);
        assert_eq!(conf["sched2021"], true);
        assert_eq!(conf["curDeck"], 1);
        assert_eq!(conf["activeDecks"], json!([1]));

        let models = col_json(&conn, "models");
        let models = models.as_object().unwrap();
        let names: Vec<&str> = models
            .values()
            .map(|m| m["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "Basic",
                "Basic (and reversed card)",
                "Basic (optional reversed card)",
                "Basic (type in the answer)",
                "Cloze"
            ]
        );
        assert_eq!(models[&conf["curModel"].to_string()]["name"], "Basic");
        let mut ids = std::collections::HashSet::new();
        for (key, model) in models {
            assert_eq!(
                key,
                &model["id"].to_string(),
                "models are keyed by their id"
            );
            assert_has_keys(
                model,
                &[
                    "id",
                    "name",
                    "type",
                    "mod",
                    "usn",
                    "sortf",
                    "did",
                    "tmpls",
                    "flds",
                    "css",
                    "latexPre",
                    "latexPost",
                    "latexsvg",
                    "req",
                ],
                "notetype",
            );
            assert!(ids.insert(model["id"].as_i64().unwrap()));
            for field in model["flds"].as_array().unwrap() {
                assert_has_keys(
                    field,
                    &["name", "ord", "sticky", "rtl", "font", "size", "id"],
                    "field",
                );
                assert!(ids.insert(field["id"].as_i64().unwrap()));
            }
            for template in model["tmpls"].as_array().unwrap() {
                assert_has_keys(template, &["name", "ord", "qfmt", "afmt", "id"], "template");
                assert!(ids.insert(template["id"].as_i64().unwrap()));
            }
        }
        let cloze = models.values().find(|m| m["name"] == "Cloze").unwrap();
        assert_eq!(cloze["type"], 1);
        assert!(cloze["css"].as_str().unwrap().contains(".cloze"));

        let decks = col_json(&conn, "decks");
        assert_eq!(decks.as_object().unwrap().len(), 1);
        assert_has_keys(
            &decks["1"],
            &[
                "id",
                "mod",
                "name",
                "usn",
                "lrnToday",
                "revToday",
                "newToday",
                "timeToday",
                "collapsed",
                "dyn",
                "conf",
            ],
            "deck",
        );
        assert_eq!(decks["1"]["name"], "Default");
        assert_eq!(decks["1"]["conf"], 1);

        let dconf = col_json(&conn, "dconf");
        assert_eq!(dconf.as_object().unwrap().len(), 1);
        let default = &dconf["1"];
        assert_has_keys(
            default,
            &[
                "id", "mod", "name", "usn", "maxTaken", "autoplay", "timer", "new", "rev", "lapse",
            ],
            "deck config",
        );
        assert_has_keys(
            &default["new"],
            &["delays", "initialFactor", "ints", "order", "perDay"],
            "new",
        );
        assert_has_keys(
            &default["rev"],
            &["ease4", "ivlFct", "maxIvl", "perDay"],
            "rev",
        );
        assert_has_keys(
            &default["lapse"],
            &["delays", "leechAction", "leechFails", "minInt", "mult"],
            "lapse",
        );
        assert_eq!(default["new"]["perDay"], 20);
        assert_eq!(default["rev"]["perDay"], 200);

        assert_eq!(col_json(&conn, "tags"), json!({}));
        for table in ["notes", "cards", "revlog", "graves"] {
            let rows: i64 = conn
                .query_row(&format!("SELECT count() FROM {table}"), [], |r| r.get(0))
                .unwrap();
            assert_eq!(rows, 0, "{table}");
        }
    }

    #[test]
    fn an_existing_collection_is_never_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("collection.anki2");
        std::fs::write(&path, b"precious").unwrap();
        assert!(create_new_collection(&path, NOW_MS, CRT).is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"precious");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    /// Opens a new collection with the real Anki library and compares it with one Anki made.
    /// Needs `ANKI_PYTHON` pointing at a Python with the `anki` package, e.g.
    /// `ANKI_PYTHON=$PWD/.venv/bin/python cargo test -p anki-sidecar --lib collection -- --ignored`.
    #[test]
    #[ignore = "needs the anki Python package (set ANKI_PYTHON)"]
    fn real_client_opens_a_new_collection() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("collection.anki2");
        create_new_collection(&path, crate::clock::now_millis(), CRT).unwrap();
        crate::collection::convert::tests::real_client_checks(
            &path,
            &["--compare-stock", "--add-notes"],
        );
    }
}
