//! Tenants: who is asking (`TenantHash`), what they configured (`TenantConfig`),
//! and where that lives (`TenantLoader` over a `ConfigSource`).

mod config;
mod hash;
mod loader;
mod public_view;

pub use config::*;
pub use hash::{InvalidTenantHash, TenantHash};
pub use loader::{ConfigSource, SourceError, Tenant, TenantError, TenantLoader};
pub use public_view::{WIDGET_KEYS, public_view};
