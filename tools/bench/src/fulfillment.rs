//! Fulfillment latency and throughput through the whole pipeline: submissions
//! go in through the local host's `/forms`, the host polls the three consumer
//! queues as Lambda's event sources would, and each submission is timed from
//! its `submitted_at` to the `fulfilled_at` its last channel wrote.

use std::time::{Duration, Instant};

use crate::{Error, forms::submit_through_host, report};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_smithy_types::date_time::{DateTime, Format};
use local_stack::{LocalStack, StackOptions, consumers::Polling};

fn millis(time: &str) -> Option<i64> {
    DateTime::from_str(time, Format::DateTime).ok()?.to_millis().ok()
}

/// Every item of the submissions table (every page of a consistent scan).
pub(crate) async fn stored_items(
    stack: &LocalStack,
) -> Result<Vec<std::collections::HashMap<String, AttributeValue>>, Error> {
    let items = aws_sdk_dynamodb::Client::new(&stack.sdk_config)
        .scan()
        .table_name(&stack.settings.form_submissions_table)
        .consistent_read(true)
        .into_paginator()
        .items()
        .send()
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    Ok(items)
}

/// Submitted → fulfilled for every submission, once all are fulfilled.
async fn fulfilled(stack: &LocalStack, expected: usize, deadline: Duration) -> Result<Vec<Duration>, Error> {
    let started = Instant::now();
    loop {
        let items = stored_items(stack).await?;
        let text = |item: &std::collections::HashMap<String, AttributeValue>, key: &str| {
            item.get(key).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default()
        };
        let done: Vec<Duration> = items
            .iter()
            .filter(|item| text(item, "status") == "fulfilled")
            .filter_map(|item| {
                let took = millis(&text(item, "fulfilled_at"))? - millis(&text(item, "submitted_at"))?;
                Some(Duration::from_millis(u64::try_from(took).unwrap_or(0)))
            })
            .collect();
        if done.len() >= expected {
            return Ok(done);
        }
        if started.elapsed() > deadline {
            return Err(format!(
                "only {} of {expected} submissions fulfilled after {deadline:?}",
                done.len()
            )
            .into());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

pub async fn run(submissions: usize) -> Result<(), Error> {
    let options = StackOptions {
        consumers: Some(Polling { retry_delay: None, pollers: 2 }),
        ..StackOptions::for_tests()
    };
    let stack = LocalStack::start(options).await?;
    let client = reqwest::Client::new();
    let started = Instant::now();
    for n in 0..submissions {
        submit_through_host(&client, &stack, n).await?;
    }
    let mut latencies = fulfilled(&stack, submissions, Duration::from_secs(300)).await?;
    let elapsed = started.elapsed();
    stack.stop().await;

    println!(
        "fulfillment: {submissions} submissions (email team + confirmation, 1 SMS, S3 archive each), 2 pollers per queue"
    );
    report("submitted_at → fulfilled_at (all three channels done)", &mut latencies);
    println!(
        "  throughput: {:.1} submissions/s fully fulfilled ({} emails, {} SMS, {} archives in {:.1} s)",
        submissions as f64 / elapsed.as_secs_f64(),
        2 * submissions,
        submissions,
        submissions,
        elapsed.as_secs_f64()
    );
    Ok(())
}
