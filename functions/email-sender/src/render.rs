//! The emails of a submission: `{{field}}` templates, every submitted value
//! HTML-escaped in the HTML part, subjects on one line.

use domain::{
    fill::{TemplateValues, fill, labelled_values, one_line},
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

/// The team's notification: the priority, then every submitted value by its label.
pub fn team_email(
    to: Vec<String>,
    form: &FormConfig,
    submission: &StoredSubmission,
    values: &TemplateValues,
    subject: Option<&str>,
    body: Option<&str>,
) -> Email {
    let title = form.title.as_deref().unwrap_or(&submission.form_id);
    let subject = match subject {
        Some(template) => fill(template, values, str::to_owned),
        None => match submission.contact.full_name.as_deref() {
            Some(name) => format!("New {title} from {name} ({} priority)", submission.priority),
            None => format!("New {title} ({} priority)", submission.priority),
        },
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
    for (label, value) in labelled_values(form, &submission.form_data) {
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

/// The applicant's confirmation; a missing subject or body gets a default
/// that greets the applicant by name when the form gave one.
pub fn confirmation_email(
    to: String,
    values: &TemplateValues,
    subject: Option<&str>,
    body: Option<&str>,
) -> Email {
    const SUBJECT: &str = "We received your {form_title}";
    const BODY: &str = "Hi {first_name},\n\nThank you! {organization_name} received your {form_title} and will be in touch soon.";
    let subject = fill(subject.filter(|s| !s.trim().is_empty()).unwrap_or(SUBJECT), values, str::to_owned);
    let body = body.filter(|b| !b.trim().is_empty()).unwrap_or(BODY);
    let text = fill(body, values, str::to_owned);
    let html = format!("<p>{}</p>", fill(body, values, escape_html).replace('\n', "<br>"));
    Email { to: vec![to], subject: one_line(&subject), text, html }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_escaped_in_html_and_kept_in_text() {
        let values = TemplateValues {
            fields: [("name".to_owned(), "<script>alert(1)</script>".to_owned())].into(),
            ..Default::default()
        };
        assert_eq!(fill("Hi {{name}}!", &values, escape_html), "Hi &lt;script&gt;alert(1)&lt;/script&gt;!");
        assert_eq!(fill("Hi {{ name }} {{missing}}", &values, str::to_owned), "Hi <script>alert(1)</script>");
    }
}
