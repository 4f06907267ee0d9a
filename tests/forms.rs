//! Conversational forms, end to end: the local host runs form-intake against
//! the emulator's S3, DynamoDB and EventBridge (which delivers to the queues).

use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use e2e::{
    ChatReply, demo, demo_config, drain_queue, get_from, post_forms, post_to, put_tenant, spawn_stack,
    submissions, tenant_fixtures,
};
use serde_json::{Map, Value, json};

const READING: &str = "reading_buddy_application";
const MENTOR: &str = "bridge_mentor_application";

fn validate(form_id: Option<&str>, field: &str, value: &str) -> Value {
    let mut body = json!({"tenant_hash": demo::DEMO_TENANT_HASH, "form_mode": true, "action": "validate_field",
                          "field_id": field, "field_value": value});
    if let Some(form_id) = form_id {
        body["form_id"] = json!(form_id);
    }
    body
}

fn submit(form_id: &str, data: Value) -> Value {
    json!({"tenant_hash": demo::DEMO_TENANT_HASH, "form_mode": true, "action": "submit_form", "form_id": form_id, "form_data": data})
}

fn reading_data() -> Value {
    json!({
        "age_18_plus": "yes", "first_name": "Ana", "last_name": "Lopez", "email": "ana.lopez@example.org",
        "phone": "+1 (503) 555-0199", "zip_code": "97412", "availability": "Weekday afternoons",
        "why_reading_buddies": "I loved reading with my grandmother and want to pass that on to kids."
    })
}

fn mentor_data() -> Value {
    json!({
        "one_year_commitment": "yes", "first_name": "Sam", "last_name": "Reyes", "email": "sam.reyes@example.org",
        "phone": "503-555-0188", "date_of_birth": "1988-02-14", "zip_code": "97412",
        "why_mentor": "A mentor changed my life as a teenager and I want to do the same for someone.",
        "references": "Dana Smith (coach), 503-555-0100", "background_check_consent": "yes"
    })
}

/// The single result frame of a form answer, after checking the framing.
fn result(reply: &ChatReply) -> Value {
    assert_eq!(reply.status, 200, "{:?}", reply.blocks);
    assert_eq!(reply.headers["content-type"], "text/event-stream");
    let raw: Vec<&str> = reply.blocks.iter().map(|b| b.raw.as_str()).collect();
    assert_eq!(raw.len(), 4, "{raw:?}");
    assert_eq!((raw[0], raw[1], raw[3]), (":ok", "data: {\"type\":\"start\"}", "data: [DONE]"));
    reply.blocks[2].json().unwrap()
}

fn errors_of(frame: &Value) -> Vec<String> {
    frame["validation_errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap().to_owned())
        .collect()
}

fn s(item: &std::collections::HashMap<String, AttributeValue>, key: &str) -> String {
    item.get(key).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default()
}

#[tokio::test]
async fn legacy_field_rules_apply_when_the_form_has_no_config() {
    let stack = spawn_stack().await;
    let cases = [
        ("first_name", "", Some("This field is required")),
        ("first_name", "   ", Some("This field is required")),
        ("email", "test@", Some("Please enter a valid email address")),
        ("email", "@example.com", Some("Please enter a valid email address")),
        ("email", "a b@c.d", Some("Please enter a valid email address")),
        ("email", "first.last+tag@example.co.uk", None),
        ("phone", "abc", Some("Please enter a valid phone number")),
        ("phone", "555-CALL", Some("Please enter a valid phone number")),
        ("phone", "+1 (555) 123-4567", None),
        ("age_confirm", "no", Some("You must be at least 22 years old to volunteer")),
        ("age_confirm", "yes", None),
        ("commitment_confirm", "no", Some("A one year commitment is required for this program")),
        ("commitment_confirm", "yes", None),
    ];
    for (field, value, error) in cases {
        let frame = result(&post_forms(&stack, &validate(None, field, value)).await);
        let expected = match error {
            Some(error) => {
                json!({"type": "validation_error", "field": field, "errors": [error], "status": "error"})
            }
            None => {
                json!({"type": "validation_success", "field": field, "status": "success", "message": "Valid"})
            }
        };
        assert_eq!(frame, expected, "{field} = {value:?}");
    }
    stack.stop().await;
}

#[tokio::test]
async fn configured_fields_validate_pattern_options_lengths_and_the_eligibility_gate() {
    let stack = spawn_stack().await;
    let config = demo_config();
    let fields = config["conversational_forms"][READING]["fields"].as_array().unwrap().clone();
    let field = |id: &str| fields.iter().find(|f| f["id"] == id).unwrap().clone();
    let check = async |field: &str, value: &str| {
        result(&post_forms(&stack, &validate(Some(READING), field, value)).await)
    };

    let zip = check("zip_code", "9741").await;
    assert_eq!(zip["errors"], json!([field("zip_code")["validation"]["message"]]));
    assert_eq!(check("zip_code", "97412").await["type"], "validation_success");

    let gate = check("age_18_plus", "no").await;
    assert_eq!(gate["errors"], json!([field("age_18_plus")["failure_message"]]));
    assert_eq!(check("age_18_plus", "yes").await["type"], "validation_success");

    assert_eq!(
        check("availability", "Midnight").await["errors"],
        json!(["Please choose one of the options"])
    );
    let short = check("why_reading_buddies", "Fun").await;
    assert_eq!(short["type"], "validation_error");
    assert!(short["errors"][0].as_str().unwrap().starts_with("Please enter at least"));
    stack.stop().await;
}

#[tokio::test]
async fn a_submission_lands_in_the_table_and_its_event_in_every_consumer_queue_without_form_data() {
    let stack = spawn_stack().await;
    let mut data = reading_data();
    data["not_a_field"] = json!("dropped");
    let frame = result(&post_forms(&stack, &submit(READING, data)).await);
    assert_eq!(frame["type"], "form_complete");
    assert_eq!(frame["status"], "success");
    let id = frame["submissionId"].as_str().unwrap().to_owned();
    assert!(id.starts_with(&format!("{READING}_")), "{id}");
    assert_eq!(
        frame["fulfillment"],
        json!([{"channel": "email", "status": "queued"}, {"channel": "sms", "status": "queued"}, {"channel": "handler", "status": "queued"}])
    );

    let items = submissions(&stack).await;
    let item = items.iter().find(|i| s(i, "submission_id") == id).unwrap();
    assert_eq!(s(item, "tenant_id"), demo::DEMO_TENANT_ID);
    assert_eq!(s(item, "form_id"), READING);
    assert_eq!(s(item, "status"), "pending_fulfillment");
    assert_eq!(s(item, "priority"), frame["priority"].as_str().unwrap());
    assert!(!s(item, "submitted_at").is_empty());
    let form_data = item["form_data"].as_m().unwrap();
    assert_eq!(form_data["email"].as_s().unwrap(), "ana.lopez@example.org");
    assert!(!form_data.contains_key("not_a_field"), "unknown fields are dropped");
    assert_eq!(item["channels"].as_l().unwrap().len(), 3);
    assert!(
        item["fulfillment"]
            .as_m()
            .unwrap()
            .values()
            .all(|c| c.as_m().unwrap()["status"].as_s().unwrap() == "queued")
    );
    assert!(!item.contains_key("outbox"), "published, so out of the outbox");

    for queue in ["EmailQueue", "SmsQueue", "HandlerQueue"] {
        let events = drain_queue(&stack, queue).await;
        assert_eq!(events.len(), 1, "{queue}");
        let event = &events[0];
        assert_eq!(event["source"], "picasso.forms");
        assert_eq!(event["detail-type"], "FormSubmitted");
        assert_eq!(
            event["detail"],
            json!({"schema_version": 1, "submission_id": id, "tenant_id": demo::DEMO_TENANT_ID, "form_id": READING,
                   "priority": frame["priority"], "submitted_at": s(item, "submitted_at"), "channels": ["email", "sms", "handler"]})
        );
        assert!(!event.to_string().contains("ana.lopez@example.org"), "no form data in the event");
    }
    stack.stop().await;
}

#[tokio::test]
async fn every_priority_rule_applies_in_order() {
    let stack = spawn_stack().await;
    let priority = async |form: &str, data: Value| {
        result(&post_forms(&stack, &submit(form, data)).await)["priority"].clone()
    };
    for (urgency, expected) in [
        ("immediate", "high"),
        ("urgent", "high"),
        ("normal", "normal"),
        ("this week", "normal"),
        ("flexible", "low"),
    ] {
        let mut data = mentor_data();
        data["urgency"] = json!(urgency);
        data["speaks_spanish"] = json!("no");
        assert_eq!(priority(MENTOR, data).await, expected, "urgency {urgency}");
    }
    let mut rule = reading_data();
    rule["availability"] = json!("Weekday mornings");
    assert_eq!(priority(READING, rule).await, "high", "a matching priority rule");
    assert_eq!(priority(READING, reading_data()).await, "normal", "the form's default_priority");
    assert_eq!(priority(MENTOR, mentor_data()).await, "low", "the other form's default_priority");

    let mut config = demo_config();
    let form = &mut config["conversational_forms"][READING];
    form.as_object_mut().unwrap().remove("default_priority");
    form["priority_rules"] = json!([]);
    put_tenant(&stack, "nodefault00001", "NOD000001", &config).await;
    let mut body = submit(READING, reading_data());
    body["tenant_hash"] = json!("nodefault00001");
    assert_eq!(result(&post_forms(&stack, &body).await)["priority"], "normal", "no rule, no default");
    stack.stop().await;
}

#[tokio::test]
async fn a_repeated_client_submission_id_returns_the_first_result_and_creates_nothing() {
    let stack = spawn_stack().await;
    let mut body = submit(READING, reading_data());
    body["client_submission_id"] = json!("widget-7f3a9c2e-0001");
    let first = result(&post_forms(&stack, &body).await);
    let again = result(&post_forms(&stack, &body).await);
    assert_eq!(again["submissionId"], first["submissionId"]);
    assert_eq!(again["duplicate"], true);
    assert!(first.get("duplicate").is_none());
    let stored: Vec<_> =
        submissions(&stack).await.into_iter().filter(|i| s(i, "form_id") == READING).collect();
    assert_eq!(stored.len(), 1);
    assert_eq!(drain_queue(&stack, "EmailQueue").await.len(), 1, "one event");
    stack.stop().await;
}

#[tokio::test]
async fn a_client_submission_id_reused_for_other_data_is_refused_with_409_and_stores_nothing() {
    let stack = spawn_stack().await;
    let mut body = submit(READING, reading_data());
    body["client_submission_id"] = json!("widget-7f3a9c2e-0002");
    result(&post_forms(&stack, &body).await);
    body["form_data"]["first_name"] = json!("Someone Else");

    let refused = post_forms(&stack, &body).await;

    assert_eq!(refused.status, 409, "{:?}", refused.blocks);
    assert_eq!(refused.frames_of("error")[0]["code"], "idempotency_key_reused");
    let stored: Vec<_> =
        submissions(&stack).await.into_iter().filter(|i| s(i, "form_id") == READING).collect();
    assert_eq!(stored.len(), 1, "only the first submission");
    assert_eq!(drain_queue(&stack, "EmailQueue").await.len(), 1, "one event");
    stack.stop().await;
}

#[tokio::test]
async fn unknown_and_disabled_forms_are_refused() {
    let stack = spawn_stack().await;
    let unknown = result(&post_forms(&stack, &submit("no_such_form", reading_data())).await);
    assert_eq!(unknown["type"], "form_error");
    assert_eq!(unknown["validation_errors"], json!([]));

    let mut config = demo_config();
    config["conversational_forms"][READING]["enabled"] = json!(false);
    put_tenant(&stack, "disabled000001", "DIS000001", &config).await;
    let mut body = submit(READING, reading_data());
    body["tenant_hash"] = json!("disabled000001");
    let disabled = result(&post_forms(&stack, &body).await);
    assert_eq!(disabled["type"], "form_error");
    assert!(disabled["message"].as_str().unwrap().contains("not accepting"));
    assert!(submissions(&stack).await.is_empty());
    stack.stop().await;
}

#[tokio::test]
async fn an_invalid_submission_reports_every_failing_field_at_once() {
    let stack = spawn_stack().await;
    let mut data = reading_data();
    data["email"] = json!("not-an-email");
    data["zip_code"] = json!("12");
    data["age_18_plus"] = json!("no");
    let frame = result(&post_forms(&stack, &submit(READING, data)).await);
    assert_eq!(frame["type"], "form_error");
    assert_eq!(frame["status"], "error");
    let mut fields = errors_of(&frame);
    fields.sort();
    assert_eq!(fields, ["age_18_plus", "email", "zip_code"]);
    assert!(submissions(&stack).await.is_empty());
    stack.stop().await;
}

#[tokio::test]
async fn an_oversize_form_or_value_is_refused() {
    let stack = spawn_stack().await;
    let mut data = reading_data();
    data["why_reading_buddies"] = json!("x".repeat(2_001));
    let frame = result(&post_forms(&stack, &submit(READING, data)).await);
    assert_eq!(errors_of(&frame), ["why_reading_buddies"]);

    let mut data = reading_data();
    for n in 0..20 {
        data[format!("padding_{n}")] = json!("y".repeat(1_900));
    }
    let reply = post_forms(&stack, &submit(READING, data)).await;
    assert_eq!(reply.status, 413);
    assert_eq!(reply.frames_of("error")[0]["code"], "form_too_large");
    assert!(submissions(&stack).await.is_empty());
    stack.stop().await;
}

#[tokio::test]
async fn a_honeypot_holding_false_zero_or_an_empty_list_is_a_real_submission() {
    let stack = spawn_stack().await;
    for empty in [json!(false), json!(0), json!([]), json!(""), json!(null)] {
        let mut data = reading_data();
        data["_hp"] = empty.clone();
        let frame = result(&post_forms(&stack, &submit(READING, data)).await);
        assert_eq!(frame["status"], "success", "{empty}");
    }
    let stored = submissions(&stack).await.into_iter().filter(|i| s(i, "form_id") == READING).count();
    assert_eq!(stored, 5, "every one kept");
    stack.stop().await;
}

#[tokio::test]
async fn a_filled_honeypot_looks_successful_but_nothing_is_stored_or_sent() {
    let stack = spawn_stack().await;
    let mut data = reading_data();
    data["_hp"] = json!("http://spam.example");
    let frame = result(&post_forms(&stack, &submit(READING, data)).await);
    assert_eq!(frame["type"], "form_complete");
    assert!(submissions(&stack).await.is_empty());
    assert!(drain_queue(&stack, "EmailQueue").await.is_empty());
    stack.stop().await;
}

#[tokio::test]
async fn a_publish_failure_leaves_the_submission_in_the_outbox_and_the_sweeper_publishes_it_once() {
    let stack = spawn_stack().await;
    let config = &stack.sdk_config;
    let tenants = form_intake::tenant_loader(config, &stack.settings);
    let mut broken = stack.settings.clone();
    broken.event_bus_name = "no-such-bus".to_owned();
    let intake = form_intake::aws_service_with(config, &broken, tenants);

    let reply = intake.handle(submit(READING, reading_data()).to_string().as_bytes()).await;
    let frame: Value = serde_json::from_str(reply.frames[2].trim_start_matches("data: ").trim()).unwrap();
    assert_eq!(frame["type"], "form_complete", "the visitor is told it worked: it is saved");
    let id = frame["submissionId"].as_str().unwrap().to_owned();
    let item = submissions(&stack).await.into_iter().find(|i| s(i, "submission_id") == id).unwrap();
    assert_eq!(s(&item, "outbox"), "pending");
    assert!(drain_queue(&stack, "EmailQueue").await.is_empty());

    let store = aws_adapters::dynamodb::DynamoSubmissionStore::new(
        aws_sdk_dynamodb::Client::new(config),
        &stack.settings.form_submissions_table,
    );
    let publisher = aws_adapters::eventbridge::EventBridgePublisher::new(
        aws_sdk_eventbridge::Client::new(config),
        &stack.settings.event_bus_name,
    );
    let first = outbox_sweeper::sweep(&store, &publisher, Duration::ZERO).await;
    assert_eq!((first.found, first.published, first.failed), (1, 1, 0));
    let second = outbox_sweeper::sweep(&store, &publisher, Duration::ZERO).await;
    assert_eq!((second.found, second.published), (0, 0));

    for queue in ["EmailQueue", "SmsQueue", "HandlerQueue"] {
        let events = drain_queue(&stack, queue).await;
        assert_eq!(events.len(), 1, "{queue}: exactly one event");
        assert_eq!(events[0]["detail"]["submission_id"], id.as_str());
    }
    let item = submissions(&stack).await.into_iter().find(|i| s(i, "submission_id") == id).unwrap();
    assert!(!item.contains_key("outbox"));
    stack.stop().await;
}

#[tokio::test]
async fn fifty_concurrent_submissions_get_fifty_distinct_ids() {
    let stack = spawn_stack().await;
    let replies = futures_util::future::join_all((0..50).map(|_| {
        let body = submit(READING, reading_data());
        let stack = &stack;
        async move { post_forms(stack, &body).await }
    }))
    .await;
    let mut ids: Vec<String> =
        replies.iter().map(|r| result(r)["submissionId"].as_str().unwrap().to_owned()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 50);
    assert_eq!(submissions(&stack).await.len(), 50);
    stack.stop().await;
}

#[tokio::test]
async fn the_chat_url_answers_form_mode_requests_with_byte_identical_frames() {
    let stack = spawn_stack().await;
    let mut duplicate = submit(READING, reading_data());
    duplicate["client_submission_id"] = json!("widget-identical-frames-01");
    post_forms(&stack, &duplicate).await;
    let requests = [
        validate(None, "email", "test@"),
        validate(Some(READING), "zip_code", "97412"),
        submit(READING, json!({})),
        submit("no_such_form", json!({})),
        duplicate,
        json!({"tenant_hash": "../x", "form_mode": true, "action": "submit_form"}),
    ];
    for request in requests {
        let via_forms = post_forms(&stack, &request).await;
        let via_chat = post_to(&stack, "/chat", request.to_string()).await;
        let raw = |reply: &ChatReply| reply.blocks.iter().map(|b| b.raw.clone()).collect::<Vec<_>>();
        assert_eq!(raw(&via_chat), raw(&via_forms), "{request}");
        assert_eq!(via_chat.status, via_forms.status);
        assert_eq!(via_chat.headers["content-type"], "text/event-stream");
    }
    stack.stop().await;
}

/// A value the field accepts, derived from its config.
fn valid_value(field: &Value) -> Value {
    if let Some(options) = field["options"].as_array().filter(|o| !o.is_empty()) {
        let preferred = options.iter().find(|o| {
            let v = o.get("value").unwrap_or(o);
            v.as_str().is_some_and(|v| v.eq_ignore_ascii_case("yes"))
        });
        let option = preferred.unwrap_or(&options[0]);
        return option.get("value").unwrap_or(option).clone();
    }
    let id = field["id"].as_str().or(field["name"].as_str()).unwrap_or_default().to_lowercase();
    let kind = field["type"].as_str().unwrap_or("text");
    let validation = field["validation"].clone();
    let text = match (kind, validation.as_str()) {
        ("email", _) | (_, Some("email")) => "ana.lopez@example.org",
        ("phone" | "tel", _) | (_, Some("phone")) => "+1 503 555 0199",
        ("date", _) => "1990-04-12",
        ("number", _) => "3",
        ("checkbox" | "boolean", _) => "true",
        (_, Some(rule)) if rule.starts_with("min:") => "25",
        (_, Some("zipcode")) => "97412",
        (_, Some("name")) => "Ana",
        _ if validation["pattern"].is_string() || id.contains("zip") => "97412",
        _ => "A complete and thoughtful answer for this question.",
    };
    json!(text)
}

fn complete_data(form: &Value) -> Map<String, Value> {
    let mut data = Map::new();
    for field in form["fields"].as_array().into_iter().flatten() {
        match field["subfields"].as_array() {
            Some(subfields) => {
                for sub in subfields {
                    data.insert(sub["id"].as_str().unwrap().to_owned(), valid_value(sub));
                }
            }
            None => {
                let key = field["id"].as_str().or(field["name"].as_str()).unwrap().to_owned();
                data.insert(key, valid_value(field));
            }
        }
    }
    for gate in form["qualification_gates"].as_array().into_iter().flatten() {
        data.insert(gate["field"].as_str().unwrap().to_owned(), json!("yes"));
    }
    // A conditional field is shown: give its trigger the value that shows it.
    for field in form["fields"].as_array().into_iter().flatten() {
        if let (Some(trigger), Some(equals)) =
            (field["conditional"]["show_when"].as_str(), field["conditional"].get("equals"))
        {
            data.insert(trigger.to_owned(), equals.clone());
        }
    }
    data
}

#[tokio::test]
async fn every_form_of_the_real_tenant_configs_accepts_a_complete_submission_and_rejects_an_empty_one() {
    let stack = spawn_stack().await;
    for (n, path) in tenant_fixtures().iter().enumerate() {
        let config: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        let hash = format!("realforms{n}");
        put_tenant(&stack, &hash, &format!("REAL{n:05}"), &config).await;
        for (key, form) in config["conversational_forms"].as_object().into_iter().flatten() {
            let label = format!("{} / {key}", path.display());
            let body = |data: Map<String, Value>| json!({"tenant_hash": hash, "form_mode": true, "action": "submit_form", "form_id": key, "form_data": data});
            let complete = result(&post_forms(&stack, &body(complete_data(form))).await);
            assert_eq!(complete["type"], "form_complete", "{label}: {complete}");

            let empty = result(&post_forms(&stack, &body(Map::new())).await);
            assert_eq!(empty["type"], "form_error", "{label}");
            assert!(!errors_of(&empty).is_empty(), "{label}: per-field errors");
            for error in empty["validation_errors"].as_array().unwrap() {
                assert!(error["errors"].as_array().is_some_and(|e| !e.is_empty()), "{label}: {error}");
            }
        }
    }
    stack.stop().await;
}

#[tokio::test]
async fn the_local_host_sweeps_the_outbox_on_a_timer_as_the_schedule_does_in_aws() {
    let sweep = local_stack::Sweep { every: Duration::from_millis(200), grace: Duration::ZERO };
    let stack = e2e::spawn_stack_with(Some(sweep)).await;
    let mut broken = stack.settings.clone();
    broken.event_bus_name = "no-such-bus".to_owned();
    let intake = form_intake::aws_service_with(
        &stack.sdk_config,
        &broken,
        form_intake::tenant_loader(&stack.sdk_config, &stack.settings),
    );
    let reply = intake.handle(submit(READING, reading_data()).to_string().as_bytes()).await;
    assert_eq!(reply.status, 200);

    let mut events = Vec::new();
    for _ in 0..50 {
        events.extend(drain_queue(&stack, "HandlerQueue").await);
        if !events.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(events.len(), 1, "the timer published the stranded submission");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(drain_queue(&stack, "HandlerQueue").await.is_empty(), "and only once");
    stack.stop().await;
}

#[tokio::test]
async fn a_submit_while_the_whole_emulator_stalls_is_unconfirmed_and_its_retry_with_its_key_is_stored_once() {
    let stack = spawn_stack().await;
    // Load the tenant first: with the emulator stalled, its config could not be read either.
    let warm = post_forms(&stack, &validate(Some("reading_buddy_application"), "email", "a@b.org")).await;
    assert_eq!(warm.status, 200);
    let mut body = submit("reading_buddy_application", reading_data());
    body["client_submission_id"] = json!("widget-stalled-database-0001");

    stack.emulator().pause().unwrap();
    let started = std::time::Instant::now();
    let refused = post_forms(&stack, &body).await;
    let waited = started.elapsed();
    stack.emulator().resume().unwrap();

    assert_eq!(refused.status, 503, "{:?}", refused.blocks);
    assert_eq!(
        refused.frames_of("error")[0]["code"],
        "submission_unconfirmed",
        "the stalled write may still land"
    );
    assert!(waited < Duration::from_secs(15), "answered within form-intake's timeout, after {waited:?}");
    let retried = result(&post_forms(&stack, &body).await);
    assert_eq!(retried["status"], "success", "{retried}");
    let stored: Vec<_> =
        submissions(&stack).await.into_iter().filter(|item| !item.contains_key("kind")).collect();
    assert_eq!(stored.len(), 1, "the stalled write and its retry are one submission");
    stack.stop().await;
}

/// Denies (or, with `None`, allows again) the form-intake role its writes to
/// the submissions table, as an operator's mistaken policy or an outage would.
async fn deny_table_writes(stack: &e2e::LocalStack, deny: bool) {
    let iam = aws_sdk_iam::Client::new(&stack.sdk_config);
    if deny {
        let policy = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Deny",
            "Action": ["dynamodb:PutItem", "dynamodb:TransactWriteItems"], "Resource": "*"}]});
        iam.put_user_policy()
            .user_name("form-intake")
            .policy_name("outage")
            .policy_document(policy.to_string())
            .send()
            .await
            .unwrap();
    } else {
        iam.delete_user_policy().user_name("form-intake").policy_name("outage").send().await.unwrap();
    }
}

#[tokio::test]
async fn a_submit_the_table_refuses_is_parked_and_the_sweeper_stores_it_exactly_once() {
    let stack = spawn_stack().await;
    let mut body = submit("reading_buddy_application", reading_data());
    body["client_submission_id"] = json!("widget-parked-submission-0001");

    deny_table_writes(&stack, true).await;
    let parked = result(&post_forms(&stack, &body).await);
    assert_eq!(parked["status"], "success", "parked, so the visitor is told it is received: {parked}");
    let stored =
        || async { submissions(&stack).await.into_iter().filter(|i| !i.contains_key("kind")).count() };
    assert_eq!(stored().await, 0, "the table refused it");
    deny_table_writes(&stack, false).await;

    let store = aws_adapters::dynamodb::DynamoSubmissionStore::new(
        aws_sdk_dynamodb::Client::new(&stack.sdk_config),
        &stack.settings.form_submissions_table,
    );
    let queue = stack.settings.parked_submissions_queue_url.clone().expect("the stack parks");
    let parking = aws_adapters::sqs::SqsParking::new(aws_sdk_sqs::Client::new(&stack.sdk_config), queue);
    let publisher = aws_adapters::eventbridge::EventBridgePublisher::new(
        aws_sdk_eventbridge::Client::new(&stack.sdk_config),
        &stack.settings.event_bus_name,
    );
    let report = outbox_sweeper::drain_parked(&store, &parking, &publisher, 5).await;
    assert_eq!((report.stored, report.left), (1, 0), "{report:?}");
    assert_eq!(stored().await, 1);
    let item = submissions(&stack).await.into_iter().find(|i| !i.contains_key("kind")).unwrap();
    assert_eq!(s(&item, "submission_id"), parked["submissionId"].as_str().unwrap());
    assert_eq!(drain_queue(&stack, "EmailQueue").await.len(), 1, "its event was published once");

    let again = outbox_sweeper::drain_parked(&store, &parking, &publisher, 5).await;
    assert_eq!(again, outbox_sweeper::DrainReport::default(), "nothing left parked");
    let retried = result(&post_forms(&stack, &body).await);
    assert_eq!(
        (retried["duplicate"].as_bool(), &retried["submissionId"]),
        (Some(true), &parked["submissionId"])
    );
    assert_eq!(stored().await, 1, "stored exactly once");
    stack.stop().await;
}

fn config_path(hash: &str) -> String {
    format!("/forms?action=get_config&t={hash}")
}

#[tokio::test]
async fn the_widget_config_is_the_public_view_with_an_etag_and_cache_control() {
    let stack = spawn_stack().await;
    let response = get_from(&stack, &config_path(demo::DEMO_TENANT_HASH), None).await;
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(headers["cache-control"], "public, max-age=300");
    let etag = headers["etag"].to_str().unwrap().to_owned();
    let body = response.text().await.unwrap();
    let view: Value = serde_json::from_str(&body).unwrap();

    let demo = demo_config();
    assert_eq!(view["tenant_hash"], demo::DEMO_TENANT_HASH);
    assert_eq!(view["welcome_message"], demo["welcome_message"]);
    assert_eq!(view["branding"], demo["branding"]);
    assert_eq!(view["cta_definitions"], demo["cta_definitions"]);
    let allowed: Vec<&str> = domain::tenant::WIDGET_KEYS.iter().copied().chain(["tenant_hash"]).collect();
    for key in view.as_object().unwrap().keys() {
        assert!(allowed.contains(&key.as_str()), "{key} is not a widget key");
    }
    for (key, form) in view["conversational_forms"].as_object().unwrap() {
        assert_eq!(form["fields"], demo["conversational_forms"][key]["fields"], "{key}");
        assert!(form.get("notifications").is_none() && form.get("fulfillment").is_none(), "{key}");
    }
    for secret in [
        "RIV204815",
        "RIVKB00001",
        "+15035550142",
        "elliot.park@riverbendliteracy.org",
        "Riverbend_Intake_Handler",
    ] {
        assert!(!body.contains(secret), "{secret} is served");
    }
    assert!(!body.contains(demo["tone_prompt"].as_str().unwrap()));

    let again = get_from(&stack, &config_path(demo::DEMO_TENANT_HASH), Some(&etag)).await;
    assert_eq!(again.status(), 304, "a matching If-None-Match");
    assert_eq!(again.headers()["etag"], etag.as_str());
    assert_eq!(again.headers()["cache-control"], "public, max-age=300");
    assert!(again.text().await.unwrap().is_empty());
    let stale = get_from(&stack, &config_path(demo::DEMO_TENANT_HASH), Some("\"0000000000000000\"")).await;
    assert_eq!(stale.status(), 200, "another tag gets the config");
    stack.stop().await;
}

#[tokio::test]
async fn the_widget_config_of_an_unknown_or_malformed_tenant_hash_is_a_json_error() {
    let stack = spawn_stack().await;
    let cases = [
        (config_path("nobody00000000"), 404, "tenant_not_found"),
        (config_path("..%2Fmappings"), 400, "invalid_tenant_hash"),
        ("/forms?action=get_config".to_owned(), 400, "missing_tenant_hash"),
        (format!("/forms?action=delete&t={}", demo::DEMO_TENANT_HASH), 400, "invalid_action"),
    ];
    for (path, status, code) in cases {
        let response = get_from(&stack, &path, None).await;
        assert_eq!(response.status(), status, "{path}");
        assert_eq!(response.headers()["content-type"], "application/json");
        assert_eq!(response.headers()["cache-control"], "no-store", "{path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["code"], code, "{path}");
    }

    let preflight = reqwest::Client::new()
        .request(reqwest::Method::OPTIONS, format!("{}/forms", stack.host_url()))
        .header("origin", "https://www.riverbendliteracy.org")
        .header("access-control-request-method", "GET")
        .send()
        .await
        .unwrap();
    assert!(preflight.headers()["access-control-allow-methods"].to_str().unwrap().contains("GET"));
    stack.stop().await;
}
