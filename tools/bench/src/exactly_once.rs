//! Exactly once under load (issue: "504 team emails for 500 submissions"):
//! submissions go in through the local host's `/forms` at a set concurrency,
//! the host's consumers fulfil them, and what the emulator actually sent is
//! counted per submission. Every submission of the demo form plans one team
//! email, one confirmation and one SMS, so each ratio should print 1.00.

use std::time::{Duration, Instant};

use futures_util::{StreamExt, stream};
use local_stack::{LocalStack, StackOptions, consumers::Polling};
use serde_json::Value;

use crate::{Error, forms::submit_through_host, fulfillment::stored_items};

/// The applicant of every benchmark submission (`forms::submission`).
const APPLICANT: &str = "ana.lopez@example.org";

/// Every stored submission's status, once at least `expected` are stored and
/// none is still pending (or at `deadline`).
async fn settled(stack: &LocalStack, expected: usize, deadline: Duration) -> Result<Vec<String>, Error> {
    let started = Instant::now();
    loop {
        let items = stored_items(stack).await?;
        let statuses: Vec<String> = items
            .iter()
            .filter(|item| item.contains_key("form_id"))
            .filter_map(|item| item.get("status").and_then(|s| s.as_s().ok()).cloned())
            .collect();
        let ended = statuses.iter().filter(|s| s.contains("fulfilled")).count();
        if statuses.len() >= expected && ended == statuses.len() {
            return Ok(statuses);
        }
        if started.elapsed() > deadline {
            return Err(format!(
                "{ended} of {} stored submissions settled after {deadline:?} ({expected} answered success)",
                statuses.len()
            )
            .into());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

pub async fn run(submissions: usize, concurrency: usize) -> Result<(), Error> {
    let options = StackOptions {
        consumers: Some(Polling { retry_delay: None, pollers: 2 }),
        ..StackOptions::for_tests()
    };
    let stack = LocalStack::start(options).await?;
    // The demo tenant's SMS quota (50 a month) would skip the rest: lift it before the first submit.
    let key = format!("tenants/{}/config.json", local_stack::demo::DEMO_TENANT_ID);
    let s3 = local_stack::s3_client(&stack.sdk_config);
    let object = s3.get_object().bucket(&stack.settings.config_bucket).key(&key).send().await?;
    let mut config: Value = serde_json::from_slice(&object.body.collect().await?.into_bytes())?;
    config["sms_monthly_limit"] = serde_json::json!(submissions * 2);
    s3.put_object()
        .bucket(&stack.settings.config_bucket)
        .key(&key)
        .body(config.to_string().into_bytes().into())
        .send()
        .await?;
    let client = reqwest::Client::new();
    let started = Instant::now();
    let refusals: Vec<String> = stream::iter(0..submissions)
        .map(|n| submit_through_host(&client, &stack, n))
        .buffer_unordered(concurrency.max(1))
        .filter_map(|result| std::future::ready(result.err().map(|err| err.to_string())))
        .collect()
        .await;
    let failed = refusals.len();
    if let Some(first) = refusals.first() {
        println!("  {failed} submits were not answered form_complete, e.g. {first:.200}");
    }
    let statuses = settled(&stack, submissions - failed, Duration::from_secs(600)).await?;
    let elapsed = started.elapsed();
    let data: Value = reqwest::get(format!("{}/moto-api/data.json", stack.endpoint)).await?.json().await?;
    let emails = data["ses"]["Message"].as_array().cloned().unwrap_or_default();
    let to_applicant = |email: &&Value| {
        email["destinations"]["ToAddresses"].as_array().is_some_and(|a| a.iter().any(|t| t == APPLICANT))
    };
    let confirmations = emails.iter().filter(to_applicant).count();
    let team = emails.len() - confirmations;
    let sms = data["sns"]["SMS"].as_array().map_or(0, Vec::len);
    let partial = statuses.iter().filter(|s| s.as_str() == "partially_fulfilled").count();
    stack.stop().await;

    let stored = statuses.len() as f64;
    println!(
        "exactly once: {submissions} submissions at concurrency {concurrency} through the local host, 2 pollers per queue"
    );
    println!(
        "  stored {}, refused {failed}, settled in {:.1} s ({partial} partially fulfilled)",
        statuses.len(),
        elapsed.as_secs_f64()
    );
    println!("  team emails per submission:    {:.2} ({team})", team as f64 / stored);
    println!("  confirmations per submission:  {:.2} ({confirmations})", confirmations as f64 / stored);
    println!("  SMS per submission:            {:.2} ({sms})", sms as f64 / stored);
    Ok(())
}
