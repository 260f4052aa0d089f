//! Deck configs: schema 14 keeps them as JSON rows of the `deck_config` table, 15 and later
//! as protobuf rows; schema 11 as JSON in `col.dconf`.

use super::super::proto::DeckConfigConfig;
use super::values::{float, floats};
use rusqlite::Connection;
use serde_json::{Value, json};

use super::values::objects_by_id;
use super::values::{bytes_column, decode, into_object, legacy_keys, merge_legacy_keys};
use super::{ConvertError, corrupt};
use crate::collection::json::JsonObject;

// Keys of modelled fields. Anki removes them from `other` before merging it back, so a stale
// copy in `other` never overrides the real value (rslib `RESERVED_*_KEYS`).
const RESERVED_DECK_CONFIG_KEYS: &[&str] = &[
    "id",
    "newSortOrder",
    "replayq",
    "newPerDayMinimum",
    "usn",
    "autoplay",
    "dyn",
    "maxTaken",
    "reviewOrder",
    "buryInterdayLearning",
    "newMix",
    "mod",
    "timer",
    "name",
    "interdayLearningMix",
    "newGatherPriority",
    "fsrsWeights",
    "fsrsParams5",
    "fsrsParams6",
    "desiredRetention",
    "stopTimerOnAnswer",
    "secondsToShowQuestion",
    "secondsToShowAnswer",
    "questionAction",
    "answerAction",
    "waitForAudio",
    "sm2Retention",
    "weightSearch",
    "ignoreRevlogsBeforeDate",
    "easyDaysPercentages",
];
const RESERVED_DECK_CONFIG_NEW_KEYS: &[&str] =
    &["order", "delays", "bury", "perDay", "initialFactor", "ints"];
const RESERVED_DECK_CONFIG_REV_KEYS: &[&str] =
    &["maxIvl", "hardFactor", "ease4", "ivlFct", "perDay", "bury"];
const RESERVED_DECK_CONFIG_LAPSE_KEYS: &[&str] =
    &["leechFails", "mult", "leechAction", "delays", "minInt"];

// ---------------------------------------------------------------------------------------------
// Deck configs (docs/sync-protocol.md#deck-configs)

#[derive(Clone, Copy)]
pub(super) enum InitialEase {
    /// 2.5 means 250%: schema 16 and later.
    Ratio,
    /// 250.0 means 250%: schema 15 only.
    Percent,
}

pub(super) fn deck_configs_from_tables(
    conn: &Connection,
    ease: InitialEase,
) -> Result<JsonObject, ConvertError> {
    let sql = "SELECT id, name, mtime_secs, usn, config FROM deck_config ORDER BY id";
    objects_by_id(conn, sql, "deck config", |id, what, row| {
        let mut config: DeckConfigConfig = decode(&bytes_column(row, 4, what)?, what)?;
        if let InitialEase::Percent = ease {
            config.initial_ease /= 100.0;
            // Anki's 15→16 upgrade resets the too-low eases schema 15 wrote by mistake.
            if config.initial_ease <= 1.3 {
                config.initial_ease = 2.5;
            }
        }
        deck_config_json(id, row.get(1)?, row.get(2)?, row.get(3)?, config, what)
    })
}

fn deck_config_json(
    id: i64,
    name: String,
    mtime_secs: i64,
    usn: i64,
    c: DeckConfigConfig,
    what: &str,
) -> Result<JsonObject, ConvertError> {
    let mut legacy = legacy_keys(&c.other, RESERVED_DECK_CONFIG_KEYS, what)?;
    // Legacy keys of `new`, `rev` and `lapse` are kept nested under those names.
    let mut nested_legacy =
        |section: &str, reserved: &[&str]| -> Result<JsonObject, ConvertError> {
            match legacy.remove(section) {
                None => Ok(JsonObject::new()),
                Some(Value::Object(mut keys)) => {
                    keys.retain(|key, _| !reserved.contains(&key.as_str()));
                    Ok(keys)
                }
                Some(_) => Err(corrupt(format!(
                    "{what}: legacy `{section}` is not an object"
                ))),
            }
        };
    let new_legacy = nested_legacy("new", RESERVED_DECK_CONFIG_NEW_KEYS)?;
    let rev_legacy = nested_legacy("rev", RESERVED_DECK_CONFIG_REV_KEYS)?;
    let lapse_legacy = nested_legacy("lapse", RESERVED_DECK_CONFIG_LAPSE_KEYS)?;

    let mut new = into_object(json!({
        "bury": c.bury_new,
        "delays": floats(&c.learn_steps),
        // 2.5 in schema 18 is 2500 in JSON; Anki truncates after f32 arithmetic.
        "initialFactor": (c.initial_ease * 1000.0) as u16,
        "ints": [c.graduating_interval_good as u16, c.graduating_interval_easy as u16, 0],
        // Inverted: protobuf 0 = due, 1 = random; JSON 1 = due, 0 = random.
        "order": if c.new_card_insert_order == 1 { 0 } else { 1 },
        "perDay": c.new_per_day,
    }));
    merge_legacy_keys(&mut new, new_legacy);
    let mut rev = into_object(json!({
        "bury": c.bury_reviews,
        "ease4": float(c.easy_multiplier),
        "ivlFct": float(c.interval_multiplier),
        "maxIvl": c.maximum_review_interval,
        "perDay": c.reviews_per_day,
        "hardFactor": float(c.hard_multiplier),
    }));
    merge_legacy_keys(&mut rev, rev_legacy);
    let mut lapse = into_object(json!({
        "delays": floats(&c.relearn_steps),
        // JSON knows only 0 (suspend) and 1 (tag only); Anki maps anything else to suspend.
        "leechAction": if c.leech_action == 1 { 1 } else { 0 },
        "leechFails": c.leech_threshold,
        "minInt": c.minimum_lapse_interval,
        "mult": float(c.lapse_multiplier),
    }));
    merge_legacy_keys(&mut lapse, lapse_legacy);

    let mut config = into_object(json!({
        "id": id,
        "mod": mtime_secs,
        "name": name,
        "usn": usn,
        "maxTaken": c.cap_answer_time_to_secs as i32,
        "autoplay": !c.disable_autoplay,
        "timer": u8::from(c.show_timer),
        "replayq": !c.skip_question_when_replaying_answer,
        "new": new,
        "rev": rev,
        "lapse": lapse,
        "dyn": false,
        "newMix": c.new_mix,
        "newPerDayMinimum": c.new_per_day_minimum,
        "interdayLearningMix": c.interday_learning_mix,
        "reviewOrder": c.review_order,
        "newSortOrder": c.new_card_sort_order,
        "newGatherPriority": c.new_card_gather_priority,
        "buryInterdayLearning": c.bury_interday_learning,
        "fsrsWeights": floats(&c.fsrs_params_4),
        "fsrsParams5": floats(&c.fsrs_params_5),
        "fsrsParams6": floats(&c.fsrs_params_6),
        "desiredRetention": float(c.desired_retention),
        "ignoreRevlogsBeforeDate": c.ignore_revlogs_before_date,
        "easyDaysPercentages": floats(&c.easy_days_percentages),
        "stopTimerOnAnswer": c.stop_timer_on_answer,
        "secondsToShowQuestion": float(c.seconds_to_show_question),
        "secondsToShowAnswer": float(c.seconds_to_show_answer),
        // JSON enums with fewer members than the protobuf ones; unknown values fall back to
        // the first member, as in Anki.
        "questionAction": if c.question_action == 1 { 1 } else { 0 },
        "answerAction": if (1..=4).contains(&c.answer_action) { c.answer_action } else { 0 },
        "waitForAudio": c.wait_for_audio,
        "sm2Retention": float(c.historical_retention),
        "weightSearch": c.param_search,
    }));
    merge_legacy_keys(&mut config, legacy);
    Ok(config)
}

/// Schema 14 kept each deck config as its schema-11 JSON in the blob.
pub(super) fn deck_configs_from_json_rows(conn: &Connection) -> Result<JsonObject, ConvertError> {
    let sql = "SELECT id, config FROM deck_config ORDER BY id";
    objects_by_id(conn, sql, "deck config", |id, what, row| {
        let mut config = match serde_json::from_slice(&bytes_column(row, 1, what)?) {
            Ok(Value::Object(object)) => object,
            _ => return Err(corrupt(format!("{what} is not a JSON object"))),
        };
        // The row id is authoritative: old clients sometimes left a stale inner id.
        config.insert("id".into(), json!(id));
        Ok(config)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deck_config_quirks_follow_anki() {
        let config = DeckConfigConfig {
            new_card_insert_order: 1,
            disable_autoplay: true,
            skip_question_when_replaying_answer: true,
            show_timer: true,
            initial_ease: 2.3,
            easy_multiplier: 1.3,
            leech_action: 7,
            answer_action: 9,
            question_action: 1,
            graduating_interval_good: 2,
            graduating_interval_easy: 5,
            learn_steps: vec![1.0, 10.0, 0.5],
            other: serde_json::to_vec(&json!({
                "new": {"order": 5, "perDay": 999, "extraNew": true},
                "lapse": {"mult": 9, "extraLapse": [1]},
                "autoplay": true,
                "maxTaken": 5,
                "addonKey": {"a": 1},
            }))
            .unwrap(),
            ..Default::default()
        };
        let json =
            Value::Object(deck_config_json(7, "Opts".into(), 123, -1, config, "test").unwrap());
        assert_eq!(json["new"]["order"], 0, "protobuf 1 (random) is JSON 0");
        assert_eq!(
            json["new"]["perDay"], 0,
            "reserved legacy keys never override"
        );
        assert_eq!(json["new"]["extraNew"], true);
        assert_eq!(json["new"]["initialFactor"], 2300);
        assert_eq!(json["new"]["ints"], json!([2, 5, 0]));
        assert_eq!(json["new"]["delays"], json!([1.0, 10.0, 0.5]));
        assert_eq!(json["lapse"]["mult"], 0.0);
        assert_eq!(json["lapse"]["extraLapse"], json!([1]));
        assert_eq!(json["lapse"]["leechAction"], 0);
        assert_eq!(json["rev"]["ease4"], 1.3);
        assert_eq!(json["autoplay"], false);
        assert_eq!(json["replayq"], false);
        assert_eq!(json["timer"], 1);
        assert_eq!(json["maxTaken"], 0);
        assert_eq!(json["answerAction"], 0);
        assert_eq!(json["questionAction"], 1);
        assert_eq!(json["addonKey"], json!({"a": 1}));
        assert_eq!(
            (json["id"].clone(), json["mod"].clone(), json["usn"].clone()),
            (json!(7), json!(123), json!(-1))
        );
        assert_eq!(json["dyn"], false);

        let due_order = DeckConfigConfig::default();
        let json = deck_config_json(1, "D".into(), 0, 0, due_order, "test").unwrap();
        assert_eq!(json["new"]["order"], 1, "protobuf 0 (due) is JSON 1");
        assert_eq!(json["autoplay"], true);
        assert_eq!(json["replayq"], true);
    }
}
