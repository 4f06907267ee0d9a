//! Whether a failed side effect can be tried again, and whether it may
//! already have happened.

use crate::report::error_chain;

/// Why a channel's side effect did not happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Retrying the same event will not help until someone fixes something
    /// (config, a verified sender): recorded as `failed` and acknowledged; a
    /// replay after the fix delivers it.
    Permanent(String),
    /// Worth another try: recorded as `failed` and left for SQS to redeliver.
    Transient(String),
}

impl Failure {
    /// An error as a failure of the given kind, its whole source chain kept as text.
    pub fn of(err: &(dyn std::error::Error + 'static), permanent: bool) -> Self {
        let message = error_chain(err);
        if permanent { Self::Permanent(message) } else { Self::Transient(message) }
    }

    /// An error as the failure its own classification says it is.
    pub fn from_error<E: std::error::Error + Permanence + 'static>(err: &E) -> Self {
        Self::of(err, err.is_permanent())
    }
}

/// Whether retrying the same call can succeed, decided once, by the error
/// that knows (the adapter that saw the service's answer).
pub trait Permanence {
    /// True when only a fix (config, permissions, a verified sender) helps.
    fn is_permanent(&self) -> bool;
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
