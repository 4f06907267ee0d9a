//! A new submission, and the store that keeps it: its creation (idempotent
//! on the client's submission id) and the outbox of events not yet published.

use std::future::Future;

use serde_json::{Map, Value};

use crate::events::FormSubmitted;

/// A new submission, validated.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct NewSubmission {
    pub event: FormSubmitted,
    pub form_data: Map<String, Value>,
    /// The applicant's contact, found in the form (`crate::forms::extract_contact`).
    pub contact: crate::forms::Contact,
    pub client_submission_id: Option<String>,
    /// The limit that held this submission back: it is stored with status
    /// `held` and that reason, and neither published nor fulfilled.
    #[serde(default)]
    pub held: Option<String>,
    /// What staff work with (all default on a submission parked before they were kept).
    #[serde(default)]
    pub staff: StaffView,
}

/// The parts of a submission kept for the people who handle it: where it
/// came from, how it reads, where it stands, and how long it is kept.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StaffView {
    /// The widget's session (`session_id`) and conversation (`conversation_id`,
    /// the session when the widget sent none), when it sent a well-formed one.
    pub session_id: Option<String>,
    pub conversation_id: Option<String>,
    /// The form's title (its id when it has none).
    pub form_title: String,
    /// Each value under its field's label, a chosen option by its label, in form order.
    pub display: Vec<(String, String)>,
    /// When DynamoDB's TTL may delete the submission, epoch seconds: submitted
    /// plus the tenant's `data_retention_days`.
    pub expires_at: u64,
}

/// The latest form a widget session sent, as the chat may remember it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RememberedForm {
    pub form_title: String,
    /// `(label, value)` in form order, as stored (unsanitised).
    pub fields: Vec<(String, String)>,
    pub submitted_at: String,
}

/// Reads the latest submission of one tenant's widget session (a trait
/// object: the chat service holds one).
pub trait SessionForms: Send + Sync {
    fn latest<'a>(
        &'a self,
        tenant_id: &'a str,
        session_id: &'a str,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<Option<RememberedForm>, StoreError>> + Send + 'a>>;
}

/// Where a new submission starts in staff's workflow (`pipeline_status`).
pub const PIPELINE_NEW: &str = "new";

/// A session or conversation id as the widget makes them (`session_1733…_x1y2`,
/// `sess_…`): 1 to 128 of A-Z, a-z, 0-9, `_`, `-`, `.`, `:`. Anything else is
/// not kept (the submission is, without it).
pub fn is_session_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'))
}

/// What `create` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created {
    New,
    /// The client already submitted this; the first response, as stored.
    Duplicate(String),
    /// The client's `client_submission_id` was already used for another form
    /// or other data: nothing was stored.
    KeyReused,
}

/// What a repeated submit must match to be the same submission: its form and
/// its data (keys sorted), as a SHA-256 hex digest.
pub fn content_fingerprint(submission: &NewSubmission) -> String {
    use sha2::{Digest, Sha256};
    let data: std::collections::BTreeMap<&str, String> =
        submission.form_data.iter().map(|(k, v)| (k.as_str(), crate::forms::value_text(v))).collect();
    let canonical = serde_json::json!([submission.event.form_id, data]).to_string();
    Sha256::digest(canonical.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(Debug, thiserror::Error)]
#[error("submission store: {operation} failed")]
pub struct StoreError {
    pub operation: &'static str,
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

/// The submissions table (`dynamodb:PutItem`, `TransactWriteItems`, `GetItem`,
/// `UpdateItem`, `Query` on the outbox and unfulfilled indexes).
pub trait SubmissionStore: Send + Sync + 'static {
    /// Writes the submission, marked unpublished, unless the client already
    /// submitted under `client_submission_id` (then `response` is not stored
    /// and the first one is returned).
    fn create(
        &self,
        submission: &NewSubmission,
        response: &str,
    ) -> impl Future<Output = Result<Created, StoreError>> + Send;
    /// Takes the submission out of the outbox once its event is on the bus.
    fn mark_published(&self, submission_id: &str) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Events of submissions made before `before` (RFC 3339) still in the outbox.
    fn unpublished(
        &self,
        before: &str,
    ) -> impl Future<Output = Result<Vec<FormSubmitted>, StoreError>> + Send;
    /// When the oldest submission made before `before` (RFC 3339) that is
    /// still not fulfilled was submitted, if there is one.
    fn oldest_unfulfilled(
        &self,
        before: &str,
    ) -> impl Future<Output = Result<Option<String>, StoreError>> + Send;
    /// Leases an outbox entry to one sweeper until `until_ms`; false if another holds it or it is gone.
    fn claim(
        &self,
        submission_id: &str,
        now_ms: u128,
        until_ms: u128,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}
