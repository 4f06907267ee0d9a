//! Operator CLI (`picasso-ops`) for the fulfillment pipeline, usable against AWS
//! or the local stack (`AWS_ENDPOINT_URL`). Every command but `submissions`
//! prints one JSON object.
//!
//! - `replay`: replays a time window of the FormSubmitted archive onto the bus
//!   and waits until the replay completes. Consumers redo only channels not yet
//!   sent or skipped, so a replay never repeats a side effect.
//! - `redrive`: moves a consumer's dead letters back to its queue with plain
//!   receive → send → delete (moto lacks `StartMessageMoveTask`); a message
//!   leaves the DLQ only after its copy is on the queue.
//! - `status`: a submission's fulfillment record, without its form data.
//! - `sms-usage`: a tenant's SMS count for a month.
//! - `submissions`: a tenant's submissions, newest first, as a table, CSV or
//!   JSON (the one command that prints text: table and CSV).
//! - `funnel`: a tenant's funnel per day over the last days, from the funnel projector's counts.
//! - `subject access` / `subject erase`: what is held about one person (by
//!   email address), and erasing it on request (a dry run unless `--confirm`).
//!
//! The functions take SDK clients and resource names, so tests call them directly.

pub mod cli;
pub mod funnel;
pub mod redrive;
pub mod replay;
pub mod resources;
pub mod sms_usage;
pub mod status;
pub mod subject;
pub mod submissions;
pub mod time;

/// An AWS call that failed or answered without something it always sends.
#[derive(Debug, thiserror::Error)]
pub enum AwsError {
    #[error("{operation} {resource} failed")]
    Call {
        operation: &'static str,
        resource: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("{operation} {resource} answered without {field}")]
    Incomplete { operation: &'static str, resource: String, field: &'static str },
}

/// Maps an SDK error to [`AwsError::Call`], keeping it as the source.
pub(crate) fn call_failed<E: std::error::Error + Send + Sync + 'static>(
    operation: &'static str,
    resource: &str,
) -> impl FnOnce(E) -> AwsError {
    let resource = resource.to_owned();
    move |source| AwsError::Call { operation, resource, source: Box::new(source) }
}
