//! The stand-in's side of AI-chosen actions. A system prompt that lists
//! actions (`- id: label (what it does)`) and asks for a `<<<ACTIONS [...]>>>`
//! line gets one at the end of the answer; a selection call (the list in the
//! user message) gets a bare JSON array. The stand-in "chooses" the actions
//! whose id or label shares a word with the visitor's question.

use serde::{Deserialize, Serialize};

use super::text::terms;

const OPEN: &str = "<<<ACTIONS";
/// The stand-in chooses at most this many, as a restrained model would.
const MAX_CHOSEN: usize = 2;

/// How the marker line is written (`POST /_standin/faults {"action_marker": ...}`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MarkerStyle {
    /// Over several deltas, the opening itself cut in two, as a model's tokens fall.
    #[default]
    Split,
    /// In one delta.
    Whole,
    /// Not valid JSON inside.
    Malformed,
    /// Left out.
    Missing,
}

/// The catalog's ids, from lines `- id: label (does)`.
fn catalog(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|line| {
            let (id, rest) = line.strip_prefix("- ")?.split_once(": ")?;
            let plain = !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c));
            (plain && rest.ends_with(')')).then(|| (id.to_owned(), rest.to_owned()))
        })
        .collect()
}

fn choose(question: &str, entries: &[(String, String)]) -> Vec<String> {
    let asked = terms(question);
    entries
        .iter()
        .filter(|(id, label)| {
            let words = terms(&format!("{} {label}", id.replace(['_', '-', '.'], " ")));
            words.iter().any(|w| asked.contains(w))
        })
        .map(|(id, _)| id.clone())
        .take(MAX_CHOSEN)
        .collect()
}

/// The marker pieces to stream after a single-pass answer, or none when the
/// system prompt asks for no marker.
pub fn marker_pieces(system: &str, question: &str, style: MarkerStyle) -> Vec<String> {
    if !system.contains(OPEN) {
        return Vec::new();
    }
    let ids = serde_json::to_string(&choose(question, &catalog(system))).unwrap_or_else(|_| "[]".into());
    match style {
        MarkerStyle::Missing => Vec::new(),
        MarkerStyle::Whole => vec![format!("\n{OPEN} {ids}>>>")],
        MarkerStyle::Malformed => vec![format!("\n{OPEN} {}>>>", ids.replace('"', ""))],
        MarkerStyle::Split => {
            let (head, tail) = OPEN.split_at(5);
            let (ids_head, ids_tail) = ids.split_at(ids.len() / 2);
            vec![format!("\n{head}"), format!("{tail} {ids_head}"), format!("{ids_tail}>"), ">>".into()]
        }
    }
}

/// The reply to a selection call (the catalog in the user message), if this is one.
pub fn selection_reply(last_user_message: &str) -> Option<String> {
    let entries = catalog(last_user_message);
    if entries.is_empty() {
        return None;
    }
    let question =
        last_user_message.lines().rev().find_map(|line| line.strip_prefix("Visitor: ")).unwrap_or_default();
    Some(serde_json::to_string(&choose(question, &entries)).unwrap_or_else(|_| "[]".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SYSTEM: &str = "Rules.\nActions the website can show:\n- volunteer_apply: Apply to volunteer (starts a form)\n\
        - give_today: Give today (opens a web page)\nEnd with <<<ACTIONS [\"id\"]>>>";

    #[test]
    fn a_catalog_prompt_gets_a_marker_naming_the_actions_the_question_is_about() {
        let pieces = marker_pieces(SYSTEM, "How do I volunteer?", MarkerStyle::Split);
        assert_eq!(pieces.concat(), "\n<<<ACTIONS [\"volunteer_apply\"]>>>");
        assert!(pieces.len() > 2 && !pieces.iter().any(|p| p.contains(OPEN)), "{pieces:?}");
        assert_eq!(marker_pieces(SYSTEM, "What is this?", MarkerStyle::Whole), ["\n<<<ACTIONS []>>>"]);
        assert!(marker_pieces("No actions here.", "volunteer", MarkerStyle::Whole).is_empty());
    }

    #[test]
    fn a_selection_call_gets_a_bare_json_array() {
        let user = "<conversation>\nVisitor: can I give online?\nAssistant: Yes.\n</conversation>\n\nActions:\n\
                    - give_today: Give today (opens a web page)\n- volunteer_apply: Apply to volunteer (starts a form)";
        assert_eq!(selection_reply(user).as_deref(), Some("[\"give_today\"]"));
        assert_eq!(selection_reply("Question: hi"), None);
    }
}
