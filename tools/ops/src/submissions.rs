//! `submissions`: a tenant's submissions, newest first, from the table's
//! `tenant-time-index` (a Query, page by page; never a Scan), as a table for
//! the terminal, CSV for a spreadsheet (one column per form field label), or
//! JSON. What it prints is personal data: it goes to stdout only, never to a log.

use aws_adapters::dynamodb::{TENANT_TIME_INDEX, read_item};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_smithy_types::DateTime;
use domain::fulfillment::{StoredSubmission, SubmissionStatus};
use serde_json::{Value, json};

use crate::{AwsError, call_failed};

/// Which submissions: one tenant's, optionally in `[since, until)` and of one status.
#[derive(Debug, Clone, PartialEq)]
pub struct Listing {
    pub tenant_id: String,
    pub since: Option<DateTime>,
    pub until: Option<DateTime>,
    pub status: Option<SubmissionStatus>,
    /// Items read per Query page.
    pub page_size: i32,
}

/// Every submission the listing names, newest first, read a page at a time.
pub async fn list(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    listing: &Listing,
) -> Result<Vec<StoredSubmission>, AwsError> {
    // `submitted_at` is stored as RFC 3339 with milliseconds and `Z`, so the
    // bounds are written the same way and compare as strings.
    let since = listing.since.map_or_else(|| "0000".to_owned(), |t| stamp(t.to_millis().unwrap_or(0)));
    let until = listing
        .until
        .map_or_else(|| "9999".to_owned(), |t| stamp(t.to_millis().unwrap_or(i64::MAX).saturating_sub(1)));
    let mut query = dynamodb
        .query()
        .table_name(table)
        .index_name(TENANT_TIME_INDEX)
        .key_condition_expression("tenant_id = :tenant AND submitted_at BETWEEN :since AND :until")
        .expression_attribute_values(":tenant", AttributeValue::S(listing.tenant_id.clone()))
        .expression_attribute_values(":since", AttributeValue::S(since))
        .expression_attribute_values(":until", AttributeValue::S(until))
        .scan_index_forward(false)
        .limit(listing.page_size);
    if let Some(status) = listing.status {
        query = query
            .filter_expression("#status = :status")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":status", AttributeValue::S(status.as_str().to_owned()));
    }
    let mut pages = query.into_paginator().send();
    let mut found = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(call_failed("Query", table))?;
        found.extend(page.items().iter().map(read_item));
    }
    Ok(found)
}

fn stamp(epoch_millis: i64) -> String {
    domain::time::rfc3339_at(u128::try_from(epoch_millis).unwrap_or(0))
}

/// Each value under its label: as stored for staff, or, for a submission
/// stored before labels were kept, under its field key.
fn labelled(submission: &StoredSubmission) -> Vec<(String, String)> {
    if submission.staff.display.is_empty() {
        submission.form_data.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    } else {
        submission.staff.display.clone()
    }
}

fn status(submission: &StoredSubmission) -> &'static str {
    submission.status.map_or("", |status| status.as_str())
}

/// The listing as JSON: one object per submission with its values by label.
pub fn to_json(tenant_id: &str, submissions: &[StoredSubmission]) -> Value {
    let rows: Vec<Value> = submissions
        .iter()
        .map(|s| {
            let values: serde_json::Map<String, Value> =
                labelled(s).into_iter().map(|(label, value)| (label, Value::String(value))).collect();
            json!({
                "submission_id": s.submission_id,
                "submitted_at": s.submitted_at,
                "form_id": s.form_id,
                "form_title": s.staff.form_title,
                "status": status(s),
                "pipeline_status": s.pipeline_status,
                "session_id": s.staff.session_id,
                "conversation_id": s.staff.conversation_id,
                "contact": s.contact.to_map(),
                "values": values,
                "expires_at": (s.staff.expires_at > 0).then_some(s.staff.expires_at),
            })
        })
        .collect();
    json!({"tenant_id": tenant_id, "count": rows.len(), "submissions": rows})
}

/// Columns every row has, before the form's own.
const CSV_COLUMNS: [&str; 7] =
    ["submission_id", "submitted_at", "form_id", "form_title", "status", "pipeline_status", "session_id"];

/// The listing as CSV (RFC 4180): the fixed columns, then one column per
/// field label in the order labels first appear. A cell that a spreadsheet
/// would run as a formula (`=`, `+`, `-`, `@`, tab, carriage return first) is
/// written with a leading `'`, so an applicant's answer is never executed.
pub fn to_csv(submissions: &[StoredSubmission]) -> Result<String, csv::Error> {
    let mut labels: Vec<String> = Vec::new();
    let rows: Vec<Vec<(String, String)>> = submissions.iter().map(labelled).collect();
    for (label, _) in rows.iter().flatten() {
        if !labels.contains(label) && !CSV_COLUMNS.contains(&label.as_str()) {
            labels.push(label.clone());
        }
    }
    let mut out = csv::Writer::from_writer(Vec::new());
    out.write_record(CSV_COLUMNS.iter().copied().chain(labels.iter().map(String::as_str)).map(inert))?;
    for (submission, values) in submissions.iter().zip(&rows) {
        let fixed = [
            submission.submission_id.as_str(),
            submission.submitted_at.as_str(),
            submission.form_id.as_str(),
            submission.staff.form_title.as_str(),
            status(submission),
            submission.pipeline_status.as_deref().unwrap_or_default(),
            submission.staff.session_id.as_deref().unwrap_or_default(),
        ];
        let by_label = labels.iter().map(|label| {
            values.iter().find(|(l, _)| l == label).map(|(_, v)| v.as_str()).unwrap_or_default()
        });
        out.write_record(fixed.into_iter().chain(by_label).map(inert))?;
    }
    let bytes = out.into_inner().map_err(|err| err.into_error())?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// A cell a spreadsheet shows as text.
fn inert(cell: &str) -> String {
    match cell.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{cell}"),
        _ => cell.to_owned(),
    }
}

/// The listing as an aligned table for a terminal: when, form, status,
/// workflow state, the applicant's name and email, the id.
pub fn to_table(submissions: &[StoredSubmission]) -> String {
    let header = ["submitted_at", "form", "status", "pipeline", "name", "email", "submission_id"];
    let rows: Vec<[String; 7]> = submissions
        .iter()
        .map(|s| {
            let contact = s.contact.to_map();
            let field = |key: &str| contact.get(key).cloned().unwrap_or_default();
            let name = format!("{} {}", field("first_name"), field("last_name")).trim().to_owned();
            let form =
                if s.staff.form_title.is_empty() { s.form_id.clone() } else { s.staff.form_title.clone() };
            [
                s.submitted_at.clone(),
                form,
                status(s).to_owned(),
                s.pipeline_status.clone().unwrap_or_default(),
                name,
                field("email"),
                s.submission_id.clone(),
            ]
            .map(|cell| cell.chars().filter(|c| !c.is_control()).collect())
        })
        .collect();
    let widths: Vec<usize> = (0..header.len())
        .map(|i| rows.iter().map(|r| r[i].chars().count()).chain([header[i].len()]).max().unwrap_or(0))
        .collect();
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> =
            cells.iter().zip(&widths).map(|(cell, width)| format!("{cell:<width$}")).collect();
        padded.join("  ").trim_end().to_owned()
    };
    let mut out = vec![line(header.to_vec())];
    out.extend(rows.iter().map(|row| line(row.iter().map(String::as_str).collect())));
    out.push(format!("submissions: {}", rows.len()));
    out.join("\n")
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn submission(id: &str, display: &[(&str, &str)]) -> StoredSubmission {
        StoredSubmission {
            submission_id: id.into(),
            tenant_id: "T1".into(),
            form_id: "volunteer".into(),
            priority: Default::default(),
            submitted_at: "2026-12-01T10:00:00.000Z".into(),
            status: Some(SubmissionStatus::Fulfilled),
            form_data: BTreeMap::from([("email".into(), "old@example.org".into())]),
            contact: Default::default(),
            channels: Vec::new(),
            fulfillment: BTreeMap::new(),
            staff: domain::submissions::StaffView {
                form_title: "Volunteer".into(),
                display: display.iter().map(|(l, v)| (l.to_string(), v.to_string())).collect(),
                ..Default::default()
            },
            pipeline_status: Some("new".into()),
        }
    }

    #[test]
    fn the_csv_has_one_column_per_label_in_first_seen_order_and_quotes_what_needs_it() {
        let csv = to_csv(&[
            submission("a", &[("Name", "Ana, Jr."), ("Email", "ana@example.org")]),
            submission("b", &[("Email", "bo@example.org"), ("Why?", "line one\nline \"two\"")]),
        ])
        .unwrap();
        let mut lines = csv.lines();
        assert_eq!(
            lines.next().unwrap(),
            "submission_id,submitted_at,form_id,form_title,status,pipeline_status,session_id,Name,Email,Why?"
        );
        assert_eq!(
            lines.next().unwrap(),
            "a,2026-12-01T10:00:00.000Z,volunteer,Volunteer,fulfilled,new,,\"Ana, Jr.\",ana@example.org,"
        );
        assert!(csv.contains("b,2026-12-01T10:00:00.000Z,volunteer,Volunteer,fulfilled,new,,,bo@example.org,\"line one\nline \"\"two\"\"\""), "{csv}");
    }

    #[test]
    fn a_cell_a_spreadsheet_would_run_as_a_formula_is_written_as_text() {
        let csv = to_csv(&[submission("a", &[("Name", "=HYPERLINK(\"http://x\")"), ("Note", "@SUM(A1)")])])
            .unwrap();
        assert!(csv.contains(",\"'=HYPERLINK(\"\"http://x\"\")\",'@SUM(A1)"), "{csv}");
    }

    #[test]
    fn a_submission_stored_before_labels_were_kept_lists_its_values_by_field_key() {
        let old = submission("old", &[]);
        let json = to_json("T1", std::slice::from_ref(&old));
        assert_eq!(json["submissions"][0]["values"], json!({"email": "old@example.org"}));
        assert!(to_csv(&[old]).unwrap().lines().next().unwrap().ends_with(",email"));
    }

    #[test]
    fn the_table_aligns_columns_and_strips_control_characters() {
        let mut s = submission("a", &[]);
        s.staff.form_title = "Vol\u{1b}[31munteer".into();
        let table = to_table(&[s]);
        assert!(!table.contains('\u{1b}'), "{table}");
        assert!(table.lines().next().unwrap().starts_with("submitted_at"));
        assert!(table.ends_with("submissions: 1"));
    }
}
