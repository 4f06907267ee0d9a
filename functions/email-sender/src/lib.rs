//! email-sender: for each FormSubmitted, the team notification and (when
//! enabled) the applicant confirmation, each sent at most once however often
//! the event is delivered or replayed.

pub mod render;

use std::sync::Arc;

use serde_json::Value;
use shared::{
    consumer::{Channel, Consumer, Failure, Job, load_tenant},
    forms,
    fulfillment::{FulfillmentLedger, Outcome, StoredSubmission},
    mail::{Email, MailError, Mailer, SesMailer},
    submissions::DynamoSubmissionStore,
    tenant::{ConfigSource, S3ConfigSource, Tenant, TenantLoader},
};

/// The consumer the Lambda runs and the local host polls with.
pub type AwsEmailConsumer = Consumer<DynamoSubmissionStore, EmailChannel<S3ConfigSource, SesMailer>>;

pub fn aws_consumer(
    config: &aws_config::SdkConfig,
    settings: &shared::Settings,
    tenants: Arc<TenantLoader<S3ConfigSource>>,
) -> AwsEmailConsumer {
    let ledger =
        DynamoSubmissionStore::new(aws_sdk_dynamodb::Client::new(config), &settings.form_submissions_table);
    let mailer = SesMailer::new(aws_sdk_sesv2::Client::new(config), &settings.ses_from_email);
    Consumer::new(ledger, EmailChannel::new(tenants, mailer))
}

/// The `email` channel: the team notification and the applicant confirmation.
pub struct EmailChannel<C, M> {
    tenants: Arc<TenantLoader<C>>,
    mailer: M,
}

impl<C: ConfigSource, M: Mailer> EmailChannel<C, M> {
    pub fn new(tenants: Arc<TenantLoader<C>>, mailer: M) -> Self {
        Self { tenants, mailer }
    }

    async fn send<L: FulfillmentLedger>(
        &self,
        job: &Job<'_, L>,
        part: &str,
        email: &Email,
    ) -> Result<(), Failure> {
        job.once(part, async {
            self.mailer.send(email).await.map_err(|err: MailError| Failure::from_error(&err))
        })
        .await
    }
}

impl<C: ConfigSource, M: Mailer> Channel for EmailChannel<C, M> {
    const NAME: &'static str = shared::events::channel::EMAIL;

    async fn fulfil<L: FulfillmentLedger>(&self, job: &Job<'_, L>) -> Result<Outcome, Failure> {
        let submission = job.submission;
        let tenant = load_tenant(&self.tenants, &job.submission.tenant_id).await?;
        let Some(form) = tenant.config.form(&submission.form_id) else {
            return Err(Failure::Permanent(format!("form {} is no longer configured", submission.form_id)));
        };
        let notifications = form.notifications.as_ref();
        let internal = notifications.and_then(|n| n.internal.as_ref()).filter(|i| i.enabled);
        let fulfillment = tenant.config.fulfillment_of(form);
        let team: Vec<String> = match internal.filter(|i| !i.recipients.is_empty()) {
            Some(internal) => internal.recipients.clone(),
            None => fulfillment.map(|f| f.email_to.0.clone()).unwrap_or_default(),
        };
        let mut sent_any = false;
        if !team.is_empty() {
            let email = render::team_email(
                team,
                form,
                submission,
                internal.and_then(|i| i.subject.as_deref()),
                internal.and_then(|i| i.body_template.as_deref()),
            );
            self.send(job, "team", &email).await?;
            sent_any = true;
        }
        if let Some(email) = confirmation(&tenant, form, submission) {
            self.send(job, "confirmation", &email).await?;
            sent_any = true;
        }
        Ok(if sent_any { Outcome::Sent } else { Outcome::skipped("no_recipients") })
    }
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
