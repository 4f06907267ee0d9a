//! Tenants: who is asking (`TenantHash`), what they configured (`TenantConfig`),
//! and where that lives (`TenantLoader` over a `ConfigSource`).

mod config;
mod hash;
mod loader;
mod public_view;

pub use config::*;
pub use hash::{InvalidTenantHash, TenantHash};
pub use loader::{
    ConfigSource, S3ConfigSource, SourceError, Tenant, TenantError, TenantLoader, s3_tenant_loader,
};
pub use public_view::{WIDGET_KEYS, public_view};
