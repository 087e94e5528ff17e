//! Several `rollcall serve` processes on one PostgreSQL database, as a trust runs them behind a
//! load balancer: concurrent writes through both keep usernames unique and lose no update,
//! ETags and log-in throttling hold across instances, and a directory source runs on one
//! instance at a time, the other taking over when the holder dies. `migrate-store` moves a
//! school from SQLite onto such a database.
//!
//! These run in the PostgreSQL pass of the suite (`ROLLCALL_TEST_STORE=postgres`, which
//! `scripts/test.sh` runs), where a server is at hand; the SQLite pass says so and leaves them.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::task::JoinSet;

use crate::cli::{Daemon, Setup};
use crate::harness::*;
use crate::postgres::TestDatabase;

/// The configuration two instances share, on a fresh database, with its admin's and SCIM
/// client's tokens.
struct Trust {
    setup: Setup,
    database: Option<TestDatabase>,
    admin: String,
    scim: String,
}

impl Trust {
    /// `slow_hashing`: argon2 at its default cost (a sync run then takes seconds), else the
    /// tests' cheap one.
    async fn new(source: &str, slow_hashing: bool) -> Option<Trust> {
        if test_store() != "postgres" {
            eprintln!("instances: runs in the PostgreSQL pass (ROLLCALL_TEST_STORE=postgres)");
            return None;
        }
        let database = TestDatabase::create().await;
        let url = database.url.clone();
        let source = source.to_owned();
        let setup = Setup::with_config(move |text| {
            let mut text = crate::sync::with_source(text, &source);
            if slow_hashing {
                text = text.replacen(
                    "[argon2]\nmemory_kib = 64\niterations = 1\nparallelism = 1\n",
                    "",
                    1,
                );
            }
            let start = text.find("[store]").unwrap();
            let end = start + text[start..].find("\n\n").unwrap();
            format!("{}[store]\nurl = \"{url}\"{}", &text[..start], &text[end..])
        });
        let admin = setup.create_admin("office");
        let scim = setup.create_token("north", "entra");
        Some(Trust {
            setup,
            database: Some(database),
            admin,
            scim,
        })
    }

    async fn stop(mut self, daemons: Vec<Daemon>) {
        drop(daemons);
        if let Some(database) = self.database.take() {
            database.drop_now().await;
        }
    }
}

async fn scim(
    http: &reqwest::Client,
    daemon: &str,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
    if_match: Option<&str>,
) -> (StatusCode, Option<String>, Value) {
    let mut request = http
        .request(method, format!("{daemon}/scim/v2{path}"))
        .bearer_auth(token);
    if let Some(body) = body {
        request = request
            .header("content-type", "application/scim+json")
            .body(body.to_string());
    }
    if let Some(etag) = if_match {
        request = request.header("if-match", etag);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let etag = response
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let text = response.text().await.unwrap();
    (
        status,
        etag,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[tokio::test]
async fn two_instances_keep_usernames_unique_lose_no_update_and_share_etags() {
    let Some(trust) = Trust::new("", false).await else {
        return;
    };
    let (a, b) = (trust.setup.serve(&[]).await, trust.setup.serve(&[]).await);
    let roots = [a.root.clone(), b.root.clone()];
    let http = reqwest::Client::new();

    // 40 students named John Smith created at once through both instances: 40 usernames.
    let mut creating = JoinSet::new();
    for n in 0..40 {
        let (http, root, token) = (http.clone(), roots[n % 2].clone(), trust.admin.clone());
        creating.spawn(async move {
            let body = json!({ "firstName": "John", "surname": "Smith" });
            api_request(
                &http,
                &root,
                Some(&token),
                Method::POST,
                "/schools/north/users",
                Some(ApiBody::Json(&body)),
            )
            .await
        });
    }
    // And 20 SCIM creates of one userName: exactly one wins, the others are told why.
    for n in 0..20 {
        let (http, root, token) = (http.clone(), roots[n % 2].clone(), trust.scim.clone());
        creating.spawn(async move {
            let (status, _, body) = scim(
                &http,
                &root,
                &token,
                Method::POST,
                "/Users",
                Some(user("twin@north.example")),
                None,
            )
            .await;
            Reply {
                status,
                headers: Default::default(),
                body,
            }
        });
    }
    let mut names = Vec::new();
    let mut scim_created = 0;
    while let Some(reply) = creating.join_next().await {
        let reply = reply.unwrap();
        match reply.status.as_u16() {
            201 if reply.body.get("password").is_some() => {
                names.push(reply.body["userName"].as_str().unwrap().to_owned());
            }
            201 => scim_created += 1,
            409 => assert_eq!(reply.body["scimType"], "uniqueness", "{}", reply.body),
            other => panic!("answered {other}: {}", reply.body),
        }
    }
    assert_eq!(names.len(), 40);
    let distinct: HashSet<&String> = names.iter().collect();
    assert_eq!(distinct.len(), 40, "duplicate usernames: {names:?}");
    assert!(names.contains(&"smithj".to_owned()) && names.contains(&"smithj40".to_owned()));
    assert_eq!(scim_created, 1);

    // Failed log-ins count wherever they happen: five, alternating between the instances,
    // throttle the account at both (the platform's log-in API).
    let login = |root: String, password: &'static str| {
        let http = http.clone();
        async move {
            let body = json!({ "school": "north", "username": "smithj", "password": password });
            api_request(
                &http,
                &root,
                None,
                Method::POST,
                "/auth/login",
                Some(ApiBody::Json(&body)),
            )
            .await
        }
    };
    for n in 0..5 {
        let reply = login(roots[n % 2].clone(), "not the password").await;
        assert_eq!(reply.status, 401, "{}", reply.body);
    }
    for root in &roots {
        let reply = login(root.clone(), "not the password either").await;
        assert_eq!(reply.status, 429, "{}", reply.body);
        assert!(reply.headers.contains_key("retry-after"));
    }

    // A group whose members 30 concurrent PATCHes add, through both instances, without
    // If-Match: each lost race is retried, so no member is lost.
    let (status, _, group) = scim(
        &http,
        &roots[0],
        &trust.scim,
        Method::POST,
        "/Groups",
        Some(json!({ "schemas": [GROUP_URN], "displayName": "12A/Ma1" })),
        None,
    )
    .await;
    assert_eq!(status, 201, "{group}");
    let group_id = id_of(&group);
    let mut members = Vec::new();
    for n in 0..30 {
        let (status, _, created) = scim(
            &http,
            &roots[n % 2],
            &trust.scim,
            Method::POST,
            "/Users",
            Some(user(&format!("member{n}@north.example"))),
            None,
        )
        .await;
        assert_eq!(status, 201, "{created}");
        members.push(id_of(&created));
    }
    let mut patching = JoinSet::new();
    for (n, member) in members.iter().enumerate() {
        let (http, root, token) = (http.clone(), roots[n % 2].clone(), trust.scim.clone());
        let path = format!("/Groups/{group_id}");
        let patch = patch_request(
            json!([{ "op": "add", "path": "members", "value": [{ "value": member }] }]),
        );
        patching.spawn(async move {
            scim(
                &http,
                &root,
                &token,
                Method::PATCH,
                &path,
                Some(patch),
                None,
            )
            .await
        });
    }
    while let Some(done) = patching.join_next().await {
        let (status, _, body) = done.unwrap();
        assert!(status.is_success(), "{status}: {body}");
    }
    let (_, etag, group) = scim(
        &http,
        &roots[1],
        &trust.scim,
        Method::GET,
        &format!("/Groups/{group_id}"),
        None,
        None,
    )
    .await;
    let stored: HashSet<&str> = group["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["value"].as_str().unwrap())
        .collect();
    assert_eq!(stored.len(), 30, "a concurrent PATCH was lost: {group}");

    // The ETag one instance gives is the one the other checks.
    let etag = etag.expect("an ETag");
    let rename =
        patch_request(json!([{ "op": "replace", "path": "displayName", "value": "12A/Ma2" }]));
    let path = format!("/Groups/{group_id}");
    let (status, _, body) = scim(
        &http,
        &roots[0],
        &trust.scim,
        Method::PATCH,
        &path,
        Some(rename.clone()),
        Some(&etag),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, _, body) = scim(
        &http,
        &roots[1],
        &trust.scim,
        Method::PATCH,
        &path,
        Some(rename),
        Some(&etag),
    )
    .await;
    assert_eq!(status, 412, "a stale ETag at the other instance: {body}");
    trust.stop(vec![a, b]).await;
}

#[tokio::test]
async fn a_source_runs_on_one_instance_and_another_takes_over_when_it_dies() {
    let directory = crate::slapd::school_ldif(600);
    let Some(slapd) = crate::slapd::Slapd::start(&directory.ldif) else {
        return;
    };
    let secrets = tempfile::tempdir().unwrap();
    // A short lease, so that the test does not wait two minutes for the dead run's to lapse.
    let source = crate::sync::source_toml(&slapd, &secrets, "lease_secs = 5");
    let Some(trust) = Trust::new(&source, true).await else {
        return;
    };
    let (a, b) = (trust.setup.serve(&[]).await, trust.setup.serve(&[]).await);
    let http = reqwest::Client::new();
    let run = |root: String| {
        let (http, token) = (http.clone(), trust.admin.clone());
        async move {
            api_request(
                &http,
                &root,
                Some(&token),
                Method::POST,
                "/schools/north/sources/directory/runs?mode=apply",
                None,
            )
            .await
        }
    };
    // A starts the first run: 606 accounts, each with a first password to hash.
    let first = tokio::spawn(run(a.root.clone()));
    let url = trust.database.as_ref().unwrap().url.clone();
    let mut store = <sqlx::PgConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while sqlx::query_scalar::<_, i64>("SELECT count(*) FROM sync_leases")
        .fetch_one(&mut store)
        .await
        .unwrap()
        == 0
    {
        assert!(Instant::now() < deadline, "A's run never took the lease");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // While it runs, B is refused the source.
    let busy = run(b.root.clone()).await;
    assert_eq!(busy.status, StatusCode::CONFLICT, "{}", busy.body);
    assert!(
        busy.body["detail"].as_str().unwrap().contains("directory"),
        "{}",
        busy.body
    );
    // A dies mid-run: its run never commits, and its lease is never released.
    drop(a);
    first.abort();
    let killed_at = Instant::now();
    let accounts = |root: String| {
        let (http, token) = (http.clone(), trust.scim.clone());
        async move {
            let (_, _, list) = scim(
                &http,
                &root,
                &token,
                Method::GET,
                "/Users?count=0",
                None,
                None,
            )
            .await;
            list["totalResults"].as_i64().unwrap()
        }
    };
    assert_eq!(
        accounts(b.root.clone()).await,
        0,
        "the dead run wrote nothing"
    );
    // B gets the source once the dead run's lease lapses, and completes the run.
    let (done, taken) = loop {
        let asked = Instant::now();
        let reply = run(b.root.clone()).await;
        match reply.status {
            StatusCode::OK => break (reply, asked),
            StatusCode::CONFLICT => {
                assert!(
                    killed_at.elapsed() < Duration::from_secs(30),
                    "the lease never lapsed"
                );
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            other => panic!("B's run: {other} {}", reply.body),
        }
    };
    // The run that got in started within one lease of the death (plus the polling).
    let waited = taken.duration_since(killed_at);
    assert!(
        waited < Duration::from_secs(8),
        "B waited {waited:?} for a 5-second lease"
    );
    assert_eq!(done.body["outcome"], "applied", "{}", done.body);
    assert_eq!(done.body["counts"]["create"], 606, "{}", done.body);
    assert_eq!(accounts(b.root.clone()).await, 606);
    drop(store);
    trust.stop(vec![b]).await;
}

/// A count of every table school north's data lives in, as `table=count` lines (south, the
/// other school of the test configuration, has none but its name).
async fn counts(url: &str) -> String {
    let tables = [
        "schools",
        "admins",
        "tokens",
        "users",
        "user_emails",
        "groups",
        "group_members",
        "audit_events",
        "retired_user_names",
        "pending_slips",
    ];
    let mut out = String::new();
    if url.starts_with("sqlite:") {
        let mut db = <sqlx::SqliteConnection as sqlx::Connection>::connect(url)
            .await
            .unwrap();
        for table in tables {
            let n: i64 = sqlx::query_scalar(&count_sql(table))
                .fetch_one(&mut db)
                .await
                .unwrap();
            out.push_str(&format!("{table}={n}\n"));
        }
    } else {
        let mut db = <sqlx::PgConnection as sqlx::Connection>::connect(url)
            .await
            .unwrap();
        for table in tables {
            let n: i64 = sqlx::query_scalar(&count_sql(table))
                .fetch_one(&mut db)
                .await
                .unwrap();
            out.push_str(&format!("{table}={n}\n"));
        }
    }
    out
}

fn count_sql(table: &str) -> String {
    if table == "schools" {
        "SELECT count(*) FROM schools WHERE id = 'north'".into()
    } else {
        format!("SELECT count(*) FROM {table}")
    }
}

#[tokio::test]
async fn migrate_store_moves_a_school_from_sqlite_to_postgres_without_loss() {
    if test_store() != "postgres" {
        eprintln!("instances: runs in the PostgreSQL pass (ROLLCALL_TEST_STORE=postgres)");
        return;
    }
    // A school on SQLite: a class imported with its group and course, a SCIM client's account
    // with a pending slip, an admin and tokens, and the audit trail of all that.
    const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    let setup = Setup::new();
    let admin = setup.create_admin("office");
    let scim_token = setup.create_token("north", "entra");
    let class = setup.dir.path().join("class.txt");
    std::fs::write(
        &class,
        "First name\tSurname\nAda\tLovelace\nAlan\tTuring\nJohn\tSmith\nJane\tSmith\n",
    )
    .unwrap();
    let imported = setup
        .command(&[
            "import",
            "--school",
            "north",
            "--group",
            "12A/Ma1",
            "--course",
            "Mathematics Year 1 (AS)",
            class.to_str().unwrap(),
        ])
        .env("ROLLCALL_SLIP_KEY", KEY)
        .output()
        .unwrap();
    assert!(
        imported.status.success(),
        "{}",
        String::from_utf8_lossy(&imported.stderr)
    );
    let imported = String::from_utf8(imported.stdout).unwrap();
    let line = imported
        .lines()
        .find(|l| l.contains("smithj2"))
        .expect("smithj2 imported");
    let password = line.split_whitespace().last().unwrap().to_owned();
    let daemon = setup.serve(&[("ROLLCALL_SLIP_KEY", KEY)]).await;
    let http = reqwest::Client::new();
    let (status, _, body) = scim(
        &http,
        &daemon.root,
        &scim_token,
        Method::POST,
        "/Users",
        Some(user("grace@north.example")),
        None,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    drop(daemon);

    let sqlite = format!(
        "sqlite://{}",
        setup.dir.path().join("rollcall.db").display()
    );
    let database = TestDatabase::create().await;
    let before = counts(&sqlite).await;
    let copy = |target: &str| {
        setup
            .command(&[
                "migrate-store",
                "--from",
                &sqlite,
                "--to",
                target,
                "--school",
                "north",
            ])
            .output()
            .unwrap()
    };
    let moved = copy(&database.url);
    assert!(
        moved.status.success(),
        "{}",
        String::from_utf8_lossy(&moved.stderr)
    );
    let report = String::from_utf8(moved.stdout).unwrap();
    assert!(report.contains("verified table by table"), "{report}");
    let users_line = report
        .lines()
        .find(|l| l.trim_start().starts_with("users "))
        .unwrap();
    assert!(users_line.contains(" 5 rows  sha256 "), "{report}");
    assert_eq!(
        counts(&database.url).await,
        before,
        "every row, table by table"
    );

    // Once more: the target holds the school now, so nothing is copied twice.
    let again = copy(&database.url);
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("already holds data of school `north`")
    );
    assert_eq!(counts(&database.url).await, before);
    // And back, into an empty SQLite file: the same rows again.
    let back = format!("sqlite://{}", setup.dir.path().join("back.db").display());
    let returned = setup
        .command(&[
            "migrate-store",
            "--from",
            &database.url,
            "--to",
            &back,
            "--school",
            "north",
        ])
        .output()
        .unwrap();
    assert!(
        returned.status.success(),
        "{}",
        String::from_utf8_lossy(&returned.stderr)
    );
    assert_eq!(counts(&back).await, before);

    // The school works on PostgreSQL: the same tokens, passwords, group and pending slip.
    let url = database.url.clone();
    let moved = Setup::with_config(move |text| {
        let start = text.find("[store]").unwrap();
        let end = start + text[start..].find("\n\n").unwrap();
        format!("{}[store]\nurl = \"{url}\"{}", &text[..start], &text[end..])
    });
    let daemon = moved.serve(&[("ROLLCALL_SLIP_KEY", KEY)]).await;
    let login = api_request(
        &http,
        &daemon.root,
        None,
        Method::POST,
        "/auth/login",
        Some(ApiBody::Json(
            &json!({ "school": "north", "username": "smithj2", "password": password }),
        )),
    )
    .await;
    assert_eq!(
        login.body["status"], "password_change_required",
        "{}",
        login.body
    );
    let group = api_request(
        &http,
        &daemon.root,
        Some(&admin),
        Method::GET,
        "/schools/north/groups/12A%2FMa1",
        None,
    )
    .await;
    assert_eq!(
        group.body["students"].as_array().unwrap().len(),
        4,
        "{}",
        group.body
    );
    assert_eq!(
        group.body["courses"].as_array().unwrap().len(),
        3,
        "{}",
        group.body
    );
    let slips = api_request(
        &http,
        &daemon.root,
        Some(&admin),
        Method::POST,
        "/schools/north/slips:collect",
        None,
    )
    .await;
    let slips = slips.body["slips"].as_array().unwrap();
    assert_eq!(slips.len(), 1);
    assert_eq!(slips[0]["userName"], "grace@north.example");
    drop(daemon);
    database.drop_now().await;
}
