//! Tenant resolution: `mappings/<hash>.json` → `tenants/<id>/config.json`
//! (falling back to `tenants/<id>/<id>-config.json`), cached for five minutes.

use std::{error::Error as StdError, future::Future, sync::Arc, time::Duration};

use serde::Deserialize;

use moka::future::Cache;

use super::{
    TenantConfig,
    hash::{InvalidTenantHash, TenantHash, is_safe_key_segment},
};

const CACHE_TTL: Duration = Duration::from_secs(5 * 60);
const CACHE_CAPACITY: u64 = 512;
/// How long a hash that maps to no tenant is answered from memory: a flood of
/// made-up hashes costs one S3 read each per half minute, and a tenant created
/// just after a miss is served within that time.
const UNKNOWN_TTL: Duration = Duration::from_secs(30);
const UNKNOWN_CAPACITY: u64 = 10_000;

/// A loaded tenant: its internal id and its config. (The public hash is the
/// caller's: a widget request names one; a consumer knows only the id.)
#[derive(Debug)]
pub struct Tenant {
    pub id: String,
    pub config: TenantConfig,
    /// The document as stored, for parts the widget receives verbatim
    /// (a form's `fields` in a CTA).
    pub raw: serde_json::Value,
}

impl Tenant {
    /// A form's `fields` exactly as the config holds them, for the widget.
    pub fn raw_form_fields(&self, form_key: &str) -> serde_json::Value {
        self.raw
            .pointer(&format!(
                "/conversational_forms/{}/fields",
                form_key.replace('~', "~0").replace('/', "~1")
            ))
            .cloned()
            .unwrap_or(serde_json::Value::Array(Vec::new()))
    }
}

/// A failure to read from the config store.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The store refused the read. S3 also answers a key that does not exist
    /// this way when the role lacks `s3:ListBucket`, so this may be either a
    /// missing permission or a missing object: never a reason to assume a default.
    #[error(
        "access denied reading {key}: the role needs s3:GetObject on the key and s3:ListBucket on the \
         bucket (without s3:ListBucket S3 answers AccessDenied, not NoSuchKey, for a key that does not exist)"
    )]
    AccessDenied {
        key: String,
        #[source]
        source: Box<dyn StdError + Send + Sync>,
    },
    /// Network, throttling, a timeout or a 5xx.
    #[error("the config store did not answer")]
    Unavailable(#[source] Box<dyn StdError + Send + Sync>),
}

/// Where tenant documents live (S3 in production). Read-only: `s3:GetObject`.
pub trait ConfigSource: Send + Sync + 'static {
    /// The object's bytes, or `None` when no object has that key.
    fn get(&self, key: &str) -> impl Future<Output = Result<Option<Vec<u8>>, SourceError>> + Send;
}

/// Sources are behind `Arc` so one failed load can be handed to every caller
/// that was waiting on it, with its source chain intact.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TenantError {
    #[error(transparent)]
    InvalidHash(#[from] InvalidTenantHash),
    #[error("no tenant is configured for tenant_hash {0}")]
    NotFound(TenantHash),
    #[error("no config is stored for tenant_id {0}")]
    UnknownId(String),
    #[error("tenant document {object} is malformed at `{key}`: {source}")]
    Malformed {
        object: String,
        key: String,
        #[source]
        source: Arc<serde_json::Error>,
    },
    #[error("tenant mapping {object} names an unusable tenant_id {tenant_id:?}")]
    BadTenantId { object: String, tenant_id: String },
    #[error("could not read {object} from the config store")]
    Source {
        object: String,
        #[source]
        source: Arc<dyn StdError + Send + Sync>,
    },
}

impl TenantError {
    /// The stable code sent to clients in error frames.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidHash(_) => "invalid_tenant_hash",
            Self::NotFound(_) | Self::UnknownId(_) => "tenant_not_found",
            Self::Malformed { .. } | Self::BadTenantId { .. } => "tenant_config_invalid",
            Self::Source { .. } => "config_unavailable",
        }
    }

    /// The HTTP status a request for this tenant is refused with.
    pub fn status(&self) -> u16 {
        match self {
            Self::InvalidHash(_) => 400,
            Self::NotFound(_) | Self::UnknownId(_) => 404,
            Self::Malformed { .. } | Self::BadTenantId { .. } => 500,
            Self::Source { .. } => 503,
        }
    }

    /// What the visitor is told; the details go to the log only.
    pub fn public_message(&self) -> &'static str {
        match self {
            Self::InvalidHash(_) => "tenant_hash is not valid",
            Self::NotFound(_) | Self::UnknownId(_) => "No tenant is configured for this tenant_hash",
            Self::Malformed { .. } | Self::BadTenantId { .. } => {
                "This chat is misconfigured; the site owner has been notified"
            }
            Self::Source { .. } => "The service is temporarily unavailable; please try again",
        }
    }
}

#[derive(Deserialize)]
struct Mapping {
    tenant_id: String,
}

/// Loads tenants through a [`ConfigSource`], with a bounded five-minute cache
/// that also collapses concurrent loads of the same tenant into one.
pub struct TenantLoader<S> {
    source: Arc<S>,
    /// Keyed by `h:<hash>` (widget requests) or `id:<tenant_id>` (consumers).
    cache: Cache<String, Arc<Tenant>>,
    /// Keys of recent `tenant_not_found` answers (the cache above keeps only successes).
    unknown: Cache<String, ()>,
}

impl<S: ConfigSource> TenantLoader<S> {
    pub fn new(source: S) -> Self {
        Self {
            source: Arc::new(source),
            cache: Cache::builder().max_capacity(CACHE_CAPACITY).time_to_live(CACHE_TTL).build(),
            unknown: Cache::builder().max_capacity(UNKNOWN_CAPACITY).time_to_live(UNKNOWN_TTL).build(),
        }
    }

    /// Resolves a raw `tenant_hash` from a request. The hash is validated before
    /// it becomes part of any object key.
    pub async fn load(&self, raw_hash: &str) -> Result<Arc<Tenant>, TenantError> {
        let hash = TenantHash::parse(raw_hash)?;
        let key = format!("h:{hash}");
        if self.unknown.contains_key(&key) {
            return Err(TenantError::NotFound(hash));
        }
        let source = Arc::clone(&self.source);
        let loaded = self
            .cache
            .try_get_with(key.clone(), async move { resolve(source.as_ref(), hash).await.map(Arc::new) })
            .await
            .map_err(Arc::unwrap_or_clone);
        if let Err(TenantError::NotFound(_)) = &loaded {
            self.unknown.insert(key, ()).await;
        }
        loaded
    }

    /// Loads a tenant by its internal id, as the fulfillment consumers know it
    /// from a submission (no mapping read). The id must be usable as a key
    /// segment before it becomes part of one.
    pub async fn load_by_id(&self, tenant_id: &str) -> Result<Arc<Tenant>, TenantError> {
        if !is_safe_key_segment(tenant_id) {
            let object = "the submission".to_owned();
            return Err(TenantError::BadTenantId { object, tenant_id: tenant_id.to_owned() });
        }
        let source = Arc::clone(&self.source);
        let id = tenant_id.to_owned();
        self.cache
            .try_get_with(format!("id:{id}"), async move {
                let unknown = TenantError::UnknownId(id.clone());
                load_config(source.as_ref(), id, unknown).await.map(Arc::new)
            })
            .await
            .map_err(Arc::unwrap_or_clone)
    }
}

async fn resolve<S: ConfigSource>(source: &S, hash: TenantHash) -> Result<Tenant, TenantError> {
    let mapping_key = format!("mappings/{hash}.json");
    let Some(bytes) = fetch(source, &mapping_key).await? else {
        return Err(TenantError::NotFound(hash));
    };
    let Mapping { tenant_id } = parse(&mapping_key, &bytes)?;
    // The id comes from our own bucket, but it still becomes part of a key.
    if !is_safe_key_segment(&tenant_id) {
        return Err(TenantError::BadTenantId { object: mapping_key, tenant_id });
    }
    tracing::debug!(tenant_hash = %hash, tenant_id, "tenant mapping read");
    load_config(source, tenant_id, TenantError::NotFound(hash)).await
}

/// `tenants/<id>/config.json`, else `tenants/<id>/<id>-config.json`; neither: `missing`.
async fn load_config<S: ConfigSource>(
    source: &S,
    tenant_id: String,
    missing: TenantError,
) -> Result<Tenant, TenantError> {
    for config_key in
        [format!("tenants/{tenant_id}/config.json"), format!("tenants/{tenant_id}/{tenant_id}-config.json")]
    {
        if let Some(bytes) = fetch(source, &config_key).await? {
            let raw: serde_json::Value = parse(&config_key, &bytes)?;
            let mut config: TenantConfig = parse_value(&config_key, &raw)?;
            config.tenant_id.get_or_insert_with(|| tenant_id.clone());
            tracing::info!(tenant_id, object = config_key, "tenant config loaded");
            return Ok(Tenant { id: tenant_id, config, raw });
        }
    }
    Err(missing)
}

fn parse_value<T: serde::de::DeserializeOwned>(
    object: &str,
    value: &serde_json::Value,
) -> Result<T, TenantError> {
    serde_path_to_error::deserialize(value).map_err(|err| {
        let key = err.path().to_string();
        TenantError::Malformed { object: object.to_owned(), key, source: Arc::new(err.into_inner()) }
    })
}

async fn fetch<S: ConfigSource>(source: &S, key: &str) -> Result<Option<Vec<u8>>, TenantError> {
    source
        .get(key)
        .await
        .map_err(|source| TenantError::Source { object: key.to_owned(), source: Arc::new(source) })
}

/// Parses JSON, naming the path of the first offending key on failure.
fn parse<T: serde::de::DeserializeOwned>(object: &str, bytes: &[u8]) -> Result<T, TenantError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(&mut deserializer).map_err(|err| {
        let key = err.path().to_string();
        TenantError::Malformed { object: object.to_owned(), key, source: Arc::new(err.into_inner()) }
    })
}

/// The S3 adapter: `GetObject` on the config bucket.
#[cfg(test)]
mod tests {
    use std::{
        collections::HashMap,
        sync::{Arc, Mutex},
    };

    use super::*;

    /// An in-memory store that records every key it is asked for.
    #[derive(Default)]
    struct MemorySource {
        objects: HashMap<String, Vec<u8>>,
        requested: Arc<Mutex<Vec<String>>>,
    }

    impl MemorySource {
        fn with(objects: &[(&str, &str)]) -> Self {
            Self {
                objects: objects.iter().map(|(k, v)| (k.to_string(), v.as_bytes().to_vec())).collect(),
                requested: Arc::default(),
            }
        }
    }

    impl ConfigSource for MemorySource {
        async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, SourceError> {
            self.requested.lock().unwrap().push(key.to_owned());
            Ok(self.objects.get(key).cloned())
        }
    }

    #[tokio::test]
    async fn an_unknown_hash_asked_again_is_answered_without_another_read() {
        let source = MemorySource::with(&[]);
        let requested = Arc::clone(&source.requested);
        let loader = TenantLoader::new(source);
        for _ in 0..3 {
            assert!(matches!(loader.load("nobody").await, Err(TenantError::NotFound(_))));
        }
        assert_eq!(requested.lock().unwrap().as_slice(), ["mappings/nobody.json"]);
    }

    #[tokio::test]
    async fn a_mapped_tenant_loads_from_its_config_json() {
        let loader = TenantLoader::new(MemorySource::with(&[
            ("mappings/h1.json", r#"{"tenant_id":"T1"}"#),
            ("tenants/T1/config.json", r#"{"chat_title":"One"}"#),
        ]));
        let tenant = loader.load("h1").await.unwrap();
        assert_eq!(tenant.id, "T1");
        assert_eq!(tenant.config.chat_title.as_deref(), Some("One"));
        assert_eq!(tenant.config.tenant_id.as_deref(), Some("T1"));
    }

    /// A store that is down: each read waits a little, then fails.
    #[derive(Default)]
    struct DownSource {
        reads: Arc<std::sync::atomic::AtomicUsize>,
    }

    impl ConfigSource for DownSource {
        async fn get(&self, _key: &str) -> Result<Option<Vec<u8>>, SourceError> {
            self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(20)).await;
            Err(SourceError::Unavailable("S3 is down".into()))
        }
    }

    #[tokio::test]
    async fn during_an_outage_a_burst_for_one_tenant_waits_on_one_read_and_the_failure_is_not_kept() {
        let source = DownSource::default();
        let reads = Arc::clone(&source.reads);
        let loader = TenantLoader::new(source);
        let (a, b, c) = tokio::join!(loader.load("h1"), loader.load("h1"), loader.load("h1"));
        for result in [a, b, c] {
            assert_eq!(result.unwrap_err().code(), "config_unavailable");
        }
        assert_eq!(reads.load(std::sync::atomic::Ordering::SeqCst), 1, "one read for the burst");
        assert!(loader.load("h1").await.is_err());
        assert_eq!(reads.load(std::sync::atomic::Ordering::SeqCst), 2, "a failure is tried again");
    }

    #[tokio::test]
    async fn a_tenant_loaded_by_its_id_reads_no_mapping_and_an_unknown_or_unusable_id_is_refused() {
        let source = MemorySource::with(&[("tenants/T1/config.json", r#"{"chat_title":"One"}"#)]);
        let requested = Arc::clone(&source.requested);
        let loader = TenantLoader::new(source);
        assert_eq!(loader.load_by_id("T1").await.unwrap().id, "T1");
        assert_eq!(requested.lock().unwrap().as_slice(), ["tenants/T1/config.json"]);
        let unknown = loader.load_by_id("T2").await.unwrap_err();
        assert!(matches!(&unknown, TenantError::UnknownId(id) if id == "T2"), "{unknown:?}");
        assert_eq!(unknown.code(), "tenant_not_found");
        let unusable = loader.load_by_id("../T1").await.unwrap_err();
        assert_eq!(unusable.code(), "tenant_config_invalid");
        assert_eq!(requested.lock().unwrap().len(), 3, "nothing read for an unusable id");
    }

    #[tokio::test]
    async fn the_legacy_id_config_json_name_is_the_fallback() {
        let loader = TenantLoader::new(MemorySource::with(&[
            ("mappings/h1.json", r#"{"tenant_id":"T1"}"#),
            ("tenants/T1/T1-config.json", r#"{"chat_title":"Legacy"}"#),
        ]));
        assert_eq!(loader.load("h1").await.unwrap().config.chat_title.as_deref(), Some("Legacy"));
    }

    #[tokio::test]
    async fn a_path_walking_hash_is_refused_before_the_store_is_asked() {
        let source = MemorySource::default();
        let requested = Arc::clone(&source.requested);
        let loader = TenantLoader::new(source);
        let err = loader.load("../x").await.unwrap_err();
        assert_eq!(err.code(), "invalid_tenant_hash");
        assert!(requested.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn an_unmapped_hash_and_a_mapping_without_config_are_both_not_found() {
        let loader = TenantLoader::new(MemorySource::with(&[("mappings/h2.json", r#"{"tenant_id":"T2"}"#)]));
        assert_eq!(loader.load("nope").await.unwrap_err().code(), "tenant_not_found");
        assert_eq!(loader.load("h2").await.unwrap_err().code(), "tenant_not_found");
    }

    #[tokio::test]
    async fn a_malformed_config_names_the_offending_key() {
        let loader = TenantLoader::new(MemorySource::with(&[
            ("mappings/h1.json", r#"{"tenant_id":"T1"}"#),
            (
                "tenants/T1/config.json",
                r#"{"conversational_forms":{"vol":{"fields":[{"id":"a","required":"yes"}]}}}"#,
            ),
        ]));
        let err = loader.load("h1").await.unwrap_err();
        assert_eq!(err.code(), "tenant_config_invalid");
        let message = err.to_string();
        assert!(message.contains("conversational_forms.vol.fields[0].required"), "{message}");
        assert!(message.contains("tenants/T1/config.json"), "{message}");
    }

    #[tokio::test]
    async fn an_invalid_field_pattern_fails_the_load_naming_the_form_field_and_key() {
        let loader = TenantLoader::new(MemorySource::with(&[
            ("mappings/h1.json", r#"{"tenant_id":"T1"}"#),
            (
                "tenants/T1/config.json",
                r#"{"conversational_forms":{"vol":{"fields":[{"id":"zip","validation":{"pattern":"^[0-9"}}]}}}"#,
            ),
        ]));
        let err = loader.load("h1").await.unwrap_err();
        assert_eq!(err.code(), "tenant_config_invalid", "never a form that accepts any value");
        let message = crate::report::error_chain(&err);
        assert!(message.contains("conversational_forms.vol.fields[0].validation"), "{message}");
        assert!(message.contains("`pattern` \"^[0-9\""), "{message}");
    }

    #[tokio::test]
    async fn a_mapping_to_an_unsafe_tenant_id_is_refused() {
        let source = MemorySource::with(&[("mappings/h1.json", r#"{"tenant_id":"../other"}"#)]);
        let requested = Arc::clone(&source.requested);
        let err = TenantLoader::new(source).load("h1").await.unwrap_err();
        assert_eq!(err.code(), "tenant_config_invalid");
        assert_eq!(*requested.lock().unwrap(), ["mappings/h1.json"]);
    }

    /// What AWS answers for a missing key when the role may not list the bucket.
    struct DeniedSource;

    impl ConfigSource for DeniedSource {
        async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, SourceError> {
            Err(SourceError::AccessDenied { key: key.to_owned(), source: "AccessDenied".into() })
        }
    }

    #[tokio::test]
    async fn an_access_denied_store_is_config_unavailable_naming_the_missing_permission() {
        let loader = TenantLoader::new(DeniedSource);
        let err = loader.load("h1").await.unwrap_err();
        assert_eq!(err.code(), "config_unavailable", "never tenant_not_found, never a default config");
        assert_eq!(err.status(), 503);
        let logged = crate::report::error_chain(&err);
        assert!(logged.contains("mappings/h1.json"), "{logged}");
        assert!(logged.contains("s3:ListBucket"), "{logged}");
        // Not remembered as an unknown tenant: the next request asks the store again.
        assert_eq!(loader.load("h1").await.unwrap_err().code(), "config_unavailable");
    }

    #[tokio::test]
    async fn a_loaded_tenant_is_served_from_the_cache() {
        let source = MemorySource::with(&[
            ("mappings/h1.json", r#"{"tenant_id":"T1"}"#),
            ("tenants/T1/config.json", "{}"),
        ]);
        let requested = Arc::clone(&source.requested);
        let loader = TenantLoader::new(source);
        loader.load("h1").await.unwrap();
        loader.load("h1").await.unwrap();
        assert_eq!(requested.lock().unwrap().len(), 2, "one mapping read and one config read");
    }
}
