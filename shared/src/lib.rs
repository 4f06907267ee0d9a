//! The library every Picasso function uses: configuration, AWS clients, tenant
//! config, SSE framing and telemetry. SDK types appear only in the adapters here.

pub mod analytics;
pub mod aws;
pub mod cache;
pub mod consumer;
pub mod edge;
pub mod events;
pub mod fill;
pub mod forms;
pub mod fulfillment;
pub mod function_url;
pub mod intake;
pub mod knowledge;
pub mod limits;
pub mod mail;
pub mod mask;
pub mod model;
pub mod parking;
pub mod s3;
pub mod settings;
pub mod sse;
pub mod submissions;
pub mod telemetry;
pub mod tenant;

pub use settings::Settings;
