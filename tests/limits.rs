//! Abuse limits on the public endpoints, end to end through the local stack:
//! origins, rate limits per visitor (source IP) and per tenant, the day's
//! model token budget and the email caps, all counted atomically in the
//! template's rate-limits table and enforced before any side effect.

use std::{net::IpAddr, sync::Arc, time::Duration};

use aws_sdk_dynamodb::types::AttributeValue;
use e2e::{
    ChatReply, LocalStack, away_from_the_minute_edge, demo_config, get_from, post_from, put_tenant,
    rate_limit_counters, read_reply, spawn_fulfilling_stack, spawn_stack, submissions,
};
use serde_json::{Value, json};

const READING: &str = "reading_buddy_application";
const SITE: &str = "https://www.riverbendliteracy.org";
const STRANGER: &str = "https://copycat.example";

/// A tenant like the demo tenant, with these `rate_limits` (the rest default).
async fn tenant_with_limits(stack: &LocalStack, hash: &str, tenant_id: &str, limits: Value) {
    let mut config = demo_config();
    config["rate_limits"] = limits;
    put_tenant(stack, hash, tenant_id, &config).await;
}

fn chat(hash: &str) -> String {
    json!({"tenant_hash": hash, "user_input": "How do I become a reading buddy?", "session_id": "s1"})
        .to_string()
}

fn submit(hash: &str, email: &str) -> String {
    json!({"tenant_hash": hash, "form_mode": true, "action": "submit_form", "form_id": READING, "form_data": {
        "age_18_plus": "yes", "first_name": "Ana", "last_name": "Lopez", "email": email,
        "phone": "+1 (503) 555-0199", "zip_code": "97412", "availability": "Weekday afternoons",
        "why_reading_buddies": "I loved reading with my grandmother and want to pass that on to kids."
    }})
    .to_string()
}

fn validate(hash: &str) -> String {
    json!({"tenant_hash": hash, "form_mode": true, "action": "validate_field", "form_id": READING,
           "field_id": "email", "field_value": "ana@example.org"})
    .to_string()
}

/// The error frame of a refusal: its code, after checking it is the whole answer.
fn refusal_code(reply: &ChatReply) -> String {
    assert_eq!(reply.types(), ["error", "[DONE]"], "{:?}", reply.blocks);
    reply.frames_of("error")[0]["code"].as_str().unwrap_or_default().to_owned()
}

fn retry_after(reply: &ChatReply) -> u64 {
    reply.headers.get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// POSTs from a given local address (127.0.0.x: another visitor to the host).
async fn post_as(stack: &LocalStack, visitor: &str, path: &str, body: String) -> ChatReply {
    let client = reqwest::Client::builder().local_address(visitor.parse::<IpAddr>().ok()).build().unwrap();
    let response = client
        .post(format!("{}{path}", stack.host_url()))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST {path} from {visitor}: {e}"));
    read_reply(response).await
}

fn metric_lines(stack: &LocalStack, metric: &str, limit: &str) -> Vec<Value> {
    let lines = stack.qa_lines.lock().unwrap().clone();
    lines
        .iter()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line.get(metric).is_some() && line["Limit"] == limit)
        .collect()
}

#[tokio::test]
async fn a_chat_from_an_origin_the_tenant_does_not_allow_is_refused_before_the_model_is_asked() {
    let stack = spawn_stack().await;
    let hash = e2e::demo::DEMO_TENANT_HASH;

    let refused = post_from(&stack, "/chat", chat(hash), Some(STRANGER)).await;
    assert_eq!(refused.status, 403);
    assert_eq!(refusal_code(&refused), "origin_not_allowed");
    assert_eq!(
        refused.headers["access-control-allow-origin"], STRANGER,
        "the stranger may read the refusal's sentence, which says nothing more"
    );
    let null = post_from(&stack, "/chat", chat(hash), Some("null")).await;
    assert_eq!((null.status, refusal_code(&null).as_str()), (403, "origin_not_allowed"));
    assert!(stack.bedrock.streams().is_empty(), "the model was never called");

    let allowed = post_from(&stack, "/chat", chat(hash), Some(SITE)).await;
    assert_eq!(allowed.status, 200);
    assert_eq!(allowed.headers["access-control-allow-origin"], SITE, "only the allowed origin is echoed");
    assert!(!allowed.text().is_empty());
    let server_to_server = post_from(&stack, "/chat", chat(hash), None).await;
    assert_eq!(server_to_server.status, 200, "no Origin: allowed by default (allow_no_origin)");
    stack.stop().await;
}

#[tokio::test]
async fn forms_config_and_analytics_refuse_an_origin_the_tenant_does_not_allow_and_store_nothing() {
    let stack = spawn_stack().await;
    let hash = e2e::demo::DEMO_TENANT_HASH;

    let submitted = post_from(&stack, "/forms", submit(hash, "ana@example.org"), Some(STRANGER)).await;
    assert_eq!((submitted.status, refusal_code(&submitted).as_str()), (403, "origin_not_allowed"));
    let form_mode = post_from(&stack, "/chat", submit(hash, "ana@example.org"), Some(STRANGER)).await;
    assert_eq!((form_mode.status, refusal_code(&form_mode).as_str()), (403, "origin_not_allowed"));
    assert!(submissions(&stack).await.is_empty(), "nothing stored");

    let config = reqwest::Client::new()
        .get(format!("{}/forms?action=get_config&t={hash}", stack.host_url()))
        .header("origin", STRANGER)
        .send()
        .await
        .unwrap();
    assert_eq!(config.status(), 403);
    assert_eq!(config.json::<Value>().await.unwrap()["code"], "origin_not_allowed");
    let analytics = json!({"action": "analytics", "batch": true, "tenant_hash": hash,
                           "events": [{"type": "WIDGET_OPENED"}]});
    let refused = e2e::post_json(&stack, "/chat?action=analytics", analytics.to_string()).await;
    assert_eq!(refused.status(), 200, "no Origin: accepted");
    let refused = reqwest::Client::new()
        .post(format!("{}/chat?action=analytics", stack.host_url()))
        .header("origin", STRANGER)
        .body(analytics.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);

    let allowed = post_from(&stack, "/forms", submit(hash, "ana@example.org"), Some(SITE)).await;
    assert_eq!(allowed.status, 200);
    assert_eq!(allowed.headers["access-control-allow-origin"], SITE);
    let config = get_from(&stack, &format!("/forms?action=get_config&t={hash}"), None).await;
    assert!(config.headers().get("access-control-allow-origin").is_none(), "no Origin, no CORS header");
    stack.stop().await;
}

#[tokio::test]
async fn a_tenant_that_refuses_requests_without_origin_answers_them_403() {
    let stack = spawn_stack().await;
    tenant_with_limits(&stack, "str1ct0r1g1n", "STRICT0001", json!({"allow_no_origin": false})).await;
    let refused = post_from(&stack, "/chat", chat("str1ct0r1g1n"), None).await;
    assert_eq!((refused.status, refusal_code(&refused).as_str()), (403, "origin_not_allowed"));
    let from_site = post_from(&stack, "/chat", chat("str1ct0r1g1n"), Some(SITE)).await;
    assert_eq!(from_site.status, 200);
    stack.stop().await;
}

#[tokio::test]
async fn a_concurrent_burst_of_chats_from_one_visitor_gets_exactly_its_limit_answered() {
    let stack = spawn_stack().await;
    tenant_with_limits(&stack, "burstch4t000", "BURST00001", json!({"chats_per_ip_per_minute": 3})).await;
    away_from_the_minute_edge(Duration::from_secs(20)).await;
    let stack = Arc::new(stack);
    let burst = (0..12).map(|_| {
        let stack = Arc::clone(&stack);
        tokio::spawn(async move { post_from(&stack, "/chat", chat("burstch4t000"), None).await })
    });
    let mut replies = Vec::new();
    for reply in burst {
        replies.push(reply.await.unwrap());
    }
    let answered = replies.iter().filter(|r| r.status == 200).count();
    let limited: Vec<&ChatReply> = replies.iter().filter(|r| r.status == 429).collect();
    assert_eq!((answered, limited.len()), (3, 9), "never more than the limit");
    for reply in &limited {
        assert_eq!(refusal_code(reply), "rate_limited");
        assert!((1..=60).contains(&retry_after(reply)), "Retry-After: seconds to the next minute");
    }
    assert_eq!(stack.bedrock.streams().len(), 3, "the model answered only the admitted chats");
    assert_eq!(
        metric_lines(&stack, "LimitRefused", "chats_per_ip_per_minute").len(),
        9,
        "each refusal is a metric"
    );

    let other_visitor = post_as(&stack, "127.0.0.2", "/chat", chat("burstch4t000")).await;
    assert_eq!(other_visitor.status, 200, "the limit is per visitor: another IP is still answered");
    stop(stack).await;
}

async fn stop(stack: Arc<LocalStack>) {
    if let Ok(stack) = Arc::try_unwrap(stack) {
        stack.stop().await;
    }
}

#[tokio::test]
async fn a_concurrent_burst_of_submits_fulfils_exactly_the_limit_and_keeps_the_rest_held() {
    let stack = spawn_stack().await;
    tenant_with_limits(&stack, "burstf0rm000", "BURST00002", json!({"submits_per_ip_per_minute": 2})).await;
    away_from_the_minute_edge(Duration::from_secs(20)).await;
    let stack = Arc::new(stack);
    let burst = (0..10).map(|n| {
        let stack = Arc::clone(&stack);
        tokio::spawn(async move {
            post_from(&stack, "/forms", submit("burstf0rm000", &format!("ana{n}@example.org")), None).await
        })
    });
    let mut replies = Vec::new();
    for reply in burst {
        replies.push(reply.await.unwrap());
    }
    // The widget shows success whatever the answer: a valid submit over the limit is kept, not lost.
    let frames: Vec<Value> = replies.iter().map(|r| r.frames_of("form_complete")[0].clone()).collect();
    let held: Vec<&Value> = frames.iter().filter(|f| f["held"] == json!(true)).collect();
    assert_eq!(held.len(), 8, "{frames:?}");
    assert!(held.iter().all(|f| f["fulfillment"] == json!([])), "{held:?}");
    let stored = submissions(&stack).await;
    assert_eq!(stored.len(), 10, "every valid submit is stored");
    let status = |item: &std::collections::HashMap<String, AttributeValue>| {
        item.get("status").and_then(|s| s.as_s().ok()).cloned().unwrap_or_default()
    };
    assert_eq!(stored.iter().filter(|item| status(item) == "held").count(), 8);
    assert_eq!(e2e::drain_queue(&stack, "EmailQueue").await.len(), 2, "only the admitted ones are fulfilled");
    stop(stack).await;
}

#[tokio::test]
async fn the_tenant_wide_limit_holds_across_visitors_and_a_limit_of_zero_refuses_everything() {
    let stack = spawn_stack().await;
    tenant_with_limits(&stack, "t3nantw1de00", "WIDE000001", json!({"submits_per_minute": 1})).await;
    away_from_the_minute_edge(Duration::from_secs(10)).await;
    let first = post_as(&stack, "127.0.0.1", "/forms", submit("t3nantw1de00", "a@example.org")).await;
    assert_eq!(first.status, 200);
    let second = post_as(&stack, "127.0.0.3", "/forms", submit("t3nantw1de00", "b@example.org")).await;
    assert_eq!(second.frames_of("form_complete")[0]["held"], true, "stored, held back by the tenant's limit");

    tenant_with_limits(&stack, "n0ch4ts00000", "ZERO000001", json!({"chats_per_minute": 0})).await;
    let refused = post_from(&stack, "/chat", chat("n0ch4ts00000"), None).await;
    assert_eq!((refused.status, refusal_code(&refused).as_str()), (429, "rate_limited"));
    assert!(retry_after(&refused) >= 1);
    stack.stop().await;
}

#[tokio::test]
async fn field_validation_is_not_held_to_the_submit_limit_only_to_its_own_generous_bound() {
    let stack = spawn_stack().await;
    tenant_with_limits(&stack, "val1date0000", "VALID00001", json!({"submits_per_ip_per_minute": 1})).await;
    tenant_with_limits(&stack, "val1date0001", "VALID00002", json!({"validations_per_ip_per_minute": 2}))
        .await;
    away_from_the_minute_edge(Duration::from_secs(15)).await;
    for _ in 0..10 {
        let reply = post_from(&stack, "/forms", validate("val1date0000"), None).await;
        assert_eq!(reply.frames_of("validation_success").len(), 1, "{:?}", reply.blocks);
    }
    for _ in 0..2 {
        assert_eq!(post_from(&stack, "/forms", validate("val1date0001"), None).await.status, 200);
    }
    let third = post_from(&stack, "/forms", validate("val1date0001"), None).await;
    assert_eq!((third.status, refusal_code(&third).as_str()), (429, "rate_limited"));
    stack.stop().await;
}

#[tokio::test]
async fn once_the_days_token_budget_is_spent_chat_answers_budget_exhausted() {
    let stack = spawn_stack().await;
    tenant_with_limits(&stack, "budg3t000000", "BUDGET0001", json!({"tokens_per_day": 100})).await;

    let first = post_from(&stack, "/chat", chat("budg3t000000"), None).await;
    assert_eq!(first.status, 200, "an unspent budget answers");
    let spent: u64 = first
        .blocks
        .iter()
        .find_map(|b| b.raw.strip_prefix(": x-total-tokens="))
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(spent > 100, "the stand-in reports realistic usage: {spent} tokens");

    let second = post_from(&stack, "/chat", chat("budg3t000000"), None).await;
    assert_eq!((second.status, refusal_code(&second).as_str()), (429, "budget_exhausted"));
    assert!(retry_after(&second) <= 86_400 && retry_after(&second) >= 1, "until midnight UTC");
    assert_eq!(stack.bedrock.streams().len(), 1, "the refused chat never reached the model");
    assert_eq!(metric_lines(&stack, "LimitRefused", "tokens_per_day").len(), 1, "the alarm's metric");

    let counter = rate_limit_counters(&stack)
        .await
        .into_iter()
        .find(|item| item["counter_id"].as_s().is_ok_and(|k| k.starts_with("BUDGET0001#tokens#")))
        .expect("the day's token counter");
    assert_eq!(counter["count"].as_n().unwrap(), &spent.to_string(), "counted from the stream's real usage");
    stack.stop().await;
}

#[tokio::test]
async fn counters_are_keyed_by_a_keyed_hash_of_the_ip_and_expire_after_their_window() {
    let stack = spawn_stack().await;
    let hash = e2e::demo::DEMO_TENANT_HASH;
    assert_eq!(post_from(&stack, "/chat", chat(hash), Some(SITE)).await.status, 200);
    assert_eq!(
        post_from(&stack, "/forms", submit(hash, "Ana.Lopez@Example.org"), Some(SITE)).await.status,
        200
    );

    let ttl = aws_sdk_dynamodb::Client::new(&stack.sdk_config)
        .describe_time_to_live()
        .table_name(&stack.settings.rate_limits_table)
        .send()
        .await
        .unwrap();
    let ttl = ttl.time_to_live_description.unwrap();
    assert_eq!(
        ttl.attribute_name(),
        Some("expires_at"),
        "the table is created from the template with its TTL"
    );

    let counters = rate_limit_counters(&stack).await;
    let keys: Vec<String> = counters.iter().filter_map(|i| i["counter_id"].as_s().ok().cloned()).collect();
    assert!(keys.iter().any(|k| k.starts_with("RIV204815#chat_ip:")), "{keys:?}");
    assert!(keys.iter().any(|k| k.starts_with("RIV204815#submit#")), "{keys:?}");
    // Keyed by the stack's generated secret (VisitorKeySecret), so the plain
    // hash anyone could compute from the address is not what is stored.
    let secret = stack.settings.visitor_key.clone().expect("the stack's visitor key");
    let visitor = secret.hash("127.0.0.1");
    let unkeyed: String = {
        use sha2::{Digest, Sha256};
        Sha256::digest(b"127.0.0.1").iter().take(8).map(|b| format!("{b:02x}")).collect()
    };
    assert!(keys.iter().any(|k| k.starts_with(&format!("RIV204815#chat_ip:{visitor}#"))), "{keys:?}");
    assert!(!keys.iter().any(|k| k.contains(&unkeyed)), "{keys:?}");
    let now = domain::limits::now_seconds();
    for item in &counters {
        let key = item["counter_id"].as_s().unwrap();
        assert!(!key.contains("127.0.0.1") && !key.to_lowercase().contains("example.org"), "{key}");
        let expires_at: u64 = item["expires_at"].as_n().unwrap().parse().unwrap();
        assert!(expires_at > now && expires_at < now + 2 * 86_400, "{key}: {expires_at}");
    }
    stack.stop().await;
}

#[tokio::test]
async fn with_the_counters_unreachable_a_submit_is_let_through_and_the_failure_is_a_metric() {
    let stack = spawn_stack().await;
    let mut broken = stack.settings.clone();
    broken.rate_limits_table = "no-such-table".to_owned();
    let lines: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
    let sink: domain::report::LineSink = {
        let lines = Arc::clone(&lines);
        Arc::new(move |line| lines.lock().unwrap().push(line))
    };
    let tenants = form_intake::tenant_loader(&stack.sdk_config, &broken);
    let intake = form_intake::aws_service_with_metrics(&stack.sdk_config, &broken, tenants, sink);
    let caller = domain::edge::Caller::new(Some(SITE), Some("203.0.113.7".into()));

    let reply =
        intake.handle_from(submit(e2e::demo::DEMO_TENANT_HASH, "ana@example.org").as_bytes(), &caller).await;
    assert_eq!(reply.status, 200, "fail open: {:?}", reply.frames);
    assert!(reply.body().contains("form_complete"));
    assert_eq!(submissions(&stack).await.len(), 1);
    let errors = lines.lock().unwrap().iter().filter(|l| l.contains("\"LimiterErrors\":1")).count();
    assert_eq!(errors, 2, "the visitor's and the tenant's counter each reported");
    stack.stop().await;
}

/// The `email` channel's record of a submission, once it has ended.
async fn email_record(stack: &LocalStack, submission_id: &str) -> std::collections::HashMap<String, String> {
    let started = std::time::Instant::now();
    loop {
        let item = e2e::submission_item(stack, submission_id).await;
        let record: std::collections::HashMap<String, String> = item
            .get("fulfillment")
            .and_then(|f| f.as_m().ok())
            .and_then(|f| f.get("email"))
            .and_then(|r| r.as_m().ok())
            .map(|r| {
                r.iter()
                    .map(|(k, v)| (k.clone(), v.as_s().or(v.as_n()).cloned().unwrap_or_default()))
                    .collect()
            })
            .unwrap_or_default();
        if record.get("status").is_some_and(|s| s == "sent" || s == "skipped") {
            return record;
        }
        assert!(started.elapsed() < Duration::from_secs(90), "email channel never ended: {record:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn submitted(stack: &LocalStack, hash: &str, email: &str) -> String {
    let reply = post_from(stack, "/forms", submit(hash, email), None).await;
    let frame = reply.frames_of("form_complete").pop().unwrap_or_else(|| panic!("{:?}", reply.blocks));
    frame["submissionId"].as_str().unwrap().to_owned()
}

/// The recipients of each email the emulator sent, one list per email.
async fn sent_to(stack: &LocalStack) -> Vec<String> {
    let data: Value =
        reqwest::get(format!("{}/moto-api/data.json", stack.endpoint)).await.unwrap().json().await.unwrap();
    data["ses"]["Message"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| m["destinations"]["ToAddresses"].to_string().to_lowercase())
        .collect()
}

#[tokio::test]
async fn an_applicant_address_gets_at_most_its_daily_confirmations_and_the_team_still_hears_of_each() {
    let stack = spawn_fulfilling_stack().await;
    tenant_with_limits(
        &stack,
        "c0nf1rm00000",
        "CONFIRM001",
        json!({"confirmations_per_recipient_per_day": 1}),
    )
    .await;

    let first = submitted(&stack, "c0nf1rm00000", "ana.lopez@example.org").await;
    assert_eq!(email_record(&stack, &first).await["status"], "sent");
    let second = submitted(&stack, "c0nf1rm00000", " Ana.Lopez@EXAMPLE.org").await;
    let record = email_record(&stack, &second).await;
    assert_eq!(record["status"], "sent", "the team email went out: {record:?}");
    assert_eq!(record["confirmation"], "skipped");
    assert_eq!(record["confirmation_reason"], "recipient_daily_limit_reached");
    assert!(record.contains_key("team_done_at"));

    let to = sent_to(&stack).await;
    let confirmations = to.iter().filter(|recipients| recipients.contains("ana.lopez")).count();
    assert_eq!(confirmations, 1, "one confirmation to the applicant: {to:?}");
    assert_eq!(to.len(), 3, "two team emails and one confirmation: {to:?}");
    assert_eq!(submissions(&stack).await.len(), 2, "both submissions are kept");
    stack.stop().await;
}

#[tokio::test]
async fn past_the_monthly_email_cap_the_channel_is_skipped_and_the_submission_kept() {
    let stack = spawn_fulfilling_stack().await;
    tenant_with_limits(&stack, "m0nthly00000", "MONTHLY001", json!({"emails_per_month": 2})).await;

    let first = submitted(&stack, "m0nthly00000", "ana@example.org").await;
    assert_eq!(email_record(&stack, &first).await["status"], "sent", "team and confirmation: 2 of 2");
    let second = submitted(&stack, "m0nthly00000", "sam@example.org").await;
    let record = email_record(&stack, &second).await;
    assert_eq!(record["status"], "skipped", "{record:?}");
    assert_eq!(record["reason"], "monthly_email_limit_reached");
    assert_eq!(
        (record["limit"].as_str(), record["limit_key"].as_str()),
        ("2", "rate_limits.emails_per_month")
    );
    assert_eq!(sent_to(&stack).await.len(), 2);
    assert_eq!(submissions(&stack).await.len(), 2, "the submission itself is kept");
    let counter = rate_limit_counters(&stack)
        .await
        .into_iter()
        .find(|item| item["counter_id"].as_s().is_ok_and(|k| k.starts_with("MONTHLY001#emails#")))
        .unwrap();
    assert_eq!(counter["count"].as_n().unwrap(), "2", "a skipped email takes no unit");
    stack.stop().await;
}

#[tokio::test]
async fn with_the_counters_unreachable_no_email_is_sent_and_the_record_comes_back() {
    let stack = spawn_stack().await;
    let hash = e2e::demo::DEMO_TENANT_HASH;
    assert_eq!(post_from(&stack, "/forms", submit(hash, "ana@example.org"), None).await.status, 200);
    let record = e2e::drain_queue(&stack, "EmailQueue").await.pop().unwrap();
    let mut broken = stack.settings.clone();
    broken.rate_limits_table = "no-such-table".to_owned();
    let tenants = form_intake::tenant_loader(&stack.sdk_config, &broken);
    let consumer = email_sender::aws_consumer(&stack.sdk_config, &broken, tenants);

    let disposition = consumer.handle_record(&record.to_string()).await;
    assert_eq!(disposition, lambda_edge::consumer::Disposition::Retry, "fail closed: retried later");
    assert!(sent_to(&stack).await.is_empty(), "nothing sent uncounted");
    stack.stop().await;
}
