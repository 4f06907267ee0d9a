//! The answer scenarios: each runs the real chat service in process (the
//! same request parsing, prompt, streaming, marker filtering and CTA choice
//! as in Lambda), with the tenant, the knowledge base and the session's form
//! in memory, against a scripted model or, with `--live`, real Bedrock.

pub mod scenario;

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use chat_stream::{ChatOptions, ChatService};
use domain::{
    edge::Caller,
    knowledge::{KnowledgeBase, KnowledgeError, Passage},
    model::{ModelError, ModelEvent, ModelEvents, ModelRequest, ModelStream, Role, Usage},
    report::LineSink,
    submissions::{RememberedForm, SessionForms, StoreError},
    tenant::{ConfigSource, SourceError, TenantLoader},
};
use lambda_edge::Settings;
use serde_json::{Value, json};

pub use scenario::{Expectation, Scenario};

const TENANT_HASH: &str = "evaltenant0001";
const TENANT_ID: &str = "EVAL000001";
const KB_ID: &str = "EVALKB0001";
const SESSION: &str = "eval-session-1";

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("could not read {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a scenario")]
    Parse {
        path: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("scenario {0} names neither config nor config_file")]
    NoConfig(String),
    #[error("the chat service could not be configured")]
    Settings(#[from] lambda_edge::settings::SettingsError),
}

/// The repository's root (scenarios name config files relative to it).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every scenario of `dir`, by file name.
pub fn load_all(dir: &Path) -> Result<Vec<Scenario>, EvalError> {
    let read_err = |source| EvalError::Read { path: dir.display().to_string(), source };
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(read_err)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    paths.iter().map(|path| load(path)).collect()
}

fn load(path: &Path) -> Result<Scenario, EvalError> {
    let text =
        std::fs::read(path).map_err(|source| EvalError::Read { path: path.display().to_string(), source })?;
    let mut scenario: Scenario = serde_json::from_slice(&text)
        .map_err(|source| EvalError::Parse { path: path.display().to_string(), source })?;
    scenario.id = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    Ok(scenario)
}

/// The tenant config a scenario runs with.
fn config_of(scenario: &Scenario) -> Result<Value, EvalError> {
    let mut config = match (&scenario.config, &scenario.config_file) {
        (Some(config), _) => config.clone(),
        (None, Some(file)) => {
            let path = repo_root().join(file);
            let bytes = std::fs::read(&path)
                .map_err(|source| EvalError::Read { path: path.display().to_string(), source })?;
            serde_json::from_slice(&bytes)
                .map_err(|source| EvalError::Parse { path: path.display().to_string(), source })?
        }
        (None, None) => return Err(EvalError::NoConfig(scenario.id.clone())),
    };
    if let (Some(Value::Object(patch)), Value::Object(fields)) = (&scenario.config_patch, &mut config) {
        for (key, value) in patch {
            fields.insert(key.clone(), value.clone());
        }
    }
    config["aws"] = json!({"knowledge_base_id": KB_ID});
    config["rate_limits"] = json!({"allow_no_origin": true});
    Ok(config)
}

/// What one scenario did, and which expectations it missed.
#[derive(Debug)]
pub struct Outcome {
    pub id: String,
    pub covers: String,
    pub checked: usize,
    pub failures: Vec<String>,
}

/// Runs a scenario with `model` (the scripted model, or Bedrock with `--live`).
pub async fn run<M: ModelStream>(scenario: &Scenario, model: M, live: bool) -> Result<Outcome, EvalError> {
    let config = config_of(scenario)?;
    let objects = Objects(Arc::new(HashMap::from([
        (format!("mappings/{TENANT_HASH}.json"), json!({"tenant_id": TENANT_ID}).to_string().into_bytes()),
        (format!("tenants/{TENANT_ID}/config.json"), config.to_string().into_bytes()),
    ])));
    let asked = Arc::new(Mutex::new(Vec::<ModelRequest>::new()));
    let searched = Arc::new(Mutex::new(Vec::<String>::new()));
    let knowledge = Library { passages: scenario.passages.clone(), searched: Arc::clone(&searched) };
    let recording = Recording { inner: model, asked: Arc::clone(&asked) };
    let settings = Settings::from_vars(HashMap::new())?;
    let quiet: LineSink = Arc::new(|_line: String| {});
    let mut service = ChatService::with_options(
        settings,
        Arc::new(TenantLoader::new(objects)),
        knowledge,
        recording,
        quiet,
        ChatOptions::default(),
    );
    if let Some(form) = &scenario.remembered_form {
        service = service.with_session_forms(Arc::new(Remembered(form.clone())));
    }
    let service = Arc::new(service);
    let mut body = json!({
        "tenant_hash": TENANT_HASH, "session_id": SESSION, "user_input": scenario.question,
        "conversation_history": scenario.history,
    });
    if let Some(context) = &scenario.session_context {
        body["session_context"] = context.clone();
    }
    if let Some(routing) = &scenario.routing_metadata {
        body["routing_metadata"] = routing.clone();
    }
    let mut response = service.handle_from(body.to_string().as_bytes(), &Caller::default()).await;
    let mut frames: Vec<Value> = Vec::new();
    while let Some(chunk) = response.body.recv().await {
        for line in String::from_utf8_lossy(&chunk).lines() {
            match line.strip_prefix("data: ") {
                Some("[DONE]") => frames.push(json!({"type": "[DONE]"})),
                Some(data) => frames.extend(serde_json::from_str::<Value>(data).ok()),
                None => {}
            }
        }
    }
    let seen = Seen {
        frames,
        asked: asked.lock().map(|a| a.clone()).unwrap_or_default(),
        searched: searched.lock().map(|s| s.clone()).unwrap_or_default(),
        passages: &scenario.passages,
        fallback: config
            .pointer("/bedrock_instructions/fallback_message")
            .and_then(Value::as_str)
            .map(str::to_owned),
    };
    let mut outcome = Outcome {
        id: scenario.id.clone(),
        covers: scenario.covers.clone(),
        checked: 0,
        failures: Vec::new(),
    };
    for expectation in &scenario.expect {
        // A real model may choose the selection call's way to its buttons: call counts and frame lists are the script's.
        if live && matches!(expectation, Expectation::ModelCalls(_) | Expectation::Frames(_)) {
            continue;
        }
        outcome.checked += 1;
        if let Err(failure) = seen.check(expectation) {
            outcome.failures.push(failure);
        }
    }
    Ok(outcome)
}

/// What a run showed.
struct Seen<'a> {
    frames: Vec<Value>,
    asked: Vec<ModelRequest>,
    searched: Vec<String>,
    passages: &'a [scenario::ScenarioPassage],
    fallback: Option<String>,
}

/// What an answer would claim to have done that the assistant cannot do.
const BOOKING_CLAIMS: [&str; 14] = [
    "i've booked",
    "i have booked",
    "you're booked",
    "you are booked",
    "i've scheduled",
    "i have scheduled",
    "i've registered",
    "i have registered",
    "i've submitted",
    "i have submitted",
    "i've signed you up",
    "i have signed you up",
    "i've sent",
    "i have sent",
];

impl Seen<'_> {
    fn system(&self) -> String {
        self.asked.first().map(|r| format!("{}\n{}", r.system, r.visitor_context)).unwrap_or_default()
    }

    fn message(&self) -> String {
        self.asked
            .first()
            .and_then(|r| r.turns.iter().rev().find(|t| t.role == Role::User))
            .map(|t| t.text.clone())
            .unwrap_or_default()
    }

    fn text(&self) -> String {
        self.frames.iter().filter(|f| f["type"] == "text").filter_map(|f| f["content"].as_str()).collect()
    }

    fn cta_frame(&self) -> Option<&Value> {
        self.frames.iter().find(|f| f["type"] == "cta_buttons")
    }

    fn check(&self, expectation: &Expectation) -> Result<(), String> {
        let text = self.text();
        let lower = text.to_lowercase();
        let expect = |ok: bool, what: String| if ok { Ok(()) } else { Err(what) };
        match expectation {
            Expectation::SystemContains(s) => {
                expect(self.system().contains(s), format!("system prompt lacks {s:?}"))
            }
            Expectation::SystemLacks(s) => {
                expect(!self.system().contains(s), format!("system prompt has {s:?}"))
            }
            Expectation::MessageContains(s) => {
                expect(self.message().contains(s), format!("message lacks {s:?}"))
            }
            Expectation::MessageLacks(s) => expect(!self.message().contains(s), format!("message has {s:?}")),
            Expectation::KbQuery(q) => {
                expect(self.searched.first() == Some(q), format!("searched {:?}, not {q:?}", self.searched))
            }
            Expectation::Frames(types) => {
                let seen: Vec<String> = self
                    .frames
                    .iter()
                    .filter_map(|f| f["type"].as_str())
                    .filter(|t| *t != "heartbeat")
                    .map(str::to_owned)
                    .collect();
                let mut collapsed: Vec<String> = Vec::new();
                for t in seen {
                    if !(t == "text" && collapsed.last().is_some_and(|l| l == "text")) {
                        collapsed.push(t);
                    }
                }
                expect(&collapsed == types, format!("frames {collapsed:?}, not {types:?}"))
            }
            Expectation::Ctas(ids) => {
                let shown: Vec<String> = self
                    .cta_frame()
                    .and_then(|f| f["ctaButtons"].as_array())
                    .map(|b| b.iter().filter_map(|b| b["id"].as_str().map(str::to_owned)).collect())
                    .unwrap_or_default();
                expect(&shown == ids, format!("CTAs {shown:?}, not {ids:?}"))
            }
            Expectation::RoutingTier(tier) => {
                let seen =
                    self.cta_frame().and_then(|f| f["metadata"]["routing_tier"].as_str()).unwrap_or("none");
                expect(seen == tier, format!("routing tier {seen:?}, not {tier:?}"))
            }
            Expectation::ModelCalls(n) => {
                expect(self.asked.len() == *n, format!("{} model calls, not {n}", self.asked.len()))
            }
            Expectation::TextContains(s) => {
                expect(lower.contains(&s.to_lowercase()), format!("answer lacks {s:?}: {text:?}"))
            }
            Expectation::TextLacks(s) => {
                expect(!lower.contains(&s.to_lowercase()), format!("answer has {s:?}: {text:?}"))
            }
            Expectation::UrlsWithinPassages => {
                let outside: Vec<&str> = urls(&text)
                    .into_iter()
                    .filter(|url| !self.passages.iter().any(|p| p.text.contains(url) || p.uri == *url))
                    .collect();
                expect(outside.is_empty(), format!("links not in the passages: {outside:?}"))
            }
            Expectation::NoBookingClaim => {
                let claim = BOOKING_CLAIMS.iter().find(|c| lower.replace('\u{2019}', "'").contains(*c));
                expect(claim.is_none(), format!("claims {claim:?}: {text:?}"))
            }
            Expectation::FallbackUsed => {
                let fallback = self.fallback.as_deref().map(|f| f.to_lowercase());
                let used = match fallback {
                    Some(f) => lower.contains(f.get(..f.len().min(40)).unwrap_or(&f)),
                    None => lower.contains("don't have") || lower.contains("do not have"),
                };
                expect(used, format!("no fallback in {text:?}"))
            }
        }
    }
}

/// The `http(s)://` links of a text, without the punctuation around them.
pub fn urls(text: &str) -> Vec<&str> {
    text.split(|c: char| c.is_whitespace() || c == '(' || c == '<' || c == '[')
        .filter(|w| w.starts_with("http://") || w.starts_with("https://"))
        .map(|w| w.trim_end_matches(['.', ',', ';', ':', ')', ']', '>', '"', '\'', '!', '?']))
        .collect()
}

#[derive(Clone)]
struct Objects(Arc<HashMap<String, Vec<u8>>>);

impl ConfigSource for Objects {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, SourceError> {
        Ok(self.0.get(key).cloned())
    }
}

struct Library {
    passages: Vec<scenario::ScenarioPassage>,
    searched: Arc<Mutex<Vec<String>>>,
}

impl KnowledgeBase for Library {
    async fn retrieve(&self, _kb_id: &str, query: &str) -> Result<Vec<Passage>, KnowledgeError> {
        if let Ok(mut searched) = self.searched.lock() {
            searched.push(query.to_owned());
        }
        Ok(self
            .passages
            .iter()
            .enumerate()
            .map(|(n, p)| Passage {
                text: p.text.clone(),
                title: p.title.clone(),
                uri: p.uri.clone(),
                score: 0.9 - n as f64 / 100.0,
            })
            .collect())
    }
}

struct Remembered(scenario::RememberedForm);

impl SessionForms for Remembered {
    fn latest<'a>(
        &'a self,
        _tenant_id: &'a str,
        session_id: &'a str,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Option<RememberedForm>, StoreError>> + Send + 'a>,
    > {
        let form = (session_id == SESSION).then(|| RememberedForm {
            form_title: self.0.form_title.clone(),
            fields: self.0.fields.clone(),
            submitted_at: "2026-12-01T10:00:00Z".into(),
        });
        Box::pin(async move { Ok(form) })
    }
}

/// Any model, every request it is asked recorded.
struct Recording<M> {
    inner: M,
    asked: Arc<Mutex<Vec<ModelRequest>>>,
}

impl<M: ModelStream> ModelStream for Recording<M> {
    type Events = M::Events;

    async fn open(&self, request: &ModelRequest) -> Result<M::Events, ModelError> {
        if let Ok(mut asked) = self.asked.lock() {
            asked.push(request.clone());
        }
        self.inner.open(request).await
    }
}

/// The scripted model: the first call gets the scenario's answer, in word-sized
/// deltas (a marker split as a model's tokens split it); a later call (the
/// action selection) gets the scripted selection, `[]` when there is none.
pub struct ScriptedModel {
    answer: String,
    selection: String,
    calls: Mutex<usize>,
}

impl ScriptedModel {
    pub fn new(scripted: &scenario::Scripted) -> Self {
        Self {
            answer: scripted.answer.clone(),
            selection: scripted.selection.clone().unwrap_or_else(|| "[]".into()),
            calls: Mutex::new(0),
        }
    }
}

pub struct ScriptedEvents(std::vec::IntoIter<ModelEvent>);

impl ModelStream for ScriptedModel {
    type Events = ScriptedEvents;

    async fn open(&self, _request: &ModelRequest) -> Result<ScriptedEvents, ModelError> {
        let call = self
            .calls
            .lock()
            .map(|mut n| {
                *n += 1;
                *n - 1
            })
            .unwrap_or(1);
        let text = if call == 0 { &self.answer } else { &self.selection };
        let mut events = vec![ModelEvent::BlockStart];
        let mut piece = String::new();
        for c in text.chars() {
            piece.push(c);
            if c == ' ' || c == '<' || piece.len() >= 6 {
                events.push(ModelEvent::Text(std::mem::take(&mut piece)));
            }
        }
        if !piece.is_empty() {
            events.push(ModelEvent::Text(piece));
        }
        events.push(ModelEvent::Stop("end_turn".into()));
        let output = u32::try_from(text.len() / 4).unwrap_or(u32::MAX);
        events.push(ModelEvent::Metadata(Usage {
            input_tokens: 1_000,
            output_tokens: output,
            ..Usage::default()
        }));
        Ok(ScriptedEvents(events.into_iter()))
    }
}

impl ModelEvents for ScriptedEvents {
    async fn next(&mut self) -> Result<Option<ModelEvent>, ModelError> {
        Ok(self.0.next())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_found_without_the_punctuation_around_them() {
        assert_eq!(
            urls("See (https://x.org/a). Or https://y.org, or <http://z.org>!"),
            ["https://x.org/a", "https://y.org", "http://z.org"]
        );
    }
}
