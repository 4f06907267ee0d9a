//! Structured JSON logs, one object per line, as CloudWatch Logs Insights
//! reads them, with the fields operators know from Powertools for AWS Lambda:
//! `timestamp`, `level`, `message`, `function_name`, and inside an invocation
//! `function_request_id`, `xray_trace_id` and `cold_start` (from the span
//! `lambda_runtime` opens around each invocation).

use std::{fmt, sync::OnceLock};

use domain::{report::error_chain, time::now_rfc3339};
use serde_json::{Map, Value};
use tracing::{
    Event, Subscriber,
    field::{Field, Visit},
};
use tracing_subscriber::{
    Layer, Registry,
    filter::Targets,
    fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields, format::JsonFields, format::Writer},
    layer::SubscriberExt,
    registry::LookupSpan,
    util::SubscriberInitExt,
};

/// Installs the JSON subscriber. The level is `RUST_LOG` when set (it may
/// also name modules), else Lambda's `AWS_LAMBDA_LOG_LEVEL` (set by the
/// function's `LoggingConfig`), else `info`. Calling it twice is harmless, so
/// tests and tools may call it freely.
pub fn init() {
    init_with_default(lambda_log_level(std::env::var("AWS_LAMBDA_LOG_LEVEL").ok().as_deref()));
}

/// As [`init`], with `level` (e.g. `warn`) when `RUST_LOG` is unset.
pub fn init_with_default(level: &str) {
    init_with(level, None);
}

/// A layer that sees every event next to the JSON lines (the local host
/// ships its functions' lines to their log groups with one).
pub type ExtraLayer = Box<dyn Layer<Registry> + Send + Sync>;

/// As [`init_with_default`], with `extra` seeing every event (before the level filter).
pub fn init_with(level: &str, extra: Option<ExtraLayer>) {
    // `lambda_stdout`: lines the local host already printed and hands `extra` to ship as stdout.
    let filter = log_filter(level).with_target("lambda_stdout", tracing::level_filters::LevelFilter::OFF);
    let function_name = std::env::var("AWS_LAMBDA_FUNCTION_NAME").ok();
    let lines = tracing_subscriber::fmt::layer()
        .fmt_fields(JsonFields::new())
        .event_format(LambdaJson { function_name })
        .with_filter(filter);
    let _ = tracing_subscriber::registry().with(extra).with(lines).try_init();
}

/// `RUST_LOG` when it parses (`target=level` directives, e.g. `warn,ops=info`),
/// else `default`. A target filter, not `EnvFilter`: its span-field regexes
/// cost the Lambda binaries the regex engine's DFA for nothing.
pub fn log_filter(default: &str) -> Targets {
    std::env::var("RUST_LOG")
        .ok()
        .and_then(|directives| directives.parse().ok())
        .or_else(|| default.parse().ok())
        .unwrap_or_else(|| Targets::new().with_default(tracing::Level::INFO))
}

/// An event's own fields as JSON (`message` included), as the log lines carry them.
pub fn event_fields(event: &Event<'_>) -> Map<String, Value> {
    let mut fields = Map::new();
    event.record(&mut JsonVisitor(&mut fields));
    fields
}

/// Lambda's log levels (TRACE, DEBUG, INFO, WARN, ERROR, FATAL) as a filter.
fn lambda_log_level(level: Option<&str>) -> &'static str {
    match level.map(str::to_ascii_uppercase).as_deref() {
        Some("TRACE") => "trace",
        Some("DEBUG") => "debug",
        Some("WARN") => "warn",
        Some("ERROR" | "FATAL") => "error",
        _ => "info",
    }
}

/// One JSON object per event: the event's fields flattened, plus the
/// invocation's context from the enclosing spans.
struct LambdaJson {
    function_name: Option<String>,
}

/// The request id of the process's first invocation: its lines are the cold start.
static FIRST_REQUEST: OnceLock<String> = OnceLock::new();

impl<S, N> FormatEvent<S, N> for LambdaJson
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut line = Map::new();
        line.insert("timestamp".into(), Value::String(now_rfc3339()));
        line.insert("level".into(), Value::String(event.metadata().level().as_str().to_owned()));
        if let Some(name) = &self.function_name {
            line.insert("function_name".into(), Value::String(name.clone()));
        }
        for span in ctx.event_scope().into_iter().flat_map(|scope| scope.from_root()) {
            let extensions = span.extensions();
            let Some(fields) = extensions.get::<FormattedFields<N>>() else { continue };
            let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(fields) else { continue };
            for (key, value) in fields {
                match key.as_str() {
                    "requestId" => {
                        let id = value.as_str().unwrap_or_default();
                        let cold = FIRST_REQUEST.get_or_init(|| id.to_owned()) == id;
                        line.insert("cold_start".into(), Value::Bool(cold));
                        line.insert("function_request_id".into(), value);
                    }
                    "xrayTraceId" => {
                        line.insert("xray_trace_id".into(), value);
                    }
                    _ => {
                        line.insert(key, value);
                    }
                }
            }
        }
        event.record(&mut JsonVisitor(&mut line));
        writeln!(writer, "{}", Value::Object(line))
    }
}

/// An event's fields as JSON values (`message` included).
struct JsonVisitor<'a>(&'a mut Map<String, Value>);

impl Visit for JsonVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), Value::String(value.to_owned()));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().to_owned(), Value::Bool(value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_owned(), value.into());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_owned(), value.into());
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().to_owned(), value.into());
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0.insert(field.name().to_owned(), Value::String(error_chain(value)));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name().to_owned(), Value::String(format!("{value:?}")));
    }
}

/// Whole lines to stdout, where Lambda ships them to CloudWatch Logs.
pub fn stdout_sink() -> domain::report::LineSink {
    std::sync::Arc::new(|line| println!("{line}"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_error_chain_quoting_an_address_or_number_is_logged_masked() {
        #[derive(Debug, thiserror::Error)]
        #[error("SMS not sent")]
        struct Outer(#[source] std::io::Error);
        let err = Outer(std::io::Error::other(
            "MessageRejected: Email address is not verified: ana.lopez@example.org; +1 503 555 0142",
        ));
        assert_eq!(
            super::error_chain(&err),
            "SMS not sent: MessageRejected: Email address is not verified: a***@example.org; ***0142"
        );
    }

    #[test]
    fn an_error_whose_text_repeats_its_source_is_logged_with_each_text_once() {
        #[derive(Debug, thiserror::Error)]
        #[error("GetObject failed: {0}")]
        struct Outer(#[source] Middle);
        #[derive(Debug, thiserror::Error)]
        #[error(transparent)]
        struct Middle(#[from] std::io::Error);
        let err = Outer(Middle(std::io::Error::other("connection refused")));
        assert_eq!(super::error_chain(&err), "GetObject failed: connection refused");
    }

    #[test]
    fn lambdas_log_levels_become_filters_and_fatal_is_error() {
        assert_eq!(super::lambda_log_level(Some("DEBUG")), "debug");
        assert_eq!(super::lambda_log_level(Some("warn")), "warn");
        assert_eq!(super::lambda_log_level(Some("FATAL")), "error");
        assert_eq!(super::lambda_log_level(None), "info");
        assert_eq!(super::lambda_log_level(Some("nonsense")), "info");
    }

    #[test]
    fn timestamps_are_rfc3339_with_milliseconds() {
        let now = super::now_rfc3339();
        assert_eq!(now.len(), "2026-11-25T03:04:05.123Z".len(), "{now}");
        assert!(now.ends_with('Z') && now.contains('T'), "{now}");
    }
}
