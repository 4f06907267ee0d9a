//! The chat service: one request in, one stream of SSE frames out. The Lambda
//! binary and the local host run this same code.

use std::{
    collections::{HashMap, HashSet},
    future::Future,
    sync::{Arc, Mutex, Weak},
    time::{Duration, Instant},
};

use bytes::Bytes;
use domain::{
    analytics::AnalyticsEndpoint,
    edge::{self, Caller, JsonResponse},
    funnel::{AnswerPublisher, ChatAnswered},
    knowledge::{CachedKnowledgeBase, KnowledgeBase, Passage},
    limits::{self, Guard, Refusal},
    model::{
        ModelError, ModelErrorKind, ModelEvent, ModelEvents, ModelRequest, ModelStream, Role, Turn, Usage,
    },
    report::error_chain,
    sse::{self, Frame, Source},
    submissions::{RememberedForm, SessionForms},
    tenant::{ConfigSource, Tenant, TenantLoader},
};
use lambda_edge::Settings;
use serde_json::json;
use tokio::{sync::mpsc, time::MissedTickBehavior};

use form_service::FormEndpoint;

use crate::{
    actions::{self, Catalog, Marker, Mode, TailFilter},
    cta, focus, memory, prompt,
    qa_log::{LineSink, QaRecord},
    request::ChatRequest,
    showcase,
};

/// Frames buffered between the answer task and the HTTP body.
const CHANNEL_FRAMES: usize = 64;

/// The last text of an answer that broke after text was sent (not part of the logged answer).
pub const CUT_SHORT: &str = "\n\n(This answer was cut short. Please ask again.)";

#[derive(Debug, Clone)]
pub struct ChatOptions {
    pub heartbeat: Duration,
    pub retry: RetryPolicy,
}

impl Default for ChatOptions {
    fn default() -> Self {
        Self { heartbeat: Duration::from_secs(2), retry: RetryPolicy::default() }
    }
}

/// Retries of one model before the first text frame, with exponential backoff.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { attempts: 3, base_delay: Duration::from_millis(200), max_delay: Duration::from_secs(2) }
    }
}

impl RetryPolicy {
    /// `base * 2^attempt`, capped, plus up to one `base` of jitter so a burst
    /// of throttled requests does not retry in lockstep.
    fn delay(&self, attempt: u32) -> Duration {
        let exponential = self.base_delay.saturating_mul(2u32.saturating_pow(attempt)).min(self.max_delay);
        let jitter_ms = fastrand::u64(0..=u64::try_from(self.base_delay.as_millis()).unwrap_or(0));
        exponential + Duration::from_millis(jitter_ms)
    }
}

/// Status, headers and body of a chat response; the body yields one chunk per frame.
pub struct ChatResponse {
    pub status: u16,
    /// Beyond the SSE headers: `Access-Control-Allow-Origin` for an allowed
    /// origin, `Retry-After` on a 429.
    pub headers: Vec<(&'static str, String)>,
    pub body: mpsc::Receiver<Bytes>,
}

impl ChatResponse {
    pub fn new(status: u16, body: mpsc::Receiver<Bytes>) -> Self {
        Self { status, headers: Vec::new(), body }
    }

    /// A response whose frames are all known already.
    pub fn complete(status: u16, frames: Vec<String>) -> Self {
        let (tx, body) = mpsc::channel(frames.len().max(1));
        for frame in frames {
            let _ = tx.try_send(Bytes::from(frame));
        }
        Self::new(status, body)
    }

    /// A refusal before the stream starts: an error frame, then `[DONE]`.
    pub fn refused(status: u16, code: &str, message: &str) -> Self {
        let (tx, body) = mpsc::channel(2);
        let _ = tx.try_send(Bytes::from(Frame::Error { error: message, code }.encode()));
        let _ = tx.try_send(Bytes::from_static(sse::DONE.as_bytes()));
        Self::new(status, body)
    }

    /// The refusal code of a limit: `budget_exhausted` for the day's tokens, else `rate_limited`.
    fn limit_code(refusal: &Refusal) -> &'static str {
        if refusal.limit == "tokens_per_day" { "budget_exhausted" } else { "rate_limited" }
    }

    /// Lets the browser read the answer from this origin (`None`: no CORS header).
    pub fn allowing(mut self, origin: Option<String>) -> Self {
        domain::edge::allow_origin(&mut self.headers, origin);
        self
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        domain::edge::find_header(&self.headers, name)
    }
}

pub struct ChatService<C, K, M> {
    settings: Settings,
    tenants: Arc<TenantLoader<C>>,
    /// Form requests sent to the chat URL (`"form_mode": true`) go here.
    forms: Option<Arc<dyn FormEndpoint>>,
    /// Widget analytics sent to the chat URL (`?action=analytics`) go here.
    analytics: Option<Arc<dyn AnalyticsEndpoint>>,
    knowledge: CachedKnowledgeBase<K>,
    model: M,
    options: ChatOptions,
    qa_sink: LineSink,
    /// The abuse limits and the token budget (`rate_limits.*`); without one, nothing is counted.
    guard: Option<Guard>,
    /// Tenant model ids Bedrock rejected: logged once, and skipped for the process's life.
    rejected_models: Mutex<HashSet<String>>,
    /// Where each answer is announced for the funnel (`ChatAnswered`).
    answers: Option<Arc<dyn AnswerPublisher>>,
    /// The session's latest form, for the answer to remember (`tenant-session-index`).
    session_forms: Option<Arc<dyn SessionForms>>,
    /// Each loaded tenant's prompt and catalog, by tenant id, with the config they came from.
    prepared: Mutex<HashMap<String, PreparedFor>>,
    /// `tenant#key` of prompt controls already warned about as ignored: one warning each per process.
    warned: Mutex<HashSet<String>>,
}

/// How long reading the session's latest form may take (an index query and
/// one read, beside the knowledge-base search).
pub const MEMORY_DEADLINE: Duration = Duration::from_millis(800);

/// How long the action selection call may take, all of it: the answer is
/// already with the visitor, who waits for its buttons and `[DONE]`.
pub const SELECT_DEADLINE: Duration = Duration::from_secs(4);

/// How long announcing an answer may hold the invocation once the visitor
/// has it all: the funnel loses one answer rather than the chat waiting.
pub const ANNOUNCE_DEADLINE: std::time::Duration = std::time::Duration::from_secs(2);

impl<C: ConfigSource, K: KnowledgeBase, M: ModelStream> ChatService<C, K, M> {
    pub fn with_options(
        settings: Settings,
        tenants: Arc<TenantLoader<C>>,
        knowledge: K,
        model: M,
        qa_sink: LineSink,
        options: ChatOptions,
    ) -> Self {
        Self {
            settings,
            tenants,
            forms: None,
            analytics: None,
            knowledge: CachedKnowledgeBase::new(knowledge),
            model,
            options,
            qa_sink,
            guard: None,
            rejected_models: Mutex::default(),
            answers: None,
            session_forms: None,
            prepared: Mutex::default(),
            warned: Mutex::default(),
        }
    }

    /// The stable part of the tenant's prompt and its action catalog, worked
    /// out once per loaded config (a reload, every few minutes, works them
    /// out again) rather than on every chat.
    fn prepared(&self, tenant: &Arc<Tenant>) -> Arc<Prepared> {
        if let Ok(cache) = self.prepared.lock()
            && let Some((loaded, prepared)) = cache.get(&tenant.id)
            && loaded.upgrade().is_some_and(|loaded| Arc::ptr_eq(&loaded, tenant))
        {
            return Arc::clone(prepared);
        }
        let catalog = Catalog::read(&tenant.config, &tenant.raw);
        let mut system = prompt::system_prompt_with(&tenant.config, &self.instructions(tenant));
        if let Some(catalog) = catalog.as_ref().filter(|c| c.mode == Mode::SinglePass) {
            system.push_str("\n\n");
            system.push_str(&catalog.single_pass_rules());
        }
        let (max_tokens, temperature, adjusted) = crate::instructions::inference(&tenant.config.streaming);
        self.warn_ignored(tenant, &adjusted);
        let prepared = Arc::new(Prepared { system, catalog, max_tokens, temperature });
        if let Ok(mut cache) = self.prepared.lock() {
            // Entries of tenants no longer loaded are dropped now and then: the map stays small.
            if cache.len() >= MAX_PREPARED {
                cache.retain(|_, (loaded, _)| loaded.strong_count() > 0);
            }
            cache.insert(tenant.id.clone(), (Arc::downgrade(tenant), Arc::clone(&prepared)));
        }
        prepared
    }

    /// The tenant's prompt controls; each one ignored as malformed or unknown
    /// is warned about once, naming its key (never its value).
    fn instructions(&self, tenant: &Tenant) -> crate::instructions::Instructions {
        let read = crate::instructions::read(&tenant.config);
        self.warn_ignored(tenant, &read.ignored);
        read
    }

    fn warn_ignored(&self, tenant: &Tenant, keys: &[String]) {
        let Ok(mut warned) = self.warned.lock() else { return };
        for key in keys {
            if warned.insert(format!("{}#{key}", tenant.id)) {
                tracing::warn!(
                    tenant_id = tenant.id,
                    key,
                    "tenant setting not usable as given; ignored or bounded"
                );
            }
        }
    }

    /// Announces each answer on the bus (`ChatAnswered`), after its last frame.
    pub fn with_answers(mut self, answers: Arc<dyn AnswerPublisher>) -> Self {
        self.answers = Some(answers);
        self
    }

    /// Remembers the session's latest form in the answer.
    pub fn with_session_forms(mut self, forms: Arc<dyn SessionForms>) -> Self {
        self.session_forms = Some(forms);
        self
    }

    /// Counts chats against the tenant's `rate_limits` and answers against its token budget.
    pub fn with_guard(mut self, guard: Guard) -> Self {
        self.guard = Some(guard);
        self
    }

    /// Answers `form_mode` requests with the form service: the same code and
    /// frames as the form URL.
    pub fn with_forms(mut self, forms: Arc<dyn FormEndpoint>) -> Self {
        self.forms = Some(forms);
        self
    }

    /// Takes widget analytics batches (`?action=analytics`).
    pub fn with_analytics(mut self, analytics: Arc<dyn AnalyticsEndpoint>) -> Self {
        self.analytics = Some(analytics);
        self
    }

    /// Answers a widget analytics batch: `{"accepted": N}` or a JSON refusal.
    pub async fn analytics(&self, body: &[u8], caller: &Caller) -> JsonResponse {
        match &self.analytics {
            Some(analytics) => analytics.respond(body, caller).await,
            None => JsonResponse::refused(404, "not_found", "This URL takes no analytics"),
        }
    }

    /// A chat with no caller details (no `Origin`, no source IP).
    pub async fn handle(self: &Arc<Self>, body: &[u8]) -> ChatResponse {
        self.handle_from(body, &Caller::default()).await
    }

    /// Validates the request, loads the tenant, checks the caller's origin,
    /// the rate limits and the day's token budget (all before any retrieval
    /// or model call); then streams the answer from a task of its own while
    /// the caller sends the body.
    pub async fn handle_from(self: &Arc<Self>, body: &[u8], caller: &Caller) -> ChatResponse {
        let started = Instant::now();
        if let Some(forms) = self.forms.as_ref().filter(|_| form_service::is_form_mode(body)) {
            let response = forms.respond(body, caller).await;
            let mut chat = ChatResponse::complete(response.status, response.frames);
            chat.headers = response.headers;
            return chat;
        }
        let request = match ChatRequest::parse(body) {
            Ok(request) => request,
            Err(err) => {
                tracing::info!(detail = err.message, "chat request malformed");
                return self.refuse(err.status, err.code, caller);
            }
        };
        let tenant = match self.tenants.load(request.tenant_hash.as_str()).await {
            Ok(tenant) => tenant,
            Err(err) => {
                if err.status() >= 500 {
                    tracing::error!(code = err.code(), error = %error_chain(&err), "tenant unavailable");
                }
                return self.refuse(err.status(), err.code(), caller);
            }
        };
        let allowed_origin = match edge::check_origin(&tenant.config, caller, &self.settings.widget_origins) {
            Ok(origin) => origin,
            Err(err) => {
                tracing::warn!(
                    tenant_id = tenant.id,
                    origin = caller.origin,
                    "chat from an origin the tenant does not allow"
                );
                return self.refuse(err.status, err.code, caller);
            }
        };
        if let Err(refusal) = self.admit(&tenant, caller).await {
            let mut response = self.refuse(429, ChatResponse::limit_code(&refusal), caller);
            response.headers.push(("retry-after", refusal.retry_after.to_string()));
            return response;
        }
        if let Some(id) = &request.routing.showcase {
            return showcase_only(&tenant, id, &request.session_id).allowing(allowed_origin);
        }
        let (tx, body) = mpsc::channel(CHANNEL_FRAMES);
        let service = Arc::clone(self);
        // In the caller's span: the answer's lines (model errors, warnings) are
        // this invocation's, and the local host ships them to its log group.
        let answering = async move {
            let mut out = Outbound::new(tx, service.options.heartbeat);
            if service.answer(&tenant, &request, &mut out, started).await.is_err() {
                tracing::info!(
                    tenant_id = tenant.id,
                    session_id = request.session_id,
                    "client went away; stream stopped"
                );
            }
        };
        tokio::spawn(tracing::Instrument::instrument(answering, tracing::Span::current()));
        ChatResponse::new(200, body).allowing(allowed_origin)
    }

    /// A refusal before the stream starts: the sentence the visitor reads in
    /// the error frame, readable by the browser whatever its origin (a refusal
    /// says nothing a stranger may not know; without CORS the widget shows
    /// "Failed to fetch"), and one log line and one metric by code.
    fn refuse(&self, status: u16, code: &'static str, caller: &Caller) -> ChatResponse {
        tracing::info!(code, status, origin = caller.origin, "chat refused");
        (self.qa_sink)(edge::refusal_metric_line(crate::qa_log::NAMESPACE, code));
        ChatResponse::refused(status, code, edge::visitor_sentence(code)).allowing(caller.origin.clone())
    }

    /// The widget's HTTP fallback (`?action=chat`, `Accept: application/json`):
    /// the same turn as [`Self::handle_from`] (tenant, origin, limits, prompt,
    /// CTAs, QA log), buffered into `{content, ctaButtons, metadata, session_id}`.
    /// The widget shows a generic apology for any non-2xx here, so a refusal is
    /// a 200 whose `content` is the sentence and whose `error` is the code.
    pub async fn chat_json(self: &Arc<Self>, body: &[u8], caller: &Caller) -> JsonResponse {
        let response = self.handle_from(body, caller).await;
        let mut reply = BufferedReply::default();
        let mut frames = response.body;
        while let Some(chunk) = frames.recv().await {
            reply.read(&chunk);
        }
        let session_id = reply.session_id.take().or_else(|| {
            serde_json::from_slice::<serde_json::Value>(body)
                .ok()
                .and_then(|v| v.get("session_id").and_then(serde_json::Value::as_str).map(str::to_owned))
        });
        let mut json = JsonResponse::new(200, reply.into_json(session_id).to_string())
            .with_header("cache-control", "no-store");
        json.headers.extend(response.headers);
        json
    }

    /// The visitor's and the tenant's chats per minute (one after the other:
    /// a refused visitor takes nothing from the tenant), and the day's tokens,
    /// read at the same time: a read takes nothing, and waiting for it after
    /// the counters was one more round trip before the model is asked.
    async fn admit(&self, tenant: &Tenant, caller: &Caller) -> Result<(), Refusal> {
        let Some(guard) = &self.guard else { return Ok(()) };
        let config = &tenant.config.rate_limits;
        let key = self.settings.visitor_key();
        let chats = limits::chat_limits(&key, &tenant.id, caller.source_ip.as_deref(), config);
        let budget = limits::token_budget(&tenant.id, config);
        let (admitted, within_budget) = tokio::join!(guard.admit(&chats), guard.within_budget(&budget));
        admitted.and(within_budget)
    }

    async fn answer(
        &self,
        tenant: &Arc<Tenant>,
        request: &ChatRequest,
        out: &mut Outbound,
        started: Instant,
    ) -> Result<(), Gone> {
        out.send(sse::PRELUDE.to_owned()).await?;
        out.send(Frame::Start.encode()).await?;

        let query = focus::retrieval_query(&request.user_input, &request.history);
        let (passages, remembered) = out
            .during(async { tokio::join!(self.retrieve(tenant, query), self.remember(tenant, request)) })
            .await?;
        let mut visitor_context = focus::context(&focus::topics(&request.session.accumulated_topics));
        if let Some(form) = &remembered {
            if !visitor_context.is_empty() {
                visitor_context.push_str("\n\n");
            }
            visitor_context.push_str(&memory::context(form));
        }
        let config = &tenant.config;
        let prepared = self.prepared(tenant);
        let catalog = &prepared.catalog;
        let mut model_request = ModelRequest {
            model_id: String::new(),
            system: prepared.system.clone(),
            visitor_context,
            cache_system: false,
            turns: prompt::conversation(
                &request.history,
                prompt::question_with_context(&request.user_input, &passages),
            ),
            max_tokens: prepared.max_tokens,
            temperature: prepared.temperature,
        };
        model_request.use_model(config.model_id().unwrap_or(&self.settings.bedrock_model_id));
        let filter = catalog.as_ref().filter(|c| c.mode == Mode::SinglePass).map(|_| TailFilter::default());
        let mut answer =
            match self.stream_answer(tenant, model_request, request, out, started, filter).await? {
                Ok(answer) => answer,
                Err(frame) => {
                    out.send(frame).await?;
                    return out.send(sse::DONE.to_owned()).await;
                }
            };
        let chosen = match &catalog {
            Some(catalog) if cta::clicked(config, &request.session, &request.routing).is_none() => {
                let ids = match &answer.marker {
                    Some(Marker::Chosen(ids)) => catalog.keep(ids),
                    marker => {
                        if let Some(marker) = marker {
                            tracing::info!(
                                tenant_id = tenant.id,
                                ?marker,
                                "no usable action marker; asking the selector"
                            );
                        }
                        let (ids, usage) = self
                            .select(tenant, catalog, &answer.model_id, request, &answer.text, out)
                            .await?;
                        answer.usage = answer.usage.plus(&usage);
                        catalog.keep(&ids)
                    }
                };
                Some((catalog.mode, ids))
            }
            _ => None,
        };
        // Counted at once, before the last frames: the visitor may leave once the text is in.
        if let Some(guard) = &self.guard {
            let budget = limits::token_budget(&tenant.id, &config.rate_limits);
            guard.spend(&budget, u64::from(answer.usage.total())).await;
        }

        // The closing frames go in one write, for the same reason as the first text.
        let mut tail = String::new();
        let sources = sources(&passages);
        if !sources.is_empty() {
            tail.push_str(&Frame::Sources { sources: &sources }.encode());
        }
        let mut cta_ids = Vec::new();
        let outcome = match chosen {
            Some((mode, ids)) => actions::outcome(mode, config, &ids, &request.session),
            None => {
                cta::enhance(tenant, &request.user_input, &answer.text, &request.session, &request.routing)
            }
        };
        if let Some(outcome) = outcome {
            cta_ids =
                outcome.buttons.iter().filter_map(|b| b.get("id")?.as_str().map(str::to_owned)).collect();
            let frame = Frame::CtaButtons {
                cta_buttons: &outcome.buttons,
                metadata: &outcome.metadata,
                session_id: &request.session_id,
            };
            tail.push_str(&frame.encode());
            if let Some(id) = &outcome.showcase {
                let metadata = json!({
                    "routing_tier": outcome.metadata.get("routing_tier"),
                    "branch": outcome.metadata.get("branch"),
                    "showcase_id": id,
                });
                match showcase::frame(config, &tenant.raw, id, &metadata, &request.session_id) {
                    Ok(frame) => tail.push_str(&frame),
                    Err(missing) => {
                        tracing::warn!(
                            tenant_id = tenant.id,
                            showcase_id = id,
                            ?missing,
                            "branch names a showcase item that cannot be shown"
                        )
                    }
                }
            }
        }
        let record = QaRecord {
            session_id: &request.session_id,
            tenant_hash: request.tenant_hash.as_str(),
            tenant_id: &tenant.id,
            conversation_id: request.conversation_id.as_deref(),
            question: &request.user_input,
            answer: &answer.text,
            first_token_ms: answer.first_token_ms,
            total_time_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            usage: answer.usage,
        };
        tail.push_str(&sse::comment("x-total-tokens", record.total_tokens()));
        tail.push_str(&sse::comment("x-total-time-ms", record.total_time_ms));
        tail.push_str(sse::DONE);
        out.send(tail).await?;
        (self.qa_sink)(record.qa_complete_line());
        (self.qa_sink)(record.metrics_line());
        self.announce(&record, cta_ids).await;
        Ok(())
    }

    /// `ChatAnswered` for the funnel, once the visitor has every frame: ids,
    /// timings, token counts and the CTAs shown, never the text. A failure
    /// costs the funnel one answer and is logged; the chat is already done.
    async fn announce(&self, record: &QaRecord<'_>, cta_ids: Vec<String>) {
        let Some(answers) = &self.answers else { return };
        let answered = ChatAnswered {
            schema_version: domain::funnel::CHAT_SCHEMA_VERSION,
            answer_id: format!(
                "{}_{}",
                domain::time::now_epoch_millis(),
                std::iter::repeat_with(fastrand::alphanumeric).take(10).collect::<String>()
            ),
            tenant_id: record.tenant_id.to_owned(),
            session_id: record.session_id.to_owned(),
            conversation_id: record.conversation_id.map(str::to_owned),
            answered_at: domain::time::now_rfc3339(),
            first_token_ms: record.first_token_ms,
            total_time_ms: record.total_time_ms,
            input_tokens: u64::from(record.usage.input_tokens),
            output_tokens: u64::from(record.usage.output_tokens),
            cta_ids,
        };
        match tokio::time::timeout(ANNOUNCE_DEADLINE, answers.publish_answer(&answered)).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => {
                tracing::warn!(tenant_id = record.tenant_id, error = %error_chain(&err), "answer not announced")
            }
            Err(_) => tracing::warn!(tenant_id = record.tenant_id, "answer not announced in time"),
        }
    }

    /// Knowledge-base passages for the question; a failure means no context.
    async fn retrieve(&self, tenant: &Tenant, question: &str) -> Vec<Passage> {
        let Some(kb_id) = tenant.config.knowledge_base_id() else {
            return Vec::new();
        };
        let deadline = self.settings.retrieve_timeout;
        match tokio::time::timeout(deadline, self.knowledge.retrieve(kb_id, question)).await {
            Ok(Ok(passages)) => passages.as_ref().clone(),
            Ok(Err(err)) => {
                tracing::warn!(tenant_id = tenant.id, kb_id, error = %error_chain(err.as_ref()), "knowledge base unavailable; answering without context");
                Vec::new()
            }
            Err(_) => {
                tracing::warn!(
                    tenant_id = tenant.id,
                    kb_id,
                    timeout_ms = deadline.as_millis(),
                    "knowledge base too slow; answering without context"
                );
                Vec::new()
            }
        }
    }

    /// The latest form this session sent, read while the knowledge base is
    /// searched; nothing (and the answer goes on) when there is none, the
    /// session is the widget's default, the read fails or takes too long.
    async fn remember(&self, tenant: &Tenant, request: &ChatRequest) -> Option<RememberedForm> {
        let forms = self.session_forms.as_ref()?;
        let session = request.session_id.as_str();
        if session == "default" || !domain::submissions::is_session_id(session) {
            return None;
        }
        match tokio::time::timeout(MEMORY_DEADLINE, forms.latest(&tenant.id, session)).await {
            Ok(Ok(form)) => form,
            Ok(Err(err)) => {
                tracing::warn!(tenant_id = tenant.id, error = %error_chain(&err), "session's forms unreadable; answering without them");
                None
            }
            Err(_) => {
                tracing::warn!(tenant_id = tenant.id, "session's forms too slow; answering without them");
                None
            }
        }
    }

    /// Streams the model's answer as text frames. Returns the answer, or the
    /// error frame to end the stream with.
    async fn stream_answer(
        &self,
        tenant: &Tenant,
        request: ModelRequest,
        chat: &ChatRequest,
        out: &mut Outbound,
        started: Instant,
        mut filter: Option<TailFilter>,
    ) -> Result<Result<Answer, String>, Gone> {
        let (mut events, prefix, model_id) = match self.open_with_retries(tenant, request, out).await {
            Ok(opened) => opened,
            Err(Attempt::Gone) => return Err(Gone),
            Err(Attempt::Failed(err)) => {
                tracing::error!(tenant_id = tenant.id, error = %error_chain(&err), "model unavailable before the answer started");
                return Ok(Err(error_frame_before_text(&err)));
            }
        };
        let mut answer = Answer { model_id, ..Answer::default() };
        let mut pending = prefix.into_iter();
        loop {
            let event = match pending.next() {
                Some(event) => event,
                None => match out
                    .during(self.next_event(&mut events, self.settings.model_event_gap_timeout))
                    .await?
                {
                    Ok(Some(event)) => event,
                    Ok(None) => break,
                    Err(err) => {
                        tracing::error!(tenant_id = tenant.id, error = %error_chain(&err), "model stream failed after text was sent");
                        // The widget shows text frames only: without this the
                        // visitor would take a truncated answer for a whole one.
                        out.send(Frame::Text { content: CUT_SHORT, session_id: &chat.session_id }.encode())
                            .await?;
                        let code = match err.kind {
                            ModelErrorKind::TimedOut => "model_timeout",
                            _ => "stream_interrupted",
                        };
                        let frame =
                            Frame::Error { error: "The answer was interrupted. Please ask again.", code };
                        return Ok(Err(frame.encode()));
                    }
                },
            };
            match event {
                ModelEvent::BlockStart => out.stream_start().await?,
                ModelEvent::Text(text) => {
                    let text = match filter.as_mut() {
                        Some(filter) => filter.feed(&text),
                        None => text,
                    };
                    if text.is_empty() {
                        continue;
                    }
                    let frame = Frame::Text { content: &text, session_id: &chat.session_id }.encode();
                    if answer.first_token_ms.is_none() {
                        let ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
                        answer.first_token_ms = Some(ms);
                        // One write: the Lambda runtime's client leaves Nagle's algorithm on,
                        // so a small write right behind another waits for its ACK (40 ms).
                        let mut first = out.take_stream_start().unwrap_or_default();
                        first.push_str(&sse::comment("x-first-token-ms", ms));
                        first.push_str(&frame);
                        out.send(first).await?;
                    } else {
                        out.send(frame).await?;
                    }
                    answer.text.push_str(&text);
                }
                ModelEvent::Stop(_) => {}
                ModelEvent::Metadata(usage) => answer.usage = usage,
            }
        }
        if let Some(filter) = filter {
            let (rest, marker) = filter.finish();
            if !rest.is_empty() {
                out.send(Frame::Text { content: &rest, session_id: &chat.session_id }.encode()).await?;
                answer.text.push_str(&rest);
            }
            answer.marker = Some(marker);
        }
        Ok(Ok(answer))
    }

    /// The selection call: which of the catalog's actions fit the answer. A
    /// failure or a slow model means no actions; the answer is already sent.
    async fn select(
        &self,
        tenant: &Tenant,
        catalog: &Catalog,
        model_id: &str,
        chat: &ChatRequest,
        answer: &str,
        out: &mut Outbound,
    ) -> Result<(Vec<String>, Usage), Gone> {
        let (system, question) = catalog.selection_prompt(&chat.history, &chat.user_input, answer);
        let mut request = ModelRequest {
            model_id: String::new(),
            system,
            visitor_context: String::new(),
            cache_system: false,
            turns: vec![Turn { role: Role::User, text: question }],
            max_tokens: actions::SELECTOR_MAX_TOKENS,
            temperature: actions::SELECTOR_TEMPERATURE,
        };
        request.use_model(model_id);
        let call = async {
            let mut events = self.model.open(&request).await?;
            let (mut reply, mut usage) = (String::new(), Usage::default());
            while let Some(event) = events.next().await? {
                match event {
                    ModelEvent::Text(text) => reply.push_str(&text),
                    ModelEvent::Metadata(reported) => usage = reported,
                    _ => {}
                }
            }
            Ok::<_, ModelError>((actions::parse_selection(&reply), usage))
        };
        match out.during(tokio::time::timeout(SELECT_DEADLINE, call)).await? {
            Ok(Ok(chosen)) => Ok(chosen),
            Ok(Err(err)) => {
                tracing::warn!(tenant_id = tenant.id, error = %error_chain(&err), "action selection failed; no actions");
                Ok((Vec::new(), Usage::default()))
            }
            Err(_) => {
                tracing::warn!(tenant_id = tenant.id, "action selection too slow; no actions");
                Ok((Vec::new(), Usage::default()))
            }
        }
    }

    /// Opens the model stream and reads up to its first text. Retries
    /// throttling and 5xx with backoff; then tries the tenant's fallback model;
    /// a model Bedrock rejects as unknown or retired gives way to the default.
    async fn open_with_retries(
        &self,
        tenant: &Tenant,
        mut request: ModelRequest,
        out: &mut Outbound,
    ) -> Result<(M::Events, Vec<ModelEvent>, String), Attempt> {
        let default_model = self.settings.bedrock_model_id.as_str();
        let fallback = tenant.config.fallback_model_id.as_deref().filter(|m| !m.trim().is_empty());
        // A model Bedrock rejected once is retired for good: no request pays that failed call again.
        if self.rejected_models.lock().is_ok_and(|rejected| rejected.contains(&request.model_id)) {
            request.use_model(default_model);
        }
        let mut tried: Vec<String> = Vec::new();
        loop {
            let err = match self.attempts(&request, out).await {
                Ok((events, prefix)) => return Ok((events, prefix, request.model_id)),
                Err(Attempt::Gone) => return Err(Attempt::Gone),
                Err(Attempt::Failed(err)) => err,
            };
            tried.push(request.model_id.clone());
            let untried = |model: &str| !tried.iter().any(|t| t == model);
            let next = match err.kind {
                ModelErrorKind::ModelRejected if untried(default_model) => {
                    self.report_rejected_model(tenant, &request.model_id, &err);
                    Some(default_model)
                }
                ModelErrorKind::Throttled | ModelErrorKind::Unavailable => fallback.filter(|m| untried(m)),
                _ => None,
            };
            match next {
                Some(model) => {
                    tracing::warn!(tenant_id = tenant.id, from = request.model_id, to = model, error = %error_chain(&err), "switching model");
                    request.use_model(model);
                }
                None => return Err(Attempt::Failed(err)),
            }
        }
    }

    /// Up to `retry.attempts` tries of one model.
    async fn attempts(
        &self,
        request: &ModelRequest,
        out: &mut Outbound,
    ) -> Result<(M::Events, Vec<ModelEvent>), Attempt> {
        let policy = &self.options.retry;
        let mut attempt = 0;
        let mut timed_out = false;
        loop {
            match self.open_until_text(request, out).await {
                Err(Attempt::Failed(err)) if err.is_retryable() && attempt + 1 < policy.attempts => {
                    tracing::warn!(model_id = request.model_id, attempt, error = %error_chain(&err), "model call failed; retrying");
                    out.during(tokio::time::sleep(policy.delay(attempt))).await.map_err(|_| Attempt::Gone)?;
                    attempt += 1;
                }
                // A silent model gets one more chance: a second wait of the
                // full deadline is as long as a visitor should be kept waiting.
                Err(Attempt::Failed(err)) if err.kind == ModelErrorKind::TimedOut && !timed_out => {
                    tracing::warn!(model_id = request.model_id, error = %error_chain(&err), "model did not answer in time; retrying once");
                    timed_out = true;
                }
                result => return result,
            }
        }
    }

    async fn open_until_text(
        &self,
        request: &ModelRequest,
        out: &mut Outbound,
    ) -> Result<(M::Events, Vec<ModelEvent>), Attempt> {
        let mut events = out
            .during(self.model.open(request))
            .await
            .map_err(|_| Attempt::Gone)?
            .map_err(Attempt::Failed)?;
        let mut prefix = Vec::new();
        loop {
            let deadline = if prefix.is_empty() {
                self.settings.model_first_event_timeout
            } else {
                self.settings.model_event_gap_timeout
            };
            let next = self.next_event(&mut events, deadline);
            match out.during(next).await.map_err(|_| Attempt::Gone)?.map_err(Attempt::Failed)? {
                Some(event @ ModelEvent::Text(_)) => {
                    prefix.push(event);
                    return Ok((events, prefix));
                }
                Some(event) => prefix.push(event),
                None => return Ok((events, prefix)),
            }
        }
    }

    /// The next model event, or a `TimedOut` error when none comes within `deadline`.
    async fn next_event(
        &self,
        events: &mut M::Events,
        deadline: Duration,
    ) -> Result<Option<ModelEvent>, ModelError> {
        tokio::time::timeout(deadline, events.next()).await.unwrap_or_else(|_| {
            Err(ModelError::new(
                ModelErrorKind::TimedOut,
                format!("no model event within {} ms", deadline.as_millis()),
            ))
        })
    }

    fn report_rejected_model(&self, tenant: &Tenant, model_id: &str, err: &ModelError) {
        let first_time =
            self.rejected_models.lock().map(|mut seen| seen.insert(model_id.to_owned())).unwrap_or(true);
        if first_time {
            tracing::warn!(
                tenant_id = tenant.id,
                model_id,
                default = self.settings.bedrock_model_id,
                error = %error_chain(err),
                "Bedrock rejected the tenant's model; using BEDROCK_MODEL_ID instead"
            );
        }
    }
}

/// What a tenant's config makes of every prompt.
struct Prepared {
    /// The stable part of the system prompt (the cache point goes after it).
    system: String,
    catalog: Option<Catalog>,
    /// `streaming.max_tokens` and `temperature`, within what Bedrock accepts.
    max_tokens: u32,
    temperature: f32,
}

/// A prepared prompt and the loaded config it was prepared from.
type PreparedFor = (Weak<Tenant>, Arc<Prepared>);

/// Prepared prompts kept before the entries of tenants no longer loaded are dropped.
const MAX_PREPARED: usize = 1024;

#[derive(Debug, Default)]
struct Answer {
    /// What the visitor was shown (an action marker removed).
    text: String,
    first_token_ms: Option<u64>,
    usage: Usage,
    /// What the answer's action marker said, for a single-pass tenant.
    marker: Option<Marker>,
    /// The model that answered (the tenant's, its fallback or the default):
    /// the action selection asks the same one.
    model_id: String,
}

/// The visitor closed the connection.
#[derive(Debug)]
pub struct Gone;

enum Attempt {
    Gone,
    Failed(ModelError),
}

/// The response body's sender, with the heartbeat: every wait on something
/// slow goes through `during`, which sends a heartbeat each period and gives
/// up the moment the client disconnects. One writer, so frames never interleave.
struct Outbound {
    tx: mpsc::Sender<Bytes>,
    ticker: tokio::time::Interval,
    stream_started: bool,
}

impl Outbound {
    fn new(tx: mpsc::Sender<Bytes>, period: Duration) -> Self {
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Self { tx, ticker, stream_started: false }
    }

    async fn send(&mut self, frame: String) -> Result<(), Gone> {
        self.tx.send(Bytes::from(frame)).await.map_err(|_| Gone)
    }

    async fn stream_start(&mut self) -> Result<(), Gone> {
        match self.take_stream_start() {
            Some(frame) => self.send(frame).await,
            None => Ok(()),
        }
    }

    /// The `stream_start` frame, if it has not been sent, for the caller to send.
    fn take_stream_start(&mut self) -> Option<String> {
        (!std::mem::replace(&mut self.stream_started, true)).then(|| Frame::StreamStart.encode())
    }

    async fn during<F: Future>(&mut self, work: F) -> Result<F::Output, Gone> {
        tokio::pin!(work);
        loop {
            tokio::select! {
                biased;
                output = &mut work => return Ok(output),
                () = self.tx.closed() => return Err(Gone),
                _ = self.ticker.tick() => {}
            }
            self.send(Frame::Heartbeat.encode()).await?;
        }
    }
}

/// A streamed answer read back frame by frame, for the JSON fallback.
#[derive(Default)]
struct BufferedReply {
    content: String,
    cta_buttons: Option<serde_json::Value>,
    metadata: Option<serde_json::Value>,
    sources: Option<serde_json::Value>,
    /// The error frame's sentence and code.
    error: Option<(String, String)>,
    session_id: Option<String>,
}

impl BufferedReply {
    fn read(&mut self, chunk: &[u8]) {
        let text = String::from_utf8_lossy(chunk);
        for data in text.lines().filter_map(|line| line.strip_prefix("data: ")) {
            let Ok(frame) = serde_json::from_str::<serde_json::Value>(data) else { continue };
            let field = |name: &str| frame.get(name).and_then(serde_json::Value::as_str).unwrap_or_default();
            if self.session_id.is_none() && !field("session_id").is_empty() {
                self.session_id = Some(field("session_id").to_owned());
            }
            match field("type") {
                "text" => self.content.push_str(field("content")),
                "cta_buttons" => {
                    self.cta_buttons = frame.get("ctaButtons").cloned();
                    self.metadata = frame.get("metadata").cloned();
                }
                "sources" => self.sources = frame.get("sources").cloned(),
                "error" => self.error = Some((field("error").to_owned(), field("code").to_owned())),
                _ => {}
            }
        }
    }

    /// The widget reads `content` (or `message`, `response`); a turn that
    /// ended before any text reads the error's sentence.
    fn into_json(self, session_id: Option<String>) -> serde_json::Value {
        let content = match (&self.error, self.content.is_empty()) {
            (Some((sentence, _)), true) => sentence.clone(),
            _ => self.content,
        };
        let mut json = serde_json::json!({
            "content": content,
            "ctaButtons": self.cta_buttons.unwrap_or_else(|| serde_json::json!([])),
            "metadata": self.metadata.unwrap_or_else(|| serde_json::json!({})),
            "session_id": session_id,
        });
        if let Some(sources) = self.sources {
            json["sources"] = sources;
        }
        if let Some((_, code)) = self.error {
            json["error"] = serde_json::Value::String(code);
        }
        json
    }
}

/// A `show_showcase` click: the card alone, without asking the model. An
/// item the tenant does not have, or has disabled, is an error in the stream.
fn showcase_only(tenant: &Tenant, id: &str, session_id: &str) -> ChatResponse {
    let metadata =
        json!({"routing_tier": "action_chip_direct", "routing_method": "show_showcase", "showcase_id": id});
    let end = match showcase::frame(&tenant.config, &tenant.raw, id, &metadata, session_id) {
        Ok(frame) => frame,
        Err(missing) => {
            tracing::info!(tenant_id = tenant.id, showcase_id = id, ?missing, "showcase item not shown");
            Frame::Error { error: "That item is not available any more.", code: "showcase_not_found" }
                .encode()
        }
    };
    let frames = [sse::PRELUDE.to_owned(), Frame::Start.encode(), end, sse::DONE.to_owned()];
    ChatResponse::complete(200, frames.to_vec())
}

fn error_frame_before_text(err: &ModelError) -> String {
    let (message, code) = match err.kind {
        ModelErrorKind::Throttled => {
            ("The assistant is very busy right now. Please try again in a moment.", "model_throttled")
        }
        ModelErrorKind::Unavailable | ModelErrorKind::ModelRejected => {
            ("The assistant is unavailable right now. Please try again shortly.", "model_unavailable")
        }
        ModelErrorKind::TimedOut => {
            ("The assistant took too long to answer. Please try again.", "model_timeout")
        }
        ModelErrorKind::Permanent => ("The assistant could not answer this question.", "model_error"),
    };
    Frame::Error { error: message, code }.encode()
}

/// One citation per document, best score first.
fn sources(passages: &[Passage]) -> Vec<Source> {
    let mut sources: Vec<Source> = Vec::new();
    for passage in passages.iter().filter(|p| !p.uri.is_empty()) {
        match sources.iter_mut().find(|s| s.uri == passage.uri) {
            Some(existing) => existing.score = existing.score.max(passage.score),
            None => sources.push(Source {
                title: passage.title.clone(),
                uri: passage.uri.clone(),
                score: passage.score,
            }),
        }
    }
    sources.sort_by(|a, b| b.score.total_cmp(&a.score));
    sources
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let policy = RetryPolicy {
            attempts: 5,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(300),
        };
        let within = |attempt, low: u64, high: u64| {
            let delay = policy.delay(attempt).as_millis() as u64;
            assert!((low..=high).contains(&delay), "attempt {attempt}: {delay} ms");
        };
        within(0, 100, 200);
        within(1, 200, 300);
        within(4, 300, 400);
    }

    #[test]
    fn sources_are_one_per_document_best_first() {
        let passage = |uri: &str, score| Passage {
            text: "t".into(),
            title: uri.to_uppercase(),
            uri: uri.into(),
            score,
        };
        let listed = sources(&[passage("a", 0.2), passage("b", 0.9), passage("a", 0.5), passage("", 1.0)]);
        let uris: Vec<(&str, f64)> = listed.iter().map(|s| (s.uri.as_str(), s.score)).collect();
        assert_eq!(uris, [("b", 0.9), ("a", 0.5)]);
    }

    #[tokio::test]
    async fn a_refusal_is_an_error_frame_then_done() {
        let mut response = ChatResponse::refused(400, "invalid_json", "bad");
        assert_eq!(response.status, 400);
        assert_eq!(
            response.body.recv().await.unwrap(),
            "data: {\"type\":\"error\",\"error\":\"bad\",\"code\":\"invalid_json\"}\n\n"
        );
        assert_eq!(response.body.recv().await.unwrap(), "data: [DONE]\n\n");
        assert_eq!(response.body.recv().await, None);
    }
}
