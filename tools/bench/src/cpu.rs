//! CPU time of our own code per chat and per form submit: the real services,
//! in process, on a single-threaded runtime, with every port (S3 config,
//! knowledge base, model, counters, table, bus) in memory, so nothing but our
//! code (and the tokio scheduling it asks for) runs on the thread timed.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use chat_stream::{ChatOptions, ChatService};
use domain::{
    edge::Caller,
    events::{EventPublisher, FormSubmitted, PublishError},
    knowledge::{KnowledgeBase, KnowledgeError, Passage},
    limits::{Counters, Guard, LimitError},
    model::{ModelError, ModelEvent, ModelEvents, ModelRequest, ModelStream, Usage},
    report::LineSink,
    submissions::{Created, NewSubmission, StoreError, SubmissionStore},
    tenant::{ConfigSource, SourceError, TenantLoader},
};
use futures_util::future::BoxFuture;
use lambda_edge::Settings;
use local_stack::demo;

use crate::{Error, QUESTIONS, chat_body, forms::submission};

/// Chats and submits not timed: the first tenant load and the caches filling.
const WARM_UP: usize = 100;

pub fn run(chats: usize, submissions: usize) -> Result<(), Error> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let objects = Objects::demo()?;
        let chat = chat_cpu(&objects, chats).await?;
        let submit = submit_cpu(&objects, submissions).await?;
        println!("cpu: in process, one thread, every AWS port in memory (demo tenant)");
        println!(
            "  per chat (request parse, tenant, origin, limits, retrieval cache, prompt, {DELTAS} text deltas as SSE frames, CTA, QA and metric lines)\n    {:.1} µs  (n={chats}, after {WARM_UP} warm-up)",
            micros(chat)
        );
        println!(
            "  per form submit (parse, tenant, limits, validation, routing, item, event, frames)\n    {:.1} µs  (n={submissions}, after {WARM_UP} warm-up)",
            micros(submit)
        );
        Ok(())
    })
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

async fn chat_cpu(objects: &Objects, chats: usize) -> Result<Duration, Error> {
    let settings = Settings::from_vars(HashMap::new())?;
    let tenants = Arc::new(TenantLoader::new(objects.clone()));
    let service = Arc::new(
        ChatService::with_options(settings, tenants, Library, Canned, discard(), ChatOptions::default())
            .with_guard(unlimited()),
    );
    let caller = Caller::new(Some("https://example.org"), Some("203.0.113.7".into()));
    let bodies: Vec<String> = QUESTIONS.iter().map(|q| chat_body(q)).collect();
    let one = async |n: usize| -> Result<(), Error> {
        let mut response = service.handle_from(bodies[n % bodies.len()].as_bytes(), &caller).await;
        let mut frames = 0;
        while response.body.recv().await.is_some() {
            frames += 1;
        }
        if response.status != 200 || frames < DELTAS {
            return Err(format!("chat {n} answered {} with {frames} frames", response.status).into());
        }
        Ok(())
    };
    for n in 0..WARM_UP {
        one(n).await?;
    }
    let started = thread_cpu()?;
    for n in 0..chats {
        one(n).await?;
    }
    Ok((thread_cpu()? - started) / u32::try_from(chats.max(1))?)
}

async fn submit_cpu(objects: &Objects, submissions: usize) -> Result<Duration, Error> {
    let tenants = Arc::new(TenantLoader::new(objects.clone()));
    let service = form_intake::FormService::new(tenants, Table::default(), Bus).with_guard(unlimited());
    let bodies: Vec<String> = (0..WARM_UP + submissions).map(submission).collect();
    let one = async |n: usize| -> Result<(), Error> {
        let response = service.handle(bodies[n].as_bytes()).await;
        if response.status != 200 {
            return Err(format!("submit {n} answered {}: {}", response.status, response.body()).into());
        }
        Ok(())
    };
    for n in 0..WARM_UP {
        one(n).await?;
    }
    let started = thread_cpu()?;
    for n in WARM_UP..WARM_UP + submissions {
        one(n).await?;
    }
    Ok((thread_cpu()? - started) / u32::try_from(submissions.max(1))?)
}

/// CPU time of this thread so far (`/proc/thread-self/schedstat`, nanoseconds).
fn thread_cpu() -> Result<Duration, Error> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat")?;
    let nanos = stat.split_whitespace().next().ok_or("empty schedstat")?.parse()?;
    Ok(Duration::from_nanos(nanos))
}

fn discard() -> LineSink {
    Arc::new(|line: String| {
        std::hint::black_box(line);
    })
}

fn unlimited() -> Guard {
    Guard::new(Arc::new(Tally::default()), discard())
}

/// The demo tenant's S3 objects.
#[derive(Clone)]
struct Objects(Arc<HashMap<String, Vec<u8>>>);

impl Objects {
    fn demo() -> Result<Self, Error> {
        let dir = local_stack::repo_root().join("tools/demo-tenant");
        let origins = ["https://example.org".to_owned()];
        Ok(Self(Arc::new(demo::demo_objects(&dir, &origins)?.into_iter().collect())))
    }
}

impl ConfigSource for Objects {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, SourceError> {
        Ok(self.0.get(key).cloned())
    }
}

/// Three passages for every question.
struct Library;

impl KnowledgeBase for Library {
    async fn retrieve(&self, _kb_id: &str, query: &str) -> Result<Vec<Passage>, KnowledgeError> {
        Ok((1..=3)
            .map(|n| Passage {
                text: format!("Passage {n} about {query}: volunteers read with children twice a week. ")
                    .repeat(4),
                title: format!("Programs {n}"),
                uri: format!("s3://kb/programs-{n}.md"),
                score: 0.9 - f64::from(n) / 10.0,
            })
            .collect())
    }
}

/// Text deltas per answer: a 150-token answer arrives in about this many.
const DELTAS: usize = 50;

/// A model that answers every question with the same 50 deltas.
struct Canned;

struct CannedEvents(std::vec::IntoIter<ModelEvent>);

impl ModelStream for Canned {
    type Events = CannedEvents;

    async fn open(&self, _request: &ModelRequest) -> Result<CannedEvents, ModelError> {
        let mut events = vec![ModelEvent::BlockStart];
        events.extend((0..DELTAS).map(|n| ModelEvent::Text(format!("word{n} and more "))));
        events.push(ModelEvent::Stop("end_turn".into()));
        events.push(ModelEvent::Metadata(Usage {
            input_tokens: 900,
            output_tokens: 150,
            total_tokens: 1_050,
            latency_ms: 800,
            ..Usage::default()
        }));
        Ok(CannedEvents(events.into_iter()))
    }
}

impl ModelEvents for CannedEvents {
    async fn next(&mut self) -> Result<Option<ModelEvent>, ModelError> {
        Ok(self.0.next())
    }
}

/// Counters that count and never refuse.
#[derive(Default)]
struct Tally(Mutex<HashMap<String, i64>>);

impl Tally {
    fn bump(&self, key: &str, amount: i64) {
        if let Ok(mut counts) = self.0.lock() {
            *counts.entry(key.to_owned()).or_default() += amount;
        }
    }
}

impl Counters for Tally {
    fn take<'a>(&'a self, key: &'a str, _max: u64, _: u64) -> BoxFuture<'a, Result<bool, LimitError>> {
        self.bump(key, 1);
        Box::pin(async { Ok(true) })
    }
    fn add<'a>(&'a self, key: &'a str, amount: i64, _: u64) -> BoxFuture<'a, Result<(), LimitError>> {
        self.bump(key, amount);
        Box::pin(async { Ok(()) })
    }
    fn read<'a>(&'a self, _key: &'a str) -> BoxFuture<'a, Result<u64, LimitError>> {
        Box::pin(async { Ok(0) })
    }
}

/// The submissions table: every submission is new.
#[derive(Default)]
struct Table(Mutex<usize>);

impl SubmissionStore for Table {
    async fn create(&self, submission: &NewSubmission, response: &str) -> Result<Created, StoreError> {
        std::hint::black_box((submission, response));
        if let Ok(mut count) = self.0.lock() {
            *count += 1;
        }
        Ok(Created::New)
    }
    async fn mark_published(&self, _submission_id: &str) -> Result<(), StoreError> {
        Ok(())
    }
    async fn unpublished(&self, _before: &str) -> Result<Vec<FormSubmitted>, StoreError> {
        Ok(Vec::new())
    }
    async fn claim(&self, _submission_id: &str, _now_ms: u128, _until_ms: u128) -> Result<bool, StoreError> {
        Ok(true)
    }
    async fn oldest_unfulfilled(&self, _before: &str) -> Result<Option<String>, StoreError> {
        Ok(None)
    }
}

/// The bus: takes every event, as JSON, the form PutEvents sends it in.
struct Bus;

impl EventPublisher for Bus {
    async fn publish(&self, event: &FormSubmitted) -> Result<(), PublishError> {
        let detail = serde_json::to_string(event)
            .map_err(|e| PublishError { submission_id: event.submission_id.clone(), source: Box::new(e) })?;
        std::hint::black_box(detail);
        Ok(())
    }
}
