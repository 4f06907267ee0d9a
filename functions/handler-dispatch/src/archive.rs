//! The `s3` handler: the submission as a JSON document in a bucket
//! (`s3:PutObject`, server-side encrypted), and its S3 adapter.

use std::future::Future;

use aws_adapters::s3::{S3, S3Error};
use domain::fulfillment::StoredSubmission;
use serde_json::{Value, json};

pub use domain::fulfillment::archive_key;

/// The archived document.
pub fn archive_document(submission: &StoredSubmission) -> Value {
    json!({
        "submission_id": submission.submission_id,
        "tenant_id": submission.tenant_id,
        "form_id": submission.form_id,
        "priority": submission.priority,
        "submitted_at": submission.submitted_at,
        "data": submission.form_data,
    })
}

#[derive(Debug, thiserror::Error)]
#[error("archiving to s3://{bucket}/{key} failed{}", if *.permanent { " (permanent)" } else { "" })]
pub struct ArchiveError {
    pub bucket: String,
    pub key: String,
    /// Retrying will not help until the bucket or the role is fixed.
    pub permanent: bool,
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

impl domain::failure::Permanence for ArchiveError {
    fn is_permanent(&self) -> bool {
        self.permanent
    }
}

/// `s3:PutObject` of one JSON document.
pub trait Archive: Send + Sync + 'static {
    fn put(
        &self,
        bucket: &str,
        key: &str,
        document: Vec<u8>,
    ) -> impl Future<Output = Result<(), ArchiveError>> + Send;
}

#[derive(Clone)]
pub struct S3Archive {
    client: S3,
}

impl S3Archive {
    pub fn new(client: S3) -> Self {
        Self { client }
    }
}

impl Archive for S3Archive {
    async fn put(&self, bucket: &str, key: &str, document: Vec<u8>) -> Result<(), ArchiveError> {
        self.client.put_object(bucket, key, "application/json", document.into()).await.map_err(|err| {
            ArchiveError {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
                permanent: is_permanent(&err),
                source: Box::new(err),
            }
        })
    }
}

/// The bucket does not exist or the role may not write to it.
pub fn is_permanent(err: &S3Error) -> bool {
    matches!(err.code(), Some("NoSuchBucket" | "AccessDenied" | "InvalidBucketName"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::submission;

    #[test]
    fn the_archive_key_is_tenant_then_form_then_submission() {
        assert_eq!(
            archive_key(&submission()),
            "submissions/RIV204815/reading_buddy_application/reading_1_abc.json"
        );
    }

    #[test]
    fn the_archived_document_holds_the_submission_and_its_data() {
        assert_eq!(
            archive_document(&submission()),
            json!({
                "submission_id": "reading_1_abc",
                "tenant_id": "RIV204815",
                "form_id": "reading_buddy_application",
                "priority": "high",
                "submitted_at": "2026-11-25T03:04:05.123Z",
                "data": {"email": "ana@example.org", "first_name": "Ana"},
            })
        );
    }

    #[test]
    fn a_missing_bucket_or_a_denied_role_is_permanent_and_slow_down_is_not() {
        let code = |code: &str| S3Error {
            operation: "PutObject",
            bucket: "b".into(),
            key: "k".into(),
            code: Some(code.into()),
            source: "S3 answered an error".into(),
        };
        assert!(is_permanent(&code("NoSuchBucket")));
        assert!(is_permanent(&code("AccessDenied")));
        assert!(!is_permanent(&code("SlowDown")));
        assert!(!is_permanent(&code("InternalError")));
    }
}
