//! A real SMTP server for the mail tests: `tests/smtp/sink.py` (aiosmtpd, pinned in
//! `tests/conformance/requirements.txt`, installed by `scripts/test.sh` into the venv that
//! `ROLLCALL_CONFORMANCE_VENV` names) on a free loopback port, keeping each message it receives
//! as a JSON file in a temporary directory.
//!
//! [`SmtpSink::start`] runs it in a process group of its own and waits for its `ready PORT`
//! line; dropping the [`SmtpSink`] kills the group and reaps the process, also when a test
//! panics. Without aiosmtpd a plain `cargo test` prints a loud `skipped:` line and `start`
//! returns `None`; with `CI=true` it panics instead.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::slapd::skip;

/// How long the server may take to say it is ready.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);

/// A received message: envelope, subject, and the decoded parts.
#[derive(Debug, Clone)]
pub struct Received {
    pub to: Vec<String>,
    pub subject: String,
    /// The top-level content type (`multipart/alternative`) and each part's.
    pub content_type: String,
    pub parts: Vec<String>,
    pub text: String,
    pub html: String,
    /// The message as it was sent.
    pub raw: String,
}

impl Received {
    /// The first line of the text part starting with `prefix`: a link.
    pub fn link(&self, prefix: &str) -> String {
        self.text
            .lines()
            .map(str::trim)
            .find(|line| line.starts_with(prefix))
            .unwrap_or_else(|| panic!("no line starting {prefix} in the message:\n{}", self.text))
            .to_owned()
    }
}

/// A running mail sink. Dropping it kills the server.
pub struct SmtpSink {
    pub port: u16,
    /// `none`, `starttls` or `tls`: what `[mail] security` must say.
    security: &'static str,
    child: Child,
    pgid: i32,
    dir: tempfile::TempDir,
}

/// The venv's Python (the conformance suite's venv, where `scripts/test.sh` installs aiosmtpd).
fn venv_python() -> PathBuf {
    std::env::var_os("ROLLCALL_CONFORMANCE_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/conformance-venv")
        })
        .join("bin/python")
}

impl SmtpSink {
    /// Starts the sink (about half a second). `None` (after a loud `skipped:` line) when
    /// aiosmtpd is not installed; with `CI=true` that panics instead.
    pub async fn start() -> Option<SmtpSink> {
        SmtpSink::start_with("none", &[]).await
    }

    /// [`SmtpSink::start`] with TLS: `starttls` (required before a message) or `tls` (from the
    /// first byte), with this certificate and key (PEM).
    pub async fn start_tls(
        security: &'static str,
        certificate: &Path,
        key: &Path,
    ) -> Option<SmtpSink> {
        SmtpSink::start_with(security, &[certificate, key]).await
    }

    async fn start_with(security: &'static str, files: &[&Path]) -> Option<SmtpSink> {
        let python = venv_python();
        let ready = Command::new(&python)
            .args(["-c", "import aiosmtpd"])
            .output()
            .is_ok_and(|out| out.status.success());
        if !ready {
            skip(&format!(
                "aiosmtpd is not installed at {} (scripts/test.sh installs it)",
                python.display()
            ));
            return None;
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/smtp/sink.py");
        let log = std::fs::File::create(dir.path().join("sink.log")).expect("sink log");
        let mut child = Command::new(&python)
            .arg(&script)
            .arg(dir.path())
            .args((security != "none").then_some(security))
            .args(files)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            // A group of its own, so that `drop` kills whatever it started.
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", script.display()));
        let pgid = i32::try_from(child.id()).expect("pid");
        let stdout = child.stdout.take().expect("stdout");
        let mut sink = SmtpSink {
            port: 0,
            security,
            child,
            pgid,
            dir,
        };
        let line = tokio::time::timeout(
            STARTUP_TIMEOUT,
            tokio::task::spawn_blocking(move || {
                let mut line = String::new();
                BufReader::new(stdout).read_line(&mut line).map(|_| line)
            }),
        )
        .await;
        let line = match line {
            Ok(Ok(Ok(line))) => line,
            _ => panic!(
                "the SMTP sink did not start within {STARTUP_TIMEOUT:?}:\n{}",
                sink.log()
            ),
        };
        sink.port = line
            .trim()
            .strip_prefix("ready ")
            .and_then(|port| port.parse().ok())
            .unwrap_or_else(|| panic!("the SMTP sink said {line:?}:\n{}", sink.log()));
        Some(sink)
    }

    /// The `[mail]` section sending through this sink, with links to `public_url`.
    pub fn config(&self, public_url: &str) -> String {
        format!(
            "\n[mail]\nhost = \"127.0.0.1\"\nport = {}\nsecurity = \"{}\"\n\
             from = \"North Academy <noreply@north.example>\"\npublic_url = \"{public_url}\"\n\
             timeout_secs = 10\n",
            self.port, self.security
        )
    }

    /// Every message received so far, oldest first.
    pub fn messages(&self) -> Vec<Received> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .expect("sink folder")
            .flatten()
            .map(|entry| entry.path())
            .filter(|path| {
                path.extension().is_some_and(|e| e == "json")
                    && !path
                        .file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            })
            .collect();
        names.sort();
        names
            .iter()
            .map(|path| {
                let record: Value =
                    serde_json::from_str(&std::fs::read_to_string(path).expect("message"))
                        .expect("message JSON");
                let text = |key: &str| record[key].as_str().unwrap_or_default().to_owned();
                let texts = |key: &str| {
                    record[key]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                };
                Received {
                    to: texts("to"),
                    subject: text("subject"),
                    content_type: text("content_type"),
                    parts: texts("parts"),
                    text: text("text"),
                    html: text("html"),
                    raw: text("raw"),
                }
            })
            .collect()
    }

    /// Waits until at least `count` messages have arrived (at most 15 seconds), and returns
    /// them all.
    pub async fn wait_for(&self, count: usize) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let messages = self.messages();
            if messages.len() >= count {
                return messages;
            }
            assert!(
                Instant::now() < deadline,
                "{} message(s) arrived, not {count}:\n{}",
                messages.len(),
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sink.log")).unwrap_or_default()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        // SAFETY: kill(2) takes plain integers and touches no memory of ours.
        unsafe {
            libc::kill(-self.pgid, libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
}
