//! The whole system on one machine: the AWS emulator, every resource that
//! `template.yaml` declares, the demo tenant, a verified SES sender, and the
//! local host. `LocalStack::start` is used by the `local-stack` binary and by
//! the end-to-end tests, which start one isolated stack per test on free ports.

pub mod demo;
pub mod emulator;
pub mod host;
pub mod provision;
pub mod template;

use std::{
    collections::HashMap,
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::Arc,
};

use aws_config::SdkConfig;
use shared::Settings;
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

use crate::{emulator::Emulator, provision::Created, template::Template};

pub const DEFAULT_MOTO_PORT: u16 = 4566;
pub const DEFAULT_HOST_PORT: u16 = 3000;
pub const REGION: &str = "us-east-1";

/// Which template resource each function setting names: the template is the
/// single source of resource names, locally as in AWS.
const SETTING_RESOURCES: [(&str, &str); 4] = [
    ("CONFIG_BUCKET", "ConfigBucket"),
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
    /// Silence moto's request log.
    pub quiet: bool,
}

impl Default for StackOptions {
    fn default() -> Self {
        Self {
            repo_root: repo_root(),
            moto_port: DEFAULT_MOTO_PORT,
            host_port: DEFAULT_HOST_PORT,
            quiet: false,
        }
    }
}

/// The repository this crate was built from (the stack reads template.yaml and
/// the demo tenant from it).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap_or_else(|_| PathBuf::from("."))
}

pub struct LocalStack {
    pub endpoint: String,
    pub host_addr: SocketAddr,
    pub sdk_config: SdkConfig,
    pub settings: Settings,
    pub template: Template,
    pub created: Created,
    emulator: Emulator,
    host: JoinHandle<()>,
    stop_host: oneshot::Sender<()>,
}

impl LocalStack {
    pub async fn start(options: StackOptions) -> Result<Self, StackError> {
        let moto_port = if options.moto_port == 0 {
            free_port()?
        } else {
            options.moto_port
        };
        let emulator = Emulator::start(&options.repo_root, moto_port, options.quiet).await?;
        let endpoint = emulator.endpoint.clone();
        let sdk_config = shared::aws::emulator_sdk_config(&endpoint, REGION).await;

        let mut template = Template::load(&options.repo_root.join("template.yaml"))?;
        template.set_parameter("Stage", "local");
        let created = provision::Provisioner::new(&sdk_config)
            .provision(&template)
            .await?;
        let settings = settings_for(&created, &endpoint)?;

        let s3 = shared::aws::s3_client(&sdk_config);
        demo::seed(
            &s3,
            &settings.config_bucket,
            &options.repo_root.join("tools/demo-tenant"),
        )
        .await?;
        verify_sender(&sdk_config, &settings.ses_from_email).await?;

        let addr = format!("127.0.0.1:{}", options.host_port);
        let listener = TcpListener::bind(&addr)
            .await
            .map_err(|source| StackError::Listen {
                addr: addr.clone(),
                source,
            })?;
        let host_addr = listener
            .local_addr()
            .map_err(|source| StackError::Listen { addr, source })?;
        let state = Arc::new(host::HostState {
            settings: settings.clone(),
            endpoint: endpoint.clone(),
            s3,
            http: reqwest::Client::new(),
            demo_tenant_hash: demo::DEMO_TENANT_HASH.to_owned(),
        });
        let (stop_host, stopped) = oneshot::channel::<()>();
        let host = tokio::spawn(async move {
            let serve = axum::serve(listener, host::router(state)).with_graceful_shutdown(async {
                let _ = stopped.await;
            });
            if let Err(err) = serve.await {
                tracing::error!(error = %err, "local host stopped");
            }
        });

        Ok(Self {
            endpoint,
            host_addr,
            sdk_config,
            settings,
            template,
            created,
            emulator,
            host,
            stop_host,
        })
    }

    pub fn host_url(&self) -> String {
        format!("http://{}", self.host_addr)
    }

    /// Stops the host and the emulator, waiting for both.
    pub async fn stop(self) {
        let _ = self.stop_host.send(());
        let _ = self.host.await;
        self.emulator.stop().await;
    }
}

/// Function settings for this stack: resource names from what the template
/// created, the emulator's endpoint, and the process environment for the rest.
fn settings_for(created: &Created, endpoint: &str) -> Result<Settings, StackError> {
    let mut vars: HashMap<String, String> = std::env::vars().collect();
    vars.remove("AWS_LAMBDA_FUNCTION_NAME");
    for (variable, logical_id) in SETTING_RESOURCES {
        let physical = created
            .get(logical_id)
            .ok_or(StackError::MissingResource(logical_id))?;
        vars.insert(variable.to_owned(), physical.reference.clone());
    }
    vars.insert("AWS_ENDPOINT_URL".into(), endpoint.to_owned());
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
        .map_err(|e| StackError::VerifySender {
            sender: sender.to_owned(),
            source: e.into(),
        })?;
    Ok(())
}

fn free_port() -> Result<u16, StackError> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .map_err(|source| StackError::Listen {
            addr: "127.0.0.1:0".into(),
            source,
        })
}
