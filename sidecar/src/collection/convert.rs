//! Converting an uploaded collection (schema 11 or 14–18) to schema 11 in place
//! (design §4, protocol §7.3, §7.4, §8).
//!
//! Every field the JSON form can carry is kept: the protobuf `other` field (255) holds the
//! legacy JSON keys that Anki does not model, and they are merged back into the objects, so a
//! full upload followed by a full download gives the client back what it sent.

use prost::Message;
use rusqlite::{Connection, OptionalExtension};
use serde_json::{Map, Value, json};

use super::proto::{
    CardRequirement, DeckCommon, DeckConfigConfig, DeckKind, DeckKindContainer, FieldConfig,
    NotetypeConfig, TemplateConfig,
};

#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error("unsupported schema version {0}")]
    UnsupportedVersion(i64),
    #[error("corrupt collection: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
}

fn corrupt(message: impl Into<String>) -> ConvertError {
    ConvertError::Corrupt(message.into())
}

type JsonObject = Map<String, Value>;

pub fn schema_version(conn: &Connection) -> Result<i64, ConvertError> {
    Ok(conn.query_row("SELECT ver FROM col WHERE id = 1", [], |row| row.get(0))?)
}

fn table_exists(conn: &Connection, name: &str) -> Result<bool, ConvertError> {
    Ok(conn
        .query_row(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1",
            [name],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

/// Floats are stored as f32; printing them through f32 keeps `1.3` from becoming
/// `1.2999999523162842` in JSON.
fn float(value: f32) -> Value {
    format!("{value}")
        .parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
        .map_or(Value::Null, Value::Number)
}

fn floats(values: &[f32]) -> Value {
    Value::Array(values.iter().copied().map(float).collect())
}

/// Merges the legacy keys kept in a protobuf `other` field into `object`, without
/// overwriting keys the typed fields produced.
fn merge_other(object: &mut JsonObject, other: &[u8]) -> Result<(), ConvertError> {
    if other.is_empty() {
        return Ok(());
    }
    let extra: JsonObject = serde_json::from_slice(other)
        .map_err(|err| corrupt(format!("invalid JSON in an `other` field: {err}")))?;
    for (key, value) in extra {
        match (object.get_mut(&key), value) {
            (Some(Value::Object(existing)), Value::Object(nested)) => {
                for (nested_key, nested_value) in nested {
                    existing.entry(nested_key).or_insert(nested_value);
                }
            }
            (Some(_), _) => {}
            (None, value) => {
                object.insert(key, value);
            }
        }
    }
    Ok(())
}

fn decode<M: Message + Default>(bytes: &[u8], what: &str) -> Result<M, ConvertError> {
    M::decode(bytes).map_err(|err| corrupt(format!("invalid {what} protobuf: {err}")))
}

fn as_object(value: Value) -> JsonObject {
    match value {
        Value::Object(object) => object,
        _ => JsonObject::new(),
    }
}

fn optional<T: Into<Value>>(value: Option<T>) -> Value {
    value.map_or(Value::Null, Into::into)
}

fn requirement(req: &CardRequirement) -> Value {
    let kind = match req.kind {
        1 => "any",
        2 => "all",
        _ => "none",
    };
    json!([req.card_ord, kind, req.field_ords])
}

fn notetypes_json(conn: &Connection) -> Result<JsonObject, ConvertError> {
    let mut fields_by_notetype: std::collections::HashMap<i64, Vec<Value>> = Default::default();
    {
        let mut statement =
            conn.prepare("SELECT ntid, ord, name, config FROM fields ORDER BY ntid, ord")?;
        let mut rows = statement.query([])?;
        while let Some(row) = rows.next()? {
            let notetype_id: i64 = row.get(0)?;
            let ord: i64 = row.get(1)?;
            let name: String = row.get(2)?;
            let config: FieldConfig = decode(&row.get::<_, Vec<u8>>(3)?, "field")?;
            let mut field = as_object(json!({
                "name": name, "ord": ord, "sticky": config.sticky, "rtl": config.rtl,
                "font": config.font_name, "size": config.font_size,
                "description": config.description, "plainText": config.plain_text,
                "collapsed": config.collapsed, "excludeFromSearch": config.exclude_from_search,
                "id": optional(config.id), "tag": optional(config.tag),
                "preventDeletion": config.prevent_deletion,
            }));
            merge_other(&mut field, &config.other)?;
            fields_by_notetype
                .entry(notetype_id)
                .or_default()
                .push(Value::Object(field));
        }
    }
    let mut templates_by_notetype: std::collections::HashMap<i64, Vec<Value>> = Default::default();
    {
        let mut statement =
            conn.prepare("SELECT ntid, ord, name, config FROM templates ORDER BY ntid, ord")?;
        let mut rows = statement.query([])?;
        while let Some(row) = rows.next()? {
            let notetype_id: i64 = row.get(0)?;
            let ord: i64 = row.get(1)?;
            let name: String = row.get(2)?;
            let config: TemplateConfig = decode(&row.get::<_, Vec<u8>>(3)?, "template")?;
            let deck = (config.target_deck_id != 0).then_some(config.target_deck_id);
            let mut template = as_object(json!({
                "name": name, "ord": ord, "qfmt": config.q_format, "afmt": config.a_format,
                "bqfmt": config.q_format_browser, "bafmt": config.a_format_browser,
                "did": optional(deck), "bfont": config.browser_font_name,
                "bsize": config.browser_font_size, "id": optional(config.id),
            }));
            merge_other(&mut template, &config.other)?;
            templates_by_notetype
                .entry(notetype_id)
                .or_default()
                .push(Value::Object(template));
        }
    }

    let mut models = JsonObject::new();
    let mut statement =
        conn.prepare("SELECT id, name, mtime_secs, usn, config FROM notetypes ORDER BY id")?;
    let mut rows = statement.query([])?;
    while let Some(row) = rows.next()? {
        let id: i64 = row.get(0)?;
        let name: String = row.get(1)?;
        let config: NotetypeConfig = decode(&row.get::<_, Vec<u8>>(4)?, "notetype")?;
        let deck = (config.target_deck_id_unused != 0).then_some(config.target_deck_id_unused);
        let mut notetype = as_object(json!({
            "id": id, "name": name, "type": config.kind, "mod": row.get::<_, i64>(2)?,
            "usn": row.get::<_, i64>(3)?, "sortf": config.sort_field_idx, "did": optional(deck),
            "tmpls": templates_by_notetype.remove(&id).unwrap_or_default(),
            "flds": fields_by_notetype.remove(&id).unwrap_or_default(),
            "css": config.css, "latexPre": config.latex_pre, "latexPost": config.latex_post,
            "latexsvg": config.latex_svg,
            "req": config.reqs.iter().map(requirement).collect::<Vec<_>>(),
        }));
        if config.original_stock_kind != 0 {
            notetype.insert(
                "originalStockKind".into(),
                json!(config.original_stock_kind),
            );
        }
        if let Some(original) = config.original_id {
            notetype.insert("originalId".into(), json!(original));
        }
        merge_other(&mut notetype, &config.other)?;
        models.insert(id.to_string(), Value::Object(notetype));
    }
    Ok(models)
}

fn day_amount(day: u32, amount: i32) -> Value {
    json!([day, amount])
}

fn decks_json(conn: &Connection) -> Result<JsonObject, ConvertError> {
    let mut decks = JsonObject::new();
    let mut statement =
        conn.prepare("SELECT id, name, mtime_secs, usn, common, kind FROM decks ORDER BY id")?;
    let mut rows = statement.query([])?;
    while let Some(row) = rows.next()? {
        let id: i64 = row.get(0)?;
        let name: String = row.get::<_, String>(1)?.replace('\u{1f}', "::");
        let common: DeckCommon = decode(&row.get::<_, Vec<u8>>(4)?, "deck common")?;
        let kind: DeckKindContainer = decode(&row.get::<_, Vec<u8>>(5)?, "deck kind")?;
        let day = common.last_day_studied;
        let mut deck = as_object(json!({
            "id": id, "mod": row.get::<_, i64>(2)?, "name": name, "usn": row.get::<_, i64>(3)?,
            "lrnToday": day_amount(day, common.learning_studied),
            "revToday": day_amount(day, common.review_studied),
            "newToday": day_amount(day, common.new_studied),
            "timeToday": day_amount(day, common.milliseconds_studied),
            "collapsed": common.study_collapsed, "browserCollapsed": common.browser_collapsed,
        }));
        match kind.kind {
            Some(DeckKind::Normal(normal)) => {
                let limit = |limit: Option<super::proto::DayLimit>| {
                    limit.map_or(Value::Null, |l| json!({"limit": l.limit, "today": l.today}))
                };
                deck.extend(as_object(json!({
                    "desc": normal.description, "dyn": 0, "conf": normal.config_id,
                    "extendNew": normal.extend_new, "extendRev": normal.extend_review,
                    "reviewLimit": optional(normal.review_limit),
                    "newLimit": optional(normal.new_limit),
                    "reviewLimitToday": limit(normal.review_limit_today),
                    "newLimitToday": limit(normal.new_limit_today),
                    "desiredRetention": optional(
                        normal.desired_retention.map(|r| (r * 100.0).round() as i64)
                    ),
                })));
                if normal.markdown_description {
                    deck.insert("md".into(), json!(true));
                }
            }
            Some(DeckKind::Filtered(filtered)) => {
                let terms: Vec<Value> = filtered
                    .search_terms
                    .iter()
                    .map(|term| json!([term.search, term.limit, term.order]))
                    .collect();
                let delays = if filtered.delays.is_empty() {
                    Value::Null
                } else {
                    floats(&filtered.delays)
                };
                deck.extend(as_object(json!({
                    "desc": "", "dyn": 1, "resched": filtered.reschedule, "terms": terms,
                    "separate": true, "delays": delays, "previewDelay": filtered.preview_delay,
                    "previewAgainSecs": filtered.preview_again_secs,
                    "previewHardSecs": filtered.preview_hard_secs,
                    "previewGoodSecs": filtered.preview_good_secs,
                })));
            }
            None => return Err(corrupt(format!("deck {id} has no kind"))),
        }
        merge_other(&mut deck, &common.other)?;
        // The description of a filtered deck lives among the legacy keys.
        decks.insert(id.to_string(), Value::Object(deck));
    }
    Ok(decks)
}

fn deck_configs_json(conn: &Connection) -> Result<JsonObject, ConvertError> {
    let mut configs = JsonObject::new();
    let mut statement =
        conn.prepare("SELECT id, name, mtime_secs, usn, config FROM deck_config ORDER BY id")?;
    let mut rows = statement.query([])?;
    while let Some(row) = rows.next()? {
        let id: i64 = row.get(0)?;
        let c: DeckConfigConfig = decode(&row.get::<_, Vec<u8>>(4)?, "deck config")?;
        // JSON 1 means "due order" and 0 "random": the reverse of the protobuf enum.
        let new_order = if c.new_card_insert_order == 1 { 0 } else { 1 };
        let mut config = as_object(json!({
            "id": id, "mod": row.get::<_, i64>(2)?, "name": row.get::<_, String>(1)?,
            "usn": row.get::<_, i64>(3)?, "maxTaken": c.cap_answer_time_to_secs,
            "autoplay": !c.disable_autoplay, "timer": i32::from(c.show_timer),
            "replayq": !c.skip_question_when_replaying_answer,
            "new": {
                "bury": c.bury_new, "delays": floats(&c.learn_steps),
                "initialFactor": (c.initial_ease * 1000.0).round() as i64,
                "ints": [c.graduating_interval_good, c.graduating_interval_easy, 0],
                "order": new_order, "perDay": c.new_per_day,
            },
            "rev": {
                "bury": c.bury_reviews, "ease4": float(c.easy_multiplier),
                "ivlFct": float(c.interval_multiplier), "maxIvl": c.maximum_review_interval,
                "perDay": c.reviews_per_day, "hardFactor": float(c.hard_multiplier),
            },
            "lapse": {
                "delays": floats(&c.relearn_steps), "leechAction": c.leech_action,
                "leechFails": c.leech_threshold, "minInt": c.minimum_lapse_interval,
                "mult": float(c.lapse_multiplier),
            },
            "dyn": false, "newMix": c.new_mix, "newPerDayMinimum": c.new_per_day_minimum,
            "interdayLearningMix": c.interday_learning_mix, "reviewOrder": c.review_order,
            "newSortOrder": c.new_card_sort_order,
            "newGatherPriority": c.new_card_gather_priority,
            "buryInterdayLearning": c.bury_interday_learning,
            "fsrsWeights": floats(&c.fsrs_params_4), "fsrsParams5": floats(&c.fsrs_params_5),
            "fsrsParams6": floats(&c.fsrs_params_6),
            "desiredRetention": float(c.desired_retention),
            "ignoreRevlogsBeforeDate": c.ignore_revlogs_before_date,
            "easyDaysPercentages": floats(&c.easy_days_percentages),
            "stopTimerOnAnswer": c.stop_timer_on_answer,
            "secondsToShowQuestion": float(c.seconds_to_show_question),
            "secondsToShowAnswer": float(c.seconds_to_show_answer),
            "questionAction": c.question_action, "answerAction": c.answer_action,
            "waitForAudio": c.wait_for_audio, "sm2Retention": float(c.historical_retention),
            "weightSearch": c.param_search,
        }));
        merge_other(&mut config, &c.other)?;
        configs.insert(id.to_string(), Value::Object(config));
    }
    Ok(configs)
}

fn config_json(conn: &Connection) -> Result<JsonObject, ConvertError> {
    let mut config = JsonObject::new();
    let mut statement = conn.prepare("SELECT key, val FROM config ORDER BY key")?;
    let mut rows = statement.query([])?;
    while let Some(row) = rows.next()? {
        let key: String = row.get(0)?;
        let raw: Vec<u8> = match row.get_ref(1)? {
            rusqlite::types::ValueRef::Blob(bytes) | rusqlite::types::ValueRef::Text(bytes) => {
                bytes.to_vec()
            }
            _ => return Err(corrupt(format!("config {key} is not JSON bytes"))),
        };
        let value: Value = serde_json::from_slice(&raw)
            .map_err(|err| corrupt(format!("config {key} is not JSON: {err}")))?;
        config.insert(key, value);
    }
    Ok(config)
}

fn tags_json(conn: &Connection) -> Result<JsonObject, ConvertError> {
    let mut tags = JsonObject::new();
    let mut statement = conn.prepare("SELECT tag, usn FROM tags ORDER BY tag")?;
    let mut rows = statement.query([])?;
    while let Some(row) = rows.next()? {
        tags.insert(row.get(0)?, json!(row.get::<_, i64>(1)?));
    }
    Ok(tags)
}

fn col_json(conn: &Connection, column: &str) -> Result<JsonObject, ConvertError> {
    let text: String = conn.query_row(
        &format!("SELECT {column} FROM col WHERE id = 1"),
        [],
        |row| row.get(0),
    )?;
    if text.trim().is_empty() {
        return Ok(JsonObject::new());
    }
    match serde_json::from_str(&text) {
        Ok(Value::Object(object)) => Ok(object),
        _ => Err(corrupt(format!("col.{column} is not a JSON object"))),
    }
}

/// Rewrites an open collection at schema 11 or 14–18 to schema 11, in one transaction.
pub fn convert_to_schema11(conn: &Connection) -> Result<(), ConvertError> {
    let version = schema_version(conn)?;
    if !(version == 11 || (14..=18).contains(&version)) {
        return Err(ConvertError::UnsupportedVersion(version));
    }
    conn.execute_batch("BEGIN IMMEDIATE")?;
    match convert_inside_transaction(conn) {
        Ok(()) => {
            conn.execute_batch("COMMIT")?;
            Ok(())
        }
        Err(err) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(err)
        }
    }
}

fn convert_inside_transaction(conn: &Connection) -> Result<(), ConvertError> {
    // Each kind of object moved out of `col` at some version; read it from wherever it is.
    let models = if table_exists(conn, "notetypes")? {
        notetypes_json(conn)?
    } else {
        col_json(conn, "models")?
    };
    let decks = if table_exists(conn, "decks")? {
        decks_json(conn)?
    } else {
        col_json(conn, "decks")?
    };
    let dconf = if table_exists(conn, "deck_config")? {
        deck_configs_json(conn)?
    } else {
        col_json(conn, "dconf")?
    };
    let conf = if table_exists(conn, "config")? {
        config_json(conn)?
    } else {
        col_json(conn, "conf")?
    };
    let tags = if table_exists(conn, "tags")? {
        tags_json(conn)?
    } else {
        col_json(conn, "tags")?
    };

    for table in [
        "notetypes",
        "fields",
        "templates",
        "decks",
        "deck_config",
        "config",
        "tags",
    ] {
        conn.execute_batch(&format!("DROP TABLE IF EXISTS {table}"))?;
    }
    let graves_has_rowid_shape: bool = conn
        .query_row(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'graves'",
            [],
            |row| row.get::<_, String>(0),
        )
        .optional()?
        .is_some_and(|sql| !sql.to_uppercase().contains("WITHOUT ROWID"));
    if !graves_has_rowid_shape {
        conn.execute_batch(
            "CREATE TABLE graves11 (usn integer NOT NULL, oid integer NOT NULL, type integer NOT NULL);
             INSERT INTO graves11 (usn, oid, type) SELECT usn, oid, type FROM graves;
             DROP TABLE graves;
             ALTER TABLE graves11 RENAME TO graves;",
        )?;
    }
    // Later schemas add indexes (e.g. `idx_notes_mid`) that a client's upgrade from 11
    // creates itself, and fails on if they already exist.
    let extra_indexes: Vec<String> = conn
        .prepare(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL \
             AND name NOT IN ('ix_notes_usn', 'ix_cards_usn', 'ix_revlog_usn', 'ix_cards_nid', \
             'ix_cards_sched', 'ix_revlog_cid', 'ix_notes_csum')",
        )?
        .query_map([], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    for index in extra_indexes {
        conn.execute_batch(&format!(
            "DROP INDEX IF EXISTS \"{}\"",
            index.replace('"', "\"\"")
        ))?;
    }
    if table_exists(conn, "sqlite_stat1")? {
        // Statistics that name dropped indexes would only confuse the planner.
        conn.execute_batch("DELETE FROM sqlite_stat1")?;
    }
    if table_exists(conn, "sqlite_stat4")? {
        conn.execute_batch("DELETE FROM sqlite_stat4")?;
    }
    conn.execute(
        "UPDATE col SET ver = 11, models = ?1, decks = ?2, dconf = ?3, conf = ?4, tags = ?5 \
         WHERE id = 1",
        [
            Value::Object(models).to_string(),
            Value::Object(decks).to_string(),
            Value::Object(dconf).to_string(),
            Value::Object(conf).to_string(),
            Value::Object(tags).to_string(),
        ],
    )?;
    Ok(())
}

/// Makes the converted file a self-contained rollback-journal database, compacted.
pub fn finish_as_standalone_file(conn: &Connection) -> Result<(), ConvertError> {
    conn.query_row("PRAGMA journal_mode = DELETE", [], |_| Ok(()))?;
    conn.execute_batch("VACUUM")?;
    Ok(())
}
