//! Entitlements benchmark: what students' derived courses cost reads, and what the
//! `user.entitlements_changed` event costs group writes. On SQLite (the default store),
//! everything on 127.0.0.1.
//!
//! Run with `cargo bench --bench entitlements`. It is a plain binary (`harness = false`), never
//! a test: without `--bench` it prints a line and exits.
//!
//! Every setup gets a fresh temporary directory, store and `rollcall serve` child process (the
//! release binary, killed and reaped when the setup ends, also on failure or Ctrl-C). The
//! school (`generate_for_scim = false`: nothing is hashed) has a course catalogue in which a
//! course can imply modules: Mathematics Year 1 (AS) brings Statistics and Mechanics, Physics
//! brings Mechanics. Its `BENCH_GROUPS` teaching groups carry one of five sets of courses
//! (group `g` the set `g % 5`), each set with at least one course. Each school is made
//! through SCIM: `POST /Users` of every student (school extension role `student`), then
//! `POST /Groups` of each group with the school group extension's `courses` and its
//! `BENCH_GROUP_SIZE` students as `members`, from `BENCH_CONNECTIONS` keep-alive connections.
//!
//! Setups, in this order in each of `BENCH_ROUNDS` rounds (interleaved, so that background load
//! spreads over all of them):
//!
//! - `reads`: the school plus `BENCH_LONERS` students in no group, no webhook. Three
//!   workloads, each `BENCH_WARMUP` unmeasured requests then `BENCH_READS` measured ones
//!   (`BENCH_LIST_READS` class lists), from `BENCH_CONNECTIONS` connections, random targets
//!   from a fixed seed:
//!   `GET /Users/{id}` of a student in a group, `GET /Users/{id}` of a student in none, and a
//!   class list, `GET /Users?filter=groups.value eq "<group id>"&count=<group size>`.
//!   Every answer is checked: the user (or exactly the group's members), their one group, and
//!   their `courses` (the codes the model expects, each through that group) when the binary
//!   serves the attribute: the benchmark asks `GET /Schemas/<school User extension>` whether it
//!   declares `courses`, and then requires it on every student in a group (and never on the
//!   others); a binary without it must show none. How many user documents carried `courses` is
//!   printed, so the same benchmark measures a binary from before entitlements.
//! - `membership`: the school (no loners) and one webhook wanting `group.membership_changed`
//!   only;
//! - `entitlements`: the same, the webhook wanting `group.membership_changed` and
//!   `user.entitlements_changed`.
//!
//! In the two write setups, once the events of making the school have all arrived, the
//! workload is `BENCH_MOVES` moves of a student from their group to a group with other courses,
//! each two SCIM `PATCH /Groups/{id}`: remove the student from `members` (filter path), then
//! add them to the other group. Move `k` is made by connection `k % BENCH_CONNECTIONS`, and
//! connection `c` moves only the students `i` with `i % BENCH_CONNECTIONS == c`, one move
//! after the other, so no student is moved by two connections at once; which student and which
//! group are drawn from a fixed seed, planned before the clock starts. Each answer must be 200
//! with the group, the student in or out of its `members`. Groups are written concurrently by
//! several connections (rollcall retries a PATCH that lost a race; that is part of what is
//! measured, the same in both setups).
//!
//! The receiver is an axum server in this process on a runtime of its own (threads named
//! `ent-receiver`, so that its CPU is counted apart from the client's) that answers 204 and
//! keeps each event's first arrival by the body's `id` (signatures are not checked here; see
//! `benches/webhooks.rs`). The moves start once every event of making the school has arrived
//! (and been checked). After them, the benchmark waits until every expected event has arrived
//! (`drained`: how long after the last PATCH's answer), then 1.5 s more for any extra one, and
//! requires, per student, exactly the expected events in order: `group.membership_changed`
//! added to the first group, then per move removed and added, and with the entitlement event
//! one `user.entitlements_changed` after each membership change that changed the student's
//! course codes (with their codes now and the codes added and removed, as the model derives
//! them from the catalogue). Every group here carries courses and every move goes to other
//! ones, so that is one per PATCH. Any other event, a missing one or one too many fails the
//! run.
//!
//! Latencies are client-side, from sending a request to having read its whole body. CPU is
//! taken from `/proc`: rollcall's, this process's less the receiver's threads (the client), the
//! receiver's, and the rest of the machine's (`other`).
//!
//! Environment (all optional): `BENCH_CONNECTIONS` (16), `BENCH_GROUPS` (40),
//! `BENCH_GROUP_SIZE` (30), `BENCH_LONERS` (1200), `BENCH_READS` (5000), `BENCH_LIST_READS`
//! (measured class lists; `BENCH_READS`), `BENCH_WARMUP` (500),
//! `BENCH_MOVES` (1000), `BENCH_ROUNDS` (3), `BENCH_ONLY` (a comma-separated list of `reads`,
//! `membership`, `entitlements`, or `writes` for the last two; default all three),
//! `BENCH_ROLLCALL_BIN` (another rollcall binary), `BENCH_BASELINE_BIN` (a second binary, e.g.
//! a build from before entitlements: in each round it also runs `reads` and `membership`
//! where chosen, after the first binary's setups in odd rounds and before them in even ones,
//! and the summary compares the two binaries).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail, ensure};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

mod common;
use common::daemon::{Instance, create_token, rollcall_bin, start_instance, write_config};
use common::load::{SEED, chain, client, clients, percentile, splitmix64};
use common::machine::{Cpu, CpuSnapshot, add, cpu_model, cpus, loadavg, percent};
use common::{env_number, median, ms, spread};

const USER_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const GROUP_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const PATCH_URN: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const SCHOOL_USER: &str = "urn:rollcall:params:scim:schemas:extension:school:2.0:User";
const SCHOOL_GROUP: &str = "urn:rollcall:params:scim:schemas:extension:school:2.0:Group";
const MEMBERSHIP: &str = "group.membership_changed";
const ENTITLEMENTS: &str = "user.entitlements_changed";

/// The receiver's threads' name (at most 15 bytes: Linux cuts thread names there).
const RECEIVER_THREAD: &str = "ent-receiver";
/// How long the expected events may take to arrive.
const DELIVERY_DEADLINE: Duration = Duration::from_secs(120);
/// How long the benchmark waits, once every expected event is in, for any extra one.
const QUIET: Duration = Duration::from_millis(1500);
/// Salts of the random choices, so that each workload draws its own.
const STUDENT_SALT: u64 = 0x51d3_77a1;
const LONER_SALT: u64 = 0x10e5_2b9c;
const CLASS_SALT: u64 = 0xc1a5_5e11;
const WARMUP_SALT: u64 = 0x7a2f_0b44;
const MOVE_SALT: u64 = 0x40e3_9d27;

/// The school's catalogue: code, title, implied modules.
const CATALOGUE: &[(&str, &str, &[&str])] = &[
    (
        "MA-Y1-AS",
        "Mathematics Year 1 (AS)",
        &["MA-Y1-STAT", "MA-Y1-MECH"],
    ),
    ("MA-Y1-STAT", "Statistics Year 1", &[]),
    ("MA-Y1-MECH", "Mechanics Year 1", &[]),
    ("PH-Y1", "Physics Year 1", &["MA-Y1-MECH"]),
    ("CH-Y1", "Chemistry Year 1", &[]),
    ("BI-Y1", "Biology Year 1", &[]),
    ("CS-Y1", "Computer Science Year 1", &[]),
];

/// The courses a teaching group is given: group `g` gets `COURSE_SETS[g % 5]`.
const COURSE_SETS: &[&[&str]] = &[
    &["MA-Y1-AS"],
    &["PH-Y1"],
    &["CH-Y1", "BI-Y1"],
    &["CS-Y1"],
    &["MA-Y1-AS", "PH-Y1"],
];

fn main() -> ExitCode {
    common::main("entitlements", || async {
        // On Ctrl-C, `run` is dropped: every guard kills or stops what it started.
        tokio::select! {
            outcome = run() => outcome,
            _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted")),
        }
    })
}

// --- settings ---

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Setup {
    Reads,
    Membership,
    Entitlements,
}

impl Setup {
    const ALL: [Setup; 3] = [Setup::Reads, Setup::Membership, Setup::Entitlements];

    fn label(self) -> &'static str {
        match self {
            Setup::Reads => "reads",
            Setup::Membership => "membership",
            Setup::Entitlements => "entitlements",
        }
    }

    /// The events its webhook wants (none: no webhook).
    fn events(self) -> &'static [&'static str] {
        match self {
            Setup::Reads => &[],
            Setup::Membership => &[MEMBERSHIP],
            Setup::Entitlements => &[MEMBERSHIP, ENTITLEMENTS],
        }
    }
}

#[derive(Debug)]
struct Settings {
    connections: usize,
    groups: usize,
    group_size: usize,
    loners: usize,
    reads: usize,
    /// Measured class lists (each reads a whole group).
    list_reads: usize,
    warmup: usize,
    moves: usize,
    rounds: usize,
    only: Vec<Setup>,
    /// `(label, binary)`: the benchmarked binary, then the baseline if any.
    binaries: Vec<(&'static str, PathBuf)>,
}

impl Settings {
    fn from_env() -> anyhow::Result<Settings> {
        let positive = |name: &str, default: usize| -> anyhow::Result<usize> {
            let value = env_number(name, default)?;
            ensure!(value > 0, "{name} must be at least 1");
            Ok(value)
        };
        let only = match std::env::var("BENCH_ONLY") {
            Ok(text) if !text.trim().is_empty() => {
                let mut only = Vec::new();
                for part in text.split(',').map(str::trim) {
                    match part {
                        "reads" => only.push(Setup::Reads),
                        "membership" => only.push(Setup::Membership),
                        "entitlements" => only.push(Setup::Entitlements),
                        "writes" => only.extend([Setup::Membership, Setup::Entitlements]),
                        other => bail!(
                            "BENCH_ONLY: `{other}` is none of reads, membership, entitlements, \
                             writes"
                        ),
                    }
                }
                only.sort();
                only.dedup();
                only
            }
            _ => Setup::ALL.to_vec(),
        };
        let connections = positive("BENCH_CONNECTIONS", 16)?;
        let reads = positive("BENCH_READS", 5_000)?;
        let groups = positive("BENCH_GROUPS", 40)?;
        ensure!(
            groups >= 2,
            "BENCH_GROUPS must be at least 2: a move needs another group"
        );
        let mut binaries = vec![("rollcall", rollcall_bin())];
        if let Some(baseline) = std::env::var_os("BENCH_BASELINE_BIN").filter(|v| !v.is_empty()) {
            binaries.push(("baseline", PathBuf::from(baseline)));
        }
        Ok(Settings {
            connections,
            groups,
            group_size: positive("BENCH_GROUP_SIZE", 30)?,
            loners: env_number("BENCH_LONERS", 1_200)?,
            reads,
            list_reads: positive("BENCH_LIST_READS", reads)?,
            warmup: env_number("BENCH_WARMUP", 500)?,
            moves: positive("BENCH_MOVES", 1_000)?,
            rounds: positive("BENCH_ROUNDS", 3)?,
            only,
            binaries,
        })
    }

    fn students(&self) -> usize {
        self.groups * self.group_size
    }

    /// The setups binary `b` runs in each round: all chosen for the first, the baseline only
    /// those that need nothing new.
    fn setups(&self, b: usize) -> Vec<Setup> {
        self.only
            .iter()
            .copied()
            .filter(|setup| b == 0 || *setup != Setup::Entitlements)
            .collect()
    }
}

// --- the school's model ---

/// A course set's codes: its courses with the modules they imply (transitively).
fn codes_of(set: usize) -> BTreeSet<String> {
    let mut codes = BTreeSet::new();
    let mut todo: Vec<&str> = COURSE_SETS[set].to_vec();
    while let Some(code) = todo.pop() {
        if codes.insert(code.to_owned())
            && let Some((_, _, implies)) = CATALOGUE.iter().find(|(c, _, _)| *c == code)
        {
            todo.extend(implies.iter().copied());
        }
    }
    codes
}

/// `[[schools.courses]]` tables for [`CATALOGUE`].
fn catalogue_toml() -> String {
    let mut toml = String::new();
    for (code, title, implies) in CATALOGUE {
        let implies: Vec<String> = implies.iter().map(|c| format!("\"{c}\"")).collect();
        let _ = write!(
            toml,
            "\n[[schools.courses]]\ncode = \"{code}\"\ntitle = \"{title}\"\nimplies = [{}]\n",
            implies.join(", ")
        );
    }
    toml
}

fn user_name(i: usize) -> String {
    format!("y12.{i:06}")
}

/// Student `i`'s document: a user with the school extension's role `student`.
fn user_document(i: usize) -> String {
    json!({
        "schemas": [USER_URN, SCHOOL_USER],
        "userName": user_name(i),
        "externalId": format!("mis-{i:06}"),
        "name": {
            "givenName": format!("Given{i}"),
            "familyName": format!("Family{i}"),
            "formatted": format!("Given{i} Family{i}"),
        },
        "emails": [{ "type": "work", "value": format!("s{i:06}@mail.bench.example"), "primary": true }],
        "active": true,
        SCHOOL_USER: { "role": "student", "yearGroup": "12", "studentNumber": format!("S{i:06}") },
    })
    .to_string()
}

fn group_name(g: usize) -> String {
    format!("12-{g:03}")
}

fn group_set(g: usize) -> usize {
    g % COURSE_SETS.len()
}

/// The school as made: ids in the order of the model (students first, then loners).
struct School {
    /// Students in groups: student `i` starts in group `i / group_size`.
    students: Vec<String>,
    loners: Vec<String>,
    groups: Vec<String>,
    group_size: usize,
    /// Each group's members' ids, sorted (as made; reads do not change them).
    members: Vec<Vec<String>>,
}

impl School {
    fn group_of(&self, student: usize) -> usize {
        student / self.group_size
    }
}

// --- requests ---

/// One request's outcome as the checks see it.
type Check<T> = Arc<dyn Fn(usize, StatusCode, &[u8]) -> Result<T, String> + Send + Sync>;
type Build = Arc<dyn Fn(&reqwest::Client, usize) -> reqwest::RequestBuilder + Send + Sync>;

/// What one batch of requests measured.
struct Driven<T> {
    wall: Duration,
    /// Sorted.
    latencies: Vec<Duration>,
    /// `(k, what the check returned)`, in no particular order.
    outputs: Vec<(usize, T)>,
}

/// Sends requests `0..count` from one worker per client (workers take numbers from a shared
/// counter), each built by `build` and checked by `check`. Fails on any wrong answer.
async fn drive<T: Send + 'static>(
    label: &str,
    clients: Vec<reqwest::Client>,
    count: usize,
    build: Build,
    check: Check<T>,
) -> anyhow::Result<Driven<T>> {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for http in clients {
        let (next, build, check) = (next.clone(), build.clone(), check.clone());
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut outputs = Vec::new();
            let mut failures = Vec::new();
            let mut failed = 0usize;
            loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                if k >= count {
                    break;
                }
                let sent = Instant::now();
                let outcome = match build(&http, k).send().await {
                    Ok(response) => {
                        let status = response.status();
                        response.bytes().await.map(|body| (status, body))
                    }
                    Err(error) => Err(error),
                };
                latencies.push(sent.elapsed());
                let checked = match outcome {
                    Err(error) => Err(format!("request {k} failed: {}", chain(&error))),
                    Ok((status, body)) => check(k, status, &body).map_err(|why| {
                        format!(
                            "request {k}: {why}; {status}: {:.300}",
                            String::from_utf8_lossy(&body)
                        )
                    }),
                };
                match checked {
                    Ok(output) => outputs.push((k, output)),
                    Err(why) => {
                        failed += 1;
                        if failures.len() < 3 {
                            failures.push(why);
                        }
                    }
                }
            }
            (latencies, outputs, failed, failures)
        }));
    }
    let mut latencies = Vec::with_capacity(count);
    let mut outputs = Vec::with_capacity(count);
    let (mut failed, mut failures) = (0, Vec::new());
    for worker in workers {
        let (mut l, mut o, f, mut why) = worker.await.context("a client worker panicked")?;
        latencies.append(&mut l);
        outputs.append(&mut o);
        failed += f;
        failures.append(&mut why);
    }
    let wall = started.elapsed();
    if failed > 0 {
        failures.truncate(5);
        bail!(
            "{label}: {failed} of {count} answers were wrong; first ones:\n  {}",
            failures.join("\n  ")
        );
    }
    latencies.sort_unstable();
    Ok(Driven {
        wall,
        latencies,
        outputs,
    })
}

fn parse(body: &[u8]) -> Result<Value, String> {
    serde_json::from_slice(body).map_err(|e| format!("the body is not JSON ({e})"))
}

fn text<'v>(document: &'v Value, pointer: &str) -> Option<&'v str> {
    document.pointer(pointer).and_then(Value::as_str)
}

/// The `value`s of a list attribute (none when absent).
fn values(list: Option<&Value>) -> Vec<String> {
    list.and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(|item| item.get("value").and_then(Value::as_str))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// The ids from the answers of a batch of creations, in request order.
fn ids_in_order(
    label: &str,
    count: usize,
    outputs: Vec<(usize, String)>,
) -> anyhow::Result<Vec<String>> {
    let mut outputs = outputs;
    outputs.sort_unstable();
    ensure!(
        outputs.len() == count && outputs.iter().enumerate().all(|(n, (k, _))| n == *k),
        "{label}: not one id per request"
    );
    Ok(outputs.into_iter().map(|(_, id)| id).collect())
}

/// Makes the school through SCIM: every user (`students` in groups, then `loners`), then
/// every group with its courses and members. Every answer is checked.
async fn make_school(
    base: &str,
    token: &str,
    settings: &Settings,
    loners: usize,
) -> anyhow::Result<School> {
    let (students, size) = (settings.students(), settings.group_size);
    let users = students + loners;
    let (base, token) = (Arc::new(base.to_owned()), Arc::new(token.to_owned()));
    let build: Build = {
        let (base, token) = (base.clone(), token.clone());
        Arc::new(move |http, k| {
            http.post(format!("{base}/Users"))
                .bearer_auth(token.as_str())
                .header("content-type", "application/scim+json")
                .body(user_document(k))
        })
    };
    let check: Check<String> = Arc::new(|k, status, body| {
        let document = parse(body)?;
        if status != StatusCode::CREATED || text(&document, "/userName") != Some(&user_name(k)) {
            return Err("not 201 with the user".into());
        }
        text(&document, "/id")
            .map(str::to_owned)
            .ok_or_else(|| "no id".into())
    });
    let created = drive(
        "POST /Users",
        clients(settings.connections)?,
        users,
        build,
        check,
    )
    .await?;
    let mut ids = ids_in_order("POST /Users", users, created.outputs)?;
    let loner_ids = ids.split_off(students);
    let student_ids = Arc::new(ids);

    let build: Build = {
        let (base, token, student_ids) = (base.clone(), token.clone(), student_ids.clone());
        Arc::new(move |http, g| {
            let courses: Vec<Value> = COURSE_SETS[group_set(g)]
                .iter()
                .map(|c| json!({ "value": c }))
                .collect();
            let members: Vec<Value> = student_ids[g * size..(g + 1) * size]
                .iter()
                .map(|id| json!({ "value": id }))
                .collect();
            http.post(format!("{base}/Groups"))
                .bearer_auth(token.as_str())
                .header("content-type", "application/scim+json")
                .body(
                    json!({
                        "schemas": [GROUP_URN, SCHOOL_GROUP],
                        "displayName": group_name(g),
                        "members": members,
                        SCHOOL_GROUP: { "courses": courses },
                    })
                    .to_string(),
                )
        })
    };
    let check: Check<String> = {
        let student_ids = student_ids.clone();
        Arc::new(move |g, status, body| {
            let document = parse(body)?;
            if status != StatusCode::CREATED
                || text(&document, "/displayName") != Some(&group_name(g))
            {
                return Err("not 201 with the group".into());
            }
            let mut members = values(document.get("members"));
            members.sort_unstable();
            let mut want = student_ids[g * size..(g + 1) * size].to_vec();
            want.sort_unstable();
            if members != want {
                return Err("not the members sent".into());
            }
            let codes: BTreeSet<String> = values(
                document
                    .get(SCHOOL_GROUP)
                    .and_then(|extension| extension.get("courses")),
            )
            .into_iter()
            .collect();
            if codes != codes_of(group_set(g)) {
                return Err(format!(
                    "courses {codes:?}, not {:?} (the set with its implied modules)",
                    codes_of(group_set(g))
                ));
            }
            text(&document, "/id")
                .map(str::to_owned)
                .ok_or_else(|| "no id".into())
        })
    };
    let created = drive(
        "POST /Groups",
        clients(settings.connections)?,
        settings.groups,
        build,
        check,
    )
    .await?;
    let groups = ids_in_order("POST /Groups", settings.groups, created.outputs)?;
    let members = (0..settings.groups)
        .map(|g| {
            let mut ids = student_ids[g * size..(g + 1) * size].to_vec();
            ids.sort_unstable();
            ids
        })
        .collect();
    Ok(School {
        students: Arc::try_unwrap(student_ids).unwrap_or_else(|ids| (*ids).clone()),
        loners: loner_ids,
        groups,
        group_size: size,
        members,
    })
}

/// Whether the binary's school User extension declares `courses` (`GET /Schemas/{urn}`).
async fn serves_courses(http: &reqwest::Client, base: &str, token: &str) -> anyhow::Result<bool> {
    let response = http
        .get(format!("{base}/Schemas/{SCHOOL_USER}"))
        .bearer_auth(token)
        .send()
        .await
        .map_err(|e| anyhow!("GET /Schemas/{SCHOOL_USER}: {}", chain(&e)))?;
    let status = response.status();
    let body = response.bytes().await?;
    ensure!(
        status == StatusCode::OK,
        "GET /Schemas/{SCHOOL_USER}: {status}: {:.300}",
        String::from_utf8_lossy(&body)
    );
    let schema: Value = serde_json::from_slice(&body)?;
    Ok(schema
        .get("attributes")
        .and_then(Value::as_array)
        .is_some_and(|attributes| {
            attributes
                .iter()
                .any(|a| a.get("name").and_then(Value::as_str) == Some("courses"))
        }))
}

// --- reads ---

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Read {
    Student,
    Loner,
    Class,
}

impl Read {
    const ALL: [Read; 3] = [Read::Student, Read::Loner, Read::Class];

    fn label(self) -> &'static str {
        match self {
            Read::Student => "GET /Users/{id} in a group",
            Read::Loner => "GET /Users/{id} in none",
            Read::Class => "GET class list",
        }
    }

    fn salt(self) -> u64 {
        match self {
            Read::Student => STUDENT_SALT,
            Read::Loner => LONER_SALT,
            Read::Class => CLASS_SALT,
        }
    }
}

fn pick(salt: u64, k: usize, len: usize) -> usize {
    (splitmix64(SEED ^ salt ^ k as u64) % len as u64) as usize
}

/// Checks one user document of a student: `group` is the group they are in (`None`: none).
/// Returns whether it carried `courses`.
fn check_student(
    document: &Value,
    id: &str,
    group: Option<(&str, usize)>,
    has_courses: bool,
) -> Result<bool, String> {
    if text(document, "/id") != Some(id) {
        return Err(format!("not user {id}"));
    }
    let groups = values(document.get("groups"));
    let courses = document
        .get(SCHOOL_USER)
        .and_then(|extension| extension.get("courses"));
    match group {
        None => {
            if !groups.is_empty() || courses.is_some() {
                return Err("a student in no group with groups or courses".into());
            }
            Ok(false)
        }
        Some((group, set)) => {
            if groups != [group] {
                return Err(format!("groups {groups:?}, not [{group}]"));
            }
            let Some(courses) = courses else {
                if has_courses {
                    return Err("no courses, though the binary declares them".into());
                }
                return Ok(false);
            };
            if !has_courses {
                return Err("courses, though the binary does not declare them".into());
            }
            let codes = values(Some(courses));
            let want: Vec<String> = codes_of(set).into_iter().collect();
            if codes != want {
                return Err(format!("courses {codes:?}, not {want:?}"));
            }
            let through_group = courses.as_array().is_some_and(|list| {
                list.iter()
                    .all(|course| course.get("groups") == Some(&json!([group])))
            });
            if !through_group {
                return Err(format!("courses not all through group {group}"));
            }
            Ok(true)
        }
    }
}

/// The request and the check of read `k` (with `salt` choosing the targets).
fn read_request(
    read: Read,
    school: &Arc<School>,
    base: &Arc<String>,
    token: &Arc<String>,
    has_courses: bool,
    salt: u64,
) -> (Build, Check<(usize, usize)>) {
    let build: Build = {
        let (school, base, token) = (school.clone(), base.clone(), token.clone());
        Arc::new(move |http, k| {
            let url = match read {
                Read::Student => {
                    let i = pick(salt, k, school.students.len());
                    format!("{base}/Users/{}", school.students[i])
                }
                Read::Loner => {
                    let i = pick(salt, k, school.loners.len());
                    format!("{base}/Users/{}", school.loners[i])
                }
                Read::Class => {
                    let g = pick(salt, k, school.groups.len());
                    let filter = format!("groups.value eq \"{}\"", school.groups[g]);
                    let filter: String =
                        form_urlencoded::byte_serialize(filter.as_bytes()).collect();
                    format!("{base}/Users?filter={filter}&count={}", school.group_size)
                }
            };
            http.get(url).bearer_auth(token.as_str())
        })
    };
    let check: Check<(usize, usize)> = {
        let school = school.clone();
        Arc::new(move |k, status, body| {
            if status != StatusCode::OK {
                return Err("not 200".into());
            }
            let document = parse(body)?;
            match read {
                Read::Student => {
                    let i = pick(salt, k, school.students.len());
                    let g = school.group_of(i);
                    let group = Some((school.groups[g].as_str(), group_set(g)));
                    let with = check_student(&document, &school.students[i], group, has_courses)?;
                    Ok((1, usize::from(with)))
                }
                Read::Loner => {
                    let i = pick(salt, k, school.loners.len());
                    check_student(&document, &school.loners[i], None, has_courses)?;
                    Ok((1, 0))
                }
                Read::Class => {
                    let g = pick(salt, k, school.groups.len());
                    let want = &school.members[g];
                    if document.get("totalResults").and_then(Value::as_u64)
                        != Some(want.len() as u64)
                    {
                        return Err(format!("totalResults is not {}", want.len()));
                    }
                    let resources = document
                        .get("Resources")
                        .and_then(Value::as_array)
                        .ok_or("no Resources")?;
                    let mut ids: Vec<&str> = resources
                        .iter()
                        .filter_map(|r| r.get("id").and_then(Value::as_str))
                        .collect();
                    ids.sort_unstable();
                    if ids != want.iter().map(String::as_str).collect::<Vec<_>>() {
                        return Err(format!("not the members of group {g}"));
                    }
                    let group = Some((school.groups[g].as_str(), group_set(g)));
                    let mut with = 0;
                    for resource in resources {
                        let id = text(resource, "/id").unwrap_or_default();
                        with += usize::from(check_student(resource, id, group, has_courses)?);
                    }
                    Ok((resources.len(), with))
                }
            }
        })
    };
    (build, check)
}

// --- figures ---

/// One workload of one setup on one binary in one round.
struct Measured {
    binary: usize,
    setup: Setup,
    workload: &'static str,
    requests: usize,
    wall: Duration,
    /// Sorted.
    latencies: Vec<Duration>,
    cpu: Cpu,
    /// Reads: user documents checked, and how many carried `courses`.
    courses: Option<(usize, usize)>,
    /// Writes: events of the workload received by type, and how long after the last PATCH's
    /// answer the last one arrived.
    events: Option<(BTreeMap<String, usize>, Duration)>,
}

impl Measured {
    fn per_second(&self) -> f64 {
        self.requests as f64 / self.wall.as_secs_f64()
    }
}

/// Rollcall's CPU per request, in ms.
fn per_request(cpu: Option<Duration>, requests: usize) -> String {
    cpu.map_or_else(
        || "?".into(),
        |cpu| format!("{:.3}", ms(cpu) / requests as f64),
    )
}

fn header_row() -> String {
    format!(
        "{:>5} {:<8} {:<12} {:<26} {:>6} {:>7} {:>8} {:>7} {:>7} {:>8} {:>8} {:>6} {:>8} {:>6}  checked",
        "round",
        "binary",
        "setup",
        "workload",
        "reqs",
        "wall s",
        "req/s",
        "p50 ms",
        "p99 ms",
        "rollcall",
        "ms/req",
        "client",
        "receiver",
        "other"
    )
}

fn events_text(events: &BTreeMap<String, usize>) -> String {
    events
        .iter()
        .map(|(kind, n)| format!("{n} {kind}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Measured {
    fn row(&self, round: usize, settings: &Settings) -> String {
        let checked = match (&self.courses, &self.events) {
            (Some((docs, with)), _) => format!("courses in {with} of {docs} users"),
            (_, Some((events, drain))) => format!(
                "{}; drained {:.0} ms after",
                events_text(events),
                ms(*drain)
            ),
            _ => String::new(),
        };
        format!(
            "{:>5} {:<8} {:<12} {:<26} {:>6} {:>7.2} {:>8.1} {:>7.2} {:>7.2} {:>8} {:>8} {:>6} {:>8} {:>6}  {}",
            round,
            settings.binaries[self.binary].0,
            self.setup.label(),
            self.workload,
            self.requests,
            self.wall.as_secs_f64(),
            self.per_second(),
            ms(percentile(&self.latencies, 50.0)),
            ms(percentile(&self.latencies, 99.0)),
            percent(self.cpu.rollcall, self.wall),
            per_request(self.cpu.rollcall, self.requests),
            percent(self.cpu.client, self.wall),
            percent(self.cpu.receiver, self.wall),
            percent(self.cpu.other, self.wall),
            checked,
        )
    }
}

// --- the receiver ---

#[derive(Default)]
struct Received {
    /// Event ids seen.
    ids: HashSet<String>,
    /// First arrivals by type.
    by_type: BTreeMap<String, usize>,
    /// Per student (`data.user`), the events in the order they came, as [`membership_line`]
    /// and [`entitlements_line`] write them.
    per_user: HashMap<String, Vec<String>>,
    duplicates: usize,
    /// Bodies that could not be read (the first few), and how many.
    refusals: Vec<String>,
    refused: usize,
}

struct Shared {
    received: Mutex<Received>,
    /// First arrivals so far, readable without the lock.
    unique: AtomicUsize,
}

/// An HTTP server on 127.0.0.1 on a runtime of its own that answers 204; stopped when dropped.
struct Receiver {
    url: String,
    shared: Arc<Shared>,
    runtime: Option<tokio::runtime::Runtime>,
}

fn membership_line(change: &str, group: &str) -> String {
    format!("{MEMBERSHIP} {change} {group}")
}

fn entitlements_line(now: &BTreeSet<String>, added: &[String], removed: &[String]) -> String {
    let join = |codes: Vec<&str>| codes.join(",");
    format!(
        "{ENTITLEMENTS} now [{}] +[{}] -[{}]",
        join(now.iter().map(String::as_str).collect()),
        join(added.iter().map(String::as_str).collect()),
        join(removed.iter().map(String::as_str).collect()),
    )
}

fn poisoned() -> anyhow::Error {
    anyhow!("the receiver's state is poisoned (a handler panicked)")
}

impl Receiver {
    fn start() -> anyhow::Result<Receiver> {
        let shared = Arc::new(Shared {
            received: Mutex::default(),
            unique: AtomicUsize::new(0),
        });
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(receive))
            .with_state(shared.clone());
        let (runtime, address) = common::serve_apart("entitlements", RECEIVER_THREAD, app)?;
        let url = format!("http://{address}/hook");
        Ok(Receiver {
            url,
            shared,
            runtime: Some(runtime),
        })
    }

    fn unique(&self) -> usize {
        self.shared.unique.load(Ordering::Acquire)
    }

    /// Waits until `count` events have arrived (fails after [`DELIVERY_DEADLINE`]); returns
    /// when the last of them did.
    async fn wait_for(&self, count: usize, instance: &mut Instance) -> anyhow::Result<Instant> {
        let deadline = Instant::now() + DELIVERY_DEADLINE;
        while self.unique() < count {
            instance.check_running()?;
            if Instant::now() > deadline {
                bail!(
                    "after {} s only {} of {count} events had arrived; the end of rollcall's \
                     log:\n{}",
                    DELIVERY_DEADLINE.as_secs(),
                    self.unique(),
                    instance.log_tail(20)
                );
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        Ok(Instant::now())
    }

    /// Checks that exactly the expected events arrived, per student and in order, and that
    /// nothing was unreadable; returns the count by type.
    fn check(
        &self,
        expected: &HashMap<String, Vec<String>>,
    ) -> anyhow::Result<(BTreeMap<String, usize>, usize)> {
        let received = self.shared.received.lock().map_err(|_| poisoned())?;
        ensure!(
            received.refused == 0,
            "the receiver could not read {} events: {:?}",
            received.refused,
            received.refusals
        );
        let mut wrong = Vec::new();
        let none = Vec::new();
        for (user, want) in expected {
            let got = received.per_user.get(user).unwrap_or(&none);
            if got != want {
                wrong.push(format!("student {user}: got {got:?}, want {want:?}"));
            }
        }
        for (user, got) in &received.per_user {
            if !expected.contains_key(user) {
                wrong.push(format!("events about an unknown user {user}: {got:?}"));
            }
        }
        ensure!(
            wrong.is_empty(),
            "{} students' events were not the expected ones; first ones:\n  {}",
            wrong.len(),
            wrong
                .iter()
                .take(3)
                .map(|w| format!("{w:.600}"))
                .collect::<Vec<_>>()
                .join("\n  ")
        );
        Ok((received.by_type.clone(), received.duplicates))
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            // Drops the server and every request in it; allowed inside the benchmark's runtime.
            runtime.shutdown_background();
        }
    }
}

async fn receive(State(shared): State<Arc<Shared>>, body: Bytes) -> StatusCode {
    let Ok(mut received) = shared.received.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR;
    };
    match read_event(&body) {
        Ok((id, kind, user, line)) => {
            if received.ids.insert(id) {
                *received.by_type.entry(kind).or_default() += 1;
                received.per_user.entry(user).or_default().push(line);
                shared.unique.fetch_add(1, Ordering::Release);
            } else {
                received.duplicates += 1;
            }
            StatusCode::NO_CONTENT
        }
        Err(why) => {
            received.refused += 1;
            if received.refusals.len() < 5 {
                received.refusals.push(why);
            }
            StatusCode::BAD_REQUEST
        }
    }
}

/// An event's id, type, student and line (see [`Received::per_user`]).
fn read_event(body: &[u8]) -> Result<(String, String, String, String), String> {
    let event = parse(body)?;
    let id = text(&event, "/id").ok_or("no id")?.to_owned();
    let kind = text(&event, "/type").ok_or("no type")?.to_owned();
    let user = text(&event, "/data/user")
        .ok_or_else(|| format!("event {id}: no data.user"))?
        .to_owned();
    let codes = |pointer: &str| -> Vec<String> {
        event
            .pointer(pointer)
            .and_then(Value::as_array)
            .map(|list| {
                list.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };
    let line = match kind.as_str() {
        MEMBERSHIP => membership_line(
            text(&event, "/data/change").unwrap_or("?"),
            text(&event, "/data/group/id").unwrap_or("?"),
        ),
        ENTITLEMENTS => {
            let now: BTreeSet<String> = event
                .pointer("/data/entitlements")
                .and_then(Value::as_array)
                .map(|list| {
                    list.iter()
                        .filter_map(|e| e.get("code").and_then(Value::as_str))
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default();
            entitlements_line(&now, &codes("/data/added"), &codes("/data/removed"))
        }
        other => format!("{other} (not wanted)"),
    };
    Ok((id, kind, user, line))
}

/// A fresh random secret in the `whsec_` form (the receiver does not check signatures).
fn new_secret() -> anyhow::Result<String> {
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).map_err(|e| anyhow!("no randomness for the secret: {e}"))?;
    Ok(format!("whsec_{}", STANDARD.encode(key)))
}

// --- moves ---

/// One move: student `student` from group `from` to group `to`.
#[derive(Debug, Clone, Copy)]
struct Move {
    student: usize,
    from: usize,
    to: usize,
}

/// The moves of each connection (move `k` is connection `k % connections`'s; connection `c`
/// moves only students `i % connections == c`), each student's expected events from the
/// school's making to the last move, and how many of the PATCHes change a student's codes.
fn plan(
    settings: &Settings,
    school: &School,
    setup: Setup,
) -> (Vec<Vec<Move>>, Vec<Vec<String>>, usize) {
    let connections = settings.connections;
    let partitions: Vec<Vec<usize>> = (0..connections)
        .map(|c| (c..school.students.len()).step_by(connections).collect())
        .collect();
    let mut at: Vec<usize> = (0..school.students.len())
        .map(|i| school.group_of(i))
        .collect();
    let entitlements = setup == Setup::Entitlements;
    let mut expected: Vec<Vec<String>> = at
        .iter()
        .map(|&g| {
            let mut events = vec![membership_line("added", &school.groups[g])];
            if entitlements {
                let now = codes_of(group_set(g));
                let added: Vec<String> = now.iter().cloned().collect();
                events.push(entitlements_line(&now, &added, &[]));
            }
            events
        })
        .collect();
    let mut moves = vec![Vec::new(); connections];
    let mut changing = 0;
    for k in 0..settings.moves {
        let c = k % connections;
        let Some(&student) = partitions[c].get(pick(MOVE_SALT, k, partitions[c].len().max(1)))
        else {
            continue;
        };
        let from = at[student];
        let others: Vec<usize> = (0..school.groups.len())
            .filter(|&g| group_set(g) != group_set(from))
            .collect();
        let to = others[pick(MOVE_SALT ^ 1, k, others.len())];
        at[student] = to;
        let events = &mut expected[student];
        events.push(membership_line("removed", &school.groups[from]));
        let (old, new) = (codes_of(group_set(from)), codes_of(group_set(to)));
        // The student is in no other group: leaving one changes their codes if it had any,
        // joining one if it has any.
        changing += usize::from(!old.is_empty()) + usize::from(!new.is_empty());
        if entitlements && !old.is_empty() {
            events.push(entitlements_line(
                &BTreeSet::new(),
                &[],
                &old.iter().cloned().collect::<Vec<_>>(),
            ));
        }
        events.push(membership_line("added", &school.groups[to]));
        if entitlements && !new.is_empty() {
            events.push(entitlements_line(
                &new,
                &new.iter().cloned().collect::<Vec<_>>(),
                &[],
            ));
        }
        moves[c].push(Move { student, from, to });
    }
    (moves, expected, changing)
}

fn patch_body(op: &str, student: &str) -> String {
    let operation = match op {
        "add" => json!({ "op": "add", "path": "members", "value": [{ "value": student }] }),
        _ => json!({ "op": "remove", "path": format!("members[value eq \"{student}\"]") }),
    };
    json!({ "schemas": [PATCH_URN], "Operations": [operation] }).to_string()
}

/// Makes each connection's moves, one after the other, two PATCHes each; every answer must be
/// 200 with the group and the student out of (then in) its `members`.
async fn run_moves(
    base: &str,
    token: &str,
    school: &Arc<School>,
    clients: Vec<reqwest::Client>,
    moves: Vec<Vec<Move>>,
) -> anyhow::Result<(Duration, Vec<Duration>)> {
    let started = Instant::now();
    let mut workers = Vec::new();
    for (http, moves) in clients.into_iter().zip(moves) {
        let (base, token, school) = (base.to_owned(), token.to_owned(), school.clone());
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(2 * moves.len());
            for step in moves {
                let student = &school.students[step.student];
                for (op, group) in [("remove", step.from), ("add", step.to)] {
                    let group = &school.groups[group];
                    let sent = Instant::now();
                    let response = http
                        .patch(format!("{base}/Groups/{group}"))
                        .bearer_auth(&token)
                        .header("content-type", "application/scim+json")
                        .body(patch_body(op, student))
                        .send()
                        .await
                        .map_err(|e| format!("PATCH {op} {student}: {}", chain(&e)))?;
                    let status = response.status();
                    let body = response
                        .bytes()
                        .await
                        .map_err(|e| format!("PATCH {op} {student}: {}", chain(&e)))?;
                    latencies.push(sent.elapsed());
                    let fits = parse(&body).is_ok_and(|document| {
                        let members = values(document.get("members"));
                        text(&document, "/id") == Some(group.as_str())
                            && members.contains(student) == (op == "add")
                    });
                    if status != StatusCode::OK || !fits {
                        return Err(format!(
                            "PATCH {op} student {student} of group {group}: {status}: {:.300}",
                            String::from_utf8_lossy(&body)
                        ));
                    }
                }
            }
            Ok(latencies)
        }));
    }
    let mut latencies = Vec::new();
    let mut failures = Vec::new();
    for worker in workers {
        match worker.await.context("a client worker panicked")? {
            Ok(mut l) => latencies.append(&mut l),
            Err(why) => failures.push(why),
        }
    }
    let wall = started.elapsed();
    ensure!(
        failures.is_empty(),
        "{} connections got a wrong answer; first ones:\n  {}",
        failures.len(),
        failures
            .iter()
            .take(3)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n  ")
    );
    latencies.sort_unstable();
    Ok((wall, latencies))
}

// --- one setup ---

/// One setup from scratch on binary `b`: directory, receiver, daemon, the school, the
/// workloads, the checks. Everything it started is stopped before it returns.
async fn run_setup(
    settings: &Settings,
    b: usize,
    setup: Setup,
    round: usize,
    http: &reqwest::Client,
) -> anyhow::Result<Vec<Measured>> {
    let dir = tempfile::Builder::new()
        .prefix("rollcall-entitlements-bench-")
        .tempdir()
        .context("cannot create a temporary directory")?;
    let mut extra = catalogue_toml();
    // Declared before the instance, so that the instance is killed first.
    let receiver = if setup.events().is_empty() {
        None
    } else {
        let secret_file = dir.path().join("webhook.secret");
        std::fs::write(&secret_file, format!("{}\n", new_secret()?))?;
        let receiver = Receiver::start()?;
        let events: Vec<String> = setup.events().iter().map(|e| format!("\"{e}\"")).collect();
        let _ = write!(
            extra,
            "\n[[webhooks]]\nid = \"platform\"\nurl = \"{}\"\nsecret_file = \"{}\"\n\
             events = [{}]\ntimeout_secs = 10\nmax_attempts = 100\nretry_initial_ms = 100\n\
             retry_max_secs = 1\n",
            receiver.url,
            secret_file.display(),
            events.join(", ")
        );
        Some(receiver)
    };
    let config = write_config(dir.path(), &extra)?;
    let binary = &settings.binaries[b].1;
    let token = create_token(binary, &config, None)?;
    let log = dir.path().join("rollcall.log");
    let mut instance = start_instance(binary, &config, None, log, http).await?;
    let base = instance.base.clone();
    let loners = if setup == Setup::Reads {
        settings.loners
    } else {
        0
    };
    let made = Instant::now();
    let school = Arc::new(
        make_school(&base, &token, settings, loners)
            .await
            .with_context(|| format!("round {round}, {}: making the school", setup.label()))?,
    );
    let made = made.elapsed();
    let mut results = Vec::new();

    if setup == Setup::Reads {
        ensure!(
            !school.loners.is_empty() || settings.loners == 0,
            "no loners were made"
        );
        let has_courses = serves_courses(http, &base, &token).await?;
        println!(
            "{:>5} {:<8} {:<12} made {} students in {} groups and {} in none in {:.1} s; the \
             binary {} `courses`",
            round,
            settings.binaries[b].0,
            setup.label(),
            school.students.len(),
            school.groups.len(),
            school.loners.len(),
            made.as_secs_f64(),
            if has_courses {
                "declares"
            } else {
                "does not declare"
            }
        );
        let (base, token) = (Arc::new(base.clone()), Arc::new(token.clone()));
        for read in Read::ALL {
            if read == Read::Loner && school.loners.is_empty() {
                continue;
            }
            let label = read.label();
            if settings.warmup > 0 {
                let (build, check) = read_request(
                    read,
                    &school,
                    &base,
                    &token,
                    has_courses,
                    read.salt() ^ WARMUP_SALT,
                );
                drive(
                    label,
                    clients(settings.connections)?,
                    settings.warmup,
                    build,
                    check,
                )
                .await
                .with_context(|| format!("round {round}, warm-up"))?;
            }
            let (build, check) =
                read_request(read, &school, &base, &token, has_courses, read.salt());
            let connections = clients(settings.connections)?;
            let before = CpuSnapshot::take(instance.pid(), RECEIVER_THREAD);
            let count = if read == Read::Class {
                settings.list_reads
            } else {
                settings.reads
            };
            let driven = drive(label, connections, count, build, check)
                .await
                .with_context(|| format!("round {round}, {}", settings.binaries[b].0))?;
            let cpu = CpuSnapshot::take(instance.pid(), RECEIVER_THREAD).since(&before);
            let docs = driven.outputs.iter().map(|(_, (d, _))| d).sum();
            let with = driven.outputs.iter().map(|(_, (_, w))| w).sum();
            let measured = Measured {
                binary: b,
                setup,
                workload: label,
                requests: count,
                wall: driven.wall,
                latencies: driven.latencies,
                cpu,
                courses: Some((docs, with)),
                events: None,
            };
            println!("{}", measured.row(round, settings));
            results.push(measured);
        }
        instance.check_running()?;
        return Ok(results);
    }

    let receiver = receiver.ok_or_else(|| anyhow!("a write setup without its receiver"))?;
    let (moves, expected, changing) = plan(settings, &school, setup);
    // Making the school gave each student one event of each type the webhook wants.
    let per_student = setup.events().len();
    let made_events = per_student * school.students.len();
    receiver
        .wait_for(made_events, &mut instance)
        .await
        .with_context(|| format!("round {round}, {}: the school's events", setup.label()))?;
    let before_workload = receiver.check(
        &expected
            .iter()
            .enumerate()
            .map(|(i, events)| (school.students[i].clone(), events[..per_student].to_vec()))
            .collect(),
    );
    let (made_by_type, _) = before_workload
        .with_context(|| format!("round {round}, {}: the school's events", setup.label()))?;
    println!(
        "{:>5} {:<8} {:<12} made {} students in {} groups in {:.1} s: {}",
        round,
        settings.binaries[b].0,
        setup.label(),
        school.students.len(),
        school.groups.len(),
        made.as_secs_f64(),
        events_text(&made_by_type),
    );
    let patches: usize = moves.iter().map(Vec::len).sum::<usize>() * 2;
    let total: usize = expected.iter().map(Vec::len).sum();
    // Built before the clock starts: each loads the system's CA certificates.
    let connections = clients(moves.len())?;
    let before = CpuSnapshot::take(instance.pid(), RECEIVER_THREAD);
    let (wall, latencies) = run_moves(&base, &token, &school, connections, moves)
        .await
        .with_context(|| format!("round {round}, {}", setup.label()))?;
    let cpu = CpuSnapshot::take(instance.pid(), RECEIVER_THREAD).since(&before);
    let written = Instant::now();
    let drained = receiver
        .wait_for(total, &mut instance)
        .await
        .with_context(|| format!("round {round}, {}: the moves' events", setup.label()))?;
    tokio::time::sleep(QUIET).await;
    instance.check_running()?;
    let expected: HashMap<String, Vec<String>> = expected
        .into_iter()
        .enumerate()
        .map(|(i, events)| (school.students[i].clone(), events))
        .collect();
    let (by_type, _duplicates) = receiver
        .check(&expected)
        .with_context(|| format!("round {round}, {}", setup.label()))?;
    let workload_events: BTreeMap<String, usize> = by_type
        .iter()
        .map(|(kind, n)| {
            let made = made_by_type.get(kind).copied().unwrap_or_default();
            (kind.clone(), n - made)
        })
        .collect();
    let want_entitlements = if setup == Setup::Entitlements {
        changing
    } else {
        0
    };
    ensure!(
        workload_events.get(MEMBERSHIP).copied().unwrap_or_default() == patches
            && workload_events
                .get(ENTITLEMENTS)
                .copied()
                .unwrap_or_default()
                == want_entitlements,
        "round {round}, {}: {patches} PATCHes, {changing} of them changing a student's codes, \
         gave {}",
        setup.label(),
        events_text(&workload_events)
    );
    let measured = Measured {
        binary: b,
        setup,
        workload: "PATCH /Groups members",
        requests: patches,
        wall,
        latencies,
        cpu,
        courses: None,
        events: Some((workload_events, drained.saturating_duration_since(written))),
    };
    println!("{}", measured.row(round, settings));
    results.push(measured);
    drop(instance);
    Ok(results)
}

// --- the run ---

async fn run() -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    println!("entitlements bench: {settings:?}");
    println!(
        "machine: {} CPUs ({}); client, receiver and rollcall all share them; load {}",
        cpus(),
        cpu_model(),
        loadavg()
    );
    for (label, binary) in &settings.binaries {
        println!(
            "{label}: {} on SQLite (a file in a temporary directory per setup)",
            binary.display()
        );
    }
    println!(
        "school: {} groups of {} students, courses by group {:?}, catalogue {:?}; {} students \
         in no group (reads only); generate_for_scim = false, so nothing is hashed",
        settings.groups,
        settings.group_size,
        COURSE_SETS,
        CATALOGUE
            .iter()
            .map(|(code, _, implies)| format!("{code}→{implies:?}"))
            .collect::<Vec<_>>(),
        settings.loners,
    );
    println!(
        "workloads: {} reads of one user and {} class lists (each after {} unmeasured), {} moves \
         (2 PATCHes each), over {} keep-alive connections; {} rounds of {}\n",
        settings.reads,
        settings.list_reads,
        settings.warmup,
        settings.moves,
        settings.connections,
        settings.rounds,
        (0..settings.binaries.len())
            .flat_map(|b| {
                settings
                    .setups(b)
                    .into_iter()
                    .map(move |s| (b, s))
                    .collect::<Vec<_>>()
            })
            .map(|(b, s)| format!("{} {}", settings.binaries[b].0, s.label()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("{}", header_row());
    let http = client()?;
    let mut measured: Vec<Measured> = Vec::new();
    for round in 1..=settings.rounds {
        // With a baseline, every other round starts with it, so neither binary always runs
        // first.
        let mut order: Vec<usize> = (0..settings.binaries.len()).collect();
        if round % 2 == 0 {
            order.reverse();
        }
        for b in order {
            for setup in settings.setups(b) {
                measured.extend(run_setup(&settings, b, setup, round, &http).await?);
            }
        }
    }
    print!("{}", summary(&settings, &measured));
    println!("load at the end: {}", loadavg());
    Ok(())
}

fn summary(settings: &Settings, measured: &[Measured]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n=== summary ({} rounds; req/s the median of the rounds, p50/p99 over every round's \
         requests) ===",
        settings.rounds
    );
    let _ = writeln!(
        out,
        "{:<8} {:<12} {:<26} {:>6} {:>8} {:>11} {:>7} {:>7} {:>8} {:>8} {:>6} {:>8} {:>6}  checked",
        "binary",
        "setup",
        "workload",
        "reqs",
        "req/s",
        "range",
        "p50 ms",
        "p99 ms",
        "rollcall",
        "ms/req",
        "client",
        "receiver",
        "other"
    );
    let mut keys: Vec<(usize, Setup, &'static str)> = Vec::new();
    for m in measured {
        if !keys.contains(&(m.binary, m.setup, m.workload)) {
            keys.push((m.binary, m.setup, m.workload));
        }
    }
    let rate = |key: (usize, Setup, &str)| -> f64 {
        median(
            measured
                .iter()
                .filter(|m| (m.binary, m.setup, m.workload) == key)
                .map(Measured::per_second)
                .collect(),
        )
    };
    let cpu_per_request = |key: (usize, Setup, &str)| -> Option<f64> {
        let runs: Vec<&Measured> = measured
            .iter()
            .filter(|m| (m.binary, m.setup, m.workload) == key)
            .collect();
        let cpu = runs
            .iter()
            .map(|m| m.cpu.rollcall)
            .fold(Some(Duration::ZERO), add)?;
        Some(ms(cpu) / runs.iter().map(|m| m.requests).sum::<usize>() as f64)
    };
    for &key in &keys {
        let runs: Vec<&Measured> = measured
            .iter()
            .filter(|m| (m.binary, m.setup, m.workload) == key)
            .collect();
        let mut latencies: Vec<Duration> = runs
            .iter()
            .flat_map(|m| m.latencies.iter().copied())
            .collect();
        latencies.sort_unstable();
        let wall: Duration = runs.iter().map(|m| m.wall).sum();
        let requests: usize = runs.iter().map(|m| m.requests).sum();
        let total = |pick: fn(&Cpu) -> Option<Duration>| {
            runs.iter()
                .map(|m| pick(&m.cpu))
                .fold(Some(Duration::ZERO), add)
        };
        let rates: Vec<f64> = runs.iter().map(|m| m.per_second()).collect();
        let checked = if runs[0].courses.is_some() {
            let (docs, with) = runs
                .iter()
                .filter_map(|m| m.courses)
                .fold((0, 0), |(d, w), (docs, with)| (d + docs, w + with));
            format!("courses in {with} of {docs} users")
        } else {
            let mut events: BTreeMap<String, usize> = BTreeMap::new();
            let mut drains = Vec::new();
            for m in &runs {
                if let Some((by_type, drain)) = &m.events {
                    for (kind, n) in by_type {
                        *events.entry(kind.clone()).or_default() += n;
                    }
                    drains.push(ms(*drain));
                }
            }
            format!(
                "{}; drained in {:.0} ms (median)",
                events_text(&events),
                median(drains)
            )
        };
        let _ = writeln!(
            out,
            "{:<8} {:<12} {:<26} {:>6} {:>8.1} {:>11} {:>7.2} {:>7.2} {:>8} {:>8} {:>6} {:>8} {:>6}  {}",
            settings.binaries[key.0].0,
            key.1.label(),
            key.2,
            requests,
            rate(key),
            spread(&rates),
            ms(percentile(&latencies, 50.0)),
            ms(percentile(&latencies, 99.0)),
            percent(total(|c| c.rollcall), wall),
            per_request(total(|c| c.rollcall), requests),
            percent(total(|c| c.client), wall),
            percent(total(|c| c.receiver), wall),
            percent(total(|c| c.other), wall),
            checked,
        );
    }
    let _ = writeln!(
        out,
        "legend: latencies client-side, send to last byte of the body; range = slowest-fastest \
         round; CPU = CPU time / wall time over every round (100% = one core); ms/req = \
         rollcall's CPU per request; client = this process less the receiver's threads, other \
         = the rest of the machine; events = every round's, of the moves only"
    );

    let _ = writeln!(
        out,
        "\nratios (medians of req/s; rollcall CPU per request):"
    );
    let moves = "PATCH /Groups members";
    let pair = |a: (usize, Setup, &'static str), b: (usize, Setup, &'static str)| {
        if keys.contains(&a) && keys.contains(&b) {
            let cpu = cpu_per_request(a)
                .zip(cpu_per_request(b))
                .map_or_else(|| "?".to_owned(), |(a, b)| format!("{:.2}x", a / b));
            Some((rate(a) / rate(b), cpu))
        } else {
            None
        }
    };
    if let Some((ratio, cpu)) = pair(
        (0, Setup::Entitlements, moves),
        (0, Setup::Membership, moves),
    ) {
        let _ = writeln!(
            out,
            "{:<52} req/s {:>6.2}x   CPU/req {:>6}",
            "moves: entitlements / membership only", ratio, cpu
        );
    }
    if settings.binaries.len() > 1 {
        for read in Read::ALL {
            if let Some((ratio, cpu)) = pair(
                (0, Setup::Reads, read.label()),
                (1, Setup::Reads, read.label()),
            ) {
                let _ = writeln!(
                    out,
                    "{:<52} req/s {:>6.2}x   CPU/req {:>6}",
                    format!("{}: rollcall / baseline", read.label()),
                    ratio,
                    cpu
                );
            }
        }
        if let Some((ratio, cpu)) =
            pair((0, Setup::Membership, moves), (1, Setup::Membership, moves))
        {
            let _ = writeln!(
                out,
                "{:<52} req/s {:>6.2}x   CPU/req {:>6}",
                "moves, membership only: rollcall / baseline", ratio, cpu
            );
        }
        if let Some((ratio, cpu)) = pair(
            (0, Setup::Entitlements, moves),
            (1, Setup::Membership, moves),
        ) {
            let _ = writeln!(
                out,
                "{:<52} req/s {:>6.2}x   CPU/req {:>6}",
                "moves: rollcall entitlements / baseline", ratio, cpu
            );
        }
    }
    out
}
