//! Masking of personal data before it reaches a log line.

use std::sync::LazyLock;

use regex::{Captures, Regex};

// Letters and digits of any script, so `JOSE@MÜNCHEN.DE` and `李@例子.中国` are masked too.
static EMAIL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"([\p{L}\p{N}._%+\-])[\p{L}\p{N}._%+\-]*@([\p{L}\p{N}.\-]+\.[\p{L}]{2,})")
        .expect("constant pattern compiles (covered by the unit tests)")
});

// A run of 7+ digits, optionally with a leading + or 00, in any of the usual
// notations (spaces, no-break spaces, dots, dashes, slashes, brackets), not
// inside a word: `reading_1795581276148_x` is an id, not a number.
static PHONE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(^|[^\w+])(\+?\(?\d[\d\s().\-/]{5,}\d)\b")
        .expect("constant pattern compiles (covered by the unit tests)")
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
    let digits: Vec<char> = phone.chars().filter(|c| c.is_numeric()).collect();
    let tail: String = digits[digits.len().saturating_sub(4)..].iter().collect();
    if digits.len() <= 4 { "***".to_owned() } else { format!("***{tail}") }
}

/// Masks every email address and phone-like number inside free text.
pub fn mask_personal_data(text: &str) -> String {
    let emails_masked = EMAIL.replace_all(text, |caps: &Captures| format!("{}***@{}", &caps[1], &caps[2]));
    PHONE
        .replace_all(&emails_masked, |caps: &Captures| {
            let number = &caps[2];
            let digits = number.chars().filter(|c| c.is_numeric()).count();
            let masked = if digits >= 7 { mask_phone(number) } else { number.to_owned() };
            format!("{}{masked}", &caps[1])
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
    fn internationalised_addresses_are_masked() {
        assert_eq!(mask_personal_data("from JOSE@MÜNCHEN.DE today"), "from J***@MÜNCHEN.DE today");
        assert_eq!(mask_personal_data("to 李雷@例子.中国"), "to 李***@例子.中国");
        assert_eq!(mask_personal_data("<ana.lopez@example.org>"), "<a***@example.org>");
    }

    #[test]
    fn numbers_in_every_common_notation_are_masked() {
        for (written, masked) in [
            ("+44 20 7946 0958", "***0958"),
            ("(503) 555-0142", "***0142"),
            ("503.555.0142", "***0142"),
            ("0049 30 1234567", "***4567"),
            ("+49 (0)30 1234567", "***4567"),
            ("+1\u{a0}503\u{a0}555\u{a0}0142", "***0142"),
            ("503/555-0142", "***0142"),
        ] {
            assert_eq!(
                mask_personal_data(&format!("call {written}.")),
                format!("call {masked}."),
                "{written}"
            );
        }
    }

    #[test]
    fn ids_with_long_numbers_inside_are_not_numbers() {
        let id = "reading_buddy_application_1795581276148_eq1zem";
        assert_eq!(mask_personal_data(&format!("submission {id} failed")), format!("submission {id} failed"));
    }

    #[test]
    fn short_numbers_and_years_are_left_alone() {
        assert_eq!(
            mask_personal_data("We started in 2011 with 9 schools"),
            "We started in 2011 with 9 schools"
        );
    }
}
