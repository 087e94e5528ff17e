//! Directory sync: a school's directory (OpenLDAP or Active Directory, Google Workspace, or a
//! OneRoster export) read on a schedule or on request, mapped to students, tutors and teaching
//! groups by the school's rules, reconciled against what the source owns, and applied in one
//! transaction. Every kind reads into directory entries (a name and attributes), so the
//! mapping, the plan and its safety checks are the same for all.
//!
//! A run: take the source's lease (one run at a time, whichever process) → read every search
//! (paged) → refuse an empty search where the source has accounts → map → plan → hold the
//! plan if it disables too many accounts → generate first passwords → write → record the run.
//! **Invariant: read-only towards the directory; a run either writes its whole plan or
//! nothing.**

pub mod dn;
pub mod google;
pub mod ldap;
pub mod map;
pub mod oneroster;
pub mod plan;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio::task::JoinSet;

use crate::config::{Connection, Incremental, Ldap, School, Source};
use crate::credentials;
use crate::provider::Provider;
use crate::roster;
use crate::scim::schema::Kind;
use crate::store::{self, Actor, Scope, Stamp, SyncRun};
use map::Read;
use plan::{Counts, Plan, Stored};

/// What a run may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Apply the plan unless it crosses the deletion threshold (then hold it). Reads only
    /// what changed when the source is incremental and its last full run is recent enough.
    Apply,
    /// [`Mode::Apply`] after reading everything.
    Full,
    /// Plan only; change nothing.
    DryRun,
    /// Apply a plan the threshold held, if the directory still asks for no more than it did.
    Approve,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("school `{school}` has no source `{id}`")]
    NoSource { school: String, id: String },
    #[error("the bind password: {0}")]
    Secret(String),
    #[error(transparent)]
    Directory(#[from] ldap::Error),
    #[error(transparent)]
    Google(#[from] google::Error),
    #[error(transparent)]
    OneRoster(#[from] oneroster::Error),
    #[error(
        "the {what} search {place} returned nothing, but this source has {owned} active \
         {what}; refusing to treat that as everyone leaving (a wrong base DN, org unit or \
         filter, an emptied OU, or an export without them?)"
    )]
    EmptySearch {
        what: &'static str,
        /// Where it looked (`Select`'s description).
        place: String,
        owned: usize,
    },
    #[error("source `{0}` is running already")]
    Busy(String),
    #[error("source `{0}` has no held plan to approve")]
    NothingHeld(String),
    #[error(
        "the directory changed since the plan was held: it would now also disable {extra} \
         account(s); the new plan is held instead, check it and approve again"
    )]
    ApprovalOutdated { extra: usize },
    #[error("{0}")]
    Roster(#[from] roster::Error),
    #[error("store: {0}")]
    Store(#[from] store::Error),
}

/// What a run read, planned and did.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub source: String,
    /// Whether it read everything (otherwise only what changed since the last run).
    pub full: bool,
    /// `applied`, `held` (by the deletion threshold) or `planned` (a dry run).
    pub outcome: Outcome,
    pub read: ReadCounts,
    pub counts: Counts,
    pub plan: Plan,
    /// Why the plan was held.
    pub held_because: Option<String>,
    pub seconds: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Applied,
    Held,
    Planned,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct ReadCounts {
    pub students: usize,
    pub tutors: usize,
    pub groups: usize,
}

/// A held plan, as kept in the store.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Held {
    counts: Counts,
    reason: String,
    /// The accounts it disables: an approval covers these and no more.
    disable: Vec<String>,
}

/// Steps of a long run, for the command line.
pub type Progress<'a> = &'a (dyn Fn(&str) + Send + Sync);

/// Runs a source once and records the run (failures too).
pub async fn run(
    provider: &Provider,
    school_id: &str,
    source_id: &str,
    mode: Mode,
    progress: Progress<'_>,
) -> Result<Report, Error> {
    let (school, source) = find(provider, school_id, source_id)?;
    let scope = Scope {
        school_id: school.id.clone(),
        source: source.id.clone(),
    };
    let started = provider.clock.now();
    let holder = format!("{}:{}", std::process::id(), uuid::Uuid::now_v7());
    // The lease (`lease_secs`) is renewed at a third of its length, so a run that dies (killed,
    // or its daemon stopped) frees its source within one lease.
    let lease = source.lease;
    let renewing = if mode == Mode::DryRun {
        None
    } else {
        if !provider
            .store
            .take_lease(&scope, &holder, started, started + lease)
            .await?
        {
            return Err(Error::Busy(source.id.clone()));
        }
        let (provider, scope, holder) = (provider.clone(), scope.clone(), holder.clone());
        Some(AbortOnDrop(tokio::spawn(async move {
            loop {
                tokio::time::sleep(lease / 3).await;
                let now = provider.clock.now();
                match provider
                    .store
                    .take_lease(&scope, &holder, now, now + lease)
                    .await
                {
                    Ok(true) => {}
                    Ok(false) => tracing::error!(source = %scope.source, "lost the sync lease"),
                    Err(error) => tracing::warn!(%error, "renewing the sync lease failed"),
                }
            }
        })))
    };
    let result = run_locked(provider, school, source, &scope, mode, progress).await;
    if let Some(renewing) = renewing {
        drop(renewing);
        if let Err(error) = provider.store.release_lease(&scope, &holder).await {
            // It expires on its own.
            tracing::warn!(%error, source = %source.id, "releasing the sync lease failed");
        }
    }
    let finished = provider.clock.now();
    let (outcome, report) = match &result {
        Ok(report) => (
            match report.outcome {
                Outcome::Applied => "applied",
                Outcome::Held => "held",
                Outcome::Planned => "planned",
            },
            serde_json::json!({
                "read": report.read,
                "counts": report.counts,
                "skipped": report.plan.skipped,
                "heldBecause": report.held_because,
            }),
        ),
        Err(error) => ("failed", serde_json::json!({ "error": error.to_string() })),
    };
    let record = SyncRun {
        source: source.id.clone(),
        started,
        finished,
        outcome: outcome.into(),
        report: report.to_string(),
    };
    if let Err(error) = provider.store.record_run(&school.id, &record).await {
        tracing::error!(%error, "recording a sync run failed");
    }
    match &result {
        Ok(report) => tracing::info!(
            school = %school.id, source = %source.id, outcome,
            created = report.counts.create, updated = report.counts.update,
            enabled = report.counts.enable, disabled = report.counts.disable,
            deleted = report.counts.delete, skipped = report.counts.skipped,
            seconds = report.seconds, "directory sync"
        ),
        Err(error) => {
            tracing::warn!(school = %school.id, source = %source.id, %error, "directory sync failed")
        }
    }
    result
}

/// Frees a large value (a whole directory's entries) on the blocking pool, off the run's path.
fn drop_later<T: Send + 'static>(value: T) {
    tokio::task::spawn_blocking(move || drop(value));
}

/// Stops a task when dropped, also when the run holding it is cancelled.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn find<'a>(
    provider: &'a Provider,
    school_id: &str,
    source_id: &str,
) -> Result<(&'a School, &'a Source), Error> {
    let missing = || Error::NoSource {
        school: school_id.to_owned(),
        id: source_id.to_owned(),
    };
    let school = provider.schools.get(school_id).ok_or_else(missing)?;
    let source = school.source(source_id).ok_or_else(missing)?;
    Ok((school, source))
}

/// The connection settings of an LDAP source, with its bind password read now.
pub fn settings(l: &Ldap) -> Result<ldap::Settings, Error> {
    Ok(ldap::Settings {
        url: l.url.clone(),
        starttls: l.starttls,
        ca_file: l.ca_file.clone(),
        bind_dn: l.bind_dn.clone(),
        password: l.password.read().map_err(Error::Secret)?,
        timeout: l.timeout,
        page_size: l.page_size,
    })
}

/// Reads every search of an LDAP source; with `changed`, `(attribute>=value)`, only the
/// entries changed since.
pub async fn read(
    source: &Source,
    settings: &Ldap,
    changed: Option<&str>,
    progress: Progress<'_>,
) -> Result<Read, Error> {
    let search = |select: &crate::config::Select| match select {
        crate::config::Select::Ldap { base, filter } => Ok((base.clone(), filter.clone())),
        other => Err(Error::Roster(roster::Error::Internal(format!(
            "an LDAP source cannot search {other}"
        )))),
    };
    let (students_base, students_filter) = search(&source.students.select)?;
    let mut directory = ldap::Directory::connect(&self::settings(settings)?).await?;
    let filter = |filter: &str| match changed {
        Some(changed) => format!("(&{filter}{changed})"),
        None => filter.to_owned(),
    };
    let what = if changed.is_some() { "changed " } else { "" };
    let people = map::person_attributes(source);
    let people: Vec<&str> = people.iter().map(String::as_str).collect();
    let mut out = Read::default();
    progress(&format!("reading {what}students under {students_base}"));
    out.students = directory
        .search(&students_base, &filter(&students_filter), &people)
        .await?;
    if let Some(tutors) = &source.tutors {
        let (base, tutors_filter) = search(&tutors.select)?;
        progress(&format!("reading {what}tutors under {base}"));
        out.tutors = directory
            .search(&base, &filter(&tutors_filter), &people)
            .await?;
    }
    if let Some(groups) = &source.groups {
        let (base, groups_filter) = search(&groups.select)?;
        progress(&format!("reading {what}groups under {base}"));
        let attributes = map::group_attributes(source);
        let attributes: Vec<&str> = attributes.iter().map(String::as_str).collect();
        out.groups = Some(
            directory
                .search(&base, &filter(&groups_filter), &attributes)
                .await?,
        );
    }
    directory.close().await;
    Ok(out)
}

/// Connects to a source and tries each of its searches (`rollcall check-config --connect`):
/// each line, and whether it is fine.
pub async fn check(source: &Source) -> Result<Vec<(String, bool)>, Error> {
    let settings = match &source.connection {
        Connection::Ldap(settings) => settings,
        Connection::Google(google) => return Ok(google::check(source, google).await?),
        Connection::OneRoster(roster) => return Ok(oneroster::check(source, &roster.path).await?),
    };
    let settings = self::settings(settings)?;
    let mut directory = ldap::Directory::connect(&settings).await?;
    let mut lines = vec![(format!("bound as {}", settings.bind_dn), true)];
    let mut searches = vec![("students", &source.students.select)];
    if let Some(tutors) = &source.tutors {
        searches.push(("tutors", &tutors.select));
    }
    if let Some(groups) = &source.groups {
        searches.push(("groups", &groups.select));
    }
    for (what, select) in searches {
        let crate::config::Select::Ldap { base, filter } = select else {
            continue;
        };
        match directory.search(base, filter, &["1.1"]).await {
            Ok(entries) if entries.is_empty() => lines.push((
                format!("{what}: the filter {filter} matches nothing under {base}"),
                false,
            )),
            Ok(entries) => lines.push((
                format!("{what}: {} entries under {base}", entries.len()),
                true,
            )),
            Err(error) => lines.push((format!("{what}: {error}"), false)),
        }
    }
    directory.close().await;
    Ok(lines)
}

/// The highest change marker among the entries read (`None` when none has one).
fn highest_marker(incremental: &Incremental, read: &Read) -> Option<String> {
    let entries = read
        .students
        .iter()
        .chain(&read.tutors)
        .chain(read.groups.iter().flatten());
    let values = entries.filter_map(|entry| entry.first(&incremental.attribute));
    if incremental.numeric() {
        values
            .filter_map(|v| v.trim().parse::<u64>().ok())
            .max()
            .map(|n| n.to_string())
    } else {
        // Generalized times of one server share their form, so text order is time order.
        values.map(str::trim).max().map(str::to_owned)
    }
}

/// The filter term of an incremental run resuming after `marker`.
fn changed_since(incremental: &Incremental, marker: &str) -> String {
    let attribute = &incremental.attribute;
    let value = ldap3::ldap_escape(marker);
    match marker.parse::<u64>() {
        // The highest seen was read already.
        Ok(n) if incremental.numeric() => format!("({attribute}>={})", n + 1),
        _ if incremental.unique() => format!("(&({attribute}>={value})(!({attribute}={value})))"),
        // One-second resolution: entries changed in the same second as the last one seen are
        // read again, which plans nothing for them.
        _ => format!("({attribute}>={value})"),
    }
}

/// What the store holds for a source.
async fn stored(provider: &Provider, scope: &Scope) -> Result<Stored, Error> {
    let store = &provider.store;
    Ok(Stored {
        users: store.owned_users(scope).await?,
        records: HashMap::new(),
        groups: store.owned(scope, Kind::Group).await?,
        leavers: store.leavers(scope).await?.into_iter().collect(),
        others_group_names: store
            .group_names_of_others(scope)
            .await?
            .into_iter()
            .collect(),
    })
}

/// A search that returned nothing where the source has accounts is an error, not "everyone
/// left".
async fn refuse_empty(
    provider: &Provider,
    scope: &Scope,
    source: &Source,
    read: &Read,
    stored: &Stored,
) -> Result<(), Error> {
    let searches = [
        (
            "students",
            "student",
            Some(&source.students.select),
            read.students.is_empty(),
        ),
        (
            "tutors",
            "tutor",
            source.tutors.as_ref().map(|t| &t.select),
            read.tutors.is_empty(),
        ),
    ];
    for (what, role, select, empty) in searches {
        let (Some(select), true) = (select, empty) else {
            continue;
        };
        let owned = provider.store.count_active(scope, role).await?;
        if owned > 0 {
            return Err(Error::EmptySearch {
                what,
                place: select.to_string(),
                owned: usize::try_from(owned).unwrap_or(usize::MAX),
            });
        }
    }
    if let (Some(groups), Some(entries)) = (&source.groups, &read.groups)
        && entries.is_empty()
        && !stored.groups.is_empty()
    {
        return Err(Error::EmptySearch {
            what: "groups",
            place: groups.select.to_string(),
            owned: stored.groups.len(),
        });
    }
    Ok(())
}

/// Why a plan must wait for an approval, if it must.
fn threshold(source: &Source, plan: &Plan, active: usize) -> Option<String> {
    let disable = plan.disable.len();
    if disable == 0 {
        return None;
    }
    let percent = disable as f64 * 100.0 / active.max(1) as f64;
    if disable > source.max_disable_count as usize {
        return Some(format!(
            "it would disable {disable} accounts, more than max_disable_count = {}",
            source.max_disable_count
        ));
    }
    if percent > f64::from(source.max_disable_percent) {
        return Some(format!(
            "it would disable {disable} of {active} active accounts ({percent:.1}%), more than \
             max_disable_percent = {}%",
            source.max_disable_percent
        ));
    }
    None
}

async fn run_locked(
    provider: &Provider,
    school: &School,
    source: &Source,
    scope: &Scope,
    mode: Mode,
    progress: Progress<'_>,
) -> Result<Report, Error> {
    let clock = Instant::now();
    let now = provider.clock.now();
    // Incremental when allowed, resumable, and the last full run is recent enough.
    let cursor = provider.store.cursor(scope).await?;
    let (read, full) = match &source.connection {
        Connection::Ldap(settings) => {
            let resume = match (&source.incremental, &cursor, mode) {
                (Some(incremental), Some(cursor), Mode::Apply)
                    if now - cursor.full_at < incremental.full_every =>
                {
                    Some(changed_since(incremental, &cursor.marker))
                }
                _ => None,
            };
            let read = read(source, settings, resume.as_deref(), progress).await?;
            (read, resume.is_none())
        }
        Connection::Google(google) => (google::read(source, google, progress).await?, true),
        Connection::OneRoster(roster) => {
            let roster = oneroster::read(provider, scope, source, &roster.path, progress).await?;
            (roster.read, !roster.delta)
        }
    };
    let counts = ReadCounts {
        students: read.students.len(),
        tutors: read.tutors.len(),
        groups: read.groups.as_ref().map_or(0, Vec::len),
    };
    progress(&format!(
        "read {} students, {} tutors, {} groups",
        counts.students, counts.tutors, counts.groups
    ));
    let mut stored = stored(provider, scope).await?;
    if full {
        refuse_empty(provider, scope, source, &read, &stored).await?;
    }
    // An incremental run resolves group members it did not read where they were last seen.
    let known: HashMap<String, String> = if full {
        HashMap::new()
    } else {
        provider
            .store
            .entry_locations(scope)
            .await?
            .into_iter()
            .collect()
    };
    // Digests of existing accounts only: an entry whose account is gone is compared in full.
    let digests: HashMap<&str, &str> = stored
        .users
        .iter()
        .filter_map(|u| Some((u.anchor.as_deref()?, u.digest.as_deref()?)))
        .collect();
    let mut desired = map::desired(school, source, &read, &known, &digests);
    drop(digests);
    drop_later(known);
    let load = stored.to_load(&desired, !full);
    let records = provider.store.owned_users_by_id(scope, &load).await?;
    stored.records = records.into_iter().map(|r| (r.id.clone(), r)).collect();
    let mut reconciled = plan::reconcile(provider, school, source, &desired, &stored, !full, now)?;
    let marker = source
        .incremental
        .as_ref()
        .and_then(|incremental| highest_marker(incremental, &read));
    drop_later(read);
    reconciled.changes.entries = std::mem::take(&mut desired.entries);
    let active = stored.active_users();
    drop_later((desired, stored));
    // Written when it moved, and after every full run (which restarts the period).
    let previous = cursor.map(|cursor| cursor.marker);
    reconciled.changes.cursor = match marker.or(previous.clone()) {
        Some(marker) if full || Some(&marker) != previous.as_ref() => Some((marker, full)),
        _ => None,
    };
    let mut report = Report {
        source: source.id.clone(),
        full,
        outcome: Outcome::Planned,
        read: counts,
        counts: reconciled.plan.counts(),
        plan: Plan::default(),
        held_because: None,
        seconds: 0.0,
    };
    let finish = |mut report: Report, plan: Plan| {
        report.plan = plan;
        report.seconds = clock.elapsed().as_secs_f64();
        Ok(report)
    };
    match mode {
        Mode::DryRun => return finish(report, reconciled.plan),
        Mode::Apply | Mode::Full => {
            if let Some(reason) = threshold(source, &reconciled.plan, active) {
                hold(provider, scope, &reconciled.plan, &reason, now).await?;
                report.outcome = Outcome::Held;
                report.held_because = Some(reason);
                return finish(report, reconciled.plan);
            }
        }
        Mode::Approve => {
            let Some((held, _)) = provider.store.held_plan(scope).await? else {
                return Err(Error::NothingHeld(source.id.clone()));
            };
            let held: Held = serde_json::from_str(&held).map_err(|e| {
                Error::Store(store::Error::Corrupt {
                    id: source.id.clone(),
                    source: e,
                })
            })?;
            let approved: HashSet<&str> = held.disable.iter().map(String::as_str).collect();
            let extra = reconciled
                .plan
                .disable
                .iter()
                .filter(|c| c.id.as_deref().is_none_or(|id| !approved.contains(id)))
                .count();
            if extra > 0 {
                let reason = format!("{} (and it changed since the last hold)", held.reason);
                hold(provider, scope, &reconciled.plan, &reason, now).await?;
                return Err(Error::ApprovalOutdated { extra });
            }
        }
    }
    let changes = &reconciled.changes;
    let bookkeeping = !changes.entries.is_empty() || changes.cursor.is_some();
    if !reconciled.plan.is_empty() || bookkeeping {
        if source.passwords {
            issue_passwords(provider, school, &mut reconciled.changes, progress).await?;
        }
        if !reconciled.plan.is_empty() {
            progress("writing");
        }
        let stamp_actor = Actor {
            name: format!("sync:{}", source.id),
            request_id: None,
        };
        let stamp = Stamp {
            actor: &stamp_actor,
            at: now,
        };
        provider
            .store
            .apply_sync(scope, &reconciled.changes, stamp)
            .await?;
    }
    if provider.store.held_plan(scope).await?.is_some() {
        // Whatever was held is out of date now that a plan has been applied.
        provider.store.clear_held_plan(scope).await?;
    }
    report.outcome = Outcome::Applied;
    finish(report, reconciled.plan)
}

async fn hold(
    provider: &Provider,
    scope: &Scope,
    plan: &Plan,
    reason: &str,
    now: OffsetDateTime,
) -> Result<(), Error> {
    let held = Held {
        counts: plan.counts(),
        reason: reason.to_owned(),
        disable: plan.disabled_ids(),
    };
    let text = serde_json::to_string(&held).unwrap_or_default();
    provider.store.hold_plan(scope, &text, now).await?;
    Ok(())
}

/// First passwords for the new accounts, hashed on every core at once and sealed as pending
/// slips, exactly as for a class import.
async fn issue_passwords(
    provider: &Provider,
    school: &School,
    changes: &mut store::SyncChanges,
    progress: Progress<'_>,
) -> Result<(), Error> {
    let total = changes.create_users.len();
    if total == 0 {
        return Ok(());
    }
    progress(&format!("generating {total} first passwords"));
    let mut hashing = JoinSet::new();
    for (index, (id, _)) in changes.create_users.iter().enumerate() {
        let provider = provider.clone();
        let policy = school.passwords.policy.clone();
        let (school_id, id) = (school.id.clone(), id.clone());
        hashing.spawn(async move {
            let issued = credentials::issue(&policy, &provider.hasher).await?;
            let slip =
                provider
                    .vault
                    .seal(&school_id, &id, &issued.password, provider.clock.now())?;
            Ok::<_, credentials::Error>((index, issued.hash, slip))
        });
    }
    let mut done = 0;
    while let Some(joined) = hashing.join_next().await {
        let (index, hash, slip) = joined
            .map_err(|e| roster::Error::Internal(e.to_string()))?
            .map_err(roster::Error::from)?;
        let record = &mut changes.create_users[index].1;
        record.password_hash = Some(hash);
        record.must_change = true;
        record.slip = Some(slip);
        done += 1;
        if done % 1000 == 0 && done < total {
            progress(&format!("{done} of {total} passwords"));
        }
    }
    Ok(())
}

/// A source's state, for `rollcall sync --status` and the admin API.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    pub source: String,
    pub url: String,
    /// Minutes between scheduled runs (`None`: on request only).
    pub interval_minutes: Option<u64>,
    pub last_run: Option<RunView>,
    pub held: Option<HeldView>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunView {
    #[serde(with = "time::serde::rfc3339")]
    pub started: OffsetDateTime,
    pub seconds: f64,
    pub outcome: String,
    pub report: serde_json::Value,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HeldView {
    #[serde(with = "time::serde::rfc3339")]
    pub since: OffsetDateTime,
    pub reason: String,
    pub counts: Counts,
}

/// Every source of a school, with its last run and held plan.
pub async fn status(provider: &Provider, school_id: &str) -> Result<Vec<Status>, Error> {
    let Some(school) = provider.schools.get(school_id) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for source in &school.sources {
        let scope = Scope {
            school_id: school.id.clone(),
            source: source.id.clone(),
        };
        let last_run = provider
            .store
            .runs(&school.id, &source.id, 1)
            .await?
            .into_iter()
            .next()
            .map(|run| RunView {
                started: run.started,
                seconds: (run.finished - run.started).as_seconds_f64(),
                outcome: run.outcome,
                report: serde_json::from_str(&run.report).unwrap_or_default(),
            });
        let held = provider
            .store
            .held_plan(&scope)
            .await?
            .and_then(|(text, since)| {
                let held: Held = serde_json::from_str(&text).ok()?;
                Some(HeldView {
                    since,
                    reason: held.reason,
                    counts: held.counts,
                })
            });
        out.push(Status {
            source: source.id.clone(),
            url: source.location(),
            interval_minutes: source.interval.map(|i| i.as_secs() / 60),
            last_run,
            held,
        });
    }
    Ok(out)
}

/// Runs every source that has an interval, each on its own schedule, until dropped (abort
/// the task: a run cut short writes nothing, and its lease expires). A source's first run
/// starts shortly after start-up.
pub async fn schedule(provider: Provider) {
    let mut runs = JoinSet::new();
    for school in provider.schools.values() {
        for source in &school.sources {
            let Some(interval) = source.interval else {
                continue;
            };
            let provider = provider.clone();
            let lease = source.lease;
            let (school, source) = (school.id.clone(), source.id.clone());
            runs.spawn(async move {
                tokio::time::sleep(Duration::from_secs(5)).await;
                loop {
                    let quiet: Progress = &|_| {};
                    // Failures are logged and recorded by `run`; the schedule goes on. A source
                    // busy elsewhere (another instance's run) is tried again after one lease,
                    // which is at most how long that run can hold it without finishing.
                    let wait = match run(&provider, &school, &source, Mode::Apply, quiet).await {
                        Err(Error::Busy(_)) => lease.min(interval),
                        _ => interval,
                    };
                    tokio::time::sleep(wait).await;
                }
            });
        }
    }
    // Dropping the set (when this task is aborted) aborts every schedule.
    while runs.join_next().await.is_some() {}
}
