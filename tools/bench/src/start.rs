//! The release binaries as Lambda runs them: under the Runtime API emulator,
//! with the template's environment for their function.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use local_stack::runtime_api::{RuntimeApi, function_url_event};

use crate::{Error, QUESTIONS, chat_body, quiet_stack, report};

/// Each function's crate (its binary's name) and its template logical id.
const FUNCTIONS: [(&str, &str); 7] = [
    ("chat-stream", "ChatStreamFunction"),
    ("form-intake", "FormIntakeFunction"),
    ("outbox-sweeper", "OutboxSweeperFunction"),
    ("email-sender", "EmailSenderFunction"),
    ("sms-sender", "SmsSenderFunction"),
    ("handler-dispatch", "HandlerDispatchFunction"),
    ("funnel-projector", "FunnelProjectorFunction"),
];

/// Start-to-ready of every function binary in `dir`, warm page cache, then cold.
pub async fn run(dir: &Path, starts: usize) -> Result<(), Error> {
    let stack = quiet_stack().await?;
    println!(
        "cold-start: spawn -> first GET /runtime/invocation/next, {starts} starts each, {}",
        dir.display()
    );
    let can_drop = drop_page_cache().is_ok();
    for (name, logical_id) in FUNCTIONS {
        let binary = dir.join(name);
        let env = stack.function_env(logical_id)?;
        let mut warm = Vec::with_capacity(starts);
        let mut cold = Vec::with_capacity(starts);
        let mut cold_faults = Vec::with_capacity(starts);
        for _ in 0..starts {
            warm.push(start_to_ready(&binary, &env).await?.0);
            if can_drop {
                drop_page_cache()?;
                let (took, faults) = start_to_ready(&binary, &env).await?;
                cold.push(took);
                cold_faults.push(faults);
            }
        }
        report(&format!("{name}, warm page cache"), &mut warm);
        if can_drop {
            report(&format!("{name}, page cache dropped before each start"), &mut cold);
            cold_faults.sort_unstable();
            println!(
                "    major page faults by ready (pages read from disk), p50 {}",
                cold_faults.get(cold_faults.len() / 2).copied().unwrap_or_default()
            );
        }
    }
    if !can_drop {
        println!("  (page cache not dropped: writing /proc/sys/vm/drop_caches needs root)");
    }
    stack.stop().await;
    Ok(())
}

/// How long from spawn to the first `next`, and the major page faults the process had taken by then.
async fn start_to_ready(binary: &Path, env: &[(String, String)]) -> Result<(Duration, u64), Error> {
    let api = RuntimeApi::start("picasso-bench", Duration::from_secs(30)).await?;
    let log = std::env::temp_dir().join("picasso-bench-start.log");
    let spawned = Instant::now();
    let mut child = api.spawn(binary, env, &log)?;
    let ready_by = spawned + Duration::from_secs(10);
    let pid = child.id();
    let ready = loop {
        if let Some(ready) = api.first_next() {
            break ready;
        }
        if Instant::now() > ready_by {
            let output = std::fs::read_to_string(&log).unwrap_or_default();
            return Err(format!("{} never asked for an event:\n{output}", binary.display()).into());
        }
        tokio::time::sleep(Duration::from_micros(200)).await;
    };
    let faults = pid.map(major_faults).unwrap_or_default();
    let _ = child.kill().await;
    api.stop();
    Ok((ready.saturating_duration_since(spawned), faults))
}

/// `majflt`, field 12 of `/proc/<pid>/stat` (the ninth after the name's closing parenthesis).
fn major_faults(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after_name = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or_default();
    after_name.split_whitespace().nth(9).and_then(|n| n.parse().ok()).unwrap_or_default()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn drop_page_cache() -> std::io::Result<()> {
    std::process::Command::new("sync").status()?;
    std::fs::write("/proc/sys/vm/drop_caches", "3")
}

/// Peak RSS and CPU of the chat binary over `chats` sequential chats.
pub async fn rss(binary: &Path, chats: usize) -> Result<(), Error> {
    let stack = quiet_stack().await?;
    let api = RuntimeApi::start("picasso-bench-rss", Duration::from_secs(60)).await?;
    let mut env = stack.function_env("ChatStreamFunction")?;
    env.push(("AWS_LAMBDA_LOG_LEVEL".into(), "WARN".into()));
    let mut child = api.spawn(binary, &env, &std::env::temp_dir().join("picasso-bench-rss.log"))?;
    let pid = child.id().ok_or("the binary exited at once")?;
    let started = Instant::now();
    let ids: Vec<String> = (0..chats)
        .map(|n| api.invoke(function_url_event("POST", "", &chat_body(QUESTIONS[n % QUESTIONS.len()]))))
        .collect();
    let mut with_error = 0;
    for id in &ids {
        let invocation =
            api.wait(id, Duration::from_secs(60)).await.ok_or("a chat did not finish in 60 s")?;
        let body = invocation.body();
        if !contains(&body, b"\"type\":\"text\"") || contains(&body, b"\"type\":\"error\"") {
            with_error += 1;
        }
    }
    let elapsed = started.elapsed();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let field =
        |name: &str| status.lines().find(|l| l.starts_with(name)).map(|l| l[name.len()..].trim().to_owned());
    let _ = child.kill().await;
    api.stop();
    stack.stop().await;
    // utime and stime, fields 14 and 15, in clock ticks (100 per second on Linux).
    let after_name = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or_default();
    let ticks: Vec<u64> =
        after_name.split_whitespace().skip(11).take(2).filter_map(|t| t.parse().ok()).collect();
    let cpu_ms = ticks.iter().sum::<u64>() as f64 * 10.0;
    println!("rss: {chats} sequential chats through {} ({:.1} s)", binary.display(), elapsed.as_secs_f64());
    println!("  chats without a text frame or with an error frame: {with_error}");
    println!("  peak RSS (VmHWM)  {}", field("VmHWM:").unwrap_or_default());
    println!("  RSS at the end    {}", field("VmRSS:").unwrap_or_default());
    println!(
        "  process CPU per chat (user + system, start included, SDK and HTTP to the emulator) {:.2} ms",
        cpu_ms / chats.max(1) as f64
    );
    Ok(())
}
