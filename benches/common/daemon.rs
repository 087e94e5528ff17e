//! `rollcall serve` as a child process on 127.0.0.1: its configuration, a SCIM token, and a
//! guard that kills and reaps it whatever happens.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail, ensure};

/// The rollcall binary to run: `BENCH_ROLLCALL_BIN`, or the one cargo built for the benchmarks.
pub fn rollcall_bin() -> PathBuf {
    std::env::var_os("BENCH_ROLLCALL_BIN")
        .filter(|v| !v.is_empty())
        .map_or_else(
            || PathBuf::from(env!("CARGO_BIN_EXE_rollcall")),
            PathBuf::from,
        )
}

/// A `rollcall serve` child process, killed and reaped when dropped, whatever happens.
pub struct Instance {
    /// `http://127.0.0.1:PORT/scim/v2`.
    pub base: String,
    child: Child,
    log: PathBuf,
}

impl Instance {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Fails if the process has exited.
    pub fn check_running(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!(
                "rollcall (pid {}) exited early ({status}); the end of its log:\n{}",
                self.child.id(),
                self.log_tail(20)
            );
        }
        Ok(())
    }

    /// The last `lines` lines of its log.
    pub fn log_tail(&self, lines: usize) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(lines).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `rollcall --config F …`, with the environment's `ROLLCALL_*` overrides removed and the store
/// given as `ROLLCALL_DATABASE_URL` when there is one (else the default SQLite file).
pub fn rollcall(binary: &Path, config: &Path, store: Option<&str>, args: &[&str]) -> Command {
    let mut command = Command::new(binary);
    command.arg("--config").arg(config).args(args);
    for name in [
        "ROLLCALL_CONFIG",
        "ROLLCALL_DATABASE_URL",
        "ROLLCALL_LISTEN",
        "ROLLCALL_LOG_FORMAT",
        "ROLLCALL_LOG",
    ] {
        command.env_remove(name);
    }
    if let Some(url) = store {
        command.env("ROLLCALL_DATABASE_URL", url);
    }
    command.stdin(Stdio::null());
    command
}

/// A configuration in `dir` (its data directory) with one school, `bench`, followed by `extra`
/// (e.g. `[[webhooks]]` tables). No `[store]`: SQLite is the default (`<dir>/rollcall.db`),
/// PostgreSQL comes from `ROLLCALL_DATABASE_URL`.
pub fn write_config(dir: &Path, extra: &str) -> anyhow::Result<PathBuf> {
    let config = dir.join("rollcall.toml");
    std::fs::write(
        &config,
        // No first passwords for pushed users (`generate_for_scim = false`): each would cost an
        // argon2 hash (default parameters), and the benchmarks measure the rest.
        format!(
            "data_dir = \"{data}\"\n\n[server]\nshutdown_grace_secs = 2\n\n\
             [[schools]]\nid = \"bench\"\nname = \"Bench\"\n\n\
             [schools.passwords]\ngenerate_for_scim = false\n{extra}",
            data = dir.display(),
        ),
    )
    .context("cannot write the configuration")?;
    Ok(config)
}

/// A SCIM token for school `bench` (the last line `rollcall token create` prints).
pub fn create_token(binary: &Path, config: &Path, store: Option<&str>) -> anyhow::Result<String> {
    let output = rollcall(
        binary,
        config,
        store,
        &["token", "create", "--school", "bench", "--source", "bench"],
    )
    .output()
    .context("cannot run `rollcall token create`")?;
    ensure!(
        output.status.success(),
        "`rollcall token create` failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).context("token output is not UTF-8")?;
    stdout
        .lines()
        .rev()
        .map(str::trim)
        .find(|line| !line.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("`rollcall token create` printed no token"))
}

/// Starts `rollcall serve --listen 127.0.0.1:<free port>`, its output in `log`, and waits up to
/// 30 s for `/healthz`.
pub async fn start_instance(
    binary: &Path,
    config: &Path,
    store: Option<&str>,
    log: PathBuf,
    http: &reqwest::Client,
) -> anyhow::Result<Instance> {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .context("cannot find a free port")?
        .port();
    let listen = format!("127.0.0.1:{port}");
    let log_file = std::fs::File::create(&log)?;
    let child = rollcall(binary, config, store, &["serve", "--listen", &listen])
        .stdout(log_file.try_clone()?)
        .stderr(log_file)
        .spawn()
        .context("cannot start `rollcall serve`")?;
    let mut instance = Instance {
        base: format!("http://{listen}/scim/v2"),
        child,
        log,
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        instance.check_running()?;
        if http
            .get(format!("http://{listen}/healthz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return Ok(instance);
        }
        ensure!(
            Instant::now() < deadline,
            "rollcall at {listen} did not answer GET /healthz within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
