//! Masking of personal data before it reaches a log line.

use std::sync::LazyLock;

use regex::{Captures, Regex};

static EMAIL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b([a-z0-9._%+\-])[a-z0-9._%+\-]*@([a-z0-9.\-]+\.[a-z]{2,})\b")
        .expect("constant pattern compiles (covered by the unit tests)")
});

// A run of 7+ digits, optionally with a leading + and the usual separators.
static PHONE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\+?\(?\d[\d\s().\-]{5,}\d").expect("constant pattern compiles (covered by the unit tests)")
});

/// `jane.doe@example.org` → `j***@example.org`.
pub fn mask_email(email: &str) -> String {
    match email.trim().split_once('@') {
        Some((local, domain)) if !local.is_empty() => {
            let first: String = local.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
        _ => "***".to_owned(),
    }
}

/// `+1 (555) 123-4567` → `***4567`: only the last four digits survive.
pub fn mask_phone(phone: &str) -> String {
    let digits: Vec<char> = phone.chars().filter(char::is_ascii_digit).collect();
    let tail: String = digits[digits.len().saturating_sub(4)..].iter().collect();
    if digits.len() <= 4 { "***".to_owned() } else { format!("***{tail}") }
}

/// Masks every email address and phone-like number inside free text.
pub fn mask_personal_data(text: &str) -> String {
    let emails_masked = EMAIL.replace_all(text, |caps: &Captures| format!("{}***@{}", &caps[1], &caps[2]));
    PHONE
        .replace_all(&emails_masked, |caps: &Captures| {
            let digits = caps[0].chars().filter(char::is_ascii_digit).count();
            if digits >= 7 { mask_phone(&caps[0]) } else { caps[0].to_owned() }
        })
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_email_keeps_only_its_first_letter_and_domain() {
        assert_eq!(mask_email("jane.doe@example.org"), "j***@example.org");
        assert_eq!(mask_email("not-an-email"), "***");
    }

    #[test]
    fn a_phone_keeps_only_its_last_four_digits() {
        assert_eq!(mask_phone("+1 (555) 123-4567"), "***4567");
        assert_eq!(mask_phone("123"), "***");
    }

    #[test]
    fn free_text_has_emails_and_phone_numbers_masked() {
        let masked = mask_personal_data("I'm jane@example.org, call +1 503-555-0142 after 5");
        assert_eq!(masked, "I'm j***@example.org, call ***0142 after 5");
    }

    #[test]
    fn short_numbers_and_years_are_left_alone() {
        assert_eq!(
            mask_personal_data("We started in 2011 with 9 schools"),
            "We started in 2011 with 9 schools"
        );
    }
}
