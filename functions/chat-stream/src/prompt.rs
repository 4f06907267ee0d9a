//! What the model is told: the system prompt (role, tone, rules) and the
//! conversation, with the knowledge-base context attached to the question.

use domain::{
    knowledge::Passage,
    model::{Role, Turn},
    tenant::TenantConfig,
};

const NO_CONTEXT: &str = "No knowledge base context was found for this question.";

const RULES: &str = "\
How to answer:
- Use only the facts in the <context> of the visitor's latest message and in this conversation. \
If they do not answer the question, say so in one sentence and suggest contacting the organisation; \
do not guess.
- Never invent names, dates, times, prices, addresses, phone numbers, email addresses, links or \
eligibility rules. Repeat them exactly as the context gives them.
- You cannot submit forms, send messages or book anything; never say you did.
- Keep answers short: two to four sentences, or a short list when the visitor asks for steps or options.
- Format with plain Markdown only: short paragraphs, '-' bullets, **bold** for at most a few words, \
and links only when the context contains them. No headings, tables or code blocks.
- Speak as a member of the organisation (\"we\"). Do not mention the context, documents, sources or \
these instructions.";

/// The system prompt for a tenant: its role and tone, then the shared rules.
pub fn system_prompt(config: &TenantConfig) -> String {
    let organisation =
        config.chat_title.as_deref().filter(|t| !t.trim().is_empty()).unwrap_or("this organisation");
    let role = format!(
        "You are the website assistant of {organisation}. You help visitors learn about its programs, \
         volunteering, events and ways to support it, and you guide them to the right next step."
    );
    match config.tone_prompt.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        Some(tone) => format!("{role}\n\nTone and voice:\n{tone}\n\n{RULES}"),
        None => format!("{role}\n\nTone: warm, clear and concise.\n\n{RULES}"),
    }
}

/// The latest message: the context passages, then the question.
pub fn question_with_context(question: &str, passages: &[Passage]) -> String {
    if passages.is_empty() {
        return format!("{NO_CONTEXT}\n\nQuestion: {question}");
    }
    let mut message = String::from("<context>\n");
    for (n, passage) in passages.iter().enumerate() {
        message.push_str(&format!(
            "[{}] {} ({})\n{}\n\n",
            n + 1,
            passage.title,
            passage.uri,
            passage.text.trim()
        ));
    }
    message.truncate(message.trim_end().len());
    message.push_str(&format!("\n</context>\n\nQuestion: {question}"));
    message
}

/// History plus the latest message as turns the Converse API accepts: they
/// start with the visitor, alternate (consecutive turns of one role are
/// joined), and end with the visitor's latest message.
pub fn conversation(history: &[Turn], latest: String) -> Vec<Turn> {
    let mut turns: Vec<Turn> = Vec::with_capacity(history.len() + 1);
    let incoming = history.iter().cloned().chain(std::iter::once(Turn { role: Role::User, text: latest }));
    for turn in incoming.skip_while(|t| t.role == Role::Assistant) {
        match turns.last_mut() {
            Some(last) if last.role == turn.role => {
                last.text.push_str("\n\n");
                last.text.push_str(&turn.text);
            }
            _ => turns.push(turn),
        }
    }
    turns
}

#[cfg(test)]
mod tests {
    use super::*;

    fn turn(role: Role, text: &str) -> Turn {
        Turn { role, text: text.into() }
    }

    #[test]
    fn the_system_prompt_carries_the_tenants_tone_and_the_anti_hallucination_rules() {
        let config: TenantConfig =
            serde_json::from_value(serde_json::json!({"chat_title": "Riverbend", "tone_prompt": "Be warm."}))
                .unwrap();
        let prompt = system_prompt(&config);
        assert!(prompt.contains("website assistant of Riverbend"));
        assert!(prompt.contains("Be warm."));
        assert!(prompt.contains("Never invent names"));
    }

    #[test]
    fn passages_are_numbered_with_title_and_uri_before_the_question() {
        let passages = [Passage {
            text: "We tutor.\n".into(),
            title: "Reading".into(),
            uri: "s3://b/r.md".into(),
            score: 1.0,
        }];
        assert_eq!(
            question_with_context("Who?", &passages),
            "<context>\n[1] Reading (s3://b/r.md)\nWe tutor.\n</context>\n\nQuestion: Who?"
        );
        assert_eq!(question_with_context("Who?", &[]), format!("{NO_CONTEXT}\n\nQuestion: Who?"));
    }

    #[test]
    fn the_conversation_starts_with_the_user_alternates_and_ends_with_the_question() {
        let history = [
            turn(Role::Assistant, "Welcome!"),
            turn(Role::User, "hi"),
            turn(Role::User, "anyone?"),
            turn(Role::Assistant, "Hello"),
            turn(Role::User, "unanswered"),
        ];
        let turns = conversation(&history, "Q".into());
        assert_eq!(
            turns,
            [
                turn(Role::User, "hi\n\nanyone?"),
                turn(Role::Assistant, "Hello"),
                turn(Role::User, "unanswered\n\nQ")
            ]
        );
    }
}
