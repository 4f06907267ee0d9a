//! `replay`: replays the archived FormSubmitted events of a time window onto
//! the event bus they came from, then (optionally) waits for the replay to
//! finish. Consumers redo only channels not yet sent or skipped, so a replay
//! completes unfinished work without repeating any side effect.

use std::time::Duration;

use aws_sdk_eventbridge::types::{ReplayDestination, ReplayState};
use serde::Serialize;

use crate::{
    AwsError, call_failed,
    time::{Window, rfc3339},
};

/// How often a running replay is checked.
pub const POLL_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayRequest {
    pub replay_name: String,
    pub archive_name: String,
    pub event_bus_name: String,
    pub window: Window,
}

/// A replay as last seen: what was asked and the state EventBridge reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Replay {
    pub replay_name: String,
    pub replay_arn: Option<String>,
    pub archive: String,
    pub event_bus: String,
    pub from: String,
    pub to: String,
    pub state: String,
    pub state_reason: Option<String>,
    pub replay_start_time: Option<String>,
    pub replay_end_time: Option<String>,
    /// FormSubmitted events the window holds: the submissions whose event was
    /// published in it, counted in the submissions table (EventBridge reports no
    /// count of a replay's events).
    pub events_in_window: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("replay {replay_name} ended {state}: {}", reason.as_deref().unwrap_or("no reason given"))]
    Ended { replay_name: String, state: String, reason: Option<String> },
    #[error(
        "replay {replay_name} is still {state} after {waited_secs} s; it keeps running \
         (aws events describe-replay --replay-name {replay_name})"
    )]
    TimedOut { replay_name: String, state: String, waited_secs: u64 },
    #[error(transparent)]
    Aws(#[from] AwsError),
}

/// The default replay name, unique per millisecond: `replay-<unix millis>`.
pub fn default_replay_name() -> String {
    format!("replay-{}", domain::time::now_epoch_millis())
}

/// Starts the replay: the archive's and the bus's ARNs, then StartReplay.
pub async fn start_replay(
    eventbridge: &aws_sdk_eventbridge::Client,
    request: &ReplayRequest,
) -> Result<Replay, ReplayError> {
    let archive = &request.archive_name;
    let archive_arn = eventbridge
        .describe_archive()
        .archive_name(archive)
        .send()
        .await
        .map_err(call_failed("DescribeArchive", archive))?
        .archive_arn
        .ok_or_else(|| incomplete("DescribeArchive", archive, "ArchiveArn"))?;
    let bus = &request.event_bus_name;
    let bus_arn = eventbridge
        .describe_event_bus()
        .name(bus)
        .send()
        .await
        .map_err(call_failed("DescribeEventBus", bus))?
        .arn
        .ok_or_else(|| incomplete("DescribeEventBus", bus, "Arn"))?;
    let destination = ReplayDestination::builder()
        .arn(bus_arn)
        .build()
        .map_err(call_failed("StartReplay", &request.replay_name))?;
    let started = eventbridge
        .start_replay()
        .replay_name(&request.replay_name)
        .event_source_arn(archive_arn)
        .event_start_time(request.window.from)
        .event_end_time(request.window.to)
        .destination(destination)
        .send()
        .await
        .map_err(call_failed("StartReplay", &request.replay_name))?;
    tracing::info!(replay = %request.replay_name, archive, bus, "replay started");
    Ok(Replay {
        replay_name: request.replay_name.clone(),
        replay_arn: started.replay_arn,
        archive: archive.clone(),
        event_bus: bus.clone(),
        from: rfc3339(&request.window.from),
        to: rfc3339(&request.window.to),
        state: state_name(started.state.as_ref()),
        state_reason: started.state_reason,
        replay_start_time: started.replay_start_time.as_ref().map(rfc3339),
        replay_end_time: None,
        events_in_window: None,
    })
}

/// How many submissions had their FormSubmitted event published in the window
/// (`published_at`, set once the bus took the event): what a replay of the
/// window sends again. A paginated Scan counting matches only.
pub async fn events_in_window(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    window: &Window,
) -> Result<u64, AwsError> {
    use aws_sdk_dynamodb::types::{AttributeValue, Select};
    let bound = |time: &aws_smithy_types::DateTime| {
        let millis = u128::try_from(time.to_millis().unwrap_or(0)).unwrap_or(0);
        AttributeValue::S(domain::time::rfc3339_at(millis))
    };
    let mut count = 0_u64;
    let mut start_key = None;
    loop {
        let page = dynamodb
            .scan()
            .table_name(table)
            .select(Select::Count)
            .filter_expression("published_at BETWEEN :from AND :to")
            .expression_attribute_values(":from", bound(&window.from))
            .expression_attribute_values(":to", bound(&window.to))
            .set_exclusive_start_key(start_key)
            .send()
            .await
            .map_err(call_failed("Scan", table))?;
        count += u64::try_from(page.count).unwrap_or(0);
        start_key = page.last_evaluated_key;
        if start_key.is_none() {
            return Ok(count);
        }
    }
}

/// Polls DescribeReplay every `poll_every` until the replay completes (Ok),
/// fails or is cancelled (Err with EventBridge's reason), or `timeout` passes.
pub async fn wait_for_replay(
    eventbridge: &aws_sdk_eventbridge::Client,
    mut replay: Replay,
    timeout: Duration,
    poll_every: Duration,
) -> Result<Replay, ReplayError> {
    let started = tokio::time::Instant::now();
    loop {
        let seen = eventbridge
            .describe_replay()
            .replay_name(&replay.replay_name)
            .send()
            .await
            .map_err(call_failed("DescribeReplay", &replay.replay_name))?;
        replay.state = state_name(seen.state.as_ref());
        replay.state_reason = seen.state_reason;
        replay.replay_start_time = seen.replay_start_time.as_ref().map(rfc3339).or(replay.replay_start_time);
        replay.replay_end_time = seen.replay_end_time.as_ref().map(rfc3339);
        let last_replayed = seen.event_last_replayed_time.as_ref().map(rfc3339);
        tracing::info!(replay = %replay.replay_name, state = %replay.state, last_replayed, "replay state");
        match seen.state {
            Some(ReplayState::Completed) => return Ok(replay),
            Some(ReplayState::Failed | ReplayState::Cancelled) => {
                return Err(ReplayError::Ended {
                    replay_name: replay.replay_name,
                    state: replay.state,
                    reason: replay.state_reason,
                });
            }
            _ if started.elapsed() >= timeout => {
                return Err(ReplayError::TimedOut {
                    replay_name: replay.replay_name,
                    state: replay.state,
                    waited_secs: started.elapsed().as_secs(),
                });
            }
            _ => tokio::time::sleep(poll_every).await,
        }
    }
}

fn state_name(state: Option<&ReplayState>) -> String {
    state.map_or("UNKNOWN", ReplayState::as_str).to_owned()
}

fn incomplete(operation: &'static str, resource: &str, field: &'static str) -> AwsError {
    AwsError::Incomplete { operation, resource: resource.to_owned(), field }
}
