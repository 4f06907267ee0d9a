//! The local stack stays light over a long run: `/healthz` answers from small
//! probes, never from the emulator's state dump; `/outbox` reads one page;
//! the emulator keeps the newest captured messages and forgets deleted objects.

use std::time::{Duration, Instant};

use e2e::spawn_stack;
use local_stack::LocalStack;
use serde_json::{Value, json};

/// The emulator's own counters (`tools/local-stack/moto_server.py`).
async fn emulator_stats(stack: &LocalStack) -> Value {
    reqwest::get(format!("{}/_picasso/stats", stack.endpoint)).await.unwrap().json().await.unwrap()
}

async fn get_json(url: String) -> (u16, Value) {
    let response = reqwest::get(url).await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

#[tokio::test]
async fn healthz_and_the_outbox_never_ask_the_emulator_for_its_state_dump() {
    let stack = spawn_stack().await;
    let dumps_before = emulator_stats(&stack).await["state_dumps"].clone();

    for _ in 0..3 {
        let (status, body) = get_json(format!("{}/healthz", stack.host_url())).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["status"], "ok");
    }
    let (status, _) = get_json(format!("{}/outbox", stack.host_url())).await;
    assert_eq!(status, 200);
    assert_eq!(emulator_stats(&stack).await["state_dumps"], dumps_before);

    // The counter does count dumps: one asked for directly shows.
    reqwest::get(format!("{}/moto-api/data.json", stack.endpoint)).await.unwrap();
    assert_eq!(emulator_stats(&stack).await["state_dumps"], json!(dumps_before.as_u64().unwrap() + 1));
    stack.stop().await;
}

#[tokio::test]
async fn healthz_answers_degraded_in_about_half_a_second_when_the_emulator_stalls() {
    let stack = spawn_stack().await;
    stack.emulator().pause().unwrap();
    let started = Instant::now();
    let answer =
        tokio::time::timeout(Duration::from_secs(5), get_json(format!("{}/healthz", stack.host_url()))).await;
    let took = started.elapsed();
    stack.emulator().resume().unwrap();

    let (status, body) = answer.expect("/healthz answered");
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "degraded");
    assert_eq!(
        body["checks"],
        json!({"emulator": "down", "config_bucket": "down", "demo_tenant": "down", "bedrock_standin": "up"})
    );
    // Three stalled probes one after another would take 1.5 s at least.
    assert!(took < Duration::from_millis(1400), "the probes run at once, each within 500 ms: took {took:?}");
    stack.stop().await;
}

#[tokio::test]
async fn the_outbox_pages_newest_first_and_says_when_older_entries_were_dropped() {
    let stack = spawn_stack().await;
    let limits = reqwest::Client::new()
        .post(format!("{}/_picasso/limits", stack.endpoint))
        .json(&json!({"sms": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(limits.status(), 200);
    let sns = aws_sdk_sns::Client::new(&stack.sdk_config);
    for text in ["first", "second", "third"] {
        sns.publish().phone_number("+15035550142").message(text).send().await.unwrap();
    }

    let (status, outbox) = get_json(format!("{}/outbox", stack.host_url())).await;
    assert_eq!(status, 200, "{outbox}");
    let messages: Vec<&Value> = outbox["sms"].as_array().unwrap().iter().map(|m| &m["message"]).collect();
    assert_eq!(messages, ["third", "second"]);
    assert_eq!(outbox["kept"], json!({"emails": 0, "sms": 2}));
    assert_eq!(outbox["dropped"], json!({"emails": 0, "sms": 1}));
    assert!(outbox["note"].as_str().unwrap().contains("older entries were dropped"), "{outbox}");

    let (_, second_page) = get_json(format!("{}/outbox?limit=1&offset=1", stack.host_url())).await;
    assert_eq!(second_page["sms"].as_array().unwrap().len(), 1);
    assert_eq!(second_page["sms"][0]["message"], "second");

    let (status, refused) = get_json(format!("{}/outbox?limit=0", stack.host_url())).await;
    assert_eq!((status, &refused["code"]), (400, &json!("bad_page")));
    stack.stop().await;
}

#[tokio::test]
async fn the_emulator_forgets_queue_messages_once_they_are_deleted() {
    let stack = spawn_stack().await;
    let sqs = aws_sdk_sqs::Client::new(&stack.sdk_config);
    let queue = &stack.created["EmailQueue"].reference;
    for n in 0..20 {
        sqs.send_message().queue_url(queue).message_body(format!("message {n}")).send().await.unwrap();
    }
    let mut deleted = 0;
    while deleted < 20 {
        let received =
            sqs.receive_message().queue_url(queue).max_number_of_messages(10).send().await.unwrap();
        for message in received.messages() {
            let handle = message.receipt_handle().unwrap_or_default();
            sqs.delete_message().queue_url(queue).receipt_handle(handle).send().await.unwrap();
            deleted += 1;
        }
    }

    let data: Value =
        reqwest::get(format!("{}/moto-api/data.json", stack.endpoint)).await.unwrap().json().await.unwrap();
    let kept = data["sqs"]["Message"].as_array().map_or(0, Vec::len);
    assert_eq!(kept, 0, "the state dump still holds deleted messages");
    stack.stop().await;
}

#[tokio::test]
async fn a_cancelled_transaction_leaves_none_of_its_writes_behind() {
    use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
    let stack = spawn_stack().await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&stack.sdk_config);
    let table = &stack.settings.form_submissions_table;
    let id = |value: &str| AttributeValue::S(value.to_owned());
    dynamodb.put_item().table_name(table).item("submission_id", id("taken")).send().await.unwrap();
    let put_new = |key: &str| {
        let put = Put::builder()
            .table_name(table)
            .item("submission_id", id(key))
            .condition_expression("attribute_not_exists(submission_id)")
            .build()
            .unwrap();
        TransactWriteItem::builder().put(put).build()
    };

    let refused = dynamodb
        .transact_write_items()
        .transact_items(put_new("new"))
        .transact_items(put_new("taken"))
        .send()
        .await;
    assert!(refused.is_err(), "the second put's condition fails");
    let new = dynamodb.get_item().table_name(table).key("submission_id", id("new")).send().await.unwrap();
    assert!(new.item().is_none(), "the first put was undone with the transaction");

    dynamodb.transact_write_items().transact_items(put_new("new")).send().await.unwrap();
    let new = dynamodb.get_item().table_name(table).key("submission_id", id("new")).send().await.unwrap();
    assert!(new.item().is_some(), "a transaction that succeeds is kept");
    stack.stop().await;
}
