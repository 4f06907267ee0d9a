//! What the stand-in was asked and how each answer ended, for tests to assert
//! on (a cancelled stream proves the chat function stopped reading at once).

use std::{
    collections::HashMap,
    hash::{Hash, Hasher},
    time::{Duration, Instant},
};

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamStatus {
    /// Frames are still being written.
    Streaming,
    /// Every frame, through the metadata event, was handed to the connection.
    Completed,
    /// The client went away before the end; generation stopped there.
    Cancelled,
    /// A modelStreamErrorException was sent mid-stream, as injected.
    Failed,
    /// Answered 429 ThrottlingException before the stream started.
    Throttled,
    /// Answered 400 ValidationException: the model id is on the rejected list.
    Rejected,
    /// Answered 400 ValidationException: the request body was not a valid Converse request.
    Invalid,
}

impl StreamStatus {
    pub fn is_finished(self) -> bool {
        self != Self::Streaming
    }
}

/// One converse-stream request (`GET /_standin/streams` lists them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StreamRecord {
    /// 1, 2, 3... in arrival order, never reused by a reset.
    pub id: u64,
    pub model_id: String,
    pub status: StreamStatus,
    pub deltas_sent: usize,
    /// When the first text delta was handed to the response body (benchmarks).
    #[serde(skip)]
    pub first_delta_at: Option<Instant>,
    /// How many messages the request carried, and their total characters.
    pub messages: usize,
    pub message_chars: usize,
    /// The visitor's question as the stand-in read it from the prompt.
    pub question: String,
    /// The last user message, verbatim (the prompt with the KB context).
    pub prompt: String,
    pub system: String,
    /// The whole answer the stream carries when it completes.
    pub answer: String,
    /// Why it was refused or failed.
    pub error: Option<String>,
    /// The request put a cache point after its system prompt...
    pub cache_point: bool,
    /// ...and these prompt tokens were read from, or written to, the cache.
    pub cache_read_tokens: u32,
    pub cache_write_tokens: u32,
}

/// One Retrieve request (`GET /_standin/retrievals`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RetrievalRecord {
    pub knowledge_base_id: String,
    pub query: String,
    /// HTTP status answered.
    pub status: u16,
    pub results: usize,
}

#[derive(Debug, Default)]
pub struct Records {
    pub streams: Vec<StreamRecord>,
    pub retrievals: Vec<RetrievalRecord>,
    /// Cached prompt prefixes (a hash of model and text) and when each was last used.
    prompt_cache: HashMap<u64, Instant>,
    /// Survives `clear`, so a stream still running across a reset never
    /// updates a newer record that reused its id.
    last_id: u64,
}

impl Records {
    /// Opens a record in `Streaming` state and returns its id.
    pub fn begin(&mut self, model_id: &str) -> u64 {
        self.last_id += 1;
        let id = self.last_id;
        forget_oldest(&mut self.streams);
        self.streams.push(StreamRecord {
            id,
            model_id: model_id.to_owned(),
            status: StreamStatus::Streaming,
            deltas_sent: 0,
            first_delta_at: None,
            messages: 0,
            message_chars: 0,
            question: String::new(),
            prompt: String::new(),
            system: String::new(),
            answer: String::new(),
            error: None,
            cache_point: false,
            cache_read_tokens: 0,
            cache_write_tokens: 0,
        });
        id
    }

    pub fn push_retrieval(&mut self, record: RetrievalRecord) {
        forget_oldest(&mut self.retrievals);
        self.retrievals.push(record);
    }

    pub fn clear(&mut self) {
        self.streams.clear();
        self.retrievals.clear();
        self.prompt_cache.clear();
    }

    /// Bedrock's prompt cache for one prefix: a hit read within the TTL of
    /// its last use (which renews it), or a write. `(read, written)` tokens.
    pub fn cache(&mut self, model_id: &str, prefix: &str, tokens: u32) -> (u32, u32) {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        (model_id, prefix).hash(&mut hasher);
        let now = Instant::now();
        self.prompt_cache.retain(|_, used| now.duration_since(*used) < PROMPT_CACHE_TTL);
        match self.prompt_cache.insert(hasher.finish(), now) {
            Some(_) => (tokens, 0),
            None => (0, tokens),
        }
    }

    pub fn update(&mut self, id: u64, change: impl FnOnce(&mut StreamRecord)) {
        if let Some(record) = self.streams.iter_mut().find(|record| record.id == id) {
            change(record);
        }
    }
}

/// How long a cached prefix lives unused: Bedrock's default cache TTL.
const PROMPT_CACHE_TTL: Duration = Duration::from_secs(300);

/// A local stack can run for days; its records stay a bounded debugging aid.
const MAX_RECORDS: usize = 1_000;

fn forget_oldest<T>(records: &mut Vec<T>) {
    if records.len() >= MAX_RECORDS {
        records.remove(0);
    }
}

/// How often the wait helpers look again: short against a 25 ms delta pace.
pub const POLL_INTERVAL: Duration = Duration::from_millis(10);
