//! Matching the package's decks to the user's by name (docs/sync-protocol.md#imported-decks), as an
//! import without scheduling does it: the default deck is not imported, filtered decks arrive as
//! normal decks, and imported decks use the default options.

use std::collections::{BTreeSet, HashMap};

use serde_json::{Value, json};
use unicase::UniCase;

use crate::collection::json::{ColObjects, JsonObject, as_i64_lenient, object_id};
use crate::collection::schema11::default_deck;

pub const DEFAULT_DECK_ID: i64 = 1;

#[derive(Debug, Default)]
pub struct DeckOutcome {
    /// Package deck id -> the user's deck id.
    pub ids: HashMap<i64, i64>,
    pub added: usize,
    pub matched: usize,
}

/// `A:: B ::C` -> `A::B::C`, as Anki normalizes deck names.
pub fn normalize_name(name: &str) -> String {
    name.split("::")
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join("::")
}

fn name_of(deck: &JsonObject) -> Option<String> {
    deck.get("name")
        .and_then(Value::as_str)
        .map(normalize_name)
        .filter(|name| !name.is_empty())
}

fn is_filtered(deck: &JsonObject) -> bool {
    deck.get("dyn").and_then(as_i64_lenient).unwrap_or(0) != 0
}

fn find_by_name<'a>(target: &'a ColObjects, name: &str) -> Option<&'a JsonObject> {
    let wanted = UniCase::new(name);
    target
        .decks
        .values()
        .filter_map(Value::as_object)
        .find(|deck| name_of(deck).is_some_and(|other| UniCase::new(other.as_str()) == wanted))
}

fn ancestors_and_self(name: &str) -> Vec<String> {
    let parts: Vec<&str> = name.split("::").collect();
    (1..=parts.len()).map(|n| parts[..n].join("::")).collect()
}

/// A normal deck for the user's collection, keeping what the package says about it where a
/// normal deck has it, and starting today's counters afresh.
fn new_deck(incoming: Option<&JsonObject>, id: i64, name: &str, usn: i32, now_secs: i64) -> Value {
    let mut deck = match incoming {
        Some(incoming) if !is_filtered(incoming) => incoming.clone(),
        _ => JsonObject::new(),
    };
    if let Value::Object(defaults) = default_deck() {
        for (key, value) in defaults {
            deck.entry(key).or_insert(value);
        }
    }
    if let Some(description) = incoming.and_then(|deck| deck.get("desc")).cloned() {
        deck.insert("desc".into(), description);
    }
    for counter in ["newToday", "revToday", "lrnToday", "timeToday"] {
        deck.insert(counter.into(), json!([0, 0]));
    }
    deck.insert("id".into(), json!(id));
    deck.insert("name".into(), json!(name));
    deck.insert("usn".into(), json!(usn));
    deck.insert("mod".into(), json!(now_secs));
    deck.insert("dyn".into(), json!(0));
    deck.insert("conf".into(), json!(1));
    Value::Object(deck)
}

/// Maps every deck in `used` (package ids) to one of the user's, creating decks and their
/// parents in `target` where no deck of that name exists.
pub fn merge(
    source: &ColObjects,
    used: &BTreeSet<i64>,
    target: &mut ColObjects,
    usn: i32,
    now_ms: i64,
) -> DeckOutcome {
    let now_secs = now_ms / 1000;
    let by_id: HashMap<i64, &JsonObject> = source
        .decks
        .iter()
        .filter_map(|(key, value)| {
            let deck = value.as_object()?;
            Some((object_id(deck).or_else(|| key.parse().ok())?, deck))
        })
        .collect();
    let by_name: HashMap<UniCase<String>, &JsonObject> = by_id
        .values()
        .filter_map(|deck| Some((UniCase::new(name_of(deck)?), *deck)))
        .collect();

    let mut outcome = DeckOutcome::default();
    // Every deck to import and its ancestors, parents first.
    let mut wanted: Vec<String> = Vec::new();
    for &id in used {
        if id == DEFAULT_DECK_ID {
            continue;
        }
        if let Some(name) = by_id.get(&id).and_then(|deck| name_of(deck)) {
            for name in ancestors_and_self(&name) {
                if !wanted
                    .iter()
                    .any(|known| UniCase::new(known.as_str()) == UniCase::new(name.as_str()))
                {
                    wanted.push(name);
                }
            }
        }
    }
    wanted.sort_by_key(|name| name.matches("::").count());

    // Package name (case-folded) -> the user's deck id and name; renames propagate to children.
    let mut placed: HashMap<UniCase<String>, (i64, String)> = HashMap::new();
    for name in wanted {
        let (parent, leaf) = match name.rsplit_once("::") {
            Some((parent, leaf)) => (Some(parent), leaf),
            None => (None, name.as_str()),
        };
        let target_name = match parent.and_then(|p| placed.get(&UniCase::new(p.to_string()))) {
            Some((_, parent_name)) => format!("{parent_name}::{leaf}"),
            None => name.clone(),
        };
        let incoming = by_name.get(&UniCase::new(name.clone())).copied();
        let (id, final_name) = match find_by_name(target, &target_name) {
            Some(existing) if !is_filtered(existing) => {
                let id = object_id(existing).unwrap_or(DEFAULT_DECK_ID);
                let description = incoming
                    .and_then(|deck| deck.get("desc"))
                    .and_then(Value::as_str)
                    .filter(|text| !text.is_empty());
                if let Some(description) = description
                    && existing.get("desc").and_then(Value::as_str) != Some(description)
                    && let Some(Value::Object(deck)) = target.decks.get_mut(&id.to_string())
                {
                    deck.insert("desc".into(), json!(description));
                    deck.insert("usn".into(), json!(usn));
                    deck.insert("mod".into(), json!(now_secs));
                }
                outcome.matched += 1;
                (id, target_name)
            }
            existing => {
                // A filtered deck of that name cannot hold imported cards: use a new name.
                let final_name = if existing.is_some() {
                    format!("{target_name} {now_secs}")
                } else {
                    target_name
                };
                let id = super::ids::fresh(now_ms, |id| target.decks.contains_key(&id.to_string()));
                target.decks.insert(
                    id.to_string(),
                    new_deck(incoming, id, &final_name, usn, now_secs),
                );
                outcome.added += 1;
                (id, final_name)
            }
        };
        placed.insert(UniCase::new(name), (id, final_name));
    }

    for &id in used {
        let mapped = by_id
            .get(&id)
            .filter(|_| id != DEFAULT_DECK_ID)
            .and_then(|deck| name_of(deck))
            .and_then(|name| placed.get(&UniCase::new(name)))
            .map_or(DEFAULT_DECK_ID, |(target_id, _)| *target_id);
        outcome.ids.insert(id, mapped);
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    fn objects(decks: Value) -> ColObjects {
        ColObjects {
            models: JsonObject::new(),
            decks: serde_json::from_value(decks).unwrap(),
            dconf: JsonObject::new(),
            conf: JsonObject::new(),
            tags: JsonObject::new(),
        }
    }

    #[test]
    fn decks_match_by_name_and_parents_are_created() {
        let source = objects(json!({
            "1": {"id": 1, "name": "Default", "dyn": 0},
            "2000": {"id": 2000, "name": "Gen:: Sub", "dyn": 0, "desc": "from the web"},
            "3000": {"id": 3000, "name": "spanish", "dyn": 0},
        }));
        let mut target = objects(json!({
            "1": {"id": 1, "name": "Default", "dyn": 0},
            "55": {"id": 55, "name": "Spanish", "dyn": 0, "desc": ""},
        }));
        let used = BTreeSet::from([1, 2000, 3000]);
        let outcome = merge(&source, &used, &mut target, 4, 1_800_000_000_000);
        assert_eq!(outcome.ids[&1], 1);
        assert_eq!(outcome.ids[&3000], 55);
        assert_eq!(outcome.added, 2, "Gen and Gen::Sub");
        assert_eq!(outcome.matched, 1);
        let sub = &target.decks[&outcome.ids[&2000].to_string()];
        assert_eq!(sub["name"], "Gen::Sub");
        assert_eq!(sub["desc"], "from the web");
        assert_eq!(sub["usn"], 4);
        assert_eq!(sub["conf"], 1);
        assert!(find_by_name(&target, "gen").is_some());
    }

    #[test]
    fn a_filtered_deck_of_the_same_name_is_not_reused() {
        let source = objects(json!({"7": {"id": 7, "name": "Exam", "dyn": 0}}));
        let mut target = objects(json!({"9": {"id": 9, "name": "Exam", "dyn": 1}}));
        let outcome = merge(
            &source,
            &BTreeSet::from([7]),
            &mut target,
            0,
            1_800_000_000_000,
        );
        let deck = &target.decks[&outcome.ids[&7].to_string()];
        assert_eq!(deck["name"], "Exam 1800000000");
        assert_eq!(deck["dyn"], 0);
    }
}
