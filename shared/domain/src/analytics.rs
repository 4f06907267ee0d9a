//! Widget analytics (`POST <chat URL>?action=analytics`): a batch of widget
//! events, published to the bus as `WidgetAnalytics` with no personal data.
//!
//! Each event keeps only allow-listed keys whose values are numbers, booleans
//! or short identifiers: message text, labels, URLs, form values and emails
//! are dropped, so the bus and its archive hold nothing a visitor wrote.

use std::{future::Future, pin::Pin, sync::Arc};

use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::{
    edge::{self, Caller, JsonResponse, RequestError},
    events::AnalyticsPublisher,
    tenant::{ConfigSource, TenantHash, TenantLoader},
};

pub const SOURCE: &str = "picasso.widget";
pub const DETAIL_TYPE: &str = "WidgetAnalytics";
pub const MAX_EVENTS: usize = 100;
pub const MAX_EVENT_BYTES: usize = 4 * 1024;
/// A full batch of full events, with room for the envelope.
pub const MAX_BODY_BYTES: usize = MAX_EVENTS * MAX_EVENT_BYTES + 4 * 1024;
const MAX_ID_CHARS: usize = 128;

/// Event keys whose values say what happened, never what anyone wrote: the
/// widget's envelope (`session_id`, `timestamp`, `step_number`) and the
/// identifiers, counts and enums of its event payloads.
pub const SAFE_KEYS: [&str; 33] = [
    "session_id",
    "conversation_id",
    "timestamp",
    "step_number",
    "form_id",
    "field_id",
    "field_index",
    "field_count",
    "fields_completed",
    "total_fields",
    "last_field_id",
    "last_field_index",
    "step",
    "cta_id",
    "cta_action",
    "cta_type",
    "triggers_form",
    "chip_id",
    "target_branch",
    "branch_id",
    "showcase_id",
    "prompt_index",
    "trigger",
    "trigger_source",
    "reason",
    "source",
    "device_class",
    "duration_seconds",
    "dwell_time_seconds",
    "response_time_ms",
    "content_length",
    "entry_point_id",
    "program",
];

/// One accepted event: its tenant and its detail, already stripped.
#[derive(Debug, Clone, PartialEq)]
pub struct WidgetEvent {
    pub tenant_hash: TenantHash,
    pub event_type: String,
    /// The safe keys the event carried.
    pub fields: Map<String, Value>,
}

impl WidgetEvent {
    /// The `WidgetAnalytics` detail: schema, tenant, type, then the safe keys.
    pub fn detail(&self, tenant_id: &str) -> Value {
        let mut detail = Map::new();
        detail.insert("schema_version".into(), json!(1));
        detail.insert("tenant_hash".into(), json!(self.tenant_hash.as_str()));
        detail.insert("tenant_id".into(), json!(tenant_id));
        detail.insert("event_type".into(), json!(self.event_type));
        detail.extend(self.fields.clone());
        Value::Object(detail)
    }
}

#[derive(Deserialize)]
struct RawBatch {
    tenant_hash: Option<Value>,
    events: Option<Value>,
}

/// Parses a batch at the edge: limits, shapes and tenant hashes, before any
/// tenant is loaded or anything published.
pub fn parse_batch(body: &[u8]) -> Result<Vec<WidgetEvent>, RequestError> {
    let raw: RawBatch = edge::parse_body_within(body, MAX_BODY_BYTES)?;
    let Some(Value::Array(events)) = raw.events else {
        return Err(RequestError::bad("invalid_events", "events must be an array of event objects"));
    };
    if events.len() > MAX_EVENTS {
        return Err(too_large("too_many_events", format!("a batch holds at most {MAX_EVENTS} events")));
    }
    events.iter().map(|event| parse_event(event, raw.tenant_hash.as_ref())).collect()
}

fn parse_event(event: &Value, batch_hash: Option<&Value>) -> Result<WidgetEvent, RequestError> {
    let Value::Object(object) = event else {
        return Err(RequestError::bad("invalid_event", "every event must be a JSON object"));
    };
    if serde_json::to_vec(event).map_or(usize::MAX, |bytes| bytes.len()) > MAX_EVENT_BYTES {
        return Err(too_large(
            "event_too_large",
            format!("an event is at most {} KiB", MAX_EVENT_BYTES / 1024),
        ));
    }
    // The widget's envelope names the hash `tenant_id`; an explicit `tenant_hash` wins.
    let hash = object.get("tenant_hash").or(batch_hash).or_else(|| object.get("tenant_id"));
    let tenant_hash = edge::tenant_hash(hash)?;
    let nested = object.get("event").and_then(Value::as_object);
    let event_type = nested
        .and_then(|e| e.get("type"))
        .or_else(|| object.get("event_type"))
        .or_else(|| object.get("type"))
        .and_then(Value::as_str)
        .filter(|t| is_identifier(t))
        .ok_or_else(|| {
            RequestError::bad("invalid_event", "every event needs a type of up to 128 A-Z, 0-9, _ . -")
        })?;
    let payload = nested.and_then(|e| e.get("payload")).or_else(|| object.get("payload"));
    let mut fields = Map::new();
    for source in [Some(object), payload.and_then(Value::as_object)].into_iter().flatten() {
        for (key, value) in source {
            if SAFE_KEYS.contains(&key.as_str()) && is_safe_value(value) {
                fields.insert(key.clone(), value.clone());
            }
        }
    }
    Ok(WidgetEvent { tenant_hash, event_type: event_type.to_owned(), fields })
}

fn too_large(code: &'static str, message: String) -> RequestError {
    RequestError { status: 413, code, message }
}

/// Numbers, booleans, null, or an identifier or timestamp: never free text.
fn is_safe_value(value: &Value) -> bool {
    match value {
        Value::Null | Value::Bool(_) | Value::Number(_) => true,
        Value::String(s) => is_identifier(s) || is_timestamp(s),
        Value::Array(_) | Value::Object(_) => false,
    }
}

/// `[A-Za-z0-9_.:-]{1,128}`: no spaces, no `@`, so no sentence or email fits.
fn is_identifier(s: &str) -> bool {
    (1..=MAX_ID_CHARS).contains(&s.len())
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
}

/// An RFC 3339 time with an offset, `2026-12-02T01:05:00.000+01:00` (`...Z` is an identifier already).
fn is_timestamp(s: &str) -> bool {
    s.len() <= 40
        && s.contains('T')
        && s.bytes().all(|b| b.is_ascii_digit() || matches!(b, b'-' | b':' | b'.' | b'T' | b'Z' | b'+'))
}

/// The analytics handler behind a trait object, so the chat URL can hold one.
pub trait AnalyticsEndpoint: Send + Sync {
    fn respond<'a>(
        &'a self,
        body: &'a [u8],
        caller: &'a Caller,
    ) -> Pin<Box<dyn Future<Output = JsonResponse> + Send + 'a>>;
}

/// Parses a batch, resolves each tenant, and publishes the stripped events.
pub struct AnalyticsIntake<C, P> {
    tenants: Arc<TenantLoader<C>>,
    publisher: P,
    /// The widget's own origins (`WIDGET_ORIGINS`): its iframe may send analytics too.
    widget_origins: Vec<String>,
}

impl<C: ConfigSource, P: AnalyticsPublisher> AnalyticsEndpoint for AnalyticsIntake<C, P> {
    fn respond<'a>(
        &'a self,
        body: &'a [u8],
        caller: &'a Caller,
    ) -> Pin<Box<dyn Future<Output = JsonResponse> + Send + 'a>> {
        Box::pin(self.handle(body, caller))
    }
}

impl<C: ConfigSource, P: AnalyticsPublisher> AnalyticsIntake<C, P> {
    pub fn new(tenants: Arc<TenantLoader<C>>, publisher: P) -> Self {
        Self { tenants, publisher, widget_origins: crate::edge::default_widget_origins() }
    }

    /// The widget's own origins, in place of the default ones.
    pub fn with_widget_origins(mut self, origins: Vec<String>) -> Self {
        self.widget_origins = origins;
        self
    }

    /// `200 {"accepted": N}`, or a JSON refusal (400, 403, 404, 413, 503).
    /// Every tenant of the batch must allow the caller's origin.
    pub async fn handle(&self, body: &[u8], caller: &Caller) -> JsonResponse {
        let events = match parse_batch(body) {
            Ok(events) => events,
            Err(err) => return JsonResponse::from(&err).allowing(caller.origin.clone()),
        };
        let mut details = Vec::with_capacity(events.len());
        let mut allowed_origin = caller.origin.clone();
        for event in &events {
            // The loader caches, so a batch of one tenant reads its config once.
            match self.tenants.load(event.tenant_hash.as_str()).await {
                Ok(tenant) => match edge::check_origin(&tenant.config, caller, &self.widget_origins) {
                    Ok(origin) => {
                        allowed_origin = origin;
                        details.push(event.detail(&tenant.id).to_string());
                    }
                    Err(err) => return JsonResponse::from(&err),
                },
                Err(err) => return edge::tenant_refused(&err).allowing(caller.origin.clone()),
            }
        }
        if let Err(err) = self.publisher.publish_analytics(&details).await {
            tracing::error!(events = details.len(), error = %crate::report::error_chain(&err), "widget analytics not published");
            return JsonResponse::refused(
                503,
                "analytics_unavailable",
                "Analytics could not be recorded; try again later",
            )
            .allowing(allowed_origin);
        }
        JsonResponse::new(200, json!({"accepted": details.len()}).to_string()).allowing(allowed_origin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "ri3a9f2c7d41be";

    fn parse(body: Value) -> Result<Vec<WidgetEvent>, RequestError> {
        parse_batch(body.to_string().as_bytes())
    }

    fn batch(events: Vec<Value>) -> Value {
        json!({"action": "analytics", "batch": true, "tenant_hash": HASH, "events": events})
    }

    #[test]
    fn the_widgets_envelope_keeps_ids_counts_and_times_and_drops_everything_written() {
        let event = json!({
            "schema_version": "1.0.0", "tenant_id": HASH, "session_id": "sess_abc123",
            "timestamp": "2026-12-02T01:05:00.000Z", "step_number": 3, "ga_client_id": "123.456",
            "event": {"type": "FORM_ABANDONED", "payload": {
                "form_id": "reading_buddy_application", "form_label": "Reading Buddy Application",
                "last_field_id": "email", "last_field_label": "Email address", "fields_completed": 3,
                "reason": "closed", "content_preview": "my email is ana@example.org",
                "email": "ana@example.org", "value": "Ana Lopez", "field_id": "Ana Lopez"}}
        });
        let events = parse(json!({"events": [event]})).unwrap();
        assert_eq!(events[0].tenant_hash.as_str(), HASH, "the envelope's tenant_id is the hash");
        assert_eq!(
            events[0].detail("RIV204815"),
            json!({
                "schema_version": 1, "tenant_hash": HASH, "tenant_id": "RIV204815", "event_type": "FORM_ABANDONED",
                "session_id": "sess_abc123", "timestamp": "2026-12-02T01:05:00.000Z", "step_number": 3,
                "form_id": "reading_buddy_application", "last_field_id": "email", "fields_completed": 3,
                "reason": "closed"
            })
        );
    }

    #[test]
    fn flat_events_take_the_batchs_tenant_unless_they_name_their_own() {
        let events = parse(batch(vec![
            json!({"type": "WIDGET_OPENED", "trigger": "button"}),
            json!({"event_type": "CTA_CLICKED", "tenant_hash": "other00000000", "cta_id": "donate", "cta_label": "Give!"}),
        ]))
        .unwrap();
        assert_eq!(events[0].tenant_hash.as_str(), HASH);
        assert_eq!(events[0].fields, json!({"trigger": "button"}).as_object().cloned().unwrap());
        assert_eq!(events[1].tenant_hash.as_str(), "other00000000");
        assert_eq!(events[1].event_type, "CTA_CLICKED");
        assert_eq!(events[1].fields, json!({"cta_id": "donate"}).as_object().cloned().unwrap());
    }

    #[test]
    fn a_hundred_events_pass_and_the_hundred_and_first_is_too_many() {
        let event = json!({"type": "WIDGET_OPENED"});
        assert_eq!(parse(batch(vec![event.clone(); MAX_EVENTS])).unwrap().len(), MAX_EVENTS);
        let err = parse(batch(vec![event; MAX_EVENTS + 1])).unwrap_err();
        assert_eq!((err.status, err.code), (413, "too_many_events"));
    }

    #[test]
    fn an_event_over_four_kib_is_too_large_and_a_full_batch_of_them_still_parses() {
        let sized = |bytes: usize| {
            let padding = bytes - json!({"type": "X", "pad": ""}).to_string().len();
            json!({"type": "X", "pad": "p".repeat(padding)})
        };
        assert_eq!(sized(MAX_EVENT_BYTES).to_string().len(), MAX_EVENT_BYTES);
        assert!(parse(batch(vec![sized(MAX_EVENT_BYTES); MAX_EVENTS])).is_ok());
        let err = parse(batch(vec![sized(MAX_EVENT_BYTES + 1)])).unwrap_err();
        assert_eq!((err.status, err.code), (413, "event_too_large"));
    }

    #[test]
    fn each_malformed_batch_has_its_own_code() {
        let cases = [
            (json!({"events": "x"}), "invalid_events"),
            (json!({"tenant_hash": HASH}), "invalid_events"),
            (batch(vec![json!(1)]), "invalid_event"),
            (batch(vec![json!({"payload": {}})]), "invalid_event"),
            (batch(vec![json!({"type": "two words"})]), "invalid_event"),
            (json!({"events": [{"type": "X"}]}), "missing_tenant_hash"),
            (json!({"tenant_hash": "../x", "events": [{"type": "X"}]}), "invalid_tenant_hash"),
        ];
        for (body, code) in cases {
            let err = parse(body.clone()).unwrap_err();
            assert_eq!((err.status, err.code), (400, code), "{body}");
        }
        assert_eq!(parse_batch(b"{").unwrap_err().code, "invalid_json");
        let oversize = vec![b' '; MAX_BODY_BYTES + 1];
        assert_eq!(parse_batch(&oversize).unwrap_err().status, 413);
    }

    #[test]
    fn only_numbers_booleans_identifiers_and_times_are_kept() {
        for value in [
            json!(3),
            json!(true),
            json!(null),
            json!("field_1763001000010"),
            json!("2026-12-02T01:05:00+01:00"),
        ] {
            assert!(is_safe_value(&value), "{value}");
        }
        let long = "a".repeat(MAX_ID_CHARS + 1);
        for value in [
            json!("ana@example.org"),
            json!("two words"),
            json!("+1 503 555 0142"),
            json!(""),
            json!(long),
            json!(["x"]),
            json!({}),
        ] {
            assert!(!is_safe_value(&value), "{value}");
        }
    }
}
