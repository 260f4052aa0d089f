//! The job read from stdin and the outcome written to stdout.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One phase: `concurrency` workers sync `devices` against `base_url` until `duration`
/// seconds or `max_ops` operations have passed.
#[derive(Debug, Deserialize)]
pub struct Job {
    pub base_url: String,
    pub concurrency: usize,
    pub duration: f64,
    pub max_ops: u64,
    pub templates: Vec<Template>,
    pub devices: Vec<Device>,
}

/// What a review sync needs to know about the collection a device started from.
#[derive(Debug, Deserialize)]
pub struct Template {
    /// The reviewed deck, without its `mod` and `usn` (set at each sync).
    pub deck: Map<String, Value>,
    pub conf: Value,
    pub crt: i64,
    pub counts: Counts,
    /// Card rows in the column order of `load_bench.CARD_COLUMNS`; the reviews cycle through them.
    pub cards: Vec<Vec<Value>>,
}

/// Row counts of the template collection (other tables of the Python dict are ignored).
#[derive(Debug, Clone, Copy, Deserialize)]
pub struct Counts {
    pub cards: i64,
    pub notes: i64,
    pub notetypes: i64,
    pub decks: i64,
    pub deck_config: i64,
}

/// What a client device knows about one user's collection on one server; `load_bench.Device`.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Device {
    pub user: String,
    #[serde(skip_serializing)]
    pub hkey: String,
    /// The server usn expected in the next meta; -1 when unknown.
    pub usn: i64,
    pub revlog: i64,
    pub next_revlog_id: i64,
    pub next_card: u64,
    pub syncs: i64,
    /// Index into `Job::templates`.
    #[serde(skip_serializing)]
    pub template: usize,
}

/// Card columns the review rewrites: reps is read, mod..left are replaced.
pub const CARD_COLUMNS: usize = 18;
pub const CARD_ID: usize = 0;
pub const CARD_MOD: usize = 4;
pub const CARD_REPS: usize = 11;

impl Job {
    /// Parses and validates a job, so that no later step can fail on its shape.
    pub fn parse(text: &str) -> Result<Job, String> {
        let mut job: Job = serde_json::from_str(text).map_err(|e| e.to_string())?;
        for template in &mut job.templates {
            // Each sync sends the deck with its own `mod` and `usn`.
            template.deck.remove("mod");
            template.deck.remove("usn");
        }
        if job.concurrency == 0 {
            return Err("concurrency must be at least 1".into());
        }
        if !(job.duration.is_finite() && job.duration >= 0.0) {
            return Err(format!(
                "duration {} is not a number of seconds",
                job.duration
            ));
        }
        for (index, template) in job.templates.iter().enumerate() {
            if template.cards.is_empty() {
                return Err(format!("template {index} has no cards"));
            }
            for row in &template.cards {
                let integers = |column: usize| row.get(column).is_some_and(Value::is_i64);
                if row.len() != CARD_COLUMNS || !integers(CARD_ID) || !integers(CARD_REPS) {
                    return Err(format!(
                        "template {index}: a card row is not {CARD_COLUMNS} columns with an \
                         integer id and reps"
                    ));
                }
            }
        }
        if let Some(device) = job
            .devices
            .iter()
            .find(|d| d.template >= job.templates.len())
        {
            return Err(format!(
                "{}: template {} does not exist",
                device.user, device.template
            ));
        }
        Ok(job)
    }
}

/// The phase's result, for `load_bench.py` to fill its `Phase` with.
#[derive(Debug, Serialize)]
pub struct Outcome {
    pub ops: u64,
    /// The first wrong answers (at most `phase::MAX_ERRORS`), as "user: kind: detail".
    pub errors: Vec<String>,
    /// How many operations failed, kept or not.
    pub error_count: u64,
    /// Seconds per successful operation.
    pub latencies: Vec<f64>,
    /// Seconds from the first operation's start to the last one's end.
    pub wall: f64,
    pub devices: Vec<Device>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn job(cards: Value, template: usize) -> String {
        json!({
            "base_url": "http://127.0.0.1:1/", "concurrency": 2, "duration": 1.5, "max_ops": 10,
            "templates": [{"deck": {"id": 1, "mod": 2, "usn": 3}, "conf": {}, "crt": 0, "cards": cards,
                "counts": {"cards": 1, "notes": 1, "notetypes": 1, "decks": 1, "deck_config": 1,
                           "revlog": 0, "graves": 0}}],
            "devices": [{"user": "u", "hkey": "k", "usn": -1, "revlog": 0, "next_revlog_id": 5,
                         "next_card": 0, "syncs": 0, "template": template}],
        })
        .to_string()
    }

    #[test]
    fn a_job_with_a_valid_template_parses() {
        let row = json!([[1, 2, 3, 0, 0, 0, 0, 0, 1, 0, 0, 4, 0, 0, 0, 0, 0, ""]]);
        let job = Job::parse(&job(row, 0)).unwrap();
        assert_eq!(job.devices[0].next_revlog_id, 5);
        assert_eq!(job.templates[0].counts.deck_config, 1);
        assert_eq!(
            Value::Object(job.templates[0].deck.clone()),
            json!({"id": 1})
        );
    }

    #[test]
    fn jobs_the_review_could_not_use_are_refused() {
        let row = json!([[1, 2, 3, 0, 0, 0, 0, 0, 1, 0, 0, 4, 0, 0, 0, 0, 0, ""]]);
        assert!(
            Job::parse(&job(json!([]), 0))
                .unwrap_err()
                .contains("no cards")
        );
        assert!(
            Job::parse(&job(json!([[1, 2]]), 0))
                .unwrap_err()
                .contains("18 columns")
        );
        assert!(
            Job::parse(&job(row, 1))
                .unwrap_err()
                .contains("does not exist")
        );
    }
}
