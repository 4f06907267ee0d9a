//! `subject access` and `subject erase`: what this system holds about one
//! person (found by email address, after trimming and lower-casing), and
//! erasing it on request.
//!
//! Found through the tenant's `tenant-time-index` (a Query over the
//! tenant's submissions; no Scan): every submission whose contact or any
//! value is that address. For each, what else holds its data: the
//! idempotency record of its `client_submission_id` (a fingerprint of the
//! answers), the copy `s3` fulfillment archived, and where fulfillment sent
//! it (the tenant's team by email and SMS, the applicant's confirmation,
//! the webhook's host or the handler function): those copies are outside
//! this system, the tenant's to handle.
//!
//! Erasure replaces each submission by a tombstone that keeps only what
//! says it existed (id, tenant, form, when, `status = erased`), so a replay
//! of the archive or a redrive finds nothing to send (a consumer's claim
//! needs the channel's record, which the tombstone has not) and the sweeper
//! nothing to publish; removes the idempotency record's fingerprint (the
//! record stays, so a late retry of the same submit is answered as a
//! duplicate instead of storing it again); deletes the archived copy; and
//! deletes the funnel's summaries of the person's visits (the day's totals
//! stay: they count, they do not link); and
//! writes an audit record with no personal data: who asked, when, and how
//! many of each kind. The events on the bus and in its archive carry no
//! form data (a claim check), so nothing there needs erasing.

use std::collections::HashMap;

use aws_adapters::dynamodb::{EXPIRY_ATTRIBUTE, TENANT_TIME_INDEX, read_item};
use aws_sdk_dynamodb::types::AttributeValue;
use domain::{
    fulfillment::{StoredSubmission, SubmissionStatus, archive_key},
    tenant::{FulfillmentKind, TenantLoader},
};
use serde::Serialize;

use crate::{AwsError, call_failed};

/// An email address as it is compared: trimmed, lower case.
pub fn normalise_email(address: &str) -> String {
    address.trim().to_lowercase()
}

/// Whether a stored submission holds this (normalised) address: as its
/// contact's email, or as any submitted value.
pub fn holds_address(submission: &StoredSubmission, address: &str) -> bool {
    let matches = |value: &str| normalise_email(value) == address;
    submission.contact.email.as_deref().is_some_and(matches)
        || submission.form_data.values().any(|v| matches(v))
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AccessReport {
    pub tenant_id: String,
    pub email: String,
    pub submissions: Vec<Held>,
    /// The funnel's summaries of the visits these submissions came from
    /// (their keys in the funnel table): counts only, but linked to the
    /// person through the session id.
    pub session_summaries: Vec<String>,
    /// What erasure does not reach, to say to the person and the tenant.
    pub not_covered: Vec<&'static str>,
}

/// One submission that holds the person's data, and every copy of it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Held {
    pub submission_id: String,
    pub submitted_at: String,
    pub form_id: String,
    pub form_title: String,
    /// The labels of what is held (never the values).
    pub fields: Vec<String>,
    /// The idempotency record's key, when the submit sent a `client_submission_id`.
    pub idempotency_record: Option<String>,
    /// The copy `s3` fulfillment archived (`present` when it could be read).
    pub archive: Option<ArchiveCopy>,
    /// Where fulfillment sent it: copies held outside this system.
    pub sent_to: Vec<SentTo>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ArchiveCopy {
    pub bucket: String,
    pub key: String,
    /// `present`, or `absent_or_unreadable` (S3 answers a missing key 403 to
    /// a caller without ListBucket on the bucket, as this policy is).
    pub state: &'static str,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SentTo {
    pub channel: String,
    /// The channel's record: `sent`, `skipped`, `failed`, `unknown`, ...
    pub status: String,
    /// Who or what holds a copy: addresses, numbers, a host, a function.
    pub recipients: Vec<String>,
}

const NOT_COVERED: [&str; 4] = [
    "emails and SMS already delivered (the tenant's team mailboxes and phones, the person's own inbox)",
    "what a webhook receiver or a handler function stored (listed under sent_to: the tenant's to erase)",
    "DynamoDB point-in-time backups (kept 35 days) and S3 object versions, which age out on their own",
    "CloudWatch logs, which never hold form values (emails and numbers are masked)",
];

/// Every submission of the tenant that holds the address, read a page at a time.
pub async fn find(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    tenant_id: &str,
    address: &str,
) -> Result<Vec<StoredSubmission>, AwsError> {
    let mut pages = dynamodb
        .query()
        .table_name(table)
        .index_name(TENANT_TIME_INDEX)
        .key_condition_expression("tenant_id = :tenant")
        .expression_attribute_values(":tenant", AttributeValue::S(tenant_id.to_owned()))
        .into_paginator()
        .send();
    let mut found = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(call_failed("Query", table))?;
        found.extend(page.items().iter().map(read_item).filter(|s| holds_address(s, address)));
    }
    Ok(found)
}

/// Where the data of these submissions is, from the table, the archive
/// bucket and the tenant's current config.
pub async fn access<C: domain::tenant::ConfigSource>(
    clients: &Clients<'_>,
    tenants: &TenantLoader<C>,
    tenant_id: &str,
    email: &str,
) -> Result<AccessReport, SubjectError> {
    let address = normalise_email(email);
    let found = find(clients.dynamodb, clients.table, tenant_id, &address).await?;
    let tenant = tenants.load_by_id(tenant_id).await.map_err(|source| SubjectError::Tenant { source })?;
    let mut submissions = Vec::with_capacity(found.len());
    let mut session_summaries = Vec::new();
    for submission in found.iter().filter(|s| s.status != Some(SubmissionStatus::Erased)) {
        submissions.push(held(clients, &tenant, submission, &address).await?);
        if let Some(session_id) = &submission.staff.session_id {
            for key in summaries_of(clients, tenant_id, session_id, &submission.submitted_at).await? {
                if !session_summaries.contains(&key) {
                    session_summaries.push(key);
                }
            }
        }
    }
    Ok(AccessReport {
        tenant_id: tenant_id.to_owned(),
        email: address,
        submissions,
        session_summaries,
        not_covered: NOT_COVERED.to_vec(),
    })
}

/// The funnel's summaries of one session around a submission's day (a visit
/// may cross midnight): their keys, `session#<day>#<session_id>`.
async fn summaries_of(
    clients: &Clients<'_>,
    tenant_id: &str,
    session_id: &str,
    submitted_at: &str,
) -> Result<Vec<String>, AwsError> {
    let day = submitted_at.get(..10).unwrap_or_default();
    let secs = aws_smithy_types::DateTime::from_str(
        &format!("{day}T00:00:00Z"),
        aws_smithy_types::date_time::Format::DateTime,
    )
    .map(|t| t.secs())
    .unwrap_or(0);
    let around = |offset: i64| {
        domain::time::rfc3339_at(u128::try_from((secs + offset) * 1000).unwrap_or(0))[..10].to_owned()
    };
    let mut keys = Vec::new();
    for day in [around(-86_400), day.to_owned(), around(86_400)] {
        let key = format!("session#{day}#{session_id}");
        let item = clients
            .dynamodb
            .get_item()
            .table_name(clients.funnel_table)
            .key("tenant_id", AttributeValue::S(tenant_id.to_owned()))
            .key("key", AttributeValue::S(key.clone()))
            .projection_expression("#k")
            .expression_attribute_names("#k", "key")
            .send()
            .await
            .map_err(call_failed("GetItem", clients.funnel_table))?
            .item;
        if item.is_some() {
            keys.push(key);
        }
    }
    Ok(keys)
}

/// The SDK clients and names the subject commands use.
pub struct Clients<'a> {
    pub dynamodb: &'a aws_sdk_dynamodb::Client,
    pub s3: &'a aws_sdk_s3::Client,
    pub table: &'a str,
    /// The funnel's table (`picasso-funnel-<stage>`): visits' summaries.
    pub funnel_table: &'a str,
    /// `SUBMISSIONS_BUCKET`: where `s3` fulfillment archives when the form names no bucket.
    pub submissions_bucket: &'a str,
}

async fn held(
    clients: &Clients<'_>,
    tenant: &domain::tenant::Tenant,
    submission: &StoredSubmission,
    address: &str,
) -> Result<Held, SubjectError> {
    let form = tenant.config.form(&submission.form_id);
    let fields = if submission.staff.display.is_empty() {
        submission.form_data.keys().cloned().collect()
    } else {
        submission.staff.display.iter().map(|(label, _)| label.clone()).collect()
    };
    let idempotency_record = match client_submission_id(clients, submission).await? {
        Some(token) => {
            let key = format!("client#{}#{token}", submission.tenant_id);
            exists(clients, &key).await?.then_some(key)
        }
        None => None,
    };
    let fulfillment = form.and_then(|form| tenant.config.fulfillment_of(form));
    let archive = match fulfillment.filter(|f| f.kind == Some(FulfillmentKind::S3)) {
        Some(f) => {
            let bucket = f.bucket.clone().unwrap_or_else(|| clients.submissions_bucket.to_owned());
            let key = archive_key(submission);
            let state = match clients.s3.head_object().bucket(&bucket).key(&key).send().await {
                Ok(_) => "present",
                Err(_) => "absent_or_unreadable",
            };
            Some(ArchiveCopy { bucket, key, state })
        }
        None => None,
    };
    let mut sent_to = Vec::new();
    for channel in &submission.channels {
        let record = submission.fulfillment.get(channel);
        let status = record.and_then(|r| r.get("status")).cloned().unwrap_or_else(|| "queued".to_owned());
        let recipients = match (channel.as_str(), form) {
            ("email", Some(form)) => {
                let mut to = tenant.config.team_email_recipients(form);
                if record.is_some_and(|r| r.contains_key("confirmation_done_at")) {
                    to.push(address.to_owned());
                }
                to
            }
            ("sms", Some(form)) => tenant.config.team_sms_recipients(form),
            ("handler", Some(_)) => handler_target(fulfillment),
            _ => Vec::new(),
        };
        sent_to.push(SentTo { channel: channel.clone(), status, recipients });
    }
    Ok(Held {
        submission_id: submission.submission_id.clone(),
        submitted_at: submission.submitted_at.clone(),
        form_id: submission.form_id.clone(),
        form_title: submission.staff.form_title.clone(),
        fields,
        idempotency_record,
        archive,
        sent_to,
    })
}

/// Where handler-dispatch sent it: the webhook's host (not its path or
/// query, which may carry a token), the function, or the archive bucket.
fn handler_target(fulfillment: Option<&domain::tenant::Fulfillment>) -> Vec<String> {
    let Some(f) = fulfillment else { return Vec::new() };
    match &f.kind {
        Some(FulfillmentKind::Webhook) => f
            .webhook_url
            .as_deref()
            .and_then(|url| url.parse::<http::Uri>().ok())
            .and_then(|uri| uri.host().map(|host| format!("webhook {host}")))
            .into_iter()
            .collect(),
        Some(FulfillmentKind::Lambda) => f.function.iter().map(|name| format!("function {name}")).collect(),
        Some(FulfillmentKind::S3) => f.bucket.iter().map(|bucket| format!("s3 bucket {bucket}")).collect(),
        _ => Vec::new(),
    }
}

/// The item's `client_submission_id`, which `read_item` does not keep.
async fn client_submission_id(
    clients: &Clients<'_>,
    submission: &StoredSubmission,
) -> Result<Option<String>, AwsError> {
    let item = clients
        .dynamodb
        .get_item()
        .table_name(clients.table)
        .key("submission_id", AttributeValue::S(submission.submission_id.clone()))
        .projection_expression("client_submission_id")
        .send()
        .await
        .map_err(call_failed("GetItem", clients.table))?
        .item;
    Ok(item.and_then(|mut item| match item.remove("client_submission_id") {
        Some(AttributeValue::S(token)) => Some(token),
        _ => None,
    }))
}

async fn exists(clients: &Clients<'_>, key: &str) -> Result<bool, AwsError> {
    let item = clients
        .dynamodb
        .get_item()
        .table_name(clients.table)
        .key("submission_id", AttributeValue::S(key.to_owned()))
        .projection_expression("submission_id")
        .send()
        .await
        .map_err(call_failed("GetItem", clients.table))?
        .item;
    Ok(item.is_some())
}

/// What an erasure did (or, as a dry run, would do): counts only.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Erasure {
    pub dry_run: bool,
    pub tenant_id: String,
    pub submissions: usize,
    pub idempotency_records: usize,
    pub archived_copies: usize,
    pub session_summaries: usize,
    /// The audit record's key (none on a dry run).
    pub audit_record: Option<String>,
    /// Copies outside this system, for the tenant to erase: channel and where.
    pub downstream: Vec<String>,
}

/// Erases what `report` found; with `dry_run`, only counts it.
pub async fn erase(
    clients: &Clients<'_>,
    report: &AccessReport,
    requested_by: &str,
    dry_run: bool,
) -> Result<Erasure, SubjectError> {
    let idempotency_records = report.submissions.iter().filter(|h| h.idempotency_record.is_some()).count();
    let archives: Vec<&ArchiveCopy> = report.submissions.iter().filter_map(|h| h.archive.as_ref()).collect();
    let downstream: Vec<String> = report
        .submissions
        .iter()
        .flat_map(|h| h.sent_to.iter())
        .filter(|s| s.channel == "handler" && s.status == "sent")
        .flat_map(|s| s.recipients.iter().cloned())
        .collect();
    let mut erasure = Erasure {
        dry_run,
        tenant_id: report.tenant_id.clone(),
        submissions: report.submissions.len(),
        idempotency_records,
        archived_copies: archives.len(),
        session_summaries: report.session_summaries.len(),
        audit_record: None,
        downstream,
    };
    if dry_run {
        return Ok(erasure);
    }
    let now = domain::time::now_rfc3339();
    for held in &report.submissions {
        tombstone(clients, &report.tenant_id, held, &now).await?;
        if let Some(key) = &held.idempotency_record {
            clients
                .dynamodb
                .update_item()
                .table_name(clients.table)
                .key("submission_id", AttributeValue::S(key.clone()))
                .update_expression("REMOVE fingerprint SET erased_at = :now")
                .condition_expression("attribute_exists(submission_id)")
                .expression_attribute_values(":now", AttributeValue::S(now.clone()))
                .send()
                .await
                .map_err(call_failed("UpdateItem", clients.table))?;
        }
        if let Some(copy) = &held.archive {
            // Deleting a key that is not there succeeds: no need to know first.
            clients
                .s3
                .delete_object()
                .bucket(&copy.bucket)
                .key(&copy.key)
                .send()
                .await
                .map_err(call_failed("DeleteObject", &copy.bucket))?;
        }
    }
    for key in &report.session_summaries {
        clients
            .dynamodb
            .delete_item()
            .table_name(clients.funnel_table)
            .key("tenant_id", AttributeValue::S(report.tenant_id.clone()))
            .key("key", AttributeValue::S(key.clone()))
            .send()
            .await
            .map_err(call_failed("DeleteItem", clients.funnel_table))?;
    }
    let audit = format!("erasure#{}#{}", report.tenant_id, domain::time::now_epoch_millis());
    let n = |count: usize| AttributeValue::N(count.to_string());
    clients
        .dynamodb
        .put_item()
        .table_name(clients.table)
        .item("submission_id", AttributeValue::S(audit.clone()))
        .item("kind", AttributeValue::S("erasure".to_owned()))
        .item("tenant_id", AttributeValue::S(report.tenant_id.clone()))
        .item("requested_by", AttributeValue::S(requested_by.to_owned()))
        .item("erased_at", AttributeValue::S(now))
        .item("submissions", n(erasure.submissions))
        .item("idempotency_records", n(erasure.idempotency_records))
        .item("archived_copies", n(erasure.archived_copies))
        .item("session_summaries", n(erasure.session_summaries))
        .condition_expression("attribute_not_exists(submission_id)")
        .send()
        .await
        .map_err(call_failed("PutItem", clients.table))?;
    erasure.audit_record = Some(audit);
    Ok(erasure)
}

/// Replaces the submission by what says it existed and nothing of whom.
async fn tombstone(clients: &Clients<'_>, tenant_id: &str, held: &Held, now: &str) -> Result<(), AwsError> {
    let s = |v: &str| AttributeValue::S(v.to_owned());
    let current = clients
        .dynamodb
        .get_item()
        .table_name(clients.table)
        .key("submission_id", s(&held.submission_id))
        .projection_expression("#e")
        .expression_attribute_names("#e", EXPIRY_ATTRIBUTE)
        .send()
        .await
        .map_err(call_failed("GetItem", clients.table))?
        .item;
    let mut item = HashMap::from([
        ("submission_id".to_owned(), s(&held.submission_id)),
        ("tenant_id".to_owned(), s(tenant_id)),
        ("form_id".to_owned(), s(&held.form_id)),
        ("submitted_at".to_owned(), s(&held.submitted_at)),
        ("status".to_owned(), s(SubmissionStatus::Erased.as_str())),
        ("erased_at".to_owned(), s(now)),
    ]);
    // The tombstone goes when the submission would have.
    if let Some(expiry) = current.and_then(|mut item| item.remove(EXPIRY_ATTRIBUTE)) {
        item.insert(EXPIRY_ATTRIBUTE.to_owned(), expiry);
    }
    clients
        .dynamodb
        .put_item()
        .table_name(clients.table)
        .set_item(Some(item))
        .condition_expression("tenant_id = :tenant")
        .expression_attribute_values(":tenant", s(tenant_id))
        .send()
        .await
        .map_err(call_failed("PutItem", clients.table))?;
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum SubjectError {
    #[error(transparent)]
    Aws(#[from] AwsError),
    #[error("the tenant's config could not be read")]
    Tenant {
        #[source]
        source: domain::tenant::TenantError,
    },
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn an_address_is_found_in_the_contact_or_any_value_whatever_its_case_and_spaces() {
        let mut submission = StoredSubmission {
            submission_id: "s".into(),
            tenant_id: "T".into(),
            form_id: "f".into(),
            priority: Default::default(),
            submitted_at: String::new(),
            status: None,
            form_data: BTreeMap::new(),
            contact: Default::default(),
            channels: Vec::new(),
            fulfillment: BTreeMap::new(),
            staff: Default::default(),
            pipeline_status: None,
        };
        let address = normalise_email("  Ana.Lopez@Example.ORG ");
        assert_eq!(address, "ana.lopez@example.org");
        assert!(!holds_address(&submission, &address));
        submission.form_data.insert("work_email".into(), "ANA.LOPEZ@example.org".into());
        assert!(holds_address(&submission, &address), "a value of any field");
        submission.form_data.clear();
        submission.contact.email = Some("ana.lopez@example.org ".into());
        assert!(holds_address(&submission, &address), "the contact");
        assert!(!holds_address(&submission, "ana@example.org"), "another address is not a match");
    }

    #[test]
    fn the_handler_target_names_a_webhooks_host_never_its_path_or_token() {
        let webhook = domain::tenant::Fulfillment {
            kind: Some(FulfillmentKind::Webhook),
            webhook_url: Some("https://hooks.example.org/in/s3cr3t-token?key=abc".into()),
            ..Default::default()
        };
        assert_eq!(handler_target(Some(&webhook)), ["webhook hooks.example.org"]);
    }
}
