//! One isolated local stack per test: its own emulator and host on free ports,
//! the template's resources and the demo tenant, stopped when the test ends.
//! Quiet unless `TEST_LOG` is set.

use std::path::PathBuf;

pub use local_stack::{LocalStack, demo};
use local_stack::{StackOptions, repo_root};

/// Starts a fresh stack. Panics (failing the test) if it cannot start.
pub async fn spawn_stack() -> LocalStack {
    if std::env::var_os("TEST_LOG").is_some() {
        shared::telemetry::init();
    }
    let options = StackOptions {
        repo_root: repo_root(),
        moto_port: 0,
        host_port: 0,
        quiet: std::env::var_os("TEST_LOG").is_none(),
    };
    match LocalStack::start(options).await {
        Ok(stack) => stack,
        Err(err) => panic!("local stack did not start: {}", chain(&err)),
    }
}

/// The real tenant configs of the system we replace, kept with the tests.
pub fn tenant_fixtures() -> Vec<PathBuf> {
    let dir = repo_root().join("tests/fixtures/tenant-configs");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
}

/// Writes an object into the stack's config bucket.
pub async fn put_config_object(stack: &LocalStack, key: &str, body: impl Into<Vec<u8>>) {
    shared::aws::s3_client(&stack.sdk_config)
        .put_object()
        .bucket(&stack.settings.config_bucket)
        .key(key)
        .body(body.into().into())
        .send()
        .await
        .unwrap_or_else(|e| panic!("put {key}: {}", chain(&e)));
}

fn chain(err: &dyn std::error::Error) -> String {
    let mut message = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}
