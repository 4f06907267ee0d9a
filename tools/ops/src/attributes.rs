//! DynamoDB attribute values as plain JSON, for printing items.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{Map, Number, Value};

/// One attribute as JSON: numbers as numbers (text when too large for JSON),
/// sets as arrays, maps with sorted keys so output is stable. Binary values
/// print as their length only.
pub fn to_json(value: &AttributeValue) -> Value {
    match value {
        AttributeValue::S(text) => Value::String(text.clone()),
        AttributeValue::N(number) => number_to_json(number),
        AttributeValue::Bool(flag) => Value::Bool(*flag),
        AttributeValue::Null(_) => Value::Null,
        AttributeValue::L(list) => list.iter().map(to_json).collect(),
        AttributeValue::M(map) => map_to_json(map),
        AttributeValue::Ss(texts) => texts.iter().cloned().map(Value::String).collect(),
        AttributeValue::Ns(numbers) => numbers.iter().map(|n| number_to_json(n)).collect(),
        AttributeValue::B(blob) => binary(blob.as_ref().len()),
        AttributeValue::Bs(blobs) => blobs.iter().map(|blob| binary(blob.as_ref().len())).collect(),
        _ => Value::Null,
    }
}

/// A map attribute (or a whole item) as a JSON object with sorted keys.
pub fn map_to_json(map: &HashMap<String, AttributeValue>) -> Value {
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort();
    Value::Object(keys.into_iter().map(|key| (key.clone(), to_json(&map[key]))).collect::<Map<_, _>>())
}

fn number_to_json(number: &str) -> Value {
    match number.parse::<Number>() {
        Ok(parsed) if parsed.as_f64().is_some_and(f64::is_finite) => Value::Number(parsed),
        _ => Value::String(number.to_owned()),
    }
}

fn binary(len: usize) -> Value {
    Value::String(format!("<{len} bytes>"))
}

#[cfg(test)]
mod tests {
    use aws_sdk_dynamodb::primitives::Blob;
    use serde_json::json;

    use super::*;

    fn s(text: &str) -> AttributeValue {
        AttributeValue::S(text.to_owned())
    }

    fn n(number: &str) -> AttributeValue {
        AttributeValue::N(number.to_owned())
    }

    #[test]
    fn scalars_become_json_scalars() {
        assert_eq!(to_json(&s("sent")), json!("sent"));
        assert_eq!(to_json(&n("3")), json!(3));
        assert_eq!(to_json(&n("-2")), json!(-2));
        assert_eq!(to_json(&n("1.5")), json!(1.5));
        assert_eq!(to_json(&AttributeValue::Bool(true)), json!(true));
        assert_eq!(to_json(&AttributeValue::Null(true)), Value::Null);
    }

    #[test]
    fn numbers_json_cannot_hold_stay_text() {
        assert_eq!(to_json(&n("1E+400")), json!("1E+400"));
        assert_eq!(to_json(&n("not a number")), json!("not a number"));
    }

    #[test]
    fn lists_sets_and_nested_maps_are_converted_with_sorted_keys() {
        let record = HashMap::from([
            ("status".to_owned(), s("skipped")),
            ("attempts".to_owned(), n("2")),
            ("reason".to_owned(), s("monthly_limit_reached")),
        ]);
        let item = HashMap::from([
            ("channels".to_owned(), AttributeValue::L(vec![s("email"), s("sms")])),
            (
                "fulfillment".to_owned(),
                AttributeValue::M(HashMap::from([("sms".to_owned(), AttributeValue::M(record))])),
            ),
            ("tags".to_owned(), AttributeValue::Ss(vec!["a".to_owned()])),
            ("sizes".to_owned(), AttributeValue::Ns(vec!["1".to_owned(), "2".to_owned()])),
            ("blob".to_owned(), AttributeValue::B(Blob::new(vec![0, 1, 2]))),
        ]);
        let json = map_to_json(&item);
        assert_eq!(
            json,
            json!({
                "blob": "<3 bytes>",
                "channels": ["email", "sms"],
                "fulfillment": {"sms": {"attempts": 2, "reason": "monthly_limit_reached", "status": "skipped"}},
                "sizes": [1, 2],
                "tags": ["a"],
            })
        );
        let keys: Vec<&String> = json.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["blob", "channels", "fulfillment", "sizes", "tags"]);
    }
}
