//! Abuse limits on the public endpoints: fixed-window counters in DynamoDB
//! (RATE_LIMITS_TABLE), one item per key and window,
//! `<tenant_id>#<scope>#<window start>`, taken one unit at a time by a
//! conditional `UpdateItem` (`ADD count :one` only while `count < :limit`),
//! so no number of concurrent requests passes a limit. Each item carries
//! `expires_at` (epoch seconds, past its window) for DynamoDB's TTL.
//!
//! A subject that is personal data (a source IP, an email address) is keyed
//! by a hash of it, never by itself.

use std::{future::Future, pin::Pin, sync::Arc, time::Duration};

use serde_json::json;

use crate::{
    report::{LineSink, error_chain},
    tenant::RateLimits,
    time,
};

/// The counters' partition key attribute.
pub const KEY_ATTRIBUTE: &str = "counter_id";

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A fixed window of UTC time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    Minute,
    Day,
    Month,
}

/// The window holding a moment: its start as text (part of the key) and its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowAt {
    pub label: String,
    /// Epoch seconds at which the next window starts.
    pub ends_at: u64,
}

impl Window {
    /// The window holding `now` (epoch seconds).
    pub fn at(self, now: u64) -> WindowAt {
        let days = now / 86_400;
        let (year, month, day) = civil_from_days(days);
        let seconds_of_day = now % 86_400;
        match self {
            Self::Minute => WindowAt {
                label: format!(
                    "{year:04}-{month:02}-{day:02}T{:02}:{:02}",
                    seconds_of_day / 3_600,
                    seconds_of_day % 3_600 / 60
                ),
                ends_at: now - now % 60 + 60,
            },
            Self::Day => {
                WindowAt { label: format!("{year:04}-{month:02}-{day:02}"), ends_at: (days + 1) * 86_400 }
            }
            Self::Month => {
                let (next_year, next_month) = if month == 12 { (year + 1, 1) } else { (year, month + 1) };
                WindowAt {
                    label: format!("{year:04}-{month:02}"),
                    ends_at: days_from_civil(next_year, next_month, 1) * 86_400,
                }
            }
        }
    }

    /// How long a counter is kept past its window's end: long enough that
    /// DynamoDB's lazy TTL never removes a live one.
    fn grace(self) -> u64 {
        match self {
            Self::Minute => 3_600,
            Self::Day | Self::Month => 86_400,
        }
    }
}

/// (year, month, day) of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// Days since 1970-01-01 of a date from 1970 on.
fn days_from_civil(year: u64, month: u64, day: u64) -> u64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year / 400;
    let yoe = year - era * 400;
    let mp = if month > 2 { month - 3 } else { month + 9 };
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The secret key of the hashes that stand for a personal subject (an IP, a
/// normalised email address) in counter keys. The hash is an HMAC-SHA256
/// under it, so a counter key says whose count it is without saying who, and
/// cannot be traced back by hashing every IPv4 address, as a plain hash can.
/// The deployment generates it (`VisitorKeySecret` in `template.yaml`) and
/// the functions receive it in `VISITOR_KEY_SECRET`. Debug never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct SubjectKey(Arc<[u8]>);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("a subject key needs at least 32 bytes, got {0}")]
pub struct ShortKey(pub usize);

impl SubjectKey {
    /// 32 bytes: HMAC-SHA256's own strength.
    pub const MIN_LEN: usize = 32;

    pub fn new(secret: &[u8]) -> Result<Self, ShortKey> {
        if secret.len() < Self::MIN_LEN {
            return Err(ShortKey(secret.len()));
        }
        Ok(Self(secret.into()))
    }

    /// A random key of this process alone, the same for every caller in it
    /// (tools, tests, a process outside Lambda without `VISITOR_KEY_SECRET`):
    /// counts kept by another process under another key do not meet it.
    pub fn of_this_process() -> Self {
        static KEY: std::sync::OnceLock<SubjectKey> = std::sync::OnceLock::new();
        KEY.get_or_init(|| {
            let mut secret = [0u8; Self::MIN_LEN];
            if getrandom::getrandom(&mut secret).is_err() {
                // No OS randomness: still a key no one else holds for long.
                secret.iter_mut().for_each(|b| *b = fastrand::u8(..));
            }
            Self(secret.as_slice().into())
        })
        .clone()
    }

    /// 16 hex digits (64 bits) of HMAC-SHA256(key, subject): short enough for
    /// a counter key, long enough that two visitors of a tenant do not share one.
    pub fn hash(&self, subject: &str) -> String {
        use hmac::{KeyInit, Mac};
        let Ok(mut mac) = hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.0) else {
            // HMAC takes a key of any length; unreachable, and still no panic.
            return String::from("0000000000000000");
        };
        mac.update(subject.as_bytes());
        mac.finalize().into_bytes().iter().take(8).map(|b| format!("{b:02x}")).collect()
    }
}

impl std::fmt::Debug for SubjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SubjectKey(redacted)")
    }
}

/// One limit on one subject: at most `max` in each `window`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limit {
    /// The config key it comes from (`chats_per_ip_per_minute`): logs, metrics, errors.
    pub name: &'static str,
    pub tenant_id: String,
    /// What is counted, and for whom: `chat`, `chat_ip:<fingerprint>`, ...
    pub scope: String,
    pub max: u64,
    pub window: Window,
}

impl Limit {
    pub fn new(
        name: &'static str,
        tenant_id: &str,
        scope: String,
        max: impl Into<u64>,
        window: Window,
    ) -> Self {
        Self { name, tenant_id: tenant_id.to_owned(), scope, max: max.into(), window }
    }

    /// `<tenant_id>#<scope>#<window start>`.
    pub fn key(&self, window: &WindowAt) -> String {
        format!("{}#{}#{}", self.tenant_id, self.scope, window.label)
    }
}

/// The per-visitor and per-tenant limits of a chat, visitor first: a refused
/// visitor does not use up the tenant's allowance. Without a source IP
/// (a caller the front door could not name) only the tenant's limit applies.
pub fn chat_limits(
    key: &SubjectKey,
    tenant_id: &str,
    source_ip: Option<&str>,
    limits: &RateLimits,
) -> Vec<Limit> {
    per_ip_and_tenant(key, source_ip, "chat", limits.chats_per_ip_per_minute, limits.chats_per_minute)
        .into_iter()
        .map(|(scope, max, per_ip)| {
            let name = if per_ip { "chats_per_ip_per_minute" } else { "chats_per_minute" };
            Limit::new(name, tenant_id, scope, max, Window::Minute)
        })
        .collect()
}

/// The per-visitor and per-tenant limits of a form submit.
pub fn submit_limits(
    key: &SubjectKey,
    tenant_id: &str,
    source_ip: Option<&str>,
    limits: &RateLimits,
) -> Vec<Limit> {
    per_ip_and_tenant(key, source_ip, "submit", limits.submits_per_ip_per_minute, limits.submits_per_minute)
        .into_iter()
        .map(|(scope, max, per_ip)| {
            let name = if per_ip { "submits_per_ip_per_minute" } else { "submits_per_minute" };
            Limit::new(name, tenant_id, scope, max, Window::Minute)
        })
        .collect()
}

/// `validate_field`: one generous bound per visitor, nothing per tenant.
pub fn validation_limits(
    key: &SubjectKey,
    tenant_id: &str,
    source_ip: Option<&str>,
    limits: &RateLimits,
) -> Vec<Limit> {
    source_ip
        .map(|ip| {
            let scope = format!("validate_ip:{}", key.hash(ip));
            Limit::new(
                "validations_per_ip_per_minute",
                tenant_id,
                scope,
                limits.validations_per_ip_per_minute,
                Window::Minute,
            )
        })
        .into_iter()
        .collect()
}

/// (scope, max, whether per visitor): the visitor's first.
fn per_ip_and_tenant(
    key: &SubjectKey,
    source_ip: Option<&str>,
    what: &str,
    per_ip: u32,
    per_tenant: u32,
) -> Vec<(String, u32, bool)> {
    let mut scopes = Vec::new();
    if let Some(ip) = source_ip {
        scopes.push((format!("{what}_ip:{}", key.hash(ip)), per_ip, true));
    }
    scopes.push((what.to_owned(), per_tenant, false));
    scopes
}

/// The tenant's model tokens of today (`tokens_per_day`).
pub fn token_budget(tenant_id: &str, limits: &RateLimits) -> Limit {
    Limit::new("tokens_per_day", tenant_id, "tokens".to_owned(), limits.tokens_per_day, Window::Day)
}

/// The tenant's emails of this month (`emails_per_month`).
pub fn monthly_emails(tenant_id: &str, limits: &RateLimits) -> Limit {
    Limit::new("emails_per_month", tenant_id, "emails".to_owned(), limits.emails_per_month, Window::Month)
}

/// Confirmations to one applicant address today (`confirmations_per_recipient_per_day`),
/// keyed by a hash of the address as it was normalised (trimmed, lower case).
pub fn confirmations_to(key: &SubjectKey, tenant_id: &str, address: &str, limits: &RateLimits) -> Limit {
    let normalised = address.trim().to_lowercase();
    Limit::new(
        "confirmations_per_recipient_per_day",
        tenant_id,
        format!("confirmations_to:{}", key.hash(&normalised)),
        limits.confirmations_per_recipient_per_day,
        Window::Day,
    )
}

/// Whether a unit was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    /// The window's limit is reached; nothing was taken. Retry after this many seconds.
    Refused {
        retry_after: u64,
    },
}

#[derive(Debug, thiserror::Error)]
#[error("rate limit counter {operation} on {key} failed")]
pub struct LimitError {
    pub operation: &'static str,
    pub key: String,
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

impl LimitError {
    fn timed_out(limit: &Limit) -> Self {
        Self {
            operation: "call",
            key: format!("{}#{}", limit.tenant_id, limit.scope),
            source: format!("no answer within {} ms", GUARD_DEADLINE.as_millis()).into(),
        }
    }
}

/// How long one request's counter calls may take together before the store
/// counts as unreachable (and the request goes through): a stalled table
/// must not use up form-intake's 15 s before the submission is even stored.
pub const GUARD_DEADLINE: Duration = Duration::from_secs(1);

/// `call`, unless the deadline passes first.
async fn by<T>(
    deadline: tokio::time::Instant,
    limit: &Limit,
    call: impl Future<Output = Result<T, LimitError>>,
) -> Result<T, LimitError> {
    tokio::time::timeout_at(deadline, call).await.unwrap_or_else(|_| Err(LimitError::timed_out(limit)))
}

/// The counter store (one DynamoDB table). Boxed futures, so the services
/// can hold one behind a trait object.
pub trait Counters: Send + Sync {
    /// Adds 1 to `key` while it is below `max`; `false` when it is not.
    fn take<'a>(&'a self, key: &'a str, max: u64, expires_at: u64)
    -> BoxFuture<'a, Result<bool, LimitError>>;
    /// Adds `amount` (negative: gives units back) whatever the count.
    fn add<'a>(&'a self, key: &'a str, amount: i64, expires_at: u64)
    -> BoxFuture<'a, Result<(), LimitError>>;
    /// The current count (0 for none).
    fn read<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<u64, LimitError>>;
}

/// Limits over a counter store, at a given time.
#[derive(Clone)]
pub struct Limiter {
    counters: Arc<dyn Counters>,
}

impl Limiter {
    pub fn new(counters: Arc<dyn Counters>) -> Self {
        Self { counters }
    }

    /// Takes one unit of `limit` in the window holding `now`. A limit of 0
    /// refuses without asking the store (the condition would grant the first unit).
    pub async fn take(&self, limit: &Limit, now: u64) -> Result<Verdict, LimitError> {
        let window = limit.window.at(now);
        let refused = Verdict::Refused { retry_after: window.ends_at.saturating_sub(now).max(1) };
        if limit.max == 0 {
            return Ok(refused);
        }
        let expires_at = window.ends_at + limit.window.grace();
        let granted = self.counters.take(&limit.key(&window), limit.max, expires_at).await?;
        Ok(if granted { Verdict::Allowed } else { refused })
    }

    /// Returns a unit taken at `taken_at` whose side effect did not happen.
    pub async fn give_back(&self, limit: &Limit, taken_at: u64) -> Result<(), LimitError> {
        let window = limit.window.at(taken_at);
        self.counters.add(&limit.key(&window), -1, window.ends_at + limit.window.grace()).await
    }

    /// Adds what was used (model tokens) to the window holding `now`.
    pub async fn add(&self, limit: &Limit, amount: u64, now: u64) -> Result<(), LimitError> {
        let window = limit.window.at(now);
        let amount = i64::try_from(amount).unwrap_or(i64::MAX);
        self.counters.add(&limit.key(&window), amount, window.ends_at + limit.window.grace()).await
    }

    /// Whether the window holding `now` still has room (a budget read before
    /// the work that spends it).
    pub async fn has_room(&self, limit: &Limit, now: u64) -> Result<Verdict, LimitError> {
        let window = limit.window.at(now);
        let refused = Verdict::Refused { retry_after: window.ends_at.saturating_sub(now).max(1) };
        if limit.max == 0 {
            return Ok(refused);
        }
        let used = self.counters.read(&limit.key(&window)).await?;
        Ok(if used < limit.max { Verdict::Allowed } else { refused })
    }
}

/// A request refused by a limit: 429 with `Retry-After`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub limit: &'static str,
    pub retry_after: u64,
}

/// The limits of the request paths (chat, submit, validate), with their
/// logs and metrics.
///
/// **Fails open**: when the counter store cannot be reached, the request goes
/// through, with an error log and a `LimiterErrors` metric (alarmed). A
/// visitor of a tenant should not lose the assistant because the counters
/// are briefly unavailable; Lambda's concurrency, Bedrock's own quotas and the
/// email caps (which fail closed) still bound what an attacker can do in
/// that window.
#[derive(Clone)]
pub struct Guard {
    limiter: Limiter,
    metrics: LineSink,
}

impl Guard {
    pub fn new(counters: Arc<dyn Counters>, metrics: LineSink) -> Self {
        Self { limiter: Limiter::new(counters), metrics }
    }

    /// Takes one unit of each limit in order, stopping at the first refusal.
    pub async fn admit(&self, limits: &[Limit]) -> Result<(), Refusal> {
        let now = now_seconds();
        let deadline = tokio::time::Instant::now() + GUARD_DEADLINE;
        for limit in limits {
            match by(deadline, limit, self.limiter.take(limit, now)).await {
                Ok(Verdict::Allowed) => {}
                Ok(Verdict::Refused { retry_after }) => return Err(self.refused(limit, retry_after)),
                Err(err) => self.failed_open(limit, &err),
            }
        }
        Ok(())
    }

    /// Refuses when the budget of the current window is spent.
    pub async fn within_budget(&self, budget: &Limit) -> Result<(), Refusal> {
        let deadline = tokio::time::Instant::now() + GUARD_DEADLINE;
        match by(deadline, budget, self.limiter.has_room(budget, now_seconds())).await {
            Ok(Verdict::Allowed) => Ok(()),
            Ok(Verdict::Refused { retry_after }) => Err(self.refused(budget, retry_after)),
            Err(err) => {
                self.failed_open(budget, &err);
                Ok(())
            }
        }
    }

    /// Counts what an answer used against its budget; a failure is logged (the answer is already sent).
    pub async fn spend(&self, budget: &Limit, amount: u64) {
        if amount == 0 {
            return;
        }
        let deadline = tokio::time::Instant::now() + GUARD_DEADLINE;
        if let Err(err) = by(deadline, budget, self.limiter.add(budget, amount, now_seconds())).await {
            self.failed_open(budget, &err);
        }
    }

    fn refused(&self, limit: &Limit, retry_after: u64) -> Refusal {
        tracing::warn!(
            tenant_id = limit.tenant_id,
            limit = limit.name,
            scope = limit.scope,
            max = limit.max,
            retry_after,
            "limit reached; request refused"
        );
        (self.metrics)(metric_line("LimitRefused", &limit.tenant_id, limit.name));
        Refusal { limit: limit.name, retry_after }
    }

    fn failed_open(&self, limit: &Limit, err: &LimitError) {
        tracing::error!(
            tenant_id = limit.tenant_id,
            limit = limit.name,
            error = %error_chain(err),
            "rate limit counter unavailable; request let through (fail open)"
        );
        (self.metrics)(metric_line("LimiterErrors", &limit.tenant_id, limit.name));
    }
}

/// One limit event as CloudWatch Embedded Metric Format (namespace
/// `Picasso/Limits`): `metric` = 1, by `Limit`, and by `Limit` and `TenantId`.
/// `LimitRefused` counts refusals (and skipped emails); `LimiterErrors`
/// counts counter-store failures.
pub fn metric_line(metric: &str, tenant_id: &str, limit: &str) -> String {
    let mut line = json!({
        "_aws": {
            "Timestamp": time::now_epoch_millis(),
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [["Limit"], ["Limit", "TenantId"]],
                "Metrics": [{"Name": metric, "Unit": "Count"}],
            }],
        },
        "Limit": limit,
        "TenantId": tenant_id,
    });
    line[metric] = json!(1);
    line.to_string()
}

pub const NAMESPACE: &str = "Picasso/Limits";

pub fn now_seconds() -> u64 {
    u64::try_from(time::now_epoch_millis() / 1000).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use std::{collections::HashMap, sync::Mutex};

    use super::*;

    /// 2026-12-02T03:41:05Z.
    const NOW: u64 = 1_796_182_865;

    #[test]
    fn windows_are_labelled_by_their_utc_start_and_end_where_the_next_begins() {
        assert_eq!(
            Window::Minute.at(NOW),
            WindowAt { label: "2026-12-02T03:41".into(), ends_at: NOW - 5 + 60 }
        );
        assert_eq!(Window::Day.at(NOW), WindowAt { label: "2026-12-02".into(), ends_at: 1_796_256_000 });
        // December ends at the new year; February 2028 has 29 days.
        assert_eq!(Window::Month.at(NOW), WindowAt { label: "2026-12".into(), ends_at: 1_798_761_600 });
        let feb_2028 = Window::Month.at(1_835_438_400);
        assert_eq!(feb_2028.label, "2028-02");
        assert_eq!(feb_2028.ends_at, 1_835_481_600, "2028-03-01T00:00:00Z");
        assert_eq!(Window::Day.at(0).label, "1970-01-01");
    }

    #[test]
    fn every_date_round_trips_through_the_civil_calendar() {
        for days in (0..40_000).step_by(7) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
        }
    }

    #[test]
    fn keys_name_the_tenant_the_scope_and_the_window_but_no_ip_or_address() {
        let limits = RateLimits::default();
        let key = SubjectKey::of_this_process();
        let chat = chat_limits(&key, "T1", Some("203.0.113.9"), &limits);
        assert_eq!(chat.len(), 2, "per visitor first, then per tenant");
        assert_eq!((chat[0].name, chat[0].max), ("chats_per_ip_per_minute", 20));
        assert_eq!((chat[1].name, chat[1].max), ("chats_per_minute", 600));
        let window = Window::Minute.at(NOW);
        assert_eq!(chat[1].key(&window), "T1#chat#2026-12-02T03:41");
        assert!(chat[0].key(&window).starts_with("T1#chat_ip:"), "{}", chat[0].key(&window));
        assert!(!chat[0].key(&window).contains("203.0.113.9"));
        let confirmation = confirmations_to(&key, "T1", " Ana@Example.org ", &limits);
        assert_eq!(
            confirmation,
            confirmations_to(&key, "T1", "ana@example.org", &limits),
            "normalised first"
        );
        assert!(!confirmation.scope.contains("ana"), "{}", confirmation.scope);
        assert_eq!(submit_limits(&key, "T1", None, &limits).len(), 1, "no IP: the tenant's limit only");
        assert!(validation_limits(&key, "T1", None, &limits).is_empty());
    }

    #[test]
    fn a_visitors_counter_key_cannot_be_found_by_hashing_every_address_without_the_secret() {
        use sha2::{Digest, Sha256};
        let ip = "203.0.113.9";
        let key = SubjectKey::new(b"a secret of the deployment, 32 bytes or more").unwrap();
        let hashed = key.hash(ip);
        assert_eq!(hashed.len(), 16);
        assert_eq!(hashed, key.hash(ip), "the same visitor, the same counter");
        let plain: String =
            Sha256::digest(ip.as_bytes()).iter().take(8).map(|b| format!("{b:02x}")).collect();
        assert_ne!(hashed, plain, "what anyone could compute from the address alone");
        let other = SubjectKey::new(b"another deployment's secret, also 32 bytes+").unwrap();
        assert_ne!(hashed, other.hash(ip));
        assert_eq!(SubjectKey::new(b"short").unwrap_err(), ShortKey(5));
        assert_eq!(format!("{key:?}"), "SubjectKey(redacted)");
    }

    /// Counters in memory, for the limiter's arithmetic.
    #[derive(Default)]
    struct Memory(Mutex<HashMap<String, i64>>);

    impl Counters for Memory {
        fn take<'a>(&'a self, key: &'a str, max: u64, _: u64) -> BoxFuture<'a, Result<bool, LimitError>> {
            let mut counts = self.0.lock().unwrap();
            let count = counts.entry(key.to_owned()).or_default();
            let granted = u64::try_from(*count).unwrap_or(0) < max;
            if granted {
                *count += 1;
            }
            Box::pin(async move { Ok(granted) })
        }
        fn add<'a>(&'a self, key: &'a str, amount: i64, _: u64) -> BoxFuture<'a, Result<(), LimitError>> {
            *self.0.lock().unwrap().entry(key.to_owned()).or_default() += amount;
            Box::pin(async { Ok(()) })
        }
        fn read<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<u64, LimitError>> {
            let count = self.0.lock().unwrap().get(key).copied().unwrap_or(0);
            Box::pin(async move { Ok(u64::try_from(count).unwrap_or(0)) })
        }
    }

    #[tokio::test]
    async fn a_limit_lets_through_max_per_window_and_says_when_the_next_window_starts() {
        let limiter = Limiter::new(Arc::new(Memory::default()));
        let limit = Limit::new("submits_per_minute", "T1", "submit".into(), 2u32, Window::Minute);
        assert_eq!(limiter.take(&limit, NOW).await.unwrap(), Verdict::Allowed);
        assert_eq!(limiter.take(&limit, NOW).await.unwrap(), Verdict::Allowed);
        assert_eq!(limiter.take(&limit, NOW).await.unwrap(), Verdict::Refused { retry_after: 55 });
        limiter.give_back(&limit, NOW).await.unwrap();
        assert_eq!(
            limiter.take(&limit, NOW).await.unwrap(),
            Verdict::Allowed,
            "a unit given back is free again"
        );
        assert_eq!(limiter.take(&limit, NOW + 55).await.unwrap(), Verdict::Allowed, "a new window");
    }

    #[tokio::test]
    async fn a_limit_of_zero_refuses_everything() {
        let limiter = Limiter::new(Arc::new(Memory::default()));
        let limit = Limit::new("chats_per_minute", "T1", "chat".into(), 0u32, Window::Minute);
        assert!(matches!(limiter.take(&limit, NOW).await.unwrap(), Verdict::Refused { .. }));
        assert!(matches!(limiter.has_room(&limit, NOW).await.unwrap(), Verdict::Refused { .. }));
    }

    #[tokio::test]
    async fn a_budget_has_room_until_what_was_spent_reaches_it() {
        let limiter = Limiter::new(Arc::new(Memory::default()));
        let budget = token_budget("T1", &RateLimits { tokens_per_day: 1_000, ..RateLimits::default() });
        assert_eq!(limiter.has_room(&budget, NOW).await.unwrap(), Verdict::Allowed);
        limiter.add(&budget, 999, NOW).await.unwrap();
        assert_eq!(limiter.has_room(&budget, NOW).await.unwrap(), Verdict::Allowed);
        limiter.add(&budget, 1, NOW).await.unwrap();
        assert_eq!(
            limiter.has_room(&budget, NOW).await.unwrap(),
            Verdict::Refused { retry_after: 1_796_256_000 - NOW }
        );
    }

    /// A table that never answers.
    struct Stalled;

    impl Counters for Stalled {
        fn take<'a>(&'a self, _: &'a str, _: u64, _: u64) -> BoxFuture<'a, Result<bool, LimitError>> {
            Box::pin(std::future::pending())
        }
        fn add<'a>(&'a self, _: &'a str, _: i64, _: u64) -> BoxFuture<'a, Result<(), LimitError>> {
            Box::pin(std::future::pending())
        }
        fn read<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<u64, LimitError>> {
            Box::pin(std::future::pending())
        }
    }

    /// The table never answers: that `admit` returns at all is the deadline at work (about 1 s each).
    #[tokio::test]
    async fn with_a_stalled_table_a_request_goes_through_after_the_deadline_and_says_so() {
        let lines: Arc<Mutex<Vec<String>>> = Arc::default();
        let sink: LineSink = {
            let lines = Arc::clone(&lines);
            Arc::new(move |line| lines.lock().unwrap().push(line))
        };
        let guard = Guard::new(Arc::new(Stalled), sink);
        let limits =
            chat_limits(&SubjectKey::of_this_process(), "T1", Some("203.0.113.9"), &RateLimits::default());
        assert_eq!(guard.admit(&limits).await, Ok(()), "fail open");
        assert_eq!(guard.within_budget(&token_budget("T1", &RateLimits::default())).await, Ok(()));
        assert_eq!(lines.lock().unwrap().iter().filter(|l| l.contains("\"LimiterErrors\":1")).count(), 3);
    }

    #[test]
    fn a_limit_metric_is_embedded_metric_format_by_limit_and_tenant() {
        let line: serde_json::Value =
            serde_json::from_str(&metric_line("LimitRefused", "T1", "tokens_per_day")).unwrap();
        assert_eq!(line["_aws"]["CloudWatchMetrics"][0]["Namespace"], "Picasso/Limits");
        assert_eq!(line["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"], "LimitRefused");
        assert_eq!(
            (&line["Limit"], &line["TenantId"], &line["LimitRefused"]),
            (&json!("tokens_per_day"), &json!("T1"), &json!(1))
        );
    }
}
