//! The AWS API emulator: moto in server mode, run as a child process.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use tokio::process::{Child, Command};

#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    #[error("no Python with moto was found; run tools/bootstrap.sh (looked for {0})")]
    NotInstalled(String),
    #[error("could not start moto_server")]
    Spawn(#[source] std::io::Error),
    #[error("moto_server did not answer on {0} within {1:?}")]
    NotReady(String, Duration),
    #[error("moto rejected {0}")]
    Config(String, #[source] reqwest::Error),
}

/// Where moto's request log goes (about six lines a second, even idle).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EmulatorLog {
    /// Appended to this file (`tools/run-local.sh`: `.local/moto.log`).
    File(PathBuf),
    /// To this process's stdout and stderr (tests with `TEST_LOG`).
    Inherit,
    Discard,
}

impl EmulatorLog {
    fn stdio(&self) -> std::io::Result<Stdio> {
        Ok(match self {
            Self::File(path) => {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                Stdio::from(std::fs::OpenOptions::new().create(true).append(true).open(path)?)
            }
            Self::Inherit => Stdio::inherit(),
            Self::Discard => Stdio::null(),
        })
    }
}

/// The emulator's liveness route (`moto_server.py`): it answers without
/// touching any state, unlike the state dump, which grows with the state.
pub const HEALTH_PATH: &str = "/_picasso/health";

/// A running moto server. Dropping it stops the process.
pub struct Emulator {
    pub endpoint: String,
    child: Child,
}

/// The Python of the project's virtualenv (which has moto), else `python3` on PATH.
pub fn moto_python(repo_root: &Path) -> Result<PathBuf, EmulatorError> {
    let venv = repo_root.join(".venv/bin/python");
    if venv.exists() {
        return Ok(venv);
    }
    std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|dir| dir.join("python3")).find(|p| p.exists()))
        .ok_or_else(|| EmulatorError::NotInstalled(venv.display().to_string()))
}

impl Emulator {
    /// Starts moto on 127.0.0.1:`port`, waits until it answers, and enables
    /// Lambda Invoke without Docker.
    pub async fn start(repo_root: &Path, port: u16, log: &EmulatorLog) -> Result<Self, EmulatorError> {
        let python = moto_python(repo_root)?;
        let launcher = repo_root.join("tools/local-stack/moto_server.py");
        let child = Command::new(python)
            .arg(launcher)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(log.stdio().map_err(EmulatorError::Spawn)?)
            .stderr(log.stdio().map_err(EmulatorError::Spawn)?)
            .kill_on_drop(true)
            .spawn()
            .map_err(EmulatorError::Spawn)?;
        let emulator = Self { endpoint: format!("http://127.0.0.1:{port}"), child };
        emulator.wait_ready(Duration::from_secs(30)).await?;
        emulator.configure().await?;
        Ok(emulator)
    }

    async fn wait_ready(&self, timeout: Duration) -> Result<(), EmulatorError> {
        let client = reqwest::Client::new();
        let started = Instant::now();
        let url = format!("{}{HEALTH_PATH}", self.endpoint);
        while started.elapsed() < timeout {
            if client.get(&url).send().await.is_ok_and(|r| r.status().is_success()) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(EmulatorError::NotReady(self.endpoint.clone(), timeout))
    }

    async fn configure(&self) -> Result<(), EmulatorError> {
        reqwest::Client::new()
            .post(format!("{}/moto-api/config", self.endpoint))
            .json(&serde_json::json!({"lambda": {"use_docker": false}}))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| EmulatorError::Config("lambda.use_docker=false".into(), e))?;
        Ok(())
    }

    /// Freezes moto (SIGSTOP): connections are accepted and never answered,
    /// as an AWS endpoint that has stalled. For tests of deadlines.
    pub fn pause(&self) -> std::io::Result<()> {
        self.signal("-STOP")
    }

    /// Lets a paused moto go on (SIGCONT).
    pub fn resume(&self) -> std::io::Result<()> {
        self.signal("-CONT")
    }

    fn signal(&self, signal: &str) -> std::io::Result<()> {
        let pid = self.child.id().ok_or_else(|| std::io::Error::other("moto has exited"))?;
        let status = std::process::Command::new("kill").args([signal, &pid.to_string()]).status()?;
        if status.success() {
            Ok(())
        } else {
            Err(std::io::Error::other(format!("kill {signal} {pid}: {status}")))
        }
    }

    /// Stops moto and waits for it to exit.
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}
