//! `funnel`: a tenant's funnel over the last days, from the funnel
//! projector's counts (`FunnelTable`): per day and in total, conversations
//! (sessions with an answer), messages, CTA clicks, forms started and
//! completed, and the median first-token time.

use std::collections::BTreeMap;

use aws_adapters::dynamodb::DynamoFunnel;
use domain::funnel::{FunnelDay, p50_ms};
use serde::Serialize;

use crate::AwsError;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FunnelReport {
    pub tenant_id: String,
    pub from: String,
    pub to: String,
    pub totals: FunnelDay,
    /// Every day of the window, oldest first (a day with nothing counted is zeros).
    pub days: Vec<FunnelDay>,
}

/// The window's days, `to` and the `days - 1` before it, each `YYYY-MM-DD`.
pub fn window(to_epoch_secs: u64, days: u32) -> Vec<String> {
    (0..u64::from(days.max(1)))
        .rev()
        .map(|back| {
            domain::time::rfc3339_at(u128::from(to_epoch_secs - back * 86_400) * 1000)[..10].to_owned()
        })
        .collect()
}

pub async fn report(
    funnel: &DynamoFunnel,
    tenant_id: &str,
    days: &[String],
) -> Result<FunnelReport, AwsError> {
    let (from, to) = (days.first().cloned().unwrap_or_default(), days.last().cloned().unwrap_or_default());
    let counted = funnel.days(tenant_id, &from, &to).await.map_err(|source| AwsError::Call {
        operation: "Query",
        resource: tenant_id.to_owned(),
        source: Box::new(source),
    })?;
    let by_day: BTreeMap<&str, &FunnelDay> = counted.iter().map(|d| (d.day.as_str(), d)).collect();
    let days: Vec<FunnelDay> = days
        .iter()
        .map(|day| {
            by_day
                .get(day.as_str())
                .map_or_else(|| FunnelDay { day: day.clone(), ..FunnelDay::default() }, |d| (*d).clone())
        })
        .collect();
    let mut totals = FunnelDay { day: format!("{from}..{to}"), ..FunnelDay::default() };
    for day in &days {
        totals.conversations += day.conversations;
        totals.messages += day.messages;
        totals.cta_clicks += day.cta_clicks;
        totals.forms_started += day.forms_started;
        totals.forms_completed += day.forms_completed;
        for (bucket, count) in &day.first_token_histogram {
            *totals.first_token_histogram.entry(*bucket).or_insert(0) += count;
        }
    }
    totals.first_token_p50_ms = p50_ms(&totals.first_token_histogram);
    Ok(FunnelReport { tenant_id: tenant_id.to_owned(), from, to, totals, days })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_ends_today_and_counts_back() {
        // 2026-12-06T12:00:00Z
        let days = window(1_796_558_400, 3);
        assert_eq!(days, ["2026-12-04", "2026-12-05", "2026-12-06"]);
        assert_eq!(window(1_796_558_400, 0), ["2026-12-06"], "at least today");
    }
}
