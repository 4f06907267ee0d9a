//! Benchmarks that print figures; they assert nothing. `tools/bench.sh` runs
//! them all on the release Lambda packages and prints the commit measured.
//!
//!   bench first-token --binary PATH [--requests 200]
//!       Added first-token latency at the client socket, through the Lambda
//!       streaming path and the local host, over the floor (the same client
//!       reading the Bedrock stand-in directly), in one run.
//!   bench cold-start --binaries DIR [--starts 50]
//!       Spawn -> first `GET /runtime/invocation/next` of each function's
//!       release binary under the Runtime API emulator, with the template's
//!       environment; with a warm page cache, then with it dropped.
//!   bench cpu [--chats 2000] [--submissions 2000]
//!       CPU time of our code per chat and per form submit, in process, with
//!       every AWS port in memory.
//!   bench rss --binary PATH [--chats 1000]
//!       Peak RSS and CPU of the release chat binary answering sequential
//!       chats under the Runtime API emulator against the local stack.
//!   bench forms [--submissions 500] / bench fulfillment [--submissions 200]
//!       form-intake and fulfillment latency through the local stack.
//!   bench exactly-once [--submissions 500] [--concurrency 20]
//!       Emails and SMS the emulator sent per submission under concurrent load.

mod cpu;
mod exactly_once;
mod forms;
mod fulfillment;
mod latency;
mod start;

use std::{path::PathBuf, time::Duration};

use local_stack::{LocalStack, StackOptions, demo};

pub(crate) type Error = Box<dyn std::error::Error + Send + Sync>;

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let count = |name: &str, default: usize| flag(name).and_then(|v| v.parse().ok()).unwrap_or(default);
    if args.first().map(String::as_str) == Some("cpu") {
        // Its own single-threaded runtime: only the thread it times runs our code.
        return cpu::run(count("--chats", 2_000), count("--submissions", 2_000));
    }
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        match args.first().map(String::as_str) {
            Some("first-token") => latency::run(&path(flag("--binary"))?, count("--requests", 200)).await,
            Some("cold-start") => start::run(&path(flag("--binaries"))?, count("--starts", 50)).await,
            Some("rss") => start::rss(&path(flag("--binary"))?, count("--chats", 1_000)).await,
            Some("forms") => forms::run(count("--submissions", 500)).await,
            Some("fulfillment") => fulfillment::run(count("--submissions", 200)).await,
            Some("exactly-once") => {
                exactly_once::run(count("--submissions", 500), count("--concurrency", 20)).await
            }
            _ => Err("usage: bench first-token|cold-start|cpu|rss|forms|fulfillment|exactly-once [--binary PATH] [--binaries DIR] [--requests N] [--starts N] [--chats N] [--submissions N] [--concurrency N]".into()),
        }
    })
}

fn path(path: Option<String>) -> Result<PathBuf, Error> {
    let path =
        PathBuf::from(path.ok_or("--binary PATH / --binaries DIR is required (tools/bench.sh builds them)")?);
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

pub(crate) fn chat_body(question: &str) -> String {
    serde_json::json!({"tenant_hash": demo::DEMO_TENANT_HASH, "user_input": question, "session_id": "bench"})
        .to_string()
}

pub(crate) const QUESTIONS: [&str; 4] = [
    "What is Reading Buddies?",
    "How can I donate?",
    "Tell me about Bridge Mentors",
    "Do you require a background check?",
];

/// Prints p50, p90, p99 and max of `samples`; returns the p50 in seconds.
pub(crate) fn report(label: &str, samples: &mut [Duration]) -> f64 {
    if samples.is_empty() {
        println!("  {label}\n    no samples");
        return 0.0;
    }
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
    let ms = |d: Duration| d.as_secs_f64() * 1_000.0;
    println!(
        "  {label}\n    p50 {:.3} ms  p90 {:.3} ms  p99 {:.3} ms  max {:.3} ms  (n={})",
        ms(at(0.5)),
        ms(at(0.9)),
        ms(at(0.99)),
        ms(at(1.0)),
        samples.len()
    );
    at(0.5).as_secs_f64()
}
