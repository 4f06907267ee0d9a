//! Lines for people and for metrics: an error's chain of causes on one line,
//! and where whole lines (metric and QA lines) go.

/// Where metric lines (CloudWatch Embedded Metric Format) and other whole
/// log lines go: stdout in Lambda (CloudWatch Logs), or a test's buffer.
pub type LineSink = std::sync::Arc<dyn Fn(String) + Send + Sync>;

/// An error and its chain of sources on one line, for logs and CLI output,
/// with emails and phone numbers masked: AWS error messages quote them
/// (SES: "Email address is not verified: ana@...", SNS: the number).
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut message = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        // Many errors repeat their source in their own text (`#[error("...: {0}")]`,
        // `transparent`, the SDK's wrappers): each text appears once.
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    crate::mask::mask_personal_data(&message)
}
