//! Decks: schema 15 and later keep them in the `decks` table; schema 11 as JSON in
//! `col.decks`.

use super::super::proto::{
    DayLimit, DeckCommon, DeckKind, DeckKindContainer, FilteredDeck, NormalDeck,
};
use super::values::floats;
use rusqlite::Connection;
use serde_json::{Value, json};

use super::values::objects_by_id;
use super::values::{bytes_column, decode, into_object, legacy_keys, merge_legacy_keys};
use super::{ConvertError, corrupt};
use crate::collection::json::JsonObject;

// Keys of modelled fields. Anki removes them from `other` before merging it back, so a stale
// copy in `other` never overrides the real value (rslib `RESERVED_*_KEYS`).
const RESERVED_DECK_KEYS: &[&str] = &[
    "usn",
    "revToday",
    "newLimit",
    "dyn",
    "reviewLimit",
    "newToday",
    "timeToday",
    "reviewLimitToday",
    "extendNew",
    "mod",
    "newLimitToday",
    "desc",
    "name",
    "lrnToday",
    "conf",
    "browserCollapsed",
    "extendRev",
    "id",
    "collapsed",
    "desiredRetention",
];

// ---------------------------------------------------------------------------------------------
// Decks (docs/sync-protocol.md#decks)

pub(super) fn decks_from_tables(conn: &Connection) -> Result<JsonObject, ConvertError> {
    let sql = "SELECT id, name, mtime_secs, usn, common, kind FROM decks ORDER BY id";
    objects_by_id(conn, sql, "deck", |id, what, row| {
        let common: DeckCommon = decode(&bytes_column(row, 4, what)?, what)?;
        let kind: DeckKindContainer = decode(&bytes_column(row, 5, what)?, what)?;
        let kind = kind
            .kind
            .ok_or_else(|| corrupt(format!("{what} is neither normal nor filtered")))?;
        // Schema 18 separates deck name levels with U+001F; JSON uses "::".
        let name = row.get::<_, String>(1)?.replace('\u{1f}', "::");
        // Schema 18 keeps one "last studied" day for all four counters.
        let day = common.last_day_studied as i32;
        let (description, markdown) = match &kind {
            DeckKind::Normal(normal) => (normal.description.clone(), normal.markdown_description),
            DeckKind::Filtered(_) => (String::new(), false),
        };
        let mut deck = into_object(json!({
            "id": id,
            "mod": row.get::<_, i64>(2)?,
            "name": name,
            "usn": row.get::<_, i64>(3)?,
            "lrnToday": [day, common.learning_studied],
            "revToday": [day, common.review_studied],
            "newToday": [day, common.new_studied],
            "timeToday": [day, common.milliseconds_studied],
            "collapsed": common.study_collapsed,
            "browserCollapsed": common.browser_collapsed,
            "desc": description,
        }));
        if markdown {
            deck.insert("md".into(), json!(true));
        }
        match kind {
            DeckKind::Normal(normal) => {
                deck.insert("dyn".into(), json!(0));
                deck.extend(normal_deck_keys(normal));
            }
            DeckKind::Filtered(filtered) => {
                deck.insert("dyn".into(), json!(1));
                deck.extend(filtered_deck_keys(filtered));
            }
        }
        merge_legacy_keys(
            &mut deck,
            legacy_keys(&common.other, RESERVED_DECK_KEYS, what)?,
        );
        Ok(deck)
    })
}

fn day_limit_json(limit: Option<DayLimit>) -> Value {
    limit.map_or(
        Value::Null,
        |limit| json!({"limit": limit.limit, "today": limit.today}),
    )
}

fn normal_deck_keys(normal: NormalDeck) -> JsonObject {
    into_object(json!({
        "conf": normal.config_id,
        "extendNew": normal.extend_new as i32,
        "extendRev": normal.extend_review as i32,
        "reviewLimit": normal.review_limit,
        "newLimit": normal.new_limit,
        "reviewLimitToday": day_limit_json(normal.review_limit_today),
        "newLimitToday": day_limit_json(normal.new_limit_today),
        // A fraction in schema 18, a whole percent in JSON; Anki truncates (f32 arithmetic).
        "desiredRetention": normal.desired_retention.map(|retention| (retention * 100.0) as u32),
    }))
}

fn filtered_deck_keys(filtered: FilteredDeck) -> JsonObject {
    let terms: Vec<Value> = filtered
        .search_terms
        .iter()
        .map(|term| json!([term.search, term.limit as i32, term.order]))
        .collect();
    into_object(json!({
        "resched": filtered.reschedule,
        "terms": terms,
        // Unused, but older clients require it.
        "separate": true,
        "delays": if filtered.delays.is_empty() { Value::Null } else { floats(&filtered.delays) },
        "previewDelay": filtered.preview_delay,
        "previewAgainSecs": filtered.preview_again_secs,
        "previewHardSecs": filtered.preview_hard_secs,
        "previewGoodSecs": filtered.preview_good_secs,
    }))
}

#[cfg(test)]
mod tests {
    use prost::Message;
    use rusqlite::params;

    use super::*;
    use crate::collection::convert::tests::schema18_tables;
    use crate::collection::proto::SearchTerm;

    #[test]
    fn deck_quirks_follow_anki() {
        let common = DeckCommon {
            study_collapsed: true,
            last_day_studied: 42,
            new_studied: 3,
            review_studied: 4,
            learning_studied: 5,
            milliseconds_studied: 6000,
            other: serde_json::to_vec(&json!({"conf": 9, "desc": "stale", "myKey": 1})).unwrap(),
            ..Default::default()
        };
        let normal = DeckKindContainer {
            kind: Some(DeckKind::Normal(NormalDeck {
                config_id: 3,
                extend_new: 2,
                description: "about".into(),
                markdown_description: true,
                review_limit: Some(0),
                new_limit_today: Some(DayLimit {
                    limit: 5,
                    today: 42,
                }),
                desired_retention: Some(0.87),
                ..Default::default()
            })),
        };
        let filtered = DeckKindContainer {
            kind: Some(DeckKind::Filtered(FilteredDeck {
                reschedule: true,
                search_terms: vec![SearchTerm {
                    search: "is:due".into(),
                    limit: 100,
                    order: 6,
                }],
                preview_again_secs: 60,
                ..Default::default()
            })),
        };
        let decks = converted(
            &common,
            &[
                (10, "Top\u{1f}Sub\u{1f}Leaf", &normal),
                (11, "Cram", &filtered),
            ],
        );
        let normal = &decks["10"];
        assert_eq!(normal["name"], "Top::Sub::Leaf");
        assert_eq!(normal["newToday"], json!([42, 3]));
        assert_eq!(normal["revToday"], json!([42, 4]));
        assert_eq!(normal["lrnToday"], json!([42, 5]));
        assert_eq!(normal["timeToday"], json!([42, 6000]));
        assert_eq!(normal["conf"], 3, "reserved legacy keys never override");
        assert_eq!(normal["desc"], "about");
        assert_eq!(normal["md"], true);
        assert_eq!(normal["dyn"], 0);
        assert_eq!(normal["reviewLimit"], 0);
        assert_eq!(normal["newLimit"], Value::Null);
        assert_eq!(normal["newLimitToday"], json!({"limit": 5, "today": 42}));
        assert_eq!(normal["reviewLimitToday"], Value::Null);
        assert_eq!(normal["desiredRetention"], 87);
        assert_eq!(normal["myKey"], 1);
        assert_eq!(normal["collapsed"], true);
        assert_eq!(normal["browserCollapsed"], false);

        let filtered = &decks["11"];
        assert_eq!(filtered["dyn"], 1);
        assert_eq!(filtered["resched"], true);
        assert_eq!(filtered["terms"], json!([["is:due", 100, 6]]));
        assert_eq!(filtered["separate"], true);
        assert_eq!(filtered["delays"], Value::Null);
        assert_eq!(filtered["previewAgainSecs"], 60);
        assert_eq!(
            filtered["desc"], "",
            "filtered decks have no description in schema 18"
        );
        assert!(
            filtered.get("conf").is_none(),
            "a reserved legacy key is not resurrected"
        );
        assert!(filtered.get("md").is_none());
        assert_eq!(filtered["myKey"], 1);
    }

    /// The schema-11 `decks` of schema-18 deck rows `(id, name, kind)` sharing `common`.
    fn converted(common: &DeckCommon, rows: &[(i64, &str, &DeckKindContainer)]) -> JsonObject {
        let conn = schema18_tables();
        for (id, name, kind) in rows {
            conn.execute(
                "INSERT INTO decks VALUES (?1, ?2, 100, 7, ?3, ?4)",
                params![id, name, common.encode_to_vec(), kind.encode_to_vec()],
            )
            .unwrap();
        }
        decks_from_tables(&conn).unwrap()
    }
}
