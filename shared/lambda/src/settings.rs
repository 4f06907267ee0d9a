//! Process configuration from environment variables, read once at start-up.
//!
//! The defaults are the seed deployment's (production) names, so the local
//! stack runs with no variables set. In AWS (where `AWS_LAMBDA_FUNCTION_NAME`
//! is set) the resource names must be given explicitly: a missing one is a
//! start-up error rather than a silent write to another stage's table.

pub use domain::edge::{DEFAULT_WIDGET_ORIGINS, default_widget_origins};
use std::{collections::HashMap, time::Duration};

use domain::limits::SubjectKey;

pub const DEFAULT_CONFIG_BUCKET: &str = "myrecruiter-picasso";
pub const DEFAULT_FORM_SUBMISSIONS_TABLE: &str = "picasso-form-submissions";
pub const DEFAULT_SMS_USAGE_TABLE: &str = "picasso-sms-usage";
pub const DEFAULT_RATE_LIMITS_TABLE: &str = "picasso-rate-limits";
pub const DEFAULT_REGION: &str = "us-east-1";
pub const DEFAULT_BEDROCK_MODEL_ID: &str = "us.anthropic.claude-haiku-4-5-20251001-v1:0";
pub const DEFAULT_SMS_MONTHLY_LIMIT: u32 = 100;
pub const DEFAULT_SES_FROM_EMAIL: &str = "noreply@picasso.ai";
pub const DEFAULT_EVENT_BUS_NAME: &str = "picasso-events";
pub const DEFAULT_SUBMISSIONS_BUCKET: &str = "tenant-form-submissions";
pub const DEFAULT_FUNNEL_TABLE: &str = "picasso-funnel";
pub const DEFAULT_MODEL_FIRST_EVENT_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_MODEL_EVENT_GAP_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_RETRIEVE_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub config_bucket: String,
    pub form_submissions_table: String,
    pub sms_usage_table: String,
    /// `RATE_LIMITS_TABLE`: the abuse limits' fixed-window counters (`shared::limits`).
    pub rate_limits_table: String,
    pub region: String,
    pub bedrock_model_id: String,
    pub sms_monthly_limit: u32,
    pub ses_from_email: String,
    pub event_bus_name: String,
    /// `SUBMISSIONS_BUCKET`: where `s3` fulfillment archives a submission when
    /// the form names no `fulfillment.bucket`.
    pub submissions_bucket: String,
    /// `WEBHOOK_ALLOW_PRIVATE=true` (local development only): webhooks may go to
    /// plain HTTP and to loopback, private and link-local addresses.
    pub webhook_allow_private: bool,
    /// `AWS_ENDPOINT_URL`, when every AWS client is pointed at an emulator.
    pub endpoint_url: Option<String>,
    /// `AWS_ENDPOINT_URL_BEDROCK_RUNTIME`: where ConverseStream goes (the local stand-in).
    pub bedrock_runtime_endpoint_url: Option<String>,
    /// `AWS_ENDPOINT_URL_BEDROCK_AGENT_RUNTIME`: where knowledge-base Retrieve goes.
    pub bedrock_agent_runtime_endpoint_url: Option<String>,
    /// `AWS_ENDPOINT_URL_LAMBDA`: where handler Invoke goes (the local stand-in).
    pub lambda_endpoint_url: Option<String>,
    /// `MODEL_FIRST_EVENT_TIMEOUT_MS`: how long the model may take to start answering.
    pub model_first_event_timeout: Duration,
    /// `MODEL_EVENT_GAP_TIMEOUT_MS`: the longest silence between two model events.
    pub model_event_gap_timeout: Duration,
    /// `RETRIEVE_TIMEOUT_MS`: knowledge-base Retrieve; later, the answer goes without context.
    pub retrieve_timeout: Duration,
    /// `WIDGET_ORIGINS` (comma-separated): the widget's own origins, always
    /// answered for chat and forms whatever a tenant's `allowed_origins` says.
    pub widget_origins: Vec<String>,
    /// `TRUSTED_PROXY_SECRET`: set when CloudFront fronts the URLs and adds it as
    /// `x-origin-verify`; the per-visitor limits then count the viewer's address.
    pub trusted_proxy_secret: Option<String>,
    /// `PARKED_SUBMISSIONS_QUEUE_URL`: where a submission goes when the table
    /// cannot take it in time (form-intake, chat-stream); the sweeper drains it.
    pub parked_submissions_queue_url: Option<String>,
    /// `FUNNEL_TABLE`: the funnel's counts (funnel-projector, `picasso-ops funnel`).
    pub funnel_table: String,
    /// `VISITOR_KEY_SECRET` (at least 32 bytes): the key of the visitors'
    /// hashes in counter keys; see [`Settings::visitor_key`].
    pub visitor_key: Option<SubjectKey>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SettingsError {
    #[error("environment variable {0} is required when running in AWS Lambda")]
    Missing(&'static str),
    #[error("environment variable {name} is not valid: {reason}")]
    Invalid { name: &'static str, reason: String },
}

impl Settings {
    /// A function's settings, read once in its `main`: in Lambda (where
    /// `AWS_LAMBDA_FUNCTION_NAME` is set) each of `required` (the resource
    /// names the function reads, say `FORM_SUBMISSIONS_TABLE`) must be set, so a
    /// function never writes to another stage's table; nothing else is. A
    /// failure is logged as one JSON line and the process exits, as Lambda
    /// reports an init failure.
    pub fn for_function(required: &[&'static str]) -> Self {
        match Self::from_vars_requiring(std::env::vars().collect(), required) {
            Ok(settings) => settings,
            Err(err) => {
                tracing::error!(error = %domain::report::error_chain(&err), "settings could not be read");
                std::process::exit(1);
            }
        }
    }

    /// The tools' settings from the process environment (nothing required).
    pub fn from_env() -> Result<Self, SettingsError> {
        Self::from_vars(std::env::vars().collect())
    }

    /// Builds settings from an explicit variable map (the environment, or a test's).
    pub fn from_vars(vars: HashMap<String, String>) -> Result<Self, SettingsError> {
        Self::from_vars_requiring(vars, &[])
    }

    /// The same, with the variables a function requires when it runs in Lambda.
    pub fn from_vars_requiring(
        vars: HashMap<String, String>,
        required: &[&'static str],
    ) -> Result<Self, SettingsError> {
        let get = |name: &str| vars.get(name).map(|v| v.trim()).filter(|v| !v.is_empty());
        let in_aws = get("AWS_LAMBDA_FUNCTION_NAME").is_some();
        if let Some(missing) = required.iter().find(|name| in_aws && get(name).is_none()) {
            return Err(SettingsError::Missing(missing));
        }
        let or = |name: &str, default: &str| get(name).unwrap_or(default).to_owned();
        let millis = |name: &'static str, default: Duration| match get(name) {
            None => Ok(default),
            Some(raw) => raw.parse().map(Duration::from_millis).map_err(|_| SettingsError::Invalid {
                name,
                reason: format!("expected a whole number of milliseconds, got {raw:?}"),
            }),
        };
        let sms_monthly_limit = match get("SMS_MONTHLY_LIMIT") {
            None => DEFAULT_SMS_MONTHLY_LIMIT,
            Some(raw) => raw.parse().map_err(|_| SettingsError::Invalid {
                name: "SMS_MONTHLY_LIMIT",
                reason: format!("expected a whole number, got {raw:?}"),
            })?,
        };
        Ok(Self {
            config_bucket: or("CONFIG_BUCKET", DEFAULT_CONFIG_BUCKET),
            form_submissions_table: or("FORM_SUBMISSIONS_TABLE", DEFAULT_FORM_SUBMISSIONS_TABLE),
            sms_usage_table: or("SMS_USAGE_TABLE", DEFAULT_SMS_USAGE_TABLE),
            rate_limits_table: or("RATE_LIMITS_TABLE", DEFAULT_RATE_LIMITS_TABLE),
            region: get("AWS_REGION")
                .or_else(|| get("AWS_DEFAULT_REGION"))
                .unwrap_or(DEFAULT_REGION)
                .to_owned(),
            bedrock_model_id: or("BEDROCK_MODEL_ID", DEFAULT_BEDROCK_MODEL_ID),
            sms_monthly_limit,
            ses_from_email: or("SES_FROM_EMAIL", DEFAULT_SES_FROM_EMAIL),
            event_bus_name: or("EVENT_BUS_NAME", DEFAULT_EVENT_BUS_NAME),
            submissions_bucket: or("SUBMISSIONS_BUCKET", DEFAULT_SUBMISSIONS_BUCKET),
            webhook_allow_private: match get("WEBHOOK_ALLOW_PRIVATE") {
                None => false,
                Some(raw) => raw.parse().map_err(|_| SettingsError::Invalid {
                    name: "WEBHOOK_ALLOW_PRIVATE",
                    reason: format!("expected true or false, got {raw:?}"),
                })?,
            },
            endpoint_url: get("AWS_ENDPOINT_URL").map(str::to_owned),
            bedrock_runtime_endpoint_url: get("AWS_ENDPOINT_URL_BEDROCK_RUNTIME").map(str::to_owned),
            bedrock_agent_runtime_endpoint_url: get("AWS_ENDPOINT_URL_BEDROCK_AGENT_RUNTIME")
                .map(str::to_owned),
            lambda_endpoint_url: get("AWS_ENDPOINT_URL_LAMBDA").map(str::to_owned),
            model_first_event_timeout: millis(
                "MODEL_FIRST_EVENT_TIMEOUT_MS",
                DEFAULT_MODEL_FIRST_EVENT_TIMEOUT,
            )?,
            model_event_gap_timeout: millis("MODEL_EVENT_GAP_TIMEOUT_MS", DEFAULT_MODEL_EVENT_GAP_TIMEOUT)?,
            retrieve_timeout: millis("RETRIEVE_TIMEOUT_MS", DEFAULT_RETRIEVE_TIMEOUT)?,
            widget_origins: match get("WIDGET_ORIGINS") {
                None => default_widget_origins(),
                Some(raw) => parse_origins(raw)?,
            },
            trusted_proxy_secret: get("TRUSTED_PROXY_SECRET").map(str::to_owned),
            parked_submissions_queue_url: get("PARKED_SUBMISSIONS_QUEUE_URL").map(str::to_owned),
            funnel_table: or("FUNNEL_TABLE", DEFAULT_FUNNEL_TABLE),
            visitor_key: match get("VISITOR_KEY_SECRET") {
                None => None,
                Some(raw) => Some(SubjectKey::new(raw.as_bytes()).map_err(|short| {
                    SettingsError::Invalid { name: "VISITOR_KEY_SECRET", reason: short.to_string() }
                })?),
            },
        })
    }

    /// The key of visitors' hashes: `VISITOR_KEY_SECRET`, else (outside
    /// Lambda, where that variable is required of the functions that count
    /// visitors) one random key of this process.
    pub fn visitor_key(&self) -> SubjectKey {
        self.visitor_key.clone().unwrap_or_else(SubjectKey::of_this_process)
    }
}

/// `https://a.example, http://127.0.0.1:3000`: each a scheme and host, no path.
fn parse_origins(raw: &str) -> Result<Vec<String>, SettingsError> {
    raw.split(',')
        .map(str::trim)
        .filter(|origin| !origin.is_empty())
        .map(|origin| {
            let origin = origin.trim_end_matches('/');
            let host = origin.strip_prefix("https://").or_else(|| origin.strip_prefix("http://"));
            match host {
                Some(host) if !host.is_empty() && !host.contains('/') => Ok(origin.to_owned()),
                _ => Err(SettingsError::Invalid {
                    name: "WIDGET_ORIGINS",
                    reason: format!("expected origins like https://chat.example.org, got {origin:?}"),
                }),
            }
        })
        .collect()
}

/// The function's SDK configuration: the settings' region and endpoint, the
/// credentials Lambda puts in the environment (see
/// [`aws_adapters::config::function_sdk_config`]).
pub fn function_sdk_config(settings: &Settings) -> aws_types::SdkConfig {
    aws_adapters::config::function_sdk_config(&settings.region, settings.endpoint_url.as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn locally_every_setting_has_the_seed_default() {
        let settings = Settings::from_vars(vars(&[])).unwrap();
        assert_eq!(settings.config_bucket, "myrecruiter-picasso");
        assert_eq!(settings.form_submissions_table, "picasso-form-submissions");
        assert_eq!(settings.sms_usage_table, "picasso-sms-usage");
        assert_eq!(settings.rate_limits_table, "picasso-rate-limits");
        assert_eq!(settings.region, "us-east-1");
        assert_eq!(settings.sms_monthly_limit, 100);
        assert_eq!(settings.ses_from_email, "noreply@picasso.ai");
        assert_eq!(settings.event_bus_name, "picasso-events");
        assert_eq!(settings.endpoint_url, None);
        assert_eq!(settings.submissions_bucket, "tenant-form-submissions");
        assert!(!settings.webhook_allow_private, "webhooks refuse private targets unless told otherwise");
        assert_eq!(settings.model_first_event_timeout, Duration::from_secs(10));
        assert_eq!(settings.model_event_gap_timeout, Duration::from_secs(10));
        assert_eq!(settings.retrieve_timeout, Duration::from_secs(3));
        assert_eq!(
            settings.widget_origins,
            ["https://chat.myrecruiter.ai", "https://staging.chat.myrecruiter.ai"]
        );
    }

    #[test]
    fn widget_origins_are_read_as_a_list_and_a_path_is_refused() {
        let settings =
            Settings::from_vars(vars(&[("WIDGET_ORIGINS", "https://w.example/, http://127.0.0.1:3000")]))
                .unwrap();
        assert_eq!(settings.widget_origins, ["https://w.example", "http://127.0.0.1:3000"]);
        let err = Settings::from_vars(vars(&[("WIDGET_ORIGINS", "https://w.example/app")])).unwrap_err();
        assert!(err.to_string().contains("WIDGET_ORIGINS"), "{err}");
    }

    #[test]
    fn model_and_retrieve_deadlines_are_read_in_milliseconds() {
        let settings = Settings::from_vars(vars(&[
            ("MODEL_FIRST_EVENT_TIMEOUT_MS", "1500"),
            ("MODEL_EVENT_GAP_TIMEOUT_MS", "700"),
            ("RETRIEVE_TIMEOUT_MS", "250"),
        ]))
        .unwrap();
        assert_eq!(settings.model_first_event_timeout, Duration::from_millis(1500));
        assert_eq!(settings.model_event_gap_timeout, Duration::from_millis(700));
        assert_eq!(settings.retrieve_timeout, Duration::from_millis(250));
        let err = Settings::from_vars(vars(&[("RETRIEVE_TIMEOUT_MS", "3s")])).unwrap_err();
        assert!(err.to_string().contains("RETRIEVE_TIMEOUT_MS"), "{err}");
    }

    #[test]
    fn in_lambda_a_function_requires_the_names_it_reads_and_nothing_else() {
        let required = ["CONFIG_BUCKET", "FORM_SUBMISSIONS_TABLE"];
        let err = Settings::from_vars_requiring(
            vars(&[("AWS_LAMBDA_FUNCTION_NAME", "chat"), ("CONFIG_BUCKET", "b")]),
            &required,
        )
        .unwrap_err();
        assert_eq!(err, SettingsError::Missing("FORM_SUBMISSIONS_TABLE"));
        let settings = Settings::from_vars_requiring(
            vars(&[("AWS_LAMBDA_FUNCTION_NAME", "sweeper"), ("FORM_SUBMISSIONS_TABLE", "t")]),
            &["FORM_SUBMISSIONS_TABLE"],
        )
        .expect("a sweeper needs no bucket, SMS table or counters table");
        assert_eq!(settings.form_submissions_table, "t");
        let outside_lambda = Settings::from_vars_requiring(vars(&[]), &required).unwrap();
        assert_eq!(outside_lambda.config_bucket, DEFAULT_CONFIG_BUCKET, "the seed's defaults outside Lambda");
    }

    #[test]
    fn the_visitor_key_is_read_hidden_from_debug_and_a_short_one_is_refused() {
        let secret = "k".repeat(64);
        let settings = Settings::from_vars(vars(&[("VISITOR_KEY_SECRET", &secret)])).unwrap();
        assert_eq!(settings.visitor_key(), SubjectKey::new(secret.as_bytes()).unwrap());
        assert!(!format!("{settings:?}").contains(&secret), "the secret never reaches a log");
        let err = Settings::from_vars(vars(&[("VISITOR_KEY_SECRET", "short")])).unwrap_err();
        assert!(matches!(err, SettingsError::Invalid { name: "VISITOR_KEY_SECRET", .. }), "{err}");
        let unset = Settings::from_vars(vars(&[])).unwrap();
        assert_eq!(
            unset.visitor_key(),
            SubjectKey::of_this_process(),
            "outside Lambda: the process's own key"
        );
    }

    #[test]
    fn a_non_numeric_sms_limit_is_refused_with_the_variable_named() {
        let err = Settings::from_vars(vars(&[("SMS_MONTHLY_LIMIT", "lots")])).unwrap_err();
        assert!(err.to_string().contains("SMS_MONTHLY_LIMIT"), "{err}");
    }

    #[test]
    fn the_endpoint_override_is_read() {
        let settings = Settings::from_vars(vars(&[("AWS_ENDPOINT_URL", "http://127.0.0.1:4566")])).unwrap();
        assert_eq!(settings.endpoint_url.as_deref(), Some("http://127.0.0.1:4566"));
    }
}
