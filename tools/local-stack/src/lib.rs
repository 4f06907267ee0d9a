//! The whole system on one machine: the AWS emulator, every resource that
//! `template.yaml` declares, the demo tenant, a verified SES sender, the
//! Bedrock stand-in, and the local host. `LocalStack::start` is used by the
//! `local-stack` binary and by the end-to-end tests, which start one isolated
//! stack per test on free ports.

pub mod bedrock;
pub mod consumers;
pub mod demo;
pub mod emulator;
pub mod host;
pub mod lambda;
pub mod provision;
pub mod template;

use std::{
    collections::HashMap,
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use aws_config::SdkConfig;
use shared::Settings;
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

use crate::{
    bedrock::{BedrockStandIn, StandInOptions, StandInServer},
    emulator::Emulator,
    lambda::LambdaStandIn,
    provision::Created,
    template::Template,
};

pub const DEFAULT_MOTO_PORT: u16 = 4566;
pub const DEFAULT_HOST_PORT: u16 = 3000;
pub use bedrock::DEFAULT_BEDROCK_PORT;
pub const REGION: &str = "us-east-1";

/// Which template resource each function setting names: the template is the
/// single source of resource names, locally as in AWS.
const SETTING_RESOURCES: [(&str, &str); 5] = [
    ("CONFIG_BUCKET", "ConfigBucket"),
    ("SUBMISSIONS_BUCKET", "SubmissionsBucket"),
    ("FORM_SUBMISSIONS_TABLE", "FormSubmissionsTable"),
    ("SMS_USAGE_TABLE", "SmsUsageTable"),
    ("EVENT_BUS_NAME", "EventBus"),
];

#[derive(Debug, thiserror::Error)]
pub enum StackError {
    #[error(transparent)]
    Emulator(#[from] emulator::EmulatorError),
    #[error(transparent)]
    Template(#[from] template::TemplateError),
    #[error(transparent)]
    Provision(#[from] provision::ProvisionError),
    #[error(transparent)]
    Seed(#[from] demo::SeedError),
    #[error("template.yaml declares no {0}, which the functions need")]
    MissingResource(&'static str),
    #[error(transparent)]
    Settings(#[from] shared::settings::SettingsError),
    #[error("could not verify the SES sender {sender}")]
    VerifySender {
        sender: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("could not listen on {addr}")]
    Listen {
        addr: String,
        #[source]
        source: std::io::Error,
    },
}

#[derive(Debug, Clone)]
pub struct StackOptions {
    pub repo_root: PathBuf,
    /// 0 picks a free port.
    pub moto_port: u16,
    /// 0 picks a free port.
    pub host_port: u16,
    /// The Bedrock stand-in's port; 0 picks a free port.
    pub bedrock_port: u16,
    /// Silence moto's request log.
    pub quiet: bool,
    /// Run the outbox sweeper on a timer, as its schedule does in AWS (`None`: never).
    pub sweep: Option<Sweep>,
    /// Poll the consumer queues and run email, SMS and handler fulfillment, as
    /// Lambda's SQS event sources do in AWS (`None`: events wait in their queues).
    pub consumers: Option<consumers::Polling>,
}

/// How often the local outbox sweeper runs, and how old an entry must be.
#[derive(Debug, Clone, Copy)]
pub struct Sweep {
    pub every: std::time::Duration,
    pub grace: std::time::Duration,
}

impl Default for StackOptions {
    fn default() -> Self {
        Self {
            repo_root: repo_root(),
            moto_port: DEFAULT_MOTO_PORT,
            host_port: DEFAULT_HOST_PORT,
            bedrock_port: DEFAULT_BEDROCK_PORT,
            quiet: false,
            sweep: Some(Sweep {
                every: std::time::Duration::from_secs(60),
                grace: outbox_sweeper::DEFAULT_GRACE,
            }),
            consumers: Some(consumers::Polling {
                visibility: std::time::Duration::from_secs(20),
                pollers: 2,
            }),
        }
    }
}

impl StackOptions {
    /// An isolated stack for one test: free ports, nothing running in the
    /// background (no sweeper, no consumers), quiet unless `TEST_LOG` is set
    /// (which also turns on the JSON logs).
    pub fn for_tests() -> Self {
        let log = std::env::var_os("TEST_LOG").is_some();
        if log {
            shared::telemetry::init();
        }
        Self {
            moto_port: 0,
            host_port: 0,
            bedrock_port: 0,
            quiet: !log,
            sweep: None,
            consumers: None,
            ..Self::default()
        }
    }
}

/// The repository this crate was built from (the stack reads template.yaml and
/// the demo tenant from it).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap_or_else(|_| PathBuf::from("."))
}

pub struct LocalStack {
    pub endpoint: String,
    pub host_addr: SocketAddr,
    /// Where ConverseStream and Retrieve go (`AWS_ENDPOINT_URL_BEDROCK_*` in `settings`).
    pub bedrock_url: String,
    /// The stand-in's faults and records, for tests.
    pub bedrock: Arc<BedrockStandIn>,
    /// Handler functions (`fulfillment.type: lambda`) and what they were sent.
    pub lambda: Arc<LambdaStandIn>,
    pub sdk_config: SdkConfig,
    pub settings: Settings,
    /// Every line the chat service logged as QA_COMPLETE or EMF, in order.
    pub qa_lines: Arc<Mutex<Vec<String>>>,
    pub template: Template,
    pub created: Created,
    emulator: Emulator,
    bedrock_server: StandInServer,
    sweeper: Option<JoinHandle<()>>,
    pollers: Vec<JoinHandle<()>>,
    host: JoinHandle<()>,
    stop_host: oneshot::Sender<()>,
}

impl LocalStack {
    pub async fn start(options: StackOptions) -> Result<Self, StackError> {
        let moto_port = if options.moto_port == 0 { free_port()? } else { options.moto_port };
        let emulator = Emulator::start(&options.repo_root, moto_port, options.quiet).await?;
        let endpoint = emulator.endpoint.clone();
        let sdk_config = shared::aws::emulator_sdk_config(&endpoint, REGION).await;

        let mut template = Template::load(&options.repo_root.join("template.yaml"))?;
        template.set_parameter("Stage", "local");
        let created = provision::Provisioner::new(&sdk_config).provision(&template).await?;
        // Bound now so its URL can go into the settings; it serves after seeding.
        let bedrock_listener = listen(options.bedrock_port).await?;
        let bedrock_url = format!("http://{}", local_addr(&bedrock_listener)?);
        let settings = settings_for(&created, &endpoint, &bedrock_url)?;

        let s3 = shared::aws::s3_client(&sdk_config);
        let demo_dir = options.repo_root.join("tools/demo-tenant");
        demo::seed(&s3, &settings.config_bucket, &demo_dir).await?;
        let targets = demo::fulfillment_targets(&demo_dir)?;
        demo::create_buckets(&s3, &targets.buckets).await?;
        verify_sender(&sdk_config, &settings.ses_from_email).await?;

        let listener = listen(options.host_port).await?;
        let host_addr = local_addr(&listener)?;

        let bedrock =
            BedrockStandIn::new(s3.clone(), settings.config_bucket.clone(), StandInOptions::default());
        let lambda = LambdaStandIn::new(targets.functions);
        let bedrock_server =
            StandInServer::spawn_router(bedrock.router().merge(lambda.router()), bedrock_listener)
                .map_err(|source| StackError::Listen { addr: bedrock_url.clone(), source })?;
        let qa_lines: Arc<Mutex<Vec<String>>> = Arc::default();
        let chat = chat_stream::aws_service_with(
            &sdk_config,
            settings.clone(),
            qa_sink(Arc::clone(&qa_lines), !options.quiet),
            chat_stream::ChatOptions::default(),
        );
        let state = Arc::new(host::HostState {
            settings: settings.clone(),
            endpoint: endpoint.clone(),
            s3,
            http: reqwest::Client::new(),
            demo_tenant_hash: demo::DEMO_TENANT_HASH.to_owned(),
            bedrock_url: bedrock_url.clone(),
            chat: Arc::new(chat),
            forms: Arc::new(form_intake::aws_service_with(
                &sdk_config,
                &settings,
                form_intake::tenant_loader(&sdk_config, &settings),
            )),
        });
        let sweeper = options.sweep.map(|sweep| spawn_sweeper(&sdk_config, &settings, sweep));
        let pollers = match options.consumers {
            Some(polling) => consumers::spawn_all(&sdk_config, &settings, &created, polling)?,
            None => Vec::new(),
        };
        let (stop_host, stopped) = oneshot::channel::<()>();
        let host = tokio::spawn(async move {
            let serve = axum::serve(no_delay(listener), host::router(state)).with_graceful_shutdown(async {
                let _ = stopped.await;
            });
            if let Err(err) = serve.await {
                tracing::error!(error = %err, "local host stopped");
            }
        });

        Ok(Self {
            endpoint,
            host_addr,
            bedrock_url,
            bedrock,
            lambda,
            sdk_config,
            settings,
            qa_lines,
            template,
            created,
            emulator,
            bedrock_server,
            sweeper,
            pollers,
            host,
            stop_host,
        })
    }

    /// Starts fulfillment later (for a test that first arranges its queues).
    pub fn start_consumers(&mut self, polling: consumers::Polling) -> Result<(), StackError> {
        let tasks = consumers::spawn_all(&self.sdk_config, &self.settings, &self.created, polling)?;
        self.pollers.extend(tasks);
        Ok(())
    }

    pub fn host_url(&self) -> String {
        format!("http://{}", self.host_addr)
    }

    /// Stops the host, the Bedrock stand-in and the emulator, waiting for each.
    pub async fn stop(self) {
        for task in self.sweeper.into_iter().chain(self.pollers) {
            task.abort();
        }
        let _ = self.stop_host.send(());
        let _ = self.host.await;
        self.bedrock_server.stop().await;
        self.emulator.stop().await;
    }
}

/// Function settings for this stack: resource names from what the template
/// created, the emulator's endpoint, the Bedrock stand-in for both Bedrock
/// clients, and the process environment for the rest.
fn settings_for(created: &Created, endpoint: &str, bedrock_url: &str) -> Result<Settings, StackError> {
    let mut vars: HashMap<String, String> = std::env::vars().collect();
    vars.remove("AWS_LAMBDA_FUNCTION_NAME");
    for (variable, logical_id) in SETTING_RESOURCES {
        let physical = created.get(logical_id).ok_or(StackError::MissingResource(logical_id))?;
        vars.insert(variable.to_owned(), physical.reference.clone());
    }
    vars.insert("AWS_ENDPOINT_URL".into(), endpoint.to_owned());
    vars.insert("AWS_ENDPOINT_URL_BEDROCK_RUNTIME".into(), bedrock_url.to_owned());
    vars.insert("AWS_ENDPOINT_URL_BEDROCK_AGENT_RUNTIME".into(), bedrock_url.to_owned());
    vars.insert("AWS_ENDPOINT_URL_LAMBDA".into(), bedrock_url.to_owned());
    // Local development: webhooks may go to a test server on this machine.
    vars.entry("WEBHOOK_ALLOW_PRIVATE".into()).or_insert_with(|| "true".into());
    vars.insert("AWS_REGION".into(), REGION.into());
    Ok(Settings::from_vars(vars)?)
}

/// SES refuses mail from unverified identities, locally as in AWS; the emulator
/// verifies an email identity as soon as it is created.
async fn verify_sender(config: &SdkConfig, sender: &str) -> Result<(), StackError> {
    aws_sdk_sesv2::Client::new(config)
        .create_email_identity()
        .email_identity(sender)
        .send()
        .await
        .map_err(|e| StackError::VerifySender { sender: sender.to_owned(), source: e.into() })?;
    Ok(())
}

async fn listen(port: u16) -> Result<TcpListener, StackError> {
    let addr = format!("127.0.0.1:{port}");
    TcpListener::bind(&addr).await.map_err(|source| StackError::Listen { addr, source })
}

fn local_addr(listener: &TcpListener) -> Result<SocketAddr, StackError> {
    listener.local_addr().map_err(|source| StackError::Listen { addr: "127.0.0.1".into(), source })
}

fn free_port() -> Result<u16, StackError> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .map_err(|source| StackError::Listen { addr: "127.0.0.1:0".into(), source })
}

/// The outbox sweeper on a timer, as the scheduled Lambda runs in AWS.
fn spawn_sweeper(sdk_config: &SdkConfig, settings: &Settings, sweep: Sweep) -> JoinHandle<()> {
    let store = shared::submissions::DynamoSubmissionStore::new(
        aws_sdk_dynamodb::Client::new(sdk_config),
        &settings.form_submissions_table,
    );
    let publisher = shared::events::EventBridgePublisher::new(
        aws_sdk_eventbridge::Client::new(sdk_config),
        &settings.event_bus_name,
    );
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + sweep.every, sweep.every);
        loop {
            ticker.tick().await;
            outbox_sweeper::sweep(&store, &publisher, sweep.grace).await;
        }
    })
}

/// Keeps every QA_COMPLETE / metrics line for tests, and prints it like Lambda would.
fn qa_sink(lines: Arc<Mutex<Vec<String>>>, print: bool) -> chat_stream::qa_log::LineSink {
    Arc::new(move |line: String| {
        if print {
            println!("{line}");
        }
        if let Ok(mut lines) = lines.lock() {
            lines.push(line);
        }
    })
}

/// Streams are many small writes: with Nagle's algorithm each one after the
/// first waits for the client's delayed ACK (40 ms on Linux). Lambda's and
/// Bedrock's front ends send at once, so the local servers must too.
pub(crate) fn no_delay(
    listener: TcpListener,
) -> axum::serve::TapIo<TcpListener, fn(&mut tokio::net::TcpStream)> {
    use axum::serve::ListenerExt;
    fn set_no_delay(tcp: &mut tokio::net::TcpStream) {
        let _ = tcp.set_nodelay(true);
    }
    listener.tap_io(set_no_delay)
}

#[cfg(test)]
mod tests {
    use axum::serve::Listener;

    use super::*;

    /// The benchmark found 40 ms added to every first token before this: the
    /// host and the stand-in answered streams with Nagle's algorithm on.
    #[tokio::test]
    async fn local_servers_send_each_small_write_at_once() {
        let mut listener = no_delay(TcpListener::bind("127.0.0.1:0").await.unwrap());
        let addr = listener.local_addr().unwrap();
        let client = tokio::spawn(tokio::net::TcpStream::connect(addr));
        let (accepted, _) = listener.accept().await;
        assert!(accepted.nodelay().unwrap(), "TCP_NODELAY set on accepted connections");
        client.await.unwrap().unwrap();
    }
}
