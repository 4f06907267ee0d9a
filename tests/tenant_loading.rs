//! Tenants load through `shared`'s loader and its S3 client against the emulator.

use aws_adapters::{s3::S3, s3::S3ConfigSource};
use domain::tenant::TenantLoader;
use e2e::{demo, put_config_object, spawn_stack, tenant_fixtures};

fn loader(stack: &e2e::LocalStack) -> TenantLoader<S3ConfigSource> {
    TenantLoader::new(S3ConfigSource::new(S3::new(&stack.sdk_config), &stack.settings.config_bucket))
}

#[tokio::test]
async fn the_demo_tenant_loads_with_its_forms_ctas_and_branches() {
    let stack = spawn_stack().await;
    let tenant = loader(&stack).load(demo::DEMO_TENANT_HASH).await.unwrap();
    let config = &tenant.config;
    assert_eq!(tenant.id, demo::DEMO_TENANT_ID);
    assert_eq!(config.conversational_forms.len(), 2);
    assert!(config.knowledge_base_id().is_some());
    for branch in config.conversation_branches.values() {
        let ctas = branch.available_ctas.primary.iter().chain(&branch.available_ctas.secondary);
        for cta in ctas {
            assert!(config.cta_definitions.contains_key(cta), "branch names unknown CTA {cta}");
        }
    }
    for (id, cta) in &config.cta_definitions {
        assert!(cta.label().is_some() && cta.action().is_some(), "CTA {id} lacks a label or action");
        if let Some(form_id) = cta.form_id() {
            assert!(config.form(form_id).is_some(), "CTA {id} starts unknown form {form_id}");
        }
    }
    stack.stop().await;
}

#[tokio::test]
async fn an_unknown_tenant_is_tenant_not_found() {
    let stack = spawn_stack().await;
    let err = loader(&stack).load("nobody0000000").await.unwrap_err();
    assert_eq!(err.code(), "tenant_not_found");
    stack.stop().await;
}

#[tokio::test]
async fn a_malformed_config_is_an_error_naming_the_key() {
    let stack = spawn_stack().await;
    put_config_object(&stack, "mappings/broken0hash.json", r#"{"tenant_id":"BRK000001"}"#).await;
    let config = r#"{"chat_title":"Broken","streaming":{"max_tokens":"lots"}}"#;
    put_config_object(&stack, "tenants/BRK000001/config.json", config).await;

    let err = loader(&stack).load("broken0hash").await.unwrap_err();
    assert_eq!(err.code(), "tenant_config_invalid");
    assert!(err.to_string().contains("`streaming.max_tokens`"), "{err}");
    stack.stop().await;
}

#[tokio::test]
async fn a_path_walking_tenant_hash_is_refused_before_any_s3_call() {
    // A client pointed at a closed port: any S3 call would surface as a source error.
    let unreachable = aws_adapters::config::emulator_sdk_config("http://127.0.0.1:9", "us-east-1").await;
    let loader = TenantLoader::new(S3ConfigSource::new(S3::new(&unreachable), "bucket"));
    for hash in ["../x", "..%2Fx", "a/../../b", ""] {
        let err = loader.load(hash).await.unwrap_err();
        assert_eq!(err.code(), "invalid_tenant_hash", "{hash:?}: {err}");
    }
}

#[tokio::test]
async fn every_real_tenant_config_loads_from_the_emulators_s3() {
    let stack = spawn_stack().await;
    let loader = loader(&stack);
    let fixtures = tenant_fixtures();
    assert!(fixtures.len() >= 3, "fixtures missing: {fixtures:?}");
    for (n, path) in fixtures.iter().enumerate() {
        let tenant_id = format!("FIX{n:06}");
        let hash = format!("fixture{n}");
        put_config_object(
            &stack,
            &format!("mappings/{hash}.json"),
            format!(r#"{{"tenant_id":"{tenant_id}"}}"#),
        )
        .await;
        // Alternate the two object names production uses.
        let key = if n % 2 == 0 {
            format!("tenants/{tenant_id}/config.json")
        } else {
            format!("tenants/{tenant_id}/{tenant_id}-config.json")
        };
        put_config_object(&stack, &key, std::fs::read(path).unwrap()).await;

        let tenant = loader.load(&hash).await.unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let raw: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        let raw_forms = raw["conversational_forms"].as_object().map_or(0, |forms| forms.len());
        assert_eq!(tenant.config.conversational_forms.len(), raw_forms, "{}", path.display());
        for (key, form) in &tenant.config.conversational_forms {
            assert!(!form.fields.is_empty(), "{}: form {key} lost its fields", path.display());
            assert!(
                form.fields.iter().all(|f| f.key().is_some()),
                "{}: a field of {key} has no id",
                path.display()
            );
        }
    }
    stack.stop().await;
}
