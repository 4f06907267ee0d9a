//! The per-answer record: one `QA_COMPLETE` JSON line (personal data masked)
//! and the same figures as CloudWatch Embedded Metric Format.

use domain::{mask::mask_personal_data, model::Usage, time};
use serde_json::{Value, json};

/// The chat function's CloudWatch metrics namespace (answers and refusals).
pub const NAMESPACE: &str = "Picasso/Chat";

/// Where finished-answer lines go: stdout in Lambda (CloudWatch Logs), or a
/// test's buffer.
pub use domain::report::LineSink;
pub use lambda_edge::telemetry::stdout_sink;

#[derive(Debug, Clone, Default)]
pub struct QaRecord<'a> {
    pub session_id: &'a str,
    pub tenant_hash: &'a str,
    pub tenant_id: &'a str,
    pub conversation_id: Option<&'a str>,
    pub question: &'a str,
    pub answer: &'a str,
    pub first_token_ms: Option<u64>,
    pub total_time_ms: u64,
    pub usage: Usage,
}

impl QaRecord<'_> {
    /// The stream's total, or input + output when the model did not report one.
    pub fn total_tokens(&self) -> u32 {
        self.usage.total()
    }

    pub fn qa_complete_line(&self) -> String {
        json!({
            "type": "QA_COMPLETE",
            "timestamp": time::now_rfc3339(),
            "session_id": self.session_id,
            "tenant_hash": self.tenant_hash,
            "tenant_id": self.tenant_id,
            "conversation_id": self.conversation_id,
            "question": mask_personal_data(self.question),
            "answer": mask_personal_data(self.answer),
            "metrics": {
                "first_token_ms": self.first_token_ms,
                "total_tokens": self.total_tokens(),
                "input_tokens": self.usage.input_tokens,
                "output_tokens": self.usage.output_tokens,
                "cache_read_input_tokens": self.usage.cache_read_tokens,
                "cache_write_input_tokens": self.usage.cache_write_tokens,
                "total_time_ms": self.total_time_ms,
                "answer_length": self.answer.chars().count(),
            },
        })
        .to_string()
    }

    pub fn metrics_line(&self) -> String {
        let metric = |name: &str, unit: &str| json!({"Name": name, "Unit": unit});
        let mut line = json!({
            "_aws": {
                "Timestamp": time::now_epoch_millis(),
                "CloudWatchMetrics": [{
                    "Namespace": NAMESPACE,
                    "Dimensions": [["TenantId"]],
                    "Metrics": [
                        metric("TotalTimeMs", "Milliseconds"),
                        metric("InputTokens", "Count"),
                        metric("OutputTokens", "Count"),
                        metric("TotalTokens", "Count"),
                        metric("CacheReadInputTokens", "Count"),
                        metric("CacheWriteInputTokens", "Count"),
                        metric("AnswerLength", "Count"),
                        metric("FirstTokenMs", "Milliseconds"),
                    ],
                }],
            },
            "TenantId": self.tenant_id,
            "TotalTimeMs": self.total_time_ms,
            "InputTokens": self.usage.input_tokens,
            "OutputTokens": self.usage.output_tokens,
            "TotalTokens": self.total_tokens(),
            "CacheReadInputTokens": self.usage.cache_read_tokens,
            "CacheWriteInputTokens": self.usage.cache_write_tokens,
            "AnswerLength": self.answer.chars().count(),
        });
        if let (Some(ms), Value::Object(fields)) = (self.first_token_ms, &mut line) {
            fields.insert("FirstTokenMs".into(), Value::from(ms));
        }
        line.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> QaRecord<'static> {
        QaRecord {
            session_id: "s",
            tenant_hash: "h",
            tenant_id: "T",
            question: "I'm jane@example.org, text me at 503-555-0142",
            answer: "We will email j.doe@example.org",
            first_token_ms: Some(120),
            total_time_ms: 900,
            usage: Usage {
                input_tokens: 10,
                output_tokens: 5,
                total_tokens: 15,
                latency_ms: 800,
                cache_read_tokens: 1200,
                cache_write_tokens: 0,
            },
            ..Default::default()
        }
    }

    #[test]
    fn the_qa_complete_line_masks_emails_and_phones_and_carries_the_metrics() {
        let line: Value = serde_json::from_str(&record().qa_complete_line()).unwrap();
        assert_eq!(line["type"], "QA_COMPLETE");
        assert_eq!(line["question"], "I'm j***@example.org, text me at ***0142");
        assert_eq!(line["answer"], "We will email j***@example.org");
        assert_eq!(line["metrics"]["total_tokens"], 15);
        assert_eq!(line["metrics"]["first_token_ms"], 120);
        assert_eq!(line["metrics"]["answer_length"], 31);
        assert_eq!(line["metrics"]["cache_read_input_tokens"], 1200);
        assert_eq!(line["metrics"]["cache_write_input_tokens"], 0);
    }

    #[test]
    fn the_metrics_line_is_embedded_metric_format() {
        let line: Value = serde_json::from_str(&record().metrics_line()).unwrap();
        assert_eq!(line["_aws"]["CloudWatchMetrics"][0]["Namespace"], "Picasso/Chat");
        assert_eq!(line["TenantId"], "T");
        assert_eq!(line["FirstTokenMs"], 120);
        assert_eq!(line["TotalTokens"], 15);
        assert_eq!(line["CacheReadInputTokens"], 1200);
    }
}
