//! Input of `khabar ingest`: NDJSON (one item per line, read as it comes), one JSON document,
//! or a JSON array of items. An item is an article or an ingest request `{"article": {...}}`
//! in proto3 JSON (camelCase or the proto's own field names), or an IPTC ninjs 2.x object.

use std::{fmt, io::BufRead};

use serde_json::Value;

use crate::{api::article_pb_from_draft, pb::khabar::v1 as pb};

/// Where an item was in the input, for reporting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    /// 1-based line of an NDJSON input.
    Line(usize),
    /// 1-based index in a JSON array.
    Index(usize),
    /// The single JSON document of the input.
    Document,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Position::Line(line) => write!(f, "line {line}"),
            Position::Index(index) => write!(f, "item {index}"),
            Position::Document => f.write_str("document"),
        }
    }
}

/// One item of the input, parsed or not.
#[derive(Debug)]
pub struct Item {
    /// Where it was.
    pub position: Position,
    /// The request to send, or why the item cannot be sent.
    pub request: Result<Parsed, String>,
    /// Bytes of the input up to the end of this item, for progress. The items of a JSON array
    /// share the array's bytes out evenly (it is parsed whole).
    pub offset: u64,
}

/// An item read into the request to send.
#[derive(Debug)]
pub struct Parsed {
    /// The request.
    pub request: pb::IngestRequest,
    /// Paths of properties of a ninjs item that khabar does not keep, so left out of the
    /// request (see [`crate::ninjs::NinjsImport::not_carried`]); empty for khabar's JSON.
    pub not_carried: Vec<String>,
}

impl From<pb::IngestRequest> for Parsed {
    fn from(request: pb::IngestRequest) -> Self {
        Self {
            request,
            not_carried: Vec::new(),
        }
    }
}

/// Which JSON an item is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum InputFormat {
    /// Per item: ninjs when the object looks like ninjs (see [`looks_like_ninjs`]), else khabar.
    #[default]
    Auto,
    /// khabar's proto3 JSON: an article or `{"article": {...}}`.
    Khabar,
    /// An IPTC ninjs 2.x object.
    Ninjs,
}

/// Properties only a ninjs object has (khabar's JSON names these `headline`, `body`,
/// `summary`, `publishedAt`, `updatedAt`).
const NINJS_ONLY: [&str; 7] = [
    "headlines",
    "bodies",
    "descriptions",
    "firstcreated",
    "versioncreated",
    "standard",
    "infosources",
];

/// Whether an object is ninjs rather than khabar's JSON: it has `uri` and a property that only
/// ninjs has.
pub fn looks_like_ninjs(fields: &serde_json::Map<String, Value>) -> bool {
    fields.contains_key("uri") && NINJS_ONLY.iter().any(|key| fields.contains_key(*key))
}

/// Turns one JSON value into an ingest request.
pub fn parse_item(value: Value, format: InputFormat) -> Result<Parsed, String> {
    let ninjs = match (&value, format) {
        (_, InputFormat::Ninjs) => true,
        (Value::Object(fields), InputFormat::Auto) => looks_like_ninjs(fields),
        _ => false,
    };
    if ninjs {
        return from_ninjs(&value);
    }
    match &value {
        Value::Object(fields) if fields.contains_key("article") => {
            serde_json::from_value::<pb::IngestRequest>(value)
                .map(Parsed::from)
                .map_err(|e| format!("not a valid ingest request: {e}"))
        }
        Value::Object(_) => serde_json::from_value::<pb::Article>(value)
            .map(|article| {
                Parsed::from(pb::IngestRequest {
                    article: Some(article),
                })
            })
            .map_err(|e| format!("not a valid article: {e}")),
        _ => Err("expected a JSON object: an article or {\"article\": {...}}".to_owned()),
    }
}

/// A ninjs object as an ingest request; its shape violations, on ninjs paths, are the reason
/// it cannot be sent. khabar's own field rules are left to the server, as for any item.
fn from_ninjs(value: &Value) -> Result<Parsed, String> {
    let import = crate::ninjs::from_ninjs(value).map_err(|violations| {
        let listed: Vec<String> = violations
            .iter()
            .map(|v| format!("{}: {}", v.field, v.description))
            .collect();
        format!("not valid ninjs: {}", listed.join("; "))
    })?;
    Ok(Parsed {
        request: pb::IngestRequest {
            article: Some(article_pb_from_draft(import.article)),
        },
        not_carried: import.not_carried,
    })
}

fn parse_line(line: &str, format: InputFormat) -> Result<Parsed, String> {
    let value: Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    parse_item(value, format)
}

/// Reads every item of `input` in order, handing each to `sink`; stops early when `sink`
/// returns false. NDJSON is read line by line; a document or an array is read whole.
pub fn read_items(
    mut input: impl BufRead,
    format: InputFormat,
    mut sink: impl FnMut(Item) -> bool,
) -> std::io::Result<()> {
    let mut line = String::new();
    let mut line_number = 0;
    let mut offset = 0u64;
    let mut read_line = |input: &mut dyn BufRead, line: &mut String| {
        line.clear();
        let read = input.read_line(line)?;
        offset += read as u64;
        Ok::<_, std::io::Error>((read, offset))
    };
    // The first non-blank line decides: a complete JSON value alone means NDJSON.
    let (first, first_end) = loop {
        let (read, end) = read_line(&mut input, &mut line)?;
        if read == 0 {
            return Ok(());
        }
        line_number += 1;
        if !line.trim().is_empty() {
            break (line.clone(), end);
        }
    };
    if serde_json::from_str::<Value>(&first).is_ok() {
        if !sink(Item {
            position: Position::Line(line_number),
            request: parse_line(&first, format),
            offset: first_end,
        }) {
            return Ok(());
        }
        loop {
            let (read, end) = read_line(&mut input, &mut line)?;
            if read == 0 {
                return Ok(());
            }
            line_number += 1;
            if line.trim().is_empty() {
                continue;
            }
            if !sink(Item {
                position: Position::Line(line_number),
                request: parse_line(&line, format),
                offset: end,
            }) {
                return Ok(());
            }
        }
    }

    let first_line = line_number;
    let document_start = first_end - first.len() as u64;
    let mut document = first;
    input.read_to_string(&mut document)?;
    let document_end = document_start + document.len() as u64;
    match serde_json::from_str::<Value>(&document) {
        Ok(Value::Array(items)) => {
            let count = items.len() as u64;
            for (index, value) in (1..).zip(items) {
                if !sink(Item {
                    position: Position::Index(index),
                    request: parse_item(value, format),
                    offset: document_start + (document_end - document_start) * index as u64 / count,
                }) {
                    break;
                }
            }
        }
        Ok(value) => {
            sink(Item {
                position: Position::Document,
                request: parse_item(value, format),
                offset: document_end,
            });
        }
        // Not one document: NDJSON whose first line is broken. Report each line on its own.
        Err(_) if document.lines().skip(1).any(is_json_line) => {
            let mut end = document_start;
            for (number, text) in (first_line..).zip(document.split_inclusive('\n')) {
                end += text.len() as u64;
                if text.trim().is_empty() {
                    continue;
                }
                if !sink(Item {
                    position: Position::Line(number),
                    request: parse_line(text, format),
                    offset: end,
                }) {
                    break;
                }
            }
        }
        Err(e) => {
            sink(Item {
                position: Position::Document,
                request: Err(format!("not JSON: {e}")),
                offset: document_end,
            });
        }
    }
    Ok(())
}

fn is_json_line(line: &str) -> bool {
    !line.trim().is_empty() && serde_json::from_str::<Value>(line).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARTICLE: &str = r#"{"source":{"id":"s","name":"S"},"uri":"urn:x:1","headline":"خبر","publishedAt":"2016-07-01T00:00:00Z","viewCount":"7"}"#;

    fn items(input: &str) -> Vec<(Position, Result<String, String>)> {
        let mut out = Vec::new();
        read_items(input.as_bytes(), InputFormat::Auto, |item| {
            let request = item
                .request
                .map(|r| r.request.article.map(|a| a.headline).unwrap_or_default());
            out.push((item.position, request));
            true
        })
        .unwrap();
        out
    }

    #[test]
    fn ndjson_lines_are_articles_or_requests_and_blank_lines_are_skipped() {
        let input = format!("{ARTICLE}\n\n{{\"article\":{ARTICLE}}}\n");
        let got = items(&input);
        assert_eq!(
            got,
            vec![
                (Position::Line(1), Ok("خبر".to_owned())),
                (Position::Line(3), Ok("خبر".to_owned())),
            ]
        );
    }

    #[test]
    fn snake_case_names_and_timestamps_are_read() {
        let request = parse_line(
            r#"{"article":{"headline":"h","published_at":"2016-07-01T10:00:00+02:00","view_count":3}}"#,
            InputFormat::Auto,
        )
        .unwrap();
        assert!(request.not_carried.is_empty());
        let article = request.request.article.unwrap();
        assert_eq!(article.view_count, 3);
        assert_eq!(article.published_at.unwrap().seconds, 1_467_360_000);
    }

    #[test]
    fn a_pretty_document_is_one_item() {
        let input = "{\n  \"article\": {\n    \"headline\": \"عاجل\"\n  }\n}\n";
        assert_eq!(
            items(input),
            vec![(Position::Document, Ok("عاجل".to_owned()))]
        );
    }

    #[test]
    fn an_array_gives_indexed_items() {
        let input = format!("[\n {ARTICLE},\n 42\n]");
        let got = items(&input);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0], (Position::Index(1), Ok("خبر".to_owned())));
        assert_eq!(got[1].0, Position::Index(2));
        assert!(
            got[1]
                .1
                .as_ref()
                .unwrap_err()
                .contains("expected a JSON object")
        );
    }

    #[test]
    fn broken_lines_are_reported_and_the_rest_goes_on() {
        let input = format!("not json\n{ARTICLE}\n{{\"uri\": 5}}\n{{\"headline\":\n");
        let got = items(&input);
        assert_eq!(got.len(), 4, "{got:?}");
        assert_eq!(got[0].0, Position::Line(1));
        assert!(got[0].1.as_ref().unwrap_err().starts_with("not JSON"));
        assert_eq!(got[1], (Position::Line(2), Ok("خبر".to_owned())));
        assert!(
            got[2]
                .1
                .as_ref()
                .unwrap_err()
                .starts_with("not a valid article"),
            "{got:?}"
        );
        assert_eq!(got[3].0, Position::Line(4));
    }

    fn offsets(input: &str) -> Vec<u64> {
        let mut out = Vec::new();
        read_items(input.as_bytes(), InputFormat::Auto, |item| {
            out.push(item.offset);
            true
        })
        .unwrap();
        out
    }

    #[test]
    fn offsets_mark_where_each_item_ends() {
        let line = ARTICLE.len() as u64 + 1;
        // NDJSON: the end of each item's line, blank lines included.
        assert_eq!(
            offsets(&format!("\n{ARTICLE}\n\n{ARTICLE}\n")),
            [1 + line, 2 + 2 * line]
        );
        // A document: its end.
        let document = "{\n  \"article\": {\"headline\": \"h\"}\n}\n";
        assert_eq!(offsets(document), [document.len() as u64]);
        // An array: its bytes shared out evenly, the last item at the end.
        let array = format!("[\n{ARTICLE},\n{ARTICLE},\n{ARTICLE}\n]\n");
        let total = array.len() as u64;
        assert_eq!(offsets(&array), [total / 3, total * 2 / 3, total]);
        // Broken NDJSON read whole: still the end of each line.
        let broken = format!("not json\n{ARTICLE}\n");
        assert_eq!(offsets(&broken), [9, broken.len() as u64]);
    }

    #[test]
    fn unknown_fields_are_errors_not_silently_dropped() {
        let err = parse_line(r#"{"headlin":"typo"}"#, InputFormat::Auto).unwrap_err();
        assert!(err.contains("headlin"), "{err}");
    }

    #[test]
    fn empty_input_has_no_items_and_the_sink_can_stop_early() {
        assert!(items("\n  \n").is_empty());
        let mut seen = 0;
        read_items(
            format!("{ARTICLE}\n{ARTICLE}\n").as_bytes(),
            InputFormat::Auto,
            |_| {
                seen += 1;
                false
            },
        )
        .unwrap();
        assert_eq!(seen, 1);
    }

    #[test]
    fn ninjs_items_are_told_apart_and_converted() {
        let ninjs = r#"{"uri":"https://a.example/1","headlines":[{"value":"عنوان"}],"urgency":2,"genres":[{"literal":"genre:Current"}],"slugline":"syria"}"#;
        let parsed = parse_line(ninjs, InputFormat::Auto).unwrap();
        assert_eq!(parsed.not_carried, ["slugline"]);
        let article = parsed.request.article.unwrap();
        assert_eq!((article.headline.as_str(), article.urgency), ("عنوان", 2));
        assert_eq!(article.genres[0].code, "genre:Current");
        // The same object read as khabar's JSON is refused for its ninjs names.
        assert!(parse_line(ninjs, InputFormat::Khabar).is_err());
        // khabar's own JSON is not taken for ninjs, and a bad ninjs item names its path.
        assert!(parse_line(ARTICLE, InputFormat::Auto).is_ok());
        let err = parse_line(
            r#"{"uri":"u","headlines":[{"value":1}]}"#,
            InputFormat::Auto,
        )
        .unwrap_err();
        assert!(err.contains("headlines[0].value"), "{err}");
        let err = parse_line(r#"{"headline":"h"}"#, InputFormat::Ninjs).unwrap_err();
        assert!(err.contains("not valid ninjs"), "{err}");
    }
}
