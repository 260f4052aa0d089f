//! Converting an uploaded collection (schema 11 or 14–18) to schema 11 in place
//! (design §4, protocol §7.3, §7.4, §8).
//!
//! The JSON produced here is what Anki's own downgrade to schema 11 produces: the same keys,
//! the same quirks (inverted `new.order`, negated `autoplay`/`replayq`, ease ×1000, retention
//! in percent) and the same integer widths, so a full upload followed by a full download gives
//! the client back every notetype, deck, deck config and config value it sent. Keys Anki does
//! not model travel in the protobuf field `other` (255) as a JSON object; they are merged back,
//! minus the keys Anki reserves for modelled fields.
//!
//! What schema 11 cannot hold, and is therefore dropped: the tags table's `collapsed` flag and
//! `config` blob, and the per-template `mtime_secs`/`usn` columns.

use std::collections::HashMap;

use prost::Message;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OptionalExtension, Row, Transaction, TransactionBehavior};
use serde_json::{Map, Value, json};

use super::proto::{
    CardRequirement, DayLimit, DeckCommon, DeckConfigConfig, DeckKind, DeckKindContainer,
    FieldConfig, FilteredDeck, NormalDeck, NotetypeConfig, TemplateConfig,
};
use super::schema11::{SCHEMA11_INDEXES, schema11_index_ddl};

#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error("unsupported collection schema version {0}")]
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

/// Tables that schema 14–18 added; none of them exists in schema 11.
const LATER_SCHEMA_TABLES: [&str; 7] = [
    "notetypes",
    "fields",
    "templates",
    "decks",
    "deck_config",
    "config",
    "tags",
];

// Keys of modelled fields. Anki removes them from `other` before merging it back, so a stale
// copy in `other` never overrides the real value (rslib `RESERVED_*_KEYS`).
const RESERVED_NOTETYPE_KEYS: &[&str] = &[
    "latexPost",
    "flds",
    "css",
    "originalStockKind",
    "originalId",
    "id",
    "usn",
    "mod",
    "req",
    "latexPre",
    "name",
    "did",
    "tmpls",
    "type",
    "sortf",
    "latexsvg",
];
const RESERVED_FIELD_KEYS: &[&str] = &[
    "name",
    "ord",
    "sticky",
    "rtl",
    "plainText",
    "font",
    "size",
    "collapsed",
    "description",
    "excludeFromSearch",
    "id",
    "tag",
    "preventDeletion",
];
const RESERVED_TEMPLATE_KEYS: &[&str] = &[
    "name", "ord", "did", "afmt", "bafmt", "qfmt", "bqfmt", "bfont", "bsize", "id",
];
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

fn is_supported(version: i64) -> bool {
    version == 11 || (14..=18).contains(&version)
}

pub fn schema_version(conn: &Connection) -> Result<i64, ConvertError> {
    match conn.query_row("SELECT ver FROM col", [], |row| row.get::<_, i64>(0)) {
        Ok(version) => Ok(version),
        Err(rusqlite::Error::QueryReturnedNoRows) => Err(corrupt("the col table has no row")),
        Err(rusqlite::Error::InvalidColumnType(..)) => Err(corrupt("col.ver is not an integer")),
        Err(rusqlite::Error::SqliteFailure(_, Some(message))) if message.contains("no such") => {
            Err(corrupt(message))
        }
        Err(err) => Err(err.into()),
    }
}

/// Rewrites an open collection at schema 11 or 14–18 to schema 11, in one transaction: on any
/// error nothing is changed. A schema-11 file is only checked.
pub fn convert_to_schema11(conn: &Connection) -> Result<(), ConvertError> {
    let version = schema_version(conn)?;
    if !is_supported(version) {
        return Err(ConvertError::UnsupportedVersion(version));
    }
    let tx = Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
    // Every version keeps these; without them the file is no collection a client can use.
    for table in ["notes", "cards", "revlog", "graves"] {
        require_table(&tx, table, version)?;
    }
    if version == 11 {
        for column in ["conf", "models", "decks", "dconf", "tags"] {
            col_json(&tx, column)?;
        }
        return Ok(());
    }
    let objects = read_objects(&tx, version)?;
    reshape_tables_to_schema11(&tx)?;
    tx.execute(
        "UPDATE col SET ver = 11, conf = ?1, models = ?2, decks = ?3, dconf = ?4, tags = ?5",
        [
            Value::Object(objects.conf).to_string(),
            Value::Object(objects.models).to_string(),
            Value::Object(objects.decks).to_string(),
            Value::Object(objects.dconf).to_string(),
            Value::Object(objects.tags).to_string(),
        ],
    )?;
    tx.commit()?;
    Ok(())
}

/// Makes the converted file a self-contained rollback-journal database, compacted. VACUUM
/// cannot run inside a transaction, so this is separate from the conversion.
pub fn finish_as_standalone_file(conn: &Connection) -> Result<(), ConvertError> {
    conn.query_row("PRAGMA journal_mode = DELETE", [], |_| Ok(()))?;
    conn.execute_batch("PRAGMA page_size = 4096; VACUUM;")?;
    Ok(())
}

struct ColObjects {
    conf: JsonObject,
    models: JsonObject,
    decks: JsonObject,
    dconf: JsonObject,
    tags: JsonObject,
}

/// Reads each kind of object from where this schema version keeps it: 14 moved deck configs,
/// config and tags into tables, 15 moved notetypes and decks.
fn read_objects(conn: &Connection, version: i64) -> Result<ColObjects, ConvertError> {
    for table in ["deck_config", "config", "tags"] {
        require_table(conn, table, version)?;
    }
    if version >= 15 {
        for table in ["notetypes", "fields", "templates", "decks"] {
            require_table(conn, table, version)?;
        }
    }
    let (models, decks) = if version >= 15 {
        (notetypes_from_tables(conn)?, decks_from_tables(conn)?)
    } else {
        (col_json(conn, "models")?, col_json(conn, "decks")?)
    };
    let dconf = match version {
        14 => deck_configs_from_json_rows(conn)?,
        // Schema 15 stored the starting ease ×100 (250 for 2.5); 16 went back to 2.5.
        15 => deck_configs_from_tables(conn, InitialEase::Percent)?,
        _ => deck_configs_from_tables(conn, InitialEase::Ratio)?,
    };
    Ok(ColObjects {
        conf: config_from_table(conn)?,
        models,
        decks,
        dconf,
        tags: tags_from_table(conn)?,
    })
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

fn require_table(conn: &Connection, name: &str, version: i64) -> Result<(), ConvertError> {
    if table_exists(conn, name)? {
        Ok(())
    } else {
        Err(corrupt(format!(
            "a schema-{version} collection has no `{name}` table"
        )))
    }
}

/// Drops what schema 14–18 added, gives `graves` its schema-11 shape, and makes sure the
/// seven schema-11 indexes exist.
fn reshape_tables_to_schema11(conn: &Connection) -> Result<(), ConvertError> {
    for table in LATER_SCHEMA_TABLES {
        conn.execute_batch(&format!("DROP TABLE IF EXISTS {table}"))?;
    }
    if !graves_has_schema11_shape(conn)? {
        conn.execute_batch(
            "CREATE TABLE graves_schema11 (
                 usn integer NOT NULL,
                 oid integer NOT NULL,
                 type integer NOT NULL
             );
             INSERT INTO graves_schema11 (usn, oid, type) SELECT usn, oid, type FROM graves;
             DROP TABLE graves;
             ALTER TABLE graves_schema11 RENAME TO graves;",
        )?;
    }
    // A client upgrading from 11 creates `idx_notes_mid`, `idx_cards_odid` and the others
    // without IF NOT EXISTS, and fails if they are still there.
    let extra_indexes: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")?
        .query_map([], |row| row.get::<_, String>(0))?
        .filter(|name| {
            name.as_ref().map_or(true, |name| {
                !SCHEMA11_INDEXES.iter().any(|(ix, _)| ix == name)
            })
        })
        .collect::<Result<_, _>>()?;
    for index in extra_indexes {
        conn.execute_batch(&format!("DROP INDEX \"{}\"", index.replace('"', "\"\"")))?;
    }
    conn.execute_batch(&schema11_index_ddl())?;
    forget_statistics_of_missing_objects(conn)
}

/// DROP removes the planner statistics of what it drops, but a file can carry older rows for
/// tables or indexes that were renamed away; they would only mislead the planner.
fn forget_statistics_of_missing_objects(conn: &Connection) -> Result<(), ConvertError> {
    for statistics in ["sqlite_stat1", "sqlite_stat4"] {
        if table_exists(conn, statistics)? {
            conn.execute_batch(&format!(
                "DELETE FROM {statistics} \
                 WHERE tbl NOT IN (SELECT name FROM sqlite_master WHERE type = 'table') \
                 OR (idx IS NOT NULL AND idx NOT IN (SELECT name FROM sqlite_master))"
            ))?;
        }
    }
    Ok(())
}

/// Schema 11 has `graves (usn, oid, type)` without a primary key; schema 18 reorders the
/// columns and makes (oid, type) a WITHOUT ROWID primary key.
fn graves_has_schema11_shape(conn: &Connection) -> Result<bool, ConvertError> {
    let columns: Vec<(String, i64)> = conn
        .prepare("SELECT name, pk FROM pragma_table_info('graves') ORDER BY cid")?
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let names: Vec<&str> = columns.iter().map(|(name, _)| name.as_str()).collect();
    let has_primary_key = columns.iter().any(|(_, pk)| *pk != 0);
    Ok(names == ["usn", "oid", "type"] && !has_primary_key)
}

fn col_json(conn: &Connection, column: &str) -> Result<JsonObject, ConvertError> {
    let text: String = conn
        .query_row(&format!("SELECT {column} FROM col"), [], |row| {
            row.get::<_, String>(0)
        })
        .map_err(|err| match err {
            rusqlite::Error::InvalidColumnType(..) => corrupt(format!("col.{column} is not text")),
            other => other.into(),
        })?;
    match serde_json::from_str(&text) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(_) => Err(corrupt(format!("col.{column} is not a JSON object"))),
        Err(err) => Err(corrupt(format!("col.{column} is not valid JSON: {err}"))),
    }
}

/// A BLOB column's bytes. TEXT is accepted too: some tools bind JSON as text.
fn bytes_column(row: &Row<'_>, index: usize, what: &str) -> Result<Vec<u8>, ConvertError> {
    match row.get_ref(index)? {
        ValueRef::Blob(bytes) | ValueRef::Text(bytes) => Ok(bytes.to_vec()),
        _ => Err(corrupt(format!("{what} is not a blob"))),
    }
}

fn decode<M: Message + Default>(bytes: &[u8], what: &str) -> Result<M, ConvertError> {
    M::decode(bytes).map_err(|err| corrupt(format!("{what}: invalid protobuf: {err}")))
}

/// The JSON object kept in a protobuf `other` field, without the keys Anki reserves.
fn legacy_keys(bytes: &[u8], reserved: &[&str], what: &str) -> Result<JsonObject, ConvertError> {
    if bytes.is_empty() {
        return Ok(JsonObject::new());
    }
    let mut keys = match serde_json::from_slice(bytes) {
        Ok(Value::Object(object)) => object,
        Ok(_) => return Err(corrupt(format!("{what}: `other` is not a JSON object"))),
        Err(err) => return Err(corrupt(format!("{what}: `other` is not JSON: {err}"))),
    };
    keys.retain(|key, _| !reserved.contains(&key.as_str()));
    Ok(keys)
}

/// Adds legacy keys after the modelled ones. A key both modelled and kept (possible only for
/// keys Anki does not reserve, e.g. a filtered deck's `terms`) keeps the modelled value.
fn merge_legacy_keys(object: &mut JsonObject, legacy: JsonObject) {
    for (key, value) in legacy {
        object.entry(key).or_insert(value);
    }
}

/// Unwraps a `json!({...})` literal, which is always an object.
fn into_object(value: Value) -> JsonObject {
    match value {
        Value::Object(object) => object,
        _ => JsonObject::new(),
    }
}

/// Anki keeps these values as f32 and serde writes an f32 by its shortest decimal form, so
/// 1.3 stays `1.3` instead of becoming `1.2999999523162842`.
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

fn ord_u16(ord: i64, what: &str) -> Result<u16, ConvertError> {
    u16::try_from(ord).map_err(|_| corrupt(format!("{what}: ord {ord} is out of range")))
}

// ---------------------------------------------------------------------------------------------
// Notetypes (protocol §8.1)

fn notetypes_from_tables(conn: &Connection) -> Result<JsonObject, ConvertError> {
    let mut fields = children_by_notetype(
        conn,
        "SELECT ntid, ord, name, config FROM fields ORDER BY ntid, ord",
        field_json,
    )?;
    let mut templates = children_by_notetype(
        conn,
        "SELECT ntid, ord, name, config FROM templates ORDER BY ntid, ord",
        template_json,
    )?;
    let mut models = JsonObject::new();
    let mut statement =
        conn.prepare("SELECT id, name, mtime_secs, usn, config FROM notetypes ORDER BY id")?;
    let mut rows = statement.query([])?;
    while let Some(row) = rows.next()? {
        let id: i64 = row.get(0)?;
        let what = format!("notetype {id}");
        let config: NotetypeConfig = decode(&bytes_column(row, 4, &what)?, &what)?;
        let mut notetype = into_object(json!({
            "id": id,
            "name": row.get::<_, String>(1)?,
            "type": if config.kind == 1 { 1 } else { 0 },
            "mod": row.get::<_, i64>(2)?,
            "usn": row.get::<_, i64>(3)?,
            // Widths as in Anki's schema-11 structs: the client's parser rejects wider values.
            "sortf": config.sort_field_idx as u16,
            "did": (config.target_deck_id_unused != 0).then_some(config.target_deck_id_unused),
            "tmpls": templates.remove(&id).unwrap_or_default(),
            "flds": fields.remove(&id).unwrap_or_default(),
            "css": config.css,
            "latexPre": config.latex_pre,
            "latexPost": config.latex_post,
            "latexsvg": config.latex_svg,
            "req": config.reqs.iter().map(requirement_json).collect::<Vec<_>>(),
        }));
        if config.original_stock_kind != 0 {
            notetype.insert(
                "originalStockKind".into(),
                json!(config.original_stock_kind),
            );
        }
        if let Some(original_id) = config.original_id {
            notetype.insert("originalId".into(), json!(original_id));
        }
        merge_legacy_keys(
            &mut notetype,
            legacy_keys(&config.other, RESERVED_NOTETYPE_KEYS, &what)?,
        );
        models.insert(id.to_string(), Value::Object(notetype));
    }
    Ok(models)
}

/// Runs a `(ntid, ord, name, config)` query and groups the JSON objects by notetype, in
/// `ord` order.
fn children_by_notetype(
    conn: &Connection,
    sql: &str,
    to_json: fn(i64, i64, String, &[u8]) -> Result<Value, ConvertError>,
) -> Result<HashMap<i64, Vec<Value>>, ConvertError> {
    let mut grouped: HashMap<i64, Vec<Value>> = HashMap::new();
    let mut statement = conn.prepare(sql)?;
    let mut rows = statement.query([])?;
    while let Some(row) = rows.next()? {
        let notetype_id: i64 = row.get(0)?;
        let ord: i64 = row.get(1)?;
        let config = bytes_column(row, 3, &format!("notetype {notetype_id} ord {ord}"))?;
        let child = to_json(notetype_id, ord, row.get(2)?, &config)?;
        grouped.entry(notetype_id).or_default().push(child);
    }
    Ok(grouped)
}

fn field_json(
    notetype_id: i64,
    ord: i64,
    name: String,
    bytes: &[u8],
) -> Result<Value, ConvertError> {
    let what = format!("field {ord} of notetype {notetype_id}");
    let config: FieldConfig = decode(bytes, &what)?;
    let mut field = into_object(json!({
        "name": name,
        "ord": ord_u16(ord, &what)?,
        "sticky": config.sticky,
        "rtl": config.rtl,
        "font": config.font_name,
        "size": config.font_size as u16,
        "description": config.description,
        "plainText": config.plain_text,
        "collapsed": config.collapsed,
        "excludeFromSearch": config.exclude_from_search,
        "id": config.id,
        "tag": config.tag,
        "preventDeletion": config.prevent_deletion,
    }));
    merge_legacy_keys(
        &mut field,
        legacy_keys(&config.other, RESERVED_FIELD_KEYS, &what)?,
    );
    Ok(Value::Object(field))
}

fn template_json(
    notetype_id: i64,
    ord: i64,
    name: String,
    bytes: &[u8],
) -> Result<Value, ConvertError> {
    let what = format!("template {ord} of notetype {notetype_id}");
    let config: TemplateConfig = decode(bytes, &what)?;
    let mut template = into_object(json!({
        "name": name,
        "ord": ord_u16(ord, &what)?,
        "qfmt": config.q_format,
        "afmt": config.a_format,
        "bqfmt": config.q_format_browser,
        "bafmt": config.a_format_browser,
        "did": (config.target_deck_id > 0).then_some(config.target_deck_id),
        "bfont": config.browser_font_name,
        "bsize": config.browser_font_size as u8,
        "id": config.id,
    }));
    merge_legacy_keys(
        &mut template,
        legacy_keys(&config.other, RESERVED_TEMPLATE_KEYS, &what)?,
    );
    Ok(Value::Object(template))
}

fn requirement_json(requirement: &CardRequirement) -> Value {
    let kind = match requirement.kind {
        1 => "any",
        2 => "all",
        _ => "none",
    };
    let field_ords: Vec<u16> = requirement
        .field_ords
        .iter()
        .map(|&ord| ord as u16)
        .collect();
    json!([requirement.card_ord as u16, kind, field_ords])
}

// ---------------------------------------------------------------------------------------------
// Decks (protocol §8.2)

fn decks_from_tables(conn: &Connection) -> Result<JsonObject, ConvertError> {
    let mut decks = JsonObject::new();
    let mut statement =
        conn.prepare("SELECT id, name, mtime_secs, usn, common, kind FROM decks ORDER BY id")?;
    let mut rows = statement.query([])?;
    while let Some(row) = rows.next()? {
        let id: i64 = row.get(0)?;
        let what = format!("deck {id}");
        let common: DeckCommon = decode(&bytes_column(row, 4, &what)?, &what)?;
        let kind: DeckKindContainer = decode(&bytes_column(row, 5, &what)?, &what)?;
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
            legacy_keys(&common.other, RESERVED_DECK_KEYS, &what)?,
        );
        decks.insert(id.to_string(), Value::Object(deck));
    }
    Ok(decks)
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

// ---------------------------------------------------------------------------------------------
// Deck configs (protocol §8.3)

#[derive(Clone, Copy)]
enum InitialEase {
    /// 2.5 means 250%: schema 16 and later.
    Ratio,
    /// 250.0 means 250%: schema 15 only.
    Percent,
}

fn deck_configs_from_tables(
    conn: &Connection,
    ease: InitialEase,
) -> Result<JsonObject, ConvertError> {
    let mut configs = JsonObject::new();
    let mut statement =
        conn.prepare("SELECT id, name, mtime_secs, usn, config FROM deck_config ORDER BY id")?;
    let mut rows = statement.query([])?;
    while let Some(row) = rows.next()? {
        let id: i64 = row.get(0)?;
        let what = format!("deck config {id}");
        let mut config: DeckConfigConfig = decode(&bytes_column(row, 4, &what)?, &what)?;
        if let InitialEase::Percent = ease {
            config.initial_ease /= 100.0;
            // Anki's 15→16 upgrade resets the too-low eases schema 15 wrote by mistake.
            if config.initial_ease <= 1.3 {
                config.initial_ease = 2.5;
            }
        }
        let json = deck_config_json(id, row.get(1)?, row.get(2)?, row.get(3)?, config, &what)?;
        configs.insert(id.to_string(), Value::Object(json));
    }
    Ok(configs)
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
fn deck_configs_from_json_rows(conn: &Connection) -> Result<JsonObject, ConvertError> {
    let mut configs = JsonObject::new();
    let mut statement = conn.prepare("SELECT id, config FROM deck_config ORDER BY id")?;
    let mut rows = statement.query([])?;
    while let Some(row) = rows.next()? {
        let id: i64 = row.get(0)?;
        let what = format!("deck config {id}");
        let mut config = match serde_json::from_slice(&bytes_column(row, 1, &what)?) {
            Ok(Value::Object(object)) => object,
            _ => return Err(corrupt(format!("{what} is not a JSON object"))),
        };
        // The row id is authoritative: old clients sometimes left a stale inner id.
        config.insert("id".into(), json!(id));
        configs.insert(id.to_string(), Value::Object(config));
    }
    Ok(configs)
}

// ---------------------------------------------------------------------------------------------
// Config and tags (protocol §8.4)

fn config_from_table(conn: &Connection) -> Result<JsonObject, ConvertError> {
    let mut config = JsonObject::new();
    let mut statement = conn.prepare("SELECT key, val FROM config ORDER BY key")?;
    let mut rows = statement.query([])?;
    while let Some(row) = rows.next()? {
        let key: String = row.get(0)?;
        let what = format!("config `{key}`");
        let value: Value = serde_json::from_slice(&bytes_column(row, 1, &what)?)
            .map_err(|err| corrupt(format!("{what} is not JSON: {err}")))?;
        config.insert(key, value);
    }
    Ok(config)
}

fn tags_from_table(conn: &Connection) -> Result<JsonObject, ConvertError> {
    let mut tags = JsonObject::new();
    let mut statement = conn.prepare("SELECT tag, usn FROM tags ORDER BY tag")?;
    let mut rows = statement.query([])?;
    while let Some(row) = rows.next()? {
        tags.insert(row.get(0)?, json!(row.get::<_, i64>(1)?));
    }
    Ok(tags)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::PathBuf;

    use rusqlite::params;
    use rusqlite::types::Value as SqlValue;

    use super::*;
    use crate::collection::proto::{SearchTerm, TemplateConfig};
    use crate::collection::sqlite::open_collection;

    const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/schema18.anki2");
    const EXPECTED: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/schema18.expected.json"
    );

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

    fn strings(conn: &Connection, sql: &str) -> Vec<String> {
        conn.prepare(sql)
            .unwrap()
            .query_map([], |row| row.get(0))
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
        let integrity: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(integrity, "ok");
        assert_eq!(
            strings(
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
        let graves_sql = strings(conn, "SELECT sql FROM sqlite_master WHERE name = 'graves'");
        assert!(!graves_sql[0].to_uppercase().contains("WITHOUT ROWID"));
        let mut want_indexes: Vec<&str> = SCHEMA11_INDEXES.iter().map(|(name, _)| *name).collect();
        want_indexes.sort();
        assert_eq!(
            strings(
                conn,
                "SELECT name FROM sqlite_master WHERE type = 'index' ORDER BY name"
            ),
            want_indexes
        );
        let stale_statistics = strings(
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
        finish_as_standalone_file(&conn).unwrap();
        drop(conn);
        let conn = open_collection(&path).unwrap();
        assert_schema11_shape(&conn);
        let journal: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(journal, "delete");
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
        let child = decks
            .values()
            .find(|d| d["name"] == "Parent::Child")
            .unwrap();
        assert_eq!(child["desiredRetention"], 87);
        assert_eq!(child["md"], true);
        assert_eq!(child["myDeckKey"], json!({"kept": ["as", "is"]}));
        assert!(child["newToday"][0].as_i64().unwrap() > 0);
        let filtered = decks.values().find(|d| d["dyn"] == 1).unwrap();
        assert_eq!(filtered["separate"], true);
        assert_eq!(filtered["terms"][0], json!(["tag:geo*", 50, 1]));
        let custom = got["dconf"]
            .as_object()
            .unwrap()
            .values()
            .find(|c| c["name"] == "Custom options")
            .unwrap();
        assert_eq!(custom["new"]["order"], 0);
        assert_eq!(custom["new"]["initialFactor"], 2300);
        assert_eq!(custom["autoplay"], false);
        assert_eq!(custom["replayq"], false);
        assert_eq!(custom["new"]["myNewKey"], "nested legacy key");
        let vocab = got["models"]
            .as_object()
            .unwrap()
            .values()
            .find(|m| m["name"] == "Vocab (custom)")
            .unwrap();
        assert_eq!(vocab["sortf"], 1);
        assert_eq!(vocab["tmpls"][1]["myTmplKey"], 42);
        assert_eq!(vocab["flds"][2]["media"], json!(["legacy-field-key.jpg"]));
    }

    /// Converts a copy of the fixture after `prepare` has reshaped it, and checks the result
    /// is a clean schema-11 file.
    fn convert_variant(prepare: impl FnOnce(&Connection)) -> Value {
        let (_dir, path) = fixture_copy();
        let conn = open_collection(&path).unwrap();
        prepare(&conn);
        convert_to_schema11(&conn).unwrap();
        finish_as_standalone_file(&conn).unwrap();
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
            conversion_error(|conn| {
                let common = DeckCommon {
                    other: b"{not json".to_vec(),
                    ..Default::default()
                };
                conn.execute(
                    "UPDATE decks SET common = ?1 WHERE id = 1",
                    [common.encode_to_vec()],
                )
                .unwrap();
            }),
            "`other` is not JSON",
        );
        assert_corrupt(
            conversion_error(|conn| {
                let common = DeckCommon {
                    other: b"[1, 2]".to_vec(),
                    ..Default::default()
                };
                conn.execute(
                    "UPDATE decks SET common = ?1 WHERE id = 1",
                    [common.encode_to_vec()],
                )
                .unwrap();
            }),
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
                conn.execute_batch(
                    "UPDATE config SET val = CAST('{' AS BLOB) WHERE key = 'curDeck'",
                )
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

    fn schema18_tables(conn: &Connection) {
        crate::collection::sqlite::register_unicase(conn).unwrap();
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
    }

    #[test]
    fn deck_quirks_follow_anki() {
        let conn = Connection::open_in_memory().unwrap();
        schema18_tables(&conn);
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
        for (id, name, kind) in [
            (10, "Top\u{1f}Sub\u{1f}Leaf", &normal),
            (11, "Cram", &filtered),
        ] {
            conn.execute(
                "INSERT INTO decks VALUES (?1, ?2, 100, 7, ?3, ?4)",
                params![id, name, common.encode_to_vec(), kind.encode_to_vec()],
            )
            .unwrap();
        }
        let decks = decks_from_tables(&conn).unwrap();
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

    #[test]
    fn notetype_quirks_follow_anki() {
        let conn = Connection::open_in_memory().unwrap();
        schema18_tables(&conn);
        let config = NotetypeConfig {
            kind: 1,
            sort_field_idx: 1,
            css: ".card {}".into(),
            reqs: vec![CardRequirement {
                card_ord: 0,
                kind: 2,
                field_ords: vec![0, 1],
            }],
            original_id: Some(99),
            other: serde_json::to_vec(&json!({"vers": [], "css": "stale", "tags": ["t"]})).unwrap(),
            ..Default::default()
        };
        conn.execute(
            "INSERT INTO notetypes VALUES (5, 'Mine', 100, 3, ?1)",
            [config.encode_to_vec()],
        )
        .unwrap();
        let field = FieldConfig {
            font_name: "Arial".into(),
            font_size: 20,
            other: serde_json::to_vec(&json!({"name": "stale", "media": []})).unwrap(),
            ..Default::default()
        };
        for (ord, name) in [(1, "Second"), (0, "First")] {
            conn.execute(
                "INSERT INTO fields VALUES (5, ?1, ?2, ?3)",
                params![ord, name, field.encode_to_vec()],
            )
            .unwrap();
        }
        for (ord, target_deck_id) in [(0, 0), (1, -4), (2, 1234)] {
            let template = TemplateConfig {
                q_format: "{{First}}".into(),
                target_deck_id,
                id: (ord == 2).then_some(-77),
                ..Default::default()
            };
            conn.execute(
                "INSERT INTO templates VALUES (5, ?1, ?2, 0, 0, ?3)",
                params![ord, format!("Card {ord}"), template.encode_to_vec()],
            )
            .unwrap();
        }
        let models = notetypes_from_tables(&conn).unwrap();
        let notetype = &models["5"];
        assert_eq!(notetype["type"], 1);
        assert_eq!(notetype["sortf"], 1);
        assert_eq!(notetype["did"], Value::Null);
        assert_eq!(notetype["css"], ".card {}");
        assert_eq!(notetype["req"], json!([[0, "all", [0, 1]]]));
        assert_eq!(notetype["originalId"], 99);
        assert!(
            notetype.get("originalStockKind").is_none(),
            "omitted when 0"
        );
        assert_eq!(notetype["vers"], json!([]));
        assert_eq!(notetype["tags"], json!(["t"]));
        assert_eq!(notetype["flds"][0]["name"], "First");
        assert_eq!(notetype["flds"][1]["name"], "Second");
        assert_eq!(notetype["flds"][1]["ord"], 1);
        assert_eq!(notetype["flds"][0]["media"], json!([]));
        assert_eq!(notetype["flds"][0]["id"], Value::Null);
        assert_eq!(notetype["flds"][0]["tag"], Value::Null);
        let dids: Vec<&Value> = notetype["tmpls"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| &t["did"])
            .collect();
        assert_eq!(dids, [&Value::Null, &Value::Null, &json!(1234)]);
        assert_eq!(notetype["tmpls"][2]["id"], -77);
        assert_eq!(notetype["tmpls"][0]["id"], Value::Null);
    }

    /// The design's round trip with the real client: a schema-18 upload, converted here, then
    /// downloaded and opened (upgraded) by Anki, must show what the client uploaded. Needs
    /// `ANKI_PYTHON` pointing at a Python with the `anki` package, e.g.
    /// `ANKI_PYTHON=$PWD/.venv/bin/python cargo test -p anki-sidecar --lib collection -- --ignored`.
    #[test]
    #[ignore = "needs the anki Python package (set ANKI_PYTHON)"]
    fn real_client_reads_back_the_converted_fixture() {
        let python = std::env::var("ANKI_PYTHON").expect("set ANKI_PYTHON");
        let (_dir, path) = fixture_copy();
        let conn = open_collection(&path).unwrap();
        convert_to_schema11(&conn).unwrap();
        finish_as_standalone_file(&conn).unwrap();
        drop(conn);
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/check_schema11_opens.py"
        );
        let output = std::process::Command::new(python)
            .args([
                script,
                path.to_str().unwrap(),
                "--expected",
                EXPECTED,
                "--add-notes",
            ])
            .output()
            .unwrap();
        println!("{}", String::from_utf8_lossy(&output.stdout));
        eprintln!("{}", String::from_utf8_lossy(&output.stderr));
        assert!(output.status.success(), "the real client found problems");
    }
}
