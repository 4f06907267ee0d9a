//! The whole system on one machine: the AWS emulator, every resource that
//! `template.yaml` declares, the demo tenant, a verified SES sender, the
//! Bedrock stand-in, and the local host. `LocalStack::start` is used by the
//! `local-stack` binary and by the end-to-end tests, which start one isolated
//! stack per test on free ports.

pub mod bedrock;
pub mod consumers;
pub mod demo;
pub mod emulator;
pub mod functions;
pub mod host;
pub mod iam;
pub mod lambda;
pub mod log_shipping;
pub mod provision;
pub mod runtime_api;
pub mod template;

use std::{
    collections::HashMap,
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use aws_config::SdkConfig;
use lambda_edge::Settings;
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

use crate::{
    bedrock::{BedrockStandIn, StandInOptions, StandInServer},
    emulator::{Emulator, EmulatorLog},
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
const SETTING_RESOURCES: [(&str, &str); 8] = [
    ("PARKED_SUBMISSIONS_QUEUE_URL", "ParkedSubmissionsQueue"),
    ("CONFIG_BUCKET", "ConfigBucket"),
    ("SUBMISSIONS_BUCKET", "SubmissionsBucket"),
    ("FORM_SUBMISSIONS_TABLE", "FormSubmissionsTable"),
    ("SMS_USAGE_TABLE", "SmsUsageTable"),
    ("RATE_LIMITS_TABLE", "RateLimitsTable"),
    ("EVENT_BUS_NAME", "EventBus"),
    ("FUNNEL_TABLE", "FunnelTable"),
];

#[derive(Debug, thiserror::Error)]
pub enum StackError {
    #[error(transparent)]
    Emulator(#[from] emulator::EmulatorError),
    #[error(transparent)]
    Functions(#[from] functions::RegisterError),
    #[error(transparent)]
    Template(#[from] template::TemplateError),
    #[error(transparent)]
    Provision(#[from] provision::ProvisionError),
    #[error(transparent)]
    Seed(#[from] demo::SeedError),
    #[error("template.yaml declares no {0}, which the functions need")]
    MissingResource(&'static str),
    #[error(transparent)]
    Settings(#[from] lambda_edge::settings::SettingsError),
    #[error(transparent)]
    Iam(#[from] iam::IamError),
    #[error("could not write the operators' AWS profiles to {path}")]
    Profiles {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("could not write {path}, which tells scripts where this stack listens")]
    StackFile {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("could not verify the SES sender {sender}")]
    VerifySender {
        sender: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error(
        "port {port} is already in use (another local stack?); stop it, or choose another port with {flag} N"
    )]
    PortBusy { port: u16, flag: &'static str },
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
    /// Where moto's request log goes.
    pub emulator_log: EmulatorLog,
    /// Print every QA_COMPLETE line the chat writes (they are kept for tests either way).
    pub print_qa: bool,
    /// Create the template's alarms (about a second, in Python: see `put_alarms.py`).
    pub alarms: bool,
    /// Run the outbox sweeper on a timer, as its schedule does in AWS (`None`: never).
    pub sweep: Option<Sweep>,
    /// Poll the consumer queues and run email, SMS and handler fulfillment, as
    /// Lambda's SQS event sources do in AWS (`None`: events wait in their queues).
    pub consumers: Option<consumers::Polling>,
    /// Function settings to set as if in the environment (e.g. shorter deadlines for a test).
    pub env: Vec<(String, String)>,
    /// Enforce IAM in the emulator: every piece acts as its own principal (`--no-iam`: off).
    pub iam: bool,
    /// Where to write `credentials` and `config` with an AWS profile for each
    /// principal (`picasso-local` is the administrator); `None`: nowhere.
    pub profile_dir: Option<PathBuf>,
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
            emulator_log: EmulatorLog::File(repo_root().join(".local/moto.log")),
            print_qa: true,
            alarms: true,
            sweep: Some(Sweep {
                every: std::time::Duration::from_secs(60),
                grace: outbox_sweeper::DEFAULT_GRACE,
            }),
            consumers: Some(consumers::Polling { retry_delay: None, pollers: 2 }),
            env: Vec::new(),
            iam: true,
            profile_dir: Some(repo_root().join(".local/aws")),
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
            lambda_edge::telemetry::init();
        }
        Self {
            moto_port: 0,
            host_port: 0,
            bedrock_port: 0,
            emulator_log: if log { EmulatorLog::Inherit } else { EmulatorLog::Discard },
            print_qa: log,
            alarms: false,
            sweep: None,
            consumers: None,
            profile_dir: None,
            ..Self::default()
        }
    }
}

/// The repository this crate was built from (the stack reads template.yaml and
/// the demo tenant from it).
/// The SDK's S3 client for setting the emulator up and inspecting it
/// (path-style: `aws_adapters::s3::s3_client`).
pub fn s3_client(config: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
    aws_adapters::s3::s3_client(config)
}

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
    /// The administrator's SDK configuration (arrange and inspect in tests).
    pub sdk_config: SdkConfig,
    /// Each principal's SDK configuration: the functions by template logical
    /// id, and `picasso-ops`; all the administrator's when IAM is off.
    pub identities: Identities,
    /// Whether the emulator enforces IAM.
    pub iam: bool,
    pub settings: Settings,
    /// Every line the chat service logged as QA_COMPLETE or EMF, and the EMF
    /// lines of the chat and form limits (`Picasso/Limits`), in order.
    pub qa_lines: Arc<Mutex<Vec<String>>>,
    pub template: Template,
    pub created: Created,
    /// `stack.json` beside the profiles while the stack runs (see `write_stack_file`).
    stack_file: Option<PathBuf>,
    emulator: Emulator,
    bedrock_server: StandInServer,
    sweeper: Option<JoinHandle<()>>,
    pollers: Vec<JoinHandle<()>>,
    host: JoinHandle<()>,
    stop_host: oneshot::Sender<()>,
}

impl LocalStack {
    pub async fn start(options: StackOptions) -> Result<Self, StackError> {
        // Every port first, before anything is created: a second stack on the
        // same ports must not create resources in the first one's emulator.
        let listener = listen(options.host_port, "--host-port").await?;
        let bedrock_listener = listen(options.bedrock_port, "--bedrock-port").await?;
        let moto_port = match options.moto_port {
            0 => free_port()?,
            port => listen(port, "--moto-port").await.map(drop).map(|()| port)?,
        };
        let emulator = Emulator::start(&options.repo_root, moto_port, &options.emulator_log).await?;
        let endpoint = emulator.endpoint.clone();
        let sdk_config = aws_adapters::config::emulator_sdk_config(&endpoint, REGION).await;

        let mut template = Template::load(&options.repo_root.join("template.yaml"))?;
        template.set_parameter("Stage", "local");
        let mut created = provision::Provisioner::new(&sdk_config).provision(&template).await?;
        functions::register(&sdk_config, &template, REGION, &mut created).await?;
        if options.alarms {
            provision::put_alarms(&options.repo_root, &endpoint, REGION, &template, &mut created).await?;
        }
        // Bound first so its URL can go into the settings; it serves after seeding.
        let bedrock_url = format!("http://{}", local_addr(&bedrock_listener)?);
        let mut settings = settings_for(&created, &endpoint, &bedrock_url, &options.env)?;

        // The page the host serves is the widget here (its chats and forms are
        // always answered) and the demo tenant's site (it also asks for the config).
        let host_addr = local_addr(&listener)?;
        let host_origins = [format!("http://{host_addr}"), format!("http://localhost:{}", host_addr.port())];
        settings.widget_origins.extend(host_origins.iter().cloned());

        let s3 = s3_client(&sdk_config);
        let demo_dir = options.repo_root.join("tools/demo-tenant");
        demo::seed(&s3, &settings.config_bucket, &demo_dir, &host_origins).await?;
        let targets = demo::fulfillment_targets(&demo_dir)?;
        demo::create_buckets(&s3, &targets.buckets).await?;
        verify_sender(&sdk_config, &settings.ses_from_email).await?;
        let identities =
            Identities::create(&sdk_config, &endpoint, &template, &created, &settings, options.iam).await?;
        if let Some(dir) = &options.profile_dir {
            identities.write_profiles(dir, &endpoint)?;
        }
        let sdk_config = identities.admin.clone();
        let s3 = s3_client(&sdk_config);

        let bedrock =
            BedrockStandIn::new(s3.clone(), settings.config_bucket.clone(), StandInOptions::default());
        let lambda = LambdaStandIn::new(targets.functions);
        let bedrock_server =
            StandInServer::spawn_router(bedrock.router().merge(lambda.router()), bedrock_listener)
                .map_err(|source| StackError::Listen { addr: bedrock_url.clone(), source })?;
        let qa_lines: Arc<Mutex<Vec<String>>> = Arc::default();
        let chat_config = identities.function("ChatStreamFunction");
        let forms_config = identities.function("FormIntakeFunction");
        let chat = chat_stream::aws_service_with(
            chat_config,
            settings.clone(),
            qa_sink(Arc::clone(&qa_lines), options.print_qa),
            chat_stream::ChatOptions::default(),
        );
        let state = Arc::new(host::HostState {
            settings: settings.clone(),
            endpoint: endpoint.clone(),
            s3: s3_client(&identities.host),
            http: reqwest::Client::new(),
            demo_tenant_hash: demo::DEMO_TENANT_HASH.to_owned(),
            bedrock_url: bedrock_url.clone(),
            chat: Arc::new(chat),
            forms: Arc::new(form_intake::aws_service_with_metrics(
                forms_config,
                &settings,
                form_intake::tenant_loader(forms_config, &settings),
                qa_sink(Arc::clone(&qa_lines), options.print_qa),
            )),
            chat_timeout: timeout_of(&template, "ChatStreamFunction")?,
            forms_timeout: timeout_of(&template, "FormIntakeFunction")?,
            chat_function: function_name(&created, "ChatStreamFunction")?,
            forms_function: function_name(&created, "FormIntakeFunction")?,
        });
        let sweeper_function = function_name(&created, "OutboxSweeperFunction")?;
        let sweeper = options.sweep.map(|sweep| {
            spawn_sweeper(identities.function("OutboxSweeperFunction"), &settings, sweep, sweeper_function)
        });
        let pollers = match options.consumers {
            Some(polling) => consumers::spawn_all(&identities, &settings, &created, &template, polling)?,
            None => Vec::new(),
        };
        let (stop_host, stopped) = oneshot::channel::<()>();
        let host = tokio::spawn(async move {
            let app = host::router(state).into_make_service_with_connect_info::<SocketAddr>();
            let serve = axum::serve(no_delay(listener), app).with_graceful_shutdown(async {
                let _ = stopped.await;
            });
            if let Err(err) = serve.await {
                tracing::error!(error = %err, "local host stopped");
            }
        });

        let stack_file = match options.profile_dir.as_deref().and_then(Path::parent) {
            Some(dir) => Some(write_stack_file(
                dir,
                &endpoint,
                host_addr,
                &bedrock_url,
                options.profile_dir.as_deref(),
            )?),
            None => None,
        };
        Ok(Self {
            stack_file,
            endpoint,
            host_addr,
            bedrock_url,
            bedrock,
            lambda,
            sdk_config,
            identities,
            iam: options.iam,
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
        let tasks =
            consumers::spawn_all(&self.identities, &self.settings, &self.created, &self.template, polling)?;
        self.pollers.extend(tasks);
        Ok(())
    }

    /// The environment a template function's binary runs with here: its
    /// `Environment.Variables` from the template (resolved against this
    /// stack), the stack's endpoints, and its own principal's credentials.
    pub fn function_env(&self, logical_id: &str) -> Result<Vec<(String, String)>, StackError> {
        let missing = || StackError::MissingResource("a function of that logical id");
        let function =
            self.template.resources.iter().find(|r| r.logical_id == logical_id).ok_or_else(missing)?;
        let context = template::Context { template: &self.template, region: REGION, created: &self.created };
        let variables = context
            .eval(&function.properties["Environment"]["Variables"])
            .map_err(|e| StackError::Template(template::TemplateError::Unsupported(e.to_string())))?;
        let mut env: Vec<(String, String)> = variables
            .as_object()
            .into_iter()
            .flatten()
            .map(|(name, value)| (name.clone(), template::scalar_text(value)))
            .collect();
        // Lambda passes the LoggingConfig to the runtime as these two variables.
        for (key, name) in
            [("LogFormat", "AWS_LAMBDA_LOG_FORMAT"), ("ApplicationLogLevel", "AWS_LAMBDA_LOG_LEVEL")]
        {
            let value = context
                .eval(&function.properties["LoggingConfig"][key])
                .map_err(|e| StackError::Template(template::TemplateError::Unsupported(e.to_string())))?;
            if let Some(value) = value.as_str() {
                env.push((name.to_owned(), value.to_owned()));
            }
        }
        let binary = function.metadata["BuildProperties"]["Binary"].as_str().unwrap_or(logical_id);
        let (key, secret) = match self.identities.principals.get(binary) {
            Some(principal) => (principal.access_key_id.clone(), principal.secret_access_key.clone()),
            None => ("test".to_owned(), "test".to_owned()),
        };
        env.extend(
            [
                ("AWS_REGION", REGION.to_owned()),
                ("AWS_ACCESS_KEY_ID", key),
                ("AWS_SECRET_ACCESS_KEY", secret),
                ("AWS_ENDPOINT_URL", self.endpoint.clone()),
                ("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", self.bedrock_url.clone()),
                ("AWS_ENDPOINT_URL_BEDROCK_AGENT_RUNTIME", self.bedrock_url.clone()),
                ("AWS_ENDPOINT_URL_LAMBDA", self.bedrock_url.clone()),
                ("WEBHOOK_ALLOW_PRIVATE", "true".to_owned()),
            ]
            .map(|(k, v)| (k.to_owned(), v)),
        );
        Ok(env)
    }

    /// The emulator, to stall it in a test (`pause`/`resume`).
    pub fn emulator(&self) -> &Emulator {
        &self.emulator
    }

    pub fn host_url(&self) -> String {
        format!("http://{}", self.host_addr)
    }

    /// Registers a tenant in the config bucket as production holds one: its
    /// mapping (`mappings/<hash>.json`) and its config (`tenants/<id>/config.json`).
    pub async fn put_tenant(
        &self,
        hash: &str,
        tenant_id: &str,
        config: &serde_json::Value,
    ) -> Result<(), demo::SeedError> {
        let s3 = s3_client(&self.sdk_config);
        for (key, body) in [
            (format!("mappings/{hash}.json"), serde_json::json!({ "tenant_id": tenant_id }).to_string()),
            (format!("tenants/{tenant_id}/config.json"), config.to_string()),
        ] {
            s3.put_object()
                .bucket(&self.settings.config_bucket)
                .key(&key)
                .content_type("application/json")
                .body(body.into_bytes().into())
                .send()
                .await
                .map_err(|e| demo::SeedError::Put { key, source: e.into() })?;
        }
        Ok(())
    }

    /// Stops the host, the Bedrock stand-in and the emulator, waiting for each.
    pub async fn stop(self) {
        if let Some(path) = &self.stack_file {
            let _ = std::fs::remove_file(path);
        }
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
fn settings_for(
    created: &Created,
    endpoint: &str,
    bedrock_url: &str,
    env: &[(String, String)],
) -> Result<Settings, StackError> {
    let mut vars: HashMap<String, String> = std::env::vars().chain(env.iter().cloned()).collect();
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
    // The in-process functions hash visitors under the stack's own secret, as
    // the Lambda-run ones do (`VISITOR_KEY_SECRET` resolved from the template).
    let secret = created.get("VisitorKeySecret").and_then(|s| s.attributes.get(template::SECRET_STRING));
    if let Some(secret) = secret {
        vars.insert("VISITOR_KEY_SECRET".into(), secret.clone());
    }
    Ok(Settings::from_vars(vars)?)
}

/// Principal names: the administrator, the local host, the operators' CLI;
/// each function's is its binary's name.
pub const ADMIN: &str = "picasso-local";
pub const HOST: &str = "local-host";
pub const OPS: &str = "picasso-ops";

/// Who each piece of the stack is to the emulator.
#[derive(Clone)]
pub struct Identities {
    pub admin: SdkConfig,
    pub host: SdkConfig,
    pub ops: SdkConfig,
    /// By template logical id.
    functions: HashMap<String, SdkConfig>,
    /// Every principal, by name, for the operators' profiles (empty without IAM).
    principals: std::collections::BTreeMap<String, iam::Principal>,
}

impl Identities {
    /// With `enforce`, creates a principal for every function of the template
    /// (its policies), the host, the operators' CLI and an administrator, then
    /// turns IAM enforcement on. Without it, everything uses `setup`.
    async fn create(
        setup: &SdkConfig,
        endpoint: &str,
        template: &Template,
        created: &Created,
        settings: &Settings,
        enforce: bool,
    ) -> Result<Self, StackError> {
        let functions: Vec<(String, String)> = template
            .resources_of_kind("AWS::Serverless::Function")
            .map(|f| {
                let binary = f.metadata["BuildProperties"]["Binary"].as_str().unwrap_or(&f.logical_id);
                (f.logical_id.clone(), binary.to_owned())
            })
            .collect();
        if !enforce {
            let functions = functions.into_iter().map(|(id, _)| (id, setup.clone())).collect();
            return Ok(Self {
                admin: setup.clone(),
                host: setup.clone(),
                ops: setup.clone(),
                functions,
                principals: Default::default(),
            });
        }
        let mut policies = std::collections::BTreeMap::new();
        policies.insert(ADMIN.to_owned(), iam::admin_policy());
        policies.insert(HOST.to_owned(), host_policy(&settings.config_bucket));
        policies.insert(OPS.to_owned(), iam::ops_policy(template, created)?);
        for (logical_id, binary) in &functions {
            policies.insert(binary.clone(), iam::function_policy(template, created, logical_id)?);
        }
        let principals = iam::create_principals(setup, &policies).await?;
        iam::enforce(endpoint).await?;
        let config_of = |name: &str| {
            let principal = principals.get(name).cloned();
            async move {
                match principal {
                    Some(principal) => iam::sdk_config_as(endpoint, &principal).await,
                    None => setup.clone(),
                }
            }
        };
        let mut by_function = HashMap::new();
        for (logical_id, binary) in &functions {
            by_function.insert(logical_id.clone(), config_of(binary).await);
        }
        Ok(Self {
            admin: aws_adapters::config::patient(config_of(ADMIN).await),
            host: config_of(HOST).await,
            ops: config_of(OPS).await,
            functions: by_function,
            principals,
        })
    }

    /// The SDK configuration of a template function's principal.
    pub fn function(&self, logical_id: &str) -> &SdkConfig {
        self.functions.get(logical_id).unwrap_or(&self.admin)
    }

    /// Writes `credentials` and `config` with one profile per principal
    /// (`picasso-local`, `picasso-ops`, `picasso-<function>`), each with the
    /// region and the emulator's endpoint, so `aws` and the SDKs need nothing else.
    fn write_profiles(&self, dir: &Path, endpoint: &str) -> Result<(), StackError> {
        let error = |source| StackError::Profiles { path: dir.display().to_string(), source };
        std::fs::create_dir_all(dir).map_err(error)?;
        let profile = |name: &str| {
            if name.starts_with("picasso-") { name.to_owned() } else { format!("picasso-{name}") }
        };
        let mut credentials = String::from("# Written by the local stack; valid while it runs.\n");
        let mut config = String::from("# Written by the local stack; valid while it runs.\n");
        let principals: Vec<(String, &str, &str)> = if self.principals.is_empty() {
            vec![(ADMIN.to_owned(), "test", "test")]
        } else {
            self.principals
                .values()
                .map(|p| (profile(&p.name), p.access_key_id.as_str(), p.secret_access_key.as_str()))
                .collect()
        };
        for (name, key, secret) in principals {
            credentials.push_str(&format!(
                "\n[{name}]\naws_access_key_id = {key}\naws_secret_access_key = {secret}\n"
            ));
            config.push_str(&format!(
                "\n[profile {name}]\nregion = {REGION}\nendpoint_url = {endpoint}\noutput = json\n"
            ));
        }
        std::fs::write(dir.join("credentials"), credentials).map_err(error)?;
        std::fs::write(dir.join("config"), config).map_err(error)
    }
}

/// The local host reads the config bucket for `/healthz` only.
fn host_policy(config_bucket: &str) -> serde_json::Value {
    serde_json::json!({"Version": "2012-10-17", "Statement": [
        {"Sid": "HealthOfTheConfigBucket", "Effect": "Allow", "Action": "s3:ListBucket",
         "Resource": format!("arn:aws:s3:::{config_bucket}")},
        {"Sid": "HealthOfTheDemoTenant", "Effect": "Allow", "Action": "s3:GetObject",
         "Resource": format!("arn:aws:s3:::{config_bucket}/mappings/*")},
    ]})
}

fn timeout_of(template: &Template, function: &'static str) -> Result<std::time::Duration, StackError> {
    template.function_timeout(function).ok_or(StackError::MissingResource(function))
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

/// Binds 127.0.0.1:`port` (0: a free one); a port in use is named with the flag that changes it.
async fn listen(port: u16, flag: &'static str) -> Result<TcpListener, StackError> {
    let addr = format!("127.0.0.1:{port}");
    TcpListener::bind(&addr).await.map_err(|source| match source.kind() {
        std::io::ErrorKind::AddrInUse => StackError::PortBusy { port, flag },
        _ => StackError::Listen { addr, source },
    })
}

fn local_addr(listener: &TcpListener) -> Result<SocketAddr, StackError> {
    listener.local_addr().map_err(|source| StackError::Listen { addr: "127.0.0.1".into(), source })
}

/// A function's deployed name (as `functions::register` recorded it).
fn function_name(created: &Created, logical_id: &'static str) -> Result<String, StackError> {
    created.get(logical_id).map(|f| f.reference.clone()).ok_or(StackError::MissingResource(logical_id))
}

/// Writes `stack.json` (this process and the stack's addresses) into `dir`,
/// beside the profiles, for scripts that talk to the running stack
/// (`tools/validate.sh --local`); a file left by a stack that died names a
/// process that is gone.
fn write_stack_file(
    dir: &Path,
    endpoint: &str,
    host_addr: SocketAddr,
    bedrock_url: &str,
    profiles: Option<&Path>,
) -> Result<PathBuf, StackError> {
    let about = serde_json::json!({
        "pid": std::process::id(),
        "host_url": format!("http://{host_addr}"),
        "host_port": host_addr.port(),
        "aws_endpoint": endpoint,
        "bedrock_url": bedrock_url,
        "profiles": profiles,
    });
    let path = dir.join("stack.json");
    std::fs::write(&path, format!("{about:#}\n"))
        .map_err(|source| StackError::StackFile { path: path.display().to_string(), source })?;
    Ok(path)
}

pub fn free_port() -> Result<u16, StackError> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .map_err(|source| StackError::Listen { addr: "127.0.0.1:0".into(), source })
}

/// The outbox sweeper on a timer, as the scheduled Lambda runs in AWS, as its own principal.
/// The outbox sweeper on a timer, each run an invocation of `function` (its
/// lines, the run's summary included, reach its log group).
fn spawn_sweeper(
    sdk_config: &SdkConfig,
    settings: &Settings,
    sweep: Sweep,
    function: String,
) -> JoinHandle<()> {
    let store = aws_adapters::dynamodb::DynamoSubmissionStore::new(
        aws_sdk_dynamodb::Client::new(sdk_config),
        &settings.form_submissions_table,
    );
    let publisher = aws_adapters::eventbridge::EventBridgePublisher::new(
        aws_sdk_eventbridge::Client::new(sdk_config),
        &settings.event_bus_name,
    );
    let parking = settings
        .parked_submissions_queue_url
        .as_ref()
        .map(|url| aws_adapters::sqs::SqsParking::new(aws_sdk_sqs::Client::new(sdk_config), url));
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + sweep.every, sweep.every);
        loop {
            ticker.tick().await;
            let run = async {
                if let Some(parking) = &parking {
                    outbox_sweeper::drain_parked(&store, parking, &publisher, 20).await;
                }
                outbox_sweeper::sweep(&store, &publisher, sweep.grace).await;
            };
            tracing::Instrument::instrument(run, crate::log_shipping::invocation(&function)).await;
        }
    })
}

/// Keeps every QA_COMPLETE / metrics line for tests, and prints it like Lambda would.
fn qa_sink(lines: Arc<Mutex<Vec<String>>>, print: bool) -> chat_stream::qa_log::LineSink {
    Arc::new(move |line: String| {
        if print {
            println!("{line}");
        }
        // What the function prints goes to its log group, as Lambda ships stdout.
        crate::log_shipping::stdout_line(&line);
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
