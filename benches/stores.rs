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
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow, ensure};
use sqlx::{Connection, PgConnection};

mod common;
use common::daemon::{Instance, create_token, rollcall_bin, start_instance, write_config};
use common::load::{Answer, Workload, client, clients, drive, percentile};
use common::machine::{cpu_model, cpu_time, loadavg, machine_busy};
use common::ms;

const DEFAULT_POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/postgres";
/// Every database this benchmark creates starts with this.
const DATABASE_PREFIX: &str = "rollcall_bench_";

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
            rollcall_bin: rollcall_bin(),
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

// --- CPU accounting (Linux /proc; clock ticks of 1/100 s) ---

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
        percentile(&self.latencies, p)
    }

    fn percent(&self, cpu: Option<Duration>) -> String {
        common::machine::percent(cpu, self.wall)
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

/// Runs `count` requests of one workload from `connections` workers, worker `w` talking to
/// instance `w % instances.len()` (see [`drive`]), and takes the CPU each party used meanwhile.
/// Fails on any response that is not what it should be.
async fn measure(
    setup: Setup,
    instances: &[Instance],
    token: &str,
    workload: Workload,
    count: usize,
    connections: usize,
    ids: &Arc<Vec<String>>,
) -> anyhow::Result<(Measured, Vec<Answer>)> {
    let clients = clients(connections)?;
    let bases: Vec<String> = instances.iter().map(|i| i.base.clone()).collect();
    let before = CpuSnapshot::take(instances);
    let driven = drive(&bases, clients, token, workload, count, ids)
        .await
        .with_context(|| format!("on {}", setup.label()))?;
    let cpu = CpuSnapshot::take(instances).since(&before);
    let measured = Measured {
        setup,
        workload,
        requests: count,
        connections,
        wall: driven.wall,
        latencies: driven.latencies,
        per_instance: driven.per_instance,
        cpu,
    };
    Ok((measured, driven.answers))
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
    let config = write_config(dir.path(), "")?;
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
    let (post, answers) = measure(
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
    let mut created: Vec<(usize, String)> = answers.into_iter().map(|a| (a.user, a.id)).collect();
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
        let (measured, _) = measure(
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
