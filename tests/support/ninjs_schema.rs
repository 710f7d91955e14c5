//! The vendored IPTC ninjs 2.1 JSON schema as a validator, for the tests that check khabar's
//! ninjs output (included by path from each test crate that needs it).

use serde_json::Value;

/// Stands in for the GeoJSON schema that ninjs refers to for `places[].geojson` (which khabar
/// never writes) with an open schema, so that nothing is fetched; any other address is refused.
struct GeoJsonStub;

impl jsonschema::Retrieve for GeoJsonStub {
    fn retrieve(
        &self,
        uri: &jsonschema::Uri<String>,
    ) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        if uri
            .as_str()
            .starts_with("https://geojson.org/schema/GeoJSON.json")
        {
            Ok(serde_json::json!({}))
        } else {
            Err(format!("no schema is fetched for {}", uri.as_str()).into())
        }
    }
}

/// The schema in `tests/fixtures/ninjs/`, JSON Schema 2020-12, formats checked.
pub fn validator() -> jsonschema::Validator {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/ninjs/ninjs-schema_2.1.json"
    );
    let text = std::fs::read_to_string(path).expect("the ninjs schema is vendored");
    let schema: Value = serde_json::from_str(&text).expect("the schema is JSON");
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .with_retriever(GeoJsonStub)
        .build(&schema)
        .expect("the ninjs schema compiles")
}

/// Every way `item` breaks the schema, each with where it is in the item.
pub fn errors(validator: &jsonschema::Validator, item: &Value) -> Vec<String> {
    validator
        .iter_errors(item)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect()
}
