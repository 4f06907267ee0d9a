//! `local-stack`: runs the whole Picasso system on this machine until Ctrl-C.

use std::process::ExitCode;

use local_stack::{LocalStack, StackOptions, demo, emulator::EmulatorLog};

#[tokio::main]
async fn main() -> ExitCode {
    let (options, quiet) = match parse_args(std::env::args().skip(1)) {
        Ok(parsed) => parsed,
        Err(message) => {
            eprintln!(
                "{message}\nusage: local-stack [--moto-port N] [--host-port N] [--bedrock-port N] [--quiet] [--no-iam]"
            );
            return ExitCode::from(2);
        }
    };
    // --quiet: warnings, errors and QA_COMPLETE lines only (RUST_LOG still wins).
    let (shipping, log_lines) = local_stack::log_shipping::layer();
    lambda_edge::telemetry::init_with(if quiet { "warn" } else { "info" }, Some(Box::new(shipping)));
    let profiles = options.profile_dir.clone().unwrap_or_default();
    let moto_log = match &options.emulator_log {
        EmulatorLog::File(path) => path.display().to_string(),
        EmulatorLog::Inherit | EmulatorLog::Discard => "not kept".to_owned(),
    };
    let stack = match LocalStack::start(options).await {
        Ok(stack) => stack,
        Err(err) => {
            eprintln!("local stack failed to start: {}", domain::report::error_chain(&err));
            return ExitCode::FAILURE;
        }
    };
    // As Lambda does: each function's lines also reach its log group.
    local_stack::log_shipping::ship(log_lines, aws_sdk_cloudwatchlogs::Client::new(&stack.sdk_config));
    print_banner(&stack, &moto_log, &profiles);
    wait_for_stop_signal().await;
    eprintln!("\nstopping the local stack...");
    stack.stop().await;
    ExitCode::SUCCESS
}

/// The options, and whether `--quiet` was given.
fn parse_args(mut args: impl Iterator<Item = String>) -> Result<(StackOptions, bool), String> {
    let mut options = StackOptions::default();
    let mut quiet = false;
    while let Some(arg) = args.next() {
        let mut port = |name: &str| -> Result<u16, String> {
            args.next().and_then(|v| v.parse().ok()).ok_or_else(|| format!("{name} needs a port number"))
        };
        match arg.as_str() {
            "--moto-port" => options.moto_port = port("--moto-port")?,
            "--host-port" => options.host_port = port("--host-port")?,
            "--bedrock-port" => options.bedrock_port = port("--bedrock-port")?,
            "--quiet" => quiet = true,
            "--no-iam" => options.iam = false,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    // A second stack (on other ports) keeps its credentials and its log apart,
    // so it never overwrites the first one's profiles: `.local/stack-<moto port>/`.
    if options.moto_port != local_stack::DEFAULT_MOTO_PORT {
        let dir = local_stack::repo_root().join(format!(".local/stack-{}", options.moto_port));
        options.profile_dir = Some(dir.join("aws"));
        options.emulator_log = EmulatorLog::File(dir.join("moto.log"));
    }
    Ok((options, quiet))
}

fn print_banner(stack: &LocalStack, moto_log: &str, profiles: &std::path::Path) {
    let s = &stack.settings;
    println!(
        "\nPicasso local stack is up.\n\
         \n  local host      {host}   (GET /healthz, GET /outbox)\
         \n  for the widget  chat URL {host}/chat, CONFIG_ENDPOINT {host}/forms?action=get_config\
         \n  AWS emulator    {aws}   (aws --endpoint-url {aws} ...; its request log: {moto_log})\
         \n  Bedrock         {bedrock}   (ConverseStream, Retrieve; GET /_standin/streams)\
         \n  Lambda          {bedrock}   (handler Invoke; GET /_standin/invocations)\
         \n  fulfillment     email, SMS and handler consumers polling their queues\
         \n  config bucket   s3://{bucket}   demo tenant_hash {hash}\
         \n  tables          {subs}, {sms}\
         \n  event bus       {bus}\
         \n  IAM             {iam}\
         \n\nThe AWS CLI and SDKs, as the administrator (profiles for every function and picasso-ops too):\
         \n  export AWS_CONFIG_FILE={profiles}/config AWS_SHARED_CREDENTIALS_FILE={profiles}/credentials\
         \n  export AWS_PROFILE=picasso-local\
         \n  aws --endpoint-url {aws} dynamodb scan --table-name {subs}\
         \n  AWS_PROFILE=picasso-ops cargo run -p ops --bin picasso-ops -- status <submissionId>\
         \nA function binary as itself: AWS_PROFILE=picasso-<function> (e.g. picasso-chat-stream), and\
         \n  export AWS_ENDPOINT_URL_BEDROCK_RUNTIME={bedrock} AWS_ENDPOINT_URL_BEDROCK_AGENT_RUNTIME={bedrock}\
         \n  export AWS_ENDPOINT_URL_LAMBDA={bedrock} WEBHOOK_ALLOW_PRIVATE=true\
         \n\nCtrl-C stops everything.",
        host = stack.host_url(),
        aws = stack.endpoint,
        bedrock = stack.bedrock_url,
        bucket = s.config_bucket,
        hash = demo::DEMO_TENANT_HASH,
        subs = s.form_submissions_table,
        sms = s.sms_usage_table,
        bus = s.event_bus_name,
        iam = if stack.iam {
            "enforced: each piece acts as its own principal (--no-iam turns it off)"
        } else {
            "not enforced (--no-iam)"
        },
        profiles = profiles.display(),
        moto_log = moto_log,
    );
}

async fn wait_for_stop_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(_) => return std::mem::drop(interrupt.await),
        };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}
