//! Field validation, driven by the form's field config; the legacy rules by
//! field id apply when the tenant has no config for the form.

use std::{collections::HashSet, sync::LazyLock};

use regex::Regex;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::MAX_FIELD_CHARS;
use crate::tenant::{FieldConfig, FieldType, FormConfig, Validation};

const REQUIRED: &str = "This field is required";
const INVALID_EMAIL: &str = "Please enter a valid email address";
const INVALID_PHONE: &str = "Please enter a valid phone number";
const CONTROL_CHARACTERS: &str = "Please remove line breaks and other control characters";
const NOT_ELIGIBLE: &str = "Unfortunately this answer means you are not eligible for this program";

static EMAIL: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[^\s@]+@[^\s@]+\.[^\s@]+$").expect("constant pattern compiles"));
static PHONE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[\d\s\-()+]+$").expect("constant pattern compiles"));
static NAME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[\p{L}][\p{L}\s'.\-]*$").expect("constant pattern compiles"));
static ZIPCODE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^\d{5}(-\d{4})?$").expect("constant pattern compiles"));
static DATE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^\d{4}-\d{2}-\d{2}$").expect("constant pattern compiles"));

/// One field's errors, as the widget shows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldErrors {
    pub field: String,
    pub errors: Vec<String>,
}

/// A submission that passed validation: only the fields the form defines,
/// as trimmed text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatedForm {
    pub data: Map<String, Value>,
}

/// A form value as text: strings trimmed (with `\r\n` line ends made `\n`),
/// numbers and booleans spelled out, lists joined with ", ".
pub fn value_text(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.trim().replace("\r\n", "\n"),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Array(items) => {
            items.iter().map(value_text).filter(|s| !s.is_empty()).collect::<Vec<_>>().join(", ")
        }
        Value::Object(_) => value.to_string(),
    }
}

/// Validates one field as the visitor types it. `form` is the tenant's form,
/// when it has one; otherwise (or for a field the form does not know) the
/// legacy rules by field id apply.
pub fn validate_field(form: Option<&FormConfig>, field_id: &str, value: &Value) -> Result<(), Vec<String>> {
    let text = value_text(value);
    if let Some(form) = form {
        if let Some(field) = find_field(&form.fields, field_id) {
            return to_result(field_errors(field, &text));
        }
        if let Some(gate) = form.qualification_gates.iter().find(|g| g.field == field_id) {
            return to_result(gate_errors(&text, gate.failure_response.as_deref()));
        }
    }
    to_result(legacy_errors(field_id, &text))
}

/// Validates a whole submission: every error at once, unknown fields dropped.
pub fn validate_submission(
    form: &FormConfig,
    data: &Map<String, Value>,
) -> Result<ValidatedForm, Vec<FieldErrors>> {
    let mut errors = Vec::new();
    let mut clean = Map::new();
    let text_of = |key: &str| data.get(key).map(value_text).unwrap_or_default();
    let mut check = |key: &str, field_errors: Vec<String>, keep: bool| {
        if !field_errors.is_empty() {
            errors.push(FieldErrors { field: key.to_owned(), errors: field_errors });
        } else if keep && !text_of(key).is_empty() {
            clean.insert(key.to_owned(), Value::String(text_of(key)));
        }
    };
    for field in &form.fields {
        let Some(key) = field.key() else { continue };
        if !is_shown(field, data) {
            continue;
        }
        if field.subfields.is_empty() {
            check(key, field_errors(field, &text_of(key)), true);
        } else {
            for sub in &field.subfields {
                let Some(sub_key) = sub.key() else { continue };
                // An optional composite (an address nobody must give) makes its parts optional too.
                let required = sub.required && field.required;
                check(sub_key, field_errors_with(sub, &text_of(sub_key), required), true);
            }
        }
    }
    let field_keys: HashSet<&str> = all_keys(&form.fields).collect();
    for gate in form.qualification_gates.iter().filter(|g| !field_keys.contains(g.field.as_str())) {
        check(&gate.field, gate_errors(&text_of(&gate.field), gate.failure_response.as_deref()), true);
    }
    if errors.is_empty() { Ok(ValidatedForm { data: clean }) } else { Err(errors) }
}

/// The widget nests a composite field's answers under the field's id
/// (`{"field_1": {"field_1.first_name": "Ann"}}`); older clients send them flat
/// (`{"field_1.first_name": "Ann"}`). Both become flat subfield keys, the one
/// shape validation, storage and templates read. A nested answer may name its
/// subfield by its full id or by its role (`first_name`); a flat answer already
/// present is kept, and nested keys the form does not define are dropped.
pub fn flatten_composites(form: &FormConfig, mut data: Map<String, Value>) -> Map<String, Value> {
    for field in form.fields.iter().filter(|f| !f.subfields.is_empty()) {
        let Some(key) = field.key() else { continue };
        if !data.get(key).is_some_and(Value::is_object) {
            continue;
        }
        let Some(Value::Object(nested)) = data.remove(key) else { continue };
        for (inner, value) in nested {
            let sub_key = field.subfields.iter().filter_map(FieldConfig::key).find(|sub| {
                *sub == inner
                    || sub.strip_prefix(key).and_then(|r| r.strip_prefix('.')) == Some(inner.as_str())
            });
            if let Some(sub_key) = sub_key {
                data.entry(sub_key.to_owned()).or_insert(value);
            }
        }
    }
    data
}

/// Whether `text` reads as an email address (the widget's own rule).
pub(super) fn is_email(text: &str) -> bool {
    EMAIL.is_match(text)
}

fn to_result(errors: Vec<String>) -> Result<(), Vec<String>> {
    if errors.is_empty() { Ok(()) } else { Err(errors) }
}

/// Every `form_data` key a form defines: fields, their subfields.
fn all_keys(fields: &[FieldConfig]) -> impl Iterator<Item = &str> {
    fields.iter().flat_map(|f| f.key().into_iter().chain(f.subfields.iter().filter_map(FieldConfig::key)))
}

fn find_field<'a>(fields: &'a [FieldConfig], key: &str) -> Option<&'a FieldConfig> {
    fields.iter().find_map(|field| {
        if field.key() == Some(key) {
            Some(field)
        } else {
            field.subfields.iter().find(|sub| sub.key() == Some(key))
        }
    })
}

/// `conditional.{show_when, equals}`: the field exists only while the other
/// field has that value.
fn is_shown(field: &FieldConfig, data: &Map<String, Value>) -> bool {
    let Some(condition) = &field.conditional else { return true };
    let Some(other) = condition.show_when.as_deref() else { return true };
    let actual = data.get(other).map(value_text).unwrap_or_default();
    match &condition.equals {
        None => !actual.is_empty(),
        Some(expected) => value_text(expected).eq_ignore_ascii_case(&actual),
    }
}

fn field_errors(field: &FieldConfig, text: &str) -> Vec<String> {
    field_errors_with(field, text, field.required)
}

fn field_errors_with(field: &FieldConfig, text: &str, required: bool) -> Vec<String> {
    if text.is_empty() {
        return if required { vec![REQUIRED.to_owned()] } else { Vec::new() };
    }
    let mut errors = Vec::new();
    if text.chars().count() > MAX_FIELD_CHARS {
        errors.push(format!("Please keep this under {MAX_FIELD_CHARS} characters"));
        return errors;
    }
    // Control characters end up in emails, SMS and downstream systems; only
    // a tab, and a line break where the field is meant to hold several lines.
    let multiline = field.field_type == FieldType::Textarea;
    if text.chars().any(|c| c.is_control() && c != '\t' && !(multiline && c == '\n')) {
        errors.push(CONTROL_CHARACTERS.to_owned());
        return errors;
    }
    match &field.field_type {
        FieldType::Email if !EMAIL.is_match(text) => errors.push(INVALID_EMAIL.to_owned()),
        FieldType::Phone if !is_phone(text) => errors.push(INVALID_PHONE.to_owned()),
        FieldType::Number if text.parse::<f64>().is_err() => errors.push("Please enter a number".to_owned()),
        FieldType::Date if !DATE.is_match(text) => {
            errors.push("Please enter a date as YYYY-MM-DD".to_owned())
        }
        FieldType::Select if !field.options.is_empty() && !is_option(field, text) => {
            errors.push("Please choose one of the options".to_owned());
        }
        FieldType::Checkbox if required && !is_yes(text) => {
            errors.push("Please check this box to continue".to_owned())
        }
        _ => {}
    }
    let (min, max) = length_bounds(field);
    let length = text.chars().count();
    if let Some(min) = min.filter(|min| length < *min) {
        errors.push(format!("Please enter at least {min} characters"));
    }
    if let Some(max) = max.filter(|max| length > *max) {
        errors.push(format!("Please enter at most {max} characters"));
    }
    match &field.validation {
        Some(Validation::Rules(rules))
            if rules.pattern.as_ref().is_some_and(|pattern| !pattern.is_match(text)) =>
        {
            errors.push(rules.message.clone().unwrap_or_else(|| "Please enter a valid value".to_owned()));
        }
        Some(Validation::Rules(_)) => {}
        Some(Validation::Shorthand(rule)) => errors.extend(shorthand_errors(rule, text)),
        None => {}
    }
    if field.eligibility_gate && is_no(text) {
        errors.push(field.failure_message.clone().unwrap_or_else(|| NOT_ELIGIBLE.to_owned()));
    }
    errors
}

fn length_bounds(field: &FieldConfig) -> (Option<usize>, Option<usize>) {
    let rules = match &field.validation {
        Some(Validation::Rules(rules)) => Some(rules),
        _ => None,
    };
    (
        rules.and_then(|r| r.min_length).or(field.min_length),
        rules.and_then(|r| r.max_length).or(field.max_length),
    )
}

/// `email`, `phone`, `name`, `zipcode`, `min:N`, `max:N`; unknown ones are ignored.
fn shorthand_errors(rule: &str, text: &str) -> Option<String> {
    let rule = rule.trim().to_ascii_lowercase();
    let number = || text.trim_start_matches('$').replace(',', "").parse::<f64>().ok();
    match rule.split_once(':') {
        Some(("min", bound)) => {
            let bound: f64 = bound.trim().parse().ok()?;
            (number().is_none_or(|n| n < bound)).then(|| format!("Please enter at least {bound}"))
        }
        Some(("max", bound)) => {
            let bound: f64 = bound.trim().parse().ok()?;
            (number().is_none_or(|n| n > bound)).then(|| format!("Please enter at most {bound}"))
        }
        _ => match rule.as_str() {
            "email" => (!EMAIL.is_match(text)).then(|| INVALID_EMAIL.to_owned()),
            "phone" => (!is_phone(text)).then(|| INVALID_PHONE.to_owned()),
            "name" => (!NAME.is_match(text)).then(|| "Please enter a name using letters".to_owned()),
            "zipcode" | "zip" => {
                (!ZIPCODE.is_match(text)).then(|| "Please enter a valid ZIP code".to_owned())
            }
            _ => None,
        },
    }
}

/// Digits, spaces and `-()+`, with at least seven digits.
fn is_phone(text: &str) -> bool {
    PHONE.is_match(text) && text.chars().filter(char::is_ascii_digit).count() >= 7
}

/// The value is one of the options, by value or by label.
fn is_option(field: &FieldConfig, text: &str) -> bool {
    field.options.iter().any(|option| {
        option.value.eq_ignore_ascii_case(text)
            || option.label.as_deref().is_some_and(|l| l.eq_ignore_ascii_case(text))
    })
}

fn is_yes(text: &str) -> bool {
    matches!(text.to_ascii_lowercase().as_str(), "true" | "yes" | "y" | "on" | "1" | "checked")
}

fn is_no(text: &str) -> bool {
    matches!(text.to_ascii_lowercase().as_str(), "false" | "no" | "n" | "off" | "0")
}

fn gate_errors(text: &str, failure: Option<&str>) -> Vec<String> {
    if text.is_empty() {
        vec![REQUIRED.to_owned()]
    } else if is_no(text) {
        vec![failure.unwrap_or(NOT_ELIGIBLE).to_owned()]
    } else {
        Vec::new()
    }
}

/// The rules of the system we replace, by field id, for forms without config.
fn legacy_errors(field_id: &str, text: &str) -> Vec<String> {
    if text.is_empty() {
        return vec![REQUIRED.to_owned()];
    }
    let error = match field_id {
        "email" if !EMAIL.is_match(text) => Some(INVALID_EMAIL),
        "phone" if !PHONE.is_match(text) => Some(INVALID_PHONE),
        "age_confirm" if text.eq_ignore_ascii_case("no") => {
            Some("You must be at least 22 years old to volunteer")
        }
        "commitment_confirm" if text.eq_ignore_ascii_case("no") => {
            Some("A one year commitment is required for this program")
        }
        _ => None,
    };
    error.map(|e| vec![e.to_owned()]).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn legacy(field: &str, value: &str) -> Result<(), Vec<String>> {
        validate_field(None, field, &json!(value))
    }

    #[test]
    fn legacy_required_fields_refuse_empty_and_whitespace() {
        assert_eq!(legacy("first_name", ""), Err(vec![REQUIRED.to_owned()]));
        assert_eq!(legacy("first_name", "   "), Err(vec![REQUIRED.to_owned()]));
        assert_eq!(legacy("first_name", "Ana"), Ok(()));
    }

    #[test]
    fn legacy_email_rule() {
        for bad in ["test@", "@example.com", "a b@c.d"] {
            assert_eq!(legacy("email", bad), Err(vec![INVALID_EMAIL.to_owned()]), "{bad}");
        }
        assert_eq!(legacy("email", "first.last+tag@example.co.uk"), Ok(()));
    }

    #[test]
    fn legacy_phone_rule() {
        for bad in ["abc", "555-CALL"] {
            assert_eq!(legacy("phone", bad), Err(vec![INVALID_PHONE.to_owned()]), "{bad}");
        }
        assert_eq!(legacy("phone", "+1 (555) 123-4567"), Ok(()));
    }

    #[test]
    fn legacy_age_and_commitment_confirmations() {
        assert_eq!(
            legacy("age_confirm", "no"),
            Err(vec!["You must be at least 22 years old to volunteer".to_owned()])
        );
        assert_eq!(legacy("age_confirm", "yes"), Ok(()));
        assert_eq!(
            legacy("commitment_confirm", "no"),
            Err(vec!["A one year commitment is required for this program".to_owned()])
        );
        assert_eq!(legacy("commitment_confirm", "yes"), Ok(()));
    }

    fn form(fields: Value) -> FormConfig {
        serde_json::from_value(json!({"fields": fields})).unwrap()
    }

    #[test]
    fn control_characters_are_refused_except_tab_and_a_textareas_line_breaks() {
        let form = form(json!([{"id": "name"}, {"id": "bio", "type": "textarea"}]));
        let check = |field: &str, value: &str| validate_field(Some(&form), field, &json!(value));
        assert_eq!(check("name", "Ana\u{0}Lopez"), Err(vec![CONTROL_CHARACTERS.to_owned()]));
        assert_eq!(check("name", "Ana\nBcc: x@y.org"), Err(vec![CONTROL_CHARACTERS.to_owned()]));
        assert_eq!(check("name", "Ana\rLopez"), Err(vec![CONTROL_CHARACTERS.to_owned()]));
        assert_eq!(check("name", "Ana\tLopez"), Ok(()));
        assert_eq!(check("bio", "line one\r\nline two\n"), Ok(()), "CRLF is a line break");
        assert_eq!(check("bio", "bell\u{7}"), Err(vec![CONTROL_CHARACTERS.to_owned()]));
        assert_eq!(value_text(&json!("a\r\nb")), "a\nb", "no stray CR is stored");
    }

    #[test]
    fn configured_rules_pattern_options_lengths_and_gate() {
        let form = form(json!([
            {"id": "zip", "validation": {"pattern": "^\\d{5}$", "message": "5 digits please"}},
            {"id": "size", "type": "select", "options": ["S", {"value": "m", "label": "Medium"}]},
            {"id": "bio", "type": "textarea", "validation": {"min_length": 5, "max_length": 10}},
            {"id": "adult", "type": "select", "options": ["yes", "no"], "eligibility_gate": true, "failure_message": "18+ only"}
        ]));
        let check = |field: &str, value: &str| validate_field(Some(&form), field, &json!(value));
        assert_eq!(check("zip", "1234"), Err(vec!["5 digits please".to_owned()]));
        assert_eq!(check("zip", "12345"), Ok(()));
        assert_eq!(check("size", "XL"), Err(vec!["Please choose one of the options".to_owned()]));
        assert_eq!(check("size", "Medium"), Ok(()));
        assert_eq!(check("bio", "abc"), Err(vec!["Please enter at least 5 characters".to_owned()]));
        assert_eq!(check("bio", "abcdefghijkl"), Err(vec!["Please enter at most 10 characters".to_owned()]));
        assert_eq!(check("adult", "no"), Err(vec!["18+ only".to_owned()]));
        assert_eq!(check("adult", "yes"), Ok(()));
    }

    #[test]
    fn a_submission_reports_every_failing_field_and_drops_unknown_ones() {
        let form = form(json!([
            {"id": "email", "type": "email"},
            {"id": "phone", "type": "phone"},
            {"id": "note", "required": false}
        ]));
        let data = json!({"email": "nope", "phone": "", "extra": "dropped"}).as_object().unwrap().clone();
        let errors = validate_submission(&form, &data).unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["email", "phone"]);

        let data =
            json!({"email": " a@b.org ", "phone": "503 555 0142", "extra": "x"}).as_object().unwrap().clone();
        let clean = validate_submission(&form, &data).unwrap();
        assert_eq!(Value::Object(clean.data), json!({"email": "a@b.org", "phone": "503 555 0142"}));
    }

    #[test]
    fn composite_fields_validate_their_subfields_and_conditionals_apply_only_when_shown() {
        let form = form(json!([
            {"id": "name", "type": "name", "subfields": [
                {"id": "name.first", "required": true}, {"id": "name.middle", "required": false}]},
            {"id": "amount", "type": "select", "options": ["$25", "Other"]},
            {"id": "custom", "type": "currency", "validation": "min:10", "conditional": {"show_when": "amount", "equals": "Other"}}
        ]));
        let data = |v: Value| v.as_object().unwrap().clone();
        let errors =
            validate_submission(&form, &data(json!({"amount": "Other", "custom": "5"}))).unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["name.first", "custom"]);
        assert!(validate_submission(&form, &data(json!({"name.first": "Ana", "amount": "$25"}))).is_ok());
    }

    #[test]
    fn composite_answers_nested_under_the_field_id_validate_like_flat_ones() {
        let form = form(json!([
            {"id": "field_1", "type": "name", "subfields": [
                {"id": "field_1.first_name", "required": true}, {"id": "field_1.last_name", "required": true}]},
            {"id": "field_2", "type": "email"}
        ]));
        let nested = json!({
            "field_1": {"field_1.first_name": "Ann", "last_name": "Lee", "field_1.nickname": "x"},
            "field_2": "ann@example.org"
        });
        let flat = flatten_composites(&form, nested.as_object().unwrap().clone());
        let clean = validate_submission(&form, &flat).unwrap();
        assert_eq!(
            Value::Object(clean.data),
            json!({"field_1.first_name": "Ann", "field_1.last_name": "Lee", "field_2": "ann@example.org"})
        );

        let missing_last = json!({"field_1": {"field_1.first_name": "Ann"}, "field_2": "ann@example.org"});
        let errors =
            validate_submission(&form, &flatten_composites(&form, missing_last.as_object().unwrap().clone()))
                .unwrap_err();
        assert_eq!(
            errors,
            [FieldErrors { field: "field_1.last_name".into(), errors: vec![REQUIRED.into()] }]
        );
    }

    #[test]
    fn qualification_gates_are_eligibility_gates() {
        let form: FormConfig = serde_json::from_value(json!({
            "qualification_gates": [{"field": "age_check", "failure_response": "Must be 22+"}],
            "fields": [{"name": "first_name"}]
        }))
        .unwrap();
        let data = json!({"first_name": "Ana", "age_check": "no"}).as_object().unwrap().clone();
        assert_eq!(
            validate_submission(&form, &data).unwrap_err(),
            [FieldErrors { field: "age_check".into(), errors: vec!["Must be 22+".into()] }]
        );
        assert_eq!(validate_field(Some(&form), "age_check", &json!("yes")), Ok(()));
    }
}
