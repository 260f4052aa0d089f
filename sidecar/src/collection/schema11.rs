//! The schema-11 layout and a new collection for a new user (protocol §7.4, §7.5).
//!
//! A new collection is built as schema 11: the JSON columns of `col` carry the default config,
//! deck 1, deck config 1 and the stock notetypes. Clients upgrade it when they download it.

use std::path::Path;

use anyhow::Context;
use serde_json::{Value, json};

/// The five old tables and seven `ix_*` indexes.
pub const SCHEMA11_DDL: &str = "
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
CREATE INDEX ix_notes_usn ON notes (usn);
CREATE INDEX ix_cards_usn ON cards (usn);
CREATE INDEX ix_revlog_usn ON revlog (usn);
CREATE INDEX ix_cards_nid ON cards (nid);
CREATE INDEX ix_cards_sched ON cards (did, queue, due);
CREATE INDEX ix_revlog_cid ON revlog (cid);
CREATE INDEX ix_notes_csum ON notes (csum);
";

const DEFAULT_CSS: &str = ".card {\n    font-family: arial;\n    font-size: 20px;\n    text-align: center;\n    color: black;\n    background-color: white;\n}\n";
const CLOZE_CSS_EXTRA: &str = "\n.cloze {\n    font-weight: bold;\n    color: blue;\n}\n.nightMode .cloze {\n    color: lightblue;\n}\n";
const LATEX_PRE: &str = "\\documentclass[12pt]{article}\n\\special{papersize=3in,5in}\n\\usepackage[utf8]{inputenc}\n\\usepackage{amssymb,amsmath}\n\\pagestyle{empty}\n\\setlength{\\parindent}{0in}\n\\begin{document}\n";
const LATEX_POST: &str = "\\end{document}";

/// Field and template ids are random 63-bit numbers in Anki; here they are derived from the
/// notetype id so that a new collection is reproducible in tests.
fn derived_id(notetype_id: i64, salt: i64) -> i64 {
    (notetype_id.wrapping_mul(1_000_003) ^ salt.wrapping_mul(0x5851_f42d_4c95_7f2d)).abs()
}

fn field(notetype_id: i64, ord: usize, name: &str) -> Value {
    json!({
        "name": name, "ord": ord, "sticky": false, "rtl": false, "font": "Arial", "size": 20,
        "description": "", "plainText": false, "collapsed": false, "excludeFromSearch": false,
        "id": derived_id(notetype_id, 100 + ord as i64), "tag": null, "preventDeletion": false,
    })
}

fn template(notetype_id: i64, ord: usize, name: &str, question: &str, answer: &str) -> Value {
    json!({
        "name": name, "ord": ord, "qfmt": question, "afmt": answer, "bqfmt": "", "bafmt": "",
        "did": null, "bfont": "", "bsize": 0, "id": derived_id(notetype_id, 200 + ord as i64),
    })
}

struct StockNotetype<'a> {
    name: &'a str,
    kind: i64,
    stock_kind: i64,
    fields: &'a [&'a str],
    /// (name, question, answer)
    templates: &'a [(&'a str, &'a str, &'a str)],
    /// `req` entries: (card ordinal, "any"/"all", field ordinals)
    requirements: Value,
}

fn notetype(id: i64, now_secs: i64, stock: &StockNotetype<'_>) -> Value {
    let css = if stock.kind == 1 {
        format!("{DEFAULT_CSS}{CLOZE_CSS_EXTRA}")
    } else {
        DEFAULT_CSS.to_string()
    };
    json!({
        "id": id, "name": stock.name, "type": stock.kind, "mod": now_secs, "usn": 0,
        "sortf": 0, "did": null,
        "tmpls": stock.templates.iter().enumerate()
            .map(|(ord, (name, q, a))| template(id, ord, name, q, a)).collect::<Vec<_>>(),
        "flds": stock.fields.iter().enumerate()
            .map(|(ord, name)| field(id, ord, name)).collect::<Vec<_>>(),
        "css": css, "latexPre": LATEX_PRE, "latexPost": LATEX_POST, "latexsvg": false,
        "req": stock.requirements, "originalStockKind": stock.stock_kind,
    })
}

const BASIC_ANSWER: &str = "{{FrontSide}}\n\n<hr id=answer>\n\n{{Back}}";
const REVERSE_ANSWER: &str = "{{FrontSide}}\n\n<hr id=answer>\n\n{{Front}}";

/// The stock notetypes, keyed by id, with Basic first (it becomes `curModel`).
pub fn stock_notetypes(first_id: i64, now_secs: i64) -> Vec<(i64, Value)> {
    let stock = [
        StockNotetype {
            name: "Basic",
            kind: 0,
            stock_kind: 1,
            fields: &["Front", "Back"],
            templates: &[("Card 1", "{{Front}}", BASIC_ANSWER)],
            requirements: json!([[0, "any", [0]]]),
        },
        StockNotetype {
            name: "Basic (and reversed card)",
            kind: 0,
            stock_kind: 2,
            fields: &["Front", "Back"],
            templates: &[
                ("Card 1", "{{Front}}", BASIC_ANSWER),
                ("Card 2", "{{Back}}", REVERSE_ANSWER),
            ],
            requirements: json!([[0, "any", [0]], [1, "any", [1]]]),
        },
        StockNotetype {
            name: "Basic (optional reversed card)",
            kind: 0,
            stock_kind: 3,
            fields: &["Front", "Back", "Add Reverse"],
            templates: &[
                ("Card 1", "{{Front}}", BASIC_ANSWER),
                (
                    "Card 2",
                    "{{#Add Reverse}}{{Back}}{{/Add Reverse}}",
                    REVERSE_ANSWER,
                ),
            ],
            requirements: json!([[0, "any", [0]], [1, "all", [1, 2]]]),
        },
        StockNotetype {
            name: "Basic (type in the answer)",
            kind: 0,
            stock_kind: 4,
            fields: &["Front", "Back"],
            templates: &[(
                "Card 1",
                "{{Front}}\n\n{{type:Back}}",
                "{{Front}}\n\n<hr id=answer>\n\n{{type:Back}}",
            )],
            requirements: json!([[0, "any", [0]]]),
        },
        StockNotetype {
            name: "Cloze",
            kind: 1,
            stock_kind: 5,
            fields: &["Text", "Back Extra"],
            templates: &[(
                "Cloze",
                "{{cloze:Text}}",
                "{{cloze:Text}}<br>\n{{Back Extra}}",
            )],
            requirements: json!([[0, "any", [0]]]),
        },
    ];
    stock
        .iter()
        .enumerate()
        .map(|(index, notetype_spec)| {
            let id = first_id + index as i64;
            (id, notetype(id, now_secs, notetype_spec))
        })
        .collect()
}

/// Deck 1, "Default", with every key the client's parser requires (protocol §8.2).
pub fn default_deck() -> Value {
    json!({
        "id": 1, "mod": 0, "name": "Default", "usn": 0,
        "lrnToday": [0, 0], "revToday": [0, 0], "newToday": [0, 0], "timeToday": [0, 0],
        "collapsed": true, "browserCollapsed": true, "desc": "", "dyn": 0, "conf": 1,
        "extendNew": 0, "extendRev": 0, "reviewLimit": null, "newLimit": null,
        "reviewLimitToday": null, "newLimitToday": null,
    })
}

/// Deck config 1, "Default", with the defaults of a new collection (protocol §7.3, §8.3).
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

/// The default config (protocol §7.5), with `curModel` pointing at Basic.
pub fn default_config(basic_id: i64) -> Value {
    json!({
        "activeDecks": [1], "curDeck": 1, "newSpread": 0, "collapseTime": 1200, "timeLim": 0,
        "estTimes": true, "dueCounts": true, "curModel": basic_id, "nextPos": 1,
        "sortType": "noteFld", "sortBackwards": false, "addToCur": true,
        "dayLearnFirst": false, "schedVer": 2, "creationOffset": null, "sched2021": true,
    })
}

/// Creates a new schema-11 collection at `path`, atomically: it is built in a temporary
/// file in the same folder and renamed into place.
pub fn create_new_collection(path: &Path, now_ms: i64, crt_secs: i64) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .context("the collection path has no parent folder")?;
    let temp = tempfile::Builder::new()
        .prefix(".new-collection-")
        .tempfile_in(dir)?;
    {
        let conn = rusqlite::Connection::open(temp.path())?;
        conn.execute_batch("PRAGMA page_size = 4096; PRAGMA journal_mode = DELETE;")?;
        conn.execute_batch(SCHEMA11_DDL)?;
        let notetypes = stock_notetypes(now_ms, now_ms / 1000);
        let basic_id = notetypes[0].0;
        let models: serde_json::Map<String, Value> = notetypes
            .into_iter()
            .map(|(id, notetype)| (id.to_string(), notetype))
            .collect();
        conn.execute(
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
    }
    let kept = temp.into_temp_path().keep()?;
    if let Err(err) = crate::storage::atomic_replace(&kept, path) {
        let _ = std::fs::remove_file(&kept);
        return Err(err).context("moving the new collection into place");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_collection_is_valid_and_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("collection.anki2");
        create_new_collection(&path, 1_795_336_565_177, 1_795_320_000).unwrap();
        let conn = rusqlite::Connection::open(&path).unwrap();
        let integrity: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(integrity, "ok");
        let (modified, schema, ver, usn, conf, models, decks, dconf): (
            i64,
            i64,
            i64,
            i64,
            String,
            String,
            String,
            String,
        ) = conn
            .query_row(
                "SELECT mod, scm, ver, usn, conf, models, decks, dconf FROM col",
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
        assert_eq!((modified, schema, ver, usn), (0, 1_795_336_565_177, 11, 0));
        let conf: Value = serde_json::from_str(&conf).unwrap();
        assert_eq!(conf["schedVer"], 2);
        assert_eq!(conf["sched2021"], true);
        let models: Value = serde_json::from_str(&models).unwrap();
        let names: Vec<&str> = models
            .as_object()
            .unwrap()
            .values()
            .map(|m| m["name"].as_str().unwrap())
            .collect();
        assert!(names.contains(&"Basic") && names.contains(&"Cloze"));
        assert_eq!(models[conf["curModel"].to_string()]["name"], "Basic");
        let decks: Value = serde_json::from_str(&decks).unwrap();
        assert_eq!(decks["1"]["name"], "Default");
        let dconf: Value = serde_json::from_str(&dconf).unwrap();
        assert_eq!(dconf["1"]["new"]["perDay"], 20);
        let journal: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(journal, "delete");
    }
}
