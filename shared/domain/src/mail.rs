//! The mail port (`ses:SendEmail`) and its SES v2 adapter.

use std::future::Future;

pub use crate::failure::Delivery;

/// One email with a text and an HTML part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    pub to: Vec<String>,
    pub subject: String,
    pub text: String,
    pub html: String,
}

#[derive(Debug, thiserror::Error)]
#[error("email {}", match (.delivery, .permanent) {
    (Delivery::Unknown, _) => "may have been sent: the answer was lost",
    (_, true) => "not sent (permanent)",
    _ => "not sent",
})]
pub struct MailError {
    /// Retrying the same message will not help (e.g. the sender is not verified).
    pub permanent: bool,
    /// Whether SES may have taken it: an email that may be out is never sent again.
    pub delivery: Delivery,
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

impl crate::failure::Permanence for MailError {
    fn is_permanent(&self) -> bool {
        self.permanent
    }
}

pub trait Mailer: Send + Sync + 'static {
    fn send(&self, email: &Email) -> impl Future<Output = Result<(), MailError>> + Send;
}
