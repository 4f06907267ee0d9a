//! Wall-clock time as the records and metric lines write it.

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
