//! Arguments of `picasso-ops` and the dispatch from a parsed command line to
//! the library functions. Resource names default to the stage's, from template.yaml.

use std::time::Duration;

use aws_smithy_types::DateTime;
use clap::{Args, Parser, Subcommand, builder::NonEmptyStringValueParser};
use domain::fulfillment::SubmissionStatus;
use lambda_edge::{Settings, settings::SettingsError};
use serde_json::Value;

use crate::{
    AwsError,
    redrive::{self, RedriveError},
    replay::{self, ReplayError, ReplayRequest},
    resources::{self, Consumer},
    sms_usage::{self, SmsUsageError},
    status::{self, StatusError},
    subject::{self, SubjectError},
    submissions::{self, Listing},
    time::{Month, TimeError, Window, parse_day_or_time, parse_time},
};

/// Operates the Picasso fulfillment pipeline; prints one JSON object.
#[derive(Debug, Parser)]
#[command(name = "picasso-ops", version)]
pub struct Cli {
    /// Deployment stage whose archive and queues to use
    #[arg(long, global = true, env = "STAGE", default_value = "local", value_parser = NonEmptyStringValueParser::new())]
    pub stage: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Replay archived FormSubmitted events of a time window onto the event bus
    Replay(ReplayArgs),
    /// Move a consumer's dead letters back to its queue
    Redrive(RedriveArgs),
    /// Show a submission's fulfillment status (never its form data)
    Status(StatusArgs),
    /// Show a tenant's SMS count for a month
    SmsUsage(SmsUsageArgs),
    /// List a tenant's submissions, newest first (personal data: to stdout only)
    Submissions(SubmissionsArgs),
    /// What is held about one person, and erasing it on request
    #[command(subcommand)]
    Subject(SubjectCommand),
    /// A tenant's funnel: conversations, messages, CTA clicks, forms started and completed, first-token p50
    Funnel(FunnelArgs),
}

#[derive(Debug, Args)]
pub struct FunnelArgs {
    /// The tenant (its tenant_id)
    #[arg(long, value_parser = NonEmptyStringValueParser::new())]
    pub tenant: String,
    /// Days back from today (UTC), today included
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=400))]
    pub days: u32,
    /// The funnel's table [default: FUNNEL_TABLE, else picasso-funnel-<stage>]
    #[arg(long, env = "FUNNEL_TABLE")]
    pub table: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum SubjectCommand {
    /// Every submission, idempotency record and archived copy holding the
    /// person's data, and where fulfillment sent it
    Access(SubjectArgs),
    /// Erase what `access` lists (a dry run that counts it, unless --confirm)
    Erase(EraseArgs),
}

#[derive(Debug, Args)]
pub struct SubjectArgs {
    /// The tenant (its tenant_id)
    #[arg(long, value_parser = NonEmptyStringValueParser::new())]
    pub tenant: String,
    /// The person's email address (compared trimmed and in lower case)
    #[arg(long, value_parser = parse_email)]
    pub email: String,
}

#[derive(Debug, Args)]
pub struct EraseArgs {
    #[command(flatten)]
    pub subject: SubjectArgs,
    /// Who asked, for the audit record: a ticket or request reference, not the person's name
    #[arg(long, value_parser = NonEmptyStringValueParser::new())]
    pub requested_by: String,
    /// Erase; without it, only count what would be erased
    #[arg(long)]
    pub confirm: bool,
}

fn parse_email(input: &str) -> Result<String, String> {
    let address = crate::subject::normalise_email(input);
    match address.split_once('@') {
        Some((local, domain)) if !local.is_empty() && domain.contains('.') && !address.contains(' ') => {
            Ok(address)
        }
        _ => Err("not an email address".to_owned()),
    }
}

#[derive(Debug, Args)]
pub struct SubmissionsArgs {
    /// The tenant (its tenant_id)
    #[arg(long, value_parser = NonEmptyStringValueParser::new())]
    pub tenant: String,
    /// From this day (2026-12-01, midnight UTC) or time (RFC 3339), inclusive
    #[arg(long, value_parser = parse_day_or_time)]
    pub since: Option<DateTime>,
    /// Up to this day or time, exclusive
    #[arg(long, value_parser = parse_day_or_time)]
    pub until: Option<DateTime>,
    /// Only submissions with this status
    #[arg(long, value_parser = parse_status)]
    pub status: Option<SubmissionStatus>,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Submissions read per DynamoDB Query page
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(i32).range(1..=1000))]
    pub page_size: i32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Csv,
    Json,
}

fn parse_status(input: &str) -> Result<SubmissionStatus, String> {
    SubmissionStatus::parse(input).ok_or_else(|| {
        let known: Vec<&str> = SubmissionStatus::ALL.iter().map(|s| s.as_str()).collect();
        format!("not a submission status; one of {}", known.join(", "))
    })
}

/// What a command prints: one JSON object, or text it formatted itself.
#[derive(Debug)]
pub enum Output {
    Json(Value),
    Text(String),
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Start of the window, RFC 3339 (e.g. 2026-05-01T00:00:00Z)
    #[arg(long, value_parser = parse_time)]
    pub from: DateTime,
    /// End of the window, RFC 3339, after --from
    #[arg(long, value_parser = parse_time)]
    pub to: DateTime,
    /// Archive to replay [default: picasso-form-submitted-<stage>]
    #[arg(long)]
    pub archive: Option<String>,
    /// Replay name [default: replay-<unix millis>]
    #[arg(long)]
    pub name: Option<String>,
    /// Print the started replay without waiting for it to finish
    #[arg(long)]
    pub no_wait: bool,
    /// How long to wait for the replay to finish
    #[arg(long, default_value_t = 900)]
    pub timeout_secs: u64,
}

#[derive(Debug, Args)]
pub struct RedriveArgs {
    /// Consumer whose dead letters to move
    #[arg(value_enum)]
    pub consumer: Consumer,
    /// Dead-letter queue name or URL [default: picasso-<consumer>-dlq-<stage>]
    #[arg(long)]
    pub dlq: Option<String>,
    /// Destination queue name or URL [default: picasso-<consumer>-<stage>]
    #[arg(long)]
    pub to: Option<String>,
    /// Move at most this many messages
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub max: Option<u32>,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[arg(value_parser = NonEmptyStringValueParser::new())]
    pub submission_id: String,
}

#[derive(Debug, Args)]
pub struct SmsUsageArgs {
    #[arg(value_parser = NonEmptyStringValueParser::new())]
    pub tenant_id: String,
    /// Month as YYYY-MM [default: the current UTC month]
    #[arg(long, value_parser = Month::parse)]
    pub month: Option<Month>,
}

#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    #[error("configuration")]
    Settings(#[from] SettingsError),
    #[error(transparent)]
    Time(#[from] TimeError),
    #[error(transparent)]
    Aws(#[from] AwsError),
    #[error(transparent)]
    Replay(#[from] ReplayError),
    #[error(transparent)]
    Redrive(#[from] RedriveError),
    #[error(transparent)]
    Status(#[from] StatusError),
    #[error(transparent)]
    SmsUsage(#[from] SmsUsageError),
    #[error("could not write the result as JSON")]
    Output(#[from] serde_json::Error),
    #[error("could not write the result as CSV")]
    Csv(#[from] csv::Error),
    #[error(transparent)]
    Subject(#[from] SubjectError),
    #[error("--since {since} is not before --until {until}")]
    EmptyListing { since: String, until: String },
}

/// Runs one command with settings from the environment; returns what to print.
pub async fn run(cli: Cli) -> Result<Output, OpsError> {
    let settings = Settings::from_env()?;
    let config = aws_adapters::config::sdk_config(&settings.region, settings.endpoint_url.as_deref()).await;
    let stage = cli.stage.as_str();
    let output = match cli.command {
        Command::Replay(args) => {
            let eventbridge = aws_sdk_eventbridge::Client::new(&config);
            let request = ReplayRequest {
                replay_name: args.name.unwrap_or_else(replay::default_replay_name),
                archive_name: args.archive.unwrap_or_else(|| resources::archive_name(stage)),
                event_bus_name: settings.event_bus_name.clone(),
                window: Window::new(args.from, args.to)?,
            };
            let started = replay::start_replay(&eventbridge, &request).await?;
            let mut replay = if args.no_wait {
                started
            } else {
                let timeout = Duration::from_secs(args.timeout_secs);
                replay::wait_for_replay(&eventbridge, started, timeout, replay::POLL_EVERY).await?
            };
            let dynamodb = aws_sdk_dynamodb::Client::new(&config);
            let table = &settings.form_submissions_table;
            replay.events_in_window =
                Some(replay::events_in_window(&dynamodb, table, &request.window).await?);
            serde_json::to_value(replay)?
        }
        Command::Redrive(args) => {
            let sqs = aws_sdk_sqs::Client::new(&config);
            let dlq = args.dlq.unwrap_or_else(|| resources::dead_letter_queue_name(args.consumer, stage));
            let queue = args.to.unwrap_or_else(|| resources::queue_name(args.consumer, stage));
            let dlq_url = redrive::queue_url(&sqs, &dlq).await?;
            let queue_url = redrive::queue_url(&sqs, &queue).await?;
            let max = args.max.map(|max| max as usize);
            serde_json::to_value(redrive::redrive(&sqs, &dlq_url, &queue_url, max).await?)?
        }
        Command::Status(args) => {
            let dynamodb = aws_sdk_dynamodb::Client::new(&config);
            let table = &settings.form_submissions_table;
            serde_json::to_value(status::submission_status(&dynamodb, table, &args.submission_id).await?)?
        }
        Command::SmsUsage(args) => {
            let dynamodb = aws_sdk_dynamodb::Client::new(&config);
            let month = match args.month {
                Some(month) => month,
                None => Month::current()?,
            };
            let table = &settings.sms_usage_table;
            serde_json::to_value(sms_usage::sms_usage(&dynamodb, table, &args.tenant_id, &month).await?)?
        }
        Command::Submissions(args) => {
            if let (Some(since), Some(until)) = (args.since, args.until)
                && since >= until
            {
                let (since, until) = (crate::time::rfc3339(&since), crate::time::rfc3339(&until));
                return Err(OpsError::EmptyListing { since, until });
            }
            let dynamodb = aws_sdk_dynamodb::Client::new(&config);
            let listing = Listing {
                tenant_id: args.tenant,
                since: args.since,
                until: args.until,
                status: args.status,
                page_size: args.page_size,
            };
            let found = submissions::list(&dynamodb, &settings.form_submissions_table, &listing).await?;
            return Ok(match args.format {
                Format::Json => Output::Json(submissions::to_json(&listing.tenant_id, &found)),
                Format::Csv => Output::Text(submissions::to_csv(&found)?),
                Format::Table => Output::Text(submissions::to_table(&found)),
            });
        }
        Command::Funnel(args) => {
            let table = args.table.unwrap_or_else(|| resources::funnel_table(stage));
            let funnel =
                aws_adapters::dynamodb::DynamoFunnel::new(aws_sdk_dynamodb::Client::new(&config), table);
            let now = u64::try_from(domain::time::now_epoch_millis() / 1000).unwrap_or(0);
            let days = crate::funnel::window(now, args.days);
            serde_json::to_value(crate::funnel::report(&funnel, &args.tenant, &days).await?)?
        }
        Command::Subject(command) => {
            let dynamodb = aws_sdk_dynamodb::Client::new(&config);
            let s3 = aws_adapters::s3::s3_client(&config);
            let tenants = aws_adapters::s3::s3_tenant_loader(&config, &settings.config_bucket);
            let funnel_table =
                std::env::var("FUNNEL_TABLE").unwrap_or_else(|_| resources::funnel_table(stage));
            let clients = subject::Clients {
                dynamodb: &dynamodb,
                s3: &s3,
                table: &settings.form_submissions_table,
                funnel_table: &funnel_table,
                submissions_bucket: &settings.submissions_bucket,
            };
            match command {
                SubjectCommand::Access(args) => {
                    let report = subject::access(&clients, &tenants, &args.tenant, &args.email).await?;
                    serde_json::to_value(report)?
                }
                SubjectCommand::Erase(args) => {
                    let SubjectArgs { tenant, email } = &args.subject;
                    let report = subject::access(&clients, &tenants, tenant, email).await?;
                    let dry_run = !args.confirm;
                    serde_json::to_value(
                        subject::erase(&clients, &report, &args.requested_by, dry_run).await?,
                    )?
                }
            }
        }
    };
    Ok(Output::Json(output))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("picasso-ops").chain(args.iter().copied()))
    }

    #[test]
    fn the_debug_assertions_of_the_command_line_hold() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn replay_takes_a_window_and_defaults_to_waiting() {
        let cli =
            parse(&["replay", "--from", "2026-05-01T00:00:00Z", "--to", "2026-05-02T00:00:00Z"]).unwrap();
        assert_eq!(cli.stage, "local");
        let Command::Replay(args) = cli.command else { panic!("not a replay: {cli:?}") };
        assert_eq!(args.from, parse_time("2026-05-01T00:00:00Z").unwrap());
        assert!(!args.no_wait);
        assert_eq!(args.timeout_secs, 900);
        assert_eq!((args.archive, args.name), (None, None));
    }

    #[test]
    fn a_malformed_replay_time_is_a_usage_error_that_names_the_format() {
        let err = parse(&["replay", "--from", "last tuesday", "--to", "2026-05-02T00:00:00Z"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::ValueValidation);
        assert!(err.to_string().contains("RFC 3339"), "{err}");
    }

    #[test]
    fn the_stage_option_is_global() {
        let cli = parse(&["redrive", "sms", "--stage", "staging", "--max", "5"]).unwrap();
        assert_eq!(cli.stage, "staging");
        let Command::Redrive(args) = cli.command else { panic!("not a redrive: {cli:?}") };
        assert_eq!((args.consumer, args.max, args.dlq, args.to), (Consumer::Sms, Some(5), None, None));
    }

    #[test]
    fn redrive_knows_only_the_three_consumers_and_a_positive_max() {
        assert!(parse(&["redrive", "fax"]).is_err());
        assert!(parse(&["redrive", "email", "--max", "0"]).is_err());
        assert!(parse(&["redrive", "handler", "--dlq", "https://sqs/q", "--to", "q"]).is_ok());
    }

    #[test]
    fn sms_usage_validates_the_month() {
        let cli = parse(&["sms-usage", "tenant-1", "--month", "2026-05"]).unwrap();
        let Command::SmsUsage(args) = cli.command else { panic!("not sms-usage: {cli:?}") };
        assert_eq!(args.month, Some(Month::parse("2026-05").unwrap()));
        assert!(parse(&["sms-usage", "tenant-1", "--month", "May"]).is_err());
    }

    #[test]
    fn submissions_take_a_tenant_days_or_times_a_known_status_and_a_format() {
        let cli =
            parse(&["submissions", "--tenant", "T1", "--since", "2026-12-01", "--status", "held"]).unwrap();
        let Command::Submissions(args) = cli.command else { panic!("not submissions: {cli:?}") };
        assert_eq!(args.since, Some(parse_time("2026-12-01T00:00:00Z").unwrap()));
        assert_eq!(
            (args.status, args.format, args.page_size),
            (Some(SubmissionStatus::Held), Format::Table, 100)
        );
        assert!(
            parse(&["submissions", "--tenant", "T1", "--format", "csv", "--until", "2026-12-02T12:00:00Z"])
                .is_ok()
        );
        assert!(parse(&["submissions"]).is_err(), "the tenant is required");
        let err = parse(&["submissions", "--tenant", "T1", "--status", "done"]).unwrap_err();
        assert!(err.to_string().contains("pending_fulfillment"), "{err}");
        assert!(parse(&["submissions", "--tenant", "T1", "--since", "Monday"]).is_err());
    }

    #[test]
    fn erasure_is_a_dry_run_unless_confirmed_and_names_who_asked() {
        let cli = parse(&[
            "subject",
            "erase",
            "--tenant",
            "T1",
            "--email",
            " Ana@Example.org",
            "--requested-by",
            "DSR-42",
        ])
        .unwrap();
        let Command::Subject(SubjectCommand::Erase(args)) = cli.command else { panic!("not erase: {cli:?}") };
        assert_eq!(args.subject.email, "ana@example.org");
        assert!(!args.confirm, "a dry run by default");
        assert!(
            parse(&["subject", "erase", "--tenant", "T1", "--email", "a@b.org"]).is_err(),
            "who asked is required"
        );
        assert!(parse(&["subject", "access", "--tenant", "T1", "--email", "not-an-address"]).is_err());
    }

    #[test]
    fn the_funnel_defaults_to_thirty_days_and_refuses_more_than_the_funnel_keeps() {
        let cli = parse(&["funnel", "--tenant", "T1"]).unwrap();
        let Command::Funnel(args) = cli.command else { panic!("not funnel: {cli:?}") };
        assert_eq!(args.days, 30);
        assert!(parse(&["funnel", "--tenant", "T1", "--days", "401"]).is_err());
        assert!(parse(&["funnel", "--tenant", "T1", "--days", "0"]).is_err());
    }

    #[test]
    fn ids_may_not_be_empty() {
        assert!(parse(&["status", ""]).is_err());
        assert!(parse(&["sms-usage", ""]).is_err());
        assert!(parse(&["status", "form_1_abc"]).is_ok());
    }
}
