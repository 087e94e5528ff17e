//! End-to-end SCIM benchmark: rollcall (release build, a child process on 127.0.0.1) against
//! the Python reference server scim2-server, under the same client and the same workloads.
//!
//! Run with `cargo bench --bench scim`; see BENCHMARKS.md for what it measures and the
//! environment variables that size it. It is a plain binary (`harness = false`), never a test.
//!
//! Workloads, each from a fixed number of keep-alive client connections:
//! - `POST /Users`: client-supplied users (userName, name, one work e-mail, externalId).
//! - `GET /Users?filter=userName eq "…"` for random existing users.
//! - `GET /Users?filter=emails[type eq "work"].value eq "…"` for random existing users.
//!
//! Every request's latency is taken client-side, from sending it to having read its whole
//! body; every response is checked (201 for a create, `totalResults` 1 for a lookup), and any
//! mismatch fails the run.

use std::fmt::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail, ensure};
use serde_json::{Value, json};

const USER_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
/// The latency target for the lookups, printed next to the figures.
const P99_TARGET: Duration = Duration::from_millis(5);
/// The throughput ratio target against the reference server.
const RATIO_TARGET: f64 = 50.0;
/// Loading the reference server should take about this long at most (sizes it when
/// BENCH_REFERENCE_USERS is not set).
const REFERENCE_LOAD_BUDGET: Duration = Duration::from_secs(8 * 60);
/// Users loaded into the reference server to measure its POST rate before sizing it.
const REFERENCE_PROBE_USERS: usize = 2_000;
/// Seed of the random user choice, so every run asks for the same users.
const SEED: u64 = 0x5c1f_2026;
/// How many times a request that got no answer at all is sent again.
const MAX_RETRIES: usize = 3;

fn main() -> ExitCode {
    // `cargo bench` passes `--bench`; `cargo test --benches` (or `--all-targets`) does not, and
    // this benchmark must never run as a test: it takes many minutes.
    if !std::env::args().any(|arg| arg == "--bench") {
        println!("scim bench: not run (use `cargo bench --bench scim`)");
        return ExitCode::SUCCESS;
    }
    let settings = match Settings::from_env() {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("scim bench: {error:#}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("scim bench: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async {
        tokio::select! {
            outcome = run(&settings) => outcome,
            _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted")),
        }
    });
    // Every child process has been killed and waited for by now: their guards are dropped
    // when `run` returns, fails or is interrupted.
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("scim bench FAILED: {error:#}");
            ExitCode::FAILURE
        }
    }
}

// --- settings ---

#[derive(Debug, Clone)]
struct Settings {
    /// Users loaded into rollcall for the headline figures.
    users: usize,
    /// Users loaded into the reference server (`None`: sized from its measured POST rate).
    reference_users: Option<usize>,
    /// Measured lookups per GET workload against rollcall.
    requests: usize,
    /// Measured `userName` lookups against the reference server.
    reference_requests: usize,
    /// Measured e-mail lookups against the reference server, which answers them by walking
    /// every user (seconds each at tens of thousands of users).
    reference_scan_requests: usize,
    /// Unmeasured lookups before each GET workload.
    warmup: usize,
    post_concurrency: usize,
    get_concurrency: usize,
    /// The same against the reference server: rollcall's unless BENCH_REFERENCE_CONCURRENCY
    /// sets both (its listen queue holds 5 connections and it closes every connection after
    /// one response, so many connections mostly measure SYN retransmissions).
    reference_post_concurrency: usize,
    reference_get_concurrency: usize,
    skip_reference: bool,
    /// The rollcall binary: the one cargo built for this bench unless BENCH_ROLLCALL_BIN names
    /// another (e.g. a build with symbols, for profiling).
    rollcall_bin: PathBuf,
}

impl Settings {
    fn from_env() -> anyhow::Result<Settings> {
        let number = |name: &str, default: usize| -> anyhow::Result<usize> {
            match std::env::var(name) {
                Ok(text) if !text.trim().is_empty() && text.trim() != "auto" => {
                    let value: usize = text
                        .trim()
                        .replace('_', "")
                        .parse()
                        .with_context(|| format!("{name}=`{text}` is not a whole number"))?;
                    ensure!(value > 0, "{name} must be at least 1");
                    Ok(value)
                }
                _ => Ok(default),
            }
        };
        let requests = number("BENCH_REQUESTS", 20_000)?;
        let post_concurrency = number("BENCH_POST_CONCURRENCY", 32)?;
        let get_concurrency = number("BENCH_GET_CONCURRENCY", 16)?;
        let settings = Settings {
            users: number("BENCH_USERS", 100_000)?,
            reference_users: match std::env::var("BENCH_REFERENCE_USERS") {
                Ok(text) if !text.trim().is_empty() && text.trim() != "auto" => {
                    Some(number("BENCH_REFERENCE_USERS", 0)?)
                }
                _ => None,
            },
            requests,
            reference_requests: number("BENCH_REFERENCE_REQUESTS", requests.min(2_000))?,
            reference_scan_requests: number("BENCH_REFERENCE_SCAN_REQUESTS", requests.min(100))?,
            warmup: std::env::var("BENCH_WARMUP")
                .ok()
                .and_then(|t| t.trim().parse().ok())
                .unwrap_or(1_000),
            post_concurrency,
            get_concurrency,
            reference_post_concurrency: number("BENCH_REFERENCE_CONCURRENCY", post_concurrency)?,
            reference_get_concurrency: number("BENCH_REFERENCE_CONCURRENCY", get_concurrency)?,
            skip_reference: std::env::var("BENCH_SKIP_REFERENCE")
                .is_ok_and(|v| !v.is_empty() && v != "0"),
            rollcall_bin: std::env::var_os("BENCH_ROLLCALL_BIN")
                .filter(|v| !v.is_empty())
                .map_or_else(
                    || PathBuf::from(env!("CARGO_BIN_EXE_rollcall")),
                    PathBuf::from,
                ),
        };
        if let Some(n) = settings.reference_users {
            ensure!(
                n <= settings.users,
                "BENCH_REFERENCE_USERS ({n}) cannot exceed BENCH_USERS ({})",
                settings.users
            );
        }
        Ok(settings)
    }
}

// --- child processes ---

/// A child process that is killed and waited for when dropped, whatever happens.
struct ChildGuard {
    name: &'static str,
    child: Child,
}

impl ChildGuard {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Fails if the process has already exited.
    fn check_running(&mut self, log: &Path) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            let log = std::fs::read_to_string(log).unwrap_or_default();
            bail!("{} exited early ({status}); its log:\n{log}", self.name);
        }
        Ok(())
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port that was free a moment ago on 127.0.0.1.
fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("cannot find a free port")?;
    Ok(listener.local_addr()?.port())
}

/// `VmHWM` (peak resident memory) of a running process, in kB.
fn peak_memory_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

/// The kernel's count of connections refused because a listen queue was full
/// (`TcpExtListenOverflows`, for the whole machine).
fn listen_overflows() -> Option<u64> {
    let netstat = std::fs::read_to_string("/proc/net/netstat").ok()?;
    let mut lines = netstat.lines().filter(|l| l.starts_with("TcpExt:"));
    let (names, values) = (lines.next()?, lines.next()?);
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(name, _)| *name == "ListenOverflows")
        .and_then(|(_, value)| value.parse().ok())
}

/// CPU time (user + system, all threads) a process has used so far. Linux reports it in
/// clock ticks, which are 1/100 s on every common configuration.
fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces: the fields after it start past the last `)`.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

/// Busy CPU time of the whole machine so far (all CPUs, from `/proc/stat`).
fn machine_busy() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let ticks: Vec<u64> = line
        .split_whitespace()
        .map(|t| t.parse().unwrap_or(0))
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let total: u64 = ticks.iter().take(8).sum();
    let idle = ticks.get(3)? + ticks.get(4)?;
    Some(Duration::from_millis((total - idle) * 10))
}

/// A running server and where its SCIM endpoints are.
struct Server {
    /// The SCIM base URL, e.g. `http://127.0.0.1:PORT/scim/v2`.
    base: String,
    token: String,
    guard: ChildGuard,
    log: PathBuf,
    /// Holds the data directory (rollcall) or the log (scim2-server) until the server is gone.
    _dir: tempfile::TempDir,
}

impl Server {
    fn peak_memory_kb(&self) -> Option<u64> {
        peak_memory_kb(self.guard.pid())
    }
}

/// Starts `rollcall serve` on a fresh data directory with one school and one token.
async fn start_rollcall(binary: &Path, http: &reqwest::Client) -> anyhow::Result<Server> {
    let dir = tempfile::Builder::new()
        .prefix("rollcall-bench-")
        .tempdir()
        .context("cannot create a temporary directory")?;
    let port = free_port()?;
    let config = dir.path().join("rollcall.toml");
    let db = dir.path().join("rollcall.db");
    std::fs::write(
        &config,
        // No first passwords for pushed users (`generate_for_scim = false`): this measures the
        // SCIM service, as the reference server does; `benches/import.rs` measures hashing.
        format!(
            "data_dir = \"{data}\"\n\n[server]\nlisten = \"127.0.0.1:{port}\"\nshutdown_grace_secs = 2\n\n\
             [store]\nurl = \"sqlite://{db}\"\n\n[[schools]]\nid = \"bench\"\nname = \"Bench\"\n\n\
             [schools.passwords]\ngenerate_for_scim = false\n",
            data = dir.path().display(),
            db = db.display(),
        ),
    )
    .context("cannot write the configuration")?;
    let command = |args: &[&str]| {
        let mut command = Command::new(binary);
        command.arg("--config").arg(&config).args(args);
        // The environment must not redirect the daemon elsewhere.
        for name in [
            "ROLLCALL_CONFIG",
            "ROLLCALL_DATABASE_URL",
            "ROLLCALL_LISTEN",
            "ROLLCALL_LOG_FORMAT",
            "ROLLCALL_LOG",
        ] {
            command.env_remove(name);
        }
        command
    };

    let output = command(&["token", "create", "--school", "bench", "--source", "bench"])
        .stdin(Stdio::null())
        .output()
        .context("cannot run `rollcall token create`")?;
    ensure!(
        output.status.success(),
        "`rollcall token create` failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).context("token output is not UTF-8")?;
    let token = stdout
        .lines()
        .rev()
        .map(str::trim)
        .find(|line| !line.is_empty())
        .ok_or_else(|| anyhow!("`rollcall token create` printed no token"))?
        .to_owned();

    let log = dir.path().join("rollcall.log");
    let log_file = std::fs::File::create(&log)?;
    let child = command(&["serve"])
        .stdin(Stdio::null())
        .stdout(log_file.try_clone()?)
        .stderr(log_file)
        .spawn()
        .context("cannot start `rollcall serve`")?;
    let mut guard = ChildGuard {
        name: "rollcall",
        child,
    };
    let root = format!("http://127.0.0.1:{port}");
    wait_until(&mut guard, &log, || async {
        http.get(format!("{root}/healthz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
    })
    .await
    .context("rollcall did not answer GET /healthz")?;
    Ok(Server {
        base: format!("{root}/scim/v2"),
        token,
        guard,
        log,
        _dir: dir,
    })
}

/// Polls `ready` for up to 30 s, failing early if the process exits.
async fn wait_until<F, Fut>(guard: &mut ChildGuard, log: &Path, ready: F) -> anyhow::Result<()>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        guard.check_running(log)?;
        if ready().await {
            return Ok(());
        }
        ensure!(Instant::now() < deadline, "not ready after 30 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn repository() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `target/conformance-venv/bin/scim2-server`, installing the pinned requirements first if
/// it is missing.
fn reference_binary() -> anyhow::Result<PathBuf> {
    let venv = repository().join("target").join("conformance-venv");
    let binary = venv.join("bin").join("scim2-server");
    if binary.exists() {
        return Ok(binary);
    }
    let requirements = repository()
        .join("tests")
        .join("conformance")
        .join("requirements.txt");
    println!(
        "installing {} into {} …",
        requirements.display(),
        venv.display()
    );
    let status = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .context("cannot run python3 -m venv")?;
    ensure!(status.success(), "python3 -m venv failed ({status})");
    let status = Command::new(venv.join("bin").join("pip"))
        .args(["install", "--quiet", "-r"])
        .arg(&requirements)
        .status()
        .context("cannot run pip")?;
    ensure!(status.success(), "pip install failed ({status})");
    ensure!(
        binary.exists(),
        "pip install did not provide {}",
        binary.display()
    );
    Ok(binary)
}

/// Starts scim2-server with a bearer token and finds the base path its `/Users` answers on.
async fn start_reference(http: &reqwest::Client) -> anyhow::Result<Server> {
    let binary = reference_binary()?;
    let dir = tempfile::Builder::new()
        .prefix("scim2-server-bench-")
        .tempdir()
        .context("cannot create a temporary directory")?;
    let port = free_port()?;
    let token = format!(
        "bench-{:016x}",
        splitmix64(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(SEED)
        )
    );
    let log = dir.path().join("scim2-server.log");
    let log_file = std::fs::File::create(&log)?;
    let child = Command::new(&binary)
        .args(["--hostname", "127.0.0.1", "--port", &port.to_string()])
        .args(["--bearer-token", &token])
        .stdin(Stdio::null())
        .stdout(log_file.try_clone()?)
        .stderr(log_file)
        .spawn()
        .with_context(|| format!("cannot start {}", binary.display()))?;
    let mut guard = ChildGuard {
        name: "scim2-server",
        child,
    };
    let root = format!("http://127.0.0.1:{port}");
    let found = std::sync::Mutex::new(None);
    wait_until(&mut guard, &log, || async {
        // It announces `/v2` but also serves at the root: take the first that lists Users.
        for prefix in ["", "/v2", "/scim/v2"] {
            let base = format!("{root}{prefix}");
            let Ok(response) = http
                .get(format!("{base}/Users"))
                .bearer_auth(&token)
                .send()
                .await
            else {
                continue;
            };
            if response.status().is_success()
                && let Ok(body) = response.json::<Value>().await
                && body.get("totalResults").is_some()
            {
                if let Ok(mut found) = found.lock() {
                    *found = Some(base);
                }
                return true;
            }
        }
        false
    })
    .await
    .context("scim2-server did not answer GET /Users")?;
    let base = found
        .into_inner()
        .ok()
        .flatten()
        .ok_or_else(|| anyhow!("no SCIM base found"))?;
    Ok(Server {
        base,
        token,
        guard,
        log,
        _dir: dir,
    })
}

// --- workloads ---

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Post,
    ByUserName,
    ByEmail,
}

impl Op {
    fn label(self) -> &'static str {
        match self {
            Op::Post => "POST /Users",
            Op::ByUserName => "GET userName eq",
            Op::ByEmail => "GET emails[type eq work].value eq",
        }
    }
}

fn user_name(i: usize) -> String {
    format!("student.{i:06}")
}

fn email(i: usize) -> String {
    format!("s{i:06}@mail.bench.example")
}

fn user_document(i: usize) -> String {
    json!({
        "schemas": [USER_URN],
        "userName": user_name(i),
        "externalId": format!("ext-{i:06}"),
        "name": {
            "givenName": format!("Given{i}"),
            "familyName": format!("Family{i}"),
            "formatted": format!("Given{i} Family{i}"),
        },
        "emails": [{ "type": "work", "value": email(i), "primary": true }],
        "active": true,
    })
    .to_string()
}

fn splitmix64(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn encode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// What one workload run measured.
#[derive(Debug, Clone)]
struct Measured {
    server: &'static str,
    op: Op,
    /// Users in the store while it ran (for POST: after it ran).
    users: usize,
    requests: usize,
    concurrency: usize,
    wall: Duration,
    /// Sorted.
    latencies: Vec<Duration>,
    /// Connections the kernel dropped meanwhile because a listen queue was full; each costs
    /// its client a SYN retransmission (1 s, then 3 s, …).
    overflows: Option<u64>,
    /// CPU time the server process used meanwhile.
    server_cpu: Option<Duration>,
    /// CPU time this benchmark (the client) used meanwhile.
    client_cpu: Option<Duration>,
    /// CPU time every other process on the machine used meanwhile.
    other_cpu: Option<Duration>,
    /// Requests sent again after a transport error, and the first errors.
    retries: usize,
    retry_reasons: Vec<String>,
}

impl Measured {
    fn new(
        server: &'static str,
        op: Op,
        users: usize,
        requests: usize,
        concurrency: usize,
        mut sample: Sample,
    ) -> Measured {
        sample.latencies.sort_unstable();
        Measured {
            server,
            op,
            users,
            requests,
            concurrency,
            wall: sample.wall,
            latencies: sample.latencies,
            overflows: sample.overflows,
            server_cpu: sample.server_cpu,
            client_cpu: sample.client_cpu,
            other_cpu: sample.other_cpu,
            retries: sample.retries,
            retry_reasons: sample.retry_reasons,
        }
    }

    /// The server's CPU use while it ran, in percent of one core.
    fn server_cpu_percent(&self) -> Option<f64> {
        self.server_cpu
            .map(|cpu| 100.0 * cpu.as_secs_f64() / self.wall.as_secs_f64())
    }

    fn client_cpu_percent(&self) -> Option<f64> {
        self.client_cpu
            .map(|cpu| 100.0 * cpu.as_secs_f64() / self.wall.as_secs_f64())
    }

    fn other_cpu_percent(&self) -> Option<f64> {
        self.other_cpu
            .map(|cpu| 100.0 * cpu.as_secs_f64() / self.wall.as_secs_f64())
    }

    fn per_second(&self) -> f64 {
        self.requests as f64 / self.wall.as_secs_f64()
    }

    /// Nearest-rank percentile.
    fn percentile(&self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let rank = ((p / 100.0) * self.latencies.len() as f64).ceil() as usize;
        self.latencies[rank.clamp(1, self.latencies.len()) - 1]
    }
}

/// A keep-alive client holding at most one connection: one per worker, so the number of
/// connections is the concurrency.
fn client() -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(1)
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(600))
        .build()
        .context("cannot build an HTTP client")
}

/// Runs `count` requests of one kind from `concurrency` workers. For a POST, request `k`
/// creates user `first + k`; for a lookup it asks for a random one of users `0..users`.
/// Returns the latencies (unsorted) and the wall time, or the first failures.
async fn drive(
    server: &Server,
    op: Op,
    first: usize,
    count: usize,
    users: usize,
    concurrency: usize,
    salt: u64,
) -> anyhow::Result<Sample> {
    let overflows_before = listen_overflows();
    let cpu_before = cpu_time(server.guard.pid());
    let client_before = cpu_time(std::process::id());
    let machine_before = machine_busy();
    let next = Arc::new(AtomicUsize::new(0));
    let base = Arc::new(server.base.clone());
    let token = Arc::new(server.token.clone());
    let mut clients = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        clients.push(client()?);
    }
    let started = Instant::now();
    let mut workers = Vec::with_capacity(concurrency);
    for http in clients {
        let (next, base, token) = (next.clone(), base.clone(), token.clone());
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(count / concurrency + 1);
            let mut failures: Vec<String> = Vec::new();
            let mut failed = 0usize;
            let mut retried = 0usize;
            let mut retry_reasons: Vec<String> = Vec::new();
            loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                if k >= count {
                    break;
                }
                let (request, wanted) = match op {
                    Op::Post => (
                        http.post(format!("{base}/Users"))
                            .header("content-type", "application/scim+json")
                            .body(user_document(first + k)),
                        None,
                    ),
                    Op::ByUserName | Op::ByEmail => {
                        let i = (splitmix64(SEED ^ salt ^ (k as u64)) % users as u64) as usize;
                        let filter = match op {
                            Op::ByUserName => format!("userName eq \"{}\"", user_name(i)),
                            _ => format!("emails[type eq \"work\"].value eq \"{}\"", email(i)),
                        };
                        (
                            http.get(format!("{base}/Users?filter={}", encode(&filter))),
                            Some(i),
                        )
                    }
                };
                let request = request.bearer_auth(token.as_str());
                let sent = Instant::now();
                // A request that never got an answer (the connection was refused, reset or
                // closed first) is sent again, at most MAX_RETRIES times; its latency runs from
                // the first attempt. Retries are counted and reported.
                let mut attempt = 0;
                let outcome = loop {
                    let Some(this) = request.try_clone() else {
                        break Err("the request cannot be sent again".to_owned());
                    };
                    let outcome = match this.send().await {
                        Ok(response) => {
                            let status = response.status();
                            response.bytes().await.map(|body| (status, body))
                        }
                        Err(error) => Err(error),
                    };
                    match outcome {
                        Err(error)
                            if attempt < MAX_RETRIES
                                && (error.is_connect() || error.is_request()) =>
                        {
                            attempt += 1;
                            retried += 1;
                            if retry_reasons.len() < 2 {
                                retry_reasons.push(error_chain(&error));
                            }
                        }
                        other => break other.map_err(|e| error_chain(&e)),
                    }
                };
                latencies.push(sent.elapsed());
                let problem = match outcome {
                    Err(error) => Some(format!("request failed: {error}")),
                    // A retried create whose first attempt did arrive finds its user there.
                    Ok((status, _)) if op == Op::Post && attempt > 0 && status.as_u16() == 409 => {
                        None
                    }
                    Ok((status, body)) if op == Op::Post => (status.as_u16() != 201).then(|| {
                        format!(
                            "POST user {}: {status}: {}",
                            first + k,
                            String::from_utf8_lossy(&body)
                        )
                    }),
                    Ok((status, body)) => {
                        let total = serde_json::from_slice::<Value>(&body)
                            .ok()
                            .and_then(|v| v.get("totalResults").and_then(Value::as_i64));
                        (!status.is_success() || total != Some(1)).then(|| {
                            format!(
                                "user {}: {status}, totalResults {total:?}: {:.300}",
                                wanted.unwrap_or_default(),
                                String::from_utf8_lossy(&body)
                            )
                        })
                    }
                };
                if let Some(problem) = problem {
                    failed += 1;
                    if failures.len() < 3 {
                        failures.push(problem);
                    }
                }
            }
            (latencies, failed, failures, retried, retry_reasons)
        }));
    }
    let mut latencies = Vec::with_capacity(count);
    let mut failed = 0;
    let mut failures = Vec::new();
    let mut retries = 0;
    let mut retry_reasons = Vec::new();
    for worker in workers {
        let (mut l, f, mut problems, r, mut reasons) =
            worker.await.context("a client worker panicked")?;
        latencies.append(&mut l);
        failed += f;
        failures.append(&mut problems);
        retries += r;
        retry_reasons.append(&mut reasons);
    }
    retry_reasons.truncate(2);
    let wall = started.elapsed();
    if failed > 0 {
        failures.truncate(5);
        let expected = match op {
            Op::Post => "201 Created",
            _ => "totalResults 1",
        };
        bail!(
            "{} against {}: {failed} of {count} responses were not {expected}; first ones:\n  {}",
            op.label(),
            server.base,
            failures.join("\n  ")
        );
    }
    let overflows = overflows_before
        .zip(listen_overflows())
        .map(|(before, after)| after.saturating_sub(before));
    let server_cpu = cpu_before
        .zip(cpu_time(server.guard.pid()))
        .map(|(before, after)| after.saturating_sub(before));
    let client_cpu = client_before
        .zip(cpu_time(std::process::id()))
        .map(|(before, after)| after.saturating_sub(before));
    // Whatever else ran on the machine meanwhile (other builds, tests) competed for its CPUs.
    let other_cpu = machine_before
        .zip(machine_busy())
        .map(|(before, after)| after.saturating_sub(before))
        .zip(server_cpu.zip(client_cpu))
        .map(|(busy, (server, client))| busy.saturating_sub(server + client));
    Ok(Sample {
        latencies,
        wall,
        overflows,
        server_cpu,
        client_cpu,
        other_cpu,
        retries,
        retry_reasons,
    })
}

/// An error with its causes: reqwest's own message rarely says what went wrong.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// What [`drive`] measured.
struct Sample {
    latencies: Vec<Duration>,
    wall: Duration,
    overflows: Option<u64>,
    server_cpu: Option<Duration>,
    client_cpu: Option<Duration>,
    other_cpu: Option<Duration>,
    retries: usize,
    retry_reasons: Vec<String>,
}

/// Loads users `first..first + count` and measures it.
async fn load(
    server: &Server,
    name: &'static str,
    first: usize,
    count: usize,
    concurrency: usize,
) -> anyhow::Result<Measured> {
    let sample = drive(
        server,
        Op::Post,
        first,
        count,
        first + count,
        concurrency,
        0,
    )
    .await?;
    Ok(Measured::new(
        name,
        Op::Post,
        first + count,
        count,
        concurrency,
        sample,
    ))
}

/// A warm-up, then `requests` measured lookups.
async fn lookups(
    server: &Server,
    name: &'static str,
    op: Op,
    users: usize,
    requests: usize,
    warmup: usize,
    concurrency: usize,
) -> anyhow::Result<Measured> {
    if warmup > 0 {
        drive(server, op, 0, warmup, users, concurrency, 0x77a3).await?;
    }
    let sample = drive(server, op, 0, requests, users, concurrency, 0).await?;
    Ok(Measured::new(
        name,
        op,
        users,
        requests,
        concurrency,
        sample,
    ))
}

fn report(m: &Measured) {
    let target = match m.op {
        Op::Post => String::new(),
        _ => format!(
            "  (target p99 < {} ms: {})",
            P99_TARGET.as_millis(),
            if m.percentile(99.0) < P99_TARGET {
                "met"
            } else {
                "MISSED"
            }
        ),
    };
    println!(
        "  {:<12} {:<34} users {:>7}  {:>6} req x{:<2}  {:>8.2} s  {:>9} req/s  p50 {:>8.3} ms  p99 {:>8.3} ms  CPU server {} client {} other {}{target}",
        m.server,
        m.op.label(),
        m.users,
        m.requests,
        m.concurrency,
        m.wall.as_secs_f64(),
        rate(m.per_second()),
        ms(m.percentile(50.0)),
        ms(m.percentile(99.0)),
        percent(m.server_cpu_percent()),
        percent(m.client_cpu_percent()),
        percent(m.other_cpu_percent()),
    );
    if m.retries > 0 {
        println!(
            "               {} requests sent again after transport errors, e.g. {}",
            m.retries,
            m.retry_reasons.join("; ")
        );
    }
    if let Some(drops) = m.overflows.filter(|&n| n > 0) {
        println!(
            "               {drops} connections dropped on a full listen queue meanwhile (each waits for a SYN retransmission)"
        );
    }
}

/// Requests per second, with enough digits for a slow server to show.
fn rate(value: f64) -> String {
    if value < 10.0 {
        format!("{value:.3}")
    } else {
        format!("{value:.1}")
    }
}

fn percent(value: Option<f64>) -> String {
    value.map_or_else(|| "?".into(), |p| format!("{p:.0}%"))
}

fn drops(m: &Measured) -> String {
    m.overflows.map_or_else(|| "?".into(), |n| n.to_string())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// One server's full run: load `users`, then both lookups.
struct Run {
    post: Measured,
    by_user_name: Measured,
    by_email: Measured,
    peak_kb: Option<u64>,
}

async fn rollcall_run(
    settings: &Settings,
    users: usize,
    http: &reqwest::Client,
) -> anyhow::Result<Run> {
    let mut server = start_rollcall(&settings.rollcall_bin, http).await?;
    println!(
        "rollcall (pid {}) at {}; loading {users} users over {} connections …",
        server.guard.pid(),
        server.base,
        settings.post_concurrency
    );
    let post = load(&server, "rollcall", 0, users, settings.post_concurrency).await?;
    report(&post);
    let by_user_name = lookups(
        &server,
        "rollcall",
        Op::ByUserName,
        users,
        settings.requests,
        settings.warmup,
        settings.get_concurrency,
    )
    .await?;
    report(&by_user_name);
    let by_email = lookups(
        &server,
        "rollcall",
        Op::ByEmail,
        users,
        settings.requests,
        settings.warmup,
        settings.get_concurrency,
    )
    .await?;
    report(&by_email);
    let peak_kb = server.peak_memory_kb();
    server.guard.check_running(&server.log)?;
    println!("  rollcall peak memory (VmHWM): {}", memory(peak_kb));
    Ok(Run {
        post,
        by_user_name,
        by_email,
        peak_kb,
    })
}

async fn reference_run(settings: &Settings, http: &reqwest::Client) -> anyhow::Result<Run> {
    let mut server = start_reference(http).await?;
    println!(
        "scim2-server (pid {}) at {}",
        server.guard.pid(),
        server.base
    );
    let started = Instant::now();
    let (users, probe) = match settings.reference_users {
        Some(n) => (n, None),
        None => {
            // Measure its POST rate on a first batch, then size the load to the budget.
            let probe = REFERENCE_PROBE_USERS.min(settings.users);
            let measured = load(
                &server,
                "scim2-server",
                0,
                probe,
                settings.reference_post_concurrency,
            )
            .await?;
            let rate = measured.per_second();
            let projected = settings.users as f64 / rate;
            let users = if projected <= REFERENCE_LOAD_BUDGET.as_secs_f64() {
                settings.users
            } else {
                let fit = (rate * REFERENCE_LOAD_BUDGET.as_secs_f64()) as usize;
                (fit / 1_000 * 1_000).clamp(probe, settings.users)
            };
            println!(
                "  probe: {probe} users at {rate:.1} req/s; {} users would take {:.0} s; loading {users} (budget {} s)",
                settings.users,
                projected,
                REFERENCE_LOAD_BUDGET.as_secs()
            );
            (users, Some(measured))
        }
    };
    let probed = probe.as_ref().map_or(0, |p| p.requests);
    println!(
        "  loading {} more users over {} connections …",
        users - probed,
        settings.reference_post_concurrency
    );
    let mut post = load(
        &server,
        "scim2-server",
        probed,
        users - probed,
        settings.reference_post_concurrency,
    )
    .await?;
    if let Some(probe) = probe {
        // The POST figure covers the whole load, probe included.
        post.requests = users;
        post.wall = started.elapsed();
        post.latencies.extend(probe.latencies);
        post.latencies.sort_unstable();
        post.overflows = post.overflows.zip(probe.overflows).map(|(a, b)| a + b);
        post.server_cpu = post.server_cpu.zip(probe.server_cpu).map(|(a, b)| a + b);
        post.client_cpu = post.client_cpu.zip(probe.client_cpu).map(|(a, b)| a + b);
        post.other_cpu = post.other_cpu.zip(probe.other_cpu).map(|(a, b)| a + b);
        post.retries += probe.retries;
        post.retry_reasons.extend(probe.retry_reasons);
    }
    report(&post);
    server.guard.check_running(&server.log)?;
    let warmup = settings.warmup.min(settings.reference_requests / 10);
    let by_user_name = lookups(
        &server,
        "scim2-server",
        Op::ByUserName,
        users,
        settings.reference_requests,
        warmup,
        settings.reference_get_concurrency,
    )
    .await?;
    report(&by_user_name);
    let by_email = lookups(
        &server,
        "scim2-server",
        Op::ByEmail,
        users,
        settings.reference_scan_requests,
        settings.warmup.min(settings.reference_scan_requests / 10),
        settings.reference_get_concurrency,
    )
    .await?;
    report(&by_email);
    let peak_kb = server.peak_memory_kb();
    server.guard.check_running(&server.log)?;
    println!("  scim2-server peak memory (VmHWM): {}", memory(peak_kb));
    Ok(Run {
        post,
        by_user_name,
        by_email,
        peak_kb,
    })
}

fn memory(kb: Option<u64>) -> String {
    match kb {
        Some(kb) => format!("{:.1} MiB", kb as f64 / 1024.0),
        None => "unknown".into(),
    }
}

async fn run(settings: &Settings) -> anyhow::Result<()> {
    println!("scim bench: {settings:?}");
    println!(
        "rollcall binary: {} (client and server share this machine's {} CPUs)",
        settings.rollcall_bin.display(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let http = client()?;

    let main = rollcall_run(settings, settings.users, &http).await?;
    let reference = if settings.skip_reference {
        println!("scim2-server: skipped (BENCH_SKIP_REFERENCE)");
        None
    } else {
        Some(reference_run(settings, &http).await?)
    };
    // rollcall at the reference's size, so each ratio compares equal data sizes.
    let equal = match &reference {
        Some(reference) if reference.post.users != settings.users => {
            let n = reference.post.users;
            println!("rollcall again at the reference's size, {n} users:");
            Some(rollcall_run(settings, n, &http).await?)
        }
        _ => None,
    };

    let mut summary = String::new();
    let _ = writeln!(summary, "\n=== summary ===");
    let _ = writeln!(
        summary,
        "{:<12} {:<34} {:>7} {:>7} {:>5} {:>9} {:>10} {:>9} {:>9}  {:<7} {:>6} {:>5} {:>7} {:>7}",
        "server",
        "workload",
        "users",
        "reqs",
        "conns",
        "wall s",
        "req/s",
        "p50 ms",
        "p99 ms",
        "p99<5ms",
        "drops",
        "retry",
        "srv CPU",
        "oth CPU"
    );
    let mut row = |m: &Measured| {
        let target = match m.op {
            Op::Post => "-",
            _ if m.server != "rollcall" => "-",
            _ if m.percentile(99.0) < P99_TARGET => "met",
            _ => "MISSED",
        };
        let _ = writeln!(
            summary,
            "{:<12} {:<34} {:>7} {:>7} {:>5} {:>9.2} {:>10} {:>9.3} {:>9.3}  {:<7} {:>6} {:>5} {:>7} {:>7}",
            m.server,
            m.op.label(),
            m.users,
            m.requests,
            m.concurrency,
            m.wall.as_secs_f64(),
            rate(m.per_second()),
            ms(m.percentile(50.0)),
            ms(m.percentile(99.0)),
            target,
            drops(m),
            m.retries,
            percent(m.server_cpu_percent()),
            percent(m.other_cpu_percent())
        );
    };
    for run in std::iter::once(&main)
        .chain(equal.as_ref())
        .chain(reference.as_ref())
    {
        row(&run.post);
        row(&run.by_user_name);
        row(&run.by_email);
    }
    let _ = writeln!(
        summary,
        "legend: users = users in the store during the workload; reqs = measured requests, \
         after a warm-up for lookups;\n  conns = client connections, kept alive unless the server \
         closes them (scim2-server closes each after one response);\n  latencies are taken \
         client-side, from sending a request to reading the last byte of its response;\n  \
         drops = connections refused meanwhile by full listen queues (machine-wide counter);\n  \
         retry = requests sent again (at most {MAX_RETRIES} times) after getting no answer at all;\n  \
         srv CPU = server CPU time / wall time (100% = one core); oth CPU = the same for every \
         other process on the machine"
    );
    let _ = writeln!(
        summary,
        "sizes: rollcall headline figures at {} users{}",
        settings.users,
        match (&reference, &equal) {
            (None, _) => String::new(),
            (Some(r), None) => format!("; scim2-server at the same {} users", r.post.users),
            (Some(r), Some(_)) => format!(
                "; scim2-server at {n} users (its load is sized to ~{} min), so rollcall \
                 was run again on a fresh store at {n} users and the ratios use that run",
                REFERENCE_LOAD_BUDGET.as_secs() / 60,
                n = r.post.users
            ),
        }
    );
    let _ = writeln!(
        summary,
        "peak memory (VmHWM): rollcall {} at {} users{}{}",
        memory(main.peak_kb),
        settings.users,
        equal
            .as_ref()
            .map(|r| format!(", rollcall {} at {} users", memory(r.peak_kb), r.post.users))
            .unwrap_or_default(),
        reference
            .as_ref()
            .map(|r| format!(
                ", scim2-server {} at {} users",
                memory(r.peak_kb),
                r.post.users
            ))
            .unwrap_or_default()
    );
    if let Some(reference) = &reference {
        let ours = equal.as_ref().unwrap_or(&main);
        for (mine, theirs) in [
            (&ours.post, &reference.post),
            (&ours.by_user_name, &reference.by_user_name),
            (&ours.by_email, &reference.by_email),
        ] {
            let ratio = mine.per_second() / theirs.per_second();
            let _ = writeln!(
                summary,
                "ratio {:<34} rollcall/scim2-server = {:>8.1}x  ({} req/s over {} conns / {} req/s over {} conns, both at {} users; target >= {RATIO_TARGET:.0}x: {})",
                mine.op.label(),
                ratio,
                rate(mine.per_second()),
                mine.concurrency,
                rate(theirs.per_second()),
                theirs.concurrency,
                theirs.users,
                if ratio >= RATIO_TARGET {
                    "met"
                } else {
                    "MISSED"
                }
            );
        }
        let dropped: u64 = [
            &reference.post,
            &reference.by_user_name,
            &reference.by_email,
        ]
        .iter()
        .filter_map(|m| m.overflows)
        .sum();
        if dropped > 0 {
            let _ = writeln!(
                summary,
                "note: {dropped} connections to scim2-server were dropped on its full listen queue \
                 (Python socketserver's backlog of 5; it also closes each connection after one \
                 response), so its latencies include SYN retransmission stalls of 1 s or more, and \
                 its throughput may be understated unless its CPU was saturated (srv CPU near 100%);\n  \
                 BENCH_REFERENCE_CONCURRENCY=4 measures it without them"
            );
        }
    } else {
        let _ = writeln!(summary, "ratio (none: the reference server was skipped)");
    }
    print!("{summary}");
    Ok(())
}
