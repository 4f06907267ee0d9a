//! One scenario (`evals/scenarios/*.json`) and what it expects.

use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Set from the file name.
    #[serde(skip)]
    pub id: String,
    /// What behaviour it covers: grounding, restraint, injection, tone, memory, focus, ...
    pub covers: String,
    pub about: String,
    /// The tenant's config: written out, or a file of the repository...
    #[serde(default)]
    pub config: Option<Value>,
    #[serde(default)]
    pub config_file: Option<String>,
    /// ...with these top-level keys replaced.
    #[serde(default)]
    pub config_patch: Option<Value>,
    /// What the knowledge base finds (none: it finds nothing).
    #[serde(default)]
    pub passages: Vec<ScenarioPassage>,
    #[serde(default)]
    pub history: Vec<Value>,
    #[serde(default)]
    pub session_context: Option<Value>,
    #[serde(default)]
    pub routing_metadata: Option<Value>,
    /// The session's latest form, as the submissions table would give it.
    #[serde(default)]
    pub remembered_form: Option<RememberedForm>,
    pub question: String,
    /// What the scripted model says: the answer (with its action marker, if
    /// any) and, if asked, the selection call's reply.
    pub scripted: Scripted,
    pub expect: Vec<Expectation>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioPassage {
    pub title: String,
    pub uri: String,
    pub text: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RememberedForm {
    pub form_title: String,
    pub fields: Vec<(String, String)>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scripted {
    pub answer: String,
    #[serde(default)]
    pub selection: Option<String>,
}

/// One expectation. Those on the prompt, the frames and the choice of CTAs
/// are checked in every run; those on the answer's words (`live: true`)
/// judge a real model with `--live` and check the pipeline scripted.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Expectation {
    /// The system prompt we built (stable part and visitor context) contains / lacks this.
    SystemContains(String),
    SystemLacks(String),
    /// The latest user message (context passages and question) contains / lacks this.
    MessageContains(String),
    MessageLacks(String),
    /// The knowledge base was searched with exactly this.
    KbQuery(String),
    /// The frame types in order (heartbeats and comments aside).
    Frames(Vec<String>),
    /// The ids of the CTA buttons shown, in order (`[]`: no `cta_buttons` frame).
    Ctas(Vec<String>),
    /// The `cta_buttons` frame's `metadata.routing_tier`.
    RoutingTier(String),
    /// How many model calls the turn made (1, or 2 with a selection call).
    ModelCalls(usize),
    /// The visible answer contains / lacks this (case aside).
    TextContains(String),
    TextLacks(String),
    /// Every link in the answer appears in a passage.
    UrlsWithinPassages,
    /// The answer never says it booked, submitted, registered or sent anything.
    NoBookingClaim,
    /// The answer is the tenant's `fallback_message` (or says the assistant does not know).
    FallbackUsed,
}

impl Expectation {
    /// Whether this judges the model's own words (only meaningful with `--live`).
    pub fn judges_words(&self) -> bool {
        matches!(
            self,
            Self::TextContains(_)
                | Self::TextLacks(_)
                | Self::UrlsWithinPassages
                | Self::NoBookingClaim
                | Self::FallbackUsed
        )
    }
}
