//! Knowledge-base documents cut into passages the way a Bedrock data source
//! chunks them: by heading and paragraph, roughly 40 to 200 words each, so a
//! search returns a focused piece of a document rather than all of it.

use super::text::word_count;

pub const MIN_WORDS: usize = 40;
pub const MAX_WORDS: usize = 200;

/// The passages of one markdown document, in document order.
pub fn split_markdown(markdown: &str) -> Vec<String> {
    let mut passages: Vec<String> = Vec::new();
    let mut current: Vec<String> = Vec::new();
    let mut current_words = 0;
    for block in blocks(markdown).into_iter().flat_map(limit_size) {
        let words = word_count(&block);
        // A heading starts a new passage once the current one is big enough to
        // stand alone; a small section is carried into the next one instead.
        let starts_section = block.starts_with('#') && current_words >= MIN_WORDS;
        if !current.is_empty() && (starts_section || current_words + words > MAX_WORDS) {
            passages.push(current.join("\n\n"));
            current.clear();
            current_words = 0;
        }
        current.push(block);
        current_words += words;
    }
    if !current.is_empty() {
        let tail = current.join("\n\n");
        match passages.last_mut() {
            // A short last section (a closing line, a contact) belongs with the one before it.
            Some(previous) if current_words < MIN_WORDS => {
                previous.push_str("\n\n");
                previous.push_str(&tail);
            }
            _ => passages.push(tail),
        }
    }
    passages
}

/// Paragraphs, lists and headings: blank lines separate blocks, and a heading
/// is always a block of its own.
fn blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut lines: Vec<&str> = Vec::new();
    let mut flush = |lines: &mut Vec<&str>| {
        if !lines.is_empty() {
            blocks.push(lines.join("\n"));
            lines.clear();
        }
    };
    for line in markdown.lines().map(str::trim_end) {
        if line.trim().is_empty() {
            flush(&mut lines);
        } else if line.starts_with('#') {
            flush(&mut lines);
            lines.push(line);
            flush(&mut lines);
        } else {
            lines.push(line);
        }
    }
    flush(&mut lines);
    blocks
}

/// A block longer than a passage is cut between sentences, or between words
/// when a single sentence is itself too long.
fn limit_size(block: String) -> Vec<String> {
    if word_count(&block) <= MAX_WORDS {
        return vec![block];
    }
    let mut pieces = Vec::new();
    let mut piece: Vec<&str> = Vec::new();
    for word in block.split_whitespace() {
        piece.push(word);
        let sentence_end = word.ends_with(['.', '?', '!']);
        if piece.len() >= MAX_WORDS || (sentence_end && piece.len() >= MAX_WORDS * 3 / 4) {
            pieces.push(piece.join(" "));
            piece.clear();
        }
    }
    if !piece.is_empty() {
        pieces.push(piece.join(" "));
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(n: usize, word: &str) -> String {
        vec![word; n].join(" ") + "."
    }

    #[test]
    fn each_sizeable_section_is_its_own_passage_with_its_heading() {
        let doc = format!(
            "# Title\n\n## Schedule\n\n{}\n\n## Schools\n\n{}\n",
            words(60, "monday"),
            words(60, "garfield")
        );
        let passages = split_markdown(&doc);
        assert_eq!(passages.len(), 2, "{passages:#?}");
        assert!(passages[0].starts_with("# Title\n\n## Schedule"));
        assert!(passages[1].starts_with("## Schools\n\ngarfield"));
    }

    #[test]
    fn small_sections_are_merged_and_no_passage_is_too_long() {
        let doc = format!(
            "## A\n\n{}\n\n## B\n\n{}\n\n{}\n\n{}\n\n## C\n\nCall us.\n",
            words(10, "small"),
            words(90, "alpha"),
            words(90, "beta"),
            words(90, "gamma")
        );
        let passages = split_markdown(&doc);
        for passage in &passages {
            assert!(word_count(passage) <= MAX_WORDS + MIN_WORDS, "{passage}");
        }
        assert!(passages[0].contains("small") && passages[0].contains("alpha"));
        assert!(passages.last().is_some_and(|p| p.ends_with("Call us.")));
        assert!(!passages.iter().any(|p| p.starts_with("## C")), "{passages:#?}");
    }

    #[test]
    fn a_giant_paragraph_is_cut_into_passage_sized_pieces() {
        let passages = split_markdown(&words(1000, "word"));
        assert!(passages.len() >= 5);
        assert!(passages.iter().all(|p| word_count(p) <= MAX_WORDS));
    }

    #[test]
    fn an_empty_document_has_no_passages() {
        assert!(split_markdown("").is_empty());
        assert!(split_markdown("\n\n  \n").is_empty());
    }

    #[test]
    fn the_demo_documents_split_into_passages_of_the_intended_size() {
        let kb = crate::repo_root().join("tools/demo-tenant/kb");
        let Ok(entries) = std::fs::read_dir(&kb) else {
            return;
        };
        for entry in entries.filter_map(Result::ok) {
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            let passages = split_markdown(&text);
            assert!(passages.len() >= 3, "{}", entry.path().display());
            for passage in passages {
                let n = word_count(&passage);
                assert!((MIN_WORDS..=MAX_WORDS + MIN_WORDS).contains(&n), "{n} words: {passage}");
            }
        }
    }
}
