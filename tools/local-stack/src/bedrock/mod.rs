//! The local Bedrock stand-in: ConverseStream (Bedrock Runtime) and Retrieve
//! (Bedrock Agent Runtime) on their real wire protocols, so the chat function's
//! real SDK clients run unchanged against it. Retrieve searches the documents
//! under `knowledge-base/<kb id>/` in the config bucket; ConverseStream answers
//! extractively from the context in the prompt at a realistic pace. Tests
//! inject throttling, mid-stream errors, delays, retired models and Retrieve
//! failures, and read back how every stream ended.

mod actions;
mod answer;
mod control;
mod converse;
mod documents;
mod faults;
mod passages;
mod records;
mod retrieve;
mod text;
mod wire;

#[cfg(test)]
mod tests;

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::{Duration, Instant},
};

use axum::{
    Router,
    routing::{get, post},
};
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

pub use actions::MarkerStyle;
pub use answer::NO_ANSWER;
pub use faults::{DEFAULT_DELTA_DELAY, DEFAULT_FAIL_MESSAGE, DEFAULT_FIRST_TOKEN_DELAY, FaultPatch, Faults};
pub use records::{RetrievalRecord, StreamRecord, StreamStatus};

use documents::KnowledgeDocuments;
use faults::Admission;
use records::{POLL_INTERVAL, Records};

pub const DEFAULT_BEDROCK_PORT: u16 = 4567;

/// How long `StandInServer::stop` lets open streams finish before dropping them.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// The pace a fresh (or reset) stand-in talks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StandInOptions {
    pub first_token_delay: Duration,
    pub delta_delay: Duration,
}

impl Default for StandInOptions {
    fn default() -> Self {
        Self { first_token_delay: DEFAULT_FIRST_TOKEN_DELAY, delta_delay: DEFAULT_DELTA_DELAY }
    }
}

/// The stand-in's state: documents, faults and records. Shared by its routes
/// and by the tests that steer it.
pub struct BedrockStandIn {
    documents: KnowledgeDocuments,
    options: StandInOptions,
    faults: Mutex<Faults>,
    records: Mutex<Records>,
}

impl BedrockStandIn {
    /// A stand-in whose knowledge bases are the documents in `bucket`.
    pub fn new(s3: aws_sdk_s3::Client, bucket: impl Into<String>, options: StandInOptions) -> Arc<Self> {
        Arc::new(Self {
            documents: KnowledgeDocuments::new(s3, bucket),
            options,
            faults: Mutex::new(Faults::with_pace(options.first_token_delay, options.delta_delay)),
            records: Mutex::new(Records::default()),
        })
    }

    pub fn router(self: &Arc<Self>) -> Router {
        Router::new()
            .route("/model/{model_id}/converse-stream", post(converse::converse_stream))
            .route("/knowledgebases/{knowledge_base_id}/retrieve", post(retrieve::retrieve))
            .route("/_standin/faults", get(control::get_faults).post(control::set_faults))
            .route("/_standin/reset", post(control::reset))
            .route("/_standin/streams", get(control::streams))
            .route("/_standin/retrievals", get(control::retrievals))
            .fallback(control::unknown_operation)
            .with_state(Arc::clone(self))
    }

    /// The fault settings in force.
    pub fn faults(&self) -> Faults {
        self.lock_faults().clone()
    }

    /// Changes the named fault settings and returns those now in force.
    pub fn set_faults(&self, patch: FaultPatch) -> Faults {
        let mut faults = self.lock_faults();
        faults.apply(patch);
        faults.clone()
    }

    /// The next `count` converse-stream requests get 429 ThrottlingException.
    pub fn throttle_next(&self, count: u32) {
        self.lock_faults().throttle_next = count;
    }

    /// The next `count` streams break with a modelStreamErrorException after
    /// `after_deltas` text deltas.
    pub fn fail_next_mid_stream(&self, count: u32, after_deltas: u32, message: impl Into<String>) {
        let mut faults = self.lock_faults();
        faults.fail_next = count;
        faults.fail_after_deltas = after_deltas;
        faults.fail_message = message.into();
    }

    /// The next `count` streams go silent after `after_deltas` deltas (0: before any event).
    pub fn stall_next(&self, count: u32, after_deltas: u32) {
        let mut faults = self.lock_faults();
        faults.stall_next = count;
        faults.stall_after_deltas = after_deltas;
    }

    pub fn set_retrieve_delay(&self, delay: Duration) {
        self.lock_faults().retrieve_delay_ms = millis(delay);
    }

    pub fn set_first_token_delay(&self, delay: Duration) {
        self.lock_faults().first_token_delay_ms = millis(delay);
    }

    pub fn set_delta_delay(&self, delay: Duration) {
        self.lock_faults().delta_delay_ms = millis(delay);
    }

    /// Requests for `model_id` get 400 ValidationException, as for a retired model.
    pub fn reject_model(&self, model_id: impl Into<String>) {
        self.lock_faults().rejected_models.insert(model_id.into());
    }

    /// How the next answers write their action marker (when the prompt asks for one).
    pub fn set_action_marker(&self, style: MarkerStyle) {
        self.lock_faults().action_marker = style;
    }

    /// While set, every Retrieve gets 500 InternalServerException.
    pub fn fail_retrieve(&self, fail: bool) {
        self.lock_faults().retrieve_fails = fail;
    }

    /// Back to no faults, the configured pace, and no records.
    pub fn reset(&self) {
        *self.lock_faults() = Faults::with_pace(self.options.first_token_delay, self.options.delta_delay);
        self.lock_records().clear();
    }

    /// Every converse-stream request so far, oldest first.
    pub fn streams(&self) -> Vec<StreamRecord> {
        self.lock_records().streams.clone()
    }

    /// Every Retrieve request so far, oldest first.
    pub fn retrievals(&self) -> Vec<RetrievalRecord> {
        self.lock_records().retrievals.clone()
    }

    /// Waits until stream `id` has ended (completed, cancelled, failed or
    /// refused); `None` if it has not within `timeout`.
    pub async fn wait_for_stream(&self, id: u64, timeout: Duration) -> Option<StreamRecord> {
        self.poll(timeout, || {
            self.streams().into_iter().find(|record| record.id == id && record.status.is_finished())
        })
        .await
    }

    /// Waits until no stream is still being written and returns all records;
    /// `None` if one is still open after `timeout`.
    pub async fn wait_until_idle(&self, timeout: Duration) -> Option<Vec<StreamRecord>> {
        self.poll(timeout, || {
            let streams = self.streams();
            streams.iter().all(|record| record.status.is_finished()).then_some(streams)
        })
        .await
    }

    async fn poll<T>(&self, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(found) = check() {
                return Some(found);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    fn admit(&self, model_id: &str) -> Admission {
        self.lock_faults().admit(model_id)
    }

    fn begin_stream(&self, model_id: &str) -> u64 {
        self.lock_records().begin(model_id)
    }

    fn update_stream(&self, id: u64, change: impl FnOnce(&mut StreamRecord)) {
        self.lock_records().update(id, change);
    }

    fn finish_stream(&self, id: u64, status: StreamStatus, error: Option<String>) {
        self.update_stream(id, |record| {
            record.status = status;
            record.error = error;
        });
    }

    fn cache_prompt(&self, model_id: &str, prefix: &str, tokens: u32) -> (u32, u32) {
        self.lock_records().cache(model_id, prefix, tokens)
    }

    fn record_retrieval(&self, record: RetrievalRecord) {
        self.lock_records().push_retrieval(record);
    }

    // A panic while a lock is held leaves plain data that is still usable, so
    // poisoning is ignored rather than turned into a second panic.
    fn lock_faults(&self) -> MutexGuard<'_, Faults> {
        self.faults.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn lock_records(&self) -> MutexGuard<'_, Records> {
        self.records.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// The stand-in serving on a socket.
pub struct StandInServer {
    pub addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl StandInServer {
    /// Serves `standin` on an already bound listener (bound early so its URL
    /// can go into the functions' settings before it starts answering).
    pub fn spawn(standin: &Arc<BedrockStandIn>, listener: TcpListener) -> std::io::Result<Self> {
        Self::spawn_router(standin.router(), listener)
    }

    /// Serves any stand-in routes (Bedrock's, and others merged in) on `listener`.
    pub fn spawn_router(router: Router, listener: TcpListener) -> std::io::Result<Self> {
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let serve = axum::serve(crate::no_delay(listener), router).with_graceful_shutdown(async {
                let _ = stopped.await;
            });
            if let Err(err) = serve.await {
                tracing::error!(error = %err, "Bedrock stand-in stopped");
            }
        });
        Ok(Self { addr, stop, task })
    }

    /// Binds `addr` (port 0 picks a free one) and serves `standin` there.
    pub async fn start(standin: &Arc<BedrockStandIn>, addr: &str) -> std::io::Result<Self> {
        Self::spawn(standin, TcpListener::bind(addr).await?)
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting requests and lets open streams finish, for a short while.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let mut task = self.task;
        if tokio::time::timeout(STOP_GRACE, &mut task).await.is_err() {
            task.abort();
        }
    }
}
