//! A real headless Chromium for end-to-end tests of HTML pages, driven over WebDriver.
//!
//! [`Browser::start`] runs Debian's `chromedriver` on a free loopback port (it listens on
//! 127.0.0.1 and ::1 only: no `--allowed-ips`, which would open it to every address) in a
//! process group of its own, waits until it answers `GET /status`, and opens a W3C session with
//! `/usr/bin/chromium` (`--headless=new --no-sandbox`, as tests run as root; a fresh profile in
//! a temporary directory; the browser's console log kept so [`Browser::console_errors`] can read
//! it). Dropping the [`Browser`] kills the whole group (chromedriver and every Chromium process)
//! and reaps chromedriver, also when a test panics; [`Browser::close`] ends the session politely
//! first.
//!
//! The client is `fantoccini` over plain HTTP. Its session runs as a task on the test's tokio
//! runtime, so a plain `#[tokio::test]` (current-thread) works, with the page server in the same
//! runtime, as long as the test blocks nothing: a blocking call (`std::thread::sleep`, a
//! synchronous HTTP client, `Command::output`) stalls the WebDriver session and the server alike.
//! chromedriver's and Chromium's output goes to a file (`chromedriver.log` in the temporary
//! directory, quoted in errors), never to an unread pipe: once a pipe's buffer is full, every
//! write blocks and the browser hangs.
//!
//! The helpers panic with the selector and the end of chromedriver's log when something fails,
//! and every WebDriver command has a deadline ([`COMMAND_TIMEOUT`]), so a stuck browser fails
//! the test instead of hanging it. Element look-ups do not wait (implicit wait 0): a page is
//! loaded when [`Browser::goto`] or [`Browser::submit`] returns; after a plain
//! [`Browser::click`] that loads a page, the next command may still see the old one.
//!
//! `scripts/test.sh` installs Debian's `chromium` and `chromium-driver`. Without them a plain
//! `cargo test` prints a loud `skipped:` line and [`Browser::start`] returns `None`; with
//! `CI=true` it panics instead.

use std::fs::File;
use std::future::Future;
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::cookies::Cookie;
use fantoccini::wd::Capabilities;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use crate::slapd::skip;

const CHROMIUM: &str = "chromium";
const CHROMEDRIVER: &str = "chromedriver";

/// How long chromedriver may take to answer `GET /status`.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);
/// How long one WebDriver command (including a page load) may take.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// How long [`Browser::submit`] waits for the next page.
pub const NAVIGATION_TIMEOUT: Duration = Duration::from_secs(10);

/// A headless Chromium behind its own chromedriver. Dropping it kills both.
pub struct Browser {
    client: Client,
    /// `http://127.0.0.1:PORT/`: chromedriver.
    webdriver: String,
    session: String,
    /// For the commands fantoccini lacks (the browser log).
    http: reqwest::Client,
    child: Child,
    /// The process group of chromedriver and its browsers (chromedriver's pid).
    pgid: i32,
    log: PathBuf,
    /// The profile and the log; removed after `drop` has stopped the processes.
    _dir: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session (about a second). `None` (after a
    /// loud `skipped:` line) when Chromium or chromedriver is not installed; with `CI=true` that
    /// panics instead.
    pub async fn start() -> Option<Browser> {
        let Some(chromium) = which(CHROMIUM) else {
            skip("chromium is not installed (scripts/test.sh installs Debian's chromium)");
            return None;
        };
        let Some(chromedriver) = which(CHROMEDRIVER) else {
            skip("chromedriver is not installed (scripts/test.sh installs chromium-driver)");
            return None;
        };
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("chromedriver.log");
        let out = File::create(&log).expect("chromedriver log");
        let err = out.try_clone().expect("chromedriver log");
        let port = free_port();
        let child = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            // A group of its own: chromedriver starts Chromium, which starts its helpers, all
            // in this group, so that `drop` can kill them at once.
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", chromedriver.display()));
        let pgid = i32::try_from(child.id()).expect("pid");
        let webdriver = format!("http://127.0.0.1:{port}/");
        // From here on, a panic drops `starting` and so kills the group.
        let mut starting = Starting {
            child: Some(child),
            pgid,
        };
        let http = reqwest::Client::new();
        wait_until_ready(&http, &webdriver, &mut starting, &log).await;

        let mut capabilities = Capabilities::new();
        capabilities.insert("browserName".into(), json!("chrome"));
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--window-size=1280,1000",
                    format!("--user-data-dir={}", dir.path().join("profile").display()),
                ],
            }),
        );
        capabilities.insert("goog:loggingPrefs".into(), json!({ "browser": "ALL" }));
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let mut builder = ClientBuilder::new(connector);
        builder.capabilities(capabilities);
        let client = match tokio::time::timeout(COMMAND_TIMEOUT, builder.connect(&webdriver)).await
        {
            Ok(Ok(client)) => client,
            Ok(Err(e)) => panic!(
                "chromedriver could not start Chromium: {e}\n{}",
                log_tail(&log)
            ),
            Err(_) => panic!(
                "chromedriver started no Chromium within {COMMAND_TIMEOUT:?}\n{}",
                log_tail(&log)
            ),
        };
        let session = match client.session_id().await {
            Ok(Some(session)) => session,
            other => panic!("chromedriver gave no session id: {other:?}"),
        };
        let child = starting.child.take().expect("child");
        Some(Browser {
            client,
            webdriver,
            session,
            http,
            child,
            pgid,
            log,
            _dir: dir,
        })
    }

    /// Opens `url` and waits until the page has loaded.
    pub async fn goto(&self, url: &str) {
        self.run(&format!("goto {url}"), self.client.goto(url))
            .await;
    }

    /// Replaces the value of the field `css` with `text`.
    ///
    /// An `<input>` is cleared and then typed into, key by key, as a user would (so `text` must
    /// not hold `\t` or `\n`: they would press Tab or Enter). A `<textarea>` gets its value set
    /// by script instead, followed by `input` and `change` events: WebDriver types a tab
    /// character as the Tab key, which would leave the field, and typing a 30-line class list
    /// key by key takes seconds.
    pub async fn fill(&self, css: &str, text: &str) {
        let element = self.find(css).await;
        let what = format!("fill {css}");
        let tag = self.run(&what, element.tag_name()).await;
        if tag.eq_ignore_ascii_case("textarea") {
            let script = "const [field, value] = arguments;
                field.focus();
                field.value = value;
                field.dispatchEvent(new Event('input', { bubbles: true }));
                field.dispatchEvent(new Event('change', { bubbles: true }));";
            let field = serde_json::to_value(&element).expect("element reference");
            self.run(&what, self.client.execute(script, vec![field, json!(text)]))
                .await;
        } else {
            assert!(
                !text.contains(['\t', '\n']),
                "fill {css}: an <{tag}> cannot take a tab or a newline: {text:?}"
            );
            self.run(&what, element.clear()).await;
            self.run(&what, element.send_keys(text)).await;
        }
    }

    /// Clicks the element `css`, and returns without waiting for a page the click may load:
    /// see [`Browser::submit`] for that.
    pub async fn click(&self, css: &str) {
        let element = self.find(css).await;
        self.run(&format!("click {css}"), element.click()).await;
    }

    /// Clicks `css` (a form's submit button, or a link) and waits until the next page has
    /// loaded: the document the click left is gone and the new one is complete. Panics when no
    /// new page comes within [`NAVIGATION_TIMEOUT`] (the browser's own validation kept the form
    /// back, say: a `required` field left empty).
    ///
    /// A plain click is not enough before reading the next page: chromedriver may answer the
    /// click before the form's navigation has started, and the next command then reads the old
    /// page.
    pub async fn submit(&self, css: &str) {
        let what = format!("submit {css}");
        let old = self.find("html").await;
        let element = self.find(css).await;
        self.run(&what, element.click()).await;
        let deadline = Instant::now() + NAVIGATION_TIMEOUT;
        let mut gone = false;
        loop {
            if !gone {
                match tokio::time::timeout(COMMAND_TIMEOUT, old.tag_name()).await {
                    Ok(Ok(_)) => {}
                    // Stale, or (when asked at the very moment it is replaced) "does not belong
                    // to the document": either way the old page is gone.
                    Ok(Err(e))
                        if e.is_stale_element_reference()
                            || e.to_string().contains("does not belong to the document") =>
                    {
                        gone = true
                    }
                    Ok(Err(e)) => panic!("browser: {what}: {e}\n{}", log_tail(&self.log)),
                    Err(_) => panic!("browser: {what}: no answer within {COMMAND_TIMEOUT:?}"),
                }
            }
            if gone {
                let script = "return document.readyState";
                let state = self.run(&what, self.client.execute(script, vec![])).await;
                if state == "complete" {
                    return;
                }
            }
            if Instant::now() > deadline {
                let url = self.current_url().await;
                panic!("browser: {what}: still on {url} after {NAVIGATION_TIMEOUT:?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The rendered text of the first element `css` (as a user sees it: hidden parts left out).
    pub async fn text(&self, css: &str) -> String {
        let element = self.find(css).await;
        self.run(&format!("text of {css}"), element.text()).await
    }

    /// The rendered text of every element `css`, in document order (none: empty).
    pub async fn texts(&self, css: &str) -> Vec<String> {
        let what = format!("texts of {css}");
        let elements = self
            .run(&what, self.client.find_all(Locator::Css(css)))
            .await;
        let mut texts = Vec::with_capacity(elements.len());
        for element in elements {
            texts.push(self.run(&what, element.text()).await);
        }
        texts
    }

    /// The address of the page shown now (after redirects).
    pub async fn current_url(&self) -> String {
        self.run("current url", self.client.current_url())
            .await
            .to_string()
    }

    /// Runs a script in the page (its `return` value is the answer), as a user's own tampering
    /// would: to take a field out of a form, say.
    pub async fn execute(&self, script: &str) -> Value {
        self.run(
            &format!("execute {script}"),
            self.client.execute(script, vec![]),
        )
        .await
    }

    /// Resizes the browser window (a tablet's is 768 × 1024).
    pub async fn resize(&self, width: u32, height: u32) {
        self.run(
            &format!("resize to {width}x{height}"),
            self.client.set_window_size(width, height),
        )
        .await;
    }

    /// The current DOM, serialised.
    pub async fn source(&self) -> String {
        self.run("page source", self.client.source()).await
    }

    /// Saves a PNG of the viewport as `<target>/screenshots/<name>.png` (`<target>` is
    /// `CARGO_TARGET_DIR`, or `target` in the package) and returns its path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.run("screenshot", self.client.screenshot()).await;
        let dir = target_dir().join("screenshots");
        std::fs::create_dir_all(&dir).expect("screenshot directory");
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("screenshot file");
        path
    }

    /// The browser console's messages at level SEVERE since the previous call: `console.error`,
    /// uncaught exceptions, failed loads and Content-Security-Policy violations.
    ///
    /// Chromium asks for `/favicon.ico` after a page has loaded unless the page names an icon
    /// (`<link rel="icon" href="data:,">` names none): a 404 there is an error too, and may be
    /// logged only after `goto` has returned.
    pub async fn console_errors(&self) -> Vec<String> {
        // chromedriver keeps the legacy (non-W3C) log endpoint under `/se/` (`POST
        // /session/{id}/log` works too); it returns the entries since the previous call.
        let url = format!("{}session/{}/se/log", self.webdriver, self.session);
        let request = self
            .http
            .post(&url)
            .json(&json!({ "type": "browser" }))
            .send();
        let response = self.run("browser log", request).await;
        let body: Value = self.run("browser log", response.json()).await;
        let Value::Array(entries) = body["value"].clone() else {
            panic!("browser log: not a list: {body}");
        };
        entries
            .into_iter()
            .filter(|entry| entry["level"] == "SEVERE")
            .map(|entry| entry["message"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    /// Presses Tab (moving the focus).
    pub async fn press_tab(&self) {
        let element = self
            .run("active element", self.client.active_element())
            .await;
        self.run("press Tab", element.send_keys("\u{e004}")).await;
    }

    /// The focused element's `id`, `name` or, failing both, tag name.
    pub async fn active_element(&self) -> String {
        let element = self
            .run("active element", self.client.active_element())
            .await;
        for attribute in ["id", "name"] {
            if let Some(value) = self.run("active element", element.attr(attribute)).await
                && !value.is_empty()
            {
                return value;
            }
        }
        self.run("active element", element.tag_name()).await
    }

    /// The cookies the current page's site has (HttpOnly ones too).
    pub async fn cookies(&self) -> Vec<Cookie<'static>> {
        self.run("cookies", self.client.get_all_cookies()).await
    }

    /// Ends the session (Chromium quits), then stops chromedriver as `drop` does.
    pub async fn close(self) {
        let client = self.client.clone();
        self.run("close session", client.close()).await;
    }

    /// chromedriver's process group (its pid); gone once the [`Browser`] is dropped.
    pub fn process_group(&self) -> i32 {
        self.pgid
    }

    async fn find(&self, css: &str) -> fantoccini::elements::Element {
        self.run(&format!("find {css}"), self.client.find(Locator::Css(css)))
            .await
    }

    /// Awaits one WebDriver command; panics with `what` and chromedriver's log when it fails or
    /// takes longer than [`COMMAND_TIMEOUT`].
    async fn run<T, E: std::fmt::Display>(
        &self,
        what: &str,
        command: impl Future<Output = Result<T, E>>,
    ) -> T {
        match tokio::time::timeout(COMMAND_TIMEOUT, command).await {
            Ok(Ok(value)) => value,
            Ok(Err(e)) => panic!("browser: {what}: {e}\n{}", log_tail(&self.log)),
            Err(_) => panic!(
                "browser: {what}: no answer within {COMMAND_TIMEOUT:?}\n{}",
                log_tail(&self.log)
            ),
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // `dir` (profile, log) is removed after this, once nothing writes to it any more.
        kill_group(self.pgid, &mut self.child);
    }
}

/// chromedriver while [`Browser::start`] waits for it: killed if starting panics.
struct Starting {
    child: Option<Child>,
    pgid: i32,
}

impl Drop for Starting {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            kill_group(self.pgid, child);
        }
    }
}

/// SIGKILL to every process in the group, then reaps chromedriver (killed, it cannot block).
/// Chromium's processes are chromedriver's descendants: orphaned, they go to init, which reaps
/// them.
fn kill_group(pgid: i32, child: &mut Child) {
    // SAFETY: kill(2) takes plain integers and touches no memory of ours.
    unsafe {
        libc::kill(-pgid, libc::SIGKILL);
    }
    let _ = child.wait();
}

/// Whether a live (not zombie) process of group `pgid` remains.
pub fn group_alive(pgid: i32) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return false;
    };
    entries.flatten().any(|entry| {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            return false;
        };
        // pid (comm) state ppid pgrp …; comm may hold spaces and parentheses.
        let Some((_, rest)) = stat.rsplit_once(')') else {
            return false;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        fields.len() > 2 && fields[0] != "Z" && fields[2] == pgid.to_string()
    })
}

async fn wait_until_ready(
    http: &reqwest::Client,
    webdriver: &str,
    starting: &mut Starting,
    log: &Path,
) {
    let status = format!("{webdriver}status");
    let deadline = Instant::now() + STARTUP_TIMEOUT;
    loop {
        if let Ok(response) = http.get(&status).send().await
            && let Ok(body) = response.json::<Value>().await
            && body["value"]["ready"] == true
        {
            return;
        }
        let child = starting.child.as_mut().expect("child");
        if let Ok(Some(exit)) = child.try_wait() {
            panic!("chromedriver exited at start ({exit})\n{}", log_tail(log));
        }
        if Instant::now() > deadline {
            panic!(
                "chromedriver did not answer {status} within {STARTUP_TIMEOUT:?}\n{}",
                log_tail(log)
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The last lines of chromedriver's log, for error messages.
fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(40)..].join("\n");
    format!("--- end of {} ---\n{tail}", log.display())
}

fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("free port");
    listener.local_addr().expect("address").port()
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
}

// The fixture's own tests, against two tiny pages served from the test.

use std::collections::HashMap;

use axum::Router;
use axum::extract::Form;
use axum::http::HeaderMap;
use axum::http::header::{COOKIE, SET_COOKIE};
use axum::response::{Html, IntoResponse};
use axum::routing::get;

const FORM_PAGE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>Form</title></head>
<body>
<form method="post" action="/echo">
  <label for="name">Name</label> <input id="name" name="name">
  <label for="list">Class list</label> <textarea id="list" name="list"></textarea>
  <button type="submit">Send</button>
</form>
</body></html>"#;

const BAD_PAGE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>Bad</title></head>
<body><p>Broken</p><script>console.error("boom");</script></body></html>"#;

/// Serves the test pages on 127.0.0.1; returns `http://127.0.0.1:PORT`.
async fn pages() -> String {
    let router = Router::new()
        .route("/form", get(|| async { Html(FORM_PAGE) }))
        .route("/echo", axum::routing::post(echo))
        .route("/bad", get(|| async { Html(BAD_PAGE) }))
        .route("/cookie/set", get(set_cookie))
        .route("/cookie/echo", get(echo_cookie));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{address}")
}

/// The posted name, and the class list one `<li>` a line with tabs shown as `|`.
async fn echo(Form(form): Form<HashMap<String, String>>) -> Html<String> {
    let name = escape(form.get("name").map_or("", String::as_str));
    let lines: String = form
        .get("list")
        .map_or("", String::as_str)
        .lines()
        .map(|line| format!("<li>{}</li>", escape(&line.replace('\t', "|"))))
        .collect();
    Html(format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>Echo</title></head>
<body><p id="name">{name}</p><ul>{lines}</ul></body></html>"#
    ))
}

async fn set_cookie() -> impl IntoResponse {
    (
        [(SET_COOKIE, "a=1; Secure; HttpOnly; SameSite=Strict; Path=/")],
        Html("<!doctype html><link rel=\"icon\" href=\"data:,\"><title>Set</title><p>set</p>"),
    )
}

async fn echo_cookie(headers: HeaderMap) -> Html<String> {
    let cookie = headers
        .get(COOKIE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("(none)");
    Html(format!(
        "<!doctype html><link rel=\"icon\" href=\"data:,\"><title>Cookie</title><p id=\"cookie\">{}</p>",
        escape(cookie)
    ))
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[tokio::test]
async fn a_form_round_trip_shows_what_was_typed() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let root = pages().await;
    browser.goto(&format!("{root}/form")).await;
    assert_eq!(browser.console_errors().await, Vec::<String>::new());

    // Tab order: the name field, then the class list.
    browser.click("#name").await;
    browser.press_tab().await;
    assert_eq!(browser.active_element().await, "list");

    browser.fill("#name", "stale").await;
    browser.fill("#name", "Ada <Lovelace>").await;
    let list: Vec<String> = (1..=30)
        .map(|i| format!("Student{i}\tFirst{i}\t12A"))
        .collect();
    let started = Instant::now();
    browser.fill("#list", &list.join("\n")).await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "filling is slow"
    );
    browser.submit("button[type=submit]").await;

    assert_eq!(browser.current_url().await, format!("{root}/echo"));
    assert_eq!(browser.text("#name").await, "Ada <Lovelace>");
    let expected: Vec<String> = list.iter().map(|line| line.replace('\t', "|")).collect();
    assert_eq!(browser.texts("li").await, expected);
    assert_eq!(browser.texts("table").await, Vec::<String>::new());
    assert!(browser.source().await.contains("Ada &lt;Lovelace&gt;"));
    assert_eq!(browser.console_errors().await, Vec::<String>::new());
    browser.close().await;
}

#[tokio::test]
async fn console_errors_are_reported_once() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let root = pages().await;
    browser.goto(&format!("{root}/bad")).await;
    let errors = browser.console_errors().await;
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("boom"), "{errors:?}");
    // Read: gone.
    assert_eq!(browser.console_errors().await, Vec::<String>::new());

    let path = browser.screenshot("browser-fixture").await;
    let png = std::fs::read(&path).expect("screenshot");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "{}", path.display());
    browser.close().await;
}

/// What the admin console's session cookie depends on: whether Chromium keeps a `Secure` cookie
/// set over plain HTTP by 127.0.0.1 (a potentially trustworthy origin) and sends it back.
#[tokio::test]
async fn chromium_keeps_secure_cookies_on_http_loopback() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let root = pages().await;
    browser.goto(&format!("{root}/cookie/set")).await;
    browser.goto(&format!("{root}/cookie/echo")).await;
    let cookies = browser.cookies().await;
    eprintln!("cookies: {cookies:?}");
    assert_eq!(browser.text("#cookie").await, "a=1");
    browser.close().await;
}

#[tokio::test]
async fn dropping_the_browser_ends_every_process() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let root = pages().await;
    browser.goto(&format!("{root}/form")).await;
    let group = browser.process_group();
    assert!(group_alive(group));
    // Not closed: the drop alone must stop chromedriver and Chromium.
    drop(browser);
    let deadline = Instant::now() + Duration::from_secs(5);
    while group_alive(group) {
        assert!(
            Instant::now() < deadline,
            "process group {group} outlived the Browser"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
