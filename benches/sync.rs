//! Directory sync benchmark: a first sync of a generated school directory, with and without
//! first passwords, and a resync that finds nothing to do, next to a plain `ldapsearch`.
//!
//! Run with `cargo bench --bench sync` (see BENCHMARKS.md). It starts a real slapd (the test
//! fixture, `tests/it/slapd.rs`, on a loopback port) loaded with `school_ldif(BENCH_STUDENTS)`
//! (default 10,000 students, 6 tutors, 11 groups), and in one process measures:
//! 1. a first sync (`Mode::Apply`) into a fresh store with `passwords = false`;
//! 2. `BENCH_RESYNC_RUNS` rounds of: a resync of that store (a second `Mode::Apply` run that
//!    must plan nothing), then `ldapsearch` of the same bases, filters and attributes, paged
//!    with the source's page size and bound as the same reader; the ratio of their medians
//!    (target ≤ 1.5); then peak memory so far;
//! 3. one argon2id hash at the default parameters (median of sequential hashes), hence the
//!    bound cores ÷ that time, as `benches/import.rs` does, and the rate with every core
//!    hashing at once;
//! 4. a first sync into another fresh store with `passwords = true` (the default argon2
//!    parameters): accounts per second against the bound;
//! 5. peak resident memory (VmHWM) of this process: slapd and ldapsearch are child processes
//!    and not counted.
//!
//! Each run's steps are timestamped through the progress callback and printed as phases. The
//! run fails unless each first sync created exactly the directory's students and tutors and
//! its groups (with a pending slip per account when passwords are on), and each resync
//! planned nothing.

/// The daemon's allocator (see `src/main.rs`), so the figures are the daemon's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod common;
use common::{env_number, ms, peak_memory_kib};

use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail, ensure};
use rollcall::clock::Clock;
use rollcall::config::{Config, Select, Source};
use rollcall::provider::Provider;
use rollcall::scim::schema::Kind;
use rollcall::store::Scope;
use rollcall::sync::{self, Mode, Outcome, Report};

// The test fixture: slapd on a loopback port, and the generated school. The bench uses a
// part of it; its own tests are `#[test]` functions, which are not compiled here.
#[allow(dead_code)]
#[path = "../tests/it/slapd.rs"]
mod slapd;

use slapd::{GROUPS, Generated, STUDENTS, Slapd, TUTORS, school_ldif};

const SCHOOL: &str = "bench";
const SOURCE: &str = "directory";
/// The largest resync time, as a multiple of a raw paged `ldapsearch` of the same entries.
const RESYNC_TARGET: f64 = 1.5;

fn main() -> ExitCode {
    common::main("sync", run)
}

fn print_peak(when: &str) {
    match peak_memory_kib() {
        Some(peak) => println!(
            "peak memory (VmHWM) {when}: {:.1} MiB",
            peak as f64 / 1024.0
        ),
        None => println!("peak memory: /proc/self/status not readable"),
    }
}

/// One school with one LDAP source on `slapd`, shaped like tests/it/sync.rs's (a course rule
/// for the year-12 maths groups, student numbers from `employeeNumber`), with the default
/// argon2 parameters and page size; the store and the bind password in `dir`.
fn config(dir: &Path, slapd: &Slapd, passwords: bool) -> anyhow::Result<Config> {
    let secret = dir.join("directory.password");
    std::fs::write(&secret, format!("{}\n", slapd.reader_password))
        .context("writing the bind password")?;
    let text = format!(
        r#"[store]
url = "sqlite://{db}"

[[schools]]
id = "{SCHOOL}"
name = "Bench"

[[schools.courses]]
code = "MA-Y1-AS"
title = "Mathematics Year 1 (AS)"

[[schools.sources]]
id = "{SOURCE}"
kind = "ldap"
url = "{url}"
bind_dn = "{bind_dn}"
password_file = "{secret}"
passwords = {passwords}

[schools.sources.students]
base = "{STUDENTS}"
year_group = "departmentNumber"

[schools.sources.tutors]
base = "{TUTORS}"

[schools.sources.groups]
base = "{GROUPS}"

[[schools.sources.groups.courses]]
pattern = '^12[A-Z]/Ma\d$'
courses = ["Mathematics Year 1 (AS)"]

[schools.sources.attributes]
student_number = "employeeNumber"
"#,
        db = dir.join("rollcall.db").display(),
        url = slapd.url,
        bind_dn = slapd.reader_dn,
        secret = secret.display(),
    );
    Config::parse(&text, dir).map_err(|e| anyhow!("{e}"))
}

fn source_of(config: &Config) -> anyhow::Result<&Source> {
    config
        .schools
        .iter()
        .find(|s| s.id == SCHOOL)
        .and_then(|s| s.source(SOURCE))
        .context("the configured source")
}

/// A sync run's progress messages, each with the time since the run started.
type Steps = Vec<(Duration, String)>;

struct Timed {
    report: Report,
    took: Duration,
    steps: Steps,
}

impl Timed {
    /// From the first read to the `read …` message: connecting and binding come before.
    fn reading(&self) -> Option<Duration> {
        let first = self.steps.iter().find(|(_, m)| m.starts_with("reading "))?;
        let read = self.steps.iter().find(|(_, m)| m.starts_with("read "))?;
        Some(read.0 - first.0)
    }

    /// Each step until the next one (or the end); the password counts are left out.
    fn print_phases(&self) {
        let steps: Vec<&(Duration, String)> = self
            .steps
            .iter()
            .filter(|(_, m)| !(m.contains(" of ") && m.ends_with(" passwords")))
            .collect();
        let first = steps.first().map_or(self.took, |s| s.0);
        println!("  {:>9.1} ms  lease, cursor, connect and bind", ms(first));
        for (i, (at, message)) in steps.iter().enumerate() {
            let next = steps.get(i + 1).map_or(self.took, |s| s.0);
            let what = if message.starts_with("read ") {
                format!("{message}; then stored accounts, map, plan")
            } else {
                message.clone()
            };
            println!("  {:>9.1} ms  {what}", ms(next - *at));
        }
    }
}

async fn timed_sync(provider: &Provider, mode: Mode) -> anyhow::Result<Timed> {
    let steps: Mutex<Steps> = Mutex::new(Vec::new());
    let started = Instant::now();
    let progress = |message: &str| {
        if let Ok(mut steps) = steps.lock() {
            steps.push((started.elapsed(), message.to_owned()));
        }
    };
    let report = sync::run(provider, SCHOOL, SOURCE, mode, &progress)
        .await
        .map_err(|e| anyhow!("the sync failed: {e}"))?;
    let took = started.elapsed();
    let steps = steps.into_inner().unwrap_or_default();
    Ok(Timed {
        report,
        took,
        steps,
    })
}

/// A first sync into a fresh store; fails unless it created exactly the directory's people and
/// groups (and a pending slip for each account when `passwords`).
async fn first_sync(
    slapd: &Slapd,
    directory: &Generated,
    passwords: bool,
) -> anyhow::Result<(tempfile::TempDir, Config, Provider, Timed)> {
    let dir = tempfile::tempdir().context("temporary directory")?;
    let config = config(dir.path(), slapd, passwords)?;
    let provider = rollcall::provider(&config, Clock::system()).await?;
    let timed = timed_sync(&provider, Mode::Apply).await?;
    let people = directory.students.len() + directory.tutors.len();
    let groups = directory.groups.len();
    let report = &timed.report;
    ensure!(
        report.outcome == Outcome::Applied,
        "the first sync was {:?}, not applied ({:?})",
        report.outcome,
        report.held_because
    );
    ensure!(
        report.read.students == directory.students.len()
            && report.read.tutors == directory.tutors.len()
            && report.read.groups == groups,
        "the first sync read {:?}, the directory has {} students, {} tutors, {groups} groups",
        report.read,
        directory.students.len(),
        directory.tutors.len()
    );
    ensure!(
        report.counts.create == people && report.counts.skipped == 0,
        "the first sync planned {} accounts ({} skipped) for {people} people: {:?}",
        report.counts.create,
        report.counts.skipped,
        report.plan.skipped
    );
    ensure!(
        report.counts.create_groups == groups,
        "the first sync planned {} groups for {groups}",
        report.counts.create_groups
    );
    let scope = Scope {
        school_id: SCHOOL.into(),
        source: SOURCE.into(),
    };
    let users = provider.store.owned(&scope, Kind::User).await?.len();
    let stored_groups = provider.store.owned(&scope, Kind::Group).await?.len();
    ensure!(
        users == people,
        "the store holds {users} accounts of the source, not {people}"
    );
    ensure!(
        stored_groups == groups,
        "the store holds {stored_groups} groups of the source, not {groups}"
    );
    let slips = provider
        .store
        .count_slips(SCHOOL, None, time::OffsetDateTime::now_utc())
        .await?;
    let expected = if passwords { people as i64 } else { 0 };
    ensure!(
        slips == expected,
        "{slips} pending slips after the first sync, expected {expected}"
    );
    Ok((dir, config, provider, timed))
}

/// `ldapsearch` of what the sync reads: the same bases, filters, attributes and page size,
/// bound as the reader, one process per search as the sync makes one search each. The output
/// is read through a pipe and only its entries are counted (after the clock stops); the
/// fixture's `Slapd::ldapsearch` would parse it in this process, inside the timing.
fn raw_ldapsearch(slapd: &Slapd, source: &Source) -> anyhow::Result<(Duration, usize, usize)> {
    let people = sync::map::person_attributes(source);
    let mut searches: Vec<(&Select, Vec<String>)> = vec![(&source.students.select, people.clone())];
    if let Some(tutors) = &source.tutors {
        searches.push((&tutors.select, people.clone()));
    }
    if let Some(groups) = &source.groups {
        searches.push((&groups.select, sync::map::group_attributes(source)));
    }
    let paged = format!("pr={}/noprompt", source.ldap().map_or(500, |l| l.page_size));
    let started = Instant::now();
    let mut outputs = Vec::new();
    for (select, attributes) in &searches {
        let Select::Ldap { base, filter } = select else {
            bail!("the bench reads an LDAP source");
        };
        let output = Command::new("ldapsearch")
            .args(["-x", "-LLL", "-o", "ldif-wrap=no", "-H", &slapd.url])
            .args(["-D", &slapd.reader_dn, "-w", &slapd.reader_password])
            .args(["-b", base, "-E", &paged, filter])
            .args(attributes)
            .stdin(Stdio::null())
            .output()
            .context("running ldapsearch")?;
        if !output.status.success() {
            bail!(
                "ldapsearch under {base} failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
        }
        outputs.push(output.stdout);
    }
    let took = started.elapsed();
    let bytes = outputs.iter().map(Vec::len).sum();
    let entries = outputs
        .iter()
        .flat_map(|out| out.split(|&b| b == b'\n'))
        .filter(|line| line.starts_with(b"dn:"))
        .count();
    Ok((took, entries, bytes))
}

/// A resync of a store that holds the directory already: it must apply an empty plan, reading
/// everything unless `mode` is an incremental `Mode::Apply`.
async fn resync(
    provider: &Provider,
    source: &Source,
    mode: Mode,
    round: usize,
) -> anyhow::Result<Timed> {
    let again = timed_sync(provider, mode).await?;
    let report = &again.report;
    ensure!(
        report.outcome == Outcome::Applied && report.plan.is_empty(),
        "resync {round} ({mode:?}) was {:?} and planned {:?}",
        report.outcome,
        report.counts
    );
    let full = mode == Mode::Full || source.incremental.is_none();
    ensure!(
        report.full == full,
        "resync {round} ({mode:?}) read {} (full = {})",
        if report.full { "everything" } else { "changes" },
        report.full
    );
    Ok(again)
}

/// Sorts runs by time; the median is the middle one.
fn by_time(runs: &mut [Timed]) {
    runs.sort_by_key(|run| run.took);
}

/// CPU time in clock ticks, from /proc: the machine's (busy and total) and what this process
/// (with the children it waited for: ldapsearch) and slapd used.
#[derive(Clone, Copy)]
struct Cpu {
    busy: u64,
    total: u64,
    ours: u64,
}

impl Cpu {
    fn sample(slapd: u32) -> Option<Cpu> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let ticks: Vec<u64> = stat
            .lines()
            .next()?
            .split_whitespace()
            .skip(1)
            .filter_map(|t| t.parse().ok())
            .collect();
        // user nice system idle iowait irq softirq steal (guest time is within user).
        let total: u64 = ticks.iter().take(8).sum();
        let idle = ticks.get(3)? + ticks.get(4)?;
        let process = |path: &str| -> Option<u64> {
            let text = std::fs::read_to_string(path).ok()?;
            // After the name: the state (field 3), …; utime, stime, cutime, cstime are fields
            // 14 to 17.
            let fields: Vec<&str> = text.rsplit_once(')')?.1.split_whitespace().collect();
            fields
                .get(11..15)?
                .iter()
                .map(|t| t.parse::<u64>().ok())
                .sum()
        };
        Some(Cpu {
            busy: total - idle,
            total,
            ours: process("/proc/self/stat")? + process(&format!("/proc/{slapd}/stat"))?,
        })
    }

    /// What other processes (and the hypervisor, as steal) used since `before`, in cores.
    fn other_since(before: Option<Cpu>, slapd: u32) -> Option<f64> {
        let (before, now) = (before?, Cpu::sample(slapd)?);
        let total = now.total.checked_sub(before.total)?.max(1) as f64;
        let busy = now.busy.saturating_sub(before.busy) as f64;
        let ours = now.ours.saturating_sub(before.ours) as f64;
        let cores = rollcall::password::cores() as f64;
        Some(((busy - ours) / total * cores).max(0.0))
    }
}

fn print_other(other: Option<f64>, when: &str) {
    match other {
        Some(cores) => println!(
            "  other processes used {:.0}% of a core {when} (compare runs only when this is near 0)",
            100.0 * cores
        ),
        None => println!("  other processes' CPU {when}: /proc not readable"),
    }
}

async fn run() -> anyhow::Result<()> {
    let students = env_number("BENCH_STUDENTS", 10_000)?;
    let samples = env_number("BENCH_HASH_SAMPLES", 100)?.max(1);
    let rounds = env_number("BENCH_RESYNC_RUNS", 5)?.max(1);
    let cores = rollcall::password::cores();

    let started = Instant::now();
    let directory = school_ldif(students);
    let Some(slapd) = Slapd::start(&directory.ldif) else {
        bail!("slapd or ldap-utils is missing (scripts/test.sh installs them)");
    };
    println!(
        "sync bench: {} students, {} tutors, {} groups ({:.1} MiB of LDIF) in slapd at {}, loaded and started in {:.1} s; {cores} cores",
        directory.students.len(),
        directory.tutors.len(),
        directory.groups.len(),
        directory.ldif.len() as f64 / 1024.0 / 1024.0,
        slapd.url,
        started.elapsed().as_secs_f64(),
    );

    // 1. First sync, credentials off.
    let people = directory.students.len() + directory.tutors.len();
    let cpu = Cpu::sample(slapd.pid());
    let (dir, config, provider, first) = first_sync(&slapd, &directory, false).await?;
    let other = Cpu::other_since(cpu, slapd.pid());
    println!(
        "first sync, passwords = false: {people} accounts and {} groups in {:.2} s = {:.0} accounts/s",
        first.report.counts.create_groups,
        first.took.as_secs_f64(),
        people as f64 / first.took.as_secs_f64(),
    );
    first.print_phases();
    print_other(other, "during the sync");

    // 2. Resyncs that find nothing to do, in rounds: a full one (it reads everything, like
    // ldapsearch), the raw search, and an incremental one (the default `Mode::Apply`: only the
    // entries changed since the last run, here none).
    let source = source_of(&config)?;
    let expected = people + directory.groups.len();
    let mut fulls = Vec::with_capacity(rounds);
    let mut incrementals = Vec::with_capacity(rounds);
    let mut searches = Vec::with_capacity(rounds);
    let mut raw = (0, 0);
    let cpu = Cpu::sample(slapd.pid());
    for round in 1..=rounds {
        fulls.push(resync(&provider, source, Mode::Full, round).await?);
        let (took, entries, bytes) = raw_ldapsearch(&slapd, source)?;
        ensure!(
            entries == expected,
            "ldapsearch returned {entries} entries, expected {expected}"
        );
        searches.push(took);
        raw = (entries, bytes);
        incrementals.push(resync(&provider, source, Mode::Apply, round).await?);
    }
    let other = Cpu::other_since(cpu, slapd.pid());
    by_time(&mut fulls);
    let full = &fulls[rounds / 2];
    let search = median(&mut searches);
    let ratio = full.took.as_secs_f64() / search.as_secs_f64();
    println!(
        "full resync (Mode::Full, plans nothing): median {:.1} ms of {rounds} (min {:.1}, max {:.1}); reading {:.1} ms of it",
        ms(full.took),
        ms(fulls[0].took),
        ms(fulls[rounds - 1].took),
        ms(full.reading().unwrap_or_default()),
    );
    println!(
        "ldapsearch -E pr={}/noprompt of the same {} entries ({:.1} MiB of LDIF, {} searches): median {:.1} ms of {rounds} (min {:.1}, max {:.1})",
        source.ldap().map_or(500, |l| l.page_size),
        raw.0,
        raw.1 as f64 / 1024.0 / 1024.0,
        1 + usize::from(source.tutors.is_some()) + usize::from(source.groups.is_some()),
        ms(search),
        ms(searches[0]),
        ms(searches[rounds - 1]),
    );
    println!(
        "full resync / ldapsearch = {ratio:.2} (target ≤ {RESYNC_TARGET}: {}); its reading alone / ldapsearch = {:.2}",
        if ratio <= RESYNC_TARGET {
            "met"
        } else {
            "MISSED"
        },
        full.reading().unwrap_or_default().as_secs_f64() / search.as_secs_f64(),
    );
    println!("  phases of the median full resync:");
    full.print_phases();
    by_time(&mut incrementals);
    let incremental = &incrementals[rounds / 2];
    println!(
        "incremental resync (Mode::Apply{}, read {} entries, plans nothing): median {:.1} ms of {rounds} (min {:.1}, max {:.1})",
        source
            .incremental
            .as_ref()
            .map_or(String::new(), |i| format!(" on {}", i.attribute)),
        incremental.report.read.students
            + incremental.report.read.tutors
            + incremental.report.read.groups,
        ms(incremental.took),
        ms(incrementals[0].took),
        ms(incrementals[rounds - 1].took),
    );
    println!("  phases of the median incremental resync:");
    incremental.print_phases();
    print_other(other, "during the resyncs and searches");
    print_peak("after the first sync without passwords and the resyncs");
    provider.store.close().await;
    drop((provider, dir));

    // 3. The argon2 bound, as benches/import.rs measures it: one hash at a time, nothing else
    // running; then one per core at once. After the syncs without passwords, so their peak
    // memory is their own.
    let argon2 = rollcall::config::Argon2::default();
    let cpu = Cpu::sample(slapd.pid());
    let measured = common::argon2_bound(argon2, samples).await?;
    measured.print(argon2);
    let (bound, sustained) = (measured.bound, measured.together);
    print_other(Cpu::other_since(cpu, slapd.pid()), "while hashing");

    // 4. First sync, credentials on, into a fresh store.
    let cpu = Cpu::sample(slapd.pid());
    let (dir, _config, provider, first) = first_sync(&slapd, &directory, true).await?;
    let rate = people as f64 / first.took.as_secs_f64();
    println!(
        "first sync, passwords = true: {people} accounts with first passwords in {:.1} s = {rate:.1} accounts/s = {:.1}% of the bound, {:.1}% of {cores} hashes at a time",
        first.took.as_secs_f64(),
        100.0 * rate / bound,
        100.0 * rate / sustained,
    );
    first.print_phases();
    print_other(Cpu::other_since(cpu, slapd.pid()), "during the sync");
    provider.store.close().await;
    drop((provider, dir));

    // 5. Memory.
    let argon2_share = u64::from(argon2.memory_kib) * cores as u64;
    print_peak("after the first sync with passwords");
    println!(
        "  (argon2's share at most {:.1} MiB: {} KiB × {cores} concurrent hashes; slapd and ldapsearch are other processes)",
        argon2_share as f64 / 1024.0,
        argon2.memory_kib,
    );
    Ok(())
}

fn median(times: &mut [Duration]) -> Duration {
    times.sort();
    times[times.len() / 2]
}
