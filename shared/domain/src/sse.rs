//! Server-sent event framing: every frame the widget parses, in one place.
//!
//! A data frame is `data: <json>\n\n`. JSON escapes control characters, so the
//! payload is always a single line whatever the model or the visitor wrote.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{
    forms::{FieldErrors, Priority},
    fulfillment::ChannelStatus,
};

/// The first bytes of every stream: a comment that opens the connection at once.
pub const PRELUDE: &str = ":ok\n\n";
/// The last frame of every stream, success or failure.
pub const DONE: &str = "data: [DONE]\n\n";

/// The headers of every SSE answer, chat or form, streamed or refused.
pub const HEADERS: [(&str, &str); 3] = [
    ("content-type", "text/event-stream"),
    ("cache-control", "no-cache, no-transform"),
    ("x-accel-buffering", "no"),
];

/// One knowledge-base citation in a `sources` frame.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Source {
    pub title: String,
    pub uri: String,
    pub score: f64,
}

/// A JSON data frame, tagged by `type` exactly as the widget expects.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Frame<'a> {
    Start,
    Heartbeat,
    StreamStart,
    Text {
        content: &'a str,
        session_id: &'a str,
    },
    Sources {
        sources: &'a [Source],
    },
    CtaButtons {
        #[serde(rename = "ctaButtons")]
        cta_buttons: &'a [Value],
        metadata: &'a Value,
        session_id: &'a str,
    },
    /// A tenant's showcase item as a card, after the buttons.
    ShowcaseCard {
        #[serde(rename = "showcaseCard")]
        showcase_card: &'a Value,
        metadata: &'a Value,
        session_id: &'a str,
    },
    Error {
        error: &'a str,
        code: &'a str,
    },
}

/// The `status` every form frame repeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FormStatus {
    Success,
    Error,
}

/// One channel of a `form_complete` frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedChannel {
    pub channel: String,
    pub status: ChannelStatus,
}

/// The result frame of a form request. `form_complete` is also what the
/// submissions table keeps for a `client_submission_id`, and is read back
/// for a duplicate, hence `Deserialize`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FormFrame {
    ValidationSuccess {
        field: String,
        status: FormStatus,
        message: String,
    },
    ValidationError {
        field: String,
        errors: Vec<String>,
        status: FormStatus,
    },
    FormComplete {
        status: FormStatus,
        message: String,
        #[serde(rename = "submissionId")]
        submission_id: String,
        priority: Priority,
        fulfillment: Vec<PlannedChannel>,
        /// Set when this answers a repeated `client_submission_id`.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        duplicate: bool,
        /// Set when the submission was stored but held back by a limit: nobody is notified.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        held: bool,
    },
    FormError {
        status: FormStatus,
        message: String,
        validation_errors: Vec<FieldErrors>,
    },
}

impl FormFrame {
    pub fn valid(field: &str) -> Self {
        Self::ValidationSuccess {
            field: field.to_owned(),
            status: FormStatus::Success,
            message: "Valid".to_owned(),
        }
    }

    pub fn invalid(field: &str, errors: Vec<String>) -> Self {
        Self::ValidationError { field: field.to_owned(), errors, status: FormStatus::Error }
    }

    /// Every planned channel starts `queued`.
    pub fn complete(message: String, submission_id: &str, priority: Priority, channels: &[String]) -> Self {
        Self::FormComplete {
            status: FormStatus::Success,
            message,
            submission_id: submission_id.to_owned(),
            priority,
            fulfillment: channels
                .iter()
                .map(|channel| PlannedChannel { channel: channel.clone(), status: ChannelStatus::Queued })
                .collect(),
            duplicate: false,
            held: false,
        }
    }

    pub fn error(message: &str, validation_errors: Vec<FieldErrors>) -> Self {
        Self::FormError { status: FormStatus::Error, message: message.to_owned(), validation_errors }
    }

    /// `data: {...}\n\n`.
    pub fn encode(&self) -> String {
        data_frame(self)
    }
}

impl Frame<'_> {
    /// `data: {...}\n\n`.
    pub fn encode(&self) -> String {
        data_frame(self)
    }
}

/// Encodes any serialisable payload as one data frame. Serialising our own frame
/// types cannot fail (no non-string map keys); if a caller's type ever did, the
/// client still receives a valid error frame instead of a broken stream.
pub fn data_frame(payload: &impl Serialize) -> String {
    match serde_json::to_string(payload) {
        Ok(json) => format!("data: {json}\n\n"),
        Err(_) => {
            "data: {\"type\":\"error\",\"error\":\"could not encode frame\",\"code\":\"internal_error\"}\n\n"
                .to_owned()
        }
    }
}

/// A comment line such as `: x-first-token-ms=412`, ignored by EventSource parsers.
pub fn comment(name: &str, value: impl std::fmt::Display) -> String {
    format!(": {name}={value}\n\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Parses a data frame back, checking it is exactly one `data:` line.
    fn parse(frame: &str) -> Value {
        let body = frame.strip_suffix("\n\n").expect("a frame ends with a blank line");
        assert!(!body.contains('\n'), "frame spans more than one line: {frame:?}");
        let json = body.strip_prefix("data: ").expect("a data frame starts with `data: `");
        serde_json::from_str(json).expect("the payload is valid JSON")
    }

    #[test]
    fn control_frames_have_the_exact_widget_shapes() {
        assert_eq!(Frame::Start.encode(), "data: {\"type\":\"start\"}\n\n");
        assert_eq!(Frame::Heartbeat.encode(), "data: {\"type\":\"heartbeat\"}\n\n");
        assert_eq!(Frame::StreamStart.encode(), "data: {\"type\":\"stream_start\"}\n\n");
        assert_eq!(PRELUDE, ":ok\n\n");
        assert_eq!(DONE, "data: [DONE]\n\n");
    }

    #[test]
    fn text_with_quotes_newlines_and_unicode_stays_valid_json_on_one_line() {
        let content = "He said \"hi\"\nthen left\r\n\tcafé ☕ 👋 \u{2028} \\ </script>";
        let frame = Frame::Text { content, session_id: "s-1" }.encode();
        assert_eq!(parse(&frame), json!({"type": "text", "content": content, "session_id": "s-1"}));
    }

    #[test]
    fn a_text_frame_carries_content_then_session_id() {
        let frame = Frame::Text { content: "Hel", session_id: "abc" }.encode();
        assert_eq!(frame, "data: {\"type\":\"text\",\"content\":\"Hel\",\"session_id\":\"abc\"}\n\n");
    }

    #[test]
    fn sources_frame_lists_title_uri_and_score_only() {
        let sources = [Source { title: "FAQ".into(), uri: "s3://kb/faq.md".into(), score: 0.5 }];
        let value = parse(&Frame::Sources { sources: &sources }.encode());
        assert_eq!(
            value,
            json!({"type": "sources", "sources": [{"title": "FAQ", "uri": "s3://kb/faq.md", "score": 0.5}]})
        );
    }

    #[test]
    fn cta_buttons_frame_uses_the_widgets_camel_case_key() {
        let buttons = [json!({"label": "Apply", "action": "start_form"})];
        let metadata = json!({});
        let value = parse(
            &Frame::CtaButtons { cta_buttons: &buttons, metadata: &metadata, session_id: "s" }.encode(),
        );
        assert_eq!(
            value,
            json!({"type": "cta_buttons", "ctaButtons": buttons, "metadata": {}, "session_id": "s"})
        );
    }

    #[test]
    fn error_frame_escapes_its_message() {
        let value = parse(&Frame::Error { error: "bad \"input\"\n", code: "bad_request" }.encode());
        assert_eq!(value, json!({"type": "error", "error": "bad \"input\"\n", "code": "bad_request"}));
    }

    #[test]
    fn form_frames_have_the_exact_widget_shapes() {
        assert_eq!(
            parse(&FormFrame::valid("email").encode()),
            json!({"type": "validation_success", "field": "email", "status": "success", "message": "Valid"})
        );
        assert_eq!(
            parse(&FormFrame::invalid("email", vec!["Enter an email".into()]).encode()),
            json!({"type": "validation_error", "field": "email", "errors": ["Enter an email"], "status": "error"})
        );
        let errors = vec![FieldErrors { field: "age".into(), errors: vec!["Too young".into()] }];
        assert_eq!(
            parse(&FormFrame::error("Please correct the highlighted fields.", errors).encode()),
            json!({"type": "form_error", "status": "error", "message": "Please correct the highlighted fields.",
                   "validation_errors": [{"field": "age", "errors": ["Too young"]}]})
        );
    }

    #[test]
    fn a_form_complete_frame_lists_every_channel_queued_and_reads_back_as_itself() {
        let frame =
            FormFrame::complete("Thanks".into(), "f_1", Priority::High, &["email".into(), "sms".into()]);
        let encoded = frame.encode();
        assert_eq!(
            parse(&encoded),
            json!({"type": "form_complete", "status": "success", "message": "Thanks", "submissionId": "f_1",
                   "priority": "high", "fulfillment": [{"channel": "email", "status": "queued"},
                                                       {"channel": "sms", "status": "queued"}]})
        );
        let json = encoded.strip_prefix("data: ").unwrap().trim_end();
        assert_eq!(serde_json::from_str::<FormFrame>(json).unwrap(), frame);
    }

    #[test]
    fn comments_are_single_lines() {
        assert_eq!(comment("x-first-token-ms", 412), ": x-first-token-ms=412\n\n");
    }
}
