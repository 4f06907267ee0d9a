//! Added first-token latency: from the Bedrock stand-in handing its first
//! text delta to its socket, to the client reading the first `text` frame
//! from its own socket. Three paths, interleaved in one run:
//!   - floor: the same client reading the stand-in's ConverseStream directly;
//!   - Lambda: the release binary under the Runtime API emulator, behind its
//!     Function URL relay (the streamed body relayed as Lambda does);
//!   - local host: the same service in process behind `/chat`.
//!
//! The added latency of a path is its p50 minus the floor's p50. The Lambda
//! path is also split where the Runtime API reads the frame: the function's
//! part (over the floor, since both cross one socket) and the relay's.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use local_stack::{LocalStack, runtime_api::RuntimeApi};

use crate::{Error, QUESTIONS, chat_body, quiet_stack, report};

const TEXT: &[u8] = b"\"type\":\"text\"";
const FIRST_TOKEN_DELAY: Duration = Duration::from_millis(100);

pub async fn run(binary: &Path, requests: usize) -> Result<(), Error> {
    let stack = quiet_stack().await?;
    // Bedrock's first token takes hundreds of milliseconds; 100 ms lets the
    // frames sent before it (prelude, `start`) be acknowledged first, as they
    // would be, while the deltas after it come at once.
    stack.bedrock.set_first_token_delay(FIRST_TOKEN_DELAY);
    let function = Function::start(&stack, binary).await?;
    let client = reqwest::Client::builder().tcp_nodelay(true).build()?;
    let host = format!("{}/chat", stack.host_url());
    let (mut floor, mut lambda, mut local, mut lambda_total) = (vec![], vec![], vec![], vec![]);
    let (mut in_function, mut in_relay) = (vec![], vec![]);
    for n in 0..requests {
        floor.push(direct(&client, &stack, n).await?);
        let chat = through(&client, &function.url, &stack, n).await?;
        lambda.push(chat.added);
        lambda_total.push(chat.total);
        let (function_part, relay_part) = lambda_split(&function.api, &chat)?;
        in_function.push(function_part);
        in_relay.push(relay_part);
        local.push(through(&client, &host, &stack, n).await?.added);
        if stack.bedrock.streams().len() > 500 {
            stack.bedrock.reset();
        }
    }
    function.stop().await;
    stack.stop().await;

    println!(
        "first-token: {requests} chats per path, interleaved; stand-in first token after {} ms, deltas at once; timestamps at the client socket",
        FIRST_TOKEN_DELAY.as_millis()
    );
    let floor_p50 =
        report("floor: client reading the stand-in directly, first delta handed over -> read", &mut floor);
    let lambda_p50 = report(
        "Lambda path: release binary, Runtime API emulator relaying the stream, first delta -> first text frame",
        &mut lambda,
    );
    let function_p50 = report(
        "  of which the function: first delta handed over -> its first text frame read by the Runtime API",
        &mut in_function,
    );
    let relay_p50 = report("  of which the relay: Runtime API read -> the client read", &mut in_relay);
    let local_p50 = report("local host: the service in process, first delta -> first text frame", &mut local);
    println!("  added over the floor (p50 - floor p50)");
    println!(
        "    Lambda path {:.3} ms, local host {:.3} ms",
        ms(lambda_p50 - floor_p50),
        ms(local_p50 - floor_p50)
    );
    // The function's part crosses one socket, as the floor does; the relay
    // adds a second socket that the floor does not have.
    println!(
        "    Lambda path split: the function {:.3} ms (its part - floor p50), the relay {:.3} ms (one more socket)",
        ms(function_p50 - floor_p50),
        ms(relay_p50)
    );
    report(
        "Lambda path, request sent -> first text frame (config and KB cached; limits and budget in DynamoDB; minus the stand-in's 100 ms)",
        &mut lambda_total,
    );
    Ok(())
}

fn ms(seconds: f64) -> f64 {
    seconds * 1_000.0
}

/// The chat binary running under a Runtime API with a Function URL in front.
struct Function {
    api: RuntimeApi,
    child: tokio::process::Child,
    url: String,
}

impl Function {
    async fn start(stack: &LocalStack, binary: &Path) -> Result<Self, Error> {
        let api = RuntimeApi::start("picasso-chat-stream-bench", Duration::from_secs(60)).await?;
        let mut env = stack.function_env("ChatStreamFunction")?;
        env.push(("AWS_LAMBDA_LOG_LEVEL".into(), "WARN".into()));
        let child = api.spawn(binary, &env, &std::env::temp_dir().join("picasso-bench-chat.log"))?;
        let ready_by = Instant::now() + Duration::from_secs(20);
        while api.first_next().is_none() {
            if Instant::now() > ready_by {
                return Err(format!("{} never asked for an event", binary.display()).into());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let url = api.serve_function_url().await?;
        Ok(Self { api, child, url })
    }

    async fn stop(mut self) {
        let _ = self.child.kill().await;
        self.api.stop();
    }
}

/// One chat's first-token times.
struct Chat {
    /// When the stand-in handed its first delta to its socket.
    handed_over: Instant,
    /// First delta handed over -> first text frame read.
    added: Duration,
    /// Request sent -> first text frame read, without the stand-in's delay.
    total: Duration,
}

/// A chat through `url`.
async fn through(client: &reqwest::Client, url: &str, stack: &LocalStack, n: usize) -> Result<Chat, Error> {
    let sent = Instant::now();
    let mut response = client.post(url).body(chat_body(QUESTIONS[n % QUESTIONS.len()])).send().await?;
    let arrived = read_until(&mut response, TEXT).await?;
    let handed_over = first_delta(stack)?;
    Ok(Chat {
        handed_over,
        added: arrived.saturating_duration_since(handed_over),
        total: (arrived - sent).saturating_sub(FIRST_TOKEN_DELAY),
    })
}

/// The Lambda path's first-token time split at the Runtime API: (in the
/// function, up to the Runtime API reading the frame; in the relay, from there
/// to the client reading it).
fn lambda_split(api: &RuntimeApi, chat: &Chat) -> Result<(Duration, Duration), Error> {
    let invocation = api.last_invocation().ok_or("the Runtime API recorded no invocation")?;
    let (read, _) = invocation
        .chunks
        .iter()
        .find(|(_, chunk)| contains(chunk, TEXT))
        .ok_or("the function sent no text frame")?;
    let in_function = read.saturating_duration_since(chat.handed_over);
    Ok((in_function, chat.added.saturating_sub(in_function)))
}

/// The floor: ConverseStream straight from the stand-in, read by the same client.
async fn direct(client: &reqwest::Client, stack: &LocalStack, n: usize) -> Result<Duration, Error> {
    let request = serde_json::json!({
        "messages": [{"role": "user", "content": [{"text": QUESTIONS[n % QUESTIONS.len()]}]}],
        "inferenceConfig": {"maxTokens": 600}
    });
    let url = format!("{}/model/bench/converse-stream", stack.bedrock_url);
    let mut response = client.post(url).json(&request).send().await?;
    let arrived = read_until(&mut response, b"contentBlockDelta").await?;
    Ok(arrived.saturating_duration_since(first_delta(stack)?))
}

/// Reads the body until `marker` has arrived; when it did. Drains the rest.
async fn read_until(response: &mut reqwest::Response, marker: &[u8]) -> Result<Instant, Error> {
    let mut seen = Vec::new();
    let arrived = loop {
        let chunk = response.chunk().await?.ok_or("the stream ended before its first text")?;
        let now = Instant::now();
        seen.extend_from_slice(&chunk);
        if contains(&seen, marker) {
            break now;
        }
    };
    while response.chunk().await?.is_some() {}
    Ok(arrived)
}

fn contains(bytes: &[u8], marker: &[u8]) -> bool {
    bytes.windows(marker.len()).any(|w| w == marker)
}

/// When the stand-in handed the latest stream's first delta to its socket.
fn first_delta(stack: &LocalStack) -> Result<Instant, Error> {
    let record = stack.bedrock.streams().pop().ok_or("the stand-in recorded no stream")?;
    Ok(record.first_delta_at.ok_or("the stand-in sent no delta")?)
}
