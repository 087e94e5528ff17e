//! Google Workspace sync against the test Directory API ([`crate::google_api`]): a first run
//! creates exactly the generated domain (1,600 users over several pages, teaching groups chosen
//! by their address, nested groups flattened), a second plans nothing, and suspensions,
//! deletions, returns and moves come through; quota errors and 5xx are retried, tokens are
//! renewed, a run that cannot finish gives up at its deadline and changes nothing, a key the
//! token endpoint refuses fails clearly, and `rollcall check-config --connect` reports on the
//! source.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use rollcall::scim::schema::{Kind, SCHOOL_GROUP, SCHOOL_USER};
use rollcall::store::{Record, Scope};
use rollcall::sync::{self, Mode, Outcome, Report};

use crate::cli::Setup;
use crate::google_api::{
    ADMIN, CLIENT_EMAIL, DOMAIN, Domain, Endpoint, FakeGoogle, Fault, GROUPS_SCOPE, NOT_ADMIN,
    Seen, USERS_SCOPE, generate, service_account, stranger,
};
use crate::harness::TestApp;
use crate::sync::with_source;

const SOURCE: &str = "google";

/// The `[[schools.sources]]` table of a Google source on `fake` (its key written to
/// `secrets`), with `extra` lines for the source's table.
fn source_toml(fake: &FakeGoogle, secrets: &tempfile::TempDir, extra: &str) -> String {
    let key = secrets.path().join("service-account.json");
    if !key.exists() {
        std::fs::write(&key, service_account().key_json(&fake.token_url)).unwrap();
    }
    format!(
        r#"
[[schools.sources]]
id = "{SOURCE}"
kind = "google"
key_file = "{key}"
admin = "{ADMIN}"
api_url = "{api}"
timeout_secs = 5
{extra}

[schools.sources.students]
org_unit = "/Students"
year_group = "orgUnitPath"
year_group_pattern = 'Year (?<year>\d+)$'

[schools.sources.tutors]
org_unit = "/Staff"

[schools.sources.groups]
match_on = "email"
teaching = '^\d+[a-z]-[a-z]+\d@'
flatten_nested = true

[[schools.sources.groups.courses]]
pattern = '^12[a-z]-ma\d@'
courses = ["Mathematics Year 1 (AS)"]

"#,
        key = key.display(),
        api = fake.url,
    )
}

async fn app_for(fake: &FakeGoogle, secrets: &tempfile::TempDir, extra: &str) -> TestApp {
    let source = source_toml(fake, secrets, extra);
    TestApp::start_with(move |text| with_source(text, &source)).await
}

async fn run(app: &TestApp, mode: Mode) -> Result<Report, sync::Error> {
    sync::run(&app.state.provider, "north", SOURCE, mode, &|_| {}).await
}

fn scope() -> Scope {
    Scope {
        school_id: "north".into(),
        source: SOURCE.into(),
    }
}

async fn owned(app: &TestApp, kind: Kind, key: &str) -> BTreeMap<String, Record> {
    let records = app
        .state
        .provider
        .store
        .owned(&scope(), kind)
        .await
        .unwrap();
    records
        .into_iter()
        .map(|r| (r.data[key].as_str().unwrap_or_default().to_owned(), r))
        .collect()
}

/// The source's accounts by anchor (the Google user's id, their externalId).
async fn accounts(app: &TestApp) -> BTreeMap<String, Record> {
    owned(app, Kind::User, "externalId").await
}

/// The source's teaching groups by name.
async fn groups(app: &TestApp) -> BTreeMap<String, Record> {
    owned(app, Kind::Group, "displayName").await
}

fn school(record: &Record, name: &str) -> String {
    record.data[SCHOOL_USER][name]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn active(record: &Record) -> bool {
    record.data["active"].as_bool().unwrap()
}

/// The users the source reads: under `/Students` or `/Staff`, not deleted.
fn read_users(domain: &Domain) -> Vec<&crate::google_api::User> {
    domain
        .users
        .iter()
        .filter(|u| !u.deleted && (Domain::under(u, "/Students") || Domain::under(u, "/Staff")))
        .collect()
}

/// The teaching groups: `{year}{form}-{subject}{n}@`.
fn teaching(domain: &Domain) -> Vec<&crate::google_api::Group> {
    let pattern = regex::Regex::new(r"^\d+[a-z]-[a-z]+\d@").unwrap();
    domain
        .groups
        .iter()
        .filter(|g| pattern.is_match(&g.email))
        .collect()
}

/// Asserts that the stored accounts and groups are exactly the domain's.
fn assert_matches(
    domain: &Domain,
    accounts: &BTreeMap<String, Record>,
    groups: &BTreeMap<String, Record>,
) {
    let people = read_users(domain);
    let wanted: Vec<_> = people
        .iter()
        .filter(|u| !u.suspended && !u.archived)
        .collect();
    assert_eq!(accounts.len(), wanted.len());
    for user in &wanted {
        let account = &accounts[&user.id];
        assert_eq!(account.data["name"]["givenName"], user.given.as_str());
        assert_eq!(account.data["name"]["familyName"], user.family.as_str());
        assert_eq!(account.data["emails"][0]["value"], user.email.as_str());
        assert_eq!(
            school(account, "studentNumber"),
            user.number.clone().unwrap()
        );
        if user.org_unit.starts_with("/Students/Year ") {
            assert_eq!(school(account, "role"), "student");
            assert_eq!(
                school(account, "yearGroup"),
                user.org_unit.trim_start_matches("/Students/Year ")
            );
        } else {
            assert_eq!(school(account, "role"), "tutor");
            assert_eq!(school(account, "yearGroup"), "");
        }
        assert!(active(account));
    }
    let by_id: BTreeMap<&str, &str> = accounts
        .iter()
        .map(|(anchor, r)| (r.id.as_str(), anchor.as_str()))
        .collect();
    let teaching = teaching(domain);
    assert_eq!(groups.len(), teaching.len());
    for group in teaching {
        let stored = &groups[&group.name];
        let members: BTreeSet<String> = stored
            .links
            .iter()
            .map(|l| by_id[l.id.as_str()].to_owned())
            .collect();
        let expected: BTreeSet<String> = domain
            .people_of(&group.email)
            .into_iter()
            .filter(|id| accounts.contains_key(id))
            .collect();
        assert_eq!(members, expected, "{}", group.email);
    }
}

fn statuses(seen: &[Seen], endpoint: Endpoint) -> BTreeMap<u16, usize> {
    let mut out = BTreeMap::new();
    for s in seen.iter().filter(|s| s.endpoint == endpoint) {
        *out.entry(s.status).or_default() += 1;
    }
    out
}

const PER_YEAR: usize = 220;

#[tokio::test]
async fn a_first_sync_creates_exactly_the_domain_and_changes_come_through() {
    let domain = generate(PER_YEAR);
    let fake = FakeGoogle::start(domain.clone()).await;
    let secrets = tempfile::tempdir().unwrap();
    let app = app_for(&fake, &secrets, "").await;

    let report = run(&app, Mode::Apply).await.unwrap();
    assert_eq!(report.outcome, Outcome::Applied);
    let people = read_users(&domain);
    let students = people
        .iter()
        .filter(|u| u.org_unit.starts_with("/Students"))
        .count();
    assert!(students + 60 > 1500, "a domain of more than 1,500 users");
    assert_eq!(report.read.students, students);
    assert_eq!(report.read.tutors, 60);
    assert_eq!(report.read.groups, domain.groups.len());
    let inactive = people.iter().filter(|u| u.suspended || u.archived).count();
    assert!(inactive >= 10, "{inactive}");
    assert_eq!(report.counts.create, people.len() - inactive);
    assert_eq!(report.counts.create_groups, teaching(&domain).len());
    assert_eq!(report.counts.skipped, 0, "{:?}", report.plan.skipped);
    assert_eq!(report.counts.disable, 0);

    let accounts = accounts(&app).await;
    let groups = groups(&app).await;
    assert_matches(&domain, &accounts, &groups);
    assert!(
        !groups.contains_key("13A/Ps1"),
        "its address is not a teaching group's"
    );
    assert!(!groups.contains_key("General studies extra"));
    // Nested groups (two deep, in a cycle) bring their members.
    let general: BTreeSet<&str> = groups["12Z/Gs1"]
        .links
        .iter()
        .map(|l| l.id.as_str())
        .collect();
    for nested in &domain.group(&format!("gs-extra-2@{DOMAIN}")).members {
        if let Some(account) = accounts.get(&nested.id) {
            assert!(general.contains(account.id.as_str()), "{}", nested.id);
        }
    }
    // Courses from a rule on the address.
    let courses: Vec<&str> = groups["12A/Ma1"].data[SCHOOL_GROUP]["courses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["value"].as_str().unwrap())
        .collect();
    assert_eq!(courses, ["MA-Y1-AS", "MA-Y1-STAT", "MA-Y1-MECH"]);
    assert!(!groups["11A/Ma1"].data.contains_key(SCHOOL_GROUP));

    // What the API saw: pages of 500 users, groups by 200, members only of the groups that
    // matter, 12Z/Gs1's over three pages; one token.
    let seen = fake.take_seen();
    assert_eq!(fake.tokens_issued(), 1);
    let users: Vec<&Seen> = seen
        .iter()
        .filter(|s| s.endpoint == Endpoint::Users)
        .collect();
    let students_pages: Vec<&&Seen> = users
        .iter()
        .filter(|s| s.query["query"] == "orgUnitPath='/Students'")
        .collect();
    assert_eq!(students_pages.len(), students.div_ceil(500));
    assert!(
        students_pages[1..]
            .iter()
            .all(|s| s.query.contains_key("pageToken"))
    );
    for page in &users {
        assert_eq!(page.status, 200);
        assert_eq!(page.query["customer"], "my_customer");
        assert_eq!(page.query["maxResults"], "500");
        assert_eq!(page.query["showDeleted"], "false");
        assert_eq!(page.query["projection"], "full");
    }
    assert_eq!(
        users.len(),
        students_pages.len() + 1,
        "and one page of staff"
    );
    let group_pages: Vec<&Seen> = seen
        .iter()
        .filter(|s| s.endpoint == Endpoint::Groups)
        .collect();
    assert_eq!(group_pages.len(), 1);
    assert_eq!(group_pages[0].query["maxResults"], "200");
    let member_paths: Vec<&str> = seen
        .iter()
        .filter(|s| s.endpoint == Endpoint::Members)
        .map(|s| s.path.as_str())
        .collect();
    let path = |email: &str| {
        format!(
            "/admin/directory/v1/groups/{}/members",
            domain.group(&format!("{email}@{DOMAIN}")).id
        )
    };
    assert_eq!(
        member_paths
            .iter()
            .filter(|p| **p == path("12z-gs1"))
            .count(),
        3
    );
    assert_eq!(
        member_paths
            .iter()
            .filter(|p| **p == path("gs-extra"))
            .count(),
        1
    );
    assert_eq!(
        member_paths
            .iter()
            .filter(|p| **p == path("gs-extra-2"))
            .count(),
        1
    );
    for unread in ["everyone", "staff", "psych-13a"] {
        assert!(!member_paths.contains(&path(unread).as_str()), "{unread}");
    }
    assert_eq!(
        member_paths.len(),
        (teaching(&domain).len() - 1) + 3 + 2,
        "one page per teaching group, three for 12Z/Gs1, and the nested two"
    );

    let again = run(&app, Mode::Apply).await.unwrap();
    assert!(again.plan.is_empty(), "{:?}", again.counts);
    let versions =
        |a: &BTreeMap<String, Record>| -> Vec<i64> { a.values().map(|r| r.version).collect() };
    assert_eq!(versions(&self::accounts(&app).await), versions(&accounts));

    // A suspension, a deletion, a return from suspension, an archived user, a move to
    // another year and out of a group.
    let active_students: Vec<&&crate::google_api::User> = people
        .iter()
        .filter(|u| u.org_unit.starts_with("/Students") && !u.suspended && !u.archived)
        .collect();
    let suspended = active_students[10].id.clone();
    let deleted = active_students[11].id.clone();
    let archived = active_students[12].id.clone();
    let returner = people.iter().find(|u| u.suspended).unwrap().id.clone();
    let mover = active_students
        .iter()
        .find(|u| u.org_unit == "/Students/Year 12")
        .unwrap()
        .id
        .clone();
    fake.edit(|d| {
        for user in &mut d.users {
            if user.id == suspended {
                user.suspended = true;
            } else if user.id == deleted {
                user.deleted = true;
            } else if user.id == archived {
                user.archived = true;
            } else if user.id == returner {
                user.suspended = false;
            } else if user.id == mover {
                user.org_unit = "/Students/Year 13".into();
            }
        }
        for group in &mut d.groups {
            group
                .members
                .retain(|m| m.id != mover || !group.email.starts_with("12"));
        }
    });
    let changed = run(&app, Mode::Apply).await.unwrap();
    assert_eq!(changed.outcome, Outcome::Applied);
    assert_eq!(changed.counts.disable, 3, "{:?}", changed.plan.disable);
    assert_eq!(changed.counts.create, 1, "the returner was never created");
    assert_eq!(changed.counts.update, 1, "{:?}", changed.plan.update);
    let after = self::accounts(&app).await;
    for gone in [&suspended, &deleted, &archived] {
        assert!(!active(&after[gone]), "disabled, not deleted");
    }
    assert!(active(&after[&returner]));
    assert_eq!(school(&after[&mover], "yearGroup"), "13");
    assert_eq!(after[&mover].id, accounts[&mover].id, "the same account");
    let groups_now = self::groups(&app).await;
    let mover_id = after[&mover].id.clone();
    assert!(
        groups_now
            .iter()
            .filter(|(name, _)| name.starts_with("12"))
            .all(|(_, g)| g.links.iter().all(|l| l.id != mover_id))
    );
    app.stop().await;
    fake.stop().await;
}

#[tokio::test]
async fn quota_errors_and_server_errors_are_retried_and_everything_is_applied() {
    let domain = generate(80);
    let fake = FakeGoogle::start(domain.clone()).await;
    let secrets = tempfile::tempdir().unwrap();
    let app = app_for(&fake, &secrets, "page_size = 100\npasswords = false").await;
    // The token endpoint once; the second page of students twice, the last once; the groups
    // list with a 429 that says when to come back; members here and there.
    fake.fail(Endpoint::Token, 0, Fault::Status(503));
    fake.fail(Endpoint::Users, 1, Fault::Quota("userRateLimitExceeded"));
    fake.fail(Endpoint::Users, 2, Fault::Status(503));
    fake.fail(Endpoint::Users, 7, Fault::Status(500));
    fake.fail(Endpoint::Groups, 0, Fault::TooMany { retry_after: 1 });
    fake.fail(Endpoint::Members, 3, Fault::Quota("rateLimitExceeded"));
    fake.fail(Endpoint::Members, 4, Fault::Status(500));
    fake.fail(Endpoint::Members, 20, Fault::Quota("quotaExceeded"));
    let started = Instant::now();
    let report = run(&app, Mode::Apply).await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After: 1 was honoured"
    );
    assert_eq!(report.outcome, Outcome::Applied);
    assert_eq!(report.counts.skipped, 0);
    assert_matches(&domain, &accounts(&app).await, &groups(&app).await);

    let seen = fake.take_seen();
    assert_eq!(
        statuses(&seen, Endpoint::Token),
        BTreeMap::from([(200, 1), (503, 1)])
    );
    let students = read_users(&domain)
        .iter()
        .filter(|u| u.org_unit.starts_with("/Students"))
        .count();
    let pages = students.div_ceil(100) + 1;
    assert_eq!(
        statuses(&seen, Endpoint::Users),
        BTreeMap::from([(200, pages), (403, 1), (500, 1), (503, 1)])
    );
    assert_eq!(
        statuses(&seen, Endpoint::Groups),
        BTreeMap::from([(200, 1), (429, 1)])
    );
    let members = statuses(&seen, Endpoint::Members);
    assert_eq!((members[&403], members[&500]), (2, 1));
    // Each failed request was asked again as it was: the same page, the same token.
    for (index, failed) in seen.iter().enumerate().filter(|(_, s)| s.status != 200) {
        let again = seen[index + 1..]
            .iter()
            .find(|s| s.endpoint == failed.endpoint)
            .unwrap();
        assert_eq!((&again.path, &again.query), (&failed.path, &failed.query));
    }
    // The pages of students: 100 each, every one read once.
    let tokens: Vec<Option<&String>> = seen
        .iter()
        .filter(|s| s.endpoint == Endpoint::Users && s.status == 200)
        .filter(|s| s.query["query"] == "orgUnitPath='/Students'")
        .map(|s| s.query.get("pageToken"))
        .collect();
    assert_eq!(tokens.len(), students.div_ceil(100));
    assert_eq!(tokens.iter().collect::<BTreeSet<_>>().len(), tokens.len());
    assert!(
        seen.iter()
            .filter(|s| s.endpoint != Endpoint::Token)
            .all(|s| s.query.get("maxResults").is_some_and(|m| m == "100"))
    );
    app.stop().await;
    fake.stop().await;
}

#[tokio::test]
async fn a_token_is_renewed_before_it_expires_and_after_it_is_revoked() {
    let domain = generate(20);
    let fake = FakeGoogle::start(domain.clone()).await;
    let secrets = tempfile::tempdir().unwrap();
    let app = app_for(&fake, &secrets, "passwords = false").await;
    // Three-second tokens and slow answers: the run outlives a token or two.
    fake.token_lifetime(3);
    fake.delay(Duration::from_millis(60));
    let report = run(&app, Mode::Apply).await.unwrap();
    assert_eq!(report.outcome, Outcome::Applied);
    let seen = fake.take_seen();
    let refused = seen.iter().filter(|s| s.status == 401).count();
    assert!(
        seen.iter().all(|s| s.status == 200 || s.status == 401),
        "{seen:?}"
    );
    // Renewed before it expired: more tokens than the first and those after a refusal (none,
    // unless a request took longer than the last tenth of a token's life to arrive).
    assert!(
        fake.tokens_issued() > 1 + refused,
        "{} tokens, {refused} refused",
        fake.tokens_issued()
    );
    assert_matches(&domain, &accounts(&app).await, &groups(&app).await);

    // Tokens revoked in the middle of a run: one 401, a new token, and on.
    fake.delay(Duration::ZERO);
    fake.token_lifetime(3599);
    let before = fake.tokens_issued();
    fake.revoke_at(10);
    let report = run(&app, Mode::Apply).await.unwrap();
    assert!(report.plan.is_empty(), "{:?}", report.counts);
    let seen = fake.take_seen();
    let refused: Vec<&Seen> = seen.iter().filter(|s| s.status == 401).collect();
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(
        fake.tokens_issued(),
        before + 2,
        "the run's first, and one after the 401"
    );
    app.stop().await;
    fake.stop().await;
}

#[tokio::test]
async fn a_run_that_cannot_finish_gives_up_at_its_deadline_and_changes_nothing() {
    let domain = generate(10);
    let fake = FakeGoogle::start(domain.clone()).await;
    let secrets = tempfile::tempdir().unwrap();
    let app = app_for(&fake, &secrets, "deadline_secs = 10\npasswords = false").await;
    run(&app, Mode::Apply).await.unwrap();
    let before = accounts(&app).await;
    fake.take_seen();

    let leaver = read_users(&domain)
        .into_iter()
        .find(|u| !u.suspended && !u.archived)
        .unwrap()
        .id
        .clone();
    fake.edit(|d| d.users.retain(|u| u.id != leaver));
    fake.always(Some(Fault::Status(503)));
    let started = Instant::now();
    let error = run(&app, Mode::Apply).await.unwrap_err();
    let elapsed = started.elapsed();
    let message = error.to_string();
    assert!(
        matches!(
            error,
            sync::Error::Google(rollcall::sync::google::Error::Deadline { .. })
        ),
        "{message}"
    );
    assert!(
        elapsed >= Duration::from_secs(10) && elapsed < Duration::from_secs(14),
        "{elapsed:?}"
    );
    assert!(
        message.contains("gave up reading students in org unit `/Students` (page 1)"),
        "{message}"
    );
    assert!(message.contains("deadline_secs = 10"), "{message}");
    assert!(
        message.contains("503 The service is currently unavailable."),
        "{message}"
    );
    assert!(message.contains("Nothing was changed"), "{message}");
    let seen = fake.take_seen();
    let tries = seen.iter().filter(|s| s.status == 503).count();
    // Backoff: 0.5 s, 1 s, 2 s, 4 s, 8 s … at most, with jitter.
    assert!((5..60).contains(&tries), "{tries} tries");
    assert!(
        message.contains(&format!("with {tries} request(s) retried")),
        "{message}"
    );

    let after = accounts(&app).await;
    assert!(active(&after[&leaver]), "nothing was disabled");
    let versions =
        |a: &BTreeMap<String, Record>| -> Vec<i64> { a.values().map(|r| r.version).collect() };
    assert_eq!(versions(&after), versions(&before));
    let status = sync::status(&app.state.provider, "north").await.unwrap();
    let last = status[0].last_run.as_ref().unwrap();
    assert_eq!(last.outcome, "failed");
    assert!(
        last.report["error"]
            .as_str()
            .unwrap()
            .contains("deadline_secs = 10"),
        "{}",
        last.report
    );

    // Once the API answers again, the leaver comes through.
    fake.always(None);
    let report = run(&app, Mode::Apply).await.unwrap();
    assert_eq!(report.counts.disable, 1);
    app.stop().await;
    fake.stop().await;
}

#[tokio::test]
async fn a_refused_key_missing_delegation_or_a_non_admin_fail_clearly() {
    let domain = generate(5);
    let fake = FakeGoogle::start(domain).await;
    let secrets = tempfile::tempdir().unwrap();
    // A key the token endpoint does not know: its signature does not verify.
    std::fs::write(
        secrets.path().join("service-account.json"),
        stranger().key_json(&fake.token_url),
    )
    .unwrap();
    let app = app_for(&fake, &secrets, "passwords = false").await;
    let error = run(&app, Mode::Apply).await.unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains(&format!(
            "{}/token refused a token for the service account {CLIENT_EMAIL} acting for {ADMIN}: \
             invalid_grant: Invalid JWT Signature.",
            fake.url
        )),
        "{message}"
    );
    assert!(message.contains("create a new key"), "{message}");
    assert!(!message.contains("PRIVATE KEY"), "{message}");
    assert!(accounts(&app).await.is_empty());
    let status = sync::status(&app.state.provider, "north").await.unwrap();
    assert_eq!(status[0].last_run.as_ref().unwrap().outcome, "failed");
    app.stop().await;

    // The right key, but delegation covers only the users' scope.
    std::fs::write(
        secrets.path().join("service-account.json"),
        service_account().key_json(&fake.token_url),
    )
    .unwrap();
    fake.grant(&[USERS_SCOPE]);
    let app = app_for(&fake, &secrets, "passwords = false").await;
    let message = run(&app, Mode::Apply).await.unwrap_err().to_string();
    assert!(message.contains("unauthorized_client"), "{message}");
    assert!(
        message.contains("domain-wide delegation is not granted"),
        "{message}"
    );
    assert!(message.contains(GROUPS_SCOPE), "{message}");
    app.stop().await;

    // Acting for someone who is not an admin.
    fake.grant(&[USERS_SCOPE, GROUPS_SCOPE]);
    let source = source_toml(&fake, &secrets, "passwords = false").replace(ADMIN, NOT_ADMIN);
    let app = TestApp::start_with(move |text| with_source(text, &source)).await;
    let message = run(&app, Mode::Apply).await.unwrap_err().to_string();
    assert!(
        message.contains(
            "reading students in org unit `/Students` (page 1): refused: 403 Not \
                          Authorized to access this resource/api (forbidden)"
        ),
        "{message}"
    );
    assert!(
        message.contains(&format!("acts for {NOT_ADMIN}")),
        "{message}"
    );
    app.stop().await;

    // A key file that is not a service account's.
    std::fs::write(
        secrets.path().join("service-account.json"),
        "{\"type\": \"authorized_user\"}",
    )
    .unwrap();
    let app = app_for(&fake, &secrets, "passwords = false").await;
    let message = run(&app, Mode::Apply).await.unwrap_err().to_string();
    assert!(
        message.contains("is a `authorized_user` key, not a service account's"),
        "{message}"
    );
    app.stop().await;
    fake.stop().await;
}

#[tokio::test]
async fn check_config_connect_reports_on_a_google_source() {
    let fake = FakeGoogle::start(generate(20)).await;
    let secrets = tempfile::tempdir().unwrap();
    let check = |source: String| async move {
        let setup = Setup::with_config(|text| with_source(text, &source));
        let output = tokio::task::spawn_blocking(move || setup.run(&["check-config", "--connect"]))
            .await
            .unwrap();
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
        )
    };
    let good = source_toml(&fake, &secrets, "");
    let (fine, stdout) = check(good.clone()).await;
    assert!(fine, "{stdout}");
    for line in [
        format!(
            "token obtained for {CLIENT_EMAIL} acting for {ADMIN} ({USERS_SCOPE} {GROUPS_SCOPE})"
        ),
        "students: 139 users in org unit `/Students`".into(),
        "tutors: 60 users in org unit `/Staff`".into(),
        "groups: 69 groups of the Google customer, 64 of them teaching groups".into(),
    ] {
        assert!(stdout.contains(&line), "expected `{line}` in:\n{stdout}");
    }
    let cases = [
        (
            good.replace("org_unit = \"/Students\"", "org_unit = \"/Pupils\""),
            "students: Google Workspace: the students org unit `/Pupils` does not exist",
        ),
        (
            good.replace("org_unit = \"/Staff\"", "org_unit = \"/Alumni\""),
            "tutors: no users in org unit `/Alumni`",
        ),
        (
            good.replace(ADMIN, "nobody@north.example"),
            "invalid_grant: Invalid email or User ID (no such user",
        ),
        (
            good.replace(&fake.url, "http://127.0.0.1:1"),
            "FAILED: Google Workspace: cannot reach http://127.0.0.1:1/admin/directory/v1/users",
        ),
    ];
    for (source, expected) in cases {
        let (fine, stdout) = check(source).await;
        assert!(!fine, "{stdout}");
        assert!(
            stdout.contains(expected),
            "expected `{expected}` in:\n{stdout}"
        );
    }
    fake.stop().await;
}
