//! `POST /knowledgebases/{knowledgeBaseId}/retrieve` (Bedrock Agent Runtime,
//! restJson1): BM25 over the knowledge base's passages, in the response shape
//! of a vector search.

use std::sync::Arc;

use axum::{
    Json,
    body::Bytes,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use domain::knowledge::title_from_uri;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    BedrockStandIn,
    documents::Passage,
    records::RetrievalRecord,
    text::Bm25,
    wire::{aws_error, validation_error},
};

/// Bedrock's own default and ceiling for `numberOfResults`.
const DEFAULT_RESULTS: usize = 5;
const MAX_RESULTS: usize = 100;
/// Maps an unbounded BM25 score into 0..1 like a similarity score, keeping the
/// order and without pinning the best result at exactly 1.
const SCORE_HALF_POINT: f64 = 8.0;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RetrieveRequest {
    retrieval_query: RetrievalQuery,
    #[serde(default)]
    retrieval_configuration: Option<RetrievalConfiguration>,
}

#[derive(Debug, Deserialize)]
struct RetrievalQuery {
    text: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RetrievalConfiguration {
    #[serde(default)]
    vector_search_configuration: Option<VectorSearchConfiguration>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct VectorSearchConfiguration {
    #[serde(default)]
    number_of_results: Option<usize>,
}

pub async fn retrieve(
    State(standin): State<Arc<BedrockStandIn>>,
    Path(knowledge_base_id): Path<String>,
    body: Bytes,
) -> Response {
    let request: RetrieveRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(err) => return validation_error(&format!("Invalid Retrieve request: {err}")),
    };
    let query = request.retrieval_query.text;
    let record = |status: StatusCode, results: usize| {
        standin.record_retrieval(RetrievalRecord {
            knowledge_base_id: knowledge_base_id.clone(),
            query: query.clone(),
            status: status.as_u16(),
            results,
        });
    };
    if !is_valid_knowledge_base_id(&knowledge_base_id) {
        record(StatusCode::BAD_REQUEST, 0);
        return validation_error("knowledgeBaseId must be 1 to 64 letters, digits, '-' or '_'.");
    }
    if query.trim().is_empty() {
        record(StatusCode::BAD_REQUEST, 0);
        return validation_error("retrievalQuery.text must not be empty.");
    }
    let delay = standin.faults().retrieve_delay_ms;
    if delay > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
    }
    if standin.faults().retrieve_fails {
        record(StatusCode::INTERNAL_SERVER_ERROR, 0);
        return aws_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalServerException",
            "The knowledge base could not be searched (injected fault).",
        );
    }
    let passages = match standin.documents.passages(&knowledge_base_id).await {
        Ok(passages) => passages,
        Err(err) => {
            tracing::error!(error = %err, source = ?std::error::Error::source(&err), "stand-in could not read knowledge-base documents");
            record(StatusCode::INTERNAL_SERVER_ERROR, 0);
            return aws_error(StatusCode::INTERNAL_SERVER_ERROR, "InternalServerException", &err.to_string());
        }
    };
    if passages.is_empty() {
        record(StatusCode::NOT_FOUND, 0);
        return aws_error(
            StatusCode::NOT_FOUND,
            "ResourceNotFoundException",
            &format!("Knowledge base {knowledge_base_id} does not exist or has no documents."),
        );
    }
    let wanted = request
        .retrieval_configuration
        .and_then(|c| c.vector_search_configuration)
        .and_then(|v| v.number_of_results)
        .unwrap_or(DEFAULT_RESULTS)
        .clamp(1, MAX_RESULTS);
    let results = ranked_results(&passages, &query, wanted);
    record(StatusCode::OK, results.len());
    (StatusCode::OK, Json(json!({ "retrievalResults": results }))).into_response()
}

/// The `wanted` best passages as Retrieve results. Passages sharing no term
/// with the query are left out, so an off-topic question gets no context.
/// Each passage is searched together with its document's title, as a search
/// engine boosts the title field: a passage of "Reading Buddies" is about
/// Reading Buddies even where its own words do not repeat the name.
fn ranked_results(passages: &[Passage], query: &str, wanted: usize) -> Vec<Value> {
    let texts: Vec<String> =
        passages.iter().map(|p| format!("{}\n{}", title_from_uri(&p.uri), p.text)).collect();
    Bm25::new(&texts)
        .rank(query)
        .into_iter()
        .take(wanted)
        .map(|(index, score)| {
            let passage = &passages[index];
            json!({
                "content": { "type": "TEXT", "text": passage.text },
                "location": { "type": "S3", "s3Location": { "uri": passage.uri } },
                "score": score / (score + SCORE_HALF_POINT),
                "metadata": { "x-amz-bedrock-kb-source-uri": passage.uri },
            })
        })
        .collect()
}

/// Ids become part of an S3 prefix, so nothing that could walk out of it.
fn is_valid_knowledge_base_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn passage(file: &str, text: &str) -> Passage {
        Passage { uri: format!("s3://bucket/knowledge-base/KB1/{file}.md"), text: text.to_owned() }
    }

    #[test]
    fn results_are_ranked_scored_in_0_1_and_carry_their_s3_uri() {
        let passages = [
            passage("donate", "Give monthly to fund books."),
            passage("reading-buddies", "Reading Buddies tutors read with students weekly."),
            passage("faq", "Reading Buddies need a background check."),
        ];
        let results = ranked_results(&passages, "What do Reading Buddies tutors do?", 5);
        assert_eq!(results.len(), 2);
        assert_eq!(
            results[0].pointer("/location/s3Location/uri"),
            Some(&json!("s3://bucket/knowledge-base/KB1/reading-buddies.md"))
        );
        let scores: Vec<f64> = results.iter().filter_map(|r| r["score"].as_f64()).collect();
        assert!(scores[0] > scores[1] && scores[0] < 1.0 && scores[1] > 0.0, "{scores:?}");
    }

    #[test]
    fn no_more_results_than_asked_for() {
        let passages: Vec<Passage> = (0..10).map(|i| passage(&i.to_string(), "volunteer")).collect();
        assert_eq!(ranked_results(&passages, "volunteer", 3).len(), 3);
    }

    #[test]
    fn knowledge_base_ids_cannot_leave_their_prefix() {
        assert!(is_valid_knowledge_base_id("RIVKB00001"));
        assert!(!is_valid_knowledge_base_id("../tenants"));
        assert!(!is_valid_knowledge_base_id(""));
    }
}
