//! The outbox-sweeper Lambda, run on a schedule.

use std::{sync::Arc, time::Duration};

use aws_adapters::{dynamodb::DynamoSubmissionStore, eventbridge::EventBridgePublisher, sqs::SqsParking};
use lambda_runtime::{Error, LambdaEvent, run_concurrent, service_fn};
use serde_json::Value;

/// Parked submissions stored per run, ten per batch: well inside the 60 s timeout.
const PARKED_BATCHES: usize = 20;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_edge::telemetry::init();
    let settings = lambda_edge::Settings::for_function(outbox_sweeper::REQUIRED_SETTINGS);
    let sdk_config = lambda_edge::settings::function_sdk_config(&settings);
    let store = DynamoSubmissionStore::new(
        aws_sdk_dynamodb::Client::new(&sdk_config),
        &settings.form_submissions_table,
    );
    let publisher =
        EventBridgePublisher::new(aws_sdk_eventbridge::Client::new(&sdk_config), &settings.event_bus_name);
    let grace = std::env::var("OUTBOX_GRACE_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(outbox_sweeper::DEFAULT_GRACE, Duration::from_secs);
    let function_name = std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_default();
    let parking = settings
        .parked_submissions_queue_url
        .as_ref()
        .map(|url| SqsParking::new(aws_sdk_sqs::Client::new(&sdk_config), url));
    let sweeper = Arc::new((store, publisher, function_name, parking));
    run_concurrent(service_fn(move |_: LambdaEvent<Value>| {
        let sweeper = Arc::clone(&sweeper);
        async move {
            let (store, publisher, function_name, parking) = &*sweeper;
            if let Some(parking) = parking {
                outbox_sweeper::drain_parked(store, parking, publisher, PARKED_BATCHES).await;
            }
            let report = outbox_sweeper::sweep(store, publisher, grace).await;
            // The outbox alarm watches this metric; a run that could not read the outbox writes none.
            if report.found > 0 || report.failed == 0 {
                println!("{}", report.metrics_line(function_name));
            }
            Ok::<_, Error>(report)
        }
    }))
    .await
}
