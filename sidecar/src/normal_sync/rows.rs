//! The rows of `chunk` and `applyChunk` on the wire: typed reading of the rows a client sends,
//! and of grave ids, and the JSON form of the rows the server sends.
//!
//! Every value the server stores is later sent to the user's other devices, which read it
//! with the exact integer types of Anki's sync code. A value outside those types would make
//! every later sync of those devices fail, so each column is checked against its type here,
//! before anything is written, and a mismatch is a 400 that rolls the sync back. The types
//! and the reasons for each rule are in docs/sync-rows.md.

use serde_json::Value;

use super::{OpResult, SyncOpError};
pub use crate::collection::rows::{CardRow, NoteRow, RevlogRow};

/// How a column may be written in JSON.
#[derive(Clone, Copy)]
enum Num {
    /// A JSON integer only: no float, no boolean, no string.
    Strict,
    /// A JSON integer, or a float that is truncated towards zero, as the client accepts.
    IntOrFloat,
}

/// The integer types the client reads, as inclusive ranges.
const I64: (i64, i64) = (i64::MIN, i64::MAX);
const I32: (i64, i64) = (i32::MIN as i64, i32::MAX as i64);
const U32: (i64, i64) = (0, u32::MAX as i64);
const U16: (i64, i64) = (0, u16::MAX as i64);
const U8: (i64, i64) = (0, u8::MAX as i64);
/// Card types: new, learning, review, relearning.
const CARD_TYPE: (i64, i64) = (0, 3);
/// Card queues: user-buried, scheduler-buried, suspended, new, learn, review, day-learn,
/// preview.
const CARD_QUEUE: (i64, i64) = (-3, 4);
/// Review kinds the client knows; anything else it reads as 0 (learning).
const REVLOG_KIND: (i64, i64) = (0, 5);

/// Floats at or beyond 2^63 do not convert to an i64.
const F64_I64_LIMIT: f64 = 9_223_372_036_854_775_808.0;

fn integer(value: &Value, how: Num) -> Option<i64> {
    let Value::Number(number) = value else {
        return None;
    };
    if let Some(int) = number.as_i64() {
        return Some(int);
    }
    if number.is_u64() {
        // Above i64::MAX.
        return None;
    }
    match how {
        Num::Strict => None,
        Num::IntOrFloat => {
            let float = number.as_f64()?;
            (float.is_finite() && float.abs() < F64_I64_LIMIT).then(|| float.trunc() as i64)
        }
    }
}

/// One row being read, for column access with messages that name the row and column.
pub struct Row<'a> {
    kind: &'static str,
    values: &'a [Value],
    names: &'static [&'static str],
}

impl<'a> Row<'a> {
    fn new(
        kind: &'static str,
        values: &'a [Value],
        names: &'static [&'static str],
    ) -> OpResult<Self> {
        if values.len() != names.len() {
            return Err(SyncOpError::invalid(format!(
                "{kind} row has {} columns, expected {}",
                values.len(),
                names.len()
            )));
        }
        Ok(Self {
            kind,
            values,
            names,
        })
    }

    fn error(&self, index: usize, expected: &str) -> SyncOpError {
        let shown = shorten(&self.values[index]);
        let name = self.names[index];
        SyncOpError::invalid(format!(
            "{} row: column {index} ({name}) is {shown}, expected {expected}",
            self.kind
        ))
    }

    fn int(&self, index: usize, how: Num, (min, max): (i64, i64)) -> OpResult<i64> {
        integer(&self.values[index], how)
            .filter(|value| (min..=max).contains(value))
            .ok_or_else(|| {
                let kind = match how {
                    Num::Strict => "an integer",
                    Num::IntOrFloat => "a number",
                };
                self.error(index, &format!("{kind} in {min}..={max}"))
            })
    }

    /// An unsigned column that the client clamps to 0 when negative.
    fn clamped_u32(&self, index: usize) -> OpResult<i64> {
        // Negative values are stored as the client would keep them: as 0.
        let value = self.int(index, Num::IntOrFloat, (i64::MIN, U32.1));
        value.map(|value| value.max(0))
    }

    fn text(&self, index: usize) -> OpResult<&'a str> {
        self.values[index]
            .as_str()
            .ok_or_else(|| self.error(index, "a string"))
    }
}

/// Reads a wire row into a struct, one column per field in the order of the row's column
/// names, so that no index or name is written twice. Each field names its rule: `int(how,
/// range)`, `clamped` (an unsigned column the client clamps at 0) or `text`. The fields are
/// written as a table, several to a line, in the order of the columns.
macro_rules! read_columns {
    ($row:ident => $ty:ident { $($field:ident: $rule:ident $(($how:ident, $range:ident))?);+ $(;)? }) => {{
        let mut index = 0;
        $ty {
            $($field: {
                index += 1;
                read_columns!(@rule $row, index - 1, $rule $(($how, $range))?)?
            },)+
        }
    }};
    (@rule $row:ident, $index:expr, int($how:ident, $range:ident)) => {
        $row.int($index, Num::$how, $range)
    };
    (@rule $row:ident, $index:expr, clamped) => {
        $row.clamped_u32($index)
    };
    (@rule $row:ident, $index:expr, text) => {
        $row.text($index).map(str::to_owned)
    };
}

/// A row type of `chunk` and `applyChunk`: its name in messages, its columns, and how it is
/// read once the column count is checked.
pub trait WireRow: Sized {
    const KIND: &'static str;
    const COLUMNS: &'static [&'static str];

    fn read(row: &Row<'_>) -> OpResult<Self>;

    /// The row a client sent, checked column by column (docs/sync-rows.md).
    fn parse(values: &[Value]) -> OpResult<Self> {
        Self::read(&Row::new(Self::KIND, values, Self::COLUMNS)?)
    }

    /// Every row of one kind in a chunk; the first bad one refuses them all.
    fn parse_all(rows: &[Vec<Value>]) -> OpResult<Vec<Self>> {
        rows.iter().map(|values| Self::parse(values)).collect()
    }
}

/// A short rendering of a refused value for the error message.
pub(super) fn shorten(value: &Value) -> String {
    let text = value.to_string();
    if text.len() <= 40 {
        return text;
    }
    let mut end = 40;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

impl RevlogRow {
    /// The entry as `chunk` sends it.
    pub fn to_wire(&self) -> Vec<Value> {
        self.columns().into_iter().map(Value::from).collect()
    }
}

impl WireRow for RevlogRow {
    const KIND: &'static str = "revlog";
    const COLUMNS: &'static [&'static str] = &[
        "id", "cid", "usn", "ease", "ivl", "lastIvl", "factor", "time", "type",
    ];

    fn read(row: &Row<'_>) -> OpResult<Self> {
        #[rustfmt::skip]
        let entry = read_columns!(row => RevlogRow {
            id: int(Strict, I64); cid: int(Strict, I64); usn: int(Strict, I32);
            ease: int(Strict, U8); ivl: int(IntOrFloat, I32); last_ivl: int(IntOrFloat, I32);
            factor: clamped; time: clamped; kind: int(Strict, I64);
        });
        // The client reads an unknown review kind as 0; the server stores what it will read.
        let known = (REVLOG_KIND.0..=REVLOG_KIND.1).contains(&entry.kind);
        Ok(Self {
            kind: if known { entry.kind } else { 0 },
            ..entry
        })
    }
}

impl CardRow {
    /// The card as `chunk` sends it.
    pub fn to_wire(&self) -> Vec<Value> {
        let mut values: Vec<Value> = self
            .integer_columns()
            .into_iter()
            .map(Value::from)
            .collect();
        values.push(Value::from(self.data.as_str()));
        values
    }
}

impl WireRow for CardRow {
    const KIND: &'static str = "card";
    const COLUMNS: &'static [&'static str] = &[
        "id", "nid", "did", "ord", "mod", "usn", "type", "queue", "due", "ivl", "factor", "reps",
        "lapses", "left", "odue", "odid", "flags", "data",
    ];

    fn read(row: &Row<'_>) -> OpResult<Self> {
        #[rustfmt::skip]
        let card = read_columns!(row => CardRow {
            id: int(Strict, I64); nid: int(Strict, I64); did: int(Strict, I64);
            ord: int(Strict, U16); modified: int(IntOrFloat, I64); usn: int(Strict, I32);
            kind: int(Strict, CARD_TYPE); queue: int(Strict, CARD_QUEUE); due: int(IntOrFloat, I32);
            ivl: clamped; factor: int(Strict, U16); reps: int(Strict, U32);
            lapses: int(Strict, U32); left: int(Strict, U32); odue: int(IntOrFloat, I32);
            odid: int(Strict, I64); flags: int(Strict, U8); data: text;
        });
        Ok(card)
    }
}

impl NoteRow {
    /// The note as `chunk` sends it: `sfld` and `csum` go out as empty strings, `flags` as 0
    /// and `data` as "" (docs/sync-protocol.md#chunks): the client recomputes the derived columns
    /// and would reject integers there.
    pub fn to_wire(&self) -> Vec<Value> {
        vec![
            Value::from(self.id),
            Value::from(self.guid.as_str()),
            Value::from(self.mid),
            Value::from(self.modified),
            Value::from(self.usn),
            Value::from(self.tags.as_str()),
            Value::from(self.fields.as_str()),
            Value::from(""),
            Value::from(""),
            Value::from(0),
            Value::from(""),
        ]
    }
}

impl WireRow for NoteRow {
    const KIND: &'static str = "note";
    const COLUMNS: &'static [&'static str] = &[
        "id", "guid", "mid", "mod", "usn", "tags", "flds", "sfld", "csum", "flags", "data",
    ];

    fn read(row: &Row<'_>) -> OpResult<Self> {
        // sfld and csum are checked but not kept: the client recomputes them.
        row.text(7)?;
        row.text(8)?;
        Ok(Self {
            id: row.int(0, Num::Strict, I64)?,
            guid: row.text(1)?.to_owned(),
            mid: row.int(2, Num::Strict, I64)?,
            modified: row.int(3, Num::Strict, I64)?,
            usn: row.int(4, Num::Strict, I32)?,
            tags: row.text(5)?.to_owned(),
            fields: row.text(6)?.to_owned(),
            flags: row.int(9, Num::Strict, U32)?,
            data: row.text(10)?.to_owned(),
        })
    }
}

/// A grave id: a JSON integer, or a string holding one (old clients sent strings in `start`).
pub fn grave_id(value: &Value, list: &str) -> OpResult<i64> {
    let id = match value {
        Value::String(text) => text.parse::<i64>().ok(),
        other => integer(other, Num::Strict),
    };
    id.ok_or_else(|| {
        SyncOpError::invalid(format!(
            "graves: {list} id {} is not an integer id",
            shorten(value)
        ))
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn card() -> Vec<Value> {
        json!([
            1_700_000_000_000i64,
            1_700_000_000_001i64,
            1,
            0,
            1_700_000_000,
            -1,
            2,
            2,
            400,
            10,
            2500,
            5,
            1,
            0,
            0,
            0,
            0,
            "{}"
        ])
        .as_array()
        .unwrap()
        .clone()
    }

    fn note() -> Vec<Value> {
        json!([
            1_700_000_000_001i64,
            "guid",
            1_600_000_000_000i64,
            1_700_000_000,
            -1,
            " tag ",
            "front\u{1f}back",
            "",
            "",
            0,
            ""
        ])
        .as_array()
        .unwrap()
        .clone()
    }

    fn revlog() -> Vec<Value> {
        json!([
            1_700_000_000_123i64,
            1_700_000_000_000i64,
            -1,
            3,
            10,
            -600,
            2500,
            6000,
            1
        ])
        .as_array()
        .unwrap()
        .clone()
    }

    fn with(mut row: Vec<Value>, index: usize, value: Value) -> Vec<Value> {
        row[index] = value;
        row
    }

    fn refused<T: std::fmt::Debug>(result: OpResult<T>) -> String {
        match result {
            Err(SyncOpError::Invalid(message)) => message,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    /// Checks one integer column: both ends of its range pass and read back unchanged, one
    /// past each end is refused, and booleans, strings, null, arrays and big u64 are refused;
    /// floats are refused (`Strict`) or truncated, within the range (`IntOrFloat`).
    fn check_int_column<T: std::fmt::Debug>(
        base: fn() -> Vec<Value>,
        parse: fn(&[Value]) -> OpResult<T>,
        read: fn(&T, usize) -> i64,
        index: usize,
        (how, (min, max)): (Num, (i64, i64)),
    ) {
        let parse_with = |value: Value| parse(&with(base(), index, value));
        for edge in [min, max] {
            let parsed =
                parse_with(json!(edge)).unwrap_or_else(|err| panic!("col {index} = {edge}: {err}"));
            assert_eq!(read(&parsed, index), edge, "column {index}");
        }
        if min > i64::MIN {
            refused(parse_with(json!(min - 1)));
        }
        if max < i64::MAX {
            refused(parse_with(json!(max + 1)));
        } else {
            refused(parse_with(json!(u64::MAX)));
        }
        for bad in [
            json!(true),
            json!(false),
            json!("1"),
            json!(null),
            json!([1]),
            json!({"a": 1}),
        ] {
            let message = refused(parse_with(bad));
            assert!(message.contains(&format!("column {index}")), "{message}");
        }
        match how {
            Num::Strict => {
                refused(parse_with(json!(1.0)));
                refused(parse_with(json!(1.5)));
            }
            Num::IntOrFloat => {
                let parsed = parse_with(json!(7.9)).unwrap();
                assert_eq!(read(&parsed, index), 7, "floats truncate");
                if max < i64::MAX {
                    refused(parse_with(json!(max as f64 + 1.0)));
                }
                refused(parse_with(json!(1e300)));
            }
        }
    }

    fn check_text<T: std::fmt::Debug>(
        base: fn() -> Vec<Value>,
        parse: fn(&[Value]) -> OpResult<T>,
        index: usize,
    ) {
        parse(&with(base(), index, json!(""))).unwrap();
        for bad in [json!(1), json!(true), json!(null), json!(["x"])] {
            refused(parse(&with(base(), index, bad)));
        }
    }

    fn check_arity<T: std::fmt::Debug>(
        base: fn() -> Vec<Value>,
        parse: fn(&[Value]) -> OpResult<T>,
    ) {
        let mut longer = base();
        longer.push(json!(0));
        assert!(refused(parse(&longer)).contains("columns"));
        let mut shorter = base();
        shorter.pop();
        assert!(refused(parse(&shorter)).contains("columns"));
        refused(parse(&[]));
    }

    /// How the client reads a column, as the tests check it.
    #[derive(Clone, Copy)]
    enum Expect {
        /// A JSON integer in the range, nothing else.
        Int((i64, i64)),
        /// A JSON integer or a float truncated towards zero, in the range.
        Float((i64, i64)),
        Text,
        /// Checked by a test of its own.
        Own,
    }
    use Expect::{Float, Int, Own, Text};

    /// Checks the row's arity and each column against `expected`; `read` gives back an integer
    /// column of a parsed row by its index.
    fn check_columns<T: std::fmt::Debug>(
        base: fn() -> Vec<Value>,
        parse: fn(&[Value]) -> OpResult<T>,
        read: fn(&T, usize) -> i64,
        expected: &[Expect],
    ) {
        assert_eq!(expected.len(), base().len());
        check_arity(base, parse);
        for (index, expect) in expected.iter().enumerate() {
            match *expect {
                Int(range) => check_int_column(base, parse, read, index, (Num::Strict, range)),
                Float(range) => {
                    check_int_column(base, parse, read, index, (Num::IntOrFloat, range))
                }
                Text => check_text(base, parse, index),
                Own => {}
            }
        }
    }

    #[test]
    fn card_columns_follow_the_client_types() {
        let expected = [
            Int(I64),
            Int(I64),
            Int(I64),
            Int(U16),
            Float(I64),
            Int(I32),
            Int(CARD_TYPE),
            Int(CARD_QUEUE),
            Float(I32),
            Own, // ivl: clamped
            Int(U16),
            Int(U32),
            Int(U32),
            Int(U32),
            Float(I32),
            Int(I64),
            Int(U8),
            Text,
        ];
        check_columns(
            card,
            CardRow::parse,
            |r, i| r.integer_columns()[i],
            &expected,
        );
    }

    #[test]
    fn card_interval_is_clamped_like_the_client_does() {
        let p = CardRow::parse;
        let read = |row: Vec<Value>| p(&row).unwrap().ivl;
        assert_eq!(read(with(card(), 9, json!(u32::MAX))), i64::from(u32::MAX));
        assert_eq!(read(with(card(), 9, json!(0))), 0);
        assert_eq!(read(with(card(), 9, json!(-600))), 0);
        assert_eq!(read(with(card(), 9, json!(i64::MIN))), 0);
        assert_eq!(read(with(card(), 9, json!(3.7))), 3);
        refused(p(&with(card(), 9, json!(i64::from(u32::MAX) + 1))));
        refused(p(&with(card(), 9, json!(u64::MAX))));
        refused(p(&with(card(), 9, json!(true))));
        refused(p(&with(card(), 9, json!("3"))));
    }

    #[test]
    fn the_poisoned_card_from_the_report_is_refused() {
        let poisoned = with(
            with(with(card(), 3, json!(70000)), 8, json!(1i64 << 40)),
            16,
            json!(300),
        );
        let message = refused(CardRow::parse(&poisoned));
        assert!(message.contains("ord"), "{message}");
        assert!(refused(CardRow::parse(&with(card(), 0, json!(true)))).contains("id"));
        refused(CardRow::parse(&with(card(), 8, json!(1i64 << 40))));
        refused(CardRow::parse(&with(card(), 16, json!(300))));
    }

    #[test]
    fn note_columns_follow_the_client_types() {
        let p = NoteRow::parse;
        let expected = [
            Int(I64),
            Text,
            Int(I64),
            Int(I64),
            Int(I32),
            Text,
            Text,
            Text,
            Text,
            Int(U32),
            Text,
        ];
        let read = |r: &NoteRow, index| match index {
            0 => r.id,
            2 => r.mid,
            3 => r.modified,
            4 => r.usn,
            9 => r.flags,
            _ => unreachable!("column {index} is not an integer"),
        };
        check_columns(note, p, read, &expected);
        let parsed = p(&note()).unwrap();
        assert_eq!(parsed.guid, "guid");
        assert_eq!(parsed.tags, " tag ");
        assert_eq!(parsed.fields, "front\u{1f}back");
    }

    #[test]
    fn revlog_columns_follow_the_client_types() {
        let p = RevlogRow::parse;
        let expected = [
            Int(I64),
            Int(I64),
            Int(I32),
            Int(U8),
            Float(I32),
            Float(I32),
            Own, // factor, clamped: below
            Own, // time, clamped: below
            Own, // kind: revlog_kind_is_an_integer_and_unknown_kinds_read_as_learning
        ];
        check_columns(revlog, p, |r, i| r.columns()[i], &expected);
        for index in [6, 7] {
            let read = |value: Value| p(&with(revlog(), index, value)).map(|r| (r.factor, r.time));
            let max = i64::from(u32::MAX);
            let (factor, time) = read(json!(max)).unwrap();
            assert_eq!(if index == 6 { factor } else { time }, max);
            let (factor, time) = read(json!(-5)).unwrap();
            assert_eq!(if index == 6 { factor } else { time }, 0);
            let (factor, time) = read(json!(2500.9)).unwrap();
            assert_eq!(if index == 6 { factor } else { time }, 2500);
            refused(read(json!(max + 1)));
            refused(read(json!(true)));
            refused(read(json!("2500")));
            refused(read(json!(null)));
        }
    }

    #[test]
    fn revlog_kind_is_an_integer_and_unknown_kinds_read_as_learning() {
        let p = RevlogRow::parse;
        for kind in 0..=5 {
            assert_eq!(p(&with(revlog(), 8, json!(kind))).unwrap().kind, kind);
        }
        assert_eq!(p(&with(revlog(), 8, json!(6))).unwrap().kind, 0);
        assert_eq!(p(&with(revlog(), 8, json!(-1))).unwrap().kind, 0);
        for bad in [json!(true), json!("1"), json!(1.0), json!(null)] {
            refused(p(&with(revlog(), 8, bad)));
        }
    }

    #[test]
    fn grave_ids_are_integers_or_numeric_strings() {
        assert_eq!(grave_id(&json!(5), "cards").unwrap(), 5);
        assert_eq!(grave_id(&json!(i64::MIN), "cards").unwrap(), i64::MIN);
        assert_eq!(grave_id(&json!(i64::MAX), "cards").unwrap(), i64::MAX);
        assert_eq!(grave_id(&json!("-7"), "notes").unwrap(), -7);
        for bad in [
            json!(true),
            json!(false),
            json!(1.0),
            json!(u64::MAX),
            json!(null),
            json!(" 5"),
            json!("5x"),
            json!("9223372036854775808"),
            json!([5]),
        ] {
            let message = refused(grave_id(&bad, "decks"));
            assert!(message.contains("decks"), "{message}");
        }
    }

    #[test]
    fn long_values_are_shortened_in_messages() {
        let long = "x".repeat(10_000);
        let message = refused(CardRow::parse(&with(card(), 0, json!(long))));
        assert!(message.len() < 200, "{message}");
    }
}
