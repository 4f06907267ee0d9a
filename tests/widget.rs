//! The widget tenants run today (longhornrumble/picasso `Picasso/src` at HEAD),
//! replayed: its own recorded requests (`tests/fixtures/widget/`), from its own
//! origin, with its own fallback logic, against the local stack.

use std::{collections::HashMap, time::Duration};

use aws_sdk_dynamodb::types::AttributeValue;
use e2e::{ChatReply, LocalStack, demo, put_tenant, read_reply, spawn_fulfilling_stack, spawn_stack};
use local_stack::repo_root;
use serde_json::{Value, json};

const WIDGET_ORIGIN: &str = "https://chat.myrecruiter.ai";
const TENANT_SITE: &str = "https://www.brightpath.example";

/// A recorded widget request (`tests/fixtures/widget/<name>.json`): its headers and body.
struct Recorded {
    headers: Vec<(String, String)>,
    body: Value,
}

fn recorded(name: &str, tenant_hash: &str) -> Recorded {
    let path = repo_root().join(format!("tests/fixtures/widget/{name}.json"));
    let fixture: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let headers = fixture["headers"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
        .collect();
    let mut body = fixture["body"].clone();
    body["tenant_hash"] = json!(tenant_hash);
    Recorded { headers, body }
}

/// Sends a recorded request to a host path from `origin`, as the browser would.
async fn send(stack: &LocalStack, path: &str, request: &Recorded, origin: &str) -> reqwest::Response {
    let mut builder =
        reqwest::Client::new().post(format!("{}{path}", stack.host_url())).header("origin", origin);
    for (name, value) in &request.headers {
        builder = builder.header(name, value);
    }
    builder.body(request.body.to_string()).send().await.unwrap()
}

/// What the widget does with a chat turn (`StreamingChatProvider.jsx`): the
/// stream; on a non-2xx, the same body to `?action=chat` with `Accept:
/// application/json`, whose `content | message | response` it shows; if that
/// is not a 2xx or not JSON, its generic apology. Returns what the visitor reads.
async fn widget_turn(stack: &LocalStack, request: &Recorded, origin: &str) -> (String, ChatReply) {
    let stream = read_reply(send(stack, "/chat", request, origin).await).await;
    if (200..300).contains(&stream.status) {
        return (stream.text(), stream);
    }
    assert_eq!(
        stream.headers.get("access-control-allow-origin").and_then(|v| v.to_str().ok()),
        Some(origin),
        "a refusal the browser cannot read is 'Failed to fetch'"
    );
    let fallback = Recorded {
        headers: vec![
            ("Content-Type".into(), "application/json".into()),
            ("Accept".into(), "application/json".into()),
        ],
        body: request.body.clone(),
    };
    let response = send(stack, "/chat?action=chat", &fallback, origin).await;
    assert!(response.status().is_success(), "the widget shows its generic apology for {}", response.status());
    assert_eq!(
        response.headers().get("access-control-allow-origin").and_then(|v| v.to_str().ok()),
        Some(origin)
    );
    let json: Value = response.json().await.expect("the fallback answers JSON");
    let shown =
        ["content", "message", "response"].iter().find_map(|k| json[k].as_str().filter(|s| !s.is_empty()));
    (shown.expect("the widget reads content").to_owned(), stream)
}

/// The canonical-forms fixture config with what a tenant adds: notifications,
/// a name, its own site in `allowed_origins`.
fn canonical_tenant() -> Value {
    let path = repo_root().join("tests/fixtures/tenant-configs/bri071351-canonical-forms.json");
    let mut config: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    config["chat_title"] = json!("BrightPath");
    config["allowed_origins"] = json!([TENANT_SITE]);
    config["conversational_forms"]["volunteer_application"]["notifications"] = json!({
        "internal": {"enabled": true, "recipients": ["dana@brightpath.example"],
                     "subject": "New {form_title} from {first_name} {last_name}"},
        "applicant_confirmation": {"enabled": true, "subject": "Thanks, {first_name}!",
                                   "body_template": "Hi {first_name},\n{organization_name} received:\n{form_data}"}
    });
    config
}

fn strings(value: Option<&AttributeValue>) -> HashMap<String, String> {
    value
        .and_then(|v| v.as_m().ok())
        .map(|m| m.iter().filter_map(|(k, v)| Some((k.clone(), v.as_s().ok()?.clone()))).collect())
        .unwrap_or_default()
}

async fn sent_emails(stack: &LocalStack) -> Vec<Value> {
    let data: Value =
        reqwest::get(format!("{}/moto-api/data.json", stack.endpoint)).await.unwrap().json().await.unwrap();
    data["ses"]["Message"].as_array().cloned().unwrap_or_default()
}

/// The `form_complete` frame of a form answer read from the chat URL.
fn completed(reply: &ChatReply) -> Value {
    assert_eq!(reply.status, 200, "{:?}", reply.blocks);
    let frame = reply.frames_of("form_complete").into_iter().next();
    frame.unwrap_or_else(|| panic!("no form_complete: {:?}", reply.blocks))
}

#[tokio::test]
async fn the_widgets_composite_name_and_address_submit_is_stored_whole_and_both_emails_name_the_applicant() {
    let stack = spawn_fulfilling_stack().await;
    put_tenant(&stack, "bri0713510000", "BRI071351", &canonical_tenant()).await;
    let submit = recorded("submit_canonical_form", "bri0713510000");

    let reply = read_reply(send(&stack, "/chat", &submit, WIDGET_ORIGIN).await).await;
    let frame = completed(&reply);
    assert_eq!(frame["status"], "success");
    let id = frame["submissionId"].as_str().unwrap().to_owned();

    let stored = e2e::submission_item(&stack, &id).await;
    let data = strings(stored.get("form_data"));
    assert_eq!(data["field_1763001000001.first_name"], "Jordan");
    assert_eq!(data["field_1763001000001.last_name"], "Rivera");
    assert_eq!(data["field_1763001000007.street"], "1420 SE Belmont St");
    assert_eq!(data["field_1763001000007.zip_code"], "97214");
    assert_eq!(data["field_1763001000002"], "jordan.rivera@example.com");
    assert_eq!(data.len(), 20, "every answer the widget sent: {data:?}");
    let contact = strings(stored.get("contact"));
    assert_eq!(contact["full_name"], "Jordan Lee Rivera");
    assert_eq!(contact["email"], "jordan.rivera@example.com");
    assert_eq!(contact["address"], "1420 SE Belmont St, Apt 4B, Portland, OR, 97214");

    let emails = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let emails = sent_emails(&stack).await;
            if emails.len() >= 2 {
                return emails;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await
    .expect("the team notification and the confirmation are sent");
    let team = emails
        .iter()
        .find(|m| m["destinations"]["ToAddresses"] == json!(["dana@brightpath.example"]))
        .unwrap();
    assert_eq!(team["subject"], "New Volunteer Application from Jordan Rivera");
    let confirmation = emails
        .iter()
        .find(|m| m["destinations"]["ToAddresses"] == json!(["jordan.rivera@example.com"]))
        .unwrap();
    assert_eq!(confirmation["subject"], "Thanks, Jordan!");
    let body = confirmation["body"].as_str().unwrap();
    assert!(body.contains("BrightPath received"), "{body}");
    assert!(body.contains("Street Address: 1420 SE Belmont St"), "{body}");
    stack.stop().await;
}

#[tokio::test]
async fn a_phone_with_consent_composite_nested_by_the_widget_is_accepted() {
    let stack = spawn_stack().await;
    let fixture: Value = serde_json::from_slice(
        &std::fs::read(repo_root().join("tests/fixtures/widget/submit_phone_with_consent.json")).unwrap(),
    )
    .unwrap();
    put_tenant(
        &stack,
        "smssignup0000",
        "SMS000001",
        &json!({"conversational_forms": {"sms_signup": fixture["form_config"]}}),
    )
    .await;
    let submit = recorded("submit_phone_with_consent", "smssignup0000");
    let frame = completed(&read_reply(send(&stack, "/chat", &submit, WIDGET_ORIGIN).await).await);
    assert_eq!(frame["status"], "success", "{frame}");
    let stored = e2e::submission_item(&stack, frame["submissionId"].as_str().unwrap()).await;
    let data = strings(stored.get("form_data"));
    assert_eq!(
        (data["sms_opt_in.phone"].as_str(), data["sms_opt_in.consent"].as_str()),
        ("503-555-0142", "yes")
    );
    assert_eq!(strings(stored.get("contact"))["phone"], "503-555-0142");
    stack.stop().await;
}

#[tokio::test]
async fn a_chat_from_the_widgets_origin_is_answered_for_a_tenant_that_lists_its_own_site() {
    let stack = spawn_stack().await;
    let mut config = e2e::demo_config();
    config["allowed_origins"] = json!([TENANT_SITE]);
    put_tenant(&stack, "ownsite000000", "OWN000001", &config).await;
    let chat = recorded("chat_stream", "ownsite000000");

    let (shown, stream) = widget_turn(&stack, &chat, WIDGET_ORIGIN).await;
    assert_eq!(stream.status, 200);
    assert!(!shown.is_empty());
    let (shown, stream) = widget_turn(&stack, &chat, "https://elsewhere.example").await;
    assert_eq!(stream.status, 403);
    assert_eq!(shown, "This chat isn't available on this website.");
    stack.stop().await;
}

#[tokio::test]
async fn a_rate_limited_visitor_reads_the_reason_through_the_widgets_fallback() {
    let stack = spawn_stack().await;
    let mut config = e2e::demo_config();
    config["rate_limits"]["chats_per_ip_per_minute"] = json!(1);
    put_tenant(&stack, "limited000000", "LIM000001", &config).await;
    let chat = recorded("chat_stream", "limited000000");
    e2e::away_from_the_minute_edge(Duration::from_secs(20)).await;

    let (_, first) = widget_turn(&stack, &chat, WIDGET_ORIGIN).await;
    assert_eq!(first.status, 200);
    let (shown, second) = widget_turn(&stack, &chat, WIDGET_ORIGIN).await;
    assert_eq!(second.status, 429);
    assert!(second.headers.contains_key("retry-after"));
    assert_eq!(
        shown,
        "You're sending messages faster than I can answer. Please wait a moment and try again."
    );
    stack.stop().await;
}

#[tokio::test]
async fn the_http_fallback_answers_the_same_turn_as_json() {
    let stack = spawn_stack().await;
    let mut fallback = recorded("chat_fallback", demo::DEMO_TENANT_HASH);
    fallback.body["user_input"] = json!("How do I become a reading buddy?");
    let response = send(&stack, "/chat?action=chat", &fallback, WIDGET_ORIGIN).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let json: Value = response.json().await.unwrap();
    assert!(json["content"].as_str().is_some_and(|c| c.len() > 20), "{json}");
    assert_eq!(json["session_id"], fallback.body["session_id"]);
    assert!(json["ctaButtons"].is_array(), "{json}");
    assert!(json.get("error").is_none(), "{json}");

    // A form request there is answered as on the stream.
    let submit = recorded("submit_phone_with_consent", demo::DEMO_TENANT_HASH);
    let reply = read_reply(send(&stack, "/chat?action=chat", &submit, WIDGET_ORIGIN).await).await;
    assert_eq!(reply.headers["content-type"], "text/event-stream");
    assert_eq!(reply.types(), [":ok", "start", "form_error", "[DONE]"], "no sms_signup form here");
    stack.stop().await;
}

#[tokio::test]
async fn a_click_on_an_action_chip_routes_to_its_target_branch() {
    let stack = spawn_stack().await;
    let mut chip = recorded("chat_action_chip", demo::DEMO_TENANT_HASH);
    chip.body["routing_metadata"]["target_branch"] = json!("mentoring_interest");
    chip.body["user_input"] = json!("ok");
    let reply = read_reply(send(&stack, "/chat", &chip, WIDGET_ORIGIN).await).await;
    let frame = reply.frames_of("cta_buttons").into_iter().next().expect("a click gets its branch's buttons");
    assert_eq!(frame["metadata"]["routing_tier"], "explicit");
    assert_eq!(frame["metadata"]["routing_method"], "action_chip");
    assert_eq!(frame["metadata"]["branch"], "mentoring_interest");
    let buttons = frame["ctaButtons"].as_array().unwrap();
    assert_eq!(buttons[0]["_position"], "primary");
    assert!(buttons.iter().all(|b| b.get("style").is_none()));
    stack.stop().await;
}

#[tokio::test]
async fn the_widget_config_serves_what_the_widget_reads_and_no_triage_rules() {
    let stack = spawn_stack().await;
    let mut config = canonical_tenant();
    config["privacy_notice_url"] = json!("https://www.brightpath.example/privacy");
    config["conversational_forms"]["volunteer_application"]["priority_rules"] =
        json!([{"field": "field_1763001000010", "value": "urgent", "priority": "high"}]);
    put_tenant(&stack, "bri0713510000", "BRI071351", &config).await;
    // The widget's iframe fetches its config itself, from the widget's origin.
    let response = reqwest::Client::new()
        .get(format!("{}/forms?action=get_config&t=bri0713510000", stack.host_url()))
        .header("origin", WIDGET_ORIGIN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["access-control-allow-origin"], WIDGET_ORIGIN);
    let view: Value = response.json().await.unwrap();
    assert_eq!(view["privacy_notice_url"], "https://www.brightpath.example/privacy");
    let served = view.to_string();
    for private in ["priority_rules", "notifications", "dana@brightpath.example", "BRI071351"] {
        assert!(!served.contains(private), "{private} is served");
    }
    stack.stop().await;
}

#[tokio::test]
async fn the_widgets_chat_to_a_single_pass_tenant_carries_its_topics_and_shows_chosen_ctas_without_the_marker()
 {
    let stack = spawn_stack().await;
    let mut config = e2e::put_fixture_tenant(&stack, "brightpath").await;
    config["allowed_origins"] = json!([TENANT_SITE]);
    put_tenant(&stack, "br1ghtpath0001", "BRI071351", &config).await;
    let chat = recorded("chat_stream", "br1ghtpath0001");

    let (shown, stream) = widget_turn(&stack, &chat, WIDGET_ORIGIN).await;

    assert_eq!(stream.status, 200);
    assert!(!shown.is_empty() && !shown.contains("<<<") && !shown.contains("ACTIONS"), "{shown}");
    let asked = &stack.bedrock.streams()[0];
    assert!(asked.system.contains("This visitor has been exploring: volunteering."), "{}", asked.system);
    let buttons = stream.frames_of("cta_buttons");
    assert_eq!(buttons[0]["ctaButtons"][0]["id"], "mentor_apply", "the question is about mentors");
    assert_eq!(buttons[0]["metadata"]["conversation_context"]["selected_ctas"], json!(["mentor_apply"]));
    stack.stop().await;
}
