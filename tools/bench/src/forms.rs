//! form-intake latency: end to end through the local host, and split between
//! our code and the emulator by timing every store and publish call in process.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use aws_adapters::{dynamodb::DynamoSubmissionStore, eventbridge::EventBridgePublisher};
use domain::{
    events::{EventPublisher, FormSubmitted, PublishError},
    submissions::{Created, NewSubmission, StoreError, SubmissionStore},
};
use serde_json::json;

use crate::{Error, quiet_stack, report};

/// Time spent waiting on AWS calls during the current request.
#[derive(Clone, Default)]
struct Waited(Arc<Mutex<Duration>>);

impl Waited {
    async fn time<T>(&self, call: impl Future<Output = T>) -> T {
        let started = Instant::now();
        let output = call.await;
        if let Ok(mut total) = self.0.lock() {
            *total += started.elapsed();
        }
        output
    }

    fn take(&self) -> Duration {
        self.0.lock().map(|mut total| std::mem::take(&mut *total)).unwrap_or_default()
    }
}

struct TimedStore(DynamoSubmissionStore, Waited);
struct TimedPublisher(EventBridgePublisher, Waited);

impl SubmissionStore for TimedStore {
    async fn create(&self, submission: &NewSubmission, response: &str) -> Result<Created, StoreError> {
        self.1.time(self.0.create(submission, response)).await
    }
    async fn mark_published(&self, submission_id: &str) -> Result<(), StoreError> {
        self.1.time(self.0.mark_published(submission_id)).await
    }
    async fn unpublished(&self, before: &str) -> Result<Vec<FormSubmitted>, StoreError> {
        self.1.time(self.0.unpublished(before)).await
    }
    async fn claim(&self, submission_id: &str, now_ms: u128, until_ms: u128) -> Result<bool, StoreError> {
        self.1.time(self.0.claim(submission_id, now_ms, until_ms)).await
    }
    async fn oldest_unfulfilled(&self, before: &str) -> Result<Option<String>, StoreError> {
        self.1.time(self.0.oldest_unfulfilled(before)).await
    }
}

impl EventPublisher for TimedPublisher {
    async fn publish(&self, event: &FormSubmitted) -> Result<(), PublishError> {
        self.1.time(self.0.publish(event)).await
    }
}

/// Posts submission `n` through the local host's `/forms`; any answer but
/// `form_complete` is an error.
pub(crate) async fn submit_through_host(
    client: &reqwest::Client,
    stack: &local_stack::LocalStack,
    n: usize,
) -> Result<(), Error> {
    let body =
        client.post(format!("{}/forms", stack.host_url())).body(submission(n)).send().await?.text().await?;
    if !body.contains("form_complete") {
        return Err(format!("submission {n} failed: {body}").into());
    }
    Ok(())
}

pub(crate) fn submission(n: usize) -> String {
    json!({
        "tenant_hash": local_stack::demo::DEMO_TENANT_HASH, "form_mode": true, "action": "submit_form",
        "form_id": "reading_buddy_application",
        "form_data": {
            "age_18_plus": "yes", "first_name": "Ana", "last_name": format!("Lopez {n}"), "email": "ana.lopez@example.org",
            "phone": "+1 (503) 555-0199", "zip_code": "97412", "availability": "Weekday afternoons",
            "why_reading_buddies": "I loved reading with my grandmother and want to pass that on to kids."
        }
    })
    .to_string()
}

pub async fn run(submissions: usize) -> Result<(), Error> {
    let stack = quiet_stack().await?;
    let client = reqwest::Client::new();
    let mut through_host = Vec::with_capacity(submissions);
    for n in 0..submissions {
        let started = Instant::now();
        submit_through_host(&client, &stack, n).await?;
        through_host.push(started.elapsed());
    }

    let waited = Waited::default();
    let config = &stack.sdk_config;
    let service = form_intake::FormService::new(
        form_intake::tenant_loader(config, &stack.settings),
        TimedStore(
            DynamoSubmissionStore::new(
                aws_sdk_dynamodb::Client::new(config),
                &stack.settings.form_submissions_table,
            ),
            waited.clone(),
        ),
        TimedPublisher(
            EventBridgePublisher::new(
                aws_sdk_eventbridge::Client::new(config),
                &stack.settings.event_bus_name,
            ),
            waited.clone(),
        ),
    );
    let (mut total, mut emulator, mut ours) = (Vec::new(), Vec::new(), Vec::new());
    for n in 0..submissions {
        let body = submission(n);
        let started = Instant::now();
        let response = service.handle(body.as_bytes()).await;
        let elapsed = started.elapsed();
        let on_aws = waited.take();
        if response.status != 200 {
            return Err(format!("in-process submission {n} failed: {}", response.body()).into());
        }
        total.push(elapsed);
        emulator.push(on_aws);
        ours.push(elapsed.saturating_sub(on_aws));
    }
    stack.stop().await;

    let sum = |v: &[Duration]| v.iter().sum::<Duration>().as_secs_f64();
    println!("forms: {submissions} sequential submit_form requests (demo tenant, 3 channels)");
    report("through the local host (HTTP, client-side)", &mut through_host);
    report("in process, whole request", &mut total);
    report(
        "in process, in AWS calls (SDK and moto: DynamoDB write, PutEvents, outbox update)",
        &mut emulator,
    );
    report("in process, our code (parsing, tenant lookup, validation, priority, framing)", &mut ours);
    println!(
        "  share of in-process time in our code: {:.1} %",
        100.0 * sum(&ours) / sum(&total).max(f64::EPSILON)
    );
    Ok(())
}
