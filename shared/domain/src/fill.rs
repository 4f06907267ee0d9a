//! Message templates as tenants write them: `{first_name}`,
//! `{organization_name}`, `{form_data}`, ... (the named values of a
//! submission), and `{{field}}` (a submitted value by its key); text
//! flattened to one line for headers and SMS.

use std::collections::BTreeMap;

use crate::{
    fulfillment::StoredSubmission,
    tenant::{FormConfig, Tenant},
};

/// A header value on one line: CR, LF and other control characters become spaces.
pub fn one_line(text: &str) -> String {
    let flat: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    flat.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The single-brace placeholders a template may use. Any other `{word}` is
/// kept as written.
pub const NAMED: [&str; 10] = [
    "first_name",
    "last_name",
    "full_name",
    "email",
    "phone",
    "organization_name",
    "form_title",
    "form_type",
    "form_data",
    "submission_id",
];

/// What a template can name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TemplateValues {
    /// `{{key}}`: the submitted values by their `form_data` key.
    pub fields: BTreeMap<String, String>,
    /// `{name}`: one of [`NAMED`].
    pub named: BTreeMap<&'static str, String>,
}

impl TemplateValues {
    /// A stored submission's values: the applicant's contact, the tenant's
    /// name (`chat_title`, else its id), the form's title and type, every
    /// submitted value as a `Label: value` line, and the submission id.
    pub fn of(tenant: &Tenant, form: &FormConfig, submission: &StoredSubmission) -> Self {
        let contact = &submission.contact;
        let text = |value: &Option<String>| value.clone().unwrap_or_default();
        let organization = tenant.config.chat_title.clone().filter(|t| !t.trim().is_empty());
        let form_data = labelled_values(form, &submission.form_data)
            .map(|(label, value)| format!("{label}: {value}"))
            .collect::<Vec<_>>()
            .join("\n");
        let named = BTreeMap::from([
            ("first_name", text(&contact.first_name)),
            ("last_name", text(&contact.last_name)),
            ("full_name", text(&contact.full_name)),
            ("email", text(&contact.email)),
            ("phone", text(&contact.phone)),
            ("organization_name", organization.unwrap_or_else(|| tenant.id.clone())),
            ("form_title", form.title.clone().unwrap_or_else(|| submission.form_id.clone())),
            ("form_type", submission.form_id.clone()),
            ("form_data", form_data),
            ("submission_id", submission.submission_id.clone()),
        ]);
        Self { fields: submission.form_data.clone(), named }
    }
}

/// Each submitted value with its field's label (the key when the form has no
/// label for it), a chosen option shown by its label, in the form's field
/// order, then any other stored key.
pub fn labelled_values<'a>(
    form: &'a FormConfig,
    values: &'a BTreeMap<String, String>,
) -> impl Iterator<Item = (&'a str, &'a str)> {
    let fields: Vec<_> =
        form.fields.iter().flat_map(|f| std::iter::once(f).chain(f.subfields.iter())).collect();
    let in_form = fields.clone().into_iter().filter_map(|field| {
        let key = field.key()?;
        let value = values.get(key)?;
        let shown = field
            .options
            .iter()
            .find(|option| option.value == *value)
            .and_then(|option| option.label.as_deref())
            .unwrap_or(value);
        Some((field.label.as_deref().unwrap_or(key), shown))
    });
    let others = values
        .iter()
        .filter(move |(key, _)| !fields.iter().any(|f| f.key() == Some(key.as_str())))
        .map(|(key, value)| (key.as_str(), value.as_str()));
    in_form.chain(others)
}

/// The template with every placeholder replaced by its value (through
/// `escape`): `{{key}}` by the submitted value (an unknown key by nothing),
/// `{name}` by the named value (any other `{word}` kept as written). A value
/// that is empty leaves no dangling space or punctuation: "Hi {first_name},"
/// reads "Hi," and "Thanks, {first_name}!" reads "Thanks!".
pub fn fill(template: &str, values: &TemplateValues, escape: impl Fn(&str) -> String) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let after = &rest[start..];
        let (value, used) = if let Some(inner) = after.strip_prefix("{{") {
            match inner.find("}}") {
                Some(end) => {
                    let key = inner[..end].trim();
                    (values.fields.get(key).map(String::as_str).unwrap_or_default(), end + 4)
                }
                None => {
                    out.push_str(after);
                    return out;
                }
            }
        } else {
            let name = after[1..].find('}').map(|end| &after[1..1 + end]);
            match name.and_then(|name| values.named.get_key_value(name)) {
                Some((name, value)) => (value.as_str(), name.len() + 2),
                None => {
                    out.push('{');
                    rest = &after[1..];
                    continue;
                }
            }
        };
        rest = &after[used..];
        if value.trim().is_empty() {
            rest = close_gap(&mut out, rest);
        } else {
            out.push_str(&escape(value));
        }
    }
    out.push_str(rest);
    out
}

/// Where an empty value was: no space before the gap, no punctuation doubled
/// across it, and no punctuation left at the start of a line.
fn close_gap<'a>(out: &mut String, rest: &'a str) -> &'a str {
    let trimmed = out.trim_end_matches([' ', '\t']).len();
    out.truncate(trimmed);
    let starts_line = out.is_empty() || out.ends_with('\n') || out.ends_with('(');
    let next = rest.chars().next();
    let next_is_punctuation = next.is_some_and(|c| matches!(c, ',' | '.' | '!' | '?' | ';' | ':'));
    if starts_line {
        let rest = rest.trim_start_matches([' ', '\t']);
        let rest = rest.strip_prefix([',', ';', ':']).unwrap_or(rest);
        return rest.trim_start_matches([' ', '\t']);
    }
    if next_is_punctuation && out.ends_with([',', ';', ':']) {
        out.pop();
    }
    rest
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(fields: &[(&str, &str)], named: &[(&'static str, &str)]) -> TemplateValues {
        TemplateValues {
            fields: fields.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
            named: named.iter().map(|(k, v)| (*k, (*v).to_owned())).collect(),
        }
    }

    #[test]
    fn subjects_lose_line_breaks() {
        assert_eq!(one_line("New\r\nBcc: evil@example.org"), "New Bcc: evil@example.org");
    }

    #[test]
    fn an_unclosed_placeholder_is_kept_as_written() {
        let values = values(&[("a", "x")], &[]);
        assert_eq!(fill("{{a}} and {{b", &values, str::to_owned), "x and {{b");
    }

    #[test]
    fn named_placeholders_are_filled_and_unknown_ones_stay_as_written() {
        let values = values(
            &[("field_2", "ann@example.org")],
            &[("first_name", "Ann"), ("organization_name", "BrightPath")],
        );
        assert_eq!(
            fill(
                "Hi {first_name}, {organization_name} got it ({{field_2}}); {unknown} {",
                &values,
                str::to_owned
            ),
            "Hi Ann, BrightPath got it (ann@example.org); {unknown} {"
        );
    }

    #[test]
    fn an_empty_value_leaves_no_dangling_space_or_punctuation() {
        let values = values(&[], &[("first_name", ""), ("last_name", "Lee")]);
        let fill = |t: &str| fill(t, &values, str::to_owned);
        assert_eq!(fill("Hi {first_name}, thanks!"), "Hi, thanks!");
        assert_eq!(fill("Thanks, {first_name}!"), "Thanks!");
        assert_eq!(fill("Dear {first_name} {last_name},"), "Dear Lee,");
        assert_eq!(fill("{first_name}, welcome.\n{first_name}: hello"), "welcome.\nhello");
        assert_eq!(fill("Hi {{missing}}."), "Hi.");
    }

    #[test]
    fn a_chosen_option_is_shown_by_its_label() {
        let form: FormConfig = serde_json::from_value(serde_json::json!({"fields": [
            {"id": "field_4", "label": "Language", "type": "select",
             "options": [{"value": "spanish", "label": "Spanish"}, "English"]}
        ]}))
        .unwrap();
        let values = BTreeMap::from([("field_4".to_owned(), "spanish".to_owned())]);
        assert_eq!(labelled_values(&form, &values).collect::<Vec<_>>(), [("Language", "Spanish")]);
        let plain = BTreeMap::from([("field_4".to_owned(), "English".to_owned())]);
        assert_eq!(labelled_values(&form, &plain).collect::<Vec<_>>(), [("Language", "English")]);
    }

    #[test]
    fn values_go_through_the_escape_and_the_template_does_not() {
        let values = values(&[("name", "<b>")], &[("first_name", "<i>")]);
        let escape = |v: &str| v.replace('<', "&lt;").replace('>', "&gt;");
        assert_eq!(fill("<p>{first_name} {{name}}</p>", &values, escape), "<p>&lt;i&gt; &lt;b&gt;</p>");
    }
}
