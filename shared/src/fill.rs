//! Message templates: `{{field}}` filled from a submission's values, and
//! text flattened to one line for headers and SMS.

use std::collections::BTreeMap;

/// A header value on one line: CR, LF and other control characters become spaces.
pub fn one_line(text: &str) -> String {
    let flat: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    flat.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Replaces `{{field}}` with the submitted value (through `escape`), and
/// unknown fields with nothing.
pub fn fill(template: &str, values: &BTreeMap<String, String>, escape: impl Fn(&str) -> String) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            out.push_str(&rest[start..]);
            return out;
        };
        let key = after[..end].trim();
        out.push_str(&escape(values.get(key).map(String::as_str).unwrap_or_default()));
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_lose_line_breaks() {
        assert_eq!(one_line("New\r\nBcc: evil@example.org"), "New Bcc: evil@example.org");
    }

    #[test]
    fn an_unclosed_placeholder_is_kept_as_written() {
        let values = BTreeMap::from([("a".to_owned(), "x".to_owned())]);
        assert_eq!(fill("{{a}} and {{b", &values, str::to_owned), "x and {{b");
    }
}
