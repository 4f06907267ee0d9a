//! The chat page in a real browser: headless Chromium (Debian's `chromium`,
//! which tools/test.sh installs) opens `/` and shows the tenant's welcome
//! message from its widget config; a question is typed and sent, and the
//! answer streams in, followed by its CTA buttons; a form is opened from its
//! CTA, filled and submitted. Chromium is driven over the DevTools protocol.

use std::{
    path::PathBuf,
    process::Stdio,
    time::{Duration, Instant},
};

use e2e::{demo_config, spawn_stack, submissions};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    net::TcpStream,
    process::{Child, Command},
};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, tungstenite::Message};

struct Browser {
    _process: Child,
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_id: u64,
    profile: PathBuf,
}

impl Browser {
    /// Starts headless Chromium on `url` and attaches to its page.
    async fn open(url: &str) -> Self {
        let binary = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned());
        let profile =
            std::env::temp_dir().join(format!("picasso-chromium-{}-{}", std::process::id(), url.len()));
        let mut process = Command::new(&binary)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg(url)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("{binary} did not start ({e}); tools/test.sh installs Debian's chromium")
            });

        let mut stderr = BufReader::new(process.stderr.take().unwrap()).lines();
        let devtools = tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(line) = stderr.next_line().await.unwrap() {
                if let Some(ws) = line.split("DevTools listening on ").nth(1) {
                    return ws.trim().to_owned();
                }
            }
            panic!("chromium exited before opening DevTools");
        })
        .await
        .expect("chromium opens DevTools within 60 s");
        tokio::spawn(async move { while let Ok(Some(_)) = stderr.next_line().await {} });

        let port = devtools.trim_start_matches("ws://").split([':', '/']).nth(1).unwrap().to_owned();
        let page_socket = loop {
            let targets: Value = reqwest::get(format!("http://127.0.0.1:{port}/json/list"))
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let page = targets
                .as_array()
                .unwrap()
                .iter()
                .find(|t| t["type"] == "page" && t["url"].as_str().unwrap_or_default().starts_with(url));
            if let Some(page) = page {
                break page["webSocketDebuggerUrl"].as_str().unwrap().to_owned();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let (socket, _) = tokio_tungstenite::connect_async(page_socket).await.unwrap();
        Self { _process: process, socket, next_id: 0, profile }
    }

    /// Evaluates JavaScript in the page and returns its (JSON) value.
    async fn eval(&mut self, expression: &str) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let command = json!({"id": id, "method": "Runtime.evaluate", "params": {"expression": expression, "returnByValue": true}});
        self.socket.send(Message::text(command.to_string())).await.unwrap();
        while let Some(message) = self.socket.next().await {
            let Ok(Message::Text(text)) = message else { continue };
            let reply: Value = serde_json::from_str(&text).unwrap();
            if reply["id"] == id {
                assert!(reply["result"]["exceptionDetails"].is_null(), "{expression}: {reply}");
                return reply["result"]["result"]["value"].clone();
            }
        }
        panic!("DevTools closed");
    }

    /// Waits until `expression` is true; while the page is still loading
    /// (`document.body` null), a throwing expression counts as not yet.
    async fn wait_for(&mut self, expression: &str, timeout: Duration) {
        let started = Instant::now();
        let guarded =
            format!("(() => {{ try {{ return !!({expression}); }} catch (e) {{ return false; }} }})()");
        while self.eval(&guarded).await != Value::Bool(true) {
            assert!(started.elapsed() < timeout, "timed out waiting for `{expression}`");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

#[tokio::test]
async fn a_visitor_asks_in_the_browser_and_sees_the_answer_stream_in_with_a_cta_button() {
    let stack = spawn_stack().await;
    stack.bedrock.set_delta_delay(Duration::from_millis(30));
    let mut browser = Browser::open(&format!("{}/", stack.host_url())).await;
    browser
        .wait_for(
            "document.readyState === 'complete' && !!document.getElementById('question')",
            Duration::from_secs(10),
        )
        .await;

    browser.wait_for("document.body.dataset.config === 'loaded'", Duration::from_secs(10)).await;
    let welcome = browser.eval("(document.querySelector('.msg.welcome') || {}).textContent || ''").await;
    assert_eq!(welcome, demo_config()["welcome_message"], "the welcome message from get_config");

    browser
        .eval(
            "document.getElementById('question').value = 'What is Reading Buddies?';\
             document.querySelector('#ask button[type=submit]').click(); true",
        )
        .await;

    // While the answer streams, the bubble shows part of it.
    let mut partial_seen = false;
    let started = Instant::now();
    while browser.eval("document.body?.dataset.state").await != "done" {
        assert!(started.elapsed() < Duration::from_secs(20), "the answer did not finish");
        let shown = browser.eval("(document.querySelector('.msg.bot') || {}).textContent || ''").await;
        partial_seen |= !shown.as_str().unwrap_or_default().is_empty();
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
    assert!(partial_seen, "text appeared before the stream ended");

    let page = browser
        .eval(
            "JSON.stringify({answer: document.querySelector('.msg.bot').textContent,\
             error: document.querySelector('.msg.bot').classList.contains('error'),\
             ctas: [...document.querySelectorAll('button.cta')].map(b => b.textContent),\
             sources: (document.querySelector('.sources') || {}).textContent || ''})",
        )
        .await;
    let page: Value = serde_json::from_str(page.as_str().unwrap()).unwrap();
    let record = &stack.bedrock.streams()[0];
    assert_eq!(page["error"], false);
    assert_eq!(page["answer"], record.answer.as_str());
    assert!(page["ctas"].as_array().is_some_and(|ctas| !ctas.is_empty()), "{page}");
    assert!(page["sources"].as_str().unwrap().contains("Reading Buddies"), "{page}");
    drop(browser);
    stack.stop().await;
}

#[tokio::test]
async fn a_visitor_opens_a_form_from_its_cta_picks_labelled_options_and_submits_it() {
    let stack = spawn_stack().await;
    let url = format!("{}/?q={}", stack.host_url(), "How%20do%20I%20become%20a%20reading%20buddy%3F");
    let mut browser = Browser::open(&url).await;
    browser.wait_for("document.body.dataset.state === 'done'", Duration::from_secs(20)).await;
    browser
        .eval("[...document.querySelectorAll('button.cta')].find(b => b.dataset.action === 'start_form').click(); true")
        .await;
    browser.wait_for("!!document.querySelector('.form-card')", Duration::from_secs(5)).await;

    // Options are {value, label}: the visitor reads the label, the form sends the value.
    let option = browser
        .eval("(o => o && [o.value, o.textContent])(document.querySelector('.form-card select[name=age_18_plus] option[value=yes]'))")
        .await;
    assert_eq!(option, json!(["yes", "Yes, I'm 18 or older"]));

    let answers = json!({
        "age_18_plus": "yes", "first_name": "Ana", "last_name": "Lopez", "email": "ana.lopez@example.org",
        "phone": "+1 503 555 0199", "zip_code": "97412", "availability": "Weekday afternoons",
        "why_reading_buddies": "I loved reading with my grandmother and want to pass that on.",
        "text_updates_ok": "no"
    });
    browser
        .eval(&format!(
            "(answers => {{ for (const [name, value] of Object.entries(answers)) \
               document.querySelector(`.form-card [name=${{name}}]`).value = value; \
             document.querySelector('.form-card button[type=submit]').click(); return true; }})({answers})"
        ))
        .await;
    browser.wait_for("!!document.querySelector('.msg.confirm')", Duration::from_secs(10)).await;
    let confirmation = browser.eval("document.querySelector('.msg.confirm').textContent").await;
    assert!(confirmation.as_str().unwrap().contains("reading_buddy_application_"), "{confirmation}");

    // The table also holds the submit's idempotency record (the page sends a client_submission_id).
    let stored: Vec<_> =
        submissions(&stack).await.into_iter().filter(|i| i.contains_key("form_data")).collect();
    assert_eq!(stored.len(), 1);
    let data = stored[0]["form_data"].as_m().unwrap();
    assert_eq!(data["text_updates_ok"].as_s().unwrap(), "no", "the option's value, not its label");
    drop(browser);
    stack.stop().await;
}
