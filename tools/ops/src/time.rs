//! Times and months as the operator types them, parsed once at the edge.

use aws_smithy_types::date_time::{DateTime, DateTimeParseError, Format};

#[derive(Debug, thiserror::Error)]
pub enum TimeError {
    #[error("{input:?} is not a day such as 2026-05-01 or an RFC 3339 time such as 2026-05-01T00:00:00Z")]
    NotRfc3339 {
        input: String,
        #[source]
        source: DateTimeParseError,
    },
    #[error("the window is empty: --from {from} is not before --to {to}")]
    EmptyWindow { from: String, to: String },
    #[error("{0:?} is not a month in the form YYYY-MM")]
    NotAMonth(String),
}

/// Parses an RFC 3339 time, with `Z` or an offset such as `+02:00`.
pub fn parse_time(input: &str) -> Result<DateTime, TimeError> {
    DateTime::from_str(input.trim(), Format::DateTimeWithOffset)
        .map_err(|source| TimeError::NotRfc3339 { input: input.to_owned(), source })
}

/// A day (`2026-05-01`, its midnight UTC) or an RFC 3339 time.
pub fn parse_day_or_time(input: &str) -> Result<DateTime, TimeError> {
    let trimmed = input.trim();
    let is_day = trimmed.len() == 10 && trimmed.as_bytes()[4] == b'-' && trimmed.as_bytes()[7] == b'-';
    if is_day { parse_time(&format!("{trimmed}T00:00:00Z")) } else { parse_time(trimmed) }
}

/// A time as RFC 3339 in UTC, for output.
pub fn rfc3339(time: &DateTime) -> String {
    time.fmt(Format::DateTime).unwrap_or_else(|_| format!("{}s since the epoch", time.secs()))
}

/// A non-empty time window: `from` strictly before `to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub from: DateTime,
    pub to: DateTime,
}

impl Window {
    pub fn new(from: DateTime, to: DateTime) -> Result<Self, TimeError> {
        if from >= to {
            return Err(TimeError::EmptyWindow { from: rfc3339(&from), to: rfc3339(&to) });
        }
        Ok(Self { from, to })
    }
}

/// A calendar month `YYYY-MM`, the sort key of the SMS usage table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Month(String);

impl Month {
    pub fn parse(input: &str) -> Result<Self, TimeError> {
        let not_a_month = || TimeError::NotAMonth(input.to_owned());
        let (year, month) = input.split_once('-').ok_or_else(not_a_month)?;
        let digits = |text: &str, len: usize| text.len() == len && text.bytes().all(|b| b.is_ascii_digit());
        if !digits(year, 4) || !digits(month, 2) || !("01"..="12").contains(&month) {
            return Err(not_a_month());
        }
        Ok(Self(input.to_owned()))
    }

    /// The current month in UTC.
    pub fn current() -> Result<Self, TimeError> {
        let now = DateTime::from(std::time::SystemTime::now());
        Self::parse(rfc3339(&now).get(..7).unwrap_or_default())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Month {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_and_offset_times_are_accepted() {
        assert_eq!(parse_time("2026-05-01T00:00:00Z").unwrap().secs(), 1_777_593_600);
        assert_eq!(parse_time("2026-05-01T02:00:00+02:00").unwrap().secs(), 1_777_593_600);
        assert_eq!(parse_time("2026-05-01T00:00:00.250Z").unwrap().subsec_nanos(), 250_000_000);
    }

    #[test]
    fn malformed_times_are_refused_without_panicking() {
        for input in [
            "",
            "yesterday",
            "2026-05-01",
            "2026-13-01T00:00:00Z",
            "2026-05-01T25:00:00Z",
            "💥",
            "2026-05-01T00:00:00",
        ] {
            let err = parse_time(input).unwrap_err();
            assert!(err.to_string().contains("RFC 3339"), "{input}: {err}");
        }
    }

    #[test]
    fn a_window_must_end_after_it_starts() {
        let early = parse_time("2026-05-01T00:00:00Z").unwrap();
        let late = parse_time("2026-05-02T00:00:00Z").unwrap();
        assert!(Window::new(early, late).is_ok());
        assert!(matches!(Window::new(late, early), Err(TimeError::EmptyWindow { .. })));
        let err = Window::new(early, early).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the window is empty: --from 2026-05-01T00:00:00Z is not before --to 2026-05-01T00:00:00Z"
        );
    }

    #[test]
    fn months_are_four_digit_years_and_two_digit_months() {
        assert_eq!(Month::parse("2026-05").unwrap().as_str(), "2026-05");
        assert_eq!(Month::parse("1999-12").unwrap().to_string(), "1999-12");
        for input in
            ["", "2026-5", "2026-13", "2026-00", "26-05", "2026/05", "2026-05-01", "２０２６-05", "abcd-ef"]
        {
            assert!(matches!(Month::parse(input), Err(TimeError::NotAMonth(_))), "{input}");
        }
    }

    #[test]
    fn the_current_month_is_a_valid_month() {
        let month = Month::current().unwrap();
        assert_eq!(Month::parse(month.as_str()).unwrap(), month);
    }
}
