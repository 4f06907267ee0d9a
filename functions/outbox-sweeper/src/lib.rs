//! outbox-sweeper: a saved submission is never left without its event. Every
//! run publishes the FormSubmitted of submissions still in the outbox (the
//! intake could not publish them), each under a lease so that two runs never
//! publish the same one.

use std::time::Duration;

use serde::Serialize;
use shared::{
    events::EventPublisher,
    submissions::SubmissionStore,
    telemetry::{error_chain, now_epoch_millis},
};

/// Submissions younger than this are left to the intake, which is normally
/// publishing them at this very moment.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(60);
/// How long one sweeper owns an entry while it publishes.
const LEASE: Duration = Duration::from_secs(120);

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct SweepReport {
    pub found: usize,
    pub published: usize,
    /// Leased by another run, or published meanwhile.
    pub skipped: usize,
    pub failed: usize,
}

/// Publishes every outbox entry older than `grace`.
pub async fn sweep(
    store: &impl SubmissionStore,
    publisher: &impl EventPublisher,
    grace: Duration,
) -> SweepReport {
    let now = now_epoch_millis();
    let before = shared::telemetry::rfc3339_at(now.saturating_sub(grace.as_millis()));
    let pending = match store.unpublished(&before).await {
        Ok(pending) => pending,
        Err(err) => {
            tracing::error!(error = %error_chain(&err), "outbox unreadable");
            return SweepReport { failed: 1, ..SweepReport::default() };
        }
    };
    let mut report = SweepReport { found: pending.len(), ..SweepReport::default() };
    for event in pending {
        let id = event.submission_id.as_str();
        match store.claim(id, now, now + LEASE.as_millis()).await {
            Ok(true) => {}
            Ok(false) => {
                report.skipped += 1;
                continue;
            }
            Err(err) => {
                tracing::error!(submission_id = id, error = %error_chain(&err), "outbox entry not claimed");
                report.failed += 1;
                continue;
            }
        }
        if let Err(err) = publisher.publish(&event).await {
            tracing::error!(submission_id = id, error = %error_chain(&err), "still unpublished; next run retries");
            report.failed += 1;
            continue;
        }
        match store.mark_published(id).await {
            Ok(()) => report.published += 1,
            Err(err) => {
                tracing::error!(submission_id = id, error = %error_chain(&err), "published but still in the outbox");
                report.failed += 1;
            }
        }
    }
    tracing::info!(
        found = report.found,
        published = report.published,
        skipped = report.skipped,
        failed = report.failed,
        "outbox swept"
    );
    report
}
