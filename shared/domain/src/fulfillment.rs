//! The per-channel fulfillment record of a submission (`fulfillment.<channel>`):
//! queued → in_progress (with a lease) → sent | skipped | failed, changed only
//! by conditional updates, so a redelivered or replayed event never repeats a
//! side effect that already happened.

use std::{collections::BTreeMap, future::Future};

use crate::{events::FormSubmitted, forms::Priority, submissions::StoreError};

/// A stored submission, as a consumer reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSubmission {
    pub submission_id: String,
    pub tenant_id: String,
    pub form_id: String,
    pub priority: Priority,
    pub submitted_at: String,
    /// `pending_fulfillment` until the roll-up moves it on; `None` when the
    /// item has no status this code writes.
    pub status: Option<SubmissionStatus>,
    pub form_data: BTreeMap<String, String>,
    /// The applicant's contact as found at intake (empty on submissions made before it was kept).
    pub contact: crate::forms::Contact,
    pub channels: Vec<String>,
    /// Channel → its record's attributes (status, parts already done, ...).
    pub fulfillment: BTreeMap<String, BTreeMap<String, String>>,
    /// What staff work with (default on a submission stored before it was kept).
    pub staff: crate::submissions::StaffView,
    /// Staff's workflow state (`new` when stored; staff move it on).
    pub pipeline_status: Option<String>,
}

impl StoredSubmission {
    /// A channel's status as stored (a planned channel without one is queued).
    pub fn channel_status(&self, channel: &str) -> Option<ChannelStatus> {
        let record = self.fulfillment.get(channel)?;
        Some(record.get("status").and_then(|s| ChannelStatus::parse(s)).unwrap_or(ChannelStatus::Queued))
    }

    /// Whether one part of a channel (e.g. the team email) was already done.
    pub fn part_done(&self, channel: &str, part: &str) -> bool {
        self.fulfillment.get(channel).is_some_and(|record| record.contains_key(&format!("{part}_done_at")))
    }

    /// Whether the channel's record carries this lease (an in-progress claim of this delivery).
    pub fn holds_lease(&self, lease: &Lease) -> bool {
        self.fulfillment
            .get(&lease.channel)
            .is_some_and(|record| record.get("lease").is_some_and(|token| *token == lease.token))
    }

    /// The FormSubmitted event this submission is published as.
    pub fn event(&self) -> FormSubmitted {
        FormSubmitted {
            schema_version: crate::events::SCHEMA_VERSION,
            submission_id: self.submission_id.clone(),
            tenant_id: self.tenant_id.clone(),
            form_id: self.form_id.clone(),
            priority: self.priority,
            submitted_at: self.submitted_at.clone(),
            channels: self.channels.clone(),
        }
    }
}

/// The outcome of trying to take a channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// Ours until the lease ends: do the side effect. Carries the submission
    /// as the claim left it, so the consumer reads nothing more, and the
    /// lease every later write of this delivery must present.
    Acquired(Box<StoredSubmission>, Lease),
    /// Already sent or skipped: acknowledge and do nothing.
    Done,
    /// Another delivery holds an unexpired lease: try again later.
    Busy,
    /// No such submission (deleted, or never stored): nothing to do.
    Missing,
    /// The stored submission belongs to another tenant or form than the event
    /// says: a forged or corrupted event. Nothing is claimed.
    Mismatch,
}

/// One delivery's hold on a channel: its writes are refused once another
/// delivery has taken the channel over (after this lease expired).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub submission_id: String,
    pub channel: String,
    pub token: String,
}

impl Lease {
    pub fn new(submission_id: &str, channel: &str) -> Self {
        let token: String = std::iter::repeat_with(fastrand::alphanumeric).take(16).collect();
        Self { submission_id: submission_id.to_owned(), channel: channel.to_owned(), token }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// Another delivery took the channel over: this one's write is refused,
    /// so a stale holder never overwrites the newer holder's record.
    #[error("the lease on {channel} of {submission_id} was taken over by another delivery; write refused")]
    LeaseLost { submission_id: String, channel: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How a channel ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Sent,
    /// Sent, except one part (the applicant's confirmation) that a limit held
    /// back: recorded as `<part>: skipped` with `<part>_reason`.
    SentWithout {
        part: String,
        reason: String,
    },
    Skipped {
        reason: String,
        details: BTreeMap<String, String>,
    },
    Failed {
        error: String,
    },
    /// A part (`team`, `to_15035550142`) may have been sent: the provider's
    /// answer was lost. Recorded as `unknown` with `unknown_parts` and never
    /// sent again automatically (SES and SNS take no idempotency key); an
    /// operator checks the provider and sets it back to `failed` to re-send.
    Unknown {
        parts: Vec<String>,
        error: String,
    },
}

impl Outcome {
    pub fn skipped(reason: &str) -> Self {
        Self::skipped_with(reason, BTreeMap::new())
    }

    pub fn skipped_with(reason: &str, details: BTreeMap<String, String>) -> Self {
        Self::Skipped { reason: reason.to_owned(), details }
    }
}

pub trait FulfillmentLedger: Send + Sync + 'static {
    /// Takes `channel` of the submission `event` names, only if the stored
    /// submission belongs to the event's tenant and form.
    fn claim(
        &self,
        event: &FormSubmitted,
        channel: &str,
        now_ms: u128,
        lease_ms: u128,
    ) -> impl Future<Output = Result<Claim, StoreError>> + Send;
    /// Records that one part of a claimed channel is done (while `lease` holds).
    fn part_done(&self, lease: &Lease, part: &str) -> impl Future<Output = Result<(), LedgerError>> + Send;
    /// Ends a claimed channel (while `lease` holds) and, once every planned
    /// channel has ended, rolls the submission's status forward to
    /// `fulfilled` or `partially_fulfilled`.
    fn finish(
        &self,
        lease: &Lease,
        outcome: &Outcome,
    ) -> impl Future<Output = Result<(), LedgerError>> + Send;
}

/// Whether a stored submission is the one an event names (tenant and form).
pub fn matches_event(submission: &StoredSubmission, event: &FormSubmitted) -> bool {
    submission.tenant_id == event.tenant_id && submission.form_id == event.form_id
}

/// Where the `s3` handler archives a submission, and where erasure finds it:
/// `submissions/<tenant_id>/<form_id>/<submission_id>.json`.
pub fn archive_key(submission: &StoredSubmission) -> String {
    format!("submissions/{}/{}/{}.json", submission.tenant_id, submission.form_id, submission.submission_id)
}

/// A channel's `status` in `fulfillment.<channel>` (and in `form_complete`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChannelStatus {
    Queued,
    InProgress,
    Sent,
    Skipped,
    Failed,
    /// A send whose outcome is not known (the answer was lost): not re-sent.
    Unknown,
}

impl ChannelStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::InProgress => "in_progress",
            Self::Sent => "sent",
            Self::Skipped => "skipped",
            Self::Failed => "failed",
            Self::Unknown => "unknown",
        }
    }

    /// As stored; an unknown value reads as `None`.
    pub fn parse(stored: &str) -> Option<Self> {
        [Self::Queued, Self::InProgress, Self::Sent, Self::Skipped, Self::Failed, Self::Unknown]
            .into_iter()
            .find(|status| status.as_str() == stored)
    }

    /// Sent, skipped or maybe sent (unknown): never done again automatically.
    pub fn is_done(self) -> bool {
        matches!(self, Self::Sent | Self::Skipped | Self::Unknown)
    }

    /// Ended, for the roll-up (a failed channel has ended until it is retried).
    pub fn has_ended(self) -> bool {
        matches!(self, Self::Sent | Self::Skipped | Self::Failed | Self::Unknown)
    }
}

/// A submission's `status`, from creation to the roll-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubmissionStatus {
    /// Stored, its event published or on its way; channels not all ended.
    PendingFulfillment,
    /// Stored but held back by a limit: no event, no fulfillment.
    Held,
    /// Every planned channel sent or skipped.
    Fulfilled,
    /// Every planned channel ended, one or more failed or unknown.
    PartiallyFulfilled,
    /// Erased on the person's request (`picasso-ops subject erase`): a
    /// tombstone that says it existed, with nothing of whom.
    Erased,
}

impl SubmissionStatus {
    /// Every status, in the order a submission may pass through them.
    pub const ALL: [Self; 4] =
        [Self::PendingFulfillment, Self::Held, Self::Fulfilled, Self::PartiallyFulfilled];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::PendingFulfillment => "pending_fulfillment",
            Self::Held => "held",
            Self::Fulfilled => "fulfilled",
            Self::PartiallyFulfilled => "partially_fulfilled",
            Self::Erased => "erased",
        }
    }

    /// The status a stored text names; `None` for any other text.
    pub fn parse(stored: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == stored)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_statuses_read_back_as_written_and_unknown_ones_are_none() {
        for status in [
            ChannelStatus::Queued,
            ChannelStatus::InProgress,
            ChannelStatus::Sent,
            ChannelStatus::Skipped,
            ChannelStatus::Failed,
            ChannelStatus::Unknown,
        ] {
            assert_eq!(ChannelStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(ChannelStatus::parse("SENT"), None);
        assert!(ChannelStatus::Skipped.is_done() && !ChannelStatus::Failed.is_done());
        assert!(ChannelStatus::Failed.has_ended() && !ChannelStatus::InProgress.has_ended());
    }

    #[test]
    fn submission_statuses_read_back_as_written_and_unknown_ones_are_none() {
        for status in [
            SubmissionStatus::PendingFulfillment,
            SubmissionStatus::Held,
            SubmissionStatus::Fulfilled,
            SubmissionStatus::PartiallyFulfilled,
        ] {
            assert_eq!(SubmissionStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(SubmissionStatus::parse("Fulfilled"), None);
    }
}
