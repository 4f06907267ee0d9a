//! The demo tenant: mapping, config and knowledge-base documents, written into
//! the emulator's config bucket exactly as production holds a tenant.

use std::path::Path;

use aws_sdk_s3::primitives::ByteStream;

pub const DEMO_TENANT_HASH: &str = "ri3a9f2c7d41be";
pub const DEMO_TENANT_ID: &str = "RIV204815";

#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error("could not read demo data at {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the demo config has no aws.knowledge_base_id")]
    NoKnowledgeBase,
    #[error("demo config is not valid JSON")]
    Json(#[from] serde_json::Error),
    #[error("could not write {key}")]
    Put {
        key: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Where each demo object goes. Knowledge-base documents sit under
/// `knowledge-base/<kb id>/`, the data-source prefix a Bedrock KB would ingest.
/// `local_origins` (the local host's own address, whatever port it got) join
/// the config's `allowed_origins`, so the page at `/` may use its tenant.
pub fn demo_objects(demo_dir: &Path, local_origins: &[String]) -> Result<Vec<(String, Vec<u8>)>, SeedError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|source| SeedError::Read { path: path.display().to_string(), source })
    };
    let mut config: serde_json::Value = serde_json::from_slice(&read(&demo_dir.join("config.json"))?)?;
    let kb_id = config
        .pointer("/aws/knowledge_base_id")
        .and_then(|v| v.as_str())
        .map(str::to_owned)
        .ok_or(SeedError::NoKnowledgeBase)?;
    if let Some(allowed) = config.get_mut("allowed_origins").and_then(serde_json::Value::as_array_mut) {
        for origin in local_origins {
            if !allowed.iter().any(|o| o == origin.as_str()) {
                allowed.push(serde_json::Value::String(origin.clone()));
            }
        }
    }
    let config = serde_json::to_vec_pretty(&config)?;
    let mapping = serde_json::to_vec(&serde_json::json!({ "tenant_id": DEMO_TENANT_ID }))?;
    let mut objects = vec![
        (format!("mappings/{DEMO_TENANT_HASH}.json"), mapping),
        (format!("tenants/{DEMO_TENANT_ID}/config.json"), config),
    ];
    let kb_dir = demo_dir.join("kb");
    let entries = std::fs::read_dir(&kb_dir)
        .map_err(|source| SeedError::Read { path: kb_dir.display().to_string(), source })?;
    let mut documents: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
    documents.sort();
    for document in documents.iter().filter(|p| p.extension().is_some_and(|e| e == "md")) {
        let name = document.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        objects.push((format!("knowledge-base/{kb_id}/{name}"), read(document)?));
    }
    Ok(objects)
}

/// Writes the demo tenant into `bucket`.
pub async fn seed(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    demo_dir: &Path,
    local_origins: &[String],
) -> Result<usize, SeedError> {
    let objects = demo_objects(demo_dir, local_origins)?;
    for (key, body) in &objects {
        let content_type = if key.ends_with(".md") { "text/markdown" } else { "application/json" };
        s3.put_object()
            .bucket(bucket)
            .key(key)
            .content_type(content_type)
            .body(ByteStream::from(body.clone()))
            .send()
            .await
            .map_err(|e| SeedError::Put { key: key.clone(), source: e.into() })?;
    }
    Ok(objects.len())
}

/// What the demo tenant's fulfillment reaches: Lambda handler functions and
/// archive buckets, which exist in a real account and are made up locally.
pub struct FulfillmentTargets {
    pub functions: Vec<String>,
    pub buckets: Vec<String>,
}

pub fn fulfillment_targets(demo_dir: &Path) -> Result<FulfillmentTargets, SeedError> {
    let path = demo_dir.join("config.json");
    let raw = std::fs::read(&path)
        .map_err(|source| SeedError::Read { path: path.display().to_string(), source })?;
    let config: serde_json::Value = serde_json::from_slice(&raw)?;
    let fulfillments: Vec<&serde_json::Value> = config["conversational_forms"]
        .as_object()
        .into_iter()
        .flat_map(|forms| forms.values())
        .chain(std::iter::once(&config))
        .filter_map(|form| form.get("fulfillment").or_else(|| form.get("default_fulfillment")))
        .collect();
    let named = |key: &str| -> Vec<String> {
        let mut names: Vec<String> =
            fulfillments.iter().filter_map(|f| f[key].as_str()).map(str::to_owned).collect();
        names.sort();
        names.dedup();
        names
    };
    Ok(FulfillmentTargets { functions: named("function"), buckets: named("bucket") })
}

/// Creates each bucket (already existing is fine).
pub async fn create_buckets(s3: &aws_sdk_s3::Client, buckets: &[String]) -> Result<(), SeedError> {
    for bucket in buckets {
        let created = s3.create_bucket().bucket(bucket).send().await;
        if let Err(err) = created {
            let exists = err
                .as_service_error()
                .is_some_and(|e| e.is_bucket_already_owned_by_you() || e.is_bucket_already_exists());
            if !exists {
                return Err(SeedError::Put { key: bucket.clone(), source: err.into() });
            }
        }
    }
    Ok(())
}
