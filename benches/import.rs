//! Class import benchmark: how close creating accounts with first passwords comes to the bound
//! that argon2id sets.
//!
//! Run with `cargo bench --bench import` (see BENCHMARKS.md). In one process, on a fresh SQLite
//! store in a temporary directory, it measures:
//! 1. the time of one argon2id hash at the configured parameters (median of sequential hashes,
//!    nothing else running), hence the bound: cores ÷ that time, in accounts per second;
//!    and, for comparison, the rate with every core hashing at once (cores share caches and
//!    memory bandwidth, so they do not quite scale);
//! 2. a committed import of `BENCH_STUDENTS` pasted rows (default 10,000) into a new group, at
//!    those parameters, after its preview (a dry run): accounts per second, and the ratios;
//! 3. the same import into a fresh store with the cheapest argon2 parameters allowed
//!    (m=8 KiB, t=1): what the import costs besides hashing, as a share of (2);
//! 4. peak resident memory (VmHWM) against argon2's share, memory × concurrent hashes.
//!
//! Every created row is checked: the run fails unless each row was created with a password.

use std::process::ExitCode;

mod common;
use common::{env_number, peak_memory_kib};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, ensure};
use rollcall::clock::Clock;
use rollcall::config::{Argon2, Config};
use rollcall::roster::Admin;
use rollcall::roster::import::{Action, Request};

/// The share of the bound the import should reach.
const BOUND_TARGET: f64 = 0.90;
/// The largest share of the import's time that may go to anything but hashing.
const OVERHEAD_TARGET: f64 = 0.10;

fn main() -> ExitCode {
    common::main("import", run)
}

/// A class list as admins paste it: tab-separated with a header, each student distinct by
/// student number, with every tenth surname shared to exercise the clash counter.
fn class_list(students: usize) -> String {
    let mut text = String::from("First name\tSurname\tEmail\tYear\tUPN\r\n");
    for i in 0..students {
        let surname = if i % 10 == 0 {
            "Smith".to_owned()
        } else {
            format!("Pupil{i}")
        };
        text.push_str(&format!(
            "Student{i}\t{surname}\tstudent{i}@bench.example\t{}\tUPN{i:06}\r\n",
            7 + i % 7
        ));
    }
    text
}

fn config(dir: &std::path::Path, argon2: Argon2) -> anyhow::Result<Config> {
    let text = format!(
        "[store]\nurl = \"sqlite://{}\"\n\n[argon2]\nmemory_kib = {}\niterations = {}\nparallelism = {}\n\n\
         [[schools]]\nid = \"bench\"\nname = \"Bench\"\n",
        dir.join("rollcall.db").display(),
        argon2.memory_kib,
        argon2.iterations,
        argon2.parallelism,
    );
    Config::parse(&text, dir).map_err(|e| anyhow!("{e}"))
}

/// Imports `students` rows into a fresh store; returns the time the committed import took, and
/// the time its preview (a dry run) took before it.
async fn import(argon2: Argon2, students: usize) -> anyhow::Result<(Duration, Duration)> {
    let dir = tempfile::tempdir().context("temporary directory")?;
    let provider = rollcall::provider(&config(dir.path(), argon2)?, Clock::system()).await?;
    let mut request = Request {
        group: "Year group".into(),
        text: class_list(students),
        dry_run: true,
        ..Request::default()
    };
    let started = Instant::now();
    let preview = provider
        .import(&Admin::cli("bench"), &request)
        .await
        .map_err(|e| anyhow!("{e}"))?;
    let previewed = started.elapsed();
    ensure!(
        preview.counts.create == students,
        "the preview plans {} of {students} rows",
        preview.counts.create
    );
    request.dry_run = false;
    let started = Instant::now();
    let outcome = provider
        .import(&Admin::cli("bench"), &request)
        .await
        .map_err(|e| anyhow!("{e}"))?;
    let took = started.elapsed();
    provider.store.close().await;
    ensure!(outcome.committed, "the import was not committed");
    let created = outcome
        .rows
        .iter()
        .filter(|row| row.action == Action::Created && row.password.is_some())
        .count();
    ensure!(
        created == students,
        "{created} of {students} rows were created with a password"
    );
    Ok((took, previewed))
}

async fn run() -> anyhow::Result<()> {
    let students = env_number("BENCH_STUDENTS", 10_000)?;
    let samples = env_number("BENCH_HASH_SAMPLES", 100)?;
    let argon2 = Argon2::default();
    let cores = rollcall::password::cores();
    println!(
        "import bench: {students} students, argon2id m={} KiB t={} p={}, {cores} cores",
        argon2.memory_kib, argon2.iterations, argon2.parallelism
    );

    // 1. One hash at a time, nothing else running; then one per core, all at once: how far
    // the cores scale together.
    let measured = common::argon2_bound(argon2, samples).await?;
    measured.print(argon2);
    let (bound, sustained) = (measured.bound, measured.together);

    // 2. The real import.
    let (took, previewed) = import(argon2, students).await?;
    let rate = students as f64 / took.as_secs_f64();
    println!(
        "preview (dry run) of {students} rows: {:.2} s",
        previewed.as_secs_f64()
    );
    println!(
        "import: {students} accounts in {:.1} s = {rate:.1} accounts/s = {:.1}% of the bound (target ≥ {:.0}%), {:.1}% of {cores} hashes at a time",
        took.as_secs_f64(),
        100.0 * rate / bound,
        100.0 * BOUND_TARGET,
        100.0 * rate / sustained,
    );
    let peak = peak_memory_kib();

    // 3. The same import with hashing almost free: everything else it does.
    let cheap = Argon2 {
        memory_kib: 8,
        iterations: 1,
        parallelism: 1,
    };
    let (rest, _) = import(cheap, students).await?;
    println!(
        "without hashing (argon2 m=8 KiB t=1): {:.2} s = {:.1}% of the import (target < {:.0}%)",
        rest.as_secs_f64(),
        100.0 * rest.as_secs_f64() / took.as_secs_f64(),
        100.0 * OVERHEAD_TARGET,
    );

    // 4. Memory.
    let argon2_share = u64::from(argon2.memory_kib) * cores as u64;
    match peak {
        Some(peak) => println!(
            "peak memory (VmHWM) after the import: {:.1} MiB; argon2's share at most {:.1} MiB ({} KiB × {cores} concurrent hashes)",
            peak as f64 / 1024.0,
            argon2_share as f64 / 1024.0,
            argon2.memory_kib,
        ),
        None => println!("peak memory: /proc/self/status not readable"),
    }
    Ok(())
}
