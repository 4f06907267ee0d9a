//! sms-sender: for each FormSubmitted, a one-segment SMS alert to the tenant's
//! team, within its monthly quota, sent at most once per recipient however
//! often the event is delivered or replayed.

pub mod quota;
pub mod text;

use std::{collections::BTreeMap, sync::Arc};

use aws_adapters::{dynamodb::DynamoSubmissionStore, s3::S3ConfigSource};
use domain::{
    failure::Failure,
    fill::{TemplateValues, fill, one_line},
    forms::Priority,
    fulfillment::{FulfillmentLedger, Outcome},
    mask::mask_phone,
    report::error_chain,
    tenant::{ConfigSource, SmsWhen, TenantLoader},
    time::now_rfc3339,
};
use lambda_edge::consumer::{Channel, Consumer, Job, load_tenant};

use crate::{
    quota::{DynamoQuota, Quota, Taken},
    text::{SnsTexter, Texter, fit_one_segment, is_e164, normalise_number},
};

/// The resource names this function reads, required when it runs in Lambda
/// (the template gives it exactly these: `tests/template_policies.rs`).
pub const REQUIRED_SETTINGS: &[&str] = &["CONFIG_BUCKET", "FORM_SUBMISSIONS_TABLE", "SMS_USAGE_TABLE"];

/// The consumer the Lambda runs and the local host polls with.
pub type AwsSmsConsumer = Consumer<DynamoSubmissionStore, SmsChannel<S3ConfigSource, SnsTexter, DynamoQuota>>;

pub fn aws_consumer(
    config: &aws_types::SdkConfig,
    settings: &lambda_edge::Settings,
    tenants: Arc<TenantLoader<S3ConfigSource>>,
) -> AwsSmsConsumer {
    let dynamodb = aws_sdk_dynamodb::Client::new(config);
    let ledger = DynamoSubmissionStore::new(dynamodb.clone(), &settings.form_submissions_table);
    let quota = DynamoQuota::new(dynamodb, &settings.sms_usage_table);
    let texter = SnsTexter::new(text::sns_client(config));
    Consumer::new(ledger, SmsChannel::new(tenants, texter, quota, settings.sms_monthly_limit))
}

/// The `sms` channel.
pub struct SmsChannel<C, T, Q> {
    tenants: Arc<TenantLoader<C>>,
    texter: T,
    quota: Q,
    /// `SMS_MONTHLY_LIMIT`, for tenants without `sms_monthly_limit`.
    default_limit: u32,
    /// Where the month's usage goes as a metric (stdout in Lambda: EMF).
    metrics: domain::report::LineSink,
}

/// The namespace of the SMS metrics (the dashboard's "SMS against quota").
pub const NAMESPACE: &str = "Picasso/Sms";

/// The month's SMS count after a send, and the tenant's quota, per tenant (EMF).
pub fn usage_metric_line(tenant_id: &str, used: u32, quota: u32) -> String {
    serde_json::json!({
        "_aws": {
            "Timestamp": domain::time::now_epoch_millis(),
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [["TenantId"]],
                "Metrics": [{"Name": "SmsUsedThisMonth", "Unit": "Count"}, {"Name": "SmsMonthlyQuota", "Unit": "Count"}],
            }],
        },
        "TenantId": tenant_id,
        "SmsUsedThisMonth": used,
        "SmsMonthlyQuota": quota,
    })
    .to_string()
}

impl<C: ConfigSource, T: Texter, Q: Quota> SmsChannel<C, T, Q> {
    pub fn new(tenants: Arc<TenantLoader<C>>, texter: T, quota: Q, default_limit: u32) -> Self {
        Self { tenants, texter, quota, default_limit, metrics: lambda_edge::telemetry::stdout_sink() }
    }

    /// Metric lines to `metrics` instead of stdout.
    pub fn with_metrics(mut self, metrics: domain::report::LineSink) -> Self {
        self.metrics = metrics;
        self
    }

    /// Takes a unit of quota and sends; a failed send gives the unit back.
    async fn send_within_quota(&self, to: &str, message: &str, usage: &Usage<'_>) -> Result<Texted, Failure> {
        let taken =
            self.quota.take(usage.tenant_id, usage.month, usage.limit).await.map_err(Failure::transient)?;
        let used = match taken {
            Taken::Exhausted { usage } => return Ok(Texted::Exhausted { usage }),
            Taken::Granted { usage } => usage,
        };
        (self.metrics)(usage_metric_line(usage.tenant_id, used, usage.limit));
        if let Err(err) = self.texter.send(to, message).await {
            if err.delivery == crate::text::Delivery::Unknown {
                // It may be out: its unit stays taken, and it is not sent again.
                return Ok(Texted::Unknown(error_chain(&err)));
            }
            if let Err(undo) = self.quota.give_back(usage.tenant_id, usage.month).await {
                tracing::error!(error = %error_chain(&undo), "a unit of SMS quota was not given back");
            }
            return Err(Failure::from_error(err));
        }
        Ok(Texted::Sent)
    }
}

/// What became of one SMS.
enum Texted {
    Sent,
    /// The month's limit is reached; nothing was sent.
    Exhausted {
        usage: u32,
    },
    /// SNS may have taken it (its answer was lost): not sent again.
    Unknown(String),
}

struct Usage<'a> {
    tenant_id: &'a str,
    month: &'a str,
    limit: u32,
}

impl<C: ConfigSource, T: Texter, Q: Quota> Channel for SmsChannel<C, T, Q> {
    const NAME: &'static str = domain::events::channel::SMS;

    async fn fulfil<L: FulfillmentLedger>(&self, job: &Job<'_, L>) -> Result<Outcome, Failure> {
        let submission = job.submission;
        let tenant = load_tenant(&self.tenants, &job.submission.tenant_id).await?;
        let Some(form) = tenant.config.form(&submission.form_id) else {
            return Err(Failure::permanent(format!("form {} is no longer configured", submission.form_id)));
        };
        let internal = form.notifications.as_ref().and_then(|n| n.internal.as_ref()).filter(|i| i.enabled);
        let fulfillment = tenant.config.fulfillment_of(form);
        let (recipients, template, when) = match internal.filter(|i| !i.sms_recipients.is_empty()) {
            Some(i) => (i.sms_recipients.clone(), i.sms_template.as_deref(), i.sms_when),
            None => (fulfillment.map(|f| f.sms_to.0.clone()).unwrap_or_default(), None, SmsWhen::Always),
        };
        if when == SmsWhen::HighPriority && submission.priority != Priority::High {
            return Ok(Outcome::skipped("not_high_priority"));
        }
        let mut numbers: Vec<String> = recipients.iter().map(|to| normalise_number(to)).collect();
        numbers.dedup();
        let (valid, invalid): (Vec<_>, Vec<_>) = numbers.iter().partition(|to| is_e164(to));
        for to in &invalid {
            tracing::warn!(to = mask_phone(to), "SMS recipient is not an E.164 number; skipped");
        }
        if valid.is_empty() {
            return Err(Failure::permanent("no SMS recipient is an E.164 number"));
        }
        let title = form.title.as_deref().unwrap_or(&submission.form_id);
        let message = match template {
            Some(template) => fill(template, &TemplateValues::of(&tenant, form, submission), str::to_owned),
            None => format!("New {title} ({} priority). Details in your inbox.", submission.priority),
        };
        let message = fit_one_segment(&one_line(&message));
        let month = now_rfc3339().chars().take(7).collect::<String>();
        let usage = Usage {
            tenant_id: &submission.tenant_id,
            month: &month,
            limit: tenant.config.sms_monthly_limit.unwrap_or(self.default_limit),
        };
        let mut unknown: Vec<(String, String)> = Vec::new();
        for to in &valid {
            // Keyed by the number, not its place in the list: if the list
            // changes between deliveries, nobody is skipped or texted twice.
            let part = format!("to_{}", to.trim_start_matches('+'));
            if job.done(&part) {
                continue;
            }
            let used = match self.send_within_quota(to, &message, &usage).await? {
                Texted::Sent => None,
                Texted::Exhausted { usage } => Some(usage),
                Texted::Unknown(error) => {
                    unknown.push((part, error));
                    continue;
                }
            };
            if let Some(used) = used {
                tracing::warn!(
                    tenant_id = usage.tenant_id,
                    used,
                    limit = usage.limit,
                    "monthly SMS limit reached"
                );
                let details = BTreeMap::from([
                    ("usage".to_owned(), used.to_string()),
                    ("limit".to_owned(), usage.limit.to_string()),
                    ("month".to_owned(), month.clone()),
                ]);
                return Ok(Outcome::skipped_with("monthly_limit_reached", details));
            }
            tracing::info!(to = mask_phone(to), "SMS sent");
            job.record(&part).await?;
        }
        if !unknown.is_empty() {
            let (parts, errors): (Vec<String>, Vec<String>) = unknown.into_iter().unzip();
            return Ok(Outcome::Unknown { parts, error: errors.join("; ") });
        }
        Ok(Outcome::Sent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_months_usage_is_a_metric_per_tenant_against_its_quota() {
        let line: serde_json::Value = serde_json::from_str(&usage_metric_line("T1", 42, 100)).unwrap();
        assert_eq!(line["_aws"]["CloudWatchMetrics"][0]["Namespace"], "Picasso/Sms");
        assert_eq!(line["_aws"]["CloudWatchMetrics"][0]["Dimensions"], serde_json::json!([["TenantId"]]));
        assert_eq!((line["TenantId"].as_str(), line["SmsUsedThisMonth"].as_u64()), (Some("T1"), Some(42)));
        assert_eq!(line["SmsMonthlyQuota"], 100);
    }
}
