//! `/_standin/*`: the test-control surface, for tests and people that drive
//! the stand-in over HTTP rather than holding its `Arc` (the e2e host, curl).

use std::sync::Arc;

use axum::{
    Json,
    body::Bytes,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
};

use super::{BedrockStandIn, faults::FaultPatch, wire::aws_error, wire::validation_error};

/// `GET /_standin/faults`
pub async fn get_faults(State(standin): State<Arc<BedrockStandIn>>) -> Response {
    Json(standin.faults()).into_response()
}

/// `POST /_standin/faults` with any subset of the fault fields; answers with
/// the settings now in force.
pub async fn set_faults(State(standin): State<Arc<BedrockStandIn>>, body: Bytes) -> Response {
    match serde_json::from_slice::<FaultPatch>(&body) {
        Ok(patch) => Json(standin.set_faults(patch)).into_response(),
        Err(err) => validation_error(&format!("Invalid fault settings: {err}")),
    }
}

/// `POST /_standin/reset`: no faults, the configured pace, no records.
pub async fn reset(State(standin): State<Arc<BedrockStandIn>>) -> Response {
    standin.reset();
    StatusCode::NO_CONTENT.into_response()
}

/// `GET /_standin/streams`
pub async fn streams(State(standin): State<Arc<BedrockStandIn>>) -> Response {
    Json(standin.streams()).into_response()
}

/// `GET /_standin/retrievals`
pub async fn retrievals(State(standin): State<Arc<BedrockStandIn>>) -> Response {
    Json(standin.retrievals()).into_response()
}

/// Any other path: what AWS answers for an operation it does not know.
pub async fn unknown_operation() -> Response {
    aws_error(
        StatusCode::NOT_FOUND,
        "UnknownOperationException",
        "The local Bedrock stand-in implements only ConverseStream and Retrieve.",
    )
}
