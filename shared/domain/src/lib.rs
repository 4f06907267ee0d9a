//! What Picasso is about, with no AWS SDK in it: tenant configs and their
//! loading, forms and their validation, the submission record and its
//! fulfillment, events, SSE frames, limits, and the ports (traits) the AWS
//! adapters implement. Every function and tool builds on it.

pub mod analytics;
pub mod edge;
pub mod events;
pub mod failure;
pub mod fill;
pub mod forms;
pub mod fulfillment;
pub mod funnel;
pub mod knowledge;
pub mod limits;
pub mod mail;
pub mod mask;
pub mod model;
pub mod parking;
pub mod report;
pub mod sse;
pub mod submissions;
pub mod tenant;
pub mod time;
