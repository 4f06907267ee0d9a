//! Words and BM25: the one ranking shared by Retrieve (over passages) and the
//! extractive answer (over sentences), so both agree on what "relevant" means.

use std::collections::{HashMap, HashSet};

/// Function words and question words: they match every passage and would
/// drown the words that say what the visitor is asking about.
const STOPWORDS: &[&str] = &[
    "a", "about", "after", "all", "also", "am", "an", "and", "any", "are", "as", "at", "be", "been", "but",
    "by", "can", "could", "did", "do", "does", "for", "from", "get", "had", "has", "have", "how", "i", "if",
    "in", "into", "is", "it", "its", "just", "me", "my", "no", "not", "of", "on", "or", "our", "please",
    "should", "so", "some", "tell", "than", "that", "the", "their", "them", "then", "there", "these", "they",
    "this", "those", "to", "us", "was", "we", "were", "what", "when", "where", "which", "who", "why", "will",
    "with", "would", "you", "your",
];

const K1: f64 = 1.2;
const B: f64 = 0.75;

/// The search terms of `text`: lower-cased words, minus stopwords, lightly stemmed.
pub fn terms(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|word| !word.is_empty())
        .map(str::to_lowercase)
        // A lone letter is what apostrophes leave behind ("don't" → "don", "t").
        .filter(|word| word.chars().count() > 1 || word.chars().all(|c| c.is_ascii_digit()))
        .filter(|word| !STOPWORDS.contains(&word.as_str()))
        .map(|word| stem(&word))
        .collect()
}

/// Crude suffix stripping so "buddies"/"buddy" and "volunteering"/"volunteers"
/// meet. Queries and documents go through the same function, so it only has to
/// be consistent, not linguistically right.
fn stem(word: &str) -> String {
    if word.chars().any(|c| c.is_ascii_digit()) {
        return word.to_owned();
    }
    let long_enough = |stem: &str, min: usize| stem.chars().count() >= min;
    if let Some(stem) = word.strip_suffix("ies")
        && long_enough(stem, 2)
    {
        return format!("{stem}y");
    }
    for suffix in ["ing", "ed"] {
        if let Some(stem) = word.strip_suffix(suffix)
            && long_enough(stem, 4)
        {
            return stem.to_owned();
        }
    }
    if let Some(stem) = word.strip_suffix('s')
        && !["s", "u", "i"].iter().any(|end| stem.ends_with(end))
        && long_enough(stem, 3)
    {
        return stem.to_owned();
    }
    word.to_owned()
}

/// Okapi BM25 over a fixed set of documents.
pub struct Bm25 {
    term_counts: Vec<HashMap<String, u32>>,
    lengths: Vec<usize>,
    average_length: f64,
    document_frequency: HashMap<String, usize>,
}

impl Bm25 {
    pub fn new<S: AsRef<str>>(documents: &[S]) -> Self {
        let mut term_counts = Vec::with_capacity(documents.len());
        let mut lengths = Vec::with_capacity(documents.len());
        let mut document_frequency: HashMap<String, usize> = HashMap::new();
        for document in documents {
            let words = terms(document.as_ref());
            let mut counts: HashMap<String, u32> = HashMap::new();
            for word in &words {
                *counts.entry(word.clone()).or_default() += 1;
            }
            for word in counts.keys() {
                *document_frequency.entry(word.clone()).or_default() += 1;
            }
            lengths.push(words.len());
            term_counts.push(counts);
        }
        let total: usize = lengths.iter().sum();
        let average_length = if lengths.is_empty() { 0.0 } else { total as f64 / lengths.len() as f64 };
        Self { term_counts, lengths, average_length, document_frequency }
    }

    /// Documents that share at least one term with `query`, best first; ties
    /// keep document order so results are deterministic.
    pub fn rank(&self, query: &str) -> Vec<(usize, f64)> {
        let query_terms: HashSet<String> = terms(query).into_iter().collect();
        let mut ranked: Vec<(usize, f64)> = (0..self.term_counts.len())
            .map(|index| (index, self.score(index, &query_terms)))
            .filter(|(_, score)| *score > 0.0)
            .collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        ranked
    }

    fn score(&self, index: usize, query_terms: &HashSet<String>) -> f64 {
        let documents = self.term_counts.len() as f64;
        let length = self.lengths[index] as f64;
        let norm = if self.average_length > 0.0 { 1.0 - B + B * length / self.average_length } else { 1.0 };
        query_terms
            .iter()
            .filter_map(|term| {
                let frequency = f64::from(*self.term_counts[index].get(term)?);
                let df = self.document_frequency.get(term).copied().unwrap_or(0) as f64;
                let idf = (1.0 + (documents - df + 0.5) / (df + 0.5)).ln();
                Some(idf * frequency * (K1 + 1.0) / (frequency + K1 * norm))
            })
            .sum()
    }
}

/// Words as a reader counts them (for passage sizes and token estimates).
pub fn word_count(text: &str) -> usize {
    text.split_whitespace().count()
}

/// Roughly four tokens per three English words, as Claude's tokenizer gives.
pub fn estimated_tokens(text: &str) -> u32 {
    let words = u32::try_from(word_count(text)).unwrap_or(u32::MAX);
    words.saturating_mul(4).div_ceil(3)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stopwords_and_punctuation_are_not_search_terms() {
        assert_eq!(terms("What are the Reading Buddies' hours?"), ["read", "buddy", "hour"]);
    }

    #[test]
    fn plural_and_singular_forms_meet() {
        assert_eq!(terms("buddies volunteers schools"), terms("buddy volunteer school"));
        assert_eq!(terms("volunteering"), terms("volunteer"));
    }

    #[test]
    fn bm25_ranks_the_document_about_the_query_first() {
        let documents = [
            "Bridge Mentors meet a teen four hours a month.",
            "Reading Buddies read with students in kindergarten through third grade.",
            "Donations fund books for every reading buddy and every school.",
        ];
        let ranked = Bm25::new(&documents).rank("How do reading buddies work with students?");
        assert_eq!(ranked.first().map(|(index, _)| *index), Some(1));
        assert!(ranked.iter().all(|(index, _)| *index != 0), "{ranked:?}");
    }

    #[test]
    fn rare_terms_outweigh_common_ones() {
        let documents =
            ["volunteer volunteer orientation", "volunteer background check", "volunteer schedule"];
        let ranked = Bm25::new(&documents).rank("volunteer background");
        assert_eq!(ranked[0].0, 1);
    }

    #[test]
    fn a_query_of_only_stopwords_matches_nothing() {
        assert!(Bm25::new(&["the cat sat"]).rank("what is the").is_empty());
        assert!(Bm25::new::<&str>(&[]).rank("anything").is_empty());
    }

    #[test]
    fn token_estimates_grow_with_words() {
        assert_eq!(estimated_tokens(""), 0);
        assert_eq!(estimated_tokens("one two three"), 4);
    }
}
