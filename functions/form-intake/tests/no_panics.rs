//! No input makes the edge parsers or the validator panic: random bytes,
//! random JSON shapes and hostile values all get an answer.

use domain::{forms, tenant::FormConfig};
use form_intake::request::FormRequest;
use serde_json::{Map, Value, json};

fn random_value(rng: &mut fastrand::Rng, depth: u32) -> Value {
    match rng.u8(0..if depth > 2 { 4 } else { 6 }) {
        0 => Value::Null,
        1 => Value::Bool(rng.bool()),
        2 => json!(rng.i64(..)),
        3 => Value::String((0..rng.usize(0..40)).map(|_| rng.char(..)).collect()),
        4 => Value::Array((0..rng.usize(0..4)).map(|_| random_value(rng, depth + 1)).collect()),
        _ => Value::Object(
            (0..rng.usize(0..4)).map(|i| (format!("k{i}"), random_value(rng, depth + 1))).collect(),
        ),
    }
}

#[test]
fn random_bytes_and_json_never_panic_the_form_parser() {
    let mut rng = fastrand::Rng::with_seed(7);
    for _ in 0..2_000 {
        let bytes: Vec<u8> = (0..rng.usize(0..200)).map(|_| rng.u8(..)).collect();
        let _ = FormRequest::parse(&bytes);
        let mut body =
            json!({"tenant_hash": "h", "action": if rng.bool() { "submit_form" } else { "validate_field" }});
        for key in ["form_id", "field_id", "field_value", "form_data", "client_submission_id", "form_mode"] {
            if rng.bool() {
                body[key] = random_value(&mut rng, 0);
            }
        }
        let _ = FormRequest::parse(body.to_string().as_bytes());
        let _ = form_intake::is_form_mode(body.to_string().as_bytes());
    }
}

#[test]
fn a_form_with_an_invalid_pattern_does_not_load_at_all() {
    let broken = json!({"fields": [{"id": "p", "validation": {"pattern": "([unclosed"}}]});
    let err = serde_json::from_value::<FormConfig>(broken).map(|_| ()).unwrap_err();
    assert!(err.to_string().contains("is not a valid regular expression"), "{err}");
}

#[test]
fn hostile_values_never_panic_the_validator() {
    let form: FormConfig = serde_json::from_value(json!({
        "fields": [
            {"id": "email", "type": "email"}, {"id": "phone", "type": "phone"}, {"id": "n", "type": "number"},
            {"id": "d", "type": "date"}, {"id": "s", "type": "select", "options": ["a", {"value": 1, "label": "One"}]},
            {"id": "p", "validation": {"pattern": "^[a-z]+$", "message": "lower-case letters only"}},
            {"id": "m", "validation": "min:abc"}, {"id": "z", "validation": "zipcode", "required": false},
            {"id": "c", "type": "checkbox"}, {"id": "name", "type": "name", "subfields": [{"id": "name.first"}]},
            {"id": "cond", "conditional": {"show_when": "s", "equals": null}}
        ],
        "qualification_gates": [{"field": "gate"}]
    }))
    .unwrap();
    let mut rng = fastrand::Rng::with_seed(11);
    for _ in 0..2_000 {
        let mut data = Map::new();
        for key in
            ["email", "phone", "n", "d", "s", "p", "m", "z", "c", "name.first", "cond", "gate", "urgency"]
        {
            if rng.bool() {
                data.insert(key.to_owned(), random_value(&mut rng, 0));
            }
        }
        let _ = forms::validate_submission(&form, &data);
        let _ = forms::priority(&form, &data);
        for field in ["email", "p", "m", "unknown", "age_confirm"] {
            let _ = forms::validate_field(Some(&form), field, &random_value(&mut rng, 0));
            let _ = forms::validate_field(None, field, &random_value(&mut rng, 0));
        }
    }
}
