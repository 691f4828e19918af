//! What a query reads: its source table and the fields of it. A field is an enum member
//! or a validated property path, never client text, so the compiler can name columns
//! without quoting anything a client wrote.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The table a query reads. Every row of both carries `tenant_id` and `ts`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    #[default]
    Events,
    MetricRecords,
}

impl Source {
    pub const fn stored(self) -> crate::sql::Stored {
        match self {
            Source::Events => crate::sql::Stored::Events,
            Source::MetricRecords => crate::sql::Stored::MetricRecords,
        }
    }
}

/// A JSON object key path below a JSON column: `properties.plan.tier` is `["plan", "tier"]`.
///
/// Segments may hold any character but `.`, `"`, `\` and control characters, at most 8
/// segments of at most 128 bytes. The path never enters SQL text: the compiler binds it
/// as a JSON path value (`$."plan"."tier"`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PropertyPath {
    segments: Vec<String>,
}

pub const MAX_PATH_SEGMENTS: usize = 8;
pub const MAX_SEGMENT_BYTES: usize = 128;

impl PropertyPath {
    pub fn parse(dotted: &str) -> Result<Self, String> {
        if dotted.is_empty() {
            return Err("a property path needs at least one key".into());
        }
        let segments: Vec<String> = dotted.split('.').map(str::to_owned).collect();
        if segments.len() > MAX_PATH_SEGMENTS {
            return Err(format!("a property path has at most {MAX_PATH_SEGMENTS} keys"));
        }
        for s in &segments {
            if s.is_empty() {
                return Err(format!("'{dotted}' has an empty key"));
            }
            if s.len() > MAX_SEGMENT_BYTES {
                return Err(format!("a property key has at most {MAX_SEGMENT_BYTES} bytes"));
            }
            if s == "*" {
                // DuckDB reads a quoted `*` as its wildcard all the same.
                return Err("a property key may not be '*' (a JSON path wildcard)".into());
            }
            if s.chars().any(|c| c == '"' || c == '\\' || c.is_control()) {
                return Err(format!(
                    "property key '{}' holds a quote, backslash or control character",
                    s.escape_debug()
                ));
            }
        }
        Ok(Self { segments })
    }

    pub fn segments(&self) -> &[String] {
        &self.segments
    }

    /// The JSON path DuckDB and ClickHouse read: every key quoted, so `.`-free keys with
    /// spaces, `$`, `[` or `*` mean themselves.
    pub fn json_path(&self) -> String {
        let mut p = String::from("$");
        for s in &self.segments {
            p.push_str(".\"");
            p.push_str(s);
            p.push('"');
        }
        p
    }

    pub fn dotted(&self) -> String {
        self.segments.join(".")
    }
}

/// Top-level property keys that events also keep in columns of their own (`pc_1`,
/// `pc_2`, ...), so that reading them skips parsing each event's JSON. A column holds what
/// [`property_text`] gives for the key's value; the compiler reads it instead of the JSON.
/// Beside each, a number column (`pn_1`, ...) holds that text as a number where it reads
/// as one (`TRY_CAST(text AS DOUBLE)`), so sums and percentiles cast nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PropertyColumns {
    slots: Vec<(String, u32)>,
}

impl PropertyColumns {
    pub fn new(slots: Vec<(String, u32)>) -> Self {
        Self { slots }
    }

    /// The column name of a slot: made from a number, never from client text.
    pub fn column_name(slot: u32) -> String {
        format!("pc_{slot}")
    }

    /// The number column of a slot.
    pub fn number_column_name(slot: u32) -> String {
        format!("pn_{slot}")
    }

    /// The number column of `path`, when it is a single materialized key.
    pub fn number_column(&self, path: &PropertyPath) -> Option<String> {
        let [key] = path.segments() else { return None };
        self.slots.iter().find(|(k, _)| k == key).map(|(_, slot)| Self::number_column_name(*slot))
    }

    /// The column holding `path`, when it is a single materialized key.
    pub fn column(&self, path: &PropertyPath) -> Option<String> {
        let [key] = path.segments() else { return None };
        self.slots.iter().find(|(k, _)| k == key).map(|(_, slot)| Self::column_name(*slot))
    }

    /// (key, slot), in slot order: the order of the columns.
    pub fn slots(&self) -> &[(String, u32)] {
        &self.slots
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }
}

/// A property value as text, as `json_extract_string` reads it: strings as they are,
/// numbers and booleans as JSON writes them, objects and arrays as compact JSON; null is
/// absent.
pub fn property_text(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::Null => None,
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(number_text(n)),
        other => Some(other.to_string()),
    }
}

/// A JSON number as DuckDB's JSON reader spells it back: integers as they are; a float
/// with its shortest round-trip digits, in decimals (with `.0` when whole) for exponents
/// -6 to 20, else as `1.5e300`. (A float needing all 17 digits may differ in the last
/// one: both spellings read back as the same number.)
pub fn number_text(n: &serde_json::Number) -> String {
    if n.is_i64() || n.is_u64() {
        return n.to_string();
    }
    let x = n.as_f64().unwrap_or(0.0);
    let sign = if x.is_sign_negative() { "-" } else { "" };
    if x == 0.0 {
        return format!("{sign}0.0");
    }
    let sci = format!("{:e}", x.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    if (-6..=20).contains(&exp) {
        if exp >= 0 {
            let whole = exp as usize + 1;
            if digits.len() <= whole {
                format!("{sign}{digits}{}.0", "0".repeat(whole - digits.len()))
            } else {
                format!("{sign}{}.{}", &digits[..whole], &digits[whole..])
            }
        } else {
            format!("{sign}0.{}{digits}", "0".repeat((-exp - 1) as usize))
        }
    } else if digits.len() > 1 {
        format!("{sign}{}.{}e{exp}", &digits[..1], &digits[1..])
    } else {
        format!("{sign}{digits}e{exp}")
    }
}

/// A field of a source.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Field {
    // Events.
    EventName,
    UserId,
    SessionId,
    /// The event's session by the one definition of `query::session`: its `session_id`,
    /// else one derived from its user's inactivity. Not a name clients write: the
    /// `sessions` metric reads it.
    Session,
    /// The buyer of a purchase: `properties.customer_id`, else the event's user.
    CustomerId,
    Property(PropertyPath),
    // Metric records.
    Value,
    ServiceName,
    MetricType,
    MetricName,
    Dimension(PropertyPath),
    Meta(PropertyPath),
}

/// How a field's values compare and aggregate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    /// A text column.
    Text,
    /// A numeric column.
    Number,
    /// A JSON value: text when compared with text, a number when with a number.
    Json,
}

impl Field {
    /// Reads a field name as clients write it. On events, `event_data.x` (seed 001) and a
    /// bare `x` mean `properties.x`; on metric records a bare `x` means `dimensions.x`.
    /// A name is read as written: `properties.plan ` is the key `plan `, not `plan`.
    /// Reserved words (`date`, `timestamp`, ...) are refused only bare: with a prefix
    /// (`properties.date`) they are properties like any other.
    pub fn parse(source: Source, name: &str) -> Result<Field, String> {
        let path = |rest: &str, wrap: fn(PropertyPath) -> Field| PropertyPath::parse(rest).map(wrap);
        match source {
            Source::Events => match name {
                "event_name" | "event_type" | "event" | "name" => Ok(Field::EventName),
                "user_id" | "distinct_id" => Ok(Field::UserId),
                "session_id" => Ok(Field::SessionId),
                "customer_id" | "customer" => Ok(Field::CustomerId),
                _ => match ["properties.", "event_data.", "props."].iter().find_map(|p| name.strip_prefix(p)) {
                    Some(rest) => path(rest, Field::Property),
                    None if is_reserved(name) => Err(format!("'{name}' is not a field of events")),
                    None => path(name, Field::Property),
                },
            },
            Source::MetricRecords => match name {
                "value" => Ok(Field::Value),
                "service_name" | "service" => Ok(Field::ServiceName),
                "metric_type" | "type" => Ok(Field::MetricType),
                "metric_name" => Ok(Field::MetricName),
                _ => {
                    if let Some(rest) = name.strip_prefix("meta.") {
                        return path(rest, Field::Meta);
                    }
                    match name.strip_prefix("dimensions.") {
                        Some(rest) => path(rest, Field::Dimension),
                        None if is_reserved(name) => Err(format!("'{name}' is not a field of metric records")),
                        None => path(name, Field::Dimension),
                    }
                }
            },
        }
    }

    pub fn source(&self) -> Source {
        match self {
            Field::EventName
            | Field::UserId
            | Field::SessionId
            | Field::Session
            | Field::CustomerId
            | Field::Property(_) => Source::Events,
            _ => Source::MetricRecords,
        }
    }

    pub fn kind(&self) -> FieldKind {
        match self {
            Field::Value => FieldKind::Number,
            Field::Property(_) | Field::Dimension(_) | Field::Meta(_) => FieldKind::Json,
            _ => FieldKind::Text,
        }
    }

    /// The column of a plain field, or (column, path) of a JSON one.
    pub fn column(&self) -> (&'static str, Option<&PropertyPath>) {
        match self {
            Field::EventName => ("event_name", None),
            Field::UserId => ("user_id", None),
            Field::SessionId => ("session_id", None),
            Field::Session => ("session_key", None),
            Field::CustomerId => ("customer_id", None),
            Field::Property(p) => ("properties", Some(p)),
            Field::Value => ("value", None),
            Field::ServiceName => ("service_name", None),
            Field::MetricType => ("metric_type", None),
            Field::MetricName => ("metric_name", None),
            Field::Dimension(p) => ("dimensions", Some(p)),
            Field::Meta(p) => ("meta", Some(p)),
        }
    }

    /// The name an answer labels this field with.
    pub fn label(&self) -> String {
        match self {
            Field::Property(p) => format!("properties.{}", p.dotted()),
            Field::Dimension(p) => format!("dimensions.{}", p.dotted()),
            Field::Meta(p) => format!("meta.{}", p.dotted()),
            Field::Session => "session".to_owned(),
            other => other.column().0.to_owned(),
        }
    }
}

/// Names that look like fields of the other source or of time; a bare one is a mistake,
/// not a property.
fn is_reserved(name: &str) -> bool {
    matches!(
        name,
        "timestamp" | "ts" | "tenant_id" | "date" | "time" | "properties" | "dimensions" | "meta" | "event_data"
    )
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.label())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_as_duckdb_spells_them() {
        // What DuckDB 1.5's json_extract_string answered for each (checked by hand).
        let cases = [
            ("1e20", "100000000000000000000.0"),
            ("1.5e300", "1.5e300"),
            ("100.0", "100.0"),
            ("99.99", "99.99"),
            ("1e-7", "1e-7"),
            ("1e15", "1000000000000000.0"),
            ("2.5e-5", "0.000025"),
            ("1e21", "1e21"),
            ("-3.0", "-3.0"),
            ("-0.0", "-0.0"),
            ("5e-324", "5e-324"),
            ("1e-6", "0.000001"),
            ("123.456e5", "12345600.0"),
            ("-2.5e-7", "-2.5e-7"),
            // serde reads "-0" as the float -0.0 and stores it so; DuckDB then spells "-0.0".
            ("-0", "-0.0"),
            ("123456789012345678", "123456789012345678"),
        ];
        for (json, want) in cases {
            let v: serde_json::Value = serde_json::from_str(json).unwrap();
            assert_eq!(property_text(&v).unwrap(), want, "{json}");
        }
    }

    #[test]
    fn names_and_paths() {
        assert_eq!(Field::parse(Source::Events, "event_type"), Ok(Field::EventName));
        let p = Field::parse(Source::Events, "properties.plan.tier").unwrap();
        assert_eq!(p.label(), "properties.plan.tier");
        assert_eq!(Field::parse(Source::Events, "event_data.plan.tier"), Ok(p.clone()));
        assert_eq!(Field::parse(Source::Events, "plan.tier"), Ok(p));
        assert!(Field::parse(Source::Events, "timestamp").is_err());
        assert!(Field::parse(Source::Events, "properties.timestamp").is_ok());
        assert!(Field::parse(Source::Events, "properties.*").is_err());
        assert_ne!(Field::parse(Source::Events, "properties.plan "), Field::parse(Source::Events, "properties.plan"));
        assert!(Field::parse(Source::Events, "properties.a\"b").is_err());
        assert!(Field::parse(Source::Events, "properties.a..b").is_err());
        assert_eq!(
            Field::parse(Source::MetricRecords, "country"),
            Ok(Field::Dimension(PropertyPath::parse("country").unwrap()))
        );
        let hostile = PropertyPath::parse("a'; DROP TABLE events; --").unwrap();
        assert_eq!(hostile.json_path(), "$.\"a'; DROP TABLE events; --\"");
    }
}
