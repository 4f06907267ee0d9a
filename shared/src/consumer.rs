//! What every fulfillment consumer shares: the EventBridge envelope an SQS
//! record carries, and what to tell the queue about each record.

use serde::Deserialize;

use crate::events::{DETAIL_TYPE, FormSubmitted, SOURCE};

/// The standard EventBridge envelope, parsed tolerantly (moto omits `account`).
#[derive(Debug, Clone, Deserialize)]
pub struct Envelope {
    #[serde(rename = "detail-type")]
    pub detail_type: String,
    pub source: String,
    pub detail: FormSubmitted,
    #[serde(rename = "replay-name", default)]
    pub replay_name: Option<String>,
}

/// Whether SQS should forget a record or deliver it again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Done, skipped, or failed for good (recorded): delete it.
    Ack,
    /// A transient failure: let it come back, and the DLQ take it after 5 tries.
    Retry,
}

#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    #[error("record body is not a FormSubmitted envelope")]
    Malformed(#[from] serde_json::Error),
    #[error("record is a {0} event, not FormSubmitted")]
    Unexpected(String),
}

pub fn parse_envelope(body: &str) -> Result<Envelope, EnvelopeError> {
    let envelope: Envelope = serde_json::from_str(body)?;
    if envelope.detail_type != DETAIL_TYPE || envelope.source != SOURCE {
        return Err(EnvelopeError::Unexpected(format!("{}/{}", envelope.source, envelope.detail_type)));
    }
    Ok(envelope)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replayed_envelope_without_account_parses() {
        let body = r#"{"version":"0","id":"x","detail-type":"FormSubmitted","source":"picasso.forms","time":"t",
            "region":"us-east-1","resources":[],"replay-name":"r1","ingestion-time":1.5,
            "detail":{"schema_version":1,"submission_id":"s","tenant_id":"T","form_id":"f","priority":"high",
                      "submitted_at":"2026-11-25T00:00:00.000Z","channels":["email"]}}"#;
        let envelope = parse_envelope(body).unwrap();
        assert_eq!(envelope.replay_name.as_deref(), Some("r1"));
        assert_eq!(envelope.detail.channels, ["email"]);
    }

    #[test]
    fn garbage_and_other_events_are_refused() {
        assert!(matches!(parse_envelope("nope"), Err(EnvelopeError::Malformed(_))));
        let other = r#"{"detail-type":"Other","source":"x","detail":{"schema_version":1,"submission_id":"s","tenant_id":"T",
            "form_id":"f","priority":"p","submitted_at":"t","channels":[]}}"#;
        assert!(matches!(parse_envelope(other), Err(EnvelopeError::Unexpected(_))));
    }
}
