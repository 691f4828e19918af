//! Turning one client event into a [`NewEvent`].
//!
//! Seed 001 sends `{event_type, event_data}`, seed 004 `{event_name, properties}`, seed 003
//! `{activity_type, metadata}`; they are one event. Parsing reads a JSON value rather
//! than a fixed struct so that every problem of an event is reported at once, under the
//! field name the client used, and so that a field of the wrong type gets a precise
//! message instead of a serde error.

use crate::code::FieldError;
use chrono::{DateTime, Duration, Utc};
use serde_json::{Map, Value};

/// Longest event name accepted, in characters.
pub const MAX_NAME_CHARS: usize = 200;
/// Longest id (event, user or session) accepted, in characters.
pub const MAX_ID_CHARS: usize = 200;
/// How far in the future a timestamp may lie (clock skew of a client).
pub const MAX_FUTURE: Duration = Duration::days(1);

/// A validated event, ready to store.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// The client's id (`event_id`, `uuid`, `messageId`) or one generated for it.
    pub event_id: String,
    pub name: String,
    pub user_id: Option<String>,
    pub session_id: Option<String>,
    /// When it happened; the time it was received when the client gave none.
    pub timestamp: DateTime<Utc>,
    pub properties: Map<String, Value>,
    /// Top-level fields that are none of the above (`context`, `anonymous_id`, ...): kept,
    /// not dropped, not refused.
    pub context: Map<String, Value>,
}

/// The fields of one event a client may send, with every alias the seeds use.
const NAME_KEYS: [&str; 3] = ["event_name", "event_type", "event"];
const PROPERTY_KEYS: [&str; 2] = ["properties", "event_data"];
const ID_KEYS: [&str; 3] = ["event_id", "uuid", "messageId"];
const USER_KEYS: [&str; 2] = ["user_id", "userId"];
const SESSION_KEYS: [&str; 2] = ["session_id", "sessionId"];
const TIMESTAMP_KEYS: [&str; 1] = ["timestamp"];

/// Parses one event. `prefix` is put before every field name in errors (`events[3].`);
/// `new_id` makes an id for an event that brought none.
pub fn parse_event(
    value: Value,
    prefix: &str,
    now: DateTime<Utc>,
    new_id: impl FnOnce() -> String,
) -> Result<NewEvent, Vec<FieldError>> {
    let Value::Object(mut obj) = value else {
        let field = prefix.trim_end_matches('.');
        let field = if field.is_empty() { "body" } else { field };
        return Err(vec![FieldError::new(field, "an event is a JSON object")]);
    };
    let mut errors = Vec::new();
    let f = |name: &str| format!("{prefix}{name}");
    // A 001-shaped event names its fields as 001 does in errors.
    let seed_001 = obj.contains_key("event_data") || obj.contains_key("event_type");

    let name = match take_one(&mut obj, &NAME_KEYS, prefix, &mut errors) {
        None | Some((_, Value::Null)) => {
            let key = if seed_001 { "event_type" } else { "event_name" };
            errors.push(FieldError::new(f(key), format!("{key} is required")));
            None
        }
        Some((key, Value::String(s))) => match check_name(&s) {
            Ok(()) => Some(s.trim().to_owned()),
            Err(msg) => {
                errors.push(FieldError::new(f(key), msg));
                None
            }
        },
        Some((key, other)) => {
            errors.push(FieldError::new(f(key), format!("{key} must be a string, not {}", kind(&other))));
            None
        }
    };

    let properties = match take_one(&mut obj, &PROPERTY_KEYS, prefix, &mut errors) {
        None | Some((_, Value::Null)) => Map::new(),
        Some((_, Value::Object(m))) => m,
        Some((key, other)) => {
            errors.push(FieldError::new(f(key), format!("{key} must be a JSON object, not {}", kind(&other))));
            Map::new()
        }
    };

    let event_id = take_id(&mut obj, &ID_KEYS, prefix, &mut errors);
    let user_id = take_id(&mut obj, &USER_KEYS, prefix, &mut errors);
    let session_id = take_id(&mut obj, &SESSION_KEYS, prefix, &mut errors);

    let timestamp = match take_one(&mut obj, &TIMESTAMP_KEYS, prefix, &mut errors) {
        None | Some((_, Value::Null)) => Some(now),
        Some((key, Value::String(s))) => match parse_timestamp(&s, now) {
            Ok(t) => Some(t),
            Err(msg) => {
                errors.push(FieldError::new(f(key), msg));
                None
            }
        },
        Some((key, other)) => {
            errors.push(FieldError::new(
                f(key),
                format!("{key} must be an RFC 3339 string such as 2024-01-15T10:00:00Z, not {}", kind(&other)),
            ));
            None
        }
    };

    // What is left is context. A client `context` object is spread into it.
    let mut context = Map::new();
    match obj.remove("context") {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => context = m,
        Some(other) => {
            errors.push(FieldError::new(f("context"), format!("context must be a JSON object, not {}", kind(&other))))
        }
    }
    context.extend(obj);

    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(NewEvent {
        event_id: event_id.unwrap_or_else(new_id),
        name: name.expect("no errors means a name"),
        user_id,
        session_id,
        timestamp: timestamp.expect("no errors means a timestamp"),
        properties,
        context,
    })
}

/// Builds the event of seed 003's `POST /track/activity`: `activity_type` is the name,
/// `metadata` the properties, and the caller is the user.
pub fn parse_activity(
    value: Value,
    caller: &str,
    now: DateTime<Utc>,
    new_id: impl FnOnce() -> String,
) -> Result<NewEvent, Vec<FieldError>> {
    let Value::Object(mut obj) = value else {
        return Err(vec![FieldError::new("body", "an activity is a JSON object")]);
    };
    let mut errors = Vec::new();
    let mut event = Map::new();
    match obj.remove("activity_type") {
        None | Some(Value::Null) => errors.push(FieldError::new("activity_type", "activity_type is required")),
        Some(v) => {
            event.insert("event_name".into(), v);
        }
    }
    if let Some(m) = obj.remove("metadata") {
        event.insert("properties".into(), m);
    }
    if obj.contains_key("user_id") {
        errors.push(FieldError::new("user_id", "an activity is always the calling user's; user_id cannot be set"));
    }
    event.insert("user_id".into(), Value::String(caller.to_owned()));
    event.extend(obj);
    if !errors.is_empty() {
        return Err(errors);
    }
    parse_event(Value::Object(event), "", now, new_id).map_err(|errs| {
        errs.into_iter()
            .map(|e| match e.field.as_str() {
                "event_name" => FieldError::new("activity_type", e.message.replace("event_name", "activity_type")),
                "properties" => FieldError::new("metadata", e.message.replace("properties", "metadata")),
                _ => e,
            })
            .collect()
    })
}

/// Takes the one value among aliases of a field; two aliases with different values is an
/// error (the client meant two things).
fn take_one(
    obj: &mut Map<String, Value>,
    keys: &[&'static str],
    prefix: &str,
    errors: &mut Vec<FieldError>,
) -> Option<(&'static str, Value)> {
    let mut found: Option<(&'static str, Value)> = None;
    for key in keys {
        if let Some(v) = obj.remove(*key) {
            match &found {
                Some((first, fv)) if *fv != v && !v.is_null() && !fv.is_null() => {
                    errors.push(FieldError::new(
                        format!("{prefix}{key}"),
                        format!("{key} and {first} name the same field and differ"),
                    ));
                }
                Some((_, fv)) if !fv.is_null() => {}
                _ => found = Some((key, v)),
            }
        }
    }
    found
}

fn take_id(
    obj: &mut Map<String, Value>,
    keys: &[&'static str],
    prefix: &str,
    errors: &mut Vec<FieldError>,
) -> Option<String> {
    let (key, v) = take_one(obj, keys, prefix, errors)?;
    let s = match v {
        Value::Null => return None,
        Value::String(s) => s,
        Value::Number(n) => n.to_string(),
        other => {
            errors.push(FieldError::new(
                format!("{prefix}{key}"),
                format!("{key} must be a string or a number, not {}", kind(&other)),
            ));
            return None;
        }
    };
    if s.is_empty() {
        return None; // SDKs send "" for "unknown"
    }
    if s.chars().count() > MAX_ID_CHARS {
        errors
            .push(FieldError::new(format!("{prefix}{key}"), format!("{key} is longer than {MAX_ID_CHARS} characters")));
        return None;
    }
    if s.chars().any(char::is_control) {
        errors.push(FieldError::new(format!("{prefix}{key}"), format!("{key} contains a control character")));
        return None;
    }
    Some(s)
}

fn check_name(s: &str) -> Result<(), String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("the event name is empty".into());
    }
    let n = t.chars().count();
    if n > MAX_NAME_CHARS {
        return Err(format!("the event name has {n} characters; at most {MAX_NAME_CHARS} are allowed"));
    }
    if t.chars().any(char::is_control) {
        return Err("the event name contains a control character".into());
    }
    Ok(())
}

/// Parses an RFC 3339 timestamp that is not more than [`MAX_FUTURE`] ahead of `now`.
pub fn parse_timestamp(s: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    let t = DateTime::parse_from_rfc3339(s)
        .map_err(|_| format!("'{}' is not an RFC 3339 timestamp such as 2024-01-15T10:00:00Z", truncate(s, 64)))?
        .with_timezone(&Utc);
    if t > now + MAX_FUTURE {
        return Err(format!("{s} is more than 1 day in the future"));
    }
    Ok(t)
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max { s.to_owned() } else { format!("{}…", s.chars().take(max).collect::<String>()) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        "2026-01-03T09:00:00Z".parse().unwrap()
    }

    fn parse(v: Value) -> Result<NewEvent, Vec<FieldError>> {
        parse_event(v, "", now(), || "generated".into())
    }

    #[test]
    fn seed_001_and_004_shapes_are_the_same_event() {
        let a = parse(json!({"event_type": "ticket_purchase", "event_data": {"amount": 99.99},
            "timestamp": "2026-01-03T09:00:00.000Z", "user_id": "u1", "session_id": "s1"}))
        .unwrap();
        let b = parse(json!({"event_name": "ticket_purchase", "properties": {"amount": 99.99},
            "timestamp": "2026-01-03T09:00:00Z", "user_id": "u1", "session_id": "s1"}))
        .unwrap();
        assert_eq!(a, b);
        assert_eq!(a.event_id, "generated");
        assert_eq!(a.timestamp, now());
    }

    #[test]
    fn client_ids_and_extra_fields_are_kept() {
        let e = parse(json!({"event": "x", "messageId": "m-1", "userId": 42, "anonymous_id": "a",
            "context": {"ip": "1.2.3.4"}}))
        .unwrap();
        assert_eq!(e.event_id, "m-1");
        assert_eq!(e.user_id.as_deref(), Some("42"));
        assert_eq!(e.context, json!({"ip": "1.2.3.4", "anonymous_id": "a"}).as_object().unwrap().clone());
        assert_eq!(e.timestamp, now(), "no timestamp means now");
    }

    /// Each bad input, the field the error must name, and a word its message must hold.
    #[test]
    fn bad_events_name_the_field_and_the_reason() {
        let long = "n".repeat(201);
        let cases: Vec<(Value, &str, &str)> = vec![
            (json!({}), "event_name", "required"),
            (json!({"event_data": {}}), "event_type", "required"),
            (json!({"event_name": ""}), "event_name", "empty"),
            (json!({"event_name": "   "}), "event_name", "empty"),
            (json!({"event_name": long}), "event_name", "201 characters"),
            (json!({"event_name": 5}), "event_name", "string"),
            (json!({"event_name": "a\u{0}b"}), "event_name", "control"),
            (json!({"event_name": "a", "properties": [1]}), "properties", "object"),
            (json!({"event_name": "a", "properties": "x"}), "properties", "object"),
            (json!({"event_type": "a", "event_data": 3}), "event_data", "object"),
            (json!({"event_name": "a", "timestamp": "yesterday"}), "timestamp", "RFC 3339"),
            (json!({"event_name": "a", "timestamp": "2024-01-15 10:00:00"}), "timestamp", "RFC 3339"),
            (json!({"event_name": "a", "timestamp": 1700000000}), "timestamp", "RFC 3339"),
            (json!({"event_name": "a", "timestamp": "2026-01-04T09:00:01Z"}), "timestamp", "future"),
            (json!({"event_name": "a", "user_id": {"x": 1}}), "user_id", "string or a number"),
            (json!({"event_name": "a", "event_id": "i".repeat(201)}), "event_id", "longer"),
            (json!({"event_name": "a", "event_type": "b"}), "event_type", "differ"),
            (json!({"event_name": "a", "context": 1}), "context", "object"),
        ];
        for (input, field, word) in cases {
            let errs = parse(input.clone()).expect_err(&input.to_string());
            assert!(
                errs.iter().any(|e| e.field == field && e.message.contains(word)),
                "{input}: wanted {field} ~ {word}, got {errs:?}"
            );
        }
        assert!(parse(json!([1])).is_err());
    }

    #[test]
    fn a_timestamp_just_under_a_day_ahead_is_fine() {
        let e = parse(json!({"event_name": "a", "timestamp": "2026-01-04T08:59:59+00:00"})).unwrap();
        assert_eq!(e.timestamp, now() + Duration::days(1) - Duration::seconds(1));
        let e = parse(json!({"event_name": "a", "timestamp": "2026-01-03T11:00:00+02:00"})).unwrap();
        assert_eq!(e.timestamp, now(), "offsets are converted to UTC");
    }

    #[test]
    fn batch_prefix_is_put_before_field_names() {
        let errs = parse_event(json!({"properties": 1}), "events[3].", now(), || "g".into()).unwrap_err();
        let fields: Vec<_> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["events[3].event_name", "events[3].properties"]);
    }

    #[test]
    fn activity_is_an_event_of_the_caller() {
        let e = parse_activity(
            json!({"activity_type": "custom_action", "metadata": {"key": "value"}}),
            "u-7",
            now(),
            || "g".into(),
        )
        .unwrap();
        assert_eq!((e.name.as_str(), e.user_id.as_deref()), ("custom_action", Some("u-7")));
        assert_eq!(e.properties["key"], "value");
        let errs = parse_activity(json!({"metadata": []}), "u", now(), || "g".into()).unwrap_err();
        assert_eq!(errs[0].field, "activity_type");
        let errs =
            parse_activity(json!({"activity_type": "a", "metadata": []}), "u", now(), || "g".into()).unwrap_err();
        assert_eq!(errs[0].field, "metadata");
    }
}
