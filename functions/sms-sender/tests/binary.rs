//! The sms-sender binary itself under a Lambda Runtime API emulator, with the
//! template's environment, against a local stack that enforces IAM.

#[tokio::test]
async fn the_binary_reports_only_the_poison_record_of_an_sqs_batch() {
    let binary = std::path::Path::new(env!("CARGO_BIN_EXE_sms-sender"));
    let failed = local_stack::runtime_api::sample_batch_failures(
        "SmsSenderFunction",
        binary,
        "sms-sender/sqs-batch.json",
    )
    .await;
    assert_eq!(failed, ["00000003-aaaa-4bbb-8ccc-dddddddddddd"]);
}
