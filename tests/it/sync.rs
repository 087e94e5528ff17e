//! Directory sync against a real slapd ([`crate::slapd`]): a first run creates exactly the
//! directory's people and teaching groups, a second plans nothing, and renames, leavers,
//! returners and moves come through; the deletion threshold holds a run until approved, an
//! empty search is refused, and unmappable entries are reported and skipped.

use std::collections::{BTreeMap, BTreeSet};

use rollcall::scim::schema::{Kind, SCHOOL_GROUP, SCHOOL_USER};
use rollcall::store::{Record, Scope};
use rollcall::sync::{self, Mode, Outcome, Report};
use serde_json::Value;

use reqwest::Method;

use crate::cli::Setup;
use crate::harness::TestApp;
use crate::slapd::{
    AD_DISABLED_STUDENT, AD_GROUPS, AD_STAFF, AD_STUDENTS, GROUPS, STUDENTS, Slapd, TUTORS,
    ad_school_ldif, school_ldif,
};

pub const SOURCE: &str = "directory";

/// The `[[schools.sources]]` table of a source on `slapd` (bind password in a file in
/// `secrets`), with `extra` lines for the source's table.
pub fn source_toml(slapd: &Slapd, secrets: &tempfile::TempDir, extra: &str) -> String {
    let password = secrets.path().join("directory.password");
    std::fs::write(&password, format!("{}\n", slapd.reader_password)).unwrap();
    format!(
        r#"
[[schools.sources]]
id = "{SOURCE}"
kind = "ldap"
url = "{url}"
bind_dn = "{bind_dn}"
password_file = "{password}"
page_size = 400
{extra}

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
        url = slapd.url,
        bind_dn = slapd.reader_dn,
        password = password.display(),
    )
}

/// The test configuration with `source` added to school `north`, and tiny argon2 parameters:
/// these tests are about syncing, not hashing.
pub fn with_source(text: String, source: &str) -> String {
    let text = text.replace(
        "[[schools]]\nid = \"south\"",
        &format!("{source}[[schools]]\nid = \"south\""),
    );
    format!("[argon2]\nmemory_kib = 64\niterations = 1\nparallelism = 1\n{text}")
}

/// A daemon for school `north` with a source on `slapd`.
pub async fn app_for(slapd: &Slapd, secrets: &tempfile::TempDir, extra: &str) -> TestApp {
    let source = source_toml(slapd, secrets, extra);
    TestApp::start_with(move |text| with_source(text, &source)).await
}

pub async fn sync(app: &TestApp, mode: Mode) -> Result<Report, sync::Error> {
    sync::run(&app.state.provider, "north", SOURCE, mode, &|_| {}).await
}

fn scope() -> Scope {
    Scope {
        school_id: "north".into(),
        source: SOURCE.into(),
    }
}

/// The source's accounts by anchor (their externalId).
pub async fn accounts(app: &TestApp) -> BTreeMap<String, Record> {
    owned(app, Kind::User, "/externalId").await
}

/// The source's teaching groups by name.
async fn groups(app: &TestApp) -> BTreeMap<String, Record> {
    owned(app, Kind::Group, "/displayName").await
}

async fn owned(app: &TestApp, kind: Kind, key: &str) -> BTreeMap<String, Record> {
    let store = &app.state.provider.store;
    let records = store.owned(&scope(), kind).await.unwrap();
    records
        .into_iter()
        .map(|r| (text(&r, key).to_owned(), r))
        .collect()
}

fn text<'a>(record: &'a Record, pointer: &str) -> &'a str {
    let data = record.data.get(pointer.split('/').nth(1).unwrap());
    let rest: String = pointer
        .split('/')
        .skip(2)
        .map(|p| format!("/{p}"))
        .collect();
    data.and_then(|v| {
        if rest.is_empty() {
            Some(v)
        } else {
            v.pointer(&rest)
        }
    })
    .and_then(Value::as_str)
    .unwrap_or_default()
}

fn school(record: &Record, name: &str) -> String {
    record
        .data
        .get(SCHOOL_USER)
        .and_then(|s| s.get(name))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn active(record: &Record) -> bool {
    record.data["active"].as_bool().unwrap()
}

fn member_names(group: &Record, accounts: &BTreeMap<String, Record>) -> BTreeSet<String> {
    let by_id: BTreeMap<&str, &Record> = accounts.values().map(|a| (a.id.as_str(), a)).collect();
    group
        .links
        .iter()
        .map(|l| text(by_id[l.id.as_str()], "/userName").to_owned())
        .collect()
}

const STUDENT_COUNT: usize = 1200;

#[tokio::test]
async fn a_first_sync_creates_exactly_the_directory_and_a_second_plans_nothing() {
    let directory = school_ldif(STUDENT_COUNT);
    let Some(slapd) = Slapd::start(&directory.ldif) else {
        return;
    };
    let secrets = tempfile::tempdir().unwrap();
    let app = app_for(&slapd, &secrets, "").await;

    let report = sync(&app, Mode::Apply).await.unwrap();
    assert_eq!(report.outcome, Outcome::Applied);
    assert_eq!(report.read.students, STUDENT_COUNT);
    assert_eq!(report.read.tutors, 6);
    assert_eq!(report.counts.create, STUDENT_COUNT + 6);
    assert_eq!(report.counts.create_groups, directory.groups.len());
    assert_eq!(report.counts.skipped, 0, "{:?}", report.plan.skipped);
    assert_eq!(report.counts.disable, 0);

    let accounts = accounts(&app).await;
    assert_eq!(accounts.len(), STUDENT_COUNT + 6);
    // Every person once, by their anchor, with their names intact.
    for person in directory.students.iter().chain(&directory.tutors) {
        let account = &accounts[&person.employee_number];
        assert_eq!(text(account, "/name/givenName"), person.given_name);
        assert_eq!(text(account, "/name/familyName"), person.sn);
        assert_eq!(
            text(account, "/emails/0/value"),
            person.mail.as_deref().unwrap_or_default()
        );
        assert!(active(account));
    }
    let twins = ["S000001", "S000002"].map(|a| text(&accounts[a], "/userName").to_owned());
    assert_eq!(twins, ["smithj", "smithj2"]);
    assert_eq!(text(&accounts["S000003"], "/userName"), "osuilleabhainz");
    assert_eq!(school(&accounts["S000001"], "yearGroup"), "12");
    assert_eq!(school(&accounts["S000001"], "studentNumber"), "S000001");
    assert_eq!(school(&accounts["S000001"], "role"), "student");
    assert_eq!(school(&accounts["T00001"], "role"), "tutor");
    let usernames: BTreeSet<&str> = accounts.values().map(|a| text(a, "/userName")).collect();
    assert_eq!(usernames.len(), accounts.len(), "usernames are unique");

    // Groups: members found whatever the case of their DNs; courses from the name.
    let groups = groups(&app).await;
    assert_eq!(groups.len(), directory.groups.len());
    for group in &directory.groups {
        let stored = &groups[&group.cn];
        let expected: BTreeSet<String> = group
            .members
            .iter()
            .filter(|dn| !dn.is_empty())
            .map(|dn| {
                let person = directory
                    .students
                    .iter()
                    .chain(&directory.tutors)
                    .find(|p| p.dn.eq_ignore_ascii_case(dn))
                    .unwrap_or_else(|| panic!("{dn}"));
                text(&accounts[&person.employee_number], "/userName").to_owned()
            })
            .collect();
        assert_eq!(member_names(stored, &accounts), expected, "{}", group.cn);
    }
    assert_eq!(
        groups["10B/Fr1"].links.len(),
        4,
        "3 students in upper case and a tutor"
    );
    assert!(groups["13C/Ps1"].links.is_empty());
    let courses: Vec<&str> = groups["12A/Ma1"].data[SCHOOL_GROUP]["courses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["value"].as_str().unwrap())
        .collect();
    assert_eq!(courses, ["MA-Y1-AS", "MA-Y1-STAT", "MA-Y1-MECH"]);
    assert!(!groups["11A/Ma1"].data.contains_key(SCHOOL_GROUP));

    // Every new account has a first password, held as a pending slip.
    let slips = app
        .state
        .provider
        .store
        .count_slips("north", None, time::OffsetDateTime::now_utc())
        .await
        .unwrap();
    assert_eq!(slips, (STUDENT_COUNT + 6) as i64);

    let again = sync(&app, Mode::Apply).await.unwrap();
    assert!(again.plan.is_empty(), "{:?}", again.counts);
    let after = self::accounts(&app).await;
    let versions =
        |a: &BTreeMap<String, Record>| -> Vec<i64> { a.values().map(|r| r.version).collect() };
    assert_eq!(versions(&after), versions(&accounts), "nothing was written");
    app.stop().await;
}

#[tokio::test]
async fn a_dry_run_shows_the_plan_and_changes_nothing() {
    let directory = school_ldif(40);
    let Some(slapd) = Slapd::start(&directory.ldif) else {
        return;
    };
    let secrets = tempfile::tempdir().unwrap();
    let app = app_for(&slapd, &secrets, "").await;
    let report = sync(&app, Mode::DryRun).await.unwrap();
    assert_eq!(report.outcome, Outcome::Planned);
    assert_eq!(report.counts.create, 46);
    let twins: Vec<&str> = report
        .plan
        .create
        .iter()
        .filter(|c| c.name.ends_with(" Smith"))
        .map(|c| c.user_name_base.as_str())
        .collect();
    assert_eq!(
        twins,
        ["smithj", "smithj"],
        "bases before clashes are settled"
    );
    assert!(accounts(&app).await.is_empty());
    assert!(groups(&app).await.is_empty());
    app.stop().await;
}

#[tokio::test]
async fn renames_leavers_returners_and_moves_come_through_and_usernames_stay() {
    let directory = school_ldif(60);
    let Some(slapd) = Slapd::start(&directory.ldif) else {
        return;
    };
    let secrets = tempfile::tempdir().unwrap();
    let app = app_for(&slapd, &secrets, "passwords = false").await;
    sync(&app, Mode::Apply).await.unwrap();
    let before = accounts(&app).await;

    // A rename: names change, the username does not.
    let jane = &directory.students[1];
    slapd.rename_person(&jane.dn, "Jane", "Smith-Brown");
    // A leaver.
    let leaver = &directory.students[10];
    slapd.delete(&leaver.dn);
    // A move: year 12's maths to year 13's, and the year group with it.
    let mover = directory
        .students
        .iter()
        .find(|s| s.year.as_deref() == Some("12") && s.employee_number.as_str() > "S000008")
        .unwrap();
    slapd.remove_member(&format!("cn=12A/Ma1,{GROUPS}"), &mover.dn);
    slapd.add_member(&format!("cn=13A/Ma1,{GROUPS}"), &mover.dn);
    slapd.modify(&format!(
        "dn: {}\nchangetype: modify\nreplace: departmentNumber\ndepartmentNumber: 13\n-\n",
        mover.dn
    ));

    // A full run: an incremental one would not see the leaver (see below).
    let report = sync(&app, Mode::Full).await.unwrap();
    assert_eq!(report.outcome, Outcome::Applied);
    assert_eq!(report.counts.update, 2, "{:?}", report.plan.update);
    assert_eq!(report.counts.disable, 1);
    assert_eq!(report.counts.create, 0);
    assert_eq!(
        report.counts.update_groups,
        2 + leaver_groups(&directory, &leaver.dn)
    );
    let after = accounts(&app).await;
    let renamed = &after[&jane.employee_number];
    assert_eq!(text(renamed, "/name/familyName"), "Smith-Brown");
    assert_eq!(
        text(renamed, "/userName"),
        text(&before[&jane.employee_number], "/userName")
    );
    let left = &after[&leaver.employee_number];
    assert!(!active(left), "a leaver is disabled, not deleted");
    assert_eq!(school(&after[&mover.employee_number], "yearGroup"), "13");
    let groups = groups(&app).await;
    let mover_name = text(&after[&mover.employee_number], "/userName").to_owned();
    assert!(!member_names(&groups["12A/Ma1"], &after).contains(&mover_name));
    assert!(member_names(&groups["13A/Ma1"], &after).contains(&mover_name));

    // The leaver comes back: the same account, enabled again, the same username.
    let mut ldif = String::new();
    for line in directory.ldif.split("\n\n") {
        if line.starts_with(&format!("dn: {}", leaver.dn)) {
            ldif = format!("{line}\n");
        }
    }
    assert!(!ldif.is_empty());
    slapd.modify(&ldif.replacen('\n', "\nchangetype: add\n", 1));
    let report = sync(&app, Mode::Apply).await.unwrap();
    assert_eq!(report.counts.enable, 1, "{:?}", report.counts);
    assert_eq!(report.counts.create, 0);
    let back = &accounts(&app).await[&leaver.employee_number];
    assert!(active(back));
    assert_eq!(back.id, left.id);
    assert_eq!(text(back, "/userName"), text(left, "/userName"));
    app.stop().await;
}

/// How many groups list `dn` as a member.
fn leaver_groups(directory: &crate::slapd::Generated, dn: &str) -> usize {
    directory
        .groups
        .iter()
        .filter(|g| g.members.iter().any(|m| m.eq_ignore_ascii_case(dn)))
        .count()
}

#[tokio::test]
async fn a_run_that_would_disable_too_many_is_held_until_approved() {
    let directory = school_ldif(200);
    let Some(slapd) = Slapd::start(&directory.ldif) else {
        return;
    };
    let secrets = tempfile::tempdir().unwrap();
    let app = app_for(
        &slapd,
        &secrets,
        "passwords = false\nmax_disable_percent = 10\nmax_disable_count = 50",
    )
    .await;
    sync(&app, Mode::Apply).await.unwrap();
    // 30 of 206 (14.6%) leave: under the count, over the percentage.
    let leavers: Vec<_> = directory.students[100..130].to_vec();
    for leaver in &leavers {
        slapd.delete(&leaver.dn);
    }
    let held = sync(&app, Mode::Full).await.unwrap();
    assert_eq!(held.outcome, Outcome::Held);
    assert_eq!(held.counts.disable, 30);
    assert!(
        held.held_because.as_deref().unwrap().contains("14.6%"),
        "{:?}",
        held.held_because
    );
    let accounts_now = accounts(&app).await;
    assert!(
        leavers
            .iter()
            .all(|l| active(&accounts_now[&l.employee_number])),
        "nothing disabled"
    );
    let status = sync::status(&app.state.provider, "north").await.unwrap();
    assert_eq!(status[0].held.as_ref().unwrap().counts.disable, 30);
    assert_eq!(status[0].last_run.as_ref().unwrap().outcome, "held");

    let approved = sync(&app, Mode::Approve).await.unwrap();
    assert_eq!(approved.outcome, Outcome::Applied);
    let accounts_now = accounts(&app).await;
    assert!(
        leavers
            .iter()
            .all(|l| !active(&accounts_now[&l.employee_number]))
    );
    assert!(
        sync::status(&app.state.provider, "north").await.unwrap()[0]
            .held
            .is_none()
    );
    assert!(matches!(
        sync(&app, Mode::Approve).await,
        Err(sync::Error::NothingHeld(_))
    ));
    app.stop().await;
}

#[tokio::test]
async fn an_approval_covers_only_what_was_held() {
    let directory = school_ldif(100);
    let Some(slapd) = Slapd::start(&directory.ldif) else {
        return;
    };
    let secrets = tempfile::tempdir().unwrap();
    let app = app_for(&slapd, &secrets, "passwords = false\nmax_disable_count = 5").await;
    sync(&app, Mode::Apply).await.unwrap();
    for leaver in &directory.students[20..27] {
        slapd.delete(&leaver.dn);
    }
    assert_eq!(sync(&app, Mode::Full).await.unwrap().outcome, Outcome::Held);
    // More leave before anyone approves: the approval does not stretch to them.
    slapd.delete(&directory.students[30].dn);
    let error = sync(&app, Mode::Approve).await.unwrap_err();
    assert!(
        matches!(error, sync::Error::ApprovalOutdated { extra: 1 }),
        "{error}"
    );
    assert!(accounts(&app).await.values().all(active));
    assert_eq!(sync(&app, Mode::Approve).await.unwrap().counts.disable, 8);
    app.stop().await;
}

#[tokio::test]
async fn an_empty_search_is_an_error_not_everyone_leaving() {
    let directory = school_ldif(30);
    let Some(slapd) = Slapd::start(&directory.ldif) else {
        return;
    };
    let secrets = tempfile::tempdir().unwrap();
    let app = app_for(&slapd, &secrets, "passwords = false").await;
    sync(&app, Mode::Apply).await.unwrap();
    // The OU emptied (as a wrong move in the directory would).
    let mut ldif = String::new();
    for student in &directory.students {
        ldif.push_str(&format!("dn: {}\nchangetype: delete\n\n", student.dn));
    }
    // Group members go first (groupOfNames needs one, so the tutors stay).
    for group in &directory.groups {
        for member in group
            .members
            .iter()
            .filter(|m| m.to_lowercase().contains("ou=students"))
        {
            slapd.remove_member(&group.dn, member);
        }
    }
    slapd.modify(&ldif);
    let error = sync(&app, Mode::Full).await.unwrap_err();
    assert!(
        matches!(
            error,
            sync::Error::EmptySearch {
                what: "students",
                owned: 30,
                ..
            }
        ),
        "{error}"
    );
    assert!(error.to_string().contains(STUDENTS), "{error}");
    assert!(accounts(&app).await.values().all(active));
    let status = sync::status(&app.state.provider, "north").await.unwrap();
    let last = status[0].last_run.as_ref().unwrap();
    assert_eq!(last.outcome, "failed");
    assert!(
        last.report["error"]
            .as_str()
            .unwrap()
            .contains("returned nothing")
    );
    app.stop().await;
}

#[tokio::test]
async fn unmappable_entries_are_reported_by_dn_and_skipped() {
    let directory = school_ldif(20);
    let Some(slapd) = Slapd::start(&directory.ldif) else {
        return;
    };
    let no_given = format!("uid=nogiven,{STUDENTS}");
    let no_anchor = format!("uid=noanchor,{STUDENTS}");
    slapd.modify(&format!(
        "dn: {no_given}\nchangetype: add\nobjectClass: inetOrgPerson\nuid: nogiven\ncn: Nobody\n\
         sn: Nobody\nemployeeNumber: S900001\n\n\
         dn: {no_anchor}\nchangetype: add\nobjectClass: inetOrgPerson\nuid: noanchor\n\
         cn: Ann Onymous\ngivenName: Ann\nsn: Onymous\n\n"
    ));
    let secrets = tempfile::tempdir().unwrap();
    let app = app_for(&slapd, &secrets, "passwords = false").await;
    let report = sync(&app, Mode::Apply).await.unwrap();
    assert_eq!(report.outcome, Outcome::Applied);
    assert_eq!(report.counts.create, 26);
    let skipped: BTreeMap<&str, &str> = report
        .plan
        .skipped
        .iter()
        .map(|s| (s.dn.as_str(), s.reason.as_str()))
        .collect();
    assert_eq!(skipped.len(), 2, "{skipped:?}");
    assert_eq!(skipped[no_given.as_str()], "first name is empty");
    assert!(
        skipped[no_anchor.as_str()].contains("employeeNumber"),
        "{skipped:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_refused_bind_and_an_unreachable_server_fail_clearly_and_change_nothing() {
    let Some(slapd) = Slapd::start(&school_ldif(10).ldif) else {
        return;
    };
    let secrets = tempfile::tempdir().unwrap();
    let app = app_for(&slapd, &secrets, "").await;
    std::fs::write(secrets.path().join("directory.password"), "wrong").unwrap();
    let error = sync(&app, Mode::Apply).await.unwrap_err();
    assert!(
        matches!(
            &error,
            sync::Error::Directory(rollcall::sync::ldap::Error::BindRefused { .. })
        ),
        "{error}"
    );
    assert!(error.to_string().contains("invalid credentials"), "{error}");
    drop(slapd);
    let error = sync(&app, Mode::Apply).await.unwrap_err();
    assert!(
        matches!(
            &error,
            sync::Error::Directory(rollcall::sync::ldap::Error::Unreachable { .. })
        ),
        "{error}"
    );
    assert!(accounts(&app).await.is_empty());
    app.stop().await;
}

// --- The command line and the admin API -----------------------------------------------------

#[tokio::test]
async fn the_command_line_shows_the_plan_applies_it_and_reports_the_status() {
    let directory = school_ldif(25);
    let Some(slapd) = Slapd::start(&directory.ldif) else {
        return;
    };
    let secrets = tempfile::tempdir().unwrap();
    let source = source_toml(&slapd, &secrets, "passwords = false");
    let setup = Setup::with_config(|text| with_source(text, &source));

    let output = setup.run(&["sync", SOURCE, "--school", "north", "--dry-run"]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("reading students under {STUDENTS}")),
        "{stderr}"
    );
    assert!(stdout.contains("accounts: 31 to create"), "{stdout}");
    assert!(
        stdout.contains("create   James Smith (student, username smithj): uid=jsmith,"),
        "{stdout}"
    );
    assert!(stdout.contains("group +  12A/Ma1"), "{stdout}");
    assert!(
        stdout.ends_with("dry run: nothing was changed\n"),
        "{stdout}"
    );

    let stdout = setup.ok(&["sync", SOURCE, "--school", "north"]);
    assert!(stdout.ends_with("applied\n"), "{stdout}");
    let stdout = setup.ok(&["sync", SOURCE, "--school", "north"]);
    assert!(stdout.ends_with("nothing to change\n"), "{stdout}");
    let output = setup.run(&["sync", SOURCE]);
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("name the school with --school"),
        "two schools: which one?"
    );

    let stdout = setup.ok(&["sync", "--status", "--school", "north"]);
    assert!(
        stdout.starts_with(&format!("{SOURCE} ({}, on request)", slapd.url)),
        "{stdout}"
    );
    assert!(stdout.contains(": applied {"), "{stdout}");
    let status: Value =
        serde_json::from_str(&setup.ok(&["sync", "--status", "--school", "north", "--json"]))
            .unwrap();
    assert_eq!(status[0]["lastRun"]["outcome"], "applied");
    assert_eq!(status[0]["lastRun"]["report"]["counts"]["create"], 0);

    let output = setup.run(&["sync", "nosuch", "--school", "north"]);
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("school `north` has no source `nosuch`")
    );
}

#[tokio::test]
async fn check_config_connect_says_exactly_what_is_wrong() {
    let Some(slapd) = Slapd::start(&school_ldif(12).ldif) else {
        return;
    };
    let secrets = tempfile::tempdir().unwrap();
    let check = |source: String| {
        let setup = Setup::with_config(|text| with_source(text, &source));
        let output = setup.run(&["check-config", "--connect"]);
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
        )
    };
    let (fine, stdout) = check(source_toml(&slapd, &secrets, ""));
    assert!(fine, "{stdout}");
    assert!(
        stdout.contains(&format!("bound as {}", slapd.reader_dn)),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("students: 12 entries under {STUDENTS}")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("tutors: 6 entries under {TUTORS}")),
        "{stdout}"
    );

    let good = source_toml(&slapd, &secrets, "");
    let cases = [
        (
            good.replace(STUDENTS, "ou=Pupils,dc=school,dc=example"),
            "students: the base DN `ou=Pupils,dc=school,dc=example` does not exist",
        ),
        (
            good.replace(
                &format!("base = \"{TUTORS}\""),
                &format!("base = \"{TUTORS}\"\nfilter = \"(title=Headmaster)\""),
            ),
            "tutors: the filter (title=Headmaster) matches nothing",
        ),
        (
            good.replace(&slapd.url, "ldap://127.0.0.1:1"),
            "cannot reach ldap://127.0.0.1:1",
        ),
        (
            good.replace(
                "password_file",
                "password_env = \"ROLLCALL_TEST_UNSET_PASSWORD\"\n# password_file",
            ),
            "environment variable ROLLCALL_TEST_UNSET_PASSWORD is not set",
        ),
    ];
    for (source, expected) in cases {
        let (fine, stdout) = check(source);
        assert!(!fine, "{stdout}");
        assert!(
            stdout.contains(expected),
            "expected `{expected}` in:\n{stdout}"
        );
    }
    std::fs::write(secrets.path().join("directory.password"), "wrong").unwrap();
    let setup = Setup::with_config(|text| {
        let source = good.clone();
        with_source(text, &source)
    });
    let output = setup.run(&["check-config", "--connect"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!output.status.success());
    assert!(
        stdout.contains("refused the bind") && stdout.contains("invalid credentials"),
        "{stdout}"
    );
}

#[tokio::test]
async fn admins_see_each_source_and_run_it_through_the_api() {
    let Some(slapd) = Slapd::start(&school_ldif(15).ldif) else {
        return;
    };
    let secrets = tempfile::tempdir().unwrap();
    let app = app_for(&slapd, &secrets, "passwords = false\ninterval_minutes = 0").await;
    let path = "/schools/north/sources";
    let reply = app.api(Method::GET, path, None).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["sources"][0]["source"], SOURCE);
    assert!(reply.body["sources"][0]["lastRun"].is_null());

    let runs = format!("{path}/{SOURCE}/runs");
    let reply = app
        .api(Method::POST, &format!("{runs}?mode=dry-run"), None)
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["outcome"], "planned");
    assert_eq!(reply.body["counts"]["create"], 21);
    assert!(accounts(&app).await.is_empty());
    let reply = app.api(Method::POST, &runs, None).await;
    assert_eq!(reply.body["outcome"], "applied");
    assert_eq!(accounts(&app).await.len(), 21);
    let reply = app.api(Method::GET, path, None).await;
    assert_eq!(reply.body["sources"][0]["lastRun"]["outcome"], "applied");

    let reply = app
        .api(Method::POST, &format!("{runs}?mode=approve"), None)
        .await;
    assert_eq!(reply.status, 409, "{}", reply.body);
    let reply = app
        .api(Method::POST, &format!("{runs}?mode=now"), None)
        .await;
    assert_eq!(reply.status, 400, "{}", reply.body);
    let reply = app
        .api(Method::POST, &format!("{path}/nosuch/runs"), None)
        .await;
    assert_eq!(reply.status, 404, "{}", reply.body);
    // Another school's admin sees nothing of it.
    let reply = app
        .api_as(Some(&app.other_admin_token), Method::GET, path, None)
        .await;
    assert_eq!(reply.status, 403, "{}", reply.body);
    // A directory that fails is the directory's fault: 502, saying why.
    drop(slapd);
    let reply = app.api(Method::POST, &runs, None).await;
    assert_eq!(reply.status, 502, "{}", reply.body);
    assert!(
        reply.body["detail"]
            .as_str()
            .unwrap()
            .contains("cannot reach")
    );
    app.stop().await;
}

// --- Active Directory ------------------------------------------------------------------------

/// A source on an Active Directory-shaped slapd: objectGUID anchors, sAMAccountName uids,
/// the ACCOUNTDISABLE flag, nested groups flattened.
fn ad_source(slapd: &Slapd, secrets: &tempfile::TempDir) -> String {
    let password = secrets.path().join("directory.password");
    std::fs::write(&password, &slapd.reader_password).unwrap();
    format!(
        r#"
[[schools.sources]]
id = "{SOURCE}"
kind = "ldap"
url = "{url}"
bind_dn = "{bind_dn}"
password_file = "{password}"
dialect = "active-directory"
passwords = false

[schools.sources.students]
base = "{AD_STUDENTS}"
# Active Directory's default filter asks for objectCategory, which this schema lacks.
filter = "(objectClass=user)"
year_group = "departmentNumber"

[schools.sources.tutors]
base = "{AD_STAFF}"
filter = "(objectClass=user)"

[schools.sources.groups]
base = "{AD_GROUPS}"
flatten_nested = true

[schools.sources.attributes]
student_number = "employeeNumber"

"#,
        url = slapd.url,
        bind_dn = slapd.reader_dn,
        password = password.display(),
    )
}

#[tokio::test]
async fn an_active_directory_is_synced_by_guid_with_disabled_accounts_and_nested_groups() {
    let directory = ad_school_ldif(1050);
    let Some(slapd) = Slapd::start(&directory.ldif) else {
        return;
    };
    let secrets = tempfile::tempdir().unwrap();
    let source = ad_source(&slapd, &secrets);
    let app = TestApp::start_with(move |text| with_source(text, &source)).await;

    let report = sync(&app, Mode::Apply).await.unwrap();
    assert_eq!(report.read.students, 1050, "paged past the limit of 1,000");
    let enabled: Vec<_> = directory
        .students
        .iter()
        .chain(&directory.staff)
        .filter(|p| !p.disabled())
        .collect();
    assert_eq!(
        report.counts.create,
        enabled.len(),
        "a disabled account is not created"
    );
    assert_eq!(report.counts.skipped, 0, "{:?}", report.plan.skipped);
    let accounts = accounts(&app).await;
    for person in &enabled {
        // The anchor is the GUID as Windows shows it.
        let account = &accounts[&person.guid];
        assert_eq!(text(account, "/name/givenName"), person.given_name);
        assert_eq!(text(account, "/name/familyName"), person.sn);
    }
    let disabled = directory.person(AD_DISABLED_STUDENT.0);
    assert!(!accounts.contains_key(&disabled.guid));

    // Every group, nested ones flattened to their people, found through escaped and
    // lower-cased DNs.
    let groups = groups(&app).await;
    assert_eq!(groups.len(), directory.groups.len());
    for group in &directory.groups {
        let expected: BTreeSet<String> = directory
            .people_in(&group.cn)
            .into_iter()
            .filter(|p| !p.disabled())
            .map(|p| text(&accounts[&p.guid], "/userName").to_owned())
            .collect();
        assert_eq!(
            member_names(&groups[&group.cn], &accounts),
            expected,
            "{}",
            group.cn
        );
    }
    assert!(groups["Maths Department"].links.len() > groups["13A/Ma1"].links.len());
    assert!(groups["Chess Club"].links.is_empty());

    // Disabled in the directory → disabled here; enabled again → enabled, same account.
    let student = &directory.students[20];
    slapd.set_disabled(&student.dn, true);
    let renamed = &directory.students[21];
    let new_dn = slapd.rename_person(&renamed.dn, &renamed.given_name, "Renamed");
    assert_ne!(
        new_dn, renamed.dn,
        "in AD the cn is the RDN: the DN changes"
    );
    // Incremental by uSNChanged: only the two changed people are read.
    let report = sync(&app, Mode::Apply).await.unwrap();
    assert!(!report.full);
    assert_eq!((report.read.students, report.read.groups), (2, 0));
    assert_eq!(report.counts.disable, 1, "{:?}", report.plan.disable);
    assert_eq!(
        report.plan.disable[0].details,
        ["disabled in the directory"]
    );
    assert_eq!(report.counts.update, 1, "{:?}", report.plan.update);
    assert_eq!(
        report.counts.update_groups, 0,
        "memberships follow the GUID, not the DN"
    );
    let after = self::accounts(&app).await;
    assert!(!active(&after[&student.guid]));
    assert_eq!(text(&after[&renamed.guid], "/name/familyName"), "Renamed");
    assert_eq!(
        text(&after[&renamed.guid], "/userName"),
        text(&accounts[&renamed.guid], "/userName")
    );
    slapd.set_disabled(&student.dn, false);
    let report = sync(&app, Mode::Apply).await.unwrap();
    assert_eq!(report.read.students, 1);
    assert_eq!(report.counts.enable, 1);
    assert!(active(&self::accounts(&app).await[&student.guid]));
    let report = sync(&app, Mode::Apply).await.unwrap();
    assert_eq!(report.read.students, 0, "nothing changed since");
    assert!(report.plan.is_empty());
    // A full run agrees that nothing is left to do.
    assert!(sync(&app, Mode::Full).await.unwrap().plan.is_empty());
    app.stop().await;
}

#[tokio::test]
async fn an_incremental_run_reads_only_what_changed_and_a_full_run_finds_leavers() {
    let directory = school_ldif(80);
    let Some(slapd) = Slapd::start(&directory.ldif) else {
        return;
    };
    let secrets = tempfile::tempdir().unwrap();
    let app = app_for(&slapd, &secrets, "passwords = false").await;
    let first = sync(&app, Mode::Apply).await.unwrap();
    assert!(first.full, "nothing to resume from: a full run");

    let renamed = &directory.students[3];
    slapd.rename_person(&renamed.dn, "Lukas", &renamed.sn);
    let mover = &directory.students[40];
    let from = directory
        .groups
        .iter()
        .find(|g| g.members.iter().any(|m| m.eq_ignore_ascii_case(&mover.dn)))
        .unwrap();
    let to = directory
        .groups
        .iter()
        .find(|g| g.cn.ends_with("/Ma1") && g.cn != from.cn)
        .unwrap();
    slapd.remove_member(&from.dn, &mover.dn);
    slapd.add_member(&to.dn, &mover.dn);
    let leaver = &directory.students[60];
    slapd.delete(&leaver.dn);

    let report = sync(&app, Mode::Apply).await.unwrap();
    assert!(!report.full);
    // The renamed student, and the groups whose members changed (the leaver's too).
    assert_eq!(report.read.students, 1, "{report:?}");
    assert_eq!(report.read.tutors, 0);
    assert_eq!(report.counts.update, 1);
    assert_eq!(
        report.counts.disable, 0,
        "a deletion is not a change it can read"
    );
    let accounts_now = accounts(&app).await;
    assert_eq!(
        text(&accounts_now[&renamed.employee_number], "/name/givenName"),
        "Lukas"
    );
    // Members of changed groups are found through where they were last seen.
    let groups_now = groups(&app).await;
    let mover_name = text(&accounts_now[&mover.employee_number], "/userName").to_owned();
    assert!(member_names(&groups_now[&to.cn], &accounts_now).contains(&mover_name));
    assert!(!member_names(&groups_now[&from.cn], &accounts_now).contains(&mover_name));
    let expected = to.members.iter().filter(|m| !m.is_empty()).count() + 1;
    assert_eq!(groups_now[&to.cn].links.len(), expected, "nobody else lost");
    assert!(active(&accounts_now[&leaver.employee_number]));

    let full = sync(&app, Mode::Full).await.unwrap();
    assert!(full.full);
    assert_eq!(full.read.students, 79);
    assert_eq!(full.counts.disable, 1);
    assert_eq!(
        full.counts.update, 0,
        "the incremental run missed nothing else"
    );
    assert!(!active(&accounts(&app).await[&leaver.employee_number]));
    app.stop().await;
}

#[tokio::test]
async fn leavers_are_deleted_after_the_retention_period_and_their_usernames_retired() {
    let directory = school_ldif(20);
    let Some(slapd) = Slapd::start(&directory.ldif) else {
        return;
    };
    let secrets = tempfile::tempdir().unwrap();
    let app = app_for(&slapd, &secrets, "passwords = false\nretention_days = 0").await;
    sync(&app, Mode::Apply).await.unwrap();
    let leaver = &directory.students[12];
    let account = accounts(&app).await[&leaver.employee_number].clone();
    slapd.delete(&leaver.dn);
    let report = sync(&app, Mode::Full).await.unwrap();
    assert_eq!((report.counts.disable, report.counts.delete), (1, 0));
    // The next full run finds it past the retention period (0 days).
    let report = sync(&app, Mode::Full).await.unwrap();
    assert_eq!((report.counts.disable, report.counts.delete), (0, 1));
    assert!(!accounts(&app).await.contains_key(&leaver.employee_number));
    let retired = app
        .state
        .provider
        .store
        .retired_names(
            "north",
            time::OffsetDateTime::now_utc() - time::Duration::days(1),
        )
        .await
        .unwrap();
    assert!(
        retired
            .iter()
            .any(|name| name == text(&account, "/userName")),
        "{retired:?}"
    );
    assert!(sync(&app, Mode::Full).await.unwrap().plan.is_empty());
    app.stop().await;
}

#[tokio::test]
async fn one_run_at_a_time_per_source() {
    let Some(slapd) = Slapd::start(&school_ldif(10).ldif) else {
        return;
    };
    let secrets = tempfile::tempdir().unwrap();
    let app = app_for(&slapd, &secrets, "passwords = false").await;
    let store = &app.state.provider.store;
    let now = time::OffsetDateTime::now_utc();
    assert!(
        store
            .take_lease(
                &scope(),
                "another process",
                now,
                now + time::Duration::minutes(2)
            )
            .await
            .unwrap()
    );
    let error = sync(&app, Mode::Apply).await.unwrap_err();
    assert!(matches!(error, sync::Error::Busy(_)), "{error}");
    // A dry run changes nothing, so it needs no lease.
    sync(&app, Mode::DryRun).await.unwrap();
    // An expired lease (its holder died) is taken over.
    let past = now - time::Duration::minutes(5);
    store
        .release_lease(&scope(), "another process")
        .await
        .unwrap();
    store
        .take_lease(
            &scope(),
            "a dead process",
            past,
            past + time::Duration::minutes(2),
        )
        .await
        .unwrap();
    assert_eq!(sync(&app, Mode::Apply).await.unwrap().counts.create, 16);
    app.stop().await;
}

#[tokio::test]
async fn the_daemon_runs_a_source_on_its_schedule() {
    let Some(slapd) = Slapd::start(&school_ldif(10).ldif) else {
        return;
    };
    let secrets = tempfile::tempdir().unwrap();
    let app = app_for(&slapd, &secrets, "passwords = false\ninterval_minutes = 60").await;
    // The first scheduled run starts a few seconds after start-up.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let run = loop {
        let status = sync::status(&app.state.provider, "north").await.unwrap();
        if let Some(run) = status[0].last_run.clone() {
            break run;
        }
        assert!(std::time::Instant::now() < deadline, "no scheduled run");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert_eq!(run.outcome, "applied");
    assert_eq!(run.report["counts"]["create"], 16);
    assert_eq!(accounts(&app).await.len(), 16);
    app.stop().await;
}

#[tokio::test]
async fn check_config_connect_says_a_certificate_it_cannot_trust_is_a_tls_problem() {
    let Some((slapd, tls)) = Slapd::start_tls(&school_ldif(12).ldif) else {
        return;
    };
    let secrets = tempfile::tempdir().unwrap();
    // The source on `url` with `extra` lines in its table.
    let check = |url: &str, extra: String| {
        let source = source_toml(&slapd, &secrets, &extra).replace(
            &format!("url = \"{}\"", slapd.url),
            &format!("url = \"{url}\""),
        );
        let setup = Setup::with_config(|text| with_source(text, &source));
        let output = setup.run(&["check-config", "--connect"]);
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
        )
    };
    let starttls =
        |ca: &std::path::Path| format!("starttls = true\nca_file = \"{}\"", ca.display());

    let (fine, stdout) = check(&slapd.url, starttls(&tls.other_ca_file));
    assert!(!fine, "{stdout}");
    let failed = format!(
        "  FAILED: TLS with {} failed: invalid peer certificate: UnknownIssuer: the server's certificate is not signed by a CA in `ca_file` (or, without one, by a CA the system trusts)",
        slapd.url
    );
    assert!(
        stdout.lines().any(|line| line == failed),
        "expected `{failed}` in:\n{stdout}"
    );

    let right = [
        (slapd.url.as_str(), starttls(&tls.ca_file)),
        (
            tls.ldaps_url.as_str(),
            format!("ca_file = \"{}\"", tls.ca_file.display()),
        ),
    ];
    for (url, extra) in right {
        let (fine, stdout) = check(url, extra);
        assert!(fine, "{url}:\n{stdout}\n{}", slapd.log());
        assert!(stdout.contains(&format!("({url}):\n")), "{stdout}");
        assert!(
            stdout.contains(&format!("bound as {}", slapd.reader_dn)),
            "{stdout}"
        );
        assert!(
            stdout.contains(&format!("students: 12 entries under {STUDENTS}")),
            "{stdout}"
        );
    }
    assert_eq!(slapd.log().matches(" TLS established ").count(), 2);
}

#[tokio::test]
async fn unchanged_entries_are_skipped_until_the_mapping_rules_change() {
    let directory = school_ldif(30);
    let Some(slapd) = Slapd::start(&directory.ldif) else {
        return;
    };
    let secrets = tempfile::tempdir().unwrap();
    let source = source_toml(&slapd, &secrets, "passwords = false");
    let setup = Setup::with_config(|text| with_source(text, &source));
    let sync = |args: &[&str]| {
        let mut all = vec!["sync", SOURCE, "--school", "north", "--json"];
        all.extend(args);
        let report: Value = serde_json::from_str(&setup.ok(&all)).unwrap();
        report["counts"].clone()
    };
    assert_eq!(sync(&[])["create"], 36);
    assert_eq!(sync(&["--full"])["update"], 0);
    // The same entries, read by other rules: every student's year group goes.
    let text = std::fs::read_to_string(&setup.config).unwrap();
    std::fs::write(
        &setup.config,
        text.replace("year_group = \"departmentNumber\"\n", ""),
    )
    .unwrap();
    let counts = sync(&["--full"]);
    assert_eq!(counts["update"], 30, "{counts}");
    assert_eq!(sync(&["--full"])["update"], 0);
}

#[tokio::test]
async fn a_run_reads_everything_again_once_the_last_full_run_is_too_old() {
    let Some(slapd) = Slapd::start(&school_ldif(12).ldif) else {
        return;
    };
    let secrets = tempfile::tempdir().unwrap();
    let source = source_toml(&slapd, &secrets, "passwords = false\nfull_every_hours = 24");
    let setup = Setup::with_config(|text| with_source(text, &source));
    let full = |setup: &Setup| {
        let all = ["sync", SOURCE, "--school", "north", "--json"];
        let report: Value = serde_json::from_str(&setup.ok(&all)).unwrap();
        report["full"].as_bool().unwrap()
    };
    assert!(full(&setup), "the first run");
    assert!(!full(&setup), "the last full run is recent");
    // The last full run, a day and an hour ago.
    let database = setup.dir.path().join("rollcall.db");
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", database.display()))
        .await
        .unwrap();
    let earlier = time::OffsetDateTime::now_utc() - time::Duration::hours(25);
    sqlx::query("UPDATE sync_cursors SET full_at = ?1")
        .bind(rollcall::store::format_time(earlier))
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    assert!(full(&setup), "24 hours have passed");
    assert!(!full(&setup));
}
