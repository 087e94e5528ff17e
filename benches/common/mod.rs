//! What the benchmarks share: running one, reading knobs from the environment, peak memory,
//! and the bound argon2id sets on creating accounts with first passwords; in submodules,
//! `rollcall serve` as a child process ([`daemon`]), a checked SCIM load ([`load`]) and the
//! machine's CPUs, load and CPU accounting ([`machine`]).

// Each benchmark includes this module (`mod common;`) and uses only part of it.
#![allow(dead_code)]

pub mod daemon;
pub mod load;
pub mod machine;

use std::future::Future;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use rollcall::config::Argon2;
use rollcall::password::Hasher;

/// Runs a benchmark named `name` when cargo asked for benchmarks (`--bench`), on a
/// multi-threaded runtime; a failure is a message and exit code 1.
pub fn main<F: Future<Output = anyhow::Result<()>>>(
    name: &str,
    run: impl FnOnce() -> F,
) -> ExitCode {
    if !std::env::args().any(|arg| arg == "--bench") {
        println!("{name} bench: not run (use `cargo bench --bench {name}`)");
        return ExitCode::SUCCESS;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("{name} bench: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("{name} bench FAILED: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// A number from the environment, or `default`.
pub fn env_number(name: &str, default: usize) -> anyhow::Result<usize> {
    match std::env::var(name) {
        Ok(text) => text
            .parse()
            .with_context(|| format!("{name}=`{text}` is not a number")),
        Err(_) => Ok(default),
    }
}

/// `VmHWM` (peak resident memory) of this process, in KiB.
pub fn peak_memory_kib() -> Option<u64> {
    std::fs::read_to_string("/proc/self/status")
        .ok()?
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

pub fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// How fast argon2id lets accounts with first passwords be made on this machine.
pub struct Bound {
    /// Sequential hashes, nothing else running: sorted.
    pub times: Vec<Duration>,
    /// Their median.
    pub one_hash: Duration,
    /// Cores ÷ one hash, in accounts per second.
    pub bound: f64,
    /// Hashes per second with one per core at once (cores share caches and memory bandwidth,
    /// which argon2 leans on, so they do not quite scale).
    pub together: f64,
}

impl Bound {
    /// Two lines: the one-hash median and the bound, then the all-cores rate against it.
    pub fn print(&self, argon2: Argon2) {
        let cores = rollcall::password::cores();
        let times = &self.times;
        println!(
            "one hash (argon2id m={} KiB t={} p={}): median {:.1} ms of {} (min {:.1}, max {:.1}); bound = {cores} / {:.1} ms = {:.1} accounts/s",
            argon2.memory_kib,
            argon2.iterations,
            argon2.parallelism,
            ms(self.one_hash),
            times.len(),
            ms(times[0]),
            ms(times[times.len() - 1]),
            ms(self.one_hash),
            self.bound,
        );
        println!(
            "{cores} hashes at a time: {:.1} hashes/s = {:.1}% of the bound (how well the cores scale)",
            self.together,
            100.0 * self.together / self.bound
        );
    }
}

/// Measures the [`Bound`] with `samples` sequential hashes (and twice as many at once).
pub async fn argon2_bound(argon2: Argon2, samples: usize) -> anyhow::Result<Bound> {
    let samples = samples.max(1);
    let cores = rollcall::password::cores();
    let hasher = Hasher::new(argon2, 1)?;
    hasher.hash("warm-up").await?;
    let mut times = Vec::with_capacity(samples);
    for i in 0..samples {
        let started = Instant::now();
        hasher.hash(&format!("sample-{i}")).await?;
        times.push(started.elapsed());
    }
    times.sort();
    let one_hash = times[times.len() / 2];
    let all_cores = Hasher::new(argon2, cores)?;
    let count = 2 * samples.max(cores) / cores * cores;
    let started = Instant::now();
    let mut hashing = tokio::task::JoinSet::new();
    for i in 0..count {
        let hasher = all_cores.clone();
        hashing.spawn(async move { hasher.hash(&format!("together-{i}")).await });
    }
    while let Some(done) = hashing.join_next().await {
        done??;
    }
    Ok(Bound {
        times,
        one_hash,
        bound: cores as f64 / one_hash.as_secs_f64(),
        together: count as f64 / started.elapsed().as_secs_f64(),
    })
}

/// Serves `app` on 127.0.0.1 (a free port) from a runtime of its own whose threads are named
/// `thread`, so that its CPU can be counted apart from the client's (`machine::threads_cpu`).
/// Dropping the runtime stops it. `bench` names the benchmark in the message if it stops.
pub fn serve_apart(
    bench: &'static str,
    thread: &str,
    app: axum::Router,
) -> anyhow::Result<(tokio::runtime::Runtime, std::net::SocketAddr)> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name(thread)
        .enable_all()
        .build()
        .context("cannot start the receiver's runtime")?;
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .context("the receiver cannot listen on 127.0.0.1")?;
    listener.set_nonblocking(true)?;
    let address = listener.local_addr()?;
    runtime.spawn(async move {
        let served = match tokio::net::TcpListener::from_std(listener) {
            Ok(listener) => axum::serve(listener, app).await,
            Err(error) => Err(error),
        };
        if let Err(error) = served {
            eprintln!("{bench} bench: the receiver stopped: {error}");
        }
    });
    Ok((runtime, address))
}

/// The median of `values` (NaN when there are none).
pub fn median(mut values: Vec<f64>) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// `min-max` of `values`, rounded to whole numbers.
pub fn spread(values: &[f64]) -> String {
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!("{min:.0}-{max:.0}")
}
