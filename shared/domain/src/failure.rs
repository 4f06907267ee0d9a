//! Whether a failed side effect can be tried again, and whether it may
//! already have happened.

use crate::report::error_chain;

type Source = Box<dyn std::error::Error + Send + Sync>;

/// Why a channel's side effect did not happen: the error itself, kept whole,
/// and whether retrying can help. This is the one model of retryable and
/// permanent failures; each error says which it is through [`Permanence`].
#[derive(Debug, thiserror::Error)]
#[error("{}", if self.permanent { "permanent failure" } else { "transient failure" })]
pub struct Failure {
    permanent: bool,
    #[source]
    source: Source,
}

impl Failure {
    /// An error as the failure its own classification says it is.
    pub fn from_error<E: std::error::Error + Permanence + Send + Sync + 'static>(err: E) -> Self {
        Self { permanent: err.is_permanent(), source: Box::new(err) }
    }

    /// Worth another try: recorded as `failed` and left for SQS to redeliver.
    pub fn transient(err: impl Into<Source>) -> Self {
        Self { permanent: false, source: err.into() }
    }

    /// Retrying the same event will not help until someone fixes something
    /// (config, a verified sender): recorded as `failed` and acknowledged; a
    /// replay after the fix delivers it.
    pub fn permanent(err: impl Into<Source>) -> Self {
        Self { permanent: true, source: err.into() }
    }

    /// The error and its causes on one line, masked, as the record keeps it.
    pub fn message(&self) -> String {
        error_chain(self.source.as_ref())
    }
}

/// Whether retrying the same call can succeed, decided once, by the error
/// that knows (the adapter that saw the service's answer).
pub trait Permanence {
    /// True when only a fix (config, permissions, a verified sender) helps.
    fn is_permanent(&self) -> bool;
}

impl Permanence for Failure {
    fn is_permanent(&self) -> bool {
        self.permanent
    }
}

/// A missing or broken tenant config needs a fix; S3 being unreachable does not.
impl Permanence for crate::tenant::TenantError {
    fn is_permanent(&self) -> bool {
        self.code() != "config_unavailable"
    }
}

/// What a failed send says about its side effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// The provider never took the request (it was never built or never
    /// connected), or answered that it refused it: safe to send again.
    NotSent,
    /// The request may have reached the provider and its answer was lost or
    /// late (an attempt timeout, an unreadable answer): sending again may
    /// deliver twice, and SES and SNS take no idempotency key.
    Unknown,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_keeps_its_error_and_says_whether_a_retry_can_help() {
        let denied = Failure::permanent(std::io::Error::other("the sender ana@example.org is not verified"));
        assert!(denied.is_permanent());
        assert_eq!(denied.message(), "the sender a***@example.org is not verified");
        let source = std::error::Error::source(&denied).expect("the error is kept as the source");
        assert!(source.downcast_ref::<std::io::Error>().is_some());
        assert!(!Failure::transient("throttled").is_permanent());
        let missing = crate::tenant::TenantError::UnknownId("T1".into());
        assert!(Failure::from_error(missing).is_permanent(), "a missing config needs a fix");
    }
}
