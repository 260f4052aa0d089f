//! Notetypes: schema 15 and later keep them in the `notetypes`, `fields` and `templates`
//! tables; schema 11 as JSON in `col.models`.

use std::collections::HashMap;

use super::super::proto::{CardRequirement, FieldConfig, NotetypeConfig, TemplateConfig};
use super::values::ord_u16;
use rusqlite::Connection;
use serde_json::{Value, json};

use super::ConvertError;
use super::values::objects_by_id;
use super::values::{bytes_column, decode, into_object, legacy_keys, merge_legacy_keys};
use crate::collection::json::JsonObject;

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
// Those of fields and templates are with their JSON, in `NotetypeChild`.

// ---------------------------------------------------------------------------------------------
// Notetypes (docs/sync-protocol.md#notetypes)

pub(super) fn notetypes_from_tables(conn: &Connection) -> Result<JsonObject, ConvertError> {
    let mut fields = children_by_notetype::<FieldConfig>(
        conn,
        "SELECT ntid, ord, name, config FROM fields ORDER BY ntid, ord",
    )?;
    let mut templates = children_by_notetype::<TemplateConfig>(
        conn,
        "SELECT ntid, ord, name, config FROM templates ORDER BY ntid, ord",
    )?;
    let sql = "SELECT id, name, mtime_secs, usn, config FROM notetypes ORDER BY id";
    objects_by_id(conn, sql, "notetype", |id, what, row| {
        let config: NotetypeConfig = decode(&bytes_column(row, 4, what)?, what)?;
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
            legacy_keys(&config.other, RESERVED_NOTETYPE_KEYS, what)?,
        );
        Ok(notetype)
    })
}

/// Runs a `(ntid, ord, name, config)` query and groups the JSON objects by notetype, in
/// `ord` order.
fn children_by_notetype<C: NotetypeChild>(
    conn: &Connection,
    sql: &str,
) -> Result<HashMap<i64, Vec<Value>>, ConvertError> {
    let mut grouped: HashMap<i64, Vec<Value>> = HashMap::new();
    let mut statement = conn.prepare(sql)?;
    let mut rows = statement.query([])?;
    while let Some(row) = rows.next()? {
        let notetype_id: i64 = row.get(0)?;
        let ord: i64 = row.get(1)?;
        let config = bytes_column(row, 3, &format!("notetype {notetype_id} ord {ord}"))?;
        let child = child_json::<C>(notetype_id, ord, row.get(2)?, &config)?;
        grouped.entry(notetype_id).or_default().push(child);
    }
    Ok(grouped)
}

/// A field's or a template's config blob, which gives the JSON keys after `name` and `ord`.
trait NotetypeChild: prost::Message + Default {
    /// Names the object in errors: `field` or `template`.
    const KIND: &'static str;
    /// The keys Anki removes from `other` before merging it back.
    const RESERVED_KEYS: &'static [&'static str];

    /// The modelled keys after `name` and `ord`, in Anki's order.
    fn keys(&self) -> Value;

    fn other(&self) -> &[u8];
}

impl NotetypeChild for FieldConfig {
    const KIND: &'static str = "field";
    const RESERVED_KEYS: &'static [&'static str] = &[
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

    fn keys(&self) -> Value {
        json!({
            "sticky": self.sticky,
            "rtl": self.rtl,
            "font": self.font_name,
            "size": self.font_size as u16,
            "description": self.description,
            "plainText": self.plain_text,
            "collapsed": self.collapsed,
            "excludeFromSearch": self.exclude_from_search,
            "id": self.id,
            "tag": self.tag,
            "preventDeletion": self.prevent_deletion,
        })
    }

    fn other(&self) -> &[u8] {
        &self.other
    }
}

impl NotetypeChild for TemplateConfig {
    const KIND: &'static str = "template";
    const RESERVED_KEYS: &'static [&'static str] = &[
        "name", "ord", "did", "afmt", "bafmt", "qfmt", "bqfmt", "bfont", "bsize", "id",
    ];

    fn keys(&self) -> Value {
        json!({
            "qfmt": self.q_format,
            "afmt": self.a_format,
            "bqfmt": self.q_format_browser,
            "bafmt": self.a_format_browser,
            "did": (self.target_deck_id > 0).then_some(self.target_deck_id),
            "bfont": self.browser_font_name,
            "bsize": self.browser_font_size as u8,
            "id": self.id,
        })
    }

    fn other(&self) -> &[u8] {
        &self.other
    }
}

fn child_json<C: NotetypeChild>(
    notetype_id: i64,
    ord: i64,
    name: String,
    bytes: &[u8],
) -> Result<Value, ConvertError> {
    let what = format!("{} {ord} of notetype {notetype_id}", C::KIND);
    let config: C = decode(bytes, &what)?;
    let mut child = into_object(json!({
        "name": name,
        "ord": ord_u16(ord, &what)?,
    }));
    child.extend(into_object(config.keys()));
    merge_legacy_keys(
        &mut child,
        legacy_keys(config.other(), C::RESERVED_KEYS, &what)?,
    );
    Ok(Value::Object(child))
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

#[cfg(test)]
mod tests {
    use prost::Message;
    use rusqlite::params;

    use super::*;
    use crate::collection::convert::tests::schema18_tables;

    #[test]
    fn notetype_quirks_follow_anki() {
        let conn = schema18_tables();
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
}
