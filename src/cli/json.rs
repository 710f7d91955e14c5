//! proto3 JSON exactly as the protobuf runtimes (and so grpcurl) print it. pbjson's serde forms
//! follow the mapping except for `google.protobuf.Timestamp`, which pbjson-types writes with a
//! `+00:00` offset where proto3 JSON requires `Z`. Every message the client prints goes through
//! [`to_line`] or [`to_pretty`], which find the timestamp fields in the compiled descriptors
//! (nested, repeated and map fields included) and write them in the required form.

use std::{collections::HashMap, sync::OnceLock};

use chrono::{DateTime, Datelike, SecondsFormat};
use prost::Message as _;
use prost_types::{FileDescriptorSet, field_descriptor_proto::Type};
use serde::Serialize;
use serde_json::Value;

use crate::pb::{FILE_DESCRIPTOR_SET, khabar::v1 as pb};

const TIMESTAMP: &str = ".google.protobuf.Timestamp";

/// A message the client prints, with its name in the descriptors.
pub trait ProtoMessage: Serialize {
    /// Fully qualified name with the leading dot, e.g. `.khabar.v1.Article`.
    const TYPE_NAME: &'static str;
}

macro_rules! proto_messages {
    ($($message:ty => $name:literal),* $(,)?) => {
        $(impl ProtoMessage for $message {
            const TYPE_NAME: &'static str = $name;
        })*
    };
}

proto_messages! {
    pb::Article => ".khabar.v1.Article",
    pb::ListArticlesResponse => ".khabar.v1.ListArticlesResponse",
    pb::FeedEvent => ".khabar.v1.FeedEvent",
    pb::Consumer => ".khabar.v1.Consumer",
    pb::ListConsumersResponse => ".khabar.v1.ListConsumersResponse",
    pb::IngestResponse => ".khabar.v1.IngestResponse",
    pb::StoryArticle => ".khabar.v1.StoryArticle",
}

/// Why a message cannot be printed as proto3 JSON.
#[derive(Debug, thiserror::Error)]
pub enum JsonError {
    /// serde could not encode it.
    #[error("cannot encode {message} as JSON: {source}")]
    Encode {
        /// The message type.
        message: &'static str,
        /// Why.
        source: serde_json::Error,
    },
    /// The compiled descriptors are unusable (a build problem).
    #[error("the compiled protobuf descriptors cannot be read: {0}")]
    Descriptors(String),
    /// A timestamp proto3 JSON cannot express (outside years 0001 to 9999).
    #[error("{field} holds a time proto3 JSON cannot express: {value}")]
    Timestamp {
        /// JSON name of the field.
        field: String,
        /// What pbjson wrote.
        value: String,
    },
}

/// How a field's JSON value is rewritten; fields not listed are left as they are.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    /// A `google.protobuf.Timestamp` string.
    Timestamp,
    /// A message of this type (recursed into).
    Message(String),
    /// A map whose values are of this kind.
    Map(Box<Kind>),
    /// A `float` (32-bit), which serde widens to 64 bits.
    Float,
}

/// The fields of every message that hold timestamps, directly or further down.
#[derive(Debug, Default)]
struct Schema {
    /// Message name -> JSON field name (and proto field name, which parsers accept too) -> kind.
    messages: HashMap<String, HashMap<String, Kind>>,
}

impl Schema {
    fn decode(bytes: &[u8]) -> Result<Self, JsonError> {
        let set =
            FileDescriptorSet::decode(bytes).map_err(|e| JsonError::Descriptors(e.to_string()))?;
        // Map fields are repeated fields of a generated entry message; find those first.
        let mut entries: HashMap<String, (Type, String)> = HashMap::new();
        let mut all = Vec::new();
        for file in &set.file {
            let package = file.package.as_deref().unwrap_or_default();
            let mut stack: Vec<(String, &prost_types::DescriptorProto)> = file
                .message_type
                .iter()
                .map(|m| (format!(".{package}.{}", m.name()), m))
                .collect();
            while let Some((name, message)) = stack.pop() {
                for nested in &message.nested_type {
                    stack.push((format!("{name}.{}", nested.name()), nested));
                }
                if message.options.as_ref().is_some_and(|o| o.map_entry()) {
                    if let Some(value) = message.field.iter().find(|f| f.number() == 2) {
                        entries
                            .insert(name.clone(), (value.r#type(), value.type_name().to_owned()));
                    }
                    continue;
                }
                all.push((name, message));
            }
        }
        let kind = |r#type: Type, type_name: &str| -> Option<Kind> {
            match r#type {
                Type::Message if type_name == TIMESTAMP => Some(Kind::Timestamp),
                Type::Message => Some(Kind::Message(type_name.to_owned())),
                Type::Float => Some(Kind::Float),
                _ => None,
            }
        };
        let mut schema = Schema::default();
        for (name, message) in all {
            let mut fields = HashMap::new();
            for field in &message.field {
                let found = match entries.get(field.type_name()) {
                    Some((value_type, value_name)) => {
                        kind(*value_type, value_name).map(|k| Kind::Map(Box::new(k)))
                    }
                    None => kind(field.r#type(), field.type_name()),
                };
                if let Some(found) = found {
                    let json_name = field
                        .json_name
                        .clone()
                        .unwrap_or_else(|| lower_camel_case(field.name()));
                    fields.insert(field.name().to_owned(), found.clone());
                    fields.insert(json_name, found);
                }
            }
            schema.messages.insert(name, fields);
        }
        Ok(schema)
    }

    fn rewrite(&self, message: &str, value: &mut Value) -> Result<(), JsonError> {
        let (Some(fields), Value::Object(object)) = (self.messages.get(message), value) else {
            return Ok(());
        };
        for (name, field) in object.iter_mut() {
            if let Some(kind) = fields.get(name) {
                self.rewrite_field(name, kind, field)?;
            }
        }
        Ok(())
    }

    fn rewrite_field(&self, name: &str, kind: &Kind, value: &mut Value) -> Result<(), JsonError> {
        match (kind, value) {
            (_, Value::Array(items)) if !matches!(kind, Kind::Map(_)) => {
                for item in items {
                    self.rewrite_field(name, kind, item)?;
                }
            }
            (Kind::Timestamp, Value::String(text)) => *text = proto3_timestamp(name, text)?,
            (Kind::Float, Value::Number(number)) => {
                if let Some(shortest) = number.as_f64().and_then(proto3_float) {
                    *number = shortest;
                }
            }
            (Kind::Message(message), value) => self.rewrite(message, value)?,
            (Kind::Map(values), Value::Object(entries)) => {
                for entry in entries.values_mut() {
                    self.rewrite_field(name, values, entry)?;
                }
            }
            _ => {}
        }
        Ok(())
    }
}

fn lower_camel_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = false;
    for c in name.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// A 32-bit float as the protobuf runtimes print it: the shortest decimal that reads back as the
/// same `f32` (0.93, not the 0.9300000071525574 its widening to 64 bits holds), and a whole
/// number without a fraction (1, not 1.0).
fn proto3_float(value: f64) -> Option<serde_json::Number> {
    // The value came from an f32, so narrowing it back is exact.
    let narrow = value as f32;
    if narrow.is_finite() && narrow.fract() == 0.0 && narrow.abs() < 1e15 {
        return Some(serde_json::Number::from(narrow as i64));
    }
    let shortest: f64 = narrow.to_string().parse().ok()?;
    serde_json::Number::from_f64(shortest)
}

/// RFC 3339 in UTC with `Z` and 0, 3, 6 or 9 fractional digits, as proto3 JSON requires.
fn proto3_timestamp(field: &str, text: &str) -> Result<String, JsonError> {
    let invalid = || JsonError::Timestamp {
        field: field.to_owned(),
        value: text.to_owned(),
    };
    let time = DateTime::parse_from_rfc3339(text)
        .map_err(|_| invalid())?
        .to_utc();
    if !(1..=9999).contains(&time.year()) {
        return Err(invalid());
    }
    Ok(time.to_rfc3339_opts(SecondsFormat::AutoSi, true))
}

fn schema() -> Result<&'static Schema, JsonError> {
    static SCHEMA: OnceLock<Result<Schema, String>> = OnceLock::new();
    SCHEMA
        .get_or_init(|| Schema::decode(FILE_DESCRIPTOR_SET).map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| JsonError::Descriptors(e.clone()))
}

/// The message as a proto3 JSON value.
pub fn to_value<M: ProtoMessage>(message: &M) -> Result<Value, JsonError> {
    let mut value = serde_json::to_value(message).map_err(|source| JsonError::Encode {
        message: M::TYPE_NAME,
        source,
    })?;
    schema()?.rewrite(M::TYPE_NAME, &mut value)?;
    Ok(value)
}

/// The message as one line of proto3 JSON.
pub fn to_line<M: ProtoMessage>(message: &M) -> Result<String, JsonError> {
    Ok(to_value(message)?.to_string())
}

/// The message as indented proto3 JSON.
pub fn to_pretty<M: ProtoMessage>(message: &M) -> Result<String, JsonError> {
    let value = to_value(message)?;
    serde_json::to_string_pretty(&value).map_err(|source| JsonError::Encode {
        message: M::TYPE_NAME,
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use pbjson_types::Timestamp;

    fn at(seconds: i64, nanos: i32) -> Option<Timestamp> {
        Some(Timestamp { seconds, nanos })
    }

    fn article() -> pb::Article {
        pb::Article {
            id: "01KAVJ0G0T8RQS2D5W8MZ3C6XE".into(),
            headline: "خبر".into(),
            published_at: at(1_467_363_600, 0),
            updated_at: at(1_467_363_600, 120_000_000),
            ingested_at: at(1_467_363_600, 123_456_000),
            first_ingested_at: at(1_467_363_600, 123_456_789),
            retraction: Some(pb::Retraction {
                reason: "2016-07-01T09:00:00+00:00".into(),
                retracted_at: at(1_467_363_601, 1),
            }),
            view_count: 7,
            ..Default::default()
        }
    }

    #[test]
    fn timestamps_end_in_z_with_0_3_6_or_9_fractional_digits() {
        let value = to_value(&article()).unwrap();
        assert_eq!(value["publishedAt"], "2016-07-01T09:00:00Z");
        assert_eq!(value["updatedAt"], "2016-07-01T09:00:00.120Z");
        assert_eq!(value["ingestedAt"], "2016-07-01T09:00:00.123456Z");
        assert_eq!(value["firstIngestedAt"], "2016-07-01T09:00:00.123456789Z");
        assert_eq!(
            value["retraction"]["retractedAt"],
            "2016-07-01T09:00:01.000000001Z"
        );
        // Floats print as the protobuf runtimes print them.
        let mut linked = article();
        linked.similarity = 0.93;
        assert_eq!(to_value(&linked).unwrap()["similarity"].to_string(), "0.93");
        linked.similarity = 1.0;
        assert_eq!(to_value(&linked).unwrap()["similarity"].to_string(), "1");
        // A string field that looks like a time is text, and stays as it was.
        assert_eq!(value["retraction"]["reason"], "2016-07-01T09:00:00+00:00");
        // The rest is pbjson's proto3 JSON: 64-bit integers as strings, zero values omitted.
        assert_eq!(value["viewCount"], "7");
        assert!(value.get("version").is_none() && value.get("summary").is_none());
    }

    #[test]
    fn nested_and_repeated_messages_are_rewritten() {
        let event = pb::FeedEvent {
            cursor: 3,
            kind: pb::EventKind::Created.into(),
            article: Some(article()),
            timestamp: at(0, 0),
        };
        let value = to_value(&event).unwrap();
        assert_eq!(value["timestamp"], "1970-01-01T00:00:00Z");
        assert_eq!(value["article"]["publishedAt"], "2016-07-01T09:00:00Z");

        let page = pb::ListArticlesResponse {
            articles: vec![article(), article()],
            next_page_token: String::new(),
        };
        let value = to_value(&page).unwrap();
        for article in value["articles"].as_array().unwrap() {
            assert_eq!(article["ingestedAt"], "2016-07-01T09:00:00.123456Z");
        }

        let consumers = pb::ListConsumersResponse {
            consumers: vec![pb::Consumer {
                name: "indexer".into(),
                created_at: at(1, 500_000_000),
                ..Default::default()
            }],
        };
        let line = to_line(&consumers).unwrap();
        assert_eq!(
            line,
            r#"{"consumers":[{"name":"indexer","createdAt":"1970-01-01T00:00:01.500Z"}]}"#
        );
    }

    #[test]
    fn the_schema_knows_every_timestamp_field() {
        let schema = schema().unwrap();
        let timestamps = |message: &str| {
            let mut names: Vec<&str> = schema.messages[message]
                .iter()
                .filter(|(name, kind)| **kind == Kind::Timestamp && !name.contains('_'))
                .map(|(name, _)| name.as_str())
                .collect();
            names.sort_unstable();
            names
        };
        assert_eq!(
            timestamps(".khabar.v1.Article"),
            [
                "embargoed",
                "expires",
                "firstIngestedAt",
                "ingestedAt",
                "publishedAt",
                "updatedAt"
            ]
        );
        assert_eq!(timestamps(".khabar.v1.Retraction"), ["retractedAt"]);
        assert_eq!(timestamps(".khabar.v1.Consumer"), ["ackedAt", "createdAt"]);
        assert_eq!(
            schema.messages[".khabar.v1.ListArticlesResponse"]["articles"],
            Kind::Message(".khabar.v1.Article".into())
        );
    }

    #[test]
    fn times_outside_years_1_to_9999_are_refused() {
        let far = pb::Consumer {
            created_at: at(Timestamp::default().seconds + 400_000_000_000, 0),
            ..Default::default()
        };
        let err = to_line(&far).unwrap_err().to_string();
        assert!(err.contains("createdAt"), "{err}");
    }

    #[test]
    fn map_values_are_rewritten() {
        use prost_types::{
            DescriptorProto, FieldDescriptorProto, FileDescriptorProto, MessageOptions,
            field_descriptor_proto::Label,
        };
        let field = |name: &str, number: i32, r#type: Type, type_name: &str| FieldDescriptorProto {
            name: Some(name.into()),
            number: Some(number),
            label: Some(Label::Optional.into()),
            r#type: Some(r#type.into()),
            type_name: (!type_name.is_empty()).then(|| type_name.into()),
            ..Default::default()
        };
        let entry = DescriptorProto {
            name: Some("SeenAtEntry".into()),
            field: vec![
                field("key", 1, Type::String, ""),
                field("value", 2, Type::Message, TIMESTAMP),
            ],
            options: Some(MessageOptions {
                map_entry: Some(true),
                ..Default::default()
            }),
            ..Default::default()
        };
        let message = DescriptorProto {
            name: Some("M".into()),
            field: vec![field("seen_at", 1, Type::Message, ".t.M.SeenAtEntry")],
            nested_type: vec![entry],
            ..Default::default()
        };
        let set = FileDescriptorSet {
            file: vec![FileDescriptorProto {
                package: Some("t".into()),
                message_type: vec![message],
                ..Default::default()
            }],
        };
        let schema = Schema::decode(&set.encode_to_vec()).unwrap();
        let mut value = serde_json::json!({"seenAt": {"a": "2016-07-01T12:00:00+03:00"}});
        schema.rewrite(".t.M", &mut value).unwrap();
        assert_eq!(value["seenAt"]["a"], "2016-07-01T09:00:00Z");
    }
}
