//! Webhooks benchmark: what the outbox costs SCIM writes, how fast and how soon the deliverer
//! gets events to a receiver, and whether a slow receiver slows writes. On SQLite (the default
//! store), everything on 127.0.0.1.
//!
//! Run with `cargo bench --bench webhooks`. It is a plain binary (`harness = false`), never a
//! test: without `--bench` it prints a line and exits.
//!
//! Five setups, each a fresh temporary directory, store and `rollcall serve` child process (the
//! release binary), and a fresh receiver in this process (an axum server on a runtime of its
//! own, on threads named `wh-receiver` so that its CPU is counted apart from the client's):
//! - `no webhooks`: no `[[webhooks]]`, so no events are derived or written;
//! - `1 webhook`: one webhook, the receiver answers 200 at once;
//! - `3 webhooks`: three webhooks (three paths of the same receiver), each wanting every event,
//!   so every change writes three outbox rows and three deliverers run;
//! - `1 webhook, held`: the receiver holds every request until the writes are done, so the
//!   deliverer has its first few attempts in flight (at most 8) and does nothing else: the
//!   outbox is written and nothing is delivered. Then the receiver lets them go, and the
//!   backlog's delivery is timed;
//! - `1 webhook, slow`: the receiver answers each request after `BENCH_SLOW_MS` (200 ms).
//!
//! In each setup, the same workload as `benches/stores.rs` (`common::load`), from
//! `BENCH_CONNECTIONS` keep-alive connections: `BENCH_USERS` `POST /Users`, then
//! `BENCH_PATCHES` `PATCH` replaces of `displayName` on random users (fixed seed); each answer
//! is checked. Every POST makes one `user.created` event per webhook, every PATCH one
//! `user.updated`. The school has `generate_for_scim = false`: nothing is hashed.
//!
//! The receiver checks each request as a receiver should: `content-type`, the Standard Webhooks
//! signature (HMAC-SHA256 over `id.timestamp.body` with the webhook's secret, written here from
//! the specification, and a `webhook-timestamp` within 5 minutes), and the body's `id` against
//! the header's. It keeps each event's first arrival (a second one is counted as a duplicate)
//! and the lag from the body's `timestamp` (the change's time, taken when the server started the
//! write) to its arrival. At the end of each setup, every webhook's events per account must be
//! exactly the account's writes in the order they were committed (its creation, then its PATCHes
//! by the `meta.version` each answer returned): for the slow receiver, a prefix of them. Any
//! signature that does not verify, or any other mismatch, fails the run.
//!
//! The setups run in `BENCH_ROUNDS` rounds, interleaved, so that background load spreads over
//! all of them; the summary gives the median requests/s of the rounds and the percentiles of
//! every round's latencies together.
//!
//! In `1 webhook`, once the burst's events are all in, `BENCH_PACED` more PATCHes go one at a
//! time from one connection at `BENCH_PACED_RATE` a second, far below what the store can take:
//! their lag is the lag of a store that is not saturated.
//!
//! Environment (all optional): `BENCH_CONNECTIONS` (16), `BENCH_USERS` (2000), `BENCH_PATCHES`
//! (2000), `BENCH_ROUNDS` (3), `BENCH_SLOW_MS` (200), `BENCH_PACED` (200; 0 for none),
//! `BENCH_PACED_RATE` (50), `BENCH_ROLLCALL_BIN` (another rollcall binary).

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail, ensure};
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::sync::watch;

mod common;
use common::daemon::{Instance, create_token, rollcall_bin, start_instance, write_config};
use common::load::{
    Answer, SEED, Workload, chain, client, clients, display_name, drive, patch_body, percentile,
    splitmix64,
};
use common::machine::{Cpu, CpuSnapshot, add, cpu_model, cpus, loadavg, percent};
use common::{env_number, median, ms, spread};

/// The receiver's threads' name (at most 15 bytes: Linux cuts thread names there).
const RECEIVER_THREAD: &str = "wh-receiver";
/// Salt of the paced PATCHes' choice of users.
const PACED_SALT: u64 = 0x3b1d_96e2;
/// How long the writes' events may take to arrive after the writes end.
const DELIVERY_DEADLINE: Duration = Duration::from_secs(120);

fn main() -> ExitCode {
    common::main("webhooks", || async {
        // On Ctrl-C, `run` is dropped: every guard kills or stops what it started.
        tokio::select! {
            outcome = run() => outcome,
            _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted")),
        }
    })
}

// --- settings and setups ---

#[derive(Debug)]
struct Settings {
    connections: usize,
    users: usize,
    patches: usize,
    rounds: usize,
    slow: Duration,
    /// PATCHes sent one at a time at `paced_rate` a second after the burst (`1 webhook`).
    paced: usize,
    paced_rate: usize,
    rollcall_bin: PathBuf,
}

impl Settings {
    fn from_env() -> anyhow::Result<Settings> {
        let positive = |name: &str, default: usize| -> anyhow::Result<usize> {
            let value = env_number(name, default)?;
            ensure!(value > 0, "{name} must be at least 1");
            Ok(value)
        };
        Ok(Settings {
            connections: positive("BENCH_CONNECTIONS", 16)?,
            users: positive("BENCH_USERS", 2_000)?,
            patches: positive("BENCH_PATCHES", 2_000)?,
            rounds: positive("BENCH_ROUNDS", 3)?,
            slow: Duration::from_millis(positive("BENCH_SLOW_MS", 200)? as u64),
            paced: env_number("BENCH_PACED", 200)?,
            paced_rate: positive("BENCH_PACED_RATE", 50)?,
            rollcall_bin: rollcall_bin(),
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Setup {
    None,
    One,
    Three,
    Held,
    Slow,
}

impl Setup {
    const ALL: [Setup; 5] = [
        Setup::None,
        Setup::One,
        Setup::Three,
        Setup::Held,
        Setup::Slow,
    ];

    fn label(self) -> &'static str {
        match self {
            Setup::None => "no webhooks",
            Setup::One => "1 webhook",
            Setup::Three => "3 webhooks",
            Setup::Held => "1 webhook, held",
            Setup::Slow => "1 webhook, slow",
        }
    }

    fn hooks(self) -> usize {
        match self {
            Setup::None => 0,
            Setup::Three => 3,
            _ => 1,
        }
    }

    fn mode(self, settings: &Settings) -> Mode {
        match self {
            Setup::Held => Mode::Held,
            Setup::Slow => Mode::Slow(settings.slow),
            _ => Mode::Fast,
        }
    }
}

const WORKLOADS: [Workload; 2] = [Workload::Post, Workload::Patch];

// --- the receiver ---

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// 200 at once.
    Fast,
    /// 200 once [`Receiver::release`] is called.
    Held,
    /// 200 after this long.
    Slow(Duration),
}

/// An event's first arrival.
#[derive(Debug, Clone)]
struct Receipt {
    hook: usize,
    /// The account (`data.id`).
    subject: String,
    /// `created` for a `user.created`, the new `displayName` for a `user.updated`, else the
    /// event's type.
    what: String,
    /// From the body's `timestamp` to the arrival.
    lag: Duration,
    at: Instant,
}

#[derive(Default)]
struct Received {
    /// First arrivals, in the order they came.
    receipts: Vec<Receipt>,
    /// `(hook, event id)` of each.
    ids: HashSet<(usize, String)>,
    duplicates: usize,
    /// Why requests were refused (the first few).
    refusals: Vec<String>,
    refused: usize,
}

struct Shared {
    mac: Hmac<Sha256>,
    mode: Mode,
    /// Opened by [`Receiver::release`] (held mode).
    open: watch::Sender<bool>,
    received: Mutex<Received>,
    /// `received.receipts.len()`, readable without the lock.
    unique: AtomicUsize,
}

/// An HTTP server on 127.0.0.1 on a runtime of its own; stopped when dropped.
struct Receiver {
    /// `http://127.0.0.1:PORT`; webhook `n` posts to `{url}/hook/{n}`.
    url: String,
    shared: Arc<Shared>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Receiver {
    fn start(key: &[u8], mode: Mode) -> anyhow::Result<Receiver> {
        let shared = Arc::new(Shared {
            mac: Hmac::<Sha256>::new_from_slice(key).map_err(|e| anyhow!("HMAC key: {e}"))?,
            mode,
            open: watch::channel(false).0,
            received: Mutex::default(),
            unique: AtomicUsize::new(0),
        });
        let app = axum::Router::new()
            .route("/hook/{n}", axum::routing::post(receive))
            .with_state(shared.clone());
        let (runtime, address) = common::serve_apart("webhooks", RECEIVER_THREAD, app)?;
        let url = format!("http://{address}");
        Ok(Receiver {
            url,
            shared,
            runtime: Some(runtime),
        })
    }

    /// Answers the held requests, and every later one at once.
    fn release(&self) {
        self.shared.open.send_replace(true);
    }

    /// Events received so far (first arrivals).
    fn unique(&self) -> usize {
        self.shared.unique.load(Ordering::Acquire)
    }

    /// Waits until `count` events have arrived; fails after [`DELIVERY_DEADLINE`].
    async fn wait_for(&self, count: usize, instance: &mut Instance) -> anyhow::Result<()> {
        let deadline = Instant::now() + DELIVERY_DEADLINE;
        while self.unique() < count {
            instance.check_running()?;
            if Instant::now() > deadline {
                let received = self.shared.received.lock().map_err(|_| poisoned())?;
                bail!(
                    "after {} s only {} of {count} events had arrived ({} refused: {:?}); the end \
                     of rollcall's log:\n{}",
                    DELIVERY_DEADLINE.as_secs(),
                    received.receipts.len(),
                    received.refused,
                    received.refusals,
                    instance.log_tail(20)
                );
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(())
    }

    /// What has arrived so far: first arrivals, duplicates, refusals.
    fn snapshot(&self) -> anyhow::Result<(Vec<Receipt>, usize, usize, Vec<String>)> {
        let received = self.shared.received.lock().map_err(|_| poisoned())?;
        Ok((
            received.receipts.clone(),
            received.duplicates,
            received.refused,
            received.refusals.clone(),
        ))
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.release();
        if let Some(runtime) = self.runtime.take() {
            // Drops the server and every request in it; allowed inside the benchmark's runtime.
            runtime.shutdown_background();
        }
    }
}

fn poisoned() -> anyhow::Error {
    anyhow!("the receiver's state is poisoned (a handler panicked)")
}

async fn receive(
    State(shared): State<Arc<Shared>>,
    UrlPath(hook): UrlPath<usize>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let (at, now) = (Instant::now(), OffsetDateTime::now_utc());
    match check(&shared, hook, &headers, &body, at, now) {
        Ok(receipt) => {
            let Ok(mut received) = shared.received.lock() else {
                return StatusCode::INTERNAL_SERVER_ERROR;
            };
            let id = header(&headers, "webhook-id").to_owned();
            if received.ids.insert((hook, id)) {
                received.receipts.push(receipt);
                shared.unique.fetch_add(1, Ordering::Release);
            } else {
                received.duplicates += 1;
            }
        }
        Err(why) => {
            if let Ok(mut received) = shared.received.lock() {
                received.refused += 1;
                if received.refusals.len() < 5 {
                    received.refusals.push(why);
                }
            }
            return StatusCode::BAD_REQUEST;
        }
    }
    match shared.mode {
        Mode::Fast => {}
        Mode::Slow(delay) => tokio::time::sleep(delay).await,
        Mode::Held => {
            let _ = shared.open.subscribe().wait_for(|open| *open).await;
        }
    }
    StatusCode::OK
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> &'h str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

/// The checks a receiver makes, then what the event is.
fn check(
    shared: &Shared,
    hook: usize,
    headers: &HeaderMap,
    body: &[u8],
    at: Instant,
    now: OffsetDateTime,
) -> Result<Receipt, String> {
    if header(headers, "content-type") != "application/json" {
        return Err("content-type is not application/json".into());
    }
    let id = header(headers, "webhook-id");
    let timestamp = header(headers, "webhook-timestamp");
    let sent: i64 = timestamp
        .parse()
        .map_err(|_| format!("webhook-timestamp `{timestamp}` is not a number"))?;
    if id.is_empty() || (now.unix_timestamp() - sent).abs() > 300 {
        return Err(format!("no webhook-id, or a stale timestamp ({timestamp})"));
    }
    // The Standard Webhooks check: HMAC-SHA256 over `{id}.{timestamp}.{body}`, compared with
    // each `v1,<base64>` of the header (space-separated).
    let mut mac = shared.mac.clone();
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    let verified = header(headers, "webhook-signature")
        .split(' ')
        .filter_map(|signature| signature.strip_prefix("v1,"))
        .filter_map(|signature| STANDARD.decode(signature).ok())
        .any(|signature| mac.clone().verify_slice(&signature).is_ok());
    if !verified {
        return Err(format!("event {id}: the signature does not verify"));
    }
    let json: Value =
        serde_json::from_slice(body).map_err(|e| format!("event {id}: the body: {e}"))?;
    let text = |pointer: &str| json.pointer(pointer).and_then(Value::as_str);
    if text("/id") != Some(id) {
        return Err(format!("event {id}: the body's id is {:?}", text("/id")));
    }
    let changed = text("/timestamp")
        .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
        .ok_or_else(|| format!("event {id}: no RFC 3339 timestamp"))?;
    let subject = text("/data/id")
        .ok_or_else(|| format!("event {id}: no data.id"))?
        .to_owned();
    let what = match text("/type") {
        Some("user.created") => "created".to_owned(),
        Some("user.updated") => text("/data/displayName").unwrap_or("?").to_owned(),
        other => other.unwrap_or("?").to_owned(),
    };
    Ok(Receipt {
        hook,
        subject,
        what,
        lag: Duration::try_from(now - changed).unwrap_or_default(),
        at,
    })
}

// --- figures ---

/// One workload of one setup in one round.
struct Measured {
    setup: Setup,
    workload: Workload,
    requests: usize,
    connections: usize,
    wall: Duration,
    /// Sorted.
    latencies: Vec<Duration>,
    cpu: Cpu,
    /// Events the receiver had when the workload ended (first arrivals, every webhook).
    received: usize,
}

impl Measured {
    fn per_second(&self) -> f64 {
        self.requests as f64 / self.wall.as_secs_f64()
    }

    fn row(&self, round: usize) -> String {
        format!(
            "{:>5} {:<16} {:<18} {:>6} {:>5} {:>7.2} {:>8.1} {:>7.2} {:>7.2} {:>8} {:>6} {:>8} {:>6} {:>8}",
            round,
            self.setup.label(),
            self.workload.label(),
            self.requests,
            self.connections,
            self.wall.as_secs_f64(),
            self.per_second(),
            ms(percentile(&self.latencies, 50.0)),
            ms(percentile(&self.latencies, 99.0)),
            percent(self.cpu.rollcall, self.wall),
            percent(self.cpu.client, self.wall),
            percent(self.cpu.receiver, self.wall),
            percent(self.cpu.other, self.wall),
            if self.setup == Setup::None {
                "-".to_owned()
            } else {
                self.received.to_string()
            },
        )
    }
}

fn header_row() -> String {
    format!(
        "{:>5} {:<16} {:<18} {:>6} {:>5} {:>7} {:>8} {:>7} {:>7} {:>8} {:>6} {:>8} {:>6} {:>8}",
        "round",
        "setup",
        "workload",
        "reqs",
        "conns",
        "wall s",
        "req/s",
        "p50 ms",
        "p99 ms",
        "rollcall",
        "client",
        "receiver",
        "other",
        "recv'd"
    )
}

/// How the events of one setup in one round arrived.
struct Delivery {
    setup: Setup,
    /// Events expected and received (every webhook).
    events: usize,
    duplicates: usize,
    /// The writes, from the first POST to the last PATCH's answer.
    writes: Duration,
    /// From the first POST to the last event's arrival (fast receivers).
    span: Option<Duration>,
    /// From the last PATCH's answer to the last event's arrival (fast receivers).
    after_writes: Option<Duration>,
    /// Lag of every event (fast receivers), sorted.
    lags: Vec<Duration>,
    /// Held receiver: the events that arrived after it let the held ones go, and how long
    /// after that the last one arrived.
    backlog: Option<(usize, Duration)>,
    /// Events that arrived while the writes ran.
    during_writes: usize,
    /// The paced PATCHes' events' lags, sorted (`1 webhook`).
    paced: Vec<Duration>,
}

impl Delivery {
    /// The round's figures, printed after its rows.
    fn line(&self) -> String {
        let mut line = format!(
            "      {}: {} events received (dups {}), {} of them while the writes ran ({:.2} s)",
            self.setup.label(),
            self.events,
            self.duplicates,
            self.during_writes,
            self.writes.as_secs_f64()
        );
        if let (Some(span), Some(after)) = (self.span, self.after_writes) {
            let _ = write!(
                line,
                "; the last {:.0} ms after the writes, {:.1} events/s from the first write; lag \
                 p50 {:.1} ms, p99 {:.1} ms",
                ms(after),
                self.events as f64 / span.as_secs_f64(),
                ms(percentile(&self.lags, 50.0)),
                ms(percentile(&self.lags, 99.0)),
            );
        }
        if !self.paced.is_empty() {
            let _ = write!(
                line,
                "; then {} paced PATCHes: lag p50 {:.1} ms, p99 {:.1} ms",
                self.paced.len(),
                ms(percentile(&self.paced, 50.0)),
                ms(percentile(&self.paced, 99.0)),
            );
        }
        if let Some((count, took)) = self.backlog {
            let _ = write!(
                line,
                "; released, the other {count} in {:.0} ms = {:.1} events/s",
                ms(took),
                count as f64 / took.as_secs_f64()
            );
        }
        line
    }
}

// --- one setup ---

/// The `[[webhooks]]` tables: `hooks` webhooks to this receiver, every event, the secret in
/// `secret_file`, quick retries.
fn webhooks_toml(url: &str, secret_file: &Path, hooks: usize, timeout_secs: u64) -> String {
    let mut toml = String::new();
    for n in 0..hooks {
        let _ = write!(
            toml,
            "\n[[webhooks]]\nid = \"hook-{n}\"\nurl = \"{url}/hook/{n}\"\nsecret_file = \"{}\"\n\
             timeout_secs = {timeout_secs}\nmax_attempts = 100\nretry_initial_ms = 100\n\
             retry_max_secs = 1\n",
            secret_file.display()
        );
    }
    toml
}

/// A fresh random secret in the `whsec_` form, and its key.
fn new_secret() -> anyhow::Result<(String, Vec<u8>)> {
    let mut key = vec![0u8; 32];
    getrandom::fill(&mut key).map_err(|e| anyhow!("no randomness for the secret: {e}"))?;
    Ok((format!("whsec_{}", STANDARD.encode(&key)), key))
}

/// One setup from scratch: directory, receiver, daemon, the writes, the deliveries, the checks.
/// Everything it started is stopped before it returns.
async fn run_setup(
    settings: &Settings,
    setup: Setup,
    round: usize,
    http: &reqwest::Client,
) -> anyhow::Result<(Vec<Measured>, Option<Delivery>)> {
    let dir = tempfile::Builder::new()
        .prefix("rollcall-webhooks-bench-")
        .tempdir()
        .context("cannot create a temporary directory")?;
    let hooks = setup.hooks();
    let mode = setup.mode(settings);
    // Declared before the instance, so that the instance is killed first.
    let (receiver, extra) = if hooks == 0 {
        (None, String::new())
    } else {
        let (secret, key) = new_secret()?;
        let secret_file = dir.path().join("webhook.secret");
        std::fs::write(&secret_file, format!("{secret}\n"))?;
        let receiver = Receiver::start(&key, mode)?;
        // Held requests must not time out while the writes run.
        let timeout = if mode == Mode::Held { 300 } else { 10 };
        let toml = webhooks_toml(&receiver.url, &secret_file, hooks, timeout);
        (Some(receiver), toml)
    };
    let config = write_config(dir.path(), &extra)?;
    let binary = &settings.rollcall_bin;
    let token = create_token(binary, &config, None)?;
    let log = dir.path().join("rollcall.log");
    let mut instance = start_instance(binary, &config, None, log, http).await?;
    let bases = [instance.base.clone()];
    let received = || receiver.as_ref().map_or(0, Receiver::unique);

    let mut results = Vec::new();
    let mut patched: Vec<Answer> = Vec::new();
    let mut ids = Arc::new(Vec::new());
    // Built before the clock starts: each loads the system's CA certificates.
    let mut connections = vec![
        clients(settings.connections)?,
        clients(settings.connections)?,
    ];
    let started = Instant::now();
    for workload in WORKLOADS {
        let count = match workload {
            Workload::Post => settings.users,
            _ => settings.patches,
        };
        let clients = connections.pop().unwrap_or_default();
        let before = CpuSnapshot::take(instance.pid(), RECEIVER_THREAD);
        let driven = drive(&bases, clients, &token, workload, count, &ids)
            .await
            .with_context(|| format!("round {round}, {}", setup.label()))?;
        let cpu = CpuSnapshot::take(instance.pid(), RECEIVER_THREAD).since(&before);
        let measured = Measured {
            setup,
            workload,
            requests: count,
            connections: settings.connections,
            wall: driven.wall,
            latencies: driven.latencies,
            cpu,
            received: received(),
        };
        println!("{}", measured.row(round));
        results.push(measured);
        if workload == Workload::Post {
            let mut created: Vec<(usize, String)> = driven
                .answers
                .iter()
                .map(|a| (a.user, a.id.clone()))
                .collect();
            created.sort_unstable();
            ensure!(
                created.len() == settings.users
                    && created.iter().enumerate().all(|(n, (i, _))| n == *i),
                "the POSTs did not return one id per user"
            );
            ids = Arc::new(created.into_iter().map(|(_, id)| id).collect());
        } else {
            patched = driven.answers;
        }
    }
    let writes = started.elapsed();
    let Some(receiver) = &receiver else {
        instance.check_running()?;
        return Ok((results, None));
    };

    let expected = hooks * (settings.users + settings.patches);
    let during_writes = receiver.unique();
    let released = Instant::now();
    let mut paced_from = None;
    match mode {
        Mode::Fast => {
            receiver.wait_for(expected, &mut instance).await?;
            if setup == Setup::One && settings.paced > 0 {
                // Every event of the burst is in: the events from here on are the paced ones.
                paced_from = Some(receiver.unique());
                let first = settings.patches;
                let answers = paced_patches(&bases[0], &token, &ids, first, settings).await?;
                patched.extend(answers);
                receiver
                    .wait_for(expected + settings.paced, &mut instance)
                    .await?;
            }
        }
        Mode::Held => {
            receiver.release();
            receiver.wait_for(expected, &mut instance).await?;
        }
        Mode::Slow(_) => {}
    }
    instance.check_running()?;
    drop(instance);
    let (receipts, duplicates, refused, refusals) = receiver.snapshot()?;
    ensure!(
        refused == 0,
        "round {round}, {}: the receiver refused {refused} requests: {refusals:?}",
        setup.label()
    );
    check_order(
        &receipts,
        &patched,
        &ids,
        hooks,
        matches!(mode, Mode::Slow(_)),
    )
    .with_context(|| format!("round {round}, {}", setup.label()))?;
    let (receipts, paced) = receipts.split_at(paced_from.unwrap_or(receipts.len()));
    let mut paced_lags: Vec<Duration> = paced.iter().map(|r| r.lag).collect();
    paced_lags.sort_unstable();
    let last = receipts.iter().map(|r| r.at).max();
    let delivery = match mode {
        Mode::Fast => {
            let last = last.unwrap_or(released);
            let mut lags: Vec<Duration> = receipts.iter().map(|r| r.lag).collect();
            lags.sort_unstable();
            Delivery {
                setup,
                events: receipts.len(),
                duplicates,
                writes,
                span: Some(last.saturating_duration_since(started)),
                after_writes: Some(last.saturating_duration_since(released)),
                lags,
                backlog: None,
                during_writes,
                paced: paced_lags,
            }
        }
        Mode::Held => {
            let after = receipts.iter().filter(|r| r.at >= released).count();
            Delivery {
                setup,
                events: receipts.len(),
                duplicates,
                writes,
                span: None,
                after_writes: None,
                lags: Vec::new(),
                backlog: Some((
                    after,
                    last.unwrap_or(released).saturating_duration_since(released),
                )),
                during_writes,
                paced: Vec::new(),
            }
        }
        Mode::Slow(_) => Delivery {
            setup,
            events: receipts.len(),
            duplicates,
            writes,
            span: None,
            after_writes: None,
            lags: Vec::new(),
            backlog: None,
            during_writes,
            paced: Vec::new(),
        },
    };
    Ok((results, Some(delivery)))
}

/// `settings.paced` PATCHes of random users (fixed seed), numbered from `first`, one at a
/// time from one connection at `settings.paced_rate` a second: each must be 200 with the new
/// `displayName`.
async fn paced_patches(
    base: &str,
    token: &str,
    ids: &[String],
    first: usize,
    settings: &Settings,
) -> anyhow::Result<Vec<Answer>> {
    let http = client()?;
    let interval = Duration::from_secs_f64(1.0 / settings.paced_rate as f64);
    let start = tokio::time::Instant::now();
    let mut answers = Vec::with_capacity(settings.paced);
    for j in 0..settings.paced {
        tokio::time::sleep_until(start + interval.mul_f64(j as f64)).await;
        let k = first + j;
        let user = (splitmix64(SEED ^ PACED_SALT ^ k as u64) % ids.len() as u64) as usize;
        let response = http
            .patch(format!("{base}/Users/{}", ids[user]))
            .bearer_auth(token)
            .header("content-type", "application/scim+json")
            .body(patch_body(k))
            .send()
            .await
            .map_err(|e| anyhow!("paced PATCH {k}: {}", chain(&e)))?;
        let status = response.status();
        let body = response.bytes().await.unwrap_or_default();
        let document: Value = serde_json::from_slice(&body).unwrap_or_default();
        ensure!(
            status.as_u16() == 200
                && document.get("displayName").and_then(Value::as_str)
                    == Some(display_name(k).as_str()),
            "paced PATCH {k} of user {user}: {status}: {:.300}",
            String::from_utf8_lossy(&body)
        );
        answers.push(Answer {
            k,
            user,
            id: ids[user].clone(),
            version: document
                .pointer("/meta/version")
                .and_then(Value::as_str)
                .map(str::to_owned),
        });
    }
    Ok(answers)
}

/// Every webhook's events per account are the account's writes in commit order: its creation,
/// then its PATCHes (`patched`) by the version each answer returned; with `prefix`, the start
/// of them.
fn check_order(
    receipts: &[Receipt],
    patched: &[Answer],
    ids: &[String],
    hooks: usize,
    prefix: bool,
) -> anyhow::Result<()> {
    let user_of: HashMap<&str, usize> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i))
        .collect();
    let mut patches: Vec<Vec<(u64, usize)>> = vec![Vec::new(); ids.len()];
    for answer in patched {
        let Some(version) = &answer.version else {
            bail!(
                "answer {} about user {} has no meta.version",
                answer.k,
                answer.user
            );
        };
        let version: u64 = version
            .trim_start_matches("W/")
            .trim_matches('"')
            .parse()
            .with_context(|| format!("meta.version `{version}`"))?;
        patches[answer.user].push((version, answer.k));
    }
    let expected: Vec<Vec<String>> = patches
        .iter_mut()
        .map(|writes| {
            writes.sort_unstable();
            std::iter::once("created".to_owned())
                .chain(writes.iter().map(|(_, k)| display_name(*k)))
                .collect()
        })
        .collect();
    if let Some(user) = patches
        .iter()
        .position(|w| w.windows(2).any(|p| p[0].0 == p[1].0))
    {
        bail!("two PATCHes of user {user} answered the same version");
    }
    let mut got: Vec<Vec<Vec<&str>>> = vec![vec![Vec::new(); ids.len()]; hooks];
    for receipt in receipts {
        let user = *user_of
            .get(receipt.subject.as_str())
            .ok_or_else(|| anyhow!("an event about an unknown account {}", receipt.subject))?;
        got[receipt.hook][user].push(&receipt.what);
    }
    let mut wrong = Vec::new();
    for (hook, users) in got.iter().enumerate() {
        for (user, events) in users.iter().enumerate() {
            let want = &expected[user];
            let fits = if prefix {
                events.len() <= want.len() && events.iter().zip(want).all(|(g, w)| g == w)
            } else {
                events.len() == want.len() && events.iter().zip(want).all(|(g, w)| g == w)
            };
            if !fits {
                wrong.push(format!(
                    "hook-{hook}, user {user}: got {events:?}, want {want:?}"
                ));
            }
        }
    }
    ensure!(
        wrong.is_empty(),
        "{} accounts' events were not their writes in order; first ones:\n  {}",
        wrong.len(),
        wrong
            .iter()
            .take(5)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n  ")
    );
    Ok(())
}

// --- the run ---

async fn run() -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    println!("webhooks bench: {settings:?}");
    println!(
        "machine: {} CPUs ({}); client, receiver and rollcall all share them; load {}",
        cpus(),
        cpu_model(),
        loadavg()
    );
    println!(
        "rollcall: {} on SQLite (a file in a temporary directory per setup); the school has \
         generate_for_scim = false, so nothing is hashed",
        settings.rollcall_bin.display()
    );
    println!(
        "workloads: {} POSTs, then {} PATCHes of random users (fixed seed), each over {} \
         keep-alive connections; {} rounds of the setups {}",
        settings.users,
        settings.patches,
        settings.connections,
        settings.rounds,
        Setup::ALL.map(Setup::label).join(", ")
    );
    println!(
        "the slow receiver answers after {} ms; the held one when the writes are done\n",
        settings.slow.as_millis()
    );
    println!("{}", header_row());
    let http = client()?;
    let mut measured: Vec<Measured> = Vec::new();
    let mut deliveries: Vec<Delivery> = Vec::new();
    for round in 1..=settings.rounds {
        for setup in Setup::ALL {
            let (results, delivery) = run_setup(&settings, setup, round, &http).await?;
            measured.extend(results);
            if let Some(delivery) = delivery {
                println!("{}", delivery.line());
                deliveries.push(delivery);
            }
        }
    }
    print!("{}", summary(&settings, &measured, &deliveries));
    println!("load at the end: {}", loadavg());
    Ok(())
}

fn summary(settings: &Settings, measured: &[Measured], deliveries: &[Delivery]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n=== summary: writes ({} rounds; req/s the median of the rounds, p50/p99 over every \
         round's requests) ===",
        settings.rounds
    );
    let _ = writeln!(
        out,
        "{:<16} {:<18} {:>6} {:>8} {:>10} {:>7} {:>7} {:>8} {:>6} {:>8} {:>6}",
        "setup",
        "workload",
        "reqs",
        "req/s",
        "range",
        "p50 ms",
        "p99 ms",
        "rollcall",
        "client",
        "receiver",
        "other"
    );
    let rate = |setup: Setup, workload: Workload| -> f64 {
        median(
            measured
                .iter()
                .filter(|m| m.setup == setup && m.workload == workload)
                .map(Measured::per_second)
                .collect(),
        )
    };
    for setup in Setup::ALL {
        for workload in WORKLOADS {
            let runs: Vec<&Measured> = measured
                .iter()
                .filter(|m| m.setup == setup && m.workload == workload)
                .collect();
            let mut latencies: Vec<Duration> = runs
                .iter()
                .flat_map(|m| m.latencies.iter().copied())
                .collect();
            latencies.sort_unstable();
            let wall: Duration = runs.iter().map(|m| m.wall).sum();
            let total = |pick: fn(&Cpu) -> Option<Duration>| {
                runs.iter()
                    .map(|m| pick(&m.cpu))
                    .fold(Some(Duration::ZERO), add)
            };
            let rates: Vec<f64> = runs.iter().map(|m| m.per_second()).collect();
            let _ = writeln!(
                out,
                "{:<16} {:<18} {:>6} {:>8.1} {:>10} {:>7.2} {:>7.2} {:>8} {:>6} {:>8} {:>6}",
                setup.label(),
                workload.label(),
                runs.iter().map(|m| m.requests).sum::<usize>(),
                rate(setup, workload),
                spread(&rates),
                ms(percentile(&latencies, 50.0)),
                ms(percentile(&latencies, 99.0)),
                percent(total(|c| c.rollcall), wall),
                percent(total(|c| c.client), wall),
                percent(total(|c| c.receiver), wall),
                percent(total(|c| c.other), wall),
            );
        }
    }
    let _ = writeln!(
        out,
        "legend: latencies client-side, send to last byte of the body; range = slowest-fastest \
         round; CPU = CPU time / wall time over every round (100% = one core): client = this \
         process less the receiver's threads, other = the rest of the machine"
    );
    let _ = writeln!(
        out,
        "\nratios of req/s (medians): with webhooks / without, and the slow receiver / the fast"
    );
    let _ = writeln!(
        out,
        "{:<18} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "workload", "1 / none", "3 / none", "held/none", "slow/none", "slow/fast"
    );
    for workload in WORKLOADS {
        let none = rate(Setup::None, workload);
        let _ = writeln!(
            out,
            "{:<18} {:>9.2}x {:>9.2}x {:>9.2}x {:>9.2}x {:>9.2}x",
            workload.label(),
            rate(Setup::One, workload) / none,
            rate(Setup::Three, workload) / none,
            rate(Setup::Held, workload) / none,
            rate(Setup::Slow, workload) / none,
            rate(Setup::Slow, workload) / rate(Setup::One, workload),
        );
    }

    let _ = writeln!(
        out,
        "\n=== summary: deliveries (medians of the rounds; lags over every round's events) ==="
    );
    let _ = writeln!(
        out,
        "{:<16} {:>7} {:>8} {:>9} {:>10} {:>16} {:>8} {:>8} {:>8} {:>5}",
        "setup",
        "events",
        "writes s",
        "all in s",
        "events/s",
        "after ms",
        "lag p50",
        "lag p99",
        "lag max",
        "dups"
    );
    for setup in [Setup::One, Setup::Three] {
        let runs: Vec<&Delivery> = deliveries.iter().filter(|d| d.setup == setup).collect();
        if runs.is_empty() {
            continue;
        }
        let mut lags: Vec<Duration> = runs.iter().flat_map(|d| d.lags.iter().copied()).collect();
        lags.sort_unstable();
        let pick = |f: fn(&Delivery) -> Option<f64>| -> Vec<f64> {
            runs.iter().filter_map(|d| f(d)).collect()
        };
        let spans = pick(|d| Some(d.span?.as_secs_f64()));
        let rates = pick(|d| Some(d.events as f64 / d.span?.as_secs_f64()));
        let after = pick(|d| Some(ms(d.after_writes?)));
        let _ = writeln!(
            out,
            "{:<16} {:>7} {:>8.2} {:>9.2} {:>10.1} {:>16} {:>8.1} {:>8.1} {:>8.1} {:>5}",
            setup.label(),
            runs[0].events,
            median(pick(|d| Some(d.writes.as_secs_f64()))),
            median(spans),
            median(rates),
            format!("{:.0} ({})", median(after.clone()), spread(&after)),
            ms(percentile(&lags, 50.0)),
            ms(percentile(&lags, 99.0)),
            ms(lags.last().copied().unwrap_or_default()),
            runs.iter().map(|d| d.duplicates).sum::<usize>(),
        );
    }
    let _ = writeln!(
        out,
        "legend: events = per round, every webhook's; all in = from the first POST to the last \
         event's arrival; events/s = events / all in; after = from the last PATCH's answer to \
         the last event's arrival (range over the rounds); lag (ms) = from the event's \
         `timestamp` (the change's time) to its arrival; dups = events that arrived twice"
    );
    let mut paced: Vec<Duration> = deliveries
        .iter()
        .flat_map(|d| d.paced.iter().copied())
        .collect();
    paced.sort_unstable();
    if !paced.is_empty() {
        let _ = writeln!(
            out,
            "paced ({}): {} PATCHes a round after the burst, one at a time at {}/s from one \
             connection: lag p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} events), in order per \
             account",
            Setup::One.label(),
            settings.paced,
            settings.paced_rate,
            ms(percentile(&paced, 50.0)),
            ms(percentile(&paced, 99.0)),
            ms(paced.last().copied().unwrap_or_default()),
            paced.len(),
        );
    }
    let held: Vec<&Delivery> = deliveries
        .iter()
        .filter(|d| d.setup == Setup::Held)
        .collect();
    if !held.is_empty() {
        let rates: Vec<f64> = held
            .iter()
            .filter_map(|d| {
                let (count, took) = d.backlog?;
                Some(count as f64 / took.as_secs_f64())
            })
            .collect();
        let (count, _) = held[0].backlog.unwrap_or_default();
        let _ = writeln!(
            out,
            "backlog ({}): {} events waiting when the writes ended (besides the {} held in \
             flight) delivered at {:.1} events/s (median; {} over the rounds), in order per \
             account; dups {}",
            Setup::Held.label(),
            count,
            held[0].events - count,
            median(rates.clone()),
            spread(&rates),
            held.iter().map(|d| d.duplicates).sum::<usize>(),
        );
    }
    let slow: Vec<&Delivery> = deliveries
        .iter()
        .filter(|d| d.setup == Setup::Slow)
        .collect();
    if !slow.is_empty() {
        let rates: Vec<f64> = slow
            .iter()
            .map(|d| d.during_writes as f64 / d.writes.as_secs_f64())
            .collect();
        let _ = writeln!(
            out,
            "slow receiver ({} ms an answer): {:.1} events/s arrived while the writes ran \
             (median; {} over the rounds; 8 in flight would give {:.0}/s), in order per account; \
             the rest were still in the outbox when the daemon was stopped",
            settings.slow.as_millis(),
            median(rates.clone()),
            spread(&rates),
            8.0 / settings.slow.as_secs_f64(),
        );
    }
    out
}
