//! `applyChanges`: notetypes, decks, deck configs, tags, config and `crt`
//! (docs/sync-protocol.md#changes).
//!
//! The server's answer is computed before the client's changes are merged, and the merge
//! keeps the copy with the newer `mod`. Everything stored gets the server's usn.

use rusqlite::Connection;
use serde_json::Value;

use super::objects::{check_deck, check_deck_config, check_notetype};
use super::wire::UnchunkedChanges;
use super::{OpResult, SyncOpError};
use crate::collection::census::{Column, ColumnMemos};
use crate::collection::col_row::col;
use crate::collection::json::{ColObjects, JsonObject, Parts, object_id, object_mtime, object_usn};

pub struct ChangesContext {
    pub server_usn: i32,
    pub client_usn: i32,
    pub client_is_newer: bool,
}

/// Objects changed on the server since the client's last sync.
fn pending(objects: &JsonObject, client_usn: i32) -> Vec<JsonObject> {
    objects
        .values()
        .filter_map(Value::as_object)
        .filter(|object| object_usn(object) >= i64::from(client_usn))
        .cloned()
        .collect()
}

pub fn apply_changes(
    conn: &Connection,
    memos: &mut ColumnMemos,
    context: &ChangesContext,
    incoming: UnchunkedChanges,
) -> OpResult<UnchunkedChanges> {
    // Refuse before anything is merged: these objects go to the user's other devices.
    for model in &incoming.models {
        check_notetype(model)?;
    }
    for deck in &incoming.decks.0 {
        check_deck(deck)?;
    }
    for config in &incoming.decks.1 {
        check_deck_config(config)?;
    }
    let client_usn = context.client_usn;
    let columns = col(conn).object_columns()?;
    // Only the parts that one side changed are parsed: a review sync sends one deck and the
    // config, and the server rarely has anything to send, so the notetypes (most of the row),
    // the deck configs and the tags are left as text. Whether the server has something to
    // send comes from the columns' kept scans (`census::ColumnMemos`).
    let since = i64::from(client_usn);
    let mut pending_in = |column: Column, text: &str| memos.any_since(column, text, since);
    let wanted = Parts {
        models: !incoming.models.is_empty() || pending_in(Column::Models, &columns.models)?,
        decks: !incoming.decks.0.is_empty() || pending_in(Column::Decks, &columns.decks)?,
        dconf: !incoming.decks.1.is_empty() || pending_in(Column::Dconf, &columns.dconf)?,
        tags: !incoming.tags.is_empty() || pending_in(Column::Tags, &columns.tags)?,
        // The stored config is only sent, never merged: the client's replaces it whole.
        conf: !context.client_is_newer,
    };
    let mut objects = ColObjects::parse(&columns, wanted)?;

    let mut answer = UnchunkedChanges {
        models: pending(&objects.models, client_usn),
        decks: (
            pending(&objects.decks, client_usn),
            pending(&objects.dconf, client_usn),
        ),
        tags: objects
            .tags
            .iter()
            .filter(|(_, usn)| usn.as_i64().unwrap_or(0) >= i64::from(client_usn))
            .map(|(name, _)| name.clone())
            .collect(),
        conf: None,
        crt: None,
    };
    if !context.client_is_newer {
        // Exactly one side's config wins: the side whose collection was modified last.
        answer.conf = Some(objects.conf.clone());
        answer.crt = Some(col(conn).creation_time()?);
    }

    let usn = context.server_usn;
    // Only what the client sent is written back: a review sync sends one deck and the
    // config, and the notetypes (most of the row) stay as stored.
    let mut touched = Parts {
        models: !incoming.models.is_empty(),
        decks: !incoming.decks.0.is_empty(),
        dconf: !incoming.decks.1.is_empty(),
        conf: incoming.conf.is_some(),
        tags: false,
    };
    for model in incoming.models {
        merge_notetype(&mut objects, model, usn)?;
    }
    for deck in incoming.decks.0 {
        merge_named(&mut objects.decks, deck, usn, true)?;
    }
    for config in incoming.decks.1 {
        merge_named(&mut objects.dconf, config, usn, false)?;
    }
    for tag in &incoming.tags {
        touched.tags |= objects.register_tag(tag, usn);
    }
    if let Some(conf) = incoming.conf {
        // The sender's config is complete; anything it lacks was removed there.
        objects.conf = conf;
    }
    objects.save_touched(conn, touched)?;
    if let Some(crt) = incoming.crt {
        col(conn).set_creation_time(crt)?;
    }
    Ok(answer)
}

fn id_key(object: &JsonObject, what: &str) -> OpResult<String> {
    object_id(object)
        .map(|id| id.to_string())
        .ok_or_else(|| SyncOpError::invalid(format!("{what} without a valid id")))
}

fn array_len(object: &JsonObject, key: &str) -> usize {
    object
        .get(key)
        .and_then(Value::as_array)
        .map_or(0, Vec::len)
}

fn merge_notetype(objects: &mut ColObjects, mut incoming: JsonObject, usn: i32) -> OpResult<()> {
    let key = id_key(&incoming, "notetype")?;
    if let Some(existing) = objects.models.get(&key).and_then(Value::as_object) {
        if object_mtime(existing) > object_mtime(&incoming) {
            return Ok(());
        }
        if array_len(existing, "flds") != array_len(&incoming, "flds")
            || array_len(existing, "tmpls") != array_len(&incoming, "tmpls")
        {
            return Err(SyncOpError::invalid(
                "notetype schema changed; a full sync is required",
            ));
        }
    }
    store_with_unique_name(&mut objects.models, key, &mut incoming, usn);
    Ok(())
}

/// Decks and deck configs: the incoming copy wins when it is at least as new.
fn merge_named(
    objects: &mut JsonObject,
    mut incoming: JsonObject,
    usn: i32,
    unique_names: bool,
) -> OpResult<()> {
    let key = id_key(&incoming, "deck or deck config")?;
    if let Some(existing) = objects.get(&key).and_then(Value::as_object)
        && object_mtime(existing) > object_mtime(&incoming)
    {
        return Ok(());
    }
    if unique_names {
        store_with_unique_name(objects, key, &mut incoming, usn);
    } else {
        incoming.insert("usn".into(), Value::from(usn));
        objects.insert(key, Value::Object(incoming));
    }
    Ok(())
}

fn store_with_unique_name(
    objects: &mut JsonObject,
    key: String,
    incoming: &mut JsonObject,
    usn: i32,
) {
    if let Some(name) = incoming.get("name").and_then(Value::as_str) {
        let unique = ColObjects::unique_name(objects, &key, name);
        incoming.insert("name".into(), Value::from(unique));
    }
    incoming.insert("usn".into(), Value::from(usn));
    objects.insert(key, Value::Object(std::mem::take(incoming)));
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::collection::test_support::{open_new_collection, query_value};

    fn object(value: Value) -> JsonObject {
        serde_json::from_value(value).unwrap()
    }

    fn set_columns(conn: &Connection, models: &str, dconf: &str, conf: &str, tags: &str) {
        conn.execute(
            "UPDATE col SET models = ?1, dconf = ?2, conf = ?3, tags = ?4",
            [models, dconf, conf, tags],
        )
        .unwrap();
    }

    /// What a review sync sends: the reviewed deck (the stored one, newer) and the config.
    fn review_changes(conn: &Connection, usn: i64) -> UnchunkedChanges {
        let decks: JsonObject =
            serde_json::from_str(&query_value::<String>(conn, "SELECT decks FROM col")).unwrap();
        let mut deck = decks["1"].as_object().unwrap().clone();
        deck.insert("mod".into(), json!(1_900_000_000));
        deck.insert("usn".into(), json!(usn));
        UnchunkedChanges {
            models: vec![],
            decks: (vec![deck], vec![]),
            tags: vec![],
            conf: Some(object(json!({"curDeck": 1, "sent": true}))),
            crt: None,
        }
    }

    fn context(client_usn: i32, client_is_newer: bool) -> ChangesContext {
        ChangesContext {
            server_usn: 9,
            client_usn,
            client_is_newer,
        }
    }

    /// The server's answer to a client that sends nothing.
    fn ask(
        conn: &Connection,
        memos: &mut ColumnMemos,
        context: ChangesContext,
    ) -> UnchunkedChanges {
        apply_changes(conn, memos, &context, UnchunkedChanges::default()).unwrap()
    }

    fn keys(objects: &[JsonObject]) -> Vec<i64> {
        objects.iter().filter_map(object_id).collect()
    }

    #[test]
    fn each_column_s_pending_entries_are_sent_whatever_the_memos_kept() {
        let (_dir, conn) = open_new_collection();
        let models =
            r#"{"7": {"id": 7, "name": "M", "usn": 5, "mod": 1, "flds": [], "tmpls": []}}"#;
        let dconf = r#"{"1": {"id": 1, "name": "C", "usn": 5, "mod": 1}}"#;
        let tags = r#"{"five": 5, "odd": "x", "old": 2}"#;
        set_columns(&conn, models, dconf, r#"{"stored": 1}"#, tags);
        let mut memos = ColumnMemos::default();

        // Nothing pending past usn 5: the memos now hold these texts' scans.
        let answer = apply_changes(
            &conn,
            &mut memos,
            &context(6, true),
            review_changes(&conn, 6),
        );
        let answer = answer.unwrap();
        assert!(answer.models.is_empty() && answer.decks.1.is_empty() && answer.tags.is_empty());
        assert_eq!(keys(&answer.decks.0), Vec::<i64>::new());
        assert_eq!(answer.conf, None);
        // The untouched columns keep their exact text; the config is the client's.
        assert_eq!(
            query_value::<String>(&conn, "SELECT models FROM col"),
            models
        );
        assert_eq!(query_value::<String>(&conn, "SELECT dconf FROM col"), dconf);
        assert_eq!(query_value::<String>(&conn, "SELECT tags FROM col"), tags);
        assert_eq!(
            query_value::<String>(&conn, "SELECT conf FROM col"),
            r#"{"curDeck":1,"sent":true}"#
        );

        // The same texts, asked from an older usn: the kept scans answer, and every pending
        // entry is sent (a tag whose usn is not an integer counts as 0).
        let answer = ask(&conn, &mut memos, context(0, false));
        assert_eq!(keys(&answer.models), [7]);
        assert_eq!(keys(&answer.decks.0), [1]);
        assert_eq!(keys(&answer.decks.1), [1]);
        let mut sent_tags = answer.tags.clone();
        sent_tags.sort();
        assert_eq!(sent_tags, ["five", "odd", "old"]);
        assert_eq!(
            answer.conf,
            Some(object(json!({"curDeck": 1, "sent": true})))
        );
        assert!(answer.crt.is_some());

        // New texts are scanned again, not answered from the kept scans.
        set_columns(
            &conn,
            &models.replace("\"usn\": 5", "\"usn\": 8"),
            &dconf.replace("\"usn\": 5", "\"usn\": 8"),
            r#"{"stored": 2}"#,
            r#"{"five": 5, "eight": 8}"#,
        );
        let answer = ask(&conn, &mut memos, context(8, true));
        assert_eq!(keys(&answer.models), [7]);
        assert_eq!(keys(&answer.decks.1), [1]);
        assert_eq!(answer.tags, ["eight"]);
    }

    #[test]
    fn a_damaged_config_is_refused_only_when_it_would_be_sent() {
        let (_dir, conn) = open_new_collection();
        set_columns(&conn, "{}", "{}", "{not json", "{}");
        let mut memos = ColumnMemos::default();
        let sent = apply_changes(
            &conn,
            &mut memos,
            &context(0, false),
            UnchunkedChanges::default(),
        );
        assert!(
            sent.unwrap_err()
                .to_string()
                .contains("col.conf is not JSON")
        );
        // The client's config is newer and replaces it whole.
        apply_changes(
            &conn,
            &mut memos,
            &context(0, true),
            review_changes(&conn, 0),
        )
        .unwrap();
        assert_eq!(
            query_value::<String>(&conn, "SELECT conf FROM col"),
            r#"{"curDeck":1,"sent":true}"#
        );
        // Any other damaged column is still refused.
        set_columns(&conn, "{}", "[1]", "{}", "{}");
        let err = apply_changes(
            &conn,
            &mut memos,
            &context(0, true),
            review_changes(&conn, 0),
        );
        assert!(
            err.unwrap_err()
                .to_string()
                .contains("col.dconf is not a JSON object")
        );
    }
}
