//! `picasso-ops`: see the library's documentation for what each command does.

use std::{io::IsTerminal, process::ExitCode};

use clap::Parser;
use ops::cli::{Cli, Output, run};
use tracing_subscriber::{Layer, layer::SubscriberExt, util::SubscriberInitExt};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // Progress goes to stderr, so stdout holds only the result.
    // Our progress at info; the SDK's own info lines (credential chains) only with RUST_LOG.
    let progress = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .with_filter(lambda_edge::telemetry::log_filter("warn,ops=info"));
    tracing_subscriber::registry().with(progress).init();
    let printed = run(cli).await.and_then(|output| match output {
        Output::Json(value) => Ok(serde_json::to_string_pretty(&value)?),
        Output::Text(text) => Ok(text),
    });
    match printed {
        Ok(text) => {
            println!("{text}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("picasso-ops: {}", domain::report::error_chain(&err));
            ExitCode::FAILURE
        }
    }
}
