//! The channel's decisions, with the ledger, the tenant store and the three
//! handlers faked: which handler runs, what it is given, what is skipped, and
//! that a retry never repeats a handler that already ran.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex},
};

use domain::{
    events::FormSubmitted,
    events::{DETAIL_TYPE, SOURCE},
    fulfillment::{Claim, FulfillmentLedger, Lease, LedgerError, Outcome, StoredSubmission, matches_event},
    submissions::StoreError,
    tenant::{ConfigSource, SourceError, TenantLoader},
};
use lambda_edge::consumer::{Consumer, Disposition};
use serde_json::{Value, json};

use crate::{
    HandlerChannel,
    archive::{Archive, ArchiveError},
    invoke::{InvokeError, Invoker},
    webhook::{Delivered, Webhook, WebhookError},
};

const TENANT: &str = "RIV204815";
const FORM: &str = "reading_buddy_application";
const SUBMISSIONS_BUCKET: &str = "tenant-form-submissions";

pub(crate) fn submission() -> StoredSubmission {
    StoredSubmission {
        submission_id: "reading_1_abc".into(),
        tenant_id: TENANT.into(),
        form_id: FORM.into(),
        priority: domain::forms::Priority::High,
        submitted_at: "2026-11-25T03:04:05.123Z".into(),
        status: Some(domain::fulfillment::SubmissionStatus::PendingFulfillment),
        form_data: BTreeMap::from([
            ("email".into(), "ana@example.org".into()),
            ("first_name".into(), "Ana".into()),
        ]),
        contact: Default::default(),
        channels: vec!["handler".into()],
        fulfillment: BTreeMap::from([(
            "handler".into(),
            BTreeMap::from([("status".into(), "queued".into())]),
        )]),
        staff: Default::default(),
        pipeline_status: None,
    }
}

/// One submission's record, as the table would keep it.
#[derive(Clone)]
struct Ledger(Arc<Mutex<StoredSubmission>>);

impl Ledger {
    fn status(&self) -> String {
        self.0.lock().unwrap().fulfillment["handler"]["status"].clone()
    }

    fn record(&self) -> BTreeMap<String, String> {
        self.0.lock().unwrap().fulfillment["handler"].clone()
    }

    /// As if the outcome of an earlier delivery had been lost after its side effect.
    fn set_status(&self, status: &str) {
        self.0.lock().unwrap().fulfillment.get_mut("handler").unwrap().insert("status".into(), status.into());
    }
}

impl FulfillmentLedger for Ledger {
    async fn claim(
        &self,
        event: &FormSubmitted,
        channel: &str,
        _: u128,
        _: u128,
    ) -> Result<Claim, StoreError> {
        let mut submission = self.0.lock().unwrap();
        if !matches_event(&submission, event) {
            return Ok(Claim::Mismatch);
        }
        let record = submission.fulfillment.get_mut(channel).unwrap();
        if matches!(record["status"].as_str(), "sent" | "skipped") {
            return Ok(Claim::Done);
        }
        record.insert("status".into(), "in_progress".into());
        Ok(Claim::Acquired(Box::new(submission.clone()), Lease::new(&event.submission_id, channel)))
    }

    async fn part_done(&self, lease: &Lease, part: &str) -> Result<(), LedgerError> {
        let mut submission = self.0.lock().unwrap();
        submission
            .fulfillment
            .get_mut(&lease.channel)
            .unwrap()
            .insert(format!("{part}_done_at"), "now".into());
        Ok(())
    }

    async fn finish(&self, lease: &Lease, outcome: &Outcome) -> Result<(), LedgerError> {
        let mut submission = self.0.lock().unwrap();
        let record = submission.fulfillment.get_mut(&lease.channel).unwrap();
        let status = match outcome {
            Outcome::Sent | Outcome::SentWithout { .. } => "sent".to_owned(),
            Outcome::Skipped { reason, details } => {
                record.extend(details.clone());
                record.insert("reason".into(), reason.clone());
                "skipped".to_owned()
            }
            Outcome::Failed { error } => {
                record.insert("last_error".into(), error.clone());
                "failed".to_owned()
            }
            Outcome::Unknown { error, .. } => {
                record.insert("last_error".into(), error.clone());
                "unknown".to_owned()
            }
        };
        record.insert("status".into(), status);
        Ok(())
    }
}

struct Configs(HashMap<String, Vec<u8>>);

impl ConfigSource for Configs {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, SourceError> {
        Ok(self.0.get(key).cloned())
    }
}

/// One call of a handler: which, to where (function, bucket/key or URL), with what.
#[derive(Debug, Clone, PartialEq)]
struct Call {
    handler: &'static str,
    target: String,
    document: Value,
}

/// The three handlers, recording every call and failing when told to.
#[derive(Clone, Default)]
struct Handlers {
    calls: Arc<Mutex<Vec<Call>>>,
    /// `Some(permanent)`: every call fails.
    fail: Option<bool>,
}

impl Handlers {
    fn record(&self, handler: &'static str, target: &str, document: &[u8]) {
        let document = serde_json::from_slice(document).unwrap();
        self.calls.lock().unwrap().push(Call { handler, target: target.to_owned(), document });
    }

    fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }
}

impl Invoker for Handlers {
    async fn invoke_event(&self, function: &str, payload: Vec<u8>) -> Result<(), InvokeError> {
        self.record("invoke", function, &payload);
        match self.fail {
            None => Ok(()),
            Some(permanent) => {
                Err(InvokeError { function: function.into(), permanent, source: "refused".into() })
            }
        }
    }
}

impl Archive for Handlers {
    async fn put(&self, bucket: &str, key: &str, document: Vec<u8>) -> Result<(), ArchiveError> {
        self.record("archive", &format!("{bucket}/{key}"), &document);
        match self.fail {
            None => Ok(()),
            Some(permanent) => Err(ArchiveError {
                bucket: bucket.into(),
                key: key.into(),
                permanent,
                source: "refused".into(),
            }),
        }
    }
}

impl Webhook for Handlers {
    async fn post(
        &self,
        url: &str,
        _idempotency_key: &str,
        document: Vec<u8>,
    ) -> Result<Delivered, WebhookError> {
        self.record("webhook", url, &document);
        match self.fail {
            None => Ok(Delivered { host: "hooks.example.org".into(), status: 200 }),
            Some(true) => Err(WebhookError::Status { host: "hooks.example.org".into(), status: 404 }),
            Some(false) => Err(WebhookError::Status { host: "hooks.example.org".into(), status: 503 }),
        }
    }
}

type TestConsumer = Consumer<Ledger, HandlerChannel<Configs, Handlers, Handlers, Handlers>>;

/// A consumer for a tenant whose config is `config`, over one queued submission.
fn consumer(config: Value, handlers: &Handlers) -> (TestConsumer, Ledger) {
    let configs =
        Configs(HashMap::from([(format!("tenants/{TENANT}/config.json"), config.to_string().into_bytes())]));
    let channel = HandlerChannel::new(
        Arc::new(TenantLoader::new(configs)),
        handlers.clone(),
        handlers.clone(),
        handlers.clone(),
        SUBMISSIONS_BUCKET,
    );
    let ledger = Ledger(Arc::new(Mutex::new(submission())));
    (Consumer::new(ledger.clone(), channel), ledger)
}

fn form_with(fulfillment: Value) -> Value {
    json!({"conversational_forms": {FORM: {"fulfillment": fulfillment}}})
}

fn envelope() -> String {
    let submission = submission();
    let event = submission.event();
    json!({"version": "0", "id": "e-1", "detail-type": DETAIL_TYPE, "source": SOURCE, "detail": event})
        .to_string()
}

#[tokio::test]
async fn a_form_without_a_handler_type_is_skipped_as_no_handler() {
    let handlers = Handlers::default();
    let (consumer, ledger) = consumer(form_with(json!({"email_to": "team@example.org"})), &handlers);
    assert_eq!(consumer.handle_record(&envelope()).await, Disposition::Ack);
    assert_eq!((ledger.status(), ledger.record()["reason"].clone()), ("skipped".into(), "no_handler".into()));
    assert!(handlers.calls().is_empty());
}

#[tokio::test]
async fn an_unknown_handler_type_is_skipped_and_named() {
    let handlers = Handlers::default();
    let (consumer, ledger) = consumer(form_with(json!({"type": "ftp"})), &handlers);
    assert_eq!(consumer.handle_record(&envelope()).await, Disposition::Ack);
    let record = ledger.record();
    assert_eq!((record["status"].as_str(), record["reason"].as_str()), ("skipped", "unknown_handler_type"));
    assert_eq!(record["type"], "ftp");
    assert!(handlers.calls().is_empty());
}

#[tokio::test]
async fn a_lambda_handler_is_invoked_once_with_the_documented_payload() {
    let handlers = Handlers::default();
    let fulfillment = json!({"type": "lambda", "function": "Riverbend_Intake_Handler", "action": "enroll"});
    let (consumer, ledger) = consumer(form_with(fulfillment), &handlers);
    assert_eq!(consumer.handle_record(&envelope()).await, Disposition::Ack);
    assert_eq!(consumer.handle_record(&envelope()).await, Disposition::Ack, "a redelivery is acknowledged");
    assert_eq!(ledger.status(), "sent");
    let expected = json!({
        "action": "enroll", "form_type": FORM, "submission_id": "reading_1_abc",
        "responses": {"email": "ana@example.org", "first_name": "Ana"}, "tenant_id": TENANT, "priority": "high",
    });
    let invoked = Call { handler: "invoke", target: "Riverbend_Intake_Handler".into(), document: expected };
    assert_eq!(handlers.calls(), [invoked]);
}

#[tokio::test]
async fn a_retry_after_a_recorded_archive_does_not_archive_again() {
    let handlers = Handlers::default();
    let (consumer, ledger) =
        consumer(form_with(json!({"type": "s3", "bucket": "riverbend-form-archive"})), &handlers);
    assert_eq!(consumer.handle_record(&envelope()).await, Disposition::Ack);
    ledger.set_status("failed");
    assert_eq!(consumer.handle_record(&envelope()).await, Disposition::Ack);
    assert_eq!(ledger.status(), "sent");
    let calls = handlers.calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(
        calls[0].target,
        format!("riverbend-form-archive/submissions/{TENANT}/{FORM}/reading_1_abc.json")
    );
}

#[tokio::test]
async fn an_s3_handler_without_a_bucket_archives_to_the_submissions_bucket() {
    let handlers = Handlers::default();
    let (consumer, _) = consumer(form_with(json!({"type": "s3"})), &handlers);
    consumer.handle_record(&envelope()).await;
    assert!(handlers.calls()[0].target.starts_with(&format!("{SUBMISSIONS_BUCKET}/submissions/")));
}

#[tokio::test]
async fn the_tenants_default_fulfillment_applies_when_the_form_names_none() {
    let handlers = Handlers::default();
    let config = json!({
        "default_fulfillment": {"type": "webhook", "webhook_url": "https://hooks.example.org/intake?token=t"},
        "conversational_forms": {FORM: {}},
    });
    let (consumer, ledger) = consumer(config, &handlers);
    assert_eq!(consumer.handle_record(&envelope()).await, Disposition::Ack);
    assert_eq!(ledger.status(), "sent");
    let calls = handlers.calls();
    assert_eq!(
        (calls[0].handler, calls[0].target.as_str()),
        ("webhook", "https://hooks.example.org/intake?token=t")
    );
    assert_eq!(calls[0].document["timestamp"], "2026-11-25T03:04:05.123Z");
}

#[tokio::test]
async fn a_lambda_handler_without_a_function_fails_for_good() {
    let handlers = Handlers::default();
    let (consumer, ledger) = consumer(form_with(json!({"type": "lambda"})), &handlers);
    assert_eq!(consumer.handle_record(&envelope()).await, Disposition::Ack);
    assert_eq!(ledger.status(), "failed");
    assert!(ledger.record()["last_error"].contains("without a function"));
    assert!(handlers.calls().is_empty());
}

#[tokio::test]
async fn a_form_no_longer_configured_fails_for_good() {
    let handlers = Handlers::default();
    let (consumer, ledger) = consumer(json!({"conversational_forms": {"other_form": {}}}), &handlers);
    assert_eq!(consumer.handle_record(&envelope()).await, Disposition::Ack);
    assert_eq!(ledger.status(), "failed");
    assert!(ledger.record()["last_error"].contains("no longer configured"));
}

#[tokio::test]
async fn a_transient_handler_failure_is_retried_and_a_permanent_one_is_not() {
    for (permanent, disposition) in [(false, Disposition::Retry), (true, Disposition::Ack)] {
        let handlers = Handlers { fail: Some(permanent), ..Handlers::default() };
        let fulfillment = json!({"type": "webhook", "webhook_url": "https://hooks.example.org/intake"});
        let (consumer, ledger) = consumer(form_with(fulfillment), &handlers);
        assert_eq!(consumer.handle_record(&envelope()).await, disposition, "permanent: {permanent}");
        assert_eq!(ledger.status(), "failed");
        assert!(!ledger.record().contains_key("webhook_done_at"));
    }
}
