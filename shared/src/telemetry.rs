//! Structured JSON logs, one object per line, as CloudWatch Logs Insights reads them.

use tracing_subscriber::EnvFilter;

/// Installs the JSON subscriber; `RUST_LOG` sets the filter (default `info`).
/// Calling it twice is harmless, so tests and tools may call it freely.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_target(false)
        .with_ansi(false)
        .with_env_filter(filter)
        .try_init();
}

/// Where metric lines (CloudWatch Embedded Metric Format) and other whole
/// log lines go: stdout in Lambda (CloudWatch Logs), or a test's buffer.
pub type LineSink = std::sync::Arc<dyn Fn(String) + Send + Sync>;

pub fn stdout_sink() -> LineSink {
    std::sync::Arc::new(|line| println!("{line}"))
}

/// An error and its chain of sources on one line, for logs and CLI output,
/// with emails and phone numbers masked: AWS error messages quote them
/// (SES: "Email address is not verified: ana@...", SNS: the number).
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut message = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    crate::mask::mask_personal_data(&message)
}

/// The current time as RFC 3339 with milliseconds, e.g. `2026-11-25T03:04:05.123Z`.
pub fn now_rfc3339() -> String {
    rfc3339_at(now_epoch_millis())
}

/// Milliseconds since the epoch as RFC 3339 with milliseconds (sorts as text).
pub fn rfc3339_at(epoch_millis: u128) -> String {
    use aws_smithy_types::date_time::{DateTime, Format};
    let millis = epoch_millis % 1000;
    let seconds = DateTime::from_secs(i64::try_from(epoch_millis / 1000).unwrap_or(i64::MAX));
    match seconds.fmt(Format::DateTime) {
        Ok(text) => format!("{}.{millis:03}Z", text.trim_end_matches('Z')),
        Err(_) => String::new(),
    }
}

/// Milliseconds since the Unix epoch, as CloudWatch's Embedded Metric Format wants.
pub fn now_epoch_millis() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0)
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
    fn timestamps_are_rfc3339_with_milliseconds() {
        let now = super::now_rfc3339();
        assert_eq!(now.len(), "2026-11-25T03:04:05.123Z".len(), "{now}");
        assert!(now.ends_with('Z') && now.contains('T'), "{now}");
    }
}
