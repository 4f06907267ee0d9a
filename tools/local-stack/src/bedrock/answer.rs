//! The stand-in's "model": an extractive answer built only from the context
//! the chat function put in its prompt, so end-to-end tests can check that KB
//! passages really reach the model and that the answer comes back intact.

use std::collections::HashSet;

use super::text::{Bm25, terms, word_count};

/// The answer when the context holds nothing about the question, worded the
/// way the system prompt asks a real model to admit it does not know.
pub const NO_ANSWER: &str = "I don't have that information right now. \
Please contact our team directly and they will be glad to help.";

/// Two sentences whenever two match, like a short model answer; a third
/// only if it scores at least `RELATIVE_CUTOFF` of the best, so a weak match
/// does not dilute a good answer.
const MIN_SENTENCES: usize = 2;
const MAX_SENTENCES: usize = 3;
const RELATIVE_CUTOFF: f64 = 0.5;
/// Shorter fragments ("Questions?", a school name in a list) are not answers.
const MIN_SENTENCE_WORDS: usize = 4;

/// What the chat function asked: the visitor's question and the retrieved
/// context, if any, as found in its prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prompt {
    pub question: String,
    pub context: Option<String>,
}

impl Prompt {
    /// Reads the last user message (and the system prompt, where some prompt
    /// layouts put the context). The question follows the last "Question:";
    /// the context sits between `<context>` and `</context>`.
    pub fn parse(last_user_message: &str, system: &str) -> Self {
        let question = match last_user_message.rsplit_once("Question:") {
            Some((_, question)) => question.trim().to_owned(),
            None => without_context(last_user_message).trim().to_owned(),
        };
        let context = tagged_context(last_user_message).or_else(|| tagged_context(system));
        Self { question, context }
    }

    pub fn answer(&self) -> String {
        match &self.context {
            Some(context) => extractive_answer(&self.question, context),
            None => NO_ANSWER.to_owned(),
        }
    }
}

/// Only a closed block counts: the chat function's rules mention "the
/// <context>" in prose, which must not turn the rules into an answer.
fn tagged_context(text: &str) -> Option<String> {
    let (_, after_open) = text.split_once("<context>")?;
    let (inner, _) = after_open.split_once("</context>")?;
    Some(inner.to_owned())
}

fn without_context(text: &str) -> String {
    match text.split_once("<context>") {
        Some((before, rest)) => {
            let after = rest.split_once("</context>").map_or("", |(_, after)| after);
            format!("{before}{after}")
        }
        None => text.to_owned(),
    }
}

/// The best two or three context sentences for `question`, in their original
/// order; `NO_ANSWER` when none shares a word with it.
pub fn extractive_answer(question: &str, context: &str) -> String {
    let candidates = sentences(context);
    let ranked = Bm25::new(&candidates).rank(question);
    let Some(&(_, best)) = ranked.first() else {
        return NO_ANSWER.to_owned();
    };
    let mut chosen: Vec<usize> = Vec::new();
    for &(index, score) in &ranked {
        let enough = chosen.len() >= MIN_SENTENCES && score < best * RELATIVE_CUTOFF;
        if chosen.len() == MAX_SENTENCES || enough {
            break;
        }
        let repeats = chosen.iter().any(|&other| nearly_same(&candidates[index], &candidates[other]));
        if !repeats {
            chosen.push(index);
        }
    }
    chosen.sort_unstable();
    chosen.iter().map(|&index| candidates[index].as_str()).collect::<Vec<_>>().join(" ")
}

/// Two documents often say the same thing in nearly the same words; an
/// answer that repeats itself reads like a broken model.
fn nearly_same(a: &str, b: &str) -> bool {
    let a: HashSet<String> = terms(a).into_iter().collect();
    let b: HashSet<String> = terms(b).into_iter().collect();
    let shared = a.intersection(&b).count();
    let smaller = a.len().min(b.len());
    smaller > 0 && shared * 10 >= smaller * 8
}

/// The distinct sentences of the context, markdown removed. Source headers
/// ("[1] Title (uri)") and headings are labels, not statements, so they are
/// left out.
pub fn sentences(context: &str) -> Vec<String> {
    let mut seen = HashSet::new();
    context_blocks(context)
        .iter()
        .flat_map(|block| split_sentences(&plain_text(block)))
        .filter(|sentence| word_count(sentence) >= MIN_SENTENCE_WORDS)
        .filter(|sentence| seen.insert(sentence.clone()))
        .collect()
}

/// Paragraphs and list items. A soft-wrapped paragraph is joined back into
/// one block so its sentences are not cut at line ends.
fn context_blocks(context: &str) -> Vec<String> {
    let mut blocks: Vec<String> = Vec::new();
    let mut open = false;
    for line in context.lines().map(str::trim) {
        // Headings and source headers are labels: they end a paragraph and are not kept.
        if line.is_empty() || line.starts_with('#') || is_source_header(line) {
            open = false;
        } else {
            let continues_paragraph = open && !is_list_item(line);
            match blocks.last_mut() {
                Some(last) if continues_paragraph => {
                    last.push(' ');
                    last.push_str(line);
                }
                _ => {
                    blocks.push(line.to_owned());
                    open = true;
                }
            }
        }
    }
    blocks
}

/// `[1] Reading Buddies (s3://...)`
fn is_source_header(line: &str) -> bool {
    line.strip_prefix('[')
        .and_then(|rest| rest.split_once(']'))
        .is_some_and(|(number, _)| !number.is_empty() && number.chars().all(|c| c.is_ascii_digit()))
}

fn is_list_item(line: &str) -> bool {
    list_marker_len(line) > 0
}

fn list_marker_len(line: &str) -> usize {
    if ["- ", "* ", "+ "].iter().any(|marker| line.starts_with(marker)) {
        return 2;
    }
    let digits = line.chars().take_while(char::is_ascii_digit).count();
    if digits > 0 && line[digits..].starts_with(". ") {
        return digits + 2;
    }
    0
}

/// Markdown emphasis, code marks, list markers and links reduced to their text.
fn plain_text(block: &str) -> String {
    let text = &block[list_marker_len(block)..];
    let text = without_link_targets(text);
    text.replace("**", "").replace("__", "").replace('`', "").trim().to_owned()
}

/// `[label](https://...)` → `label`.
fn without_link_targets(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("](") {
        let Some(end) = rest[start..].find(')') else {
            break;
        };
        let before = &rest[..start];
        match before.rfind('[') {
            Some(open) => {
                out.push_str(&before[..open]);
                out.push_str(&before[open + 1..]);
            }
            None => out.push_str(before),
        }
        rest = &rest[start + end + 1..];
    }
    out.push_str(rest);
    out
}

/// Abbreviations whose period does not end a sentence.
const ABBREVIATIONS: &[&str] = &["mr.", "mrs.", "ms.", "dr.", "st.", "e.g.", "i.e.", "vs."];

fn split_sentences(text: &str) -> Vec<String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let mut sentences = Vec::new();
    let mut current: Vec<&str> = Vec::new();
    for (index, word) in words.iter().enumerate() {
        current.push(word);
        let ends = word.ends_with(['.', '?', '!']) || word.ends_with(".)") || word.ends_with(".\"");
        let abbreviation = ABBREVIATIONS.contains(&word.to_lowercase().as_str());
        let next_starts_sentence = words.get(index + 1).is_none_or(|next| {
            next.chars()
                .next()
                .is_some_and(|c| c.is_uppercase() || c.is_ascii_digit() || c == '"' || c == '(')
        });
        if ends && !abbreviation && next_starts_sentence {
            sentences.push(current.join(" "));
            current.clear();
        }
    }
    if !current.is_empty() {
        sentences.push(current.join(" "));
    }
    sentences
}

/// The pieces the answer is streamed in: each word with the whitespace after
/// it, so the deltas concatenate to exactly the answer.
pub fn chunks(answer: &str) -> Vec<&str> {
    let mut chunks = Vec::new();
    let mut start = 0;
    let mut in_space = false;
    for (index, c) in answer.char_indices() {
        if c.is_whitespace() {
            in_space = true;
        } else if in_space {
            chunks.push(&answer[start..index]);
            start = index;
            in_space = false;
        }
    }
    if start < answer.len() {
        chunks.push(&answer[start..]);
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONTEXT_PROMPT: &str = "<context>\n\
[1] Reading Buddies (s3://myrecruiter-picasso/knowledge-base/RIVKB00001/reading-buddies.md)\n\
## Schedule and commitment\n\n\
- **Time:** one hour a week, at the same day and time each week.\n\
- **Days:** Monday through Thursday. (Fridays are early-release days, so we do not tutor on Fridays.)\n\
- **Morning block:** 9:00 to 11:30 a.m. You choose one hour inside the block.\n\n\
[2] Donate (s3://myrecruiter-picasso/knowledge-base/RIVKB00001/donate-and-support.md)\n\
Your gift buys books for our partner schools. Monthly donors join the [Page Turners](https://example.org/give) circle.\n\
</context>\n\nQuestion: Which days do Reading Buddies tutor?";

    #[test]
    fn the_question_is_what_follows_the_last_question_marker() {
        let prompt = Prompt::parse(CONTEXT_PROMPT, "");
        assert_eq!(prompt.question, "Which days do Reading Buddies tutor?");
        assert!(prompt.context.as_deref().is_some_and(|c| c.contains("Page Turners")));
    }

    #[test]
    fn without_a_marker_the_whole_message_is_the_question() {
        let prompt = Prompt::parse("  How do I donate? ", "");
        assert_eq!(prompt.question, "How do I donate?");
        assert_eq!(prompt.context, None);
        assert_eq!(prompt.answer(), NO_ANSWER);
    }

    #[test]
    fn the_answer_is_the_matching_sentences_in_document_order() {
        let answer = Prompt::parse(CONTEXT_PROMPT, "").answer();
        assert!(answer.contains("Days: Monday through Thursday."), "{answer}");
        assert!(answer.contains("we do not tutor on Fridays"), "{answer}");
        assert!(!answer.contains("**") && !answer.contains("[1]"), "{answer}");
        assert!(!answer.contains("gift"), "{answer}");
    }

    #[test]
    fn an_unrelated_question_gets_the_polite_refusal() {
        let prompt = CONTEXT_PROMPT.replace("Which days do Reading Buddies tutor?", "Is parking validated?");
        assert_eq!(Prompt::parse(&prompt, "").answer(), NO_ANSWER);
    }

    #[test]
    fn no_knowledge_base_context_gets_the_polite_refusal() {
        let message =
            "No knowledge base context was found for this question.\n\nQuestion: What is Reading Buddies?";
        assert_eq!(Prompt::parse(message, "").answer(), NO_ANSWER);
    }

    #[test]
    fn the_context_may_sit_in_the_system_prompt() {
        let system =
            "You are helpful.\n<context>\nReading Buddies tutors meet Monday through Thursday.\n</context>";
        let answer = Prompt::parse("Question: Which days do tutors meet?", system).answer();
        assert_eq!(answer, "Reading Buddies tutors meet Monday through Thursday.");
    }

    #[test]
    fn a_system_prompt_that_only_mentions_the_context_tag_is_not_context() {
        let system = "- Use only the facts in the <context> of the visitor's latest message.";
        let message = "No knowledge base context was found for this question.\n\nQuestion: What facts?";
        assert_eq!(Prompt::parse(message, system).answer(), NO_ANSWER);
    }

    #[test]
    fn sentences_split_at_ends_but_not_inside_abbreviations_or_times() {
        let found = sentences("Meet Dr. Park at 9:00 a.m. on Monday. Then we read books. Ok.");
        assert_eq!(found, ["Meet Dr. Park at 9:00 a.m. on Monday.", "Then we read books."]);
    }

    #[test]
    fn links_keep_their_label() {
        assert_eq!(plain_text("- Join [Page Turners](https://x.org/a) today"), "Join Page Turners today");
    }

    #[test]
    fn the_same_sentence_from_two_passages_is_used_once() {
        let context = "Tutors read with two students.\n\nTutors read with two students.";
        assert_eq!(extractive_answer("students tutors", context), "Tutors read with two students.");
    }

    #[test]
    fn a_sentence_nearly_repeating_a_chosen_one_is_left_out() {
        let context = "You complete a background check (free for you; we pay the cost).\n\n\
                       You complete a background check (free; we pay the cost) and give references.";
        let answer = extractive_answer("Who pays for the background check?", context);
        assert_eq!(answer.matches("background check").count(), 1, "{answer}");
    }

    #[test]
    fn the_answer_is_deterministic() {
        let first = Prompt::parse(CONTEXT_PROMPT, "").answer();
        assert!((0..5).all(|_| Prompt::parse(CONTEXT_PROMPT, "").answer() == first));
    }

    #[test]
    fn chunks_are_words_with_their_trailing_space_and_concatenate_to_the_answer() {
        let answer = "Hello there,  world.\nBye";
        let pieces = chunks(answer);
        assert_eq!(pieces, ["Hello ", "there,  ", "world.\n", "Bye"]);
        assert_eq!(pieces.concat(), answer);
        assert!(chunks("").is_empty());
        assert_eq!(chunks("  lead").concat(), "  lead");
    }
}
