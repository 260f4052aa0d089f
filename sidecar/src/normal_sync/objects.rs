//! Checks of the notetypes, decks and deck configs a client sends in `applyChanges`.
//!
//! The server stores these JSON objects as they come and sends them to the user's other
//! devices, which read them with Anki's schema-11 types. Only the keys those types read
//! strictly are checked here (a wrong type there fails the other device's sync); keys the
//! client tolerates or does not know are kept as they are. The rules are listed in
//! docs/sync-rows.md.

use serde_json::Value;

use super::rows::shorten;
use super::{OpResult, SyncOpError};
use crate::collection::json::JsonObject;

const I64: (i64, i64) = (i64::MIN, i64::MAX);
const I32: (i64, i64) = (i32::MIN as i64, i32::MAX as i64);
const U32: (i64, i64) = (0, u32::MAX as i64);
const U16: (i64, i64) = (0, u16::MAX as i64);
const U8: (i64, i64) = (0, u8::MAX as i64);

/// Reads one object's keys, naming the object in every refusal.
struct Checker<'a> {
    what: String,
    object: &'a JsonObject,
}

fn strict_int(value: &Value, (min, max): (i64, i64)) -> bool {
    value.as_i64().is_some_and(|int| (min..=max).contains(&int))
}

/// A number, or a string holding an integer, as the client's "number from string" fields.
fn number_or_numeric_string(value: &Value) -> bool {
    match value {
        Value::String(text) => text.parse::<i64>().is_ok(),
        other => other.as_i64().is_some(),
    }
}

/// Booleans, 0 and 1, and the strings "true", "false", "0" and "1", in any case.
fn bool_like(value: &Value) -> bool {
    match value {
        Value::Bool(_) => true,
        Value::Number(number) => number.as_f64().is_some_and(|n| n == 0.0 || n == 1.0),
        Value::String(text) => {
            matches!(text.to_lowercase().as_str(), "true" | "false" | "0" | "1")
        }
        _ => false,
    }
}

impl<'a> Checker<'a> {
    fn new(kind: &str, object: &'a JsonObject) -> Self {
        let id = object.get("id").map(shorten).unwrap_or_default();
        Self {
            what: format!("{kind} {id}"),
            object,
        }
    }

    fn refuse(&self, key: &str, expected: &str) -> SyncOpError {
        match self.object.get(key) {
            Some(value) => SyncOpError::invalid(format!(
                "{}: \"{key}\" is {}, expected {expected}",
                self.what,
                shorten(value)
            )),
            None => SyncOpError::invalid(format!(
                "{}: \"{key}\" is missing, expected {expected}",
                self.what
            )),
        }
    }

    /// A key that must be present and pass `test`.
    fn required(&self, key: &str, expected: &str, test: impl Fn(&Value) -> bool) -> OpResult<()> {
        match self.object.get(key) {
            Some(value) if test(value) => Ok(()),
            _ => Err(self.refuse(key, expected)),
        }
    }

    /// A key that may be absent, but passes `test` when present.
    fn optional(&self, key: &str, expected: &str, test: impl Fn(&Value) -> bool) -> OpResult<()> {
        match self.object.get(key) {
            Some(value) if !test(value) => Err(self.refuse(key, expected)),
            _ => Ok(()),
        }
    }

    fn present(&self, key: &str) -> OpResult<()> {
        self.required(key, "a value", |_| true)
    }

    fn int(&self, key: &str, range: (i64, i64)) -> OpResult<()> {
        let expected = format!("an integer in {}..={}", range.0, range.1);
        self.required(key, &expected, |v| strict_int(v, range))
    }

    fn opt_int(&self, key: &str, range: (i64, i64)) -> OpResult<()> {
        let expected = format!("an integer in {}..={}", range.0, range.1);
        self.optional(key, &expected, |v| strict_int(v, range))
    }

    fn id(&self, key: &str) -> OpResult<()> {
        self.required(key, "an integer id", number_or_numeric_string)
    }

    fn text(&self, key: &str) -> OpResult<()> {
        self.required(key, "a string", Value::is_string)
    }

    fn opt_text(&self, key: &str) -> OpResult<()> {
        self.optional(key, "a string", Value::is_string)
    }

    fn opt_bool(&self, key: &str) -> OpResult<()> {
        self.optional(key, "true or false", Value::is_boolean)
    }

    fn opt_number(&self, key: &str) -> OpResult<()> {
        self.optional(key, "a number", Value::is_number)
    }

    fn array(&self, key: &str) -> OpResult<&'a Vec<Value>> {
        self.object
            .get(key)
            .and_then(Value::as_array)
            .ok_or_else(|| self.refuse(key, "a list"))
    }

    /// A checker for each object in the list under `key`, named `{kind} {index}` within this
    /// object; an item that is not an object is refused when the iteration reaches it.
    fn children<'s>(
        &'s self,
        key: &'s str,
        kind: &'s str,
    ) -> OpResult<impl Iterator<Item = OpResult<Checker<'a>>> + 's> {
        let items = self.array(key)?;
        Ok(items.iter().enumerate().map(move |(index, item)| {
            let object = item
                .as_object()
                .ok_or_else(|| self.refuse(key, "a list of objects"))?;
            Ok(Checker {
                what: format!("{}, {kind} {index}", self.what),
                object,
            })
        }))
    }
}

/// A null or a u16, for the `ord` of fields and templates.
fn optional_ord(value: &Value) -> bool {
    value.is_null() || strict_int(value, U16)
}

pub fn check_notetype(object: &JsonObject) -> OpResult<()> {
    let c = Checker::new("notetype", object);
    c.id("id")?;
    c.text("name")?;
    c.int("type", (0, 1))?;
    c.int("mod", I64)?;
    c.int("usn", I32)?;
    c.int("sortf", U16)?;
    c.present("did")?;
    c.present("css")?;
    c.opt_text("latexPre")?;
    c.opt_text("latexPost")?;
    c.opt_int("originalStockKind", I32)?;
    c.optional("originalId", "null or an integer", |v| {
        v.is_null() || v.as_i64().is_some()
    })?;
    c.opt_bool("loadBalancerDisperseSiblings")?;
    for field in c.children("flds", "field")? {
        let f = field?;
        f.text("name")?;
        f.optional("ord", "null or an integer in 0..=65535", optional_ord)?;
        f.required("sticky", "true or false", bool_like)?;
        f.required("rtl", "true or false", bool_like)?;
        f.text("font")?;
        f.int("size", U16)?;
    }
    for template in c.children("tmpls", "template")? {
        let t = template?;
        t.text("name")?;
        t.optional("ord", "null or an integer in 0..=65535", optional_ord)?;
        t.text("qfmt")?;
        t.opt_text("afmt")?;
        t.opt_text("bqfmt")?;
        t.opt_text("bafmt")?;
    }
    Ok(())
}

pub fn check_deck(object: &JsonObject) -> OpResult<()> {
    let c = Checker::new("deck", object);
    let filtered = match object.get("dyn") {
        Some(Value::Bool(flag)) => *flag,
        Some(value) if strict_int(value, U8) => value.as_i64() == Some(1),
        _ => return Err(c.refuse("dyn", "true, false or an integer in 0..=255")),
    };
    c.id("id")?;
    c.optional("mod", "an integer", number_or_numeric_string)?;
    c.text("name")?;
    c.int("usn", I32)?;
    for key in ["lrnToday", "revToday", "newToday", "timeToday"] {
        c.array(key)?;
    }
    c.required("collapsed", "true or false", Value::is_boolean)?;
    c.opt_bool("browserCollapsed")?;
    c.opt_text("desc")?;
    c.opt_bool("md")?;
    if filtered {
        c.required("resched", "true or false", bool_like)?;
        for term in c.array("terms")? {
            let valid = term.as_array().is_some_and(|term| {
                term.len() == 3
                    && term[0].is_string()
                    && (strict_int(&term[1], I32)
                        || term[1].as_str().is_some_and(|s| s.parse::<i32>().is_ok()))
                    && strict_int(&term[2], I32)
            });
            if !valid {
                return Err(c.refuse("terms", "a list of [search, limit, order]"));
            }
        }
        c.opt_bool("separate")?;
        c.opt_int("previewDelay", U32)?;
    } else {
        c.id("conf")?;
    }
    Ok(())
}

pub fn check_deck_config(object: &JsonObject) -> OpResult<()> {
    let c = Checker::new("deck config", object);
    c.id("id")?;
    c.id("mod")?;
    c.text("name")?;
    c.int("usn", I32)?;
    c.int("maxTaken", I32)?;
    c.required("autoplay", "true or false", Value::is_boolean)?;
    for key in ["timer", "new", "rev", "lapse"] {
        c.present(key)?;
    }
    for key in [
        "replayq",
        "buryInterdayLearning",
        "stopTimerOnAnswer",
        "rescheduleFsrsCards",
    ] {
        c.opt_bool(key)?;
    }
    for key in [
        "newMix",
        "interdayLearningMix",
        "reviewOrder",
        "newSortOrder",
        "newGatherPriority",
    ] {
        c.opt_int(key, I32)?;
    }
    c.opt_int("newPerDayMinimum", U32)?;
    c.opt_int("answerAction", (0, 2))?;
    for key in [
        "desiredRetention",
        "secondsToShowQuestion",
        "secondsToShowAnswer",
        "sm2Retention",
    ] {
        c.opt_number(key)?;
    }
    c.optional("fsrsWeights", "a list of numbers", |v| {
        v.as_array()
            .is_some_and(|list| list.iter().all(Value::is_number))
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn object(value: Value) -> JsonObject {
        value.as_object().unwrap().clone()
    }

    fn notetype() -> Value {
        json!({
            "id": 1_600_000_000_000i64, "name": "Basic", "type": 0, "mod": 1_700_000_000,
            "usn": -1, "sortf": 0, "did": null, "css": ".card {}", "latexPre": "", "latexPost": "",
            "latexsvg": false, "req": [[0, "any", [0]]],
            "flds": [
                {"name": "Front", "ord": 0, "sticky": false, "rtl": false, "font": "Arial", "size": 20},
                {"name": "Back", "ord": 1, "sticky": false, "rtl": false, "font": "Arial", "size": 20}
            ],
            "tmpls": [{"name": "Card 1", "ord": 0, "qfmt": "{{Front}}", "afmt": "{{Back}}",
                       "bqfmt": "", "bafmt": "", "did": null}]
        })
    }

    fn deck() -> Value {
        json!({
            "id": 1, "mod": 1_700_000_000, "name": "Default", "usn": -1, "collapsed": false,
            "browserCollapsed": false, "desc": "", "dyn": 0, "conf": 1, "extendNew": 0,
            "extendRev": 0, "lrnToday": [0, 0], "revToday": [0, 0], "newToday": [0, 0],
            "timeToday": [0, 0]
        })
    }

    fn filtered_deck() -> Value {
        let mut deck = deck();
        let map = deck.as_object_mut().unwrap();
        map.remove("conf");
        map.insert("dyn".into(), json!(1));
        map.insert("resched".into(), json!(true));
        map.insert("terms".into(), json!([["deck:x", 100, 0]]));
        map.insert("separate".into(), json!(true));
        map.insert("previewDelay".into(), json!(10));
        deck
    }

    fn deck_config() -> Value {
        json!({
            "id": 1, "mod": 0, "name": "Default", "usn": 0, "maxTaken": 60, "autoplay": true,
            "timer": 0, "replayq": true, "dyn": false,
            "new": {"bury": false, "delays": [1.0, 10.0], "initialFactor": 2500, "ints": [1, 4, 0],
                    "order": 1, "perDay": 20},
            "rev": {"bury": false, "ease4": 1.3, "ivlFct": 1.0, "maxIvl": 36500, "perDay": 200,
                    "hardFactor": 1.2},
            "lapse": {"delays": [10.0], "leechAction": 1, "leechFails": 8, "minInt": 1, "mult": 0.0},
            "newMix": 0, "newPerDayMinimum": 0, "interdayLearningMix": 0, "reviewOrder": 0,
            "newSortOrder": 0, "newGatherPriority": 0, "buryInterdayLearning": false,
            "fsrsWeights": [], "desiredRetention": 0.9, "stopTimerOnAnswer": false,
            "secondsToShowQuestion": 0.0, "secondsToShowAnswer": 0.0, "answerAction": 0,
            "sm2Retention": 0.9
        })
    }

    /// Sets `path` (keys, or list indexes as strings) in a copy of `base`.
    fn set(base: &Value, path: &[&str], value: Option<Value>) -> JsonObject {
        let mut copy = base.clone();
        let mut target = &mut copy;
        for key in &path[..path.len() - 1] {
            target = match key.parse::<usize>() {
                Ok(index) => &mut target[index],
                Err(_) => &mut target[*key],
            };
        }
        let last = path[path.len() - 1];
        let map = target.as_object_mut().unwrap();
        match value {
            Some(value) => map.insert(last.into(), value),
            None => map.remove(last),
        };
        object(copy)
    }

    fn refused(result: OpResult<()>, needle: &str) {
        match result {
            Err(SyncOpError::Invalid(message)) => {
                assert!(message.contains(needle), "{message} lacks {needle}")
            }
            other => panic!("expected a refusal naming {needle}, got {other:?}"),
        }
    }

    #[test]
    fn valid_objects_pass() {
        check_notetype(&object(notetype())).unwrap();
        check_deck(&object(deck())).unwrap();
        check_deck(&object(filtered_deck())).unwrap();
        check_deck_config(&object(deck_config())).unwrap();
        // Ids as strings, booleans as 0/1 where the client takes them.
        check_notetype(&set(&notetype(), &["id"], Some(json!("1600000000000")))).unwrap();
        check_notetype(&set(&notetype(), &["flds", "0", "sticky"], Some(json!(1)))).unwrap();
        check_deck(&set(&deck(), &["dyn"], Some(json!(false)))).unwrap();
        check_deck(&set(&deck(), &["mod"], None)).unwrap();
        check_notetype(&set(&notetype(), &["tmpls", "0", "ord"], Some(json!(null)))).unwrap();
    }

    #[test]
    fn notetype_keys_the_client_reads_strictly_are_checked() {
        let base = notetype();
        for (path, bad) in [
            (vec!["id"], json!(true)),
            (vec!["id"], json!(1.5)),
            (vec!["name"], json!(5)),
            (vec!["type"], json!(2)),
            (vec!["type"], json!(true)),
            (vec!["mod"], json!(1.5)),
            (vec!["mod"], json!("1700000000")),
            (vec!["usn"], json!(i64::from(i32::MAX) + 1)),
            (vec!["sortf"], json!(70000)),
            (vec!["sortf"], json!(-1)),
            (vec!["latexPre"], json!(null)),
            (vec!["originalStockKind"], json!(false)),
            (vec!["loadBalancerDisperseSiblings"], json!(1)),
            (vec!["flds"], json!({})),
            (vec!["flds", "0", "name"], json!(null)),
            (vec!["flds", "1", "ord"], json!(70000)),
            (vec!["flds", "0", "sticky"], json!(2)),
            (vec!["flds", "0", "rtl"], json!(null)),
            (vec!["flds", "0", "font"], json!(1)),
            (vec!["flds", "0", "size"], json!(65536)),
            (vec!["tmpls", "0", "qfmt"], json!(false)),
            (vec!["tmpls", "0", "ord"], json!(-1)),
            (vec!["tmpls", "0", "afmt"], json!(null)),
        ] {
            let key = path[path.len() - 1];
            refused(check_notetype(&set(&base, &path, Some(bad))), key);
        }
        for required in [
            "id", "name", "type", "mod", "usn", "sortf", "did", "css", "flds", "tmpls",
        ] {
            refused(check_notetype(&set(&base, &[required], None)), required);
        }
        refused(
            check_notetype(&set(&base, &["flds", "0", "size"], None)),
            "size",
        );
        refused(
            check_notetype(&set(&base, &["tmpls", "0", "qfmt"], None)),
            "qfmt",
        );
        check_notetype(&set(&base, &["sortf"], Some(json!(65535)))).unwrap();
    }

    #[test]
    fn deck_keys_the_client_reads_strictly_are_checked() {
        for (base, path, bad) in [
            (deck(), "dyn", json!(300)),
            (deck(), "dyn", json!("1")),
            (deck(), "dyn", json!(1.0)),
            (deck(), "id", json!(false)),
            (deck(), "mod", json!(true)),
            (deck(), "name", json!(null)),
            (deck(), "usn", json!(1.0)),
            (deck(), "lrnToday", json!(5)),
            (deck(), "collapsed", json!(0)),
            (deck(), "browserCollapsed", json!("no")),
            (deck(), "desc", json!(1)),
            (deck(), "md", json!(1)),
            (deck(), "conf", json!(true)),
            (filtered_deck(), "resched", json!(7)),
            (filtered_deck(), "terms", json!([["x", 1]])),
            (filtered_deck(), "terms", json!([["x", 1, 0, 9]])),
            (filtered_deck(), "terms", json!([[1, 1, 0]])),
            (filtered_deck(), "terms", json!([["x", true, 0]])),
            (filtered_deck(), "terms", json!([["x", 1, 1.5]])),
            (filtered_deck(), "separate", json!(1)),
            (filtered_deck(), "previewDelay", json!(-1)),
        ] {
            refused(check_deck(&set(&base, &[path], Some(bad))), path);
        }
        for required in ["dyn", "id", "name", "usn", "newToday", "collapsed", "conf"] {
            refused(check_deck(&set(&deck(), &[required], None)), required);
        }
        for required in ["resched", "terms"] {
            refused(
                check_deck(&set(&filtered_deck(), &[required], None)),
                required,
            );
        }
        check_deck(&set(
            &filtered_deck(),
            &["terms"],
            Some(json!([["x", "5", 0]])),
        ))
        .unwrap();
    }

    #[test]
    fn deck_config_keys_the_client_reads_strictly_are_checked() {
        let base = deck_config();
        for (key, bad) in [
            ("id", json!(null)),
            ("mod", json!(1.5)),
            ("name", json!(1)),
            ("usn", json!("0")),
            ("maxTaken", json!(1u64 << 40)),
            ("autoplay", json!(1)),
            ("replayq", json!(null)),
            ("newMix", json!(true)),
            ("newPerDayMinimum", json!(-1)),
            ("answerAction", json!(3)),
            ("desiredRetention", json!("0.9")),
            ("fsrsWeights", json!([0.5, "x"])),
            ("buryInterdayLearning", json!(0)),
        ] {
            refused(check_deck_config(&set(&base, &[key], Some(bad))), key);
        }
        for required in [
            "id", "mod", "name", "usn", "maxTaken", "autoplay", "timer", "new", "rev", "lapse",
        ] {
            refused(check_deck_config(&set(&base, &[required], None)), required);
        }
        // The client falls back to defaults for these, so anything goes.
        for key in ["timer", "new", "rev", "lapse", "dyn"] {
            check_deck_config(&set(&base, &[key], Some(json!("anything")))).unwrap();
        }
    }
}
