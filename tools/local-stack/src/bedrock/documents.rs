//! The knowledge bases' documents: the objects under `knowledge-base/<kb id>/`
//! in the config bucket, where the demo tenant is seeded and where a test can
//! put a knowledge base of its own.
//!
//! Every Retrieve lists the prefix (one cheap call) and downloads only objects
//! whose ETag changed, so an object written by a test is searchable at once
//! without paying for six downloads on every question.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
};

use super::passages::split_markdown;

/// Text formats a Bedrock data source ingests as-is; anything else is skipped.
const TEXT_EXTENSIONS: [&str; 3] = [".md", ".txt", ".markdown"];

#[derive(Debug, thiserror::Error)]
pub enum DocumentsError {
    #[error("could not list s3://{bucket}/{prefix}")]
    List {
        bucket: String,
        prefix: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("could not read s3://{bucket}/{key}")]
    Get {
        bucket: String,
        key: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// One searchable piece of a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Passage {
    /// `s3://bucket/knowledge-base/<kb>/<file>.md`, as Bedrock reports the source.
    pub uri: String,
    pub text: String,
}

struct CachedDocument {
    etag: Option<String>,
    passages: Arc<Vec<Passage>>,
}

pub struct KnowledgeDocuments {
    s3: aws_sdk_s3::Client,
    bucket: String,
    cache: Mutex<HashMap<String, CachedDocument>>,
}

impl KnowledgeDocuments {
    pub fn new(s3: aws_sdk_s3::Client, bucket: impl Into<String>) -> Self {
        Self { s3, bucket: bucket.into(), cache: Mutex::new(HashMap::new()) }
    }

    /// Every passage of the knowledge base's documents, in key order; empty
    /// when the knowledge base has no documents.
    pub async fn passages(&self, knowledge_base_id: &str) -> Result<Vec<Passage>, DocumentsError> {
        let prefix = format!("knowledge-base/{knowledge_base_id}/");
        let listed = self.list(&prefix).await?;
        let mut passages = Vec::new();
        for (key, etag) in &listed {
            passages.extend(self.document(key, etag.as_deref()).await?.iter().cloned());
        }
        // Forget documents deleted since the last look.
        self.lock().retain(|key, _| !key.starts_with(&prefix) || listed.iter().any(|(k, _)| k == key));
        Ok(passages)
    }

    /// (key, ETag) of each text document under `prefix`, sorted by key.
    async fn list(&self, prefix: &str) -> Result<Vec<(String, Option<String>)>, DocumentsError> {
        let mut objects = Vec::new();
        let mut continuation: Option<String> = None;
        loop {
            let page = self
                .s3
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(prefix)
                .set_continuation_token(continuation.take())
                .send()
                .await
                .map_err(|e| DocumentsError::List {
                    bucket: self.bucket.clone(),
                    prefix: prefix.to_owned(),
                    source: e.into(),
                })?;
            for object in page.contents() {
                if let Some(key) = object.key()
                    && TEXT_EXTENSIONS.iter().any(|ext| key.ends_with(ext))
                {
                    objects.push((key.to_owned(), object.e_tag().map(str::to_owned)));
                }
            }
            match page.next_continuation_token() {
                Some(token) if page.is_truncated() == Some(true) => continuation = Some(token.to_owned()),
                _ => break,
            }
        }
        objects.sort();
        Ok(objects)
    }

    async fn document(&self, key: &str, etag: Option<&str>) -> Result<Arc<Vec<Passage>>, DocumentsError> {
        if let Some(cached) = self.lock().get(key)
            && etag.is_some()
            && cached.etag.as_deref() == etag
        {
            return Ok(Arc::clone(&cached.passages));
        }
        let get_error = |source: Box<dyn std::error::Error + Send + Sync>| DocumentsError::Get {
            bucket: self.bucket.clone(),
            key: key.to_owned(),
            source,
        };
        let object = self
            .s3
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| get_error(e.into()))?;
        let body = object.body.collect().await.map_err(|e| get_error(e.into()))?;
        let text = String::from_utf8_lossy(&body.into_bytes()).into_owned();
        let uri = format!("s3://{}/{key}", self.bucket);
        let passages: Arc<Vec<Passage>> = Arc::new(
            split_markdown(&text).into_iter().map(|text| Passage { uri: uri.clone(), text }).collect(),
        );
        self.lock().insert(
            key.to_owned(),
            CachedDocument { etag: etag.map(str::to_owned), passages: Arc::clone(&passages) },
        );
        Ok(passages)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, CachedDocument>> {
        // The map is only ever replaced entry by entry, so a panic elsewhere cannot leave it torn.
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
