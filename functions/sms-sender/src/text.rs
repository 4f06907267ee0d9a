//! SMS text: E.164 numbers, messages cut to one segment, and the SNS adapter.

use std::{future::Future, sync::LazyLock};

use aws_sdk_sns::types::MessageAttributeValue;
pub use domain::failure::Delivery;
use regex::Regex;

/// `+`, a country code that does not start with 0, at most 15 digits in all.
/// A number as configured (`+1 (503) 555-0142`, `+1.503.555.0142`) without
/// the spaces, dots, dashes and brackets people write in it.
pub fn normalise_number(number: &str) -> String {
    number.chars().filter(|c| !matches!(c, ' ' | '.' | '-' | '(' | ')' | '\u{a0}')).collect()
}

pub fn is_e164(number: &str) -> bool {
    static E164: LazyLock<Option<Regex>> = LazyLock::new(|| Regex::new(r"^\+[1-9][0-9]{6,14}$").ok());
    E164.as_ref().is_some_and(|re| re.is_match(number))
}

/// GSM 03.38 basic characters (one septet each); the extension table costs two.
const GSM_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
const GSM_EXTENDED: &str = "^{}\\[~]|€";

fn gsm_septets(c: char) -> Option<usize> {
    if GSM_BASIC.contains(c) { Some(1) } else { GSM_EXTENDED.contains(c).then_some(2) }
}

/// One SMS segment: 160 GSM-7 septets, or 70 UTF-16 units once any character
/// needs UCS-2. A longer message is cut and ends in "...", so a tenant is
/// never billed for a second segment.
pub fn fit_one_segment(message: &str) -> String {
    let gsm = message.chars().all(|c| gsm_septets(c).is_some());
    let (limit, cost): (usize, fn(char) -> usize) =
        if gsm { (160, |c| gsm_septets(c).unwrap_or(2)) } else { (70, char::len_utf16) };
    if message.chars().map(cost).sum::<usize>() <= limit {
        return message.to_owned();
    }
    let mut used = "...".len();
    let mut cut = String::new();
    for c in message.chars() {
        used += cost(c);
        if used > limit {
            break;
        }
        cut.push(c);
    }
    format!("{}...", cut.trim_end())
}

#[derive(Debug, thiserror::Error)]
#[error("SMS {}", match (.delivery, .permanent) {
    (Delivery::Unknown, _) => "may have been sent: the answer was lost",
    (_, true) => "not sent (permanent)",
    _ => "not sent",
})]
pub struct TextError {
    pub permanent: bool,
    /// Whether SNS may have taken it: an SMS that may be out is never sent again.
    pub delivery: Delivery,
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

impl domain::failure::Permanence for TextError {
    fn is_permanent(&self) -> bool {
        self.permanent
    }
}

/// `sns:Publish` to a phone number.
pub trait Texter: Send + Sync + 'static {
    fn send(&self, to: &str, message: &str) -> impl Future<Output = Result<(), TextError>> + Send;
}

pub struct SnsTexter {
    client: aws_sdk_sns::Client,
}

impl SnsTexter {
    pub fn new(client: aws_sdk_sns::Client) -> Self {
        Self { client }
    }
}

/// The SNS client for sending: a late answer is waited for, and an attempt
/// that may have reached SNS is never retried by the SDK (a retry would be a
/// second SMS).
pub fn sns_client(config: &aws_types::SdkConfig) -> aws_sdk_sns::Client {
    let config = aws_sdk_sns::config::Builder::from(config)
        .timeout_config(aws_adapters::config::send_timeouts())
        .retry_classifier(aws_adapters::config::NoRetryAfterSending)
        .build();
    aws_sdk_sns::Client::from_conf(config)
}

impl Texter for SnsTexter {
    async fn send(&self, to: &str, message: &str) -> Result<(), TextError> {
        let transactional = MessageAttributeValue::builder()
            .data_type("String")
            .string_value("Transactional")
            .build()
            .map_err(|e| TextError { permanent: true, delivery: Delivery::NotSent, source: e.into() })?;
        self.client
            .publish()
            .phone_number(to)
            .message(message)
            .message_attributes("AWS.SNS.SMS.SMSType", transactional)
            .send()
            .await
            .map(|_| ())
            .map_err(|err| {
                let permanent = err.as_service_error().is_some_and(|e| {
                    e.is_invalid_parameter_exception()
                        || e.is_invalid_parameter_value_exception()
                        || e.is_authorization_error_exception()
                });
                TextError { permanent, delivery: aws_adapters::config::delivery_of(&err), source: err.into() }
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_written_with_spaces_dots_dashes_or_brackets_normalise_to_e164() {
        for written in ["+1 (503) 555-0142", "+1.503.555.0142", "+1 503 555 0142", "+15035550142"] {
            assert_eq!(normalise_number(written), "+15035550142", "{written}");
        }
        assert!(!is_e164(&normalise_number("503-555-0142")), "no country code");
    }

    #[test]
    fn only_e164_numbers_are_accepted() {
        assert!(is_e164("+15035550142"));
        for bad in ["5035550142", "+0123456789", "+1 503 555 0142", "+1503555014212345", "", "+1"] {
            assert!(!is_e164(bad), "{bad}");
        }
    }

    #[test]
    fn a_short_message_is_kept_whole() {
        assert_eq!(fit_one_segment("New application from Ana"), "New application from Ana");
    }

    #[test]
    fn a_long_gsm_message_is_cut_to_160_septets() {
        let fitted = fit_one_segment(&"a".repeat(200));
        assert_eq!(fitted.len(), 160);
        assert!(fitted.ends_with("..."));
    }

    #[test]
    fn extended_characters_count_twice() {
        let fitted = fit_one_segment(&"€".repeat(100));
        assert_eq!(fitted.chars().filter(|&c| c == '€').count(), 78);
    }

    #[test]
    fn a_message_needing_ucs2_is_cut_to_70_units() {
        let fitted = fit_one_segment(&"Привет ".repeat(20));
        assert!(fitted.encode_utf16().count() <= 70, "{fitted}");
        assert!(fitted.ends_with("..."));
        assert_eq!(fit_one_segment("Olá 👋"), "Olá 👋");
    }
}
