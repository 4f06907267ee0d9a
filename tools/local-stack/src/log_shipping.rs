//! What Lambda does with a function's output: its log lines reach the
//! function's CloudWatch Logs group (`/aws/lambda/<function name>`, stream
//! `local`), so `aws logs tail` and `filter-log-events` work against the
//! emulator. The functions run inside the local host, so their lines are
//! told apart by the `function` span the host opens around each invocation
//! ([`invocation`]); lines outside one (the host's own) are not shipped.

use std::{collections::HashSet, time::Duration};

use serde_json::Value;
use tokio::{sync::mpsc, task::JoinHandle};
use tracing::{Event, Level, Subscriber, span};
use tracing_subscriber::{Layer, layer::Context, registry::LookupSpan};

/// The target of a line the function printed to stdout (`QA_COMPLETE`, the
/// metric lines): shipped as printed, not wrapped as a log event.
const STDOUT: &str = "lambda_stdout";

/// Ships `line` as the current invocation's stdout (outside one, nowhere).
pub fn stdout_line(line: &str) {
    tracing::info!(target: STDOUT, line);
}

/// The span the host runs one invocation of `function` (its deployed name) in.
pub fn invocation(function: &str) -> tracing::Span {
    tracing::info_span!("invocation", function = function)
}

/// One log line of one function.
#[derive(Debug)]
pub struct Line {
    pub function: String,
    pub timestamp_ms: i64,
    pub message: String,
}

/// Lines waiting for [`ship`].
pub struct Queue(mpsc::UnboundedReceiver<Line>);

/// The layer for `lambda_edge::telemetry::init_with`, and the queue its lines wait in.
pub fn layer() -> (ShippingLayer, Queue) {
    let (sender, receiver) = mpsc::unbounded_channel();
    (ShippingLayer { sender }, Queue(receiver))
}

pub struct ShippingLayer {
    sender: mpsc::UnboundedSender<Line>,
}

/// The `function` field of a span, kept in its extensions.
struct Function(String);

struct FunctionField(Option<String>);

impl tracing::field::Visit for FunctionField {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "function" {
            self.0 = Some(value.to_owned());
        }
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "function" {
            self.0 = Some(format!("{value:?}"));
        }
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for ShippingLayer {
    fn on_new_span(&self, attrs: &span::Attributes<'_>, id: &span::Id, ctx: Context<'_, S>) {
        let mut field = FunctionField(None);
        attrs.record(&mut field);
        if let (Some(function), Some(span)) = (field.0, ctx.span(id)) {
            span.extensions_mut().insert(Function(function));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        if *event.metadata().level() > Level::INFO {
            return;
        }
        let Some(function) = ctx.event_scope(event).and_then(|scope| {
            scope.from_root().find_map(|span| span.extensions().get::<Function>().map(|f| f.0.clone()))
        }) else {
            return;
        };
        let timestamp_ms = i64::try_from(domain::time::now_epoch_millis()).unwrap_or(i64::MAX);
        if event.metadata().target() == STDOUT {
            let printed = lambda_edge::telemetry::event_fields(event).remove("line");
            if let Some(Value::String(message)) = printed {
                let _ = self.sender.send(Line { function, timestamp_ms, message });
            }
            return;
        }
        let mut line = serde_json::Map::new();
        line.insert("timestamp".into(), Value::String(domain::time::now_rfc3339()));
        line.insert("level".into(), Value::String(event.metadata().level().as_str().to_owned()));
        line.insert("function_name".into(), Value::String(function.clone()));
        line.extend(lambda_edge::telemetry::event_fields(event));
        let message = Value::Object(line).to_string();
        let _ = self.sender.send(Line { function, timestamp_ms, message });
    }
}

/// Sends the queued lines to their groups about once a second, for the
/// process's life. A group that does not exist drops its lines (as Lambda
/// writes nowhere when its log group was deleted and cannot be created).
pub fn ship(queue: Queue, logs: aws_sdk_cloudwatchlogs::Client) -> JoinHandle<()> {
    let Queue(mut receiver) = queue;
    tokio::spawn(async move {
        let mut streams = HashSet::new();
        let mut batch = Vec::new();
        while receiver.recv_many(&mut batch, 1000).await > 0 {
            let mut by_function = std::collections::BTreeMap::<String, Vec<Line>>::new();
            for line in batch.drain(..) {
                by_function.entry(line.function.clone()).or_default().push(line);
            }
            for (function, lines) in by_function {
                let group = format!("/aws/lambda/{function}");
                if streams.insert(group.clone()) {
                    let _ =
                        logs.create_log_stream().log_group_name(&group).log_stream_name("local").send().await;
                }
                let events = lines.into_iter().filter_map(|line| {
                    aws_sdk_cloudwatchlogs::types::InputLogEvent::builder()
                        .timestamp(line.timestamp_ms)
                        .message(line.message)
                        .build()
                        .ok()
                });
                let _ = logs
                    .put_log_events()
                    .log_group_name(&group)
                    .log_stream_name("local")
                    .set_log_events(Some(events.collect()))
                    .send()
                    .await;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    })
}
