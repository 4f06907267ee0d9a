//! Submissions parked while the table cannot be reached. The widget shows
//! success whatever form-intake answers, so a valid submission whose write
//! failed or ran past its deadline is not dropped: it goes, whole, to an
//! encrypted SQS queue (`ParkedSubmissionsQueue`, SSE-SQS, 14 days), and the
//! outbox sweeper stores it once the table answers. The write is conditional
//! on the submission id (and on the idempotency key when the client sent one),
//! so a parked submission whose first write did land after all is stored once.

use std::{future::Future, pin::Pin};

use serde::{Deserialize, Serialize};

use crate::submissions::NewSubmission;

/// What a parked message holds: the submission and the answer the visitor got.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Parked {
    pub submission: NewSubmission,
    /// The `form_complete` frame as sent, kept as the idempotency record's answer.
    pub response: String,
}

/// One parked submission taken from the queue, with what deletes it.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub receipt: String,
    /// `None` when the message is not a parked submission (kept for an operator).
    pub parked: Option<Parked>,
}

#[derive(Debug, thiserror::Error)]
#[error("parked submissions queue: {operation} failed")]
pub struct ParkingError {
    pub operation: &'static str,
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

pub type Answer<'a, T> = Pin<Box<dyn Future<Output = Result<T, ParkingError>> + Send + 'a>>;

/// The parking queue (`sqs:SendMessage` for the intake; `sqs:ReceiveMessage`
/// and `sqs:DeleteMessage` for the sweeper). Boxed futures: the intake holds
/// it as an optional `dyn` port, so the services keep their type parameters.
pub trait Parking: Send + Sync + 'static {
    fn park<'a>(&'a self, parked: &'a Parked) -> Answer<'a, ()>;
    /// Up to ten parked submissions, each hidden from other readers for the queue's visibility timeout.
    fn take(&self) -> Answer<'_, Vec<Claimed>>;
    /// Deletes a message once its submission is stored.
    fn release<'a>(&'a self, receipt: &'a str) -> Answer<'a, ()>;
}
