//! The AWS adapters of the domain's ports, one Cargo feature per service so
//! that a function compiles only the clients its IAM role grants: `s3`
//! (tenant configs, the archive handler), `dynamodb` (submissions, their
//! fulfillment, the limit counters), `eventbridge`, `sqs` (parked
//! submissions), `ses` and `bedrock` (ConverseStream and Retrieve).
//! `config` builds every client's configuration: HTTPS, deadlines, retries.

pub mod config;

#[cfg(feature = "bedrock")]
pub mod bedrock;
#[cfg(feature = "dynamodb")]
pub mod dynamodb;
#[cfg(feature = "eventbridge")]
pub mod eventbridge;
#[cfg(feature = "s3")]
pub mod s3;
#[cfg(feature = "ses")]
pub mod ses;
#[cfg(feature = "sqs")]
pub mod sqs;
