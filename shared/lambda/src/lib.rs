//! Running on Lambda: the Function URL's event as HTTP, JSON log lines as
//! Lambda ships them, the settings read once at start, and the SQS consumer
//! runner the three fulfillment functions share (feature `consumer`).

#[cfg(feature = "consumer")]
pub mod consumer;
pub mod function_url;
pub mod settings;
#[cfg(feature = "sqs")]
pub mod sqs;
pub mod telemetry;

pub use settings::Settings;
