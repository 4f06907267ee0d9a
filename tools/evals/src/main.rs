//! `picasso-evals [--live] [--only TEXT] [--scenarios DIR]`: runs the answer
//! scenarios and prints a table; exits 1 when any expectation is missed.
//! Scripted (the default, in CI): the model says what each scenario scripts,
//! so the prompt we build, the frames and the CTA choice are checked exactly.
//! `--live`: real Bedrock (the default AWS credentials, `BEDROCK_MODEL_ID`
//! and the tenant's model), where the expectations on the answer's words
//! judge the model.

use std::{collections::HashMap, path::PathBuf, process::ExitCode};

use evals::{Outcome, ScriptedModel, load_all, repo_root, run};

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let mut live = false;
    let mut only: Option<String> = None;
    let mut dir = repo_root().join("evals/scenarios");
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--live" => live = true,
            "--only" => only = args.next(),
            "--scenarios" => dir = args.next().map(PathBuf::from).unwrap_or(dir),
            other => {
                eprintln!("picasso-evals: unknown argument {other:?} (--live, --only TEXT, --scenarios DIR)");
                return ExitCode::from(2);
            }
        }
    }
    if live && !has_credentials() {
        eprintln!(
            "picasso-evals --live needs AWS credentials for Bedrock (AWS_PROFILE, AWS_ACCESS_KEY_ID, or a role); none found"
        );
        return ExitCode::from(2);
    }
    let scenarios = match load_all(&dir) {
        Ok(scenarios) => scenarios,
        Err(err) => {
            eprintln!("picasso-evals: {}", domain::report::error_chain(&err));
            return ExitCode::from(2);
        }
    };
    let mut outcomes: Vec<Outcome> = Vec::new();
    for scenario in scenarios.iter().filter(|s| only.as_deref().is_none_or(|o| s.id.contains(o))) {
        let outcome = if live {
            run(scenario, bedrock().await, true).await
        } else {
            run(scenario, ScriptedModel::new(&scenario.scripted), false).await
        };
        match outcome {
            Ok(outcome) => outcomes.push(outcome),
            Err(err) => {
                eprintln!("picasso-evals: {}: {}", scenario.id, domain::report::error_chain(&err));
                return ExitCode::from(2);
            }
        }
    }
    print_table(&outcomes, live);
    if outcomes.iter().any(|o| !o.failures.is_empty()) { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}

fn print_table(outcomes: &[Outcome], live: bool) {
    let width = outcomes.iter().map(|o| o.id.len()).max().unwrap_or(8).max(8);
    println!(
        "evals ({}): {} scenarios",
        if live { "live Bedrock" } else { "scripted model" },
        outcomes.len()
    );
    println!("{:<width$}  {:<10}  {:>6}  result", "scenario", "covers", "checks");
    for outcome in outcomes {
        let result = if outcome.failures.is_empty() {
            "pass".to_owned()
        } else {
            format!("FAIL ({})", outcome.failures.len())
        };
        println!("{:<width$}  {:<10}  {:>6}  {result}", outcome.id, outcome.covers, outcome.checked);
    }
    let mut by_cover: HashMap<&str, (usize, usize)> = HashMap::new();
    for outcome in outcomes {
        let entry = by_cover.entry(&outcome.covers).or_default();
        entry.0 += 1;
        entry.1 += usize::from(outcome.failures.is_empty());
    }
    let mut covers: Vec<_> = by_cover.into_iter().collect();
    covers.sort();
    let summary: Vec<String> = covers.iter().map(|(c, (n, ok))| format!("{c} {ok}/{n}")).collect();
    println!("passed by behaviour: {}", summary.join(", "));
    for outcome in outcomes.iter().filter(|o| !o.failures.is_empty()) {
        for failure in &outcome.failures {
            println!("  {}: {failure}", outcome.id);
        }
    }
}

fn has_credentials() -> bool {
    ["AWS_ACCESS_KEY_ID", "AWS_PROFILE", "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_WEB_IDENTITY_TOKEN_FILE"]
        .iter()
        .any(|name| std::env::var_os(name).is_some_and(|v| !v.is_empty()))
}

/// Bedrock as the chat function reaches it (region and endpoint from the environment).
async fn bedrock() -> aws_adapters::bedrock::BedrockModel {
    let settings = lambda_edge::Settings::from_vars(std::env::vars().collect()).unwrap_or_else(|err| {
        eprintln!("picasso-evals: {}", domain::report::error_chain(&err));
        std::process::exit(2)
    });
    let sdk_config = lambda_edge::settings::function_sdk_config(&settings);
    aws_adapters::bedrock::BedrockModel::new(aws_adapters::bedrock::bedrock_runtime_client(
        &sdk_config,
        settings.bedrock_runtime_endpoint_url.as_deref(),
        settings.model_first_event_timeout,
    ))
}
