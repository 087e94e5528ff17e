//! Store benchmark: the same SCIM workload against rollcall on its three kinds of deployment,
//! with the throughput ratios between them:
//!
//! 1. one instance on SQLite (the default store, a file in a temporary directory);
//! 2. one instance on PostgreSQL;
//! 3. two instances on the same PostgreSQL database, the client's connections split evenly
//!    between them, as a load balancer would.
//!
//! Run with `cargo bench --bench stores`. It is a plain binary (`harness = false`), never a test:
//! without `--bench` it prints a line and exits.
//!
//! Each setup gets a fresh temporary directory with one configuration file, shared by its
//! instances (they differ only in `serve --listen`), and, on PostgreSQL, a fresh database
//! (`rollcall_bench_<random>`, given to the daemon as `ROLLCALL_DATABASE_URL`), dropped with
//! `WITH (FORCE)` at the end, also on failure or Ctrl-C. The school generates no first passwords
//! for SCIM-pushed users (`generate_for_scim = false`), so no argon2 hashing happens and the
//! figures measure the store.
//!
//! Workloads, in this order, each from the same number of keep-alive client connections
//! (connection `c` goes to instance `c % instances`; workers take request numbers from a shared
//! counter):
//! - `POST /Users` of N users (userName, name, one work e-mail, externalId): each must be 201;
//! - `GET /Users?filter=userName eq "…"` for random existing users (fixed seed): each must be
//!   200 with `totalResults` 1 and that user;
//! - `PATCH /Users/{id}` replacing `displayName` of random existing users (fixed seed): each
//!   must be 200 and show the new value.
//!
//! Any other response fails the run. Latencies are taken client-side, from sending a request to
//! having read its whole body.
//!
//! Environment (all optional): `BENCH_CONNECTIONS` (16), `BENCH_USERS` (2000), `BENCH_LOOKUPS`
//! (10000), `BENCH_PATCHES` (2000), `BENCH_POSTGRES_URL` (the server and a database to connect to
//! for `CREATE DATABASE`; default `postgres://postgres@127.0.0.1:5432/postgres`),
//! `BENCH_ROLLCALL_BIN` (another rollcall binary).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail, ensure};
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection};

const USER_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const PATCH_URN: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const DEFAULT_POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/postgres";
/// Every database this benchmark creates starts with this.
const DATABASE_PREFIX: &str = "rollcall_bench_";
/// Seed of the random choices, so every run and every setup asks for the same users.
const SEED: u64 = 0x5707_e5b0_2026;
/// Salt of the PATCH choices, so they differ from the lookups'.
const PATCH_SALT: u64 = 0x9a7c_4d15;

fn main() -> ExitCode {
    // `cargo bench` passes `--bench`; `cargo test --benches` (or `--all-targets`) does not, and
    // this benchmark must never run as a test.
    if !std::env::args().any(|arg| arg == "--bench") {
        println!("stores bench: not run (use `cargo bench --bench stores`)");
        return ExitCode::SUCCESS;
    }
    let settings = match Settings::from_env() {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("stores bench: {error:#}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("stores bench: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async {
        tokio::select! {
            outcome = run(&settings) => outcome,
            _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted")),
        }
    });
    // Every child has been killed and reaped and every database dropped by now: their guards
    // are dropped when `run` returns, fails or is interrupted.
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("stores bench FAILED: {error:#}");
            ExitCode::FAILURE
        }
    }
}

// --- settings ---

#[derive(Debug)]
struct Settings {
    connections: usize,
    users: usize,
    lookups: usize,
    patches: usize,
    /// The PostgreSQL server, as a URL to a database to connect to for `CREATE DATABASE`.
    postgres: String,
    rollcall_bin: PathBuf,
}

impl Settings {
    fn from_env() -> anyhow::Result<Settings> {
        let number = |name: &str, default: usize| -> anyhow::Result<usize> {
            match std::env::var(name) {
                Ok(text) if !text.trim().is_empty() => {
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
        Ok(Settings {
            connections: number("BENCH_CONNECTIONS", 16)?,
            users: number("BENCH_USERS", 2_000)?,
            lookups: number("BENCH_LOOKUPS", 10_000)?,
            patches: number("BENCH_PATCHES", 2_000)?,
            postgres: std::env::var("BENCH_POSTGRES_URL")
                .ok()
                .filter(|url| !url.trim().is_empty())
                .unwrap_or_else(|| DEFAULT_POSTGRES.to_owned()),
            rollcall_bin: std::env::var_os("BENCH_ROLLCALL_BIN")
                .filter(|v| !v.is_empty())
                .map_or_else(
                    || PathBuf::from(env!("CARGO_BIN_EXE_rollcall")),
                    PathBuf::from,
                ),
        })
    }
}

// --- the three setups ---

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Setup {
    Sqlite,
    Postgres1,
    Postgres2,
}

impl Setup {
    const ALL: [Setup; 3] = [Setup::Sqlite, Setup::Postgres1, Setup::Postgres2];

    fn label(self) -> &'static str {
        match self {
            Setup::Sqlite => "SQLite ×1",
            Setup::Postgres1 => "PostgreSQL ×1",
            Setup::Postgres2 => "PostgreSQL ×2",
        }
    }

    fn instances(self) -> usize {
        match self {
            Setup::Postgres2 => 2,
            _ => 1,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Workload {
    Post,
    Lookup,
    Patch,
}

impl Workload {
    const ALL: [Workload; 3] = [Workload::Post, Workload::Lookup, Workload::Patch];

    fn label(self) -> &'static str {
        match self {
            Workload::Post => "POST /Users",
            Workload::Lookup => "GET userName eq",
            Workload::Patch => "PATCH displayName",
        }
    }
}

// --- PostgreSQL ---

/// A fresh database for one setup, dropped (`WITH (FORCE)`) by [`Database::drop_now`] or, failing
/// that, when the guard is dropped (an error, a panic, Ctrl-C).
struct Database {
    name: String,
    /// This database's URL, for `ROLLCALL_DATABASE_URL`.
    url: String,
    server: String,
    dropped: bool,
}

impl Database {
    async fn create(server: &str) -> anyhow::Result<Database> {
        let name = format!("{DATABASE_PREFIX}{}", uuid::Uuid::new_v4().simple());
        let mut url = reqwest::Url::parse(server)
            .with_context(|| format!("BENCH_POSTGRES_URL is not a URL: {}", redacted(server)))?;
        url.set_path(&name);
        let mut connection = PgConnection::connect(server)
            .await
            .with_context(|| format!("cannot connect to {}", redacted(server)))?;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut connection)
            .await
            .with_context(|| format!("CREATE DATABASE {name}"))?;
        let _ = connection.close().await;
        Ok(Database {
            name,
            url: url.into(),
            server: server.to_owned(),
            dropped: false,
        })
    }

    fn drop_now(&mut self) -> anyhow::Result<()> {
        self.dropped = true;
        drop_database(&self.server, &self.name)
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        if !self.dropped {
            match self.drop_now() {
                Ok(()) => eprintln!("stores bench: dropped database {}", self.name),
                Err(error) => eprintln!(
                    "stores bench: could not drop database {} ({error:#}); drop it by hand",
                    self.name
                ),
            }
        }
    }
}

/// `DROP DATABASE … WITH (FORCE)` on a thread and runtime of its own, so that it also works from
/// a guard dropped inside (or outside) the benchmark's runtime.
fn drop_database(server: &str, name: &str) -> anyhow::Result<()> {
    let (server, name) = (server.to_owned(), name.to_owned());
    std::thread::spawn(move || -> anyhow::Result<()> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime.block_on(async {
            let mut connection = PgConnection::connect(&server).await?;
            sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&mut connection)
                .await?;
            let _ = connection.close().await;
            Ok(())
        })
    })
    .join()
    .map_err(|_| anyhow!("the thread dropping the database panicked"))?
}

/// The server's `version()`.
async fn postgres_version(server: &str) -> anyhow::Result<String> {
    let mut connection = PgConnection::connect(server).await.with_context(|| {
        format!(
            "cannot connect to PostgreSQL at {} (set BENCH_POSTGRES_URL)",
            redacted(server)
        )
    })?;
    let version: String = sqlx::query_scalar("SELECT version()")
        .fetch_one(&mut connection)
        .await?;
    let _ = connection.close().await;
    Ok(version)
}

/// Connections the server holds to `database` right now.
async fn connections_to(server: &str, database: &str) -> anyhow::Result<i64> {
    let mut connection = PgConnection::connect(server).await?;
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE datname = $1")
        .bind(database)
        .fetch_one(&mut connection)
        .await?;
    let _ = connection.close().await;
    Ok(count)
}

/// The URL with any password hidden.
fn redacted(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.into()
        }
        Ok(_) => url.to_owned(),
        Err(_) => "(not a URL)".to_owned(),
    }
}

// --- rollcall instances ---

/// A `rollcall serve` child process, killed and reaped when dropped, whatever happens.
struct Instance {
    base: String,
    child: Child,
    log: PathBuf,
}

impl Instance {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Fails if the process has exited.
    fn check_running(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(20).collect();
            bail!(
                "rollcall (pid {}) exited early ({status}); the end of its log:\n{}",
                self.child.id(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        Ok(())
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
fn rollcall(binary: &Path, config: &Path, store: Option<&str>, args: &[&str]) -> Command {
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

/// The one configuration of a setup, shared by its instances. No `[store]`: SQLite is the default
/// (`<data_dir>/rollcall.db`), PostgreSQL comes from `ROLLCALL_DATABASE_URL`.
fn write_config(dir: &Path) -> anyhow::Result<PathBuf> {
    let config = dir.join("rollcall.toml");
    std::fs::write(
        &config,
        // No first passwords for pushed users (`generate_for_scim = false`): each would cost an
        // argon2 hash (default parameters), and this measures the store.
        format!(
            "data_dir = \"{data}\"\n\n[server]\nshutdown_grace_secs = 2\n\n\
             [[schools]]\nid = \"bench\"\nname = \"Bench\"\n\n\
             [schools.passwords]\ngenerate_for_scim = false\n",
            data = dir.display(),
        ),
    )
    .context("cannot write the configuration")?;
    Ok(config)
}

/// A SCIM token for school `bench` (the last line `rollcall token create` prints).
fn create_token(binary: &Path, config: &Path, store: Option<&str>) -> anyhow::Result<String> {
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

/// Starts `rollcall serve --listen 127.0.0.1:<free port>` and waits up to 30 s for `/healthz`.
async fn start_instance(
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

// --- CPU accounting (Linux /proc; clock ticks of 1/100 s) ---

fn ticks(fields: &[&str], at: usize) -> Option<u64> {
    fields.get(at)?.parse().ok()
}

/// CPU time (user + system, all threads) a process has used so far.
fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces: the fields after it start past the last `)`.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    Some(Duration::from_millis(
        (ticks(&fields, 11)? + ticks(&fields, 12)?) * 10,
    ))
}

/// CPU time of every `postgres` process visible here (server and backends), by pid.
fn postgres_cpu() -> HashMap<u32, Duration> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return HashMap::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|comm| comm.trim() == "postgres")
        })
        .filter_map(|pid| Some((pid, cpu_time(pid)?)))
        .collect()
}

/// Busy CPU time of the whole machine so far (all CPUs, from `/proc/stat`).
fn machine_busy() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .map(|t| t.parse().unwrap_or(0))
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let total: u64 = fields.iter().take(8).sum();
    let idle = fields.get(3)? + fields.get(4)?;
    Some(Duration::from_millis((total - idle) * 10))
}

struct CpuSnapshot {
    rollcall: Option<Duration>,
    client: Option<Duration>,
    postgres: HashMap<u32, Duration>,
    machine: Option<Duration>,
}

impl CpuSnapshot {
    fn take(instances: &[Instance]) -> CpuSnapshot {
        CpuSnapshot {
            rollcall: instances.iter().map(|i| cpu_time(i.pid())).sum(),
            client: cpu_time(std::process::id()),
            postgres: postgres_cpu(),
            machine: machine_busy(),
        }
    }

    /// What each party used between `before` and `self`.
    fn since(&self, before: &CpuSnapshot) -> Cpu {
        let diff = |after: Option<Duration>, before: Option<Duration>| {
            after
                .zip(before)
                .map(|(after, before)| after.saturating_sub(before))
        };
        let rollcall = diff(self.rollcall, before.rollcall);
        let client = diff(self.client, before.client);
        // Backends that started meanwhile count from zero; any that ended meanwhile are lost.
        let postgres = (!self.postgres.is_empty()).then(|| {
            self.postgres
                .iter()
                .map(|(pid, after)| {
                    after.saturating_sub(before.postgres.get(pid).copied().unwrap_or_default())
                })
                .sum()
        });
        let other = diff(self.machine, before.machine)
            .zip(rollcall.zip(client))
            .map(|(busy, (rollcall, client))| {
                busy.saturating_sub(rollcall + client + postgres.unwrap_or_default())
            });
        Cpu {
            rollcall,
            postgres,
            client,
            other,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Cpu {
    rollcall: Option<Duration>,
    postgres: Option<Duration>,
    client: Option<Duration>,
    other: Option<Duration>,
}

// --- workloads ---

fn user_name(i: usize) -> String {
    format!("student.{i:06}")
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
        "emails": [{ "type": "work", "value": format!("s{i:06}@mail.bench.example"), "primary": true }],
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

/// A keep-alive client holding at most one connection: one per worker, so the number of
/// connections is the number of workers.
fn client() -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(1)
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(120))
        .build()
        .context("cannot build an HTTP client")
}

/// What one workload on one setup measured.
struct Measured {
    setup: Setup,
    workload: Workload,
    requests: usize,
    connections: usize,
    wall: Duration,
    /// Sorted.
    latencies: Vec<Duration>,
    /// Requests answered by each instance.
    per_instance: Vec<usize>,
    cpu: Cpu,
}

impl Measured {
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

    fn percent(&self, cpu: Option<Duration>) -> String {
        cpu.map_or_else(
            || "?".into(),
            |cpu| {
                format!(
                    "{:.0}%",
                    100.0 * cpu.as_secs_f64() / self.wall.as_secs_f64()
                )
            },
        )
    }

    fn row(&self) -> String {
        format!(
            "{:<14} {:<18} {:>6} {:>5} {:>8.2} {:>9.1} {:>8.2} {:>8.2} {:>8} {:>8} {:>6} {:>6}  {}",
            self.setup.label(),
            self.workload.label(),
            self.requests,
            self.connections,
            self.wall.as_secs_f64(),
            self.per_second(),
            ms(self.percentile(50.0)),
            ms(self.percentile(99.0)),
            self.percent(self.cpu.rollcall),
            self.percent(self.cpu.postgres),
            self.percent(self.cpu.client),
            self.percent(self.cpu.other),
            self.per_instance
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join("/"),
        )
    }
}

fn header() -> String {
    format!(
        "{:<14} {:<18} {:>6} {:>5} {:>8} {:>9} {:>8} {:>8} {:>8} {:>8} {:>6} {:>6}  {}",
        "setup",
        "workload",
        "reqs",
        "conns",
        "wall s",
        "req/s",
        "p50 ms",
        "p99 ms",
        "rollcall",
        "postgres",
        "client",
        "other",
        "per instance"
    )
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

/// Runs `count` requests of one workload from `connections` workers, worker `w` talking to
/// instance `w % instances.len()`. POST `k` creates user `k` and returns its id in `ids`;
/// lookups and PATCHes pick random users among `ids` (fixed seed). Fails on any response that is
/// not what it should be.
async fn drive(
    setup: Setup,
    instances: &[Instance],
    token: &str,
    workload: Workload,
    count: usize,
    connections: usize,
    ids: &Arc<Vec<String>>,
) -> anyhow::Result<(Measured, Vec<(usize, String)>)> {
    let mut clients = Vec::with_capacity(connections);
    for _ in 0..connections {
        clients.push(client()?);
    }
    let next = Arc::new(AtomicUsize::new(0));
    let token = Arc::new(token.to_owned());
    let before = CpuSnapshot::take(instances);
    let started = Instant::now();
    let mut workers = Vec::with_capacity(connections);
    for (w, http) in clients.into_iter().enumerate() {
        let instance = w % instances.len();
        let base = instances[instance].base.clone();
        let (next, token, ids) = (next.clone(), token.clone(), ids.clone());
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(count / connections + 1);
            let mut created = Vec::new();
            let mut failed = 0usize;
            let mut failures: Vec<String> = Vec::new();
            loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                if k >= count {
                    break;
                }
                let (request, user, display) = match workload {
                    Workload::Post => (
                        http.post(format!("{base}/Users"))
                            .header("content-type", "application/scim+json")
                            .body(user_document(k)),
                        k,
                        None,
                    ),
                    Workload::Lookup => {
                        let i = (splitmix64(SEED ^ k as u64) % ids.len() as u64) as usize;
                        let filter = format!("userName eq \"{}\"", user_name(i));
                        let filter: String =
                            form_urlencoded::byte_serialize(filter.as_bytes()).collect();
                        (http.get(format!("{base}/Users?filter={filter}")), i, None)
                    }
                    Workload::Patch => {
                        let i = (splitmix64(SEED ^ PATCH_SALT ^ k as u64) % ids.len() as u64)
                            as usize;
                        let display = format!("Bench Display {k}");
                        let body = json!({
                            "schemas": [PATCH_URN],
                            "Operations": [{ "op": "replace", "path": "displayName", "value": display }],
                        });
                        (
                            http.patch(format!("{base}/Users/{}", ids[i]))
                                .header("content-type", "application/scim+json")
                                .body(body.to_string()),
                            i,
                            Some(display),
                        )
                    }
                };
                let sent = Instant::now();
                let outcome = match request.bearer_auth(token.as_str()).send().await {
                    Ok(response) => {
                        let status = response.status();
                        response.bytes().await.map(|body| (status, body))
                    }
                    Err(error) => Err(error),
                };
                latencies.push(sent.elapsed());
                let problem = match outcome {
                    Err(error) => Some(format!("user {user}: request failed: {}", chain(&error))),
                    Ok((status, body)) => {
                        let document = serde_json::from_slice::<Value>(&body).unwrap_or_default();
                        let text = |key: &str| document.get(key).and_then(Value::as_str);
                        let ok = match workload {
                            Workload::Post => {
                                let id = text("id").map(str::to_owned);
                                let ok = status.as_u16() == 201
                                    && text("userName") == Some(user_name(user).as_str());
                                match id {
                                    Some(id) if ok => {
                                        created.push((user, id));
                                        true
                                    }
                                    _ => false,
                                }
                            }
                            Workload::Lookup => {
                                status.as_u16() == 200
                                    && document.get("totalResults").and_then(Value::as_i64)
                                        == Some(1)
                                    && document
                                        .pointer("/Resources/0/userName")
                                        .and_then(Value::as_str)
                                        == Some(user_name(user).as_str())
                            }
                            Workload::Patch => {
                                status.as_u16() == 200
                                    && text("displayName") == display.as_deref()
                            }
                        };
                        (!ok).then(|| {
                            format!(
                                "user {user}: {status}: {:.300}",
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
            (instance, latencies, created, failed, failures)
        }));
    }
    let mut latencies = Vec::with_capacity(count);
    let mut created = Vec::with_capacity(if workload == Workload::Post { count } else { 0 });
    let mut per_instance = vec![0; instances.len()];
    let mut failed = 0;
    let mut failures = Vec::new();
    for worker in workers {
        let (instance, mut l, mut c, f, mut problems) =
            worker.await.context("a client worker panicked")?;
        per_instance[instance] += l.len();
        latencies.append(&mut l);
        created.append(&mut c);
        failed += f;
        failures.append(&mut problems);
    }
    let wall = started.elapsed();
    let cpu = CpuSnapshot::take(instances).since(&before);
    if failed > 0 {
        failures.truncate(5);
        bail!(
            "{} on {}: {failed} of {count} responses were wrong; first ones:\n  {}",
            workload.label(),
            setup.label(),
            failures.join("\n  ")
        );
    }
    latencies.sort_unstable();
    let measured = Measured {
        setup,
        workload,
        requests: count,
        connections,
        wall,
        latencies,
        per_instance,
        cpu,
    };
    Ok((measured, created))
}

/// An error with its causes: reqwest's own message rarely says what went wrong.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// One setup from scratch: its directory, database, token and instances, then the three
/// workloads. Everything it started is stopped, and its database dropped, before it returns.
async fn run_setup(
    settings: &Settings,
    setup: Setup,
    http: &reqwest::Client,
) -> anyhow::Result<Vec<Measured>> {
    let dir = tempfile::Builder::new()
        .prefix("rollcall-stores-bench-")
        .tempdir()
        .context("cannot create a temporary directory")?;
    // Declared before the instances, so that on an early return the instances are killed first.
    let mut database = match setup {
        Setup::Sqlite => None,
        _ => Some(Database::create(&settings.postgres).await?),
    };
    let store = database.as_ref().map(|d| d.url.clone());
    let config = write_config(dir.path())?;
    let binary = &settings.rollcall_bin;
    let token = create_token(binary, &config, store.as_deref())?;
    let mut instances = Vec::new();
    for n in 0..setup.instances() {
        let log = dir.path().join(format!("rollcall-{n}.log"));
        instances.push(start_instance(binary, &config, store.as_deref(), log, http).await?);
    }
    println!(
        "\n{}: store {}; {} instance{} ({}); one config, {}; load {}",
        setup.label(),
        match &database {
            None => format!("SQLite {}/rollcall.db", dir.path().display()),
            Some(d) => format!("PostgreSQL database {}", d.name),
        },
        instances.len(),
        if instances.len() == 1 { "" } else { "s" },
        instances
            .iter()
            .map(|i| format!("pid {} at {}", i.pid(), i.base))
            .collect::<Vec<_>>()
            .join(", "),
        config.display(),
        loadavg(),
    );
    println!("{}", header());
    let connections = settings.connections;
    let mut results = Vec::new();
    let (post, mut created) = drive(
        setup,
        &instances,
        &token,
        Workload::Post,
        settings.users,
        connections,
        &Arc::new(Vec::new()),
    )
    .await?;
    println!("{}", post.row());
    results.push(post);
    created.sort_unstable();
    ensure!(
        created.len() == settings.users && created.iter().enumerate().all(|(n, (i, _))| n == *i),
        "the POSTs did not return one id per user"
    );
    let ids = Arc::new(created.into_iter().map(|(_, id)| id).collect::<Vec<_>>());
    for (workload, count) in [
        (Workload::Lookup, settings.lookups),
        (Workload::Patch, settings.patches),
    ] {
        let (measured, _) = drive(
            setup,
            &instances,
            &token,
            workload,
            count,
            connections,
            &ids,
        )
        .await?;
        println!("{}", measured.row());
        results.push(measured);
    }
    for instance in &mut instances {
        instance.check_running()?;
    }
    if let Some(database) = &database {
        println!(
            "  PostgreSQL connections to {} at the end: {}",
            database.name,
            connections_to(&settings.postgres, &database.name)
                .await
                .map_or_else(|e| format!("? ({e:#})"), |n| n.to_string())
        );
    }
    drop(instances);
    if let Some(database) = &mut database {
        database
            .drop_now()
            .with_context(|| format!("DROP DATABASE {}", database.name))?;
        println!("  dropped database {}", database.name);
    }
    Ok(results)
}

// --- the machine ---

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg").map_or_else(
        |_| "?".into(),
        |text| {
            let fields: Vec<&str> = text.split_whitespace().take(3).collect();
            format!("average {} (1, 5, 15 min)", fields.join(" "))
        },
    )
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|line| line.starts_with("model name"))
                .and_then(|line| line.split_once(':'))
                .map(|(_, model)| model.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into())
}

async fn run(settings: &Settings) -> anyhow::Result<()> {
    println!("stores bench: {settings:?}");
    println!(
        "machine: {} CPUs ({}); client, rollcall and PostgreSQL all share them; load {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        cpu_model(),
        loadavg()
    );
    println!(
        "PostgreSQL at {}: {}",
        redacted(&settings.postgres),
        postgres_version(&settings.postgres).await?
    );
    println!(
        "rollcall: {}; argon2 at its shipped defaults, but the school has \
         [schools.passwords] generate_for_scim = false, so SCIM-created users get no first \
         password and nothing is hashed: the figures measure the store, not argon2",
        settings.rollcall_bin.display()
    );
    println!(
        "workloads: {} POSTs, then {} lookups and {} PATCHes of random users (fixed seed), \
         each over {} keep-alive connections (split evenly between the instances)",
        settings.users, settings.lookups, settings.patches, settings.connections
    );
    let http = client()?;
    let mut results: Vec<Measured> = Vec::new();
    for setup in Setup::ALL {
        results.extend(run_setup(settings, setup, &http).await?);
    }

    let mut summary = String::new();
    let _ = writeln!(summary, "\n=== summary ===");
    let _ = writeln!(summary, "{}", header());
    for measured in &results {
        let _ = writeln!(summary, "{}", measured.row());
    }
    let _ = writeln!(
        summary,
        "legend: latencies client-side, send to last byte of the body; CPU columns = CPU time / \
         wall time (100% = one core):\n  rollcall = every instance together, postgres = every \
         `postgres` process, client = this benchmark, other = the rest of the machine"
    );
    let rate = |setup: Setup, workload: Workload| {
        results
            .iter()
            .find(|m| m.setup == setup && m.workload == workload)
            .map_or(f64::NAN, Measured::per_second)
    };
    let _ = writeln!(summary, "\nratios of requests/s:");
    let _ = writeln!(
        summary,
        "{:<18} {:>20} {:>20} {:>20}",
        "workload", "PostgreSQL×1/SQLite", "PostgreSQL×2/×1", "PostgreSQL×2/SQLite"
    );
    for workload in Workload::ALL {
        let sqlite = rate(Setup::Sqlite, workload);
        let one = rate(Setup::Postgres1, workload);
        let two = rate(Setup::Postgres2, workload);
        let _ = writeln!(
            summary,
            "{:<18} {:>19.2}x {:>19.2}x {:>19.2}x",
            workload.label(),
            one / sqlite,
            two / one,
            two / sqlite
        );
    }
    let _ = writeln!(summary, "load at the end: {}", loadavg());
    print!("{summary}");
    Ok(())
}
