//! The emails of a submission: `{{field}}` templates, every submitted value
//! HTML-escaped in the HTML part, subjects on one line.

use shared::{
    fill::{fill, one_line},
    fulfillment::StoredSubmission,
    mail::Email,
    tenant::FormConfig,
};

/// `<`, `>`, `&`, `"` and `'` as entities.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A field's label, for the value table.
fn label_of<'a>(form: &'a FormConfig, key: &'a str) -> &'a str {
    form.fields
        .iter()
        .flat_map(|f| std::iter::once(f).chain(f.subfields.iter()))
        .find(|f| f.key() == Some(key))
        .and_then(|f| f.label.as_deref())
        .unwrap_or(key)
}

/// The team's notification: the priority, then every submitted value.
pub fn team_email(
    to: Vec<String>,
    form: &FormConfig,
    submission: &StoredSubmission,
    subject: Option<&str>,
    body: Option<&str>,
) -> Email {
    let title = form.title.as_deref().unwrap_or(&submission.form_id);
    let values = &submission.form_data;
    let subject = match subject {
        Some(template) => fill(template, values, str::to_owned),
        None => format!("New {title} ({} priority)", submission.priority),
    };
    let intro_text = body
        .map(|t| fill(t, values, str::to_owned))
        .unwrap_or_else(|| format!("A new {title} was submitted."));
    let intro_html = body.map(|t| fill(t, values, escape_html)).unwrap_or_else(|| escape_html(&intro_text));
    let mut text = format!(
        "{intro_text}\n\nPriority: {}\nSubmission: {}\n\n",
        submission.priority, submission.submission_id
    );
    let mut rows = String::new();
    for (key, value) in values {
        let label = label_of(form, key);
        text.push_str(&format!("{label}: {value}\n"));
        rows.push_str(&format!(
            "<tr><th align=\"left\">{}</th><td>{}</td></tr>",
            escape_html(label),
            escape_html(value)
        ));
    }
    let html = format!(
        "<p>{}</p><p><strong>Priority: {}</strong><br>Submission: {}</p><table>{rows}</table>",
        intro_html.replace('\n', "<br>"),
        escape_html(submission.priority.as_str()),
        escape_html(&submission.submission_id),
    );
    Email { to, subject: one_line(&subject), text, html }
}

/// The applicant's confirmation.
pub fn confirmation_email(
    to: String,
    form: &FormConfig,
    submission: &StoredSubmission,
    subject: Option<&str>,
    body: Option<&str>,
) -> Email {
    let title = form.title.as_deref().unwrap_or("application");
    let values = &submission.form_data;
    let subject = subject
        .map(|t| fill(t, values, str::to_owned))
        .unwrap_or_else(|| format!("We received your {title}"));
    let text = body
        .map(|t| fill(t, values, str::to_owned))
        .unwrap_or_else(|| format!("Thank you! We received your {title} and will be in touch soon."));
    let html = format!(
        "<p>{}</p>",
        body.map(|t| fill(t, values, escape_html))
            .unwrap_or_else(|| escape_html(&text))
            .replace('\n', "<br>")
    );
    Email { to: vec![to], subject: one_line(&subject), text, html }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn values_are_escaped_in_html_and_kept_in_text() {
        let values = BTreeMap::from([("name".to_owned(), "<script>alert(1)</script>".to_owned())]);
        assert_eq!(fill("Hi {{name}}!", &values, escape_html), "Hi &lt;script&gt;alert(1)&lt;/script&gt;!");
        assert_eq!(
            fill("Hi {{ name }} {{missing}}", &values, str::to_owned),
            "Hi <script>alert(1)</script> "
        );
    }
}
