//! The knowledge-base port: passages relevant to a question. The Bedrock
//! Agent Runtime `Retrieve` adapter and a five-minute cache live here.

use std::{future::Future, sync::Arc, time::Duration};

use moka::future::Cache;

/// Results asked of the knowledge base per question.
pub const RESULTS_PER_QUERY: i32 = 5;
const CACHE_TTL: Duration = Duration::from_secs(5 * 60);
const CACHE_CAPACITY: u64 = 1_000;

#[derive(Debug, Clone, PartialEq)]
pub struct Passage {
    pub text: String,
    pub title: String,
    pub uri: String,
    pub score: f64,
}

#[derive(Debug, thiserror::Error)]
#[error("knowledge base {kb_id} could not be searched")]
pub struct KnowledgeError {
    pub kb_id: String,
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

/// `bedrock:Retrieve` on a knowledge base.
pub trait KnowledgeBase: Send + Sync + 'static {
    fn retrieve(
        &self,
        kb_id: &str,
        query: &str,
    ) -> impl Future<Output = Result<Vec<Passage>, KnowledgeError>> + Send;
}

/// `s3://bucket/kb/reading-buddies.md` → `Reading Buddies`.
pub fn title_from_uri(uri: &str) -> String {
    let file = uri.trim_end_matches('/').rsplit('/').next().unwrap_or(uri);
    let stem = file.rsplit_once('.').map_or(file, |(stem, _)| stem);
    stem.split(['-', '_', ' '])
        .filter(|word| !word.is_empty())
        .map(|word| {
            let mut chars = word.chars();
            chars
                .next()
                .map(|first| first.to_uppercase().chain(chars).collect::<String>())
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Caches successful retrievals per (knowledge base, query) for five minutes.
/// Failures are not cached: the next question tries again.
pub struct CachedKnowledgeBase<K> {
    inner: Arc<K>,
    cache: Cache<(String, String), Arc<Vec<Passage>>>,
}

impl<K: KnowledgeBase> CachedKnowledgeBase<K> {
    pub fn new(inner: K) -> Self {
        let cache = Cache::builder().max_capacity(CACHE_CAPACITY).time_to_live(CACHE_TTL).build();
        Self { inner: Arc::new(inner), cache }
    }

    pub async fn retrieve(&self, kb_id: &str, query: &str) -> Result<Arc<Vec<Passage>>, Arc<KnowledgeError>> {
        let key = (kb_id.to_owned(), query.trim().to_lowercase());
        let inner = Arc::clone(&self.inner);
        let (kb, q) = (kb_id.to_owned(), query.to_owned());
        self.cache.try_get_with(key, async move { inner.retrieve(&kb, &q).await.map(Arc::new) }).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[test]
    fn a_document_title_comes_from_its_file_name() {
        assert_eq!(title_from_uri("s3://b/knowledge-base/KB1/reading-buddies.md"), "Reading Buddies");
        assert_eq!(title_from_uri("https://example.org/faq"), "Faq");
        assert_eq!(title_from_uri(""), "");
    }

    struct Counting(AtomicUsize);

    impl KnowledgeBase for Counting {
        async fn retrieve(&self, _: &str, query: &str) -> Result<Vec<Passage>, KnowledgeError> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Ok(vec![Passage { text: query.into(), title: String::new(), uri: String::new(), score: 1.0 }])
        }
    }

    #[tokio::test]
    async fn the_same_question_to_the_same_knowledge_base_is_retrieved_once() {
        let kb = CachedKnowledgeBase::new(Counting(AtomicUsize::new(0)));
        kb.retrieve("KB1", "How do I volunteer?").await.unwrap();
        kb.retrieve("KB1", "how do i volunteer? ").await.unwrap();
        kb.retrieve("KB2", "How do I volunteer?").await.unwrap();
        assert_eq!(kb.inner.0.load(Ordering::SeqCst), 2);
    }
}
