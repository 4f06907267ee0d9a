//! The funnel: how many visitors asked, clicked, started and finished a form,
//! counted from the events already on the bus, never from what anyone wrote.
//!
//! chat-stream publishes one [`ChatAnswered`] per answer (ids, timings,
//! token counts, the CTA ids shown; no question or answer text); the widget's
//! `WidgetAnalytics` say what visitors clicked and started; `FormSubmitted`
//! says a form was completed. The funnel projector turns each into an
//! [`Increment`] of a tenant's day and of one session's summary, applied once
//! per event whatever replays or redeliveries bring ([`Increment::dedupe_key`]).

use std::{collections::BTreeMap, future::Future, pin::Pin};

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub const CHAT_SOURCE: &str = "picasso.chat";
pub const CHAT_DETAIL_TYPE: &str = "ChatAnswered";
/// The `schema_version` of the ChatAnswered detail this code writes.
pub const CHAT_SCHEMA_VERSION: u32 = 1;

/// One answer, as the funnel needs it: who (ids), how fast, how big, which
/// CTAs were shown. Nothing the visitor or the model wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatAnswered {
    pub schema_version: u32,
    /// Unique per answer: the funnel counts each one once.
    pub answer_id: String,
    pub tenant_id: String,
    pub session_id: String,
    #[serde(default)]
    pub conversation_id: Option<String>,
    /// RFC 3339, UTC.
    pub answered_at: String,
    #[serde(default)]
    pub first_token_ms: Option<u64>,
    pub total_time_ms: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    #[serde(default)]
    pub cta_ids: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("ChatAnswered {answer_id} could not be published")]
pub struct AnswerPublishError {
    pub answer_id: String,
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

/// `events:PutEvents` of ChatAnswered (a trait object: the chat service holds one).
pub trait AnswerPublisher: Send + Sync {
    fn publish_answer<'a>(
        &'a self,
        answer: &'a ChatAnswered,
    ) -> Pin<Box<dyn Future<Output = Result<(), AnswerPublishError>> + Send + 'a>>;
}

/// Widget events that count as a CTA click.
pub const CTA_CLICK_EVENTS: [&str; 3] = ["CTA_CLICKED", "SHOWCASE_CTA_CLICKED", "ACTION_CHIP_CLICKED"];
/// The widget event that counts as a form started.
pub const FORM_STARTED_EVENT: &str = "FORM_STARTED";

/// One event's share of the funnel: counts to add to the tenant's day and,
/// when the event names a session, to that session's summary of the day.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Increment {
    pub tenant_id: String,
    /// `YYYY-MM-DD`, UTC: the day the event happened.
    pub day: String,
    pub session_id: Option<String>,
    /// What makes two deliveries of one event the same: applied once.
    pub dedupe_key: String,
    /// RFC 3339: when it happened.
    pub at: String,
    pub messages: u64,
    pub cta_clicks: u64,
    pub forms_started: u64,
    pub forms_completed: u64,
    pub first_token_ms: Option<u64>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FunnelError {
    #[error("the {detail_type} detail is not readable: {reason}")]
    Unreadable { detail_type: String, reason: String },
}

impl Increment {
    /// A ChatAnswered detail: one message, its first-token time.
    pub fn from_answer(detail: &Value) -> Result<Self, FunnelError> {
        let answer: ChatAnswered = serde_json::from_value(detail.clone()).map_err(|err| {
            FunnelError::Unreadable { detail_type: CHAT_DETAIL_TYPE.into(), reason: err.to_string() }
        })?;
        let day = day_of(&answer.answered_at).ok_or_else(|| FunnelError::Unreadable {
            detail_type: CHAT_DETAIL_TYPE.into(),
            reason: format!("answered_at {:?} is not an RFC 3339 time", answer.answered_at),
        })?;
        Ok(Self {
            tenant_id: answer.tenant_id,
            day,
            session_id: Some(answer.session_id).filter(|s| crate::submissions::is_session_id(s)),
            dedupe_key: format!("answer#{}", answer.answer_id),
            at: answer.answered_at,
            messages: 1,
            first_token_ms: answer.first_token_ms,
            ..Self::default()
        })
    }

    /// A WidgetAnalytics detail: a CTA click or a form started; `None` for
    /// every other widget event (opened, closed, page views, ...).
    pub fn from_widget(detail: &Value, event_time: &str) -> Result<Option<Self>, FunnelError> {
        let text = |key: &str| detail.get(key).and_then(Value::as_str);
        let Some(event_type) = text("event_type") else {
            return Err(FunnelError::Unreadable {
                detail_type: crate::analytics::DETAIL_TYPE.into(),
                reason: "no event_type".into(),
            });
        };
        let (cta_clicks, forms_started) = match event_type {
            t if CTA_CLICK_EVENTS.contains(&t) => (1, 0),
            FORM_STARTED_EVENT => (0, 1),
            _ => return Ok(None),
        };
        let Some(tenant_id) = text("tenant_id").filter(|t| !t.is_empty()) else {
            return Err(FunnelError::Unreadable {
                detail_type: crate::analytics::DETAIL_TYPE.into(),
                reason: "no tenant_id".into(),
            });
        };
        // The widget's own clock when it sent a usable one, else the bus's.
        let at = text("timestamp").filter(|t| day_of(t).is_some()).unwrap_or(event_time);
        let day = day_of(at).ok_or_else(|| FunnelError::Unreadable {
            detail_type: crate::analytics::DETAIL_TYPE.into(),
            reason: format!("no usable time ({event_time:?})"),
        })?;
        Ok(Some(Self {
            tenant_id: tenant_id.to_owned(),
            day,
            session_id: text("session_id")
                .filter(|s| crate::submissions::is_session_id(s))
                .map(str::to_owned),
            dedupe_key: format!("widget#{}", content_key(detail)),
            at: at.to_owned(),
            cta_clicks,
            forms_started,
            ..Self::default()
        }))
    }

    /// A completed form, from the stored submission (never from the event
    /// that points at it); an erased one counts for nothing.
    pub fn from_submission(submission: &crate::fulfillment::StoredSubmission) -> Option<Self> {
        if submission.status == Some(crate::fulfillment::SubmissionStatus::Erased) {
            return None;
        }
        Some(Self {
            tenant_id: submission.tenant_id.clone(),
            day: day_of(&submission.submitted_at)?,
            session_id: submission.staff.session_id.clone(),
            dedupe_key: format!("submission#{}", submission.submission_id),
            at: submission.submitted_at.clone(),
            forms_completed: 1,
            ..Self::default()
        })
    }
}

/// The UTC day of an RFC 3339 time written in UTC (`2026-12-06T...Z`).
fn day_of(time: &str) -> Option<String> {
    let day = time.get(..10)?;
    let bytes = day.as_bytes();
    let digits = |range: std::ops::Range<usize>| bytes[range].iter().all(u8::is_ascii_digit);
    let shaped = digits(0..4) && bytes[4] == b'-' && digits(5..7) && bytes[7] == b'-' && digits(8..10);
    (shaped && time.get(10..11) == Some("T")).then(|| day.to_owned())
}

/// A SHA-256 of the detail as published: the same event delivered twice is
/// the same bytes; two widget events differ at least in their timestamp or step.
fn content_key(detail: &Value) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(detail.to_string().as_bytes()).iter().take(16).map(|b| format!("{b:02x}")).collect()
}

/// One day of a tenant's funnel, as `picasso-ops funnel` prints it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FunnelDay {
    pub day: String,
    /// Sessions with at least one answer that day.
    pub conversations: u64,
    pub messages: u64,
    pub cta_clicks: u64,
    pub forms_started: u64,
    pub forms_completed: u64,
    /// The median first-token time of the day's answers (bucket upper bound).
    pub first_token_p50_ms: Option<u64>,
    /// First-token histogram: bucket lower bound (ms) → answers.
    #[serde(skip)]
    pub first_token_histogram: BTreeMap<u64, u64>,
}

/// How long the funnel keeps a day, a session summary and the marker of an
/// event it counted: longer than the archive keeps events (at most 365
/// days, `ArchiveRetentionDays`), so no replay is ever counted twice.
pub const KEEP_DAYS: u64 = 400;

/// First-token times are kept as a histogram of 25 ms buckets (the bucket's
/// lower bound), the last one holding everything from 10 s on.
pub const BUCKET_MS: u64 = 25;
pub const LAST_BUCKET_MS: u64 = 10_000;

pub fn first_token_bucket(ms: u64) -> u64 {
    ms.min(LAST_BUCKET_MS) / BUCKET_MS * BUCKET_MS
}

/// The median of a histogram, as the upper bound of the bucket that holds it
/// (so "p50 ≤ 125 ms" reads true); `None` when nothing was counted.
pub fn p50_ms(histogram: &BTreeMap<u64, u64>) -> Option<u64> {
    let total: u64 = histogram.values().sum();
    let mut seen = 0;
    for (bucket, count) in histogram {
        seen += count;
        if seen * 2 >= total && total > 0 {
            return Some(bucket + BUCKET_MS);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn answer() -> Value {
        json!({"schema_version": 1, "answer_id": "a1", "tenant_id": "T1", "session_id": "sess_1",
               "answered_at": "2026-12-06T10:00:00.000Z", "first_token_ms": 180, "total_time_ms": 900,
               "input_tokens": 500, "output_tokens": 80, "cta_ids": ["volunteer"]})
    }

    #[test]
    fn an_answer_is_one_message_of_its_session_and_day_counted_once_by_its_id() {
        let inc = Increment::from_answer(&answer()).unwrap();
        assert_eq!((inc.tenant_id.as_str(), inc.day.as_str()), ("T1", "2026-12-06"));
        assert_eq!(
            (inc.messages, inc.first_token_ms, inc.session_id.as_deref()),
            (1, Some(180), Some("sess_1"))
        );
        assert_eq!(inc.dedupe_key, "answer#a1");
        let mut bad = answer();
        bad["answered_at"] = json!("yesterday");
        assert!(Increment::from_answer(&bad).is_err());
        assert!(Increment::from_answer(&json!({"answer_id": 3})).is_err());
    }

    #[test]
    fn widget_clicks_and_form_starts_count_and_other_widget_events_do_not() {
        let event = |t: &str| {
            json!({"tenant_id": "T1", "event_type": t, "session_id": "sess_1",
                                     "timestamp": "2026-12-06T10:01:00.000Z", "step_number": 3})
        };
        let click = Increment::from_widget(&event("CTA_CLICKED"), "2026-12-07T00:00:00Z").unwrap().unwrap();
        assert_eq!((click.cta_clicks, click.forms_started, click.day.as_str()), (1, 0, "2026-12-06"));
        let started =
            Increment::from_widget(&event("FORM_STARTED"), "2026-12-06T10:01:01Z").unwrap().unwrap();
        assert_eq!(started.forms_started, 1);
        assert_eq!(Increment::from_widget(&event("WIDGET_OPENED"), "2026-12-06T10:01:01Z").unwrap(), None);
        assert_eq!(
            click.dedupe_key,
            Increment::from_widget(&event("CTA_CLICKED"), "2026-12-08T00:00:00Z")
                .unwrap()
                .unwrap()
                .dedupe_key,
            "a redelivery of the same event is the same event"
        );
        let mut no_clock = event("CTA_CLICKED");
        no_clock["timestamp"] = json!(1_765_015_260_000u64);
        let by_bus = Increment::from_widget(&no_clock, "2026-12-06T10:01:01Z").unwrap().unwrap();
        assert_eq!(by_bus.day, "2026-12-06", "the bus's time when the widget's is not RFC 3339");
    }

    #[test]
    fn the_median_is_the_upper_bound_of_its_bucket() {
        let mut histogram = BTreeMap::new();
        for ms in [90, 110, 120, 130, 900] {
            *histogram.entry(first_token_bucket(ms)).or_insert(0) += 1;
        }
        assert_eq!(p50_ms(&histogram), Some(125));
        assert_eq!(p50_ms(&BTreeMap::new()), None);
        assert_eq!(first_token_bucket(60_000), LAST_BUCKET_MS, "everything past 10 s in the last bucket");
    }
}
