//! AI-chosen actions: for a tenant with `feature_flags.V5_SINGLE_PASS` or
//! `V4_ACTION_SELECTOR`, the model picks the buttons under an answer from
//! the CTAs the tenant marked `ai_available`. Single pass: the answer ends
//! with a marker line, `<<<ACTIONS ["id", ...]>>>`, which [`TailFilter`]
//! keeps from the visitor however the deltas split it. Selector (or a
//! single pass whose marker is missing or malformed): one small selection
//! call after the answer.

use domain::{
    model::{Role, Turn},
    tenant::TenantConfig,
};
use serde_json::{Value, json};

use crate::{cta::CtaOutcome, instructions::sanitise, request::SessionContext};

/// The marker's opening; the marker is this, a JSON array of ids, then [`CLOSE`], on one line.
pub const OPEN: &str = "<<<ACTIONS";
const CLOSE: &str = ">>>";
/// At most this many buttons are chosen.
pub const MAX_CHOSEN: usize = 4;
/// At most this many catalog entries reach the prompt.
pub const MAX_CATALOG: usize = 30;
const MAX_LABEL_CHARS: usize = 80;
const MAX_ID_CHARS: usize = 64;
/// A marker longer than this without its close is not one.
const MAX_MARKER_CHARS: usize = 1_000;
/// The selection call: a short JSON array, said soberly.
pub const SELECTOR_MAX_TOKENS: u32 = 100;
pub const SELECTOR_TEMPERATURE: f32 = 0.1;
/// Turns of the conversation the selection call sees.
const SELECTOR_HISTORY_TURNS: usize = 6;

/// How the tenant's actions are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The answer carries the choice in its marker line.
    SinglePass,
    /// A selection call after the answer chooses.
    Selector,
}

impl Mode {
    /// The `routing_tier` of the `cta_buttons` frame.
    pub fn routing_tier(self) -> &'static str {
        match self {
            Self::SinglePass => "v5_single_pass",
            Self::Selector => "v4_action_selector",
        }
    }
}

/// One action the model may choose: its id, the button's label, what it does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub id: String,
    pub label: String,
    pub does: String,
}

/// The tenant's AI-available actions and how they are chosen; `None` for a
/// tenant without either flag or without an `ai_available` CTA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Catalog {
    pub mode: Mode,
    pub entries: Vec<Entry>,
}

/// A flag is on when it is `true` (or the string `"true"`, as some builders wrote it).
fn flag(raw: &Value, name: &str) -> bool {
    match raw.get("feature_flags").and_then(|flags| flags.get(name)) {
        Some(Value::Bool(on)) => *on,
        Some(Value::String(text)) => text.trim().eq_ignore_ascii_case("true"),
        _ => false,
    }
}

impl Catalog {
    pub fn read(config: &TenantConfig, raw: &Value) -> Option<Self> {
        let mode = if flag(raw, "V5_SINGLE_PASS") {
            Mode::SinglePass
        } else if flag(raw, "V4_ACTION_SELECTOR") {
            Mode::Selector
        } else {
            return None;
        };
        let entries: Vec<Entry> = config
            .cta_definitions
            .iter()
            .filter(|(_, cta)| cta.0.get("ai_available") == Some(&Value::Bool(true)))
            .filter(|(id, _)| is_id(id))
            .filter_map(|(id, cta)| {
                let label = sanitise(cta.label()?, MAX_LABEL_CHARS).replace('\n', " ");
                (!label.is_empty()).then(|| Entry { id: id.clone(), label, does: does(cta.action()) })
            })
            .take(MAX_CATALOG)
            .collect();
        (!entries.is_empty()).then_some(Self { mode, entries })
    }

    fn lines(&self) -> String {
        self.entries
            .iter()
            .map(|e| format!("- {}: {} ({})", e.id, e.label, e.does))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// For the system prompt of a single-pass tenant: the catalog, how to
    /// choose, and the marker line to end with. Stable per tenant, so it sits
    /// in the cached part of the prompt.
    pub fn single_pass_rules(&self) -> String {
        format!(
            "Actions the website can show under your answer:\n{}\n\n{CHOOSING}\n\nEnd every answer with one \
             last line, exactly in this form, with nothing after it:\n{OPEN} [\"id\", \"id\"]{CLOSE}\nWrite \
             {OPEN} []{CLOSE} when no action fits. That line is removed before the visitor reads the answer: \
             never mention it or the actions' ids.",
            self.lines()
        )
    }

    /// Only ids of this catalog, each once, at most [`MAX_CHOSEN`], in the model's order.
    pub fn keep(&self, ids: &[String]) -> Vec<String> {
        let mut kept: Vec<String> = Vec::new();
        for id in ids.iter().map(|id| id.trim()) {
            if kept.len() < MAX_CHOSEN
                && self.entries.iter().any(|e| e.id == id)
                && !kept.iter().any(|k| k == id)
            {
                kept.push(id.to_owned());
            }
        }
        kept
    }

    /// The selection call: which actions fit the answer just given.
    pub fn selection_prompt(&self, history: &[Turn], question: &str, answer: &str) -> (String, String) {
        let system = format!(
            "You choose which of a website's actions to show a visitor under the assistant's latest answer. \
             {CHOOSING}\nReply with only a JSON array of the chosen ids, such as [\"id\"] or [], and nothing \
             else: no words, no Markdown, no code fence."
        );
        let mut conversation = String::new();
        let start = history.len().saturating_sub(SELECTOR_HISTORY_TURNS);
        for turn in &history[start..] {
            let who = if turn.role == Role::User { "Visitor" } else { "Assistant" };
            conversation.push_str(&format!("{who}: {}\n", turn.text));
        }
        conversation.push_str(&format!("Visitor: {question}\nAssistant: {answer}\n"));
        let user = format!(
            "<conversation>\n{conversation}</conversation>\n\nActions:\n{}\n\nWhich actions fit now?",
            self.lines()
        );
        (system, user)
    }
}

const CHOOSING: &str = "How to choose actions:\n\
- Choose from 0 to 4 of the ids listed, no other. Most answers need none.\n\
- While the visitor is exploring, one action to learn more is enough.\n\
- Offer a form, a booking or a link only when the visitor says they want to apply, sign up, give, register \
or visit.\n\
- Every action must fit the answer it follows.";

fn is_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID_CHARS
        && id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// What a CTA does, in words the model can weigh.
fn does(action: Option<&str>) -> String {
    match action.unwrap_or_default() {
        "start_form" | "form_trigger" => "starts a form".into(),
        "external_link" | "link" => "opens a web page".into(),
        "send_query" | "bedrock_query" => "asks the assistant about it".into(),
        "show_info" => "shows information".into(),
        "start_scheduling" | "resume_scheduling" => "books a time".into(),
        other => sanitise(other, 40).replace('\n', " "),
    }
}

/// What the answer's marker said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Marker {
    /// The ids of the last well-formed marker (maybe none).
    Chosen(Vec<String>),
    /// The last marker could not be read.
    Malformed,
    /// The answer had no marker.
    Missing,
}

/// Passes answer text through, holding back anything that may be the start
/// of the marker until it is known not to be, and removing each marker line.
/// The last marker decides.
#[derive(Debug, Default)]
pub struct TailFilter {
    /// Text held back: trailing whitespace and a possible start of [`OPEN`].
    held: String,
    /// Inside a marker: what came after [`OPEN`] so far.
    marker: Option<String>,
    last: Option<Marker>,
}

impl TailFilter {
    /// The part of `delta` (with what was held) the visitor may see now.
    pub fn feed(&mut self, delta: &str) -> String {
        let mut rest = std::mem::take(&mut self.held);
        rest.push_str(delta);
        let mut visible = String::new();
        loop {
            if let Some(mut inside) = self.marker.take() {
                inside.push_str(&rest);
                let close = inside.find(CLOSE);
                let newline = inside.find('\n');
                match (close, newline) {
                    (Some(close), newline) if newline.is_none_or(|n| n > close) => {
                        self.last = Some(parse_ids(&inside[..close]));
                        rest = inside[close + CLOSE.len()..].to_owned();
                    }
                    // A line that opened like a marker and never closed: dropped, prose resumes.
                    (_, Some(newline)) => {
                        self.last = Some(Marker::Malformed);
                        rest = inside[newline..].to_owned();
                    }
                    _ if inside.chars().count() > MAX_MARKER_CHARS => {
                        self.last = Some(Marker::Malformed);
                        return visible;
                    }
                    _ => {
                        self.marker = Some(inside);
                        return visible;
                    }
                }
                continue;
            }
            if let Some(open) = rest.find(OPEN) {
                // The marker's own line break (and any space before it) goes with it.
                visible.push_str(rest[..open].trim_end());
                self.marker = Some(String::new());
                rest = rest[open + OPEN.len()..].to_owned();
                continue;
            }
            let keep = held_suffix(&rest);
            visible.push_str(&rest[..rest.len() - keep]);
            self.held = rest[rest.len() - keep..].to_owned();
            return visible;
        }
    }

    /// The end of the answer: the text still held that was not a marker, and what the marker said.
    pub fn finish(mut self) -> (String, Marker) {
        if self.marker.take().is_some() {
            self.last = Some(Marker::Malformed);
        }
        let rest = if self.held.trim().is_empty() { String::new() } else { self.held };
        (rest, self.last.unwrap_or(Marker::Missing))
    }
}

/// How many trailing bytes of `text` to hold: a trailing run of whitespace,
/// then any start of [`OPEN`] (a marker's line break must not be shown
/// before the marker is removed).
fn held_suffix(text: &str) -> usize {
    let partial = (1..OPEN.len()).rev().find(|n| text.ends_with(&OPEN[..*n])).unwrap_or(0);
    let before = &text[..text.len() - partial];
    let spaces = before.len() - before.trim_end().len();
    partial + spaces
}

fn parse_ids(inside: &str) -> Marker {
    match serde_json::from_str::<Vec<String>>(inside.trim()) {
        Ok(ids) => Marker::Chosen(ids),
        Err(_) => Marker::Malformed,
    }
}

/// The ids in a selection call's reply: the first JSON array of strings in
/// it (a code fence or a word around it forgiven); none when there is none.
pub fn parse_selection(reply: &str) -> Vec<String> {
    let (Some(start), Some(end)) = (reply.find('['), reply.rfind(']')) else { return Vec::new() };
    if end < start {
        return Vec::new();
    }
    serde_json::from_str::<Vec<String>>(&reply[start..=end]).unwrap_or_default()
}

/// The buttons of the chosen ids: each definition as the tenant wrote it
/// (without `style`), with `id`, `label` and `action` in either spelling,
/// the first `primary` and the rest `secondary`. A form the visitor already
/// completed is not offered again.
pub fn buttons(config: &TenantConfig, ids: &[String], session: &SessionContext) -> Vec<Value> {
    ids.iter()
        .filter_map(|id| Some((id, config.cta_definitions.get(id)?)))
        .filter(|(_, cta)| !session.completed_forms.iter().any(|done| Some(done.as_str()) == cta.form_id()))
        .enumerate()
        .map(|(n, (id, cta))| {
            let mut button = crate::cta::button(id, cta);
            button["_position"] = Value::from(if n == 0 { "primary" } else { "secondary" });
            button
        })
        .collect()
}

/// The buttons of an AI choice and their metadata (`routing_tier`,
/// `selected_ids` and `conversation_context.selected_ctas`: the ids shown);
/// `None` when nothing is left to show.
pub fn outcome(
    mode: Mode,
    config: &TenantConfig,
    ids: &[String],
    session: &SessionContext,
) -> Option<CtaOutcome> {
    let buttons = buttons(config, ids, session);
    let shown: Vec<&str> = buttons.iter().filter_map(|b| b.get("id")?.as_str()).collect();
    let metadata = json!({
        "routing_tier": mode.routing_tier(),
        "selected_ids": shown,
        "conversation_context": {"selected_ctas": shown},
    });
    (!buttons.is_empty()).then_some(CtaOutcome { buttons, metadata, showcase: None })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn through(deltas: &[&str]) -> (String, Marker) {
        let mut filter = TailFilter::default();
        let mut shown: String = deltas.iter().map(|d| filter.feed(d)).collect();
        let (rest, marker) = filter.finish();
        shown.push_str(&rest);
        (shown, marker)
    }

    #[test]
    fn the_marker_never_reaches_the_visitor_however_the_deltas_split_it() {
        let answer = "We meet on Tuesdays.\n<<<ACTIONS [\"volunteer_apply\", \"give\"]>>>";
        let expected = (
            "We meet on Tuesdays.".to_owned(),
            Marker::Chosen(vec!["volunteer_apply".into(), "give".into()]),
        );
        for size in 1..=answer.len() {
            let bytes = answer.as_bytes();
            let deltas: Vec<&str> = bytes.chunks(size).map(|c| std::str::from_utf8(c).unwrap()).collect();
            assert_eq!(through(&deltas), expected, "deltas of {size} bytes");
        }
    }

    #[test]
    fn any_text_in_any_split_passes_without_a_panic_and_never_grows() {
        let pieces =
            ["<<<ACTIONS", "<<", "<", "ACT", "IONS", ">>>", ">", "\n", " ", "[\"a\"]", "é", "text", "]"];
        let mut rng = fastrand::Rng::with_seed(22);
        for _ in 0..5_000 {
            let deltas: Vec<String> = (0..rng.usize(1..12))
                .map(|_| (0..rng.usize(1..4)).map(|_| pieces[rng.usize(..pieces.len())]).collect())
                .collect();
            let refs: Vec<&str> = deltas.iter().map(String::as_str).collect();
            let (shown, _) = through(&refs);
            assert!(shown.len() <= deltas.concat().len(), "{deltas:?} showed {shown:?}");
        }
    }

    #[test]
    fn the_last_marker_decides_and_text_that_only_looks_like_one_is_shown() {
        assert_eq!(
            through(&["Use <<", "< arrows. ", "<<<ACTIONS [\"a\"]>>>", "\n<<<ACTIONS []>>>"]),
            ("Use <<< arrows.".to_owned(), Marker::Chosen(vec![]))
        );
        assert_eq!(through(&["No marker here.  "]), ("No marker here.".to_owned(), Marker::Missing));
    }

    #[test]
    fn a_malformed_or_unclosed_marker_is_removed_and_reported() {
        assert_eq!(through(&["Hi.\n<<<ACTIONS [give>>>"]), ("Hi.".to_owned(), Marker::Malformed));
        assert_eq!(through(&["Hi.\n<<<ACTIONS [\"give\""]), ("Hi.".to_owned(), Marker::Malformed));
        assert_eq!(
            through(&["Hi.<<<ACTIONS oops\nMore text."]),
            ("Hi.\nMore text.".to_owned(), Marker::Malformed),
            "a line break ends a marker that never closed"
        );
    }

    fn config() -> (TenantConfig, Value) {
        let raw = json!({
            "feature_flags": {"V5_SINGLE_PASS": true, "_note": "x"},
            "cta_definitions": {
                "_note": "builder notes are not CTAs",
                "volunteer_apply": {"label": "Apply to volunteer", "action": "start_form", "formId": "vol", "style": "primary", "ai_available": true},
                "give_today": {"text": "Give today", "type": "external_link", "url": "https://x.org/give", "ai_available": true},
                "hidden": {"label": "Staff only", "action": "show_info", "ai_available": false},
                "bad id!": {"label": "Bad", "action": "show_info", "ai_available": true}
            }
        });
        (serde_json::from_value(raw.clone()).unwrap(), raw)
    }

    #[test]
    fn the_catalog_is_the_ai_available_ctas_and_the_choice_keeps_only_its_ids() {
        let (config, raw) = config();
        let catalog = Catalog::read(&config, &raw).unwrap();
        assert_eq!(catalog.mode, Mode::SinglePass);
        let ids: Vec<&str> = catalog.entries.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids, ["volunteer_apply", "give_today"]);
        assert!(catalog.single_pass_rules().contains("- give_today: Give today (opens a web page)"));
        let chosen = ["give_today", "hidden", "nope", "give_today", "volunteer_apply"].map(String::from);
        assert_eq!(catalog.keep(&chosen), ["give_today", "volunteer_apply"]);
        let mut off = raw.clone();
        off["feature_flags"] = json!({"V5_SINGLE_PASS": false});
        assert_eq!(Catalog::read(&config, &off), None);
    }

    #[test]
    fn chosen_buttons_are_primary_then_secondary_without_style_or_completed_forms() {
        let (config, _) = config();
        let ids = ["give_today", "volunteer_apply"].map(String::from);
        let buttons = buttons(&config, &ids, &SessionContext::default());
        assert_eq!(buttons[0]["_position"], "primary");
        assert_eq!(buttons[0]["label"], "Give today");
        assert_eq!(buttons[1]["_position"], "secondary");
        assert!(buttons[1].get("style").is_none());
        let done = SessionContext { completed_forms: vec!["vol".into()], ..SessionContext::default() };
        let outcome = outcome(Mode::SinglePass, &config, &ids, &done).unwrap();
        assert_eq!(outcome.buttons.len(), 1);
        assert_eq!(outcome.metadata["selected_ids"], json!(["give_today"]), "the ids shown");
    }

    #[test]
    fn a_selection_reply_is_read_through_fences_and_words() {
        assert_eq!(parse_selection("```json\n[\"a\", \"b\"]\n```"), ["a", "b"]);
        assert_eq!(parse_selection("[]"), Vec::<String>::new());
        assert_eq!(parse_selection("I would pick a"), Vec::<String>::new());
        assert_eq!(parse_selection("] nonsense ["), Vec::<String>::new());
    }
}
