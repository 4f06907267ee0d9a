//! Benchmarks for the chat function. They print figures; they assert nothing.
//!
//!   bench first-token [--requests 200]
//!       Latency our code adds between the Bedrock stand-in handing over its
//!       first token and the client receiving the first `text` frame, through
//!       the local host (zero-delay stand-in).
//!   bench cold-start --binary PATH [--starts 50]
//!       Process spawn to the first `GET /runtime/invocation/next` of the
//!       release binary against a minimal fake Lambda Runtime API.
//!   bench forms [--submissions 500]
//!       form-intake latency through the local host, and, measured in
//!       process, the share spent in our code versus waiting on the emulator.
//!   bench rss --binary PATH [--chats 1000]
//!       Peak RSS of the release binary answering sequential chats through the
//!       fake Runtime API, against the local stack.

mod forms;
mod fulfillment;
mod runtime_api;

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use local_stack::{LocalStack, StackOptions, demo};

pub(crate) type Error = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let count = |name: &str, default: usize| flag(name).and_then(|v| v.parse().ok()).unwrap_or(default);
    match args.first().map(String::as_str) {
        Some("first-token") => first_token(count("--requests", 200)).await,
        Some("cold-start") => cold_start(binary(flag("--binary"))?, count("--starts", 50)).await,
        Some("forms") => forms::run(count("--submissions", 500)).await,
        Some("fulfillment") => fulfillment::run(count("--submissions", 200)).await,
        Some("rss") => rss(binary(flag("--binary"))?, count("--chats", 1_000)).await,
        _ => Err(
            "usage: bench first-token|cold-start|forms|fulfillment|rss [--requests N] [--starts N] [--submissions N] [--chats N] [--binary PATH]"
                .into(),
        ),
    }
}

fn binary(path: Option<String>) -> Result<PathBuf, Error> {
    let path = PathBuf::from(path.ok_or("--binary PATH (the release chat-stream binary) is required")?);
    if !path.exists() {
        return Err(format!("{} does not exist; build it with tools/bench.sh", path.display()).into());
    }
    Ok(path)
}

pub(crate) async fn quiet_stack() -> Result<LocalStack, Error> {
    let options = StackOptions {
        moto_port: 0,
        host_port: 0,
        bedrock_port: 0,
        emulator_log: local_stack::emulator::EmulatorLog::Discard,
        print_qa: false,
        alarms: false,
        sweep: None,
        consumers: None,
        profile_dir: None,
        ..StackOptions::default()
    };
    let stack = LocalStack::start(options).await?;
    stack.bedrock.set_delta_delay(Duration::ZERO);
    stack.bedrock.set_first_token_delay(Duration::ZERO);
    Ok(stack)
}

fn chat_body(question: &str) -> String {
    serde_json::json!({"tenant_hash": demo::DEMO_TENANT_HASH, "user_input": question, "session_id": "bench"})
        .to_string()
}

const QUESTIONS: [&str; 4] = [
    "What is Reading Buddies?",
    "How can I donate?",
    "Tell me about Bridge Mentors",
    "Do you require a background check?",
];

async fn first_token(requests: usize) -> Result<(), Error> {
    let stack = quiet_stack().await?;
    let client = reqwest::Client::new();
    let mut added = Vec::with_capacity(requests);
    let mut first_token_total = Vec::with_capacity(requests);
    for n in 0..requests {
        let sent = Instant::now();
        let mut response = client
            .post(format!("{}/chat", stack.host_url()))
            .body(chat_body(QUESTIONS[n % QUESTIONS.len()]))
            .send()
            .await?;
        let mut seen = String::new();
        let arrived = loop {
            let chunk = response.chunk().await?.ok_or("stream ended before a text frame")?;
            seen.push_str(&String::from_utf8_lossy(&chunk));
            if seen.contains("\"type\":\"text\"") {
                break Instant::now();
            }
        };
        while response.chunk().await?.is_some() {}
        let record = stack.bedrock.streams().pop().ok_or("the stand-in recorded no stream")?;
        let handed_over = record.first_delta_at.ok_or("the stand-in sent no delta")?;
        added.push(arrived.saturating_duration_since(handed_over));
        first_token_total.push(arrived - sent);
        if stack.bedrock.streams().len() > 500 {
            stack.bedrock.reset();
        }
    }
    stack.stop().await;
    println!("first-token: {requests} sequential chats through the local host, zero-delay stand-in");
    report("added latency, stand-in first token -> client first text frame", &mut added);
    report("request sent -> first text frame (incl. S3 config, KB retrieve)", &mut first_token_total);
    Ok(())
}

async fn cold_start(binary: PathBuf, starts: usize) -> Result<(), Error> {
    let mut ready = Vec::with_capacity(starts);
    for _ in 0..starts {
        let api = runtime_api::FakeRuntime::start(Vec::new()).await?;
        let spawned = Instant::now();
        let mut child = api.spawn(&binary, &[])?;
        let first_next =
            api.first_next(Duration::from_secs(10)).await.ok_or("the binary never asked for an event")?;
        ready.push(first_next.saturating_duration_since(spawned));
        child.kill().await?;
        api.stop();
    }
    println!("cold-start: {starts} starts of {}", binary.display());
    report("process spawn -> first GET /runtime/invocation/next", &mut ready);
    Ok(())
}

async fn rss(binary: PathBuf, chats: usize) -> Result<(), Error> {
    let stack = quiet_stack().await?;
    let events: Vec<String> = (0..chats)
        .map(|n| runtime_api::function_url_event(&chat_body(QUESTIONS[n % QUESTIONS.len()])))
        .collect();
    let api = runtime_api::FakeRuntime::start(events).await?;
    // The template's environment, the endpoints and the chat function's own principal.
    let env = stack.function_env("ChatStreamFunction")?;
    let started = Instant::now();
    let mut child = api.spawn(&binary, &env)?;
    let pid = child.id().ok_or("the binary exited at once")?;
    api.wait_done(Duration::from_secs(600)).await.ok_or("the chats did not finish in 10 minutes")?;
    let elapsed = started.elapsed();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field =
        |name: &str| status.lines().find(|l| l.starts_with(name)).map(|l| l[name.len()..].trim().to_owned());
    child.kill().await?;
    let summary = api.summary();
    api.stop();
    stack.stop().await;
    println!("rss: {chats} sequential chats through {} ({:.1} s)", binary.display(), elapsed.as_secs_f64());
    println!("  responses streamed {}, with an error frame {}", summary.responses, summary.with_error_frame);
    println!("  peak RSS (VmHWM)  {}", field("VmHWM:").unwrap_or_default());
    println!("  RSS at the end    {}", field("VmRSS:").unwrap_or_default());
    Ok(())
}

/// The function's environment pointing at the local stack.
pub(crate) fn report(label: &str, samples: &mut [Duration]) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
    let ms = |d: Duration| d.as_secs_f64() * 1_000.0;
    println!(
        "  {label}\n    p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  max {:.2} ms  (n={})",
        ms(at(0.5)),
        ms(at(0.9)),
        ms(at(0.99)),
        ms(at(1.0)),
        samples.len()
    );
}
