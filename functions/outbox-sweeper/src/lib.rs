//! outbox-sweeper: a valid submission is never lost and never left without
//! its event. Every run first stores the submissions the intake parked while
//! the table could not take them (`domain::parking`), then publishes the
//! FormSubmitted of submissions still in the outbox (the intake could not
//! publish them), each under a lease so that two runs never publish the same one.

use std::time::Duration;

use domain::{
    events::{EventPublisher, FormSubmitted},
    parking::Parking,
    report::error_chain,
    submissions::{Created, SubmissionStore},
    time::now_epoch_millis,
};
use serde::Serialize;

/// The resource names this function reads, required when it runs in Lambda
/// (the template gives it exactly these: `tests/template_policies.rs`).
pub const REQUIRED_SETTINGS: &[&str] = &["FORM_SUBMISSIONS_TABLE"];

/// Submissions younger than this are left to the intake, which is normally
/// publishing them at this very moment.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(60);
/// A submission still not fulfilled this long after it was made is stuck:
/// its consumers normally finish within seconds, retries within minutes.
pub const UNFULFILLED_AFTER: Duration = Duration::from_secs(15 * 60);

/// How long one sweeper owns an entry while it publishes.
const LEASE: Duration = Duration::from_secs(120);

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct SweepReport {
    pub found: usize,
    pub published: usize,
    /// Leased by another run, or published meanwhile.
    pub skipped: usize,
    pub failed: usize,
    /// Age of the oldest submission still in the outbox after this run (0 when
    /// it is empty): the `OutboxOldestAgeSeconds` metric the outbox alarm watches.
    pub oldest_pending_seconds: u64,
    /// Age of the oldest submission still `pending_fulfillment` more than 15
    /// minutes after it was made (0 when there is none): the
    /// `UnfulfilledOldestAgeSeconds` metric, for a consumer that never got
    /// its event (a missing rule sends nothing to any DLQ).
    pub oldest_unfulfilled_seconds: u64,
}

impl SweepReport {
    /// The run's figures as one CloudWatch embedded-metric-format line.
    pub fn metrics_line(&self, function_name: &str) -> String {
        serde_json::json!({
            "_aws": {
                "Timestamp": now_epoch_millis(),
                "CloudWatchMetrics": [{
                    "Namespace": "Picasso/Outbox",
                    "Dimensions": [["FunctionName"]],
                    "Metrics": [
                        {"Name": "OutboxOldestAgeSeconds", "Unit": "Seconds"},
                        {"Name": "OutboxPublished", "Unit": "Count"},
                        {"Name": "OutboxFailed", "Unit": "Count"},
                        {"Name": "UnfulfilledOldestAgeSeconds", "Unit": "Seconds"},
                    ],
                }],
            },
            "FunctionName": function_name,
            "OutboxOldestAgeSeconds": self.oldest_pending_seconds,
            "OutboxPublished": self.published,
            "OutboxFailed": self.failed,
            "UnfulfilledOldestAgeSeconds": self.oldest_unfulfilled_seconds,
        })
        .to_string()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Swept {
    Published,
    /// Leased by another run, or published meanwhile.
    Skipped,
    Failed,
}

/// Claims one outbox entry, publishes its event and takes it out of the outbox.
async fn sweep_one(
    store: &impl SubmissionStore,
    publisher: &impl EventPublisher,
    event: &FormSubmitted,
    now: u128,
) -> Swept {
    let id = event.submission_id.as_str();
    match store.claim(id, now, now + LEASE.as_millis()).await {
        Ok(true) => {}
        Ok(false) => return Swept::Skipped,
        Err(err) => {
            tracing::error!(submission_id = id, error = %error_chain(&err), "outbox entry not claimed");
            return Swept::Failed;
        }
    }
    if let Err(err) = publisher.publish(event).await {
        tracing::error!(submission_id = id, error = %error_chain(&err), "still unpublished; next run retries");
        return Swept::Failed;
    }
    match store.mark_published(id).await {
        Ok(()) => Swept::Published,
        Err(err) => {
            tracing::error!(submission_id = id, error = %error_chain(&err), "published but still in the outbox");
            Swept::Failed
        }
    }
}

/// Seconds from an RFC 3339 time to `now_ms` (0 if it does not parse or is in the future).
fn age_seconds(time: &str, now_ms: u128) -> u64 {
    use aws_smithy_types::date_time::{DateTime, Format};
    let Ok(then) = DateTime::from_str(time, Format::DateTime) else { return 0 };
    let then_ms = u128::try_from(then.to_millis().unwrap_or(0)).unwrap_or(0);
    u64::try_from(now_ms.saturating_sub(then_ms) / 1000).unwrap_or(u64::MAX)
}

/// Publishes every outbox entry older than `grace`.
pub async fn sweep(
    store: &impl SubmissionStore,
    publisher: &impl EventPublisher,
    grace: Duration,
) -> SweepReport {
    let now = now_epoch_millis();
    let before = domain::time::rfc3339_at(now.saturating_sub(grace.as_millis()));
    let pending = match store.unpublished(&before).await {
        Ok(pending) => pending,
        Err(err) => {
            tracing::error!(error = %error_chain(&err), "outbox unreadable");
            return SweepReport { failed: 1, ..SweepReport::default() };
        }
    };
    let mut report = SweepReport { found: pending.len(), ..SweepReport::default() };
    for event in pending {
        let swept = sweep_one(store, publisher, &event, now).await;
        match swept {
            Swept::Published => report.published += 1,
            Swept::Skipped => report.skipped += 1,
            Swept::Failed => report.failed += 1,
        }
        if swept != Swept::Published {
            let age = age_seconds(&event.submitted_at, now);
            report.oldest_pending_seconds = report.oldest_pending_seconds.max(age);
        }
    }
    let stuck_before = domain::time::rfc3339_at(now.saturating_sub(UNFULFILLED_AFTER.as_millis()));
    match store.oldest_unfulfilled(&stuck_before).await {
        Ok(Some(submitted_at)) => {
            report.oldest_unfulfilled_seconds = age_seconds(&submitted_at, now);
            tracing::warn!(
                submitted_at,
                age_seconds = report.oldest_unfulfilled_seconds,
                "a submission has waited over 15 minutes for fulfillment"
            );
        }
        Ok(None) => {}
        Err(err) => tracing::error!(error = %error_chain(&err), "unfulfilled submissions unreadable"),
    }
    tracing::info!(
        found = report.found,
        published = report.published,
        skipped = report.skipped,
        failed = report.failed,
        oldest_unfulfilled_seconds = report.oldest_unfulfilled_seconds,
        "outbox swept"
    );
    report
}

/// What one drain of the parking queue did.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct DrainReport {
    /// Stored now (and published, or left in the outbox for the sweep).
    pub stored: usize,
    /// Already in the table (an earlier write landed, or a retry with the same key).
    pub already_stored: usize,
    /// Left in the queue for the next run: the table still refused, or the message is unreadable.
    pub left: usize,
}

/// Stores every parked submission the queue holds (ten at a time, up to
/// `max_batches`), each with the same conditional write as the intake, so a
/// submission whose first write did land is stored once; then publishes its
/// event. A message is deleted only once its submission is in the table.
pub async fn drain_parked(
    store: &impl SubmissionStore,
    parking: &dyn Parking,
    publisher: &impl EventPublisher,
    max_batches: usize,
) -> DrainReport {
    let mut report = DrainReport::default();
    for _ in 0..max_batches {
        let batch = match parking.take().await {
            Ok(batch) => batch,
            Err(err) => {
                tracing::error!(error = %error_chain(&err), "parked submissions unreadable");
                report.left += 1;
                break;
            }
        };
        if batch.is_empty() {
            break;
        }
        for claimed in batch {
            let Some(parked) = claimed.parked else {
                tracing::error!("a parked message is not a submission; left in the queue for an operator");
                report.left += 1;
                continue;
            };
            let id = parked.submission.event.submission_id.as_str();
            match store.create(&parked.submission, &parked.response).await {
                Ok(Created::New) => {
                    report.stored += 1;
                    match publisher.publish(&parked.submission.event).await {
                        Ok(()) => {
                            if let Err(err) = store.mark_published(id).await {
                                tracing::warn!(submission_id = id, error = %error_chain(&err), "published, still in the outbox");
                            }
                        }
                        Err(err) => {
                            tracing::warn!(submission_id = id, error = %error_chain(&err), "stored; its event is left in the outbox");
                        }
                    }
                }
                Ok(Created::Duplicate(_) | Created::KeyReused) => report.already_stored += 1,
                Err(err) => {
                    tracing::error!(submission_id = id, error = %error_chain(&err), "parked submission still not stored; next run retries");
                    report.left += 1;
                    continue;
                }
            }
            if let Err(err) = parking.release(&claimed.receipt).await {
                // Stored: a second copy is caught by the same conditional write.
                tracing::warn!(submission_id = id, error = %error_chain(&err), "stored, but its parked copy was not deleted");
            }
        }
    }
    if report != DrainReport::default() {
        tracing::info!(
            stored = report.stored,
            already_stored = report.already_stored,
            left = report.left,
            "parked submissions drained"
        );
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_age_of_a_pending_entry_is_counted_in_whole_seconds() {
        let then = "2026-11-25T06:00:00.000Z";
        let now = 1_795_586_400_000 + 90_500; // 06:01:30.5
        assert_eq!(age_seconds(then, now), 90);
        assert_eq!(age_seconds("not a time", now), 0);
        assert_eq!(age_seconds(then, 0), 0, "a time in the future is no age");
    }

    #[test]
    fn the_metrics_line_is_embedded_metric_format_for_the_outbox_alarm() {
        let report = SweepReport {
            found: 2,
            published: 1,
            failed: 1,
            oldest_pending_seconds: 600,
            ..Default::default()
        };
        let line: serde_json::Value =
            serde_json::from_str(&report.metrics_line("picasso-outbox-sweeper-staging")).unwrap();
        assert_eq!(line["_aws"]["CloudWatchMetrics"][0]["Namespace"], "Picasso/Outbox");
        assert_eq!(line["FunctionName"], "picasso-outbox-sweeper-staging");
        assert_eq!(line["OutboxOldestAgeSeconds"], 600);
    }
}
