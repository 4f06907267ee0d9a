//! email-sender: for each FormSubmitted, the team notification and (when
//! enabled) the applicant confirmation, each sent at most once however often
//! the event is delivered or replayed, within the tenant's email caps
//! (`rate_limits.emails_per_month`, `rate_limits.confirmations_per_recipient_per_day`).

pub mod render;

use std::{collections::BTreeMap, sync::Arc};

use aws_adapters::{
    dynamodb::DynamoCounters, dynamodb::DynamoSubmissionStore, s3::S3ConfigSource, ses::SesMailer,
};
use domain::{
    failure::Failure,
    fill::TemplateValues,
    forms,
    fulfillment::{FulfillmentLedger, Outcome, StoredSubmission},
    limits::{self, Limit, Limiter, SubjectKey, Verdict, now_seconds},
    mail::{Email, Mailer},
    report::{LineSink, error_chain},
    tenant::{ConfigSource, Tenant, TenantLoader},
};
use lambda_edge::{
    consumer::{Channel, Consumer, Job, load_tenant},
    telemetry::stdout_sink,
};
use serde_json::Value;

/// The resource names this function reads, required when it runs in Lambda
/// (the template gives it exactly these: `tests/template_policies.rs`).
pub const REQUIRED_SETTINGS: &[&str] =
    &["CONFIG_BUCKET", "FORM_SUBMISSIONS_TABLE", "RATE_LIMITS_TABLE", "VISITOR_KEY_SECRET"];

/// The consumer the Lambda runs and the local host polls with.
pub type AwsEmailConsumer = Consumer<DynamoSubmissionStore, EmailChannel<S3ConfigSource, SesMailer>>;

pub fn aws_consumer(
    config: &aws_types::SdkConfig,
    settings: &lambda_edge::Settings,
    tenants: Arc<TenantLoader<S3ConfigSource>>,
) -> AwsEmailConsumer {
    let ledger =
        DynamoSubmissionStore::new(aws_sdk_dynamodb::Client::new(config), &settings.form_submissions_table);
    let mailer = SesMailer::new(aws_adapters::ses::ses_client(config), &settings.ses_from_email);
    let counters = DynamoCounters::new(aws_sdk_dynamodb::Client::new(config), &settings.rate_limits_table);
    let caps = Limiter::new(Arc::new(counters));
    let channel =
        EmailChannel::new(tenants, mailer, caps, stdout_sink()).with_subject_key(settings.visitor_key());
    Consumer::new(ledger, channel)
}

/// The `email` channel: the team notification and the applicant confirmation.
pub struct EmailChannel<C, M> {
    tenants: Arc<TenantLoader<C>>,
    mailer: M,
    /// The email caps. They fail closed: an email is only sent once counted.
    caps: Limiter,
    metrics: LineSink,
    /// The key of applicants' address hashes in counter keys (`VISITOR_KEY_SECRET`).
    subject_key: SubjectKey,
}

/// What became of one email.
enum Sent {
    /// Sent now, or by an earlier delivery.
    Yes,
    /// Held back by this cap; nothing was sent.
    Capped(Limit),
    /// SES may have taken it (its answer was lost): not sent again.
    Unknown(String),
}

impl<C: ConfigSource, M: Mailer> EmailChannel<C, M> {
    pub fn new(tenants: Arc<TenantLoader<C>>, mailer: M, caps: Limiter, metrics: LineSink) -> Self {
        Self { tenants, mailer, caps, metrics, subject_key: SubjectKey::of_this_process() }
    }

    /// The key of address hashes, in place of this process's own.
    pub fn with_subject_key(mut self, key: SubjectKey) -> Self {
        self.subject_key = key;
        self
    }

    /// Sends one part unless an earlier delivery did, once a unit of every
    /// cap is taken (in order); a cap at its limit holds it back, and a send
    /// that fails gives its units back. A counter that cannot be reached is a
    /// transient failure: no email goes out uncounted.
    async fn send<L: FulfillmentLedger>(
        &self,
        job: &Job<'_, L>,
        part: &str,
        email: &Email,
        caps: &[Limit],
    ) -> Result<Sent, Failure> {
        if job.done(part) {
            return Ok(Sent::Yes);
        }
        let now = now_seconds();
        for (taken, cap) in caps.iter().enumerate() {
            let verdict = self.caps.take(cap, now).await;
            if !matches!(verdict, Ok(Verdict::Allowed)) {
                self.give_back(&caps[..taken], now).await;
            }
            match verdict {
                Ok(Verdict::Allowed) => {}
                Ok(Verdict::Refused { .. }) => {
                    tracing::warn!(
                        tenant_id = cap.tenant_id,
                        limit = cap.name,
                        max = cap.max,
                        part,
                        "email cap reached; email skipped"
                    );
                    (self.metrics)(limits::metric_line("LimitRefused", &cap.tenant_id, cap.name));
                    return Ok(Sent::Capped(cap.clone()));
                }
                Err(err) => {
                    (self.metrics)(limits::metric_line("LimiterErrors", &cap.tenant_id, cap.name));
                    return Err(Failure::transient(err));
                }
            }
        }
        if let Err(err) = self.mailer.send(email).await {
            if err.delivery == domain::mail::Delivery::Unknown {
                // It may be out: its units stay taken, and it is not sent again.
                return Ok(Sent::Unknown(error_chain(&err)));
            }
            self.give_back(caps, now).await;
            return Err(Failure::from_error(err));
        }
        job.record(part).await?;
        Ok(Sent::Yes)
    }

    async fn give_back(&self, caps: &[Limit], taken_at: u64) {
        for cap in caps {
            if let Err(err) = self.caps.give_back(cap, taken_at).await {
                tracing::error!(limit = cap.name, error = %error_chain(&err), "a unit of an email cap was not given back");
            }
        }
    }
}

/// Why a capped email was skipped, as the channel's record says it.
fn capped_reason(cap: &Limit) -> &'static str {
    if cap.name == "emails_per_month" {
        "monthly_email_limit_reached"
    } else {
        "recipient_daily_limit_reached"
    }
}

impl<C: ConfigSource, M: Mailer> Channel for EmailChannel<C, M> {
    const NAME: &'static str = domain::events::channel::EMAIL;
    /// Two sends that may each wait out SES's late answer
    /// (`aws_adapters::config::SEND_ATTEMPT_TIMEOUT`), with the claim and the caps around them.
    const RECORD_TIME: std::time::Duration = std::time::Duration::from_secs(20);

    async fn fulfil<L: FulfillmentLedger>(&self, job: &Job<'_, L>) -> Result<Outcome, Failure> {
        let submission = job.submission;
        let tenant = load_tenant(&self.tenants, &job.submission.tenant_id).await?;
        let Some(form) = tenant.config.form(&submission.form_id) else {
            return Err(Failure::permanent(format!("form {} is no longer configured", submission.form_id)));
        };
        let internal = tenant.config.internal_notification(form);
        let team = tenant.config.team_email_recipients(form);
        let caps = &tenant.config.rate_limits;
        let monthly = limits::monthly_emails(&tenant.id, caps);
        let mut sent_any = false;
        let mut unknown: Vec<(&str, String)> = Vec::new();
        let values = TemplateValues::of(&tenant, form, submission);
        if !team.is_empty() {
            let email = render::team_email(
                team,
                form,
                submission,
                &values,
                internal.and_then(|i| i.subject.as_deref()),
                internal.and_then(|i| i.body_template.as_deref()),
            );
            match self.send(job, "team", &email, std::slice::from_ref(&monthly)).await? {
                Sent::Capped(cap) => return Ok(skipped(&cap)),
                Sent::Unknown(error) => unknown.push(("team", error)),
                Sent::Yes => sent_any = true,
            }
        }
        if let Some(email) = confirmation(&tenant, form, submission, &values) {
            // Per recipient first: a capped address does not use up the month.
            let to = email.to.first().map(String::as_str).unwrap_or_default();
            let per_recipient = limits::confirmations_to(&self.subject_key, &tenant.id, to, caps);
            match self.send(job, "confirmation", &email, &[per_recipient, monthly]).await? {
                Sent::Yes => sent_any = true,
                Sent::Unknown(error) => unknown.push(("confirmation", error)),
                Sent::Capped(cap) if sent_any => {
                    return Ok(Outcome::SentWithout {
                        part: "confirmation".into(),
                        reason: capped_reason(&cap).into(),
                    });
                }
                Sent::Capped(cap) => return Ok(skipped(&cap)),
            }
        }
        if !unknown.is_empty() {
            let parts = unknown.iter().map(|(part, _)| (*part).to_owned()).collect();
            let error = unknown.into_iter().map(|(_, error)| error).collect::<Vec<_>>().join("; ");
            return Ok(Outcome::Unknown { parts, error });
        }
        Ok(if sent_any { Outcome::Sent } else { Outcome::skipped("no_recipients") })
    }
}

/// The channel skipped at a cap: its reason, the limit and its config key.
fn skipped(cap: &Limit) -> Outcome {
    let details = BTreeMap::from([
        ("limit".to_owned(), cap.max.to_string()),
        ("limit_key".to_owned(), format!("rate_limits.{}", cap.name)),
    ]);
    Outcome::skipped_with(capped_reason(cap), details)
}

/// The applicant's confirmation, when the form (else the tenant) wants one and
/// the applicant gave a valid email address: the contact found at intake, or,
/// for a submission stored before contacts were kept, found in its values now.
fn confirmation(
    tenant: &Tenant,
    form: &domain::tenant::FormConfig,
    submission: &StoredSubmission,
    values: &TemplateValues,
) -> Option<Email> {
    if !tenant.config.confirms_applicant(form) {
        return None;
    }
    let address = match &submission.contact.email {
        Some(address) => address.clone(),
        None => forms::extract_contact(form, |key| submission.form_data.get(key).map(String::as_str)).email?,
    };
    forms::validate_field(None, "email", &Value::String(address.clone())).ok()?;
    let settings = form.notifications.as_ref().and_then(|n| n.applicant_confirmation.as_ref());
    Some(render::confirmation_email(
        address,
        values,
        settings.and_then(|s| s.subject.as_deref()),
        settings.and_then(|s| s.body_template.as_deref()),
    ))
}
