//! A stand-in for Lambda's Invoke API, for the `lambda` fulfillment handler:
//! the emulator's Lambda needs Docker to run a function, so locally a handler
//! function is a name that records each invocation. The real SDK client talks
//! to it (`AWS_ENDPOINT_URL_LAMBDA`); `GET /_standin/invocations` shows them.

use std::{
    collections::HashSet,
    sync::{Arc, Mutex, MutexGuard},
};

use axum::{
    Json, Router,
    body::Bytes,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde::Serialize;
use serde_json::{Value, json};

/// One Invoke call as the function received it.
#[derive(Debug, Clone, Serialize)]
pub struct Invocation {
    pub function: String,
    /// `Event` (asynchronous) or `RequestResponse`.
    pub invocation_type: String,
    pub payload: Value,
}

#[derive(Default)]
pub struct LambdaStandIn {
    functions: Mutex<HashSet<String>>,
    invocations: Mutex<Vec<Invocation>>,
}

impl LambdaStandIn {
    pub fn new(functions: impl IntoIterator<Item = String>) -> Arc<Self> {
        Arc::new(Self { functions: Mutex::new(functions.into_iter().collect()), ..Self::default() })
    }

    /// Makes `name` an existing function; others answer ResourceNotFound, as in AWS.
    pub fn register(&self, name: impl Into<String>) {
        lock(&self.functions).insert(name.into());
    }

    pub fn invocations(&self) -> Vec<Invocation> {
        lock(&self.invocations).clone()
    }

    pub fn router(self: &Arc<Self>) -> Router {
        Router::new()
            .route("/2015-03-31/functions/{name}/invocations", post(invoke))
            .route("/_standin/invocations", get(list))
            .with_state(Arc::clone(self))
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

async fn invoke(
    State(standin): State<Arc<LambdaStandIn>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // A full ARN or a partial one names the function by its last segment.
    let function = name.rsplit(':').next().unwrap_or(&name).to_owned();
    if !lock(&standin.functions).contains(&function) {
        let error = [("x-amzn-errortype", "ResourceNotFoundException")];
        let message = json!({"Type": "User", "message": format!("Function not found: {function}")});
        return (StatusCode::NOT_FOUND, error, Json(message)).into_response();
    }
    let Ok(payload) = serde_json::from_slice::<Value>(&body) else {
        let error = [("x-amzn-errortype", "InvalidRequestContentException")];
        let message = json!({"Type": "User", "message": "Could not parse request body into json"});
        return (StatusCode::BAD_REQUEST, error, Json(message)).into_response();
    };
    let invocation_type = headers
        .get("x-amz-invocation-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("RequestResponse")
        .to_owned();
    let asynchronous = invocation_type == "Event";
    lock(&standin.invocations).push(Invocation { function, invocation_type, payload });
    if asynchronous { StatusCode::ACCEPTED.into_response() } else { Json(json!({})).into_response() }
}

async fn list(State(standin): State<Arc<LambdaStandIn>>) -> Json<Vec<Invocation>> {
    Json(standin.invocations())
}
