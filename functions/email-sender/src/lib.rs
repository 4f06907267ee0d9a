//! email-sender: for each FormSubmitted, the team notification and (when
//! enabled) the applicant confirmation, each sent at most once however often
//! the event is delivered or replayed.

pub mod render;

use std::{sync::Arc, time::Duration};

use serde_json::Value;
use shared::{
    consumer::{Disposition, parse_envelope},
    forms,
    fulfillment::{Claim, FulfillmentLedger, Outcome, StoredSubmission},
    mail::{Email, MailError, Mailer},
    telemetry::{error_chain, now_epoch_millis},
    tenant::{ConfigSource, Tenant, TenantLoader},
};

pub const CHANNEL: &str = "email";
/// Longer than sending two emails can take; an expired lease is taken over.
const LEASE: Duration = Duration::from_secs(120);

pub struct EmailSender<C, L, M> {
    tenants: Arc<TenantLoader<C>>,
    ledger: L,
    mailer: M,
}

impl<C: ConfigSource, L: FulfillmentLedger, M: Mailer> EmailSender<C, L, M> {
    pub fn new(tenants: Arc<TenantLoader<C>>, ledger: L, mailer: M) -> Self {
        Self { tenants, ledger, mailer }
    }

    /// One SQS record. A body that is not a FormSubmitted envelope is retried
    /// until the queue's redrive policy moves it to the DLQ, where it is kept.
    pub async fn handle_record(&self, body: &str) -> Disposition {
        let envelope = match parse_envelope(body) {
            Ok(envelope) => envelope,
            Err(err) => {
                tracing::error!(error = %error_chain(&err), "unreadable record; it will reach the DLQ");
                return Disposition::Retry;
            }
        };
        let event = &envelope.detail;
        if !event.channels.iter().any(|c| c == CHANNEL) {
            return Disposition::Ack;
        }
        let id = event.submission_id.as_str();
        let now = now_epoch_millis();
        match self.ledger.claim(id, CHANNEL, now, LEASE.as_millis()).await {
            Ok(Claim::Acquired) => {}
            Ok(Claim::Done) => {
                tracing::info!(
                    submission_id = id,
                    replay = envelope.replay_name,
                    "email already sent; nothing to do"
                );
                return Disposition::Ack;
            }
            Ok(Claim::Missing) => {
                tracing::warn!(submission_id = id, "no such submission; nothing to send");
                return Disposition::Ack;
            }
            Ok(Claim::Busy) => return Disposition::Retry,
            Err(err) => {
                tracing::error!(submission_id = id, error = %error_chain(&err), "email channel not claimed");
                return Disposition::Retry;
            }
        }
        let outcome = self.send_all(id, &event.tenant_id).await;
        let disposition = match &outcome {
            Ok(_) | Err(Failure::Permanent(_)) => Disposition::Ack,
            Err(Failure::Transient(_)) => Disposition::Retry,
        };
        let outcome = match outcome {
            Ok(outcome) => outcome,
            Err(Failure::Permanent(error) | Failure::Transient(error)) => Outcome::Failed { error },
        };
        if let Err(err) = self.ledger.finish(id, CHANNEL, &outcome).await {
            tracing::error!(submission_id = id, error = %error_chain(&err), "email outcome not recorded");
            return Disposition::Retry;
        }
        tracing::info!(submission_id = id, outcome = ?outcome, "email channel finished");
        disposition
    }

    async fn send_all(&self, id: &str, tenant_id: &str) -> Result<Outcome, Failure> {
        let submission = match self.ledger.load(id).await {
            Ok(Some(submission)) => submission,
            Ok(None) => return Ok(skipped("submission_deleted")),
            Err(err) => return Err(Failure::Transient(error_chain(&err))),
        };
        let tenant = self.tenants.load_by_id(tenant_id).await.map_err(|err| {
            let message = error_chain(&err);
            if err.code() == "config_unavailable" {
                Failure::Transient(message)
            } else {
                Failure::Permanent(message)
            }
        })?;
        let Some(form) = tenant.config.form(&submission.form_id) else {
            return Err(Failure::Permanent(format!("form {} is no longer configured", submission.form_id)));
        };
        let notifications = form.notifications.as_ref();
        let internal = notifications.and_then(|n| n.internal.as_ref()).filter(|i| i.enabled);
        let fulfillment = form.fulfillment.as_ref().or(tenant.config.default_fulfillment.as_ref());
        let team: Vec<String> = match internal.filter(|i| !i.recipients.is_empty()) {
            Some(internal) => internal.recipients.clone(),
            None => fulfillment.map(|f| f.email_to.0.clone()).unwrap_or_default(),
        };
        let mut sent_any = false;
        if !team.is_empty() {
            let email = render::team_email(
                team,
                form,
                &submission,
                internal.and_then(|i| i.subject.as_deref()),
                internal.and_then(|i| i.body_template.as_deref()),
            );
            self.send_once(&submission, "team", &email).await?;
            sent_any = true;
        }
        if let Some(email) = confirmation(&tenant, form, &submission) {
            self.send_once(&submission, "confirmation", &email).await?;
            sent_any = true;
        }
        Ok(if sent_any { Outcome::Sent } else { skipped("no_recipients") })
    }

    /// Sends one part unless an earlier delivery already did.
    async fn send_once(
        &self,
        submission: &StoredSubmission,
        part: &str,
        email: &Email,
    ) -> Result<(), Failure> {
        if submission.part_done(CHANNEL, part) {
            return Ok(());
        }
        self.mailer.send(email).await.map_err(|err: MailError| {
            let message = error_chain(&err);
            if err.permanent { Failure::Permanent(message) } else { Failure::Transient(message) }
        })?;
        self.ledger
            .part_done(&submission.submission_id, CHANNEL, part)
            .await
            .map_err(|err| Failure::Transient(error_chain(&err)))
    }
}

enum Failure {
    Permanent(String),
    Transient(String),
}

fn skipped(reason: &str) -> Outcome {
    Outcome::Skipped { reason: reason.to_owned(), details: Default::default() }
}

/// The applicant's confirmation, when the form and the tenant want one and
/// the applicant gave a valid email address.
fn confirmation(
    tenant: &Tenant,
    form: &shared::tenant::FormConfig,
    submission: &StoredSubmission,
) -> Option<Email> {
    let settings = form.notifications.as_ref()?.applicant_confirmation.as_ref()?;
    if !settings.enabled || !tenant.config.sends_confirmation_email() {
        return None;
    }
    let address = submission.form_data.get("email")?;
    forms::validate_field(None, "email", &Value::String(address.clone())).ok()?;
    Some(render::confirmation_email(
        address.clone(),
        form,
        submission,
        settings.subject.as_deref(),
        settings.body_template.as_deref(),
    ))
}
