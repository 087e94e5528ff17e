//! The `rollcall` binary itself: token management, `check-config`, environment overrides, and a
//! daemon started as a child process (always killed and reaped, even when a test fails).

use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::*;

const BIN: &str = env!("CARGO_BIN_EXE_rollcall");

/// Environment variables the binary reads; cleared so the caller's environment cannot leak in.
const ENV: [&str; 5] = [
    "ROLLCALL_CONFIG",
    "ROLLCALL_DATABASE_URL",
    "ROLLCALL_LISTEN",
    "ROLLCALL_LOG_FORMAT",
    "ROLLCALL_LOG",
];

/// A temporary directory with a configuration file (north and south) and its store.
pub struct Setup {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
}

impl Setup {
    pub fn new() -> Setup {
        Setup::with_config(|text| text)
    }

    /// A setup whose configuration text is `edit(harness::config_text(db))`.
    pub fn with_config(edit: impl FnOnce(String) -> String) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("rollcall.toml");
        std::fs::write(&config, edit(config_text(&dir.path().join("rollcall.db")))).unwrap();
        Setup { dir, config }
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(BIN);
        for name in ENV {
            command.env_remove(name);
        }
        command
            .current_dir(self.dir.path())
            .arg("--config")
            .arg(&self.config)
            .args(args);
        command
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// Runs a command that must succeed; returns its stdout.
    #[track_caller]
    pub fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert!(
            output.status.success(),
            "rollcall {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    /// `token create`, returning the token printed on the last line.
    /// `rollcall admin create` for an admin of north: the API token on its last line.
    pub fn create_admin(&self, username: &str) -> String {
        let stdout = self.ok(&[
            "admin",
            "create",
            "--school",
            "north",
            "--username",
            username,
        ]);
        let token = stdout.lines().last().unwrap_or_default().to_owned();
        assert!(token.starts_with("rca_"), "{stdout}");
        token
    }

    pub fn create_token(&self, school: &str, source: &str) -> String {
        let stdout = self.ok(&["token", "create", "--school", school, "--source", source]);
        let last = stdout.lines().last().unwrap_or_default();
        assert!(
            last.starts_with("rct_"),
            "last line is not a token: {stdout}"
        );
        assert_eq!(last.trim(), last, "{stdout:?}");
        assert!(
            !last.contains(' '),
            "the token must be alone on its line: {last:?}"
        );
        last.to_owned()
    }

    /// Starts `rollcall serve` on a free port and waits for `/healthz`.
    pub async fn serve(&self, env: &[(&str, &str)]) -> Daemon {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = self.dir.path().join(format!("daemon-{port}.log"));
        let mut command = self.command(&["serve", "--listen", &format!("127.0.0.1:{port}")]);
        command
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&log).unwrap());
        let daemon = Daemon {
            child: command.spawn().unwrap(),
            root: format!("http://127.0.0.1:{port}"),
            log,
        };
        daemon.wait_healthy().await;
        daemon
    }
}

/// A `rollcall serve` child process. Dropping it kills and reaps the process.
pub struct Daemon {
    child: Child,
    pub root: String,
    log: PathBuf,
}

impl Daemon {
    pub fn scim(&self, path: &str) -> String {
        format!("{}/scim/v2{path}", self.root)
    }

    /// Everything the daemon has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    async fn wait_healthy(&self) {
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(response) = http.get(format!("{}/healthz", self.root)).send().await
                && response.status() == 200
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the daemon did not become healthy: {}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn terminate(&self) {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit by itself.
    pub async fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the daemon did not exit: {}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn get_users(http: &reqwest::Client, daemon: &Daemon, token: &str) -> reqwest::Response {
    http.get(daemon.scim("/Users"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The 1-based line of the first line of `text` containing `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines().position(|l| l.contains(needle)).unwrap() + 1
}

#[tokio::test]
async fn a_created_token_authenticates_is_listed_without_its_secret_and_revokes() {
    let setup = Setup::new();
    let token = setup.create_token("north", "entra");
    let other = setup.create_token("south", "okta");
    let daemon = setup.serve(&[]).await;
    let http = reqwest::Client::new();

    let reply = get_users(&http, &daemon, &token).await;
    assert_eq!(reply.status(), 200);
    let created = http
        .post(daemon.scim("/Users"))
        .bearer_auth(&token)
        .header("content-type", "application/scim+json")
        .body(user("ada@north.example").to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);

    let list = setup.ok(&["token", "list"]);
    assert!(!list.contains(&token), "{list}");
    assert!(!list.contains(&token["rct_".len()..]), "{list}");
    assert!(!list.contains(&other), "{list}");
    let rows: Vec<&str> = list.lines().skip(1).collect();
    assert_eq!(rows.len(), 2, "{list}");
    let north_row = rows.iter().find(|r| r.contains("north")).unwrap();
    assert!(north_row.contains("entra"), "{list}");
    assert!(north_row.trim_end().ends_with("active"), "{list}");
    let id = north_row.split_whitespace().next().unwrap().to_owned();
    let south_only = setup.ok(&["token", "list", "--school", "south"]);
    assert!(!south_only.contains(&id), "{south_only}");
    assert!(south_only.contains("okta"), "{south_only}");

    let revoked = setup.ok(&["token", "revoke", &id]);
    assert!(revoked.contains(&id), "{revoked}");
    let reply = get_users(&http, &daemon, &token).await;
    assert_eq!(reply.status(), 401);
    assert!(reply.headers().contains_key("www-authenticate"));
    let body: Value = reply.json().await.unwrap();
    assert_eq!(body["status"], "401");
    let list = setup.ok(&["token", "list", "--school", "north"]);
    assert!(list.contains("revoked"), "{list}");
    // Revoking again is harmless; the other school's token is untouched.
    setup.ok(&["token", "revoke", &id]);
    assert_eq!(get_users(&http, &daemon, &other).await.status(), 200);

    // Neither token ever reached the log.
    let log = daemon.log();
    assert!(!log.contains(&token) && !log.contains(&other), "{log}");
}

#[test]
fn token_commands_name_what_is_wrong() {
    let setup = Setup::new();
    let output = setup.run(&[
        "token", "create", "--school", "atlantis", "--source", "entra",
    ]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("`atlantis`"),
        "{}",
        stderr(&output)
    );
    assert!(output.stdout.is_empty(), "no token may be printed");

    let output = setup.run(&[
        "token", "create", "--school", "north", "--source", "Entra ID",
    ]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("`Entra ID`"),
        "{}",
        stderr(&output)
    );

    let output = setup.run(&["token", "revoke", "nosuchtoken"]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("`nosuchtoken`"),
        "{}",
        stderr(&output)
    );

    // None of the failures created a token.
    let list = setup.ok(&["token", "list"]);
    assert_eq!(list.lines().count(), 1, "{list}");
}

#[test]
fn check_config_explains_a_valid_file() {
    let setup = Setup::new();
    let stdout = setup.ok(&["check-config"]);
    assert!(stdout.contains("is valid"), "{stdout}");
    assert!(stdout.contains("north: North Academy"), "{stdout}");
    assert!(stdout.contains("south: South School"), "{stdout}");
    let db = setup.dir.path().join("rollcall.db");
    assert!(
        stdout.contains(&format!("store: sqlite://{}", db.display())),
        "{stdout}"
    );
    assert!(db.exists());
}

#[test]
fn check_config_names_an_unknown_key_and_its_line() {
    for (edit, key) in [
        (
            (|t: String| {
                t.replace(
                    "shutdown_grace_secs = 5",
                    "shutdown_grace_secs = 5\ncolour = \"blue\"",
                )
            }) as fn(String) -> String,
            "colour",
        ),
        (|t: String| format!("verbose = true\n{t}"), "verbose"),
        (
            |t: String| {
                t.replace(
                    "name = \"South School\"",
                    "name = \"South School\"\nmotto = \"Onward\"",
                )
            },
            "motto",
        ),
        (
            |t: String| t.replace("[store]", "[store]\npath = \"x.db\""),
            "path",
        ),
    ] {
        let setup = Setup::with_config(edit);
        let text = std::fs::read_to_string(&setup.config).unwrap();
        let line = line_of(&text, &format!("{key} ="));
        let output = setup.run(&["check-config"]);
        assert!(!output.status.success());
        assert_ne!(output.status.code(), Some(0));
        let message = stderr(&output);
        assert!(message.contains(&format!("`{key}`")), "{message}");
        assert!(
            message.contains(&format!("line {line}")),
            "{line}: {message}"
        );
        assert!(
            message.contains(&setup.config.display().to_string()),
            "{message}"
        );
        // Every command refuses the file, not just check-config.
        let output = setup.run(&["token", "list"]);
        assert!(!output.status.success());
    }
}

#[test]
fn check_config_names_a_bad_listen_address_and_its_line() {
    let setup = Setup::with_config(|t| t.replace("127.0.0.1:0", "localhost:http"));
    let text = std::fs::read_to_string(&setup.config).unwrap();
    let line = line_of(&text, "listen =");
    let output = setup.run(&["check-config"]);
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(message.contains("server.listen"), "{message}");
    assert!(message.contains(&format!("line {line}")), "{message}");
    assert!(message.contains("localhost:http"), "{message}");
}

#[test]
fn the_database_url_variable_overrides_the_file() {
    let setup = Setup::new();
    let other = setup.dir.path().join("elsewhere").join("other.db");
    let url = format!("sqlite://{}", other.display());
    let output = setup
        .command(&["check-config"])
        .env("ROLLCALL_DATABASE_URL", &url)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(stdout.contains(&format!("store: {url} ")), "{stdout}");
    assert!(other.exists(), "the overriding store was not opened");
    assert!(!setup.dir.path().join("rollcall.db").exists());

    let output = setup
        .command(&["check-config"])
        .env(
            "ROLLCALL_DATABASE_URL",
            "mysql://rollcall:hunter2@db.example/rollcall",
        )
        .output()
        .unwrap();
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(message.contains("ROLLCALL_DATABASE_URL"), "{message}");
    assert!(message.contains("mysql"), "{message}");
    // The URL's host and password are not echoed.
    assert!(
        !message.contains("db.example") && !message.contains("hunter2"),
        "{message}"
    );

    // A PostgreSQL URL is taken; one that answers nothing fails to open, its password unshown.
    let output = setup
        .command(&["check-config"])
        .env(
            "ROLLCALL_DATABASE_URL",
            "postgres://rollcall:hunter2@127.0.0.1:9/rollcall",
        )
        .output()
        .unwrap();
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(
        message.contains("postgres://rollcall:***@127.0.0.1:9/rollcall"),
        "{message}"
    );
    assert!(!message.contains("hunter2"), "{message}");

    let output = setup
        .command(&["check-config"])
        .env("ROLLCALL_LISTEN", "nowhere")
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("ROLLCALL_LISTEN"),
        "{}",
        stderr(&output)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_an_in_flight_request_finish_and_exits_zero() {
    // Costly argon2 parameters make each operation slow (about half a second), so the request
    // is in flight when the signal arrives; the check below proves it was.
    let setup = Setup::with_config(|t| {
        t.replace("shutdown_grace_secs = 5", "shutdown_grace_secs = 60")
            + "\n[argon2]\nmemory_kib = 65536\niterations = 8\n"
    });
    let token = setup.create_token("north", "entra");
    let mut daemon = setup.serve(&[]).await;
    const OPS: usize = 4;
    let operations: Vec<Value> = (0..OPS)
        .map(|n| {
            json!({ "method": "POST", "path": "/Users", "bulkId": format!("u{n}"),
                    "data": { "schemas": [USER_URN], "userName": format!("pupil{n}@north.example"),
                              "password": format!("secret-{n}") } })
        })
        .collect();
    let request = reqwest::Client::new()
        .post(daemon.scim("/Bulk"))
        .bearer_auth(&token)
        .header("content-type", "application/scim+json")
        .body(bulk_request(operations).to_string());
    let started = Instant::now();
    let in_flight = tokio::spawn(async move {
        let response = request.send().await.unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        (status, body, Instant::now())
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let signalled = Instant::now();
    daemon.terminate();

    let (status, body, answered) = in_flight.await.unwrap();
    assert!(
        answered > signalled,
        "the request finished before the signal ({:?}); make it slower",
        answered - started
    );
    assert_eq!(status, 200, "{body}");
    let operations = body["Operations"].as_array().unwrap();
    assert_eq!(operations.len(), OPS);
    assert!(operations.iter().all(|op| op["status"] == "201"), "{body}");

    let exit = daemon.wait_exit(Duration::from_secs(30)).await;
    assert!(exit.success(), "{exit:?}: {}", daemon.log());
    // The work it finished is stored: a fresh daemon on the same store sees every user.
    let daemon = setup.serve(&[]).await;
    let list: Value = get_users(&reqwest::Client::new(), &daemon, &token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["totalResults"], OPS);
}

/// Opens the daemon's store directly (it is SQLite in WAL mode, so a second reader is fine).
pub async fn open_store(setup: &Setup) -> rollcall::store::Store {
    let url = format!(
        "sqlite://{}",
        setup.dir.path().join("rollcall.db").display()
    );
    rollcall::store::Store::open(&url).await.unwrap()
}
