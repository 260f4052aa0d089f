//! Matching the package's notetypes to the user's (docs/sync-protocol.md#imported-notetypes,
//! without merging).
//!
//! An existing notetype is only ever updated when its schema (fields and templates) is
//! unchanged, so an import never forces a full sync; a changed notetype arrives as a new one.

use std::collections::{BTreeSet, HashMap};

use serde_json::{Value, json};

use super::ImportError;
use crate::collection::json::{ColObjects, JsonObject, as_i64_lenient, object_id, object_mtime};
use crate::collection::schema11::{LATEX_POST, LATEX_PRE};

/// What the notes of one imported notetype need to know.
#[derive(Debug, Clone, Copy)]
pub struct NotetypeShape {
    pub field_count: usize,
    pub sort_field: usize,
    pub template_count: usize,
    pub is_cloze: bool,
}

#[derive(Debug, Default)]
pub struct NotetypeOutcome {
    /// Package notetype id -> the user's notetype id.
    pub ids: HashMap<i64, i64>,
    /// Shapes by the user's notetype id.
    pub shapes: HashMap<i64, NotetypeShape>,
    pub added: usize,
    pub updated: usize,
    pub matched: usize,
}

fn bad(message: String) -> ImportError {
    ImportError::BadPackage(message)
}

fn array<'a>(notetype: &'a JsonObject, key: &str) -> &'a [Value] {
    notetype
        .get(key)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn kind(notetype: &JsonObject) -> i64 {
    notetype.get("type").and_then(as_i64_lenient).unwrap_or(0)
}

fn shape(notetype: &JsonObject) -> NotetypeShape {
    let field_count = array(notetype, "flds").len();
    let sort_field = notetype
        .get("sortf")
        .and_then(as_i64_lenient)
        .and_then(|index| usize::try_from(index).ok())
        .filter(|index| *index < field_count)
        .unwrap_or(0);
    NotetypeShape {
        field_count,
        sort_field,
        template_count: array(notetype, "tmpls").len(),
        is_cloze: kind(notetype) == 1,
    }
}

/// Refuses notetypes a client could not load.
fn check(notetype: &JsonObject, id: i64) -> Result<(), ImportError> {
    let named = |items: &[Value]| {
        items.iter().all(|item| {
            item.as_object()
                .and_then(|object| object.get("name"))
                .is_some_and(Value::is_string)
        })
    };
    let fields = array(notetype, "flds");
    let templates = array(notetype, "tmpls");
    if fields.is_empty() || !named(fields) {
        return Err(bad(format!("notetype {id} has no usable fields")));
    }
    if templates.is_empty() || !named(templates) {
        return Err(bad(format!("notetype {id} has no usable templates")));
    }
    let formats_are_text = templates.iter().all(|template| {
        ["qfmt", "afmt"]
            .iter()
            .all(|key| template.get(key).is_some_and(Value::is_string))
    });
    if !formats_are_text {
        return Err(bad(format!(
            "notetype {id} has a template without question or answer format"
        )));
    }
    Ok(())
}

/// Two fields or two templates are the same when both carry config ids and these agree, or
/// else when their names agree.
fn same_item(a: &Value, b: &Value) -> bool {
    let id = |item: &Value| item.get("id").and_then(as_i64_lenient);
    match (id(a), id(b)) {
        (Some(a_id), Some(b_id)) => a_id == b_id,
        _ => a.get("name") == b.get("name"),
    }
}

fn same_schema(a: &JsonObject, b: &JsonObject) -> bool {
    let pairs_match = |key: &str| {
        let (left, right) = (array(a, key), array(b, key));
        left.len() == right.len() && left.iter().zip(right).all(|(x, y)| same_item(x, y))
    };
    kind(a) == kind(b) && pairs_match("flds") && pairs_match("tmpls")
}

fn insert_missing(object: &mut JsonObject, key: &str, value: Value) {
    if !object.contains_key(key) {
        object.insert(key.to_string(), value);
    }
}

/// The incoming notetype as the user's collection stores it: every key the client's parser
/// requires, numeric id, the server's usn, and the deck it last used mapped to the user's.
fn prepared(
    incoming: &JsonObject,
    id: i64,
    name: String,
    usn: i32,
    decks: &HashMap<i64, i64>,
    target: &ColObjects,
) -> JsonObject {
    let mut notetype = incoming.clone();
    notetype.insert("id".into(), json!(id));
    notetype.insert("name".into(), json!(name));
    notetype.insert("usn".into(), json!(usn));
    let last_deck = notetype.get("did").and_then(as_i64_lenient);
    let did = last_deck.and_then(|did| {
        decks
            .get(&did)
            .copied()
            .or_else(|| target.decks.contains_key(&did.to_string()).then_some(did))
    });
    notetype.insert("did".into(), did.map_or(Value::Null, Value::from));
    insert_missing(&mut notetype, "mod", json!(0));
    insert_missing(&mut notetype, "type", json!(0));
    insert_missing(&mut notetype, "sortf", json!(0));
    insert_missing(&mut notetype, "css", json!(""));
    insert_missing(&mut notetype, "latexPre", json!(LATEX_PRE));
    insert_missing(&mut notetype, "latexPost", json!(LATEX_POST));
    insert_missing(&mut notetype, "latexsvg", json!(false));
    insert_missing(&mut notetype, "req", json!([]));
    insert_missing(&mut notetype, "tags", json!([]));
    insert_missing(&mut notetype, "vers", json!([]));
    if let Some(Value::Array(fields)) = notetype.get_mut("flds") {
        for (ord, field) in fields.iter_mut().enumerate() {
            if let Some(field) = field.as_object_mut() {
                field.insert("ord".into(), json!(ord));
                insert_missing(field, "sticky", json!(false));
                insert_missing(field, "rtl", json!(false));
                insert_missing(field, "font", json!("Arial"));
                insert_missing(field, "size", json!(20));
            }
        }
    }
    if let Some(Value::Array(templates)) = notetype.get_mut("tmpls") {
        for (ord, template) in templates.iter_mut().enumerate() {
            if let Some(template) = template.as_object_mut() {
                template.insert("ord".into(), json!(ord));
                insert_missing(template, "bqfmt", json!(""));
                insert_missing(template, "bafmt", json!(""));
                insert_missing(template, "did", Value::Null);
                insert_missing(template, "bfont", json!(""));
                insert_missing(template, "bsize", json!(0));
            }
        }
    }
    notetype
}

fn name_of(notetype: &JsonObject, id: i64) -> String {
    notetype
        .get("name")
        .and_then(Value::as_str)
        .filter(|name| !name.trim().is_empty())
        .map_or_else(|| format!("Imported {id}"), str::to_string)
}

fn fresh_id(target: &ColObjects, now_ms: i64) -> i64 {
    super::ids::fresh(now_ms, |id| target.models.contains_key(&id.to_string()))
}

/// Maps every notetype in `used` (package ids) to one of the user's, adding or updating the
/// user's notetypes in `target`.
pub fn merge(
    source: &ColObjects,
    used: &BTreeSet<i64>,
    target: &mut ColObjects,
    decks: &HashMap<i64, i64>,
    usn: i32,
    now_ms: i64,
) -> Result<NotetypeOutcome, ImportError> {
    let by_id: HashMap<i64, &JsonObject> = source
        .models
        .iter()
        .filter_map(|(key, value)| {
            let object = value.as_object()?;
            let id = object_id(object).or_else(|| key.parse().ok())?;
            Some((id, object))
        })
        .collect();
    let mut outcome = NotetypeOutcome::default();
    for &incoming_id in used {
        let incoming = by_id.get(&incoming_id).ok_or_else(|| {
            bad(format!(
                "notes use notetype {incoming_id}, which the package does not contain"
            ))
        })?;
        check(incoming, incoming_id)?;
        let key = incoming_id.to_string();
        let existing = target.models.get(&key).and_then(Value::as_object).cloned();
        let target_id = match existing {
            Some(existing) if same_schema(&existing, incoming) => {
                if object_mtime(incoming) > object_mtime(&existing) {
                    let name = ColObjects::unique_name(
                        &target.models,
                        &key,
                        &name_of(incoming, incoming_id),
                    );
                    let mut updated = prepared(incoming, incoming_id, name, usn, decks, target);
                    for preserved in ["originalId", "originalStockKind"] {
                        if let Some(value) = existing.get(preserved) {
                            updated.insert(preserved.into(), value.clone());
                        }
                    }
                    target.models.insert(key, Value::Object(updated));
                    outcome.updated += 1;
                } else {
                    outcome.matched += 1;
                }
                incoming_id
            }
            Some(_) => {
                // An earlier import may already have added this changed version.
                let earlier = target
                    .models
                    .values()
                    .filter_map(Value::as_object)
                    .find(|nt| {
                        nt.get("originalId").and_then(as_i64_lenient) == Some(incoming_id)
                            && same_schema(nt, incoming)
                    });
                match earlier.and_then(object_id) {
                    Some(id) => {
                        outcome.matched += 1;
                        id
                    }
                    None => {
                        let id = fresh_id(target, now_ms);
                        let name = ColObjects::unique_name(
                            &target.models,
                            &id.to_string(),
                            &name_of(incoming, incoming_id),
                        );
                        let mut added = prepared(incoming, id, name, usn, decks, target);
                        added.insert("originalId".into(), json!(incoming_id));
                        target.models.insert(id.to_string(), Value::Object(added));
                        outcome.added += 1;
                        id
                    }
                }
            }
            None => {
                let name =
                    ColObjects::unique_name(&target.models, &key, &name_of(incoming, incoming_id));
                let added = prepared(incoming, incoming_id, name, usn, decks, target);
                target.models.insert(key, Value::Object(added));
                outcome.added += 1;
                incoming_id
            }
        };
        let stored = target
            .models
            .get(&target_id.to_string())
            .and_then(Value::as_object)
            .expect("mapped notetypes exist in the target");
        outcome.ids.insert(incoming_id, target_id);
        outcome.shapes.insert(target_id, shape(stored));
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notetype(id: i64, fields: &[&str], modified: i64) -> JsonObject {
        let flds: Vec<Value> = fields.iter().map(|name| json!({"name": name})).collect();
        serde_json::from_value(json!({
            "id": id.to_string(), "name": "Vocab", "mod": modified, "type": 0, "sortf": 0,
            "flds": flds, "tmpls": [{"name": "Card 1", "qfmt": "{{Front}}", "afmt": "x"}],
        }))
        .unwrap()
    }

    fn objects(models: &[JsonObject]) -> ColObjects {
        ColObjects {
            models: models
                .iter()
                .map(|nt| {
                    (
                        object_id(nt).unwrap().to_string(),
                        Value::Object(nt.clone()),
                    )
                })
                .collect(),
            decks: JsonObject::new(),
            dconf: JsonObject::new(),
            conf: JsonObject::new(),
            tags: JsonObject::new(),
        }
    }

    #[test]
    fn a_new_notetype_keeps_its_id_and_a_changed_one_becomes_new() {
        let used = BTreeSet::from([10]);
        let mut target = objects(&[]);
        let source = objects(&[notetype(10, &["Front", "Back"], 5)]);
        let first = merge(&source, &used, &mut target, &HashMap::new(), 7, 1_000).unwrap();
        assert_eq!((first.added, first.ids[&10]), (1, 10));
        assert_eq!(target.models["10"]["usn"], 7);
        assert_eq!(target.models["10"]["id"], 10);

        let changed = objects(&[notetype(10, &["Front", "Back", "Extra"], 6)]);
        let second = merge(&changed, &used, &mut target, &HashMap::new(), 8, 2_000).unwrap();
        assert_eq!(second.added, 1);
        let new_id = second.ids[&10];
        assert_ne!(new_id, 10);
        assert_eq!(target.models[&new_id.to_string()]["originalId"], 10);
        assert_eq!(target.models[&new_id.to_string()]["name"], "Vocab+");
        assert_eq!(
            target.models["10"]["flds"].as_array().unwrap().len(),
            2,
            "the existing notetype's schema is never changed"
        );

        let again = merge(&changed, &used, &mut target, &HashMap::new(), 9, 3_000).unwrap();
        assert_eq!((again.added, again.matched, again.ids[&10]), (0, 1, new_id));
    }

    #[test]
    fn a_newer_notetype_with_the_same_schema_updates_in_place() {
        let used = BTreeSet::from([10]);
        let mut target = objects(&[notetype(10, &["Front", "Back"], 5)]);
        let mut newer = notetype(10, &["Front", "Back"], 9);
        newer.insert("css".into(), json!(".card {color: red}"));
        let outcome = merge(
            &objects(&[newer]),
            &used,
            &mut target,
            &HashMap::new(),
            3,
            0,
        )
        .unwrap();
        assert_eq!((outcome.updated, outcome.ids[&10]), (1, 10));
        assert_eq!(target.models["10"]["css"], ".card {color: red}");
        assert_eq!(target.models["10"]["usn"], 3);
    }

    #[test]
    fn a_notetype_without_templates_is_refused() {
        let mut broken = notetype(10, &["Front"], 1);
        broken.insert("tmpls".into(), json!([]));
        let err = merge(
            &objects(&[broken]),
            &BTreeSet::from([10]),
            &mut objects(&[]),
            &HashMap::new(),
            0,
            0,
        )
        .unwrap_err();
        assert!(matches!(err, ImportError::BadPackage(_)));
    }
}
