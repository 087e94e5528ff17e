//! Generated credentials end to end: the log-in API (first passwords that must be changed, the
//! password policy, one indistinguishable failure, throttling per account and per address),
//! word passwords for the south school, pending slips for SCIM-created accounts (handed out
//! once, per group, as JSON, CSV and HTML; sealed at rest; erased by a password change), no
//! secret in the store or in the debug log after a class import, and a class import that
//! survives `kill -9` whole and finishes when pasted again.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::cli::{Daemon, Setup, open_store};
use crate::harness::*;

const CSV_HEADER: [&str; 7] = [
    "school",
    "group",
    "first name",
    "surname",
    "username",
    "password",
    "login url",
];

// --- Helpers for the in-process daemon (TestApp). ---

/// `POST /auth/password`.
async fn change_password(
    app: &TestApp,
    school: &str,
    user_name: &str,
    current: &str,
    new: &str,
) -> Reply {
    let body = json!({ "school": school, "username": user_name, "password": current,
                       "newPassword": new });
    app.api_as(
        None,
        Method::POST,
        "/auth/password",
        Some(ApiBody::Json(&body)),
    )
    .await
}

/// Creates a north student through the admin API: `(id, userName, first password)`.
async fn admin_creates(app: &TestApp, first: &str, surname: &str) -> (String, String, String) {
    let account = app
        .new_account(&json!({ "firstName": first, "surname": surname }))
        .await;
    let field = |name: &str| {
        account[name]
            .as_str()
            .unwrap_or_else(|| panic!("no {name}: {account}"))
            .to_owned()
    };
    (field("id"), field("userName"), field("password"))
}

/// A log-in attempt answered with `status` (200, 401, 429) and this `status` field.
#[track_caller]
fn assert_login(reply: &Reply, status: u16, outcome: &str) {
    assert_eq!(reply.status.as_u16(), status, "{}", reply.body);
    assert_eq!(reply.body["status"], outcome, "{}", reply.body);
    assert_eq!(reply.header("cache-control"), Some("no-store"));
}

/// A log-in attempt as raw bytes: `(status, content type, body)`.
async fn login_bytes(
    app: &TestApp,
    school: &str,
    user_name: &str,
    password: &str,
) -> (StatusCode, Option<String>, Vec<u8>) {
    let response = app
        .http
        .post(format!("{}/api/v1/auth/login", app.root))
        .header("content-type", "application/json")
        .body(json!({ "school": school, "username": user_name, "password": password }).to_string())
        .send()
        .await
        .expect("request");
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    assert!(response.headers().get("retry-after").is_none());
    let body = response.bytes().await.expect("body").to_vec();
    (status, content_type, body)
}

/// A north user pushed by SCIM without a password (so it gets a pending slip); returns its id.
async fn scim_pupil(app: &TestApp, user_name: &str, given: &str, family: &str) -> String {
    id_of(
        &app.create_user(entra_user(user_name, given, family, user_name, given))
            .await,
    )
}

/// `POST /schools/north/slips:collect?query` as north's admin; asserts 200 and no-store.
async fn collect(app: &TestApp, query: &str) -> Reply {
    let reply = app
        .api(
            Method::POST,
            &format!("/schools/north/slips:collect?{query}"),
            None,
        )
        .await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "collect {query}: {}",
        reply.body
    );
    assert_eq!(
        reply.header("cache-control"),
        Some("no-store"),
        "collect {query}"
    );
    reply
}

/// The JSON slips collected (of one group, when given).
async fn collect_json(app: &TestApp, group: Option<&str>) -> Vec<Value> {
    let query = group.map_or(String::new(), |g| format!("group={}", url_encode(g)));
    let reply = collect(app, &query).await;
    reply.body["slips"]
        .as_array()
        .unwrap_or_else(|| panic!("no slips: {}", reply.body))
        .clone()
}

/// The user names on these slips, sorted.
fn slip_users(slips: &[Value]) -> Vec<&str> {
    let mut names: Vec<&str> = slips
        .iter()
        .map(|s| s["userName"].as_str().expect("userName"))
        .collect();
    names.sort_unstable();
    names
}

/// The data rows of slips as CSV (checking the byte-order mark and the header row).
#[track_caller]
fn csv_rows(text: &str) -> Vec<Vec<String>> {
    let text = text
        .strip_prefix('\u{feff}')
        .unwrap_or_else(|| panic!("no byte-order mark: {text:?}"));
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(text.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .expect("header")
        .iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(header, CSV_HEADER, "{text}");
    reader
        .records()
        .map(|r| r.expect("row").iter().map(str::to_owned).collect())
        .collect()
}

/// Whether a word password has the shape of `tiger-apple-cloud-47`: three lower-case words of
/// 3 to 7 letters and two digits, joined by `-` (see `Generated::Words`).
fn is_word_password(password: &str) -> bool {
    let parts: Vec<&str> = password.split('-').collect();
    parts.len() == 4
        && parts[..3]
            .iter()
            .all(|w| (3..=7).contains(&w.len()) && w.bytes().all(|b| b.is_ascii_lowercase()))
        && parts[3].len() == 2
        && parts[3].bytes().all(|b| b.is_ascii_digit())
}

// --- A. The log-in API. ---

#[tokio::test]
async fn a_first_password_must_be_changed_under_the_schools_policy() {
    let app = TestApp::start().await;
    let (id, ada, first) = admin_creates(&app, "Ada", "Lovelace").await;
    assert_eq!(ada, "lovelacea");

    let reply = app.login("north", &ada, &first).await;
    assert_login(&reply, 200, "password_change_required");
    assert_eq!(reply.body["userId"], id.as_str());
    assert_eq!(reply.body["userName"], ada.as_str());

    for (new, says) in [
        ("Ab3dEf7", "at least 8 characters"),
        ("My-lovelacea-77", "username"),
        ("MY-LOVELACEA-77", "username"),
        (first.as_str(), "different"),
    ] {
        let reply = change_password(&app, "north", &ada, &first, new).await;
        assert_eq!(reply.status, 422, "{new}: {}", reply.body);
        assert_eq!(reply.body["status"], "rejected", "{}", reply.body);
        let detail = reply.body["detail"].as_str().expect("detail");
        assert!(detail.contains(says), "{new}: {detail}");
        assert!(!detail.contains(&first), "the detail echoes the password");
    }
    // A wrong current password changes nothing.
    let reply = change_password(
        &app,
        "north",
        &ada,
        "not-the-password",
        "Quiet-Harbour-2024",
    )
    .await;
    assert_login(&reply, 401, "failed");

    let chosen = "Quiet-Harbour-2024";
    let reply = change_password(&app, "north", &ada, &first, chosen).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body, json!({ "status": "changed" }));

    let reply = app.login("north", &ada, chosen).await;
    assert_login(&reply, 200, "success");
    assert_eq!(reply.body["userId"], id.as_str());
    assert_login(&app.login("north", &ada, &first).await, 401, "failed");
}

#[tokio::test]
async fn every_kind_of_failed_log_in_gets_the_identical_answer() {
    let app = TestApp::start().await;
    let (_, ada, first) = admin_creates(&app, "Ada", "Lovelace").await;
    // A disabled account: pushed by SCIM (its first password comes on a slip), then disabled.
    let grace = scim_pupil(&app, "grace@north.example", "Grace", "Hopper").await;
    let slips = collect_json(&app, None).await;
    assert_eq!(slip_users(&slips), ["grace@north.example"]);
    let grace_password = slips[0]["password"].as_str().expect("password").to_owned();
    assert_login(
        &app.login("north", "grace@north.example", &grace_password)
            .await,
        200,
        "password_change_required",
    );
    let reply = app
        .patch(
            &format!("/Users/{grace}"),
            &patch_request(json!([{ "op": "replace", "path": "active", "value": false }])),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["active"], false);

    let answers = [
        (
            "wrong password",
            login_bytes(&app, "north", &ada, "Wrong-Password-1").await,
        ),
        (
            "unknown user",
            login_bytes(&app, "north", "nobodyx", &first).await,
        ),
        (
            "unknown school",
            login_bytes(&app, "atlantis", &ada, &first).await,
        ),
        (
            "another school's user",
            login_bytes(&app, "south", &ada, &first).await,
        ),
        (
            "disabled account",
            login_bytes(&app, "north", "grace@north.example", &grace_password).await,
        ),
    ];
    let (_, reference) = &answers[0];
    assert_eq!(reference.0, StatusCode::UNAUTHORIZED);
    let body: Value = serde_json::from_slice(&reference.2).expect("JSON");
    assert_eq!(body, json!({ "status": "failed" }));
    for (case, answer) in &answers {
        assert_eq!(answer.0, reference.0, "{case}");
        assert_eq!(answer.1, reference.1, "{case}");
        assert_eq!(
            answer.2,
            reference.2,
            "{case}: {}",
            String::from_utf8_lossy(&answer.2)
        );
    }
}

#[tokio::test]
async fn five_failures_throttle_the_account_but_not_the_address() {
    let app = TestApp::start().await;
    let (_, ada, ada_password) = admin_creates(&app, "Ada", "Lovelace").await;
    let (_, alan, alan_password) = admin_creates(&app, "Alan", "Turing").await;

    for attempt in 1..=5 {
        let reply = app.login("north", &ada, &format!("guess-{attempt}")).await;
        assert_login(&reply, 401, "failed");
    }
    // The sixth attempt is refused before the password is even checked, right or not; the
    // account's name in another case is the same account.
    for name in [ada.clone(), ada.to_uppercase()] {
        let reply = app.login("north", &name, &ada_password).await;
        assert_login(&reply, 429, "throttled");
        let wait = reply.body["retryAfterSecs"]
            .as_u64()
            .expect("retryAfterSecs");
        assert!((1..=900).contains(&wait), "{}", reply.body);
        assert_eq!(reply.header("retry-after"), Some(wait.to_string().as_str()));
    }
    let reply = change_password(&app, "north", &ada, &ada_password, "Quiet-Harbour-2024").await;
    assert_login(&reply, 429, "throttled");
    assert!(reply.header("retry-after").is_some());

    // Another account from the same address still logs in (the address has 5 of 50).
    let reply = app.login("north", &alan, &alan_password).await;
    assert_login(&reply, 200, "password_change_required");
}

#[tokio::test]
async fn fifty_failures_from_one_address_throttle_every_account() {
    let app = TestApp::start().await;
    let (_, ada, ada_password) = admin_creates(&app, "Ada", "Lovelace").await;

    // 49 failures, each for a different name: no account reaches its own limit.
    for n in 0..49 {
        let reply = app
            .login("north", &format!("ghost{n}"), "Wrong-Password-1")
            .await;
        assert_login(&reply, 401, "failed");
    }
    // Below the limit the address is not throttled, and a success does not clear it.
    assert_login(
        &app.login("north", &ada, &ada_password).await,
        200,
        "password_change_required",
    );
    assert_login(
        &app.login("north", "ghost49", "Wrong-Password-1").await,
        401,
        "failed",
    );
    // The fiftieth failure: now every account is throttled from this address.
    for name in [ada.as_str(), "ghost50"] {
        let reply = app.login("north", name, &ada_password).await;
        assert_login(&reply, 429, "throttled");
        assert!(reply.header("retry-after").is_some());
    }
}

#[tokio::test]
async fn south_students_get_word_passwords_that_log_in() {
    let app = TestApp::start().await;
    for (first, surname, expected) in [("Tom", "Brown", "brownt"), ("Amy", "Brown", "browna")] {
        let reply = app
            .api_as(
                Some(&app.other_admin_token),
                Method::POST,
                "/schools/south/users",
                Some(ApiBody::Json(
                    &json!({ "firstName": first, "surname": surname }),
                )),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        assert_eq!(reply.header("cache-control"), Some("no-store"));
        assert_eq!(reply.body["userName"], expected);
        let password = reply.body["password"].as_str().expect("password");
        assert!(is_word_password(password), "{password}");
        assert_login(
            &app.login("south", expected, password).await,
            200,
            "password_change_required",
        );
        // The account is south's: north does not know it.
        assert_login(&app.login("north", expected, password).await, 401, "failed");
    }
}

// --- B. Pending slips. ---

#[tokio::test]
async fn a_scim_account_without_a_password_gets_one_slip_handed_out_once() {
    let app = TestApp::start().await;
    let id = scim_pupil(&app, "ada@north.example", "Ada", "Lovelace").await;
    let reply = app.get(&format!("/Users/{id}")).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(
        reply.body.get("password").is_none(),
        "a password is never returned"
    );

    let slips = collect_json(&app, None).await;
    assert_eq!(slips.len(), 1, "{slips:?}");
    let slip = &slips[0];
    assert_eq!(slip["school"], "North Academy");
    assert_eq!(slip["loginUrl"], "https://learn.north.example");
    assert_eq!(slip["userName"], "ada@north.example");
    assert_eq!(slip["firstName"], "Ada");
    assert_eq!(slip["surname"], "Lovelace");
    let password = slip["password"].as_str().expect("password");
    assert_eq!(password.chars().count(), 10, "{password}");
    assert_login(
        &app.login("north", "ada@north.example", password).await,
        200,
        "password_change_required",
    );

    assert_eq!(collect_json(&app, None).await, Vec::<Value>::new());
}

#[tokio::test]
async fn slips_are_collected_per_group() {
    let app = TestApp::start().await;
    let ada = scim_pupil(&app, "ada@north.example", "Ada", "Lovelace").await;
    let alan = scim_pupil(&app, "alan@north.example", "Alan", "Turing").await;
    for (name, member) in [("7A/Ma1", &ada), ("7B/Ma1", &alan)] {
        app.create_group(json!({
            "schemas": [GROUP_URN], "displayName": name, "members": [{ "value": member }]
        }))
        .await;
    }

    let slips = collect_json(&app, Some("7B/Ma1")).await;
    assert_eq!(slip_users(&slips), ["alan@north.example"]);
    assert_eq!(slips[0]["group"], "7B/Ma1");
    // Ada's slip was not taken by the other group's collection.
    assert_eq!(
        collect_json(&app, Some("7B/Ma1")).await,
        Vec::<Value>::new()
    );
    let slips = collect_json(&app, Some("7A/Ma1")).await;
    assert_eq!(slip_users(&slips), ["ada@north.example"]);
    assert_eq!(slips[0]["group"], "7A/Ma1");
    assert_eq!(collect_json(&app, None).await, Vec::<Value>::new());

    let reply = app
        .api(
            Method::POST,
            "/schools/north/slips:collect?group=nosuchgroup",
            None,
        )
        .await;
    assert_eq!(reply.status, 404, "{}", reply.body);
}

#[tokio::test]
async fn slips_come_as_csv_and_as_a_printable_page() {
    let app = TestApp::start().await;
    scim_pupil(&app, "ada@north.example", "Ada", "Lovelace").await;

    let reply = collect(&app, "format=csv").await;
    assert!(
        reply
            .header("content-type")
            .is_some_and(|t| t.starts_with("text/csv")),
        "{:?}",
        reply.headers
    );
    let text = reply.body.as_str().expect("CSV text");
    let rows = csv_rows(text);
    assert_eq!(rows.len(), 1, "{text}");
    let row = &rows[0];
    assert_eq!(row[0], "North Academy");
    assert_eq!((row[2].as_str(), row[3].as_str()), ("Ada", "Lovelace"));
    assert_eq!(row[4], "ada@north.example");
    assert_eq!(row[6], "https://learn.north.example");
    assert_login(
        &app.login("north", "ada@north.example", &row[5]).await,
        200,
        "password_change_required",
    );

    scim_pupil(&app, "alan@north.example", "Alan", "Turing").await;
    let reply = collect(&app, "format=html").await;
    assert!(
        reply
            .header("content-type")
            .is_some_and(|t| t.starts_with("text/html")),
        "{:?}",
        reply.headers
    );
    let page = reply.body.as_str().expect("HTML text");
    assert!(page.contains("alan@north.example"), "{page}");
    assert!(
        !page.contains("ada@north.example"),
        "collected twice: {page}"
    );
    assert!(page.contains("@media print"), "{page}");
    assert!(page.contains("North Academy"), "{page}");

    // Both were handed out: nothing is left in any format.
    let text = collect(&app, "format=csv").await.body;
    assert!(csv_rows(text.as_str().expect("CSV")).is_empty(), "{text}");
}

#[tokio::test]
async fn a_scim_password_logs_in_at_once_and_makes_no_slip() {
    let app = TestApp::start().await;
    let mut okta = entra_user(
        "ada@north.example",
        "Ada",
        "Lovelace",
        "ada@north.example",
        "ada",
    );
    okta["password"] = json!("Sunny-Meadow-4821");
    app.create_user(okta).await;

    assert_eq!(collect_json(&app, None).await, Vec::<Value>::new());
    let reply = app
        .login("north", "ada@north.example", "Sunny-Meadow-4821")
        .await;
    assert_login(&reply, 200, "success");
}

// --- Helpers for the real binary (Setup). ---

/// A POST with a JSON body (and a bearer token, if given): `(status, JSON body)`.
async fn post_json(url: String, token: Option<&str>, body: &Value) -> (StatusCode, Value) {
    let mut request = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("request");
    let status = response.status();
    let text = response.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// Creates a north user by SCIM without a password; asserts 201.
async fn scim_create(daemon: &Daemon, token: &str, user_name: &str, given: &str, family: &str) {
    let body = entra_user(user_name, given, family, user_name, given);
    let (status, body) = post_json(daemon.scim("/Users"), Some(token), &body).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

/// Logs in through the real daemon.
async fn login_at(daemon: &Daemon, user_name: &str, password: &str) -> (StatusCode, Value) {
    let body = json!({ "school": "north", "username": user_name, "password": password });
    let reply = api_request(
        &reqwest::Client::new(),
        &daemon.root,
        None,
        Method::POST,
        "/auth/login",
        Some(ApiBody::Json(&body)),
    )
    .await;
    (reply.status, reply.body)
}

/// Pastes a class list into a north group through the real daemon.
async fn paste_at(daemon: &Daemon, token: &str, group: &str, text: &str) -> (StatusCode, Value) {
    let reply = api_request(
        &reqwest::Client::new(),
        &daemon.root,
        Some(token),
        Method::POST,
        &format!("/schools/north/groups/{}/students:bulk", url_encode(group)),
        Some(ApiBody::Text(text)),
    )
    .await;
    (reply.status, reply.body)
}

/// SIGTERM, then waits for a clean exit.
async fn stop(mut daemon: Daemon) -> String {
    daemon.terminate();
    let exit = daemon.wait_exit(Duration::from_secs(60)).await;
    assert!(exit.success(), "{exit:?}: {}", daemon.log());
    daemon.log()
}

/// The SQLite files of a setup's store that exist (the database, its WAL and shared memory).
fn store_files(dir: &Path) -> Vec<PathBuf> {
    ["rollcall.db", "rollcall.db-wal", "rollcall.db-shm"]
        .iter()
        .map(|name| dir.join(name))
        .filter(|path| path.exists())
        .collect()
}

fn holds(haystack: &[u8], needle: &str) -> bool {
    !needle.is_empty()
        && haystack
            .windows(needle.len())
            .any(|window| window == needle.as_bytes())
}

/// Asserts that no secret occurs in any of these (named) byte strings.
#[track_caller]
fn assert_nowhere(places: &[(String, Vec<u8>)], secrets: &[String]) {
    assert!(!secrets.is_empty());
    for (place, bytes) in places {
        for secret in secrets {
            assert!(!holds(bytes, secret), "a secret is in {place}");
        }
    }
}

/// Every store file's bytes, named.
fn read_store(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let files = store_files(dir);
    assert!(!files.is_empty(), "no store in {}", dir.display());
    files
        .into_iter()
        .map(|path| {
            let bytes = std::fs::read(&path).expect("read store file");
            (path.display().to_string(), bytes)
        })
        .collect()
}

// --- Slips at rest, through the real binary. ---

#[tokio::test]
async fn pending_slips_are_sealed_at_rest_and_the_cli_hands_them_out_once() {
    let setup = Setup::new();
    let token = setup.create_token("north", "entra");
    let daemon = setup.serve(&[]).await;
    let pupils = [
        ("ada@north.example", "Ada", "Lovelace"),
        ("alan@north.example", "Alan", "Turing"),
        ("grace@north.example", "Grace", "Hopper"),
    ];
    for (user_name, given, family) in pupils {
        scim_create(&daemon, &token, user_name, given, family).await;
    }
    stop(daemon).await;
    // The store as it was while the slips were pending.
    let pending = read_store(setup.dir.path());

    let file = setup.dir.path().join("slips.csv");
    setup.ok(&[
        "slips",
        "--school",
        "north",
        "--format",
        "csv",
        "--output",
        file.to_str().expect("path"),
    ]);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&file)
        .expect("slips file")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    let rows = csv_rows(&std::fs::read_to_string(&file).expect("slips file"));
    let mut names: Vec<&str> = rows.iter().map(|r| r[4].as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, [pupils[0].0, pupils[1].0, pupils[2].0]);
    let passwords: Vec<String> = rows.iter().map(|r| r[5].clone()).collect();
    assert!(
        passwords.iter().all(|p| p.chars().count() == 10),
        "{passwords:?}"
    );

    // The search works: the store does hold the usernames, in the clear.
    assert!(pending.iter().any(|(_, bytes)| holds(bytes, pupils[0].0)));
    assert_nowhere(&pending, &passwords);
    assert_nowhere(&read_store(setup.dir.path()), &passwords);

    // Handed out once: a second collection has only the header.
    let again = setup.ok(&["slips", "--school", "north", "--format", "csv"]);
    assert!(csv_rows(&again).is_empty(), "{again}");

    // The passwords on the slips are the accounts' real first passwords.
    let daemon = setup.serve(&[]).await;
    for row in &rows {
        let (status, body) = login_at(&daemon, &row[4], &row[5]).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["status"], "password_change_required");
    }
    stop(daemon).await;
}

#[tokio::test]
async fn changing_the_password_erases_the_pending_slip() {
    let setup = Setup::new();
    let token = setup.create_token("north", "entra");
    let daemon = setup.serve(&[]).await;
    scim_create(&daemon, &token, "ada@north.example", "Ada", "Lovelace").await;
    stop(daemon).await;

    // The first password, learned from a copy of the store and its key: collecting from the
    // copy leaves the original slip pending.
    let twin = Setup::new();
    for path in store_files(setup.dir.path()) {
        std::fs::copy(&path, twin.dir.path().join(path.file_name().expect("name")))
            .expect("copy store");
    }
    std::fs::create_dir_all(twin.dir.path().join("data")).expect("data dir");
    std::fs::copy(
        setup.dir.path().join("data/slip.key"),
        twin.dir.path().join("data/slip.key"),
    )
    .expect("copy key");
    let rows = csv_rows(&twin.ok(&["slips", "--school", "north", "--format", "csv"]));
    assert_eq!(rows.len(), 1, "{rows:?}");
    let first = rows[0][5].clone();

    let store = open_store(&setup).await;
    let now = rollcall::clock::Clock::system().now();
    assert_eq!(
        store.count_slips("north", None, now).await.expect("count"),
        1
    );
    store.close().await;

    let daemon = setup.serve(&[]).await;
    let body = json!({ "school": "north", "username": "ada@north.example", "password": first,
                       "newPassword": "Quiet-Harbour-2024" });
    let (status, reply) =
        post_json(format!("{}/api/v1/auth/password", daemon.root), None, &body).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["status"], "changed");
    stop(daemon).await;

    let rows = csv_rows(&setup.ok(&["slips", "--school", "north", "--format", "csv"]));
    assert!(rows.is_empty(), "the old slip was handed out: {rows:?}");
}

// --- C. No secret at rest or in the log. ---

/// A class list with a header row: `count` students, each with a unique student number.
fn class_list(prefix: &str, count: usize) -> String {
    let mut text = String::from("First name\tSurname\tEmail\tStudent number\n");
    for n in 0..count {
        let letters: String = [n / 676, n / 26 % 26, n % 26]
            .iter()
            .map(|&d| char::from(b'a' + u8::try_from(d).expect("digit")))
            .collect();
        text.push_str(&format!(
            "Pupil\t{prefix}{letters}\t{prefix}{letters}@north.example\t{prefix}-{n:05}\n"
        ));
    }
    text
}

#[tokio::test]
async fn no_password_or_token_reaches_the_store_or_the_debug_log() {
    let setup = Setup::new();
    let admin = setup.create_admin("office");
    let daemon = setup
        .serve(&[("ROLLCALL_LOG", "debug,tower_http=debug")])
        .await;

    let (status, outcome) = paste_at(&daemon, &admin, "8C/Fr1", &class_list("Secret", 30)).await;
    assert_eq!(status, 201, "{outcome}");
    let rows = outcome["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 30, "{outcome}");
    let mut secrets: Vec<String> = rows
        .iter()
        .map(|row| {
            assert_eq!(row["action"], "created", "{row}");
            row["password"].as_str().expect("password").to_owned()
        })
        .collect();

    let user_name = rows[0]["userName"].as_str().expect("userName").to_owned();
    let (status, body) = login_at(&daemon, &user_name, &secrets[0]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "password_change_required");
    let chosen = "Violet-Lantern-Orbit-93";
    let body = json!({ "school": "north", "username": user_name, "password": secrets[0],
                       "newPassword": chosen });
    let (status, reply) =
        post_json(format!("{}/api/v1/auth/password", daemon.root), None, &body).await;
    assert_eq!(status, 200, "{reply}");
    let (status, body) = login_at(&daemon, &user_name, chosen).await;
    assert_eq!(
        (status, &body["status"]),
        (StatusCode::OK, &json!("success"))
    );
    secrets.push(chosen.to_owned());
    secrets.push(admin.clone());
    secrets.push(admin["rca_".len()..].to_owned());

    let log = stop(daemon).await;
    // The log did record the requests (so the search below can find something).
    assert!(log.contains("students:bulk"), "{log}");
    assert!(log.contains("/auth/password"), "{log}");
    let mut places = read_store(setup.dir.path());
    // The search works: the store does hold the (non-secret) username.
    assert!(places.iter().any(|(_, bytes)| holds(bytes, &user_name)));
    places.push(("the log".into(), log.into_bytes()));
    assert_nowhere(&places, &secrets);
}

// --- D. kill -9 in the middle of a class import. ---

/// Every north user through SCIM: `(userName, givenName, familyName, studentNumber)`.
async fn north_users(daemon: &Daemon, token: &str) -> Vec<[String; 4]> {
    let list: Value = reqwest::Client::new()
        .get(daemon.scim("/Users?count=1000"))
        .bearer_auth(token)
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("JSON");
    let resources = list["Resources"].as_array().cloned().unwrap_or_default();
    assert_eq!(list["totalResults"], resources.len(), "one page holds all");
    let text = |value: &Value| value.as_str().unwrap_or_default().to_owned();
    resources
        .iter()
        .map(|user| {
            [
                text(&user["userName"]),
                text(&user["name"]["givenName"]),
                text(&user["name"]["familyName"]),
                text(&user["urn:rollcall:params:scim:schemas:extension:school:2.0:User"]
                    ["studentNumber"]),
            ]
        })
        .collect()
}

/// Asserts that every user is whole: a name, a student number, and a password hash.
async fn assert_whole(setup: &Setup, users: &[[String; 4]]) {
    let store = open_store(setup).await;
    for [user_name, given, family, number] in users {
        assert!(
            !user_name.is_empty() && !given.is_empty() && !family.is_empty() && !number.is_empty(),
            "{user_name} {given} {family} {number}"
        );
        let credential = store
            .credential("north", user_name)
            .await
            .expect("credential")
            .unwrap_or_else(|| panic!("{user_name} has no credential row"));
        assert!(
            credential
                .password_hash
                .is_some_and(|h| h.starts_with("$argon2")),
            "{user_name} has no password hash"
        );
        assert!(credential.must_change && credential.active, "{user_name}");
    }
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_class_import_killed_mid_way_is_whole_and_finishes_when_pasted_again() {
    const ROWS: usize = 400;
    let setup = Setup::new();
    let admin = setup.create_admin("office");
    let token = setup.create_token("north", "entra");
    // sqlx logs each statement at debug: the first user INSERT says the transaction is open.
    let daemon = setup.serve(&[("ROLLCALL_LOG", "debug")]).await;
    let text = class_list("Crash", ROWS);

    let request = reqwest::Client::new()
        .post(format!(
            "{}/api/v1/schools/north/groups/10D%2FPh1/students:bulk",
            daemon.root
        ))
        .bearer_auth(&admin)
        .header("content-type", "text/plain; charset=utf-8")
        .body(text.clone());
    let in_flight = tokio::spawn(async move {
        let response = request.send().await?;
        let status = response.status();
        response.text().await.map(|body| (status, body))
    });
    // Kill as soon as the import's transaction has written its first account, or (failing
    // that) once the request has been received and has had a second to work.
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut received: Option<Instant> = None;
    let moment = loop {
        let log = daemon.log();
        if log.contains("INSERT INTO users") {
            break "inside the transaction";
        }
        if received.is_none() && log.contains("students:bulk") {
            received = Some(Instant::now());
        }
        if received.is_some_and(|at| at.elapsed() > Duration::from_secs(1))
            && !log.contains("sqlx::query")
        {
            // No statement logging: kill while the passwords are being hashed.
            break "while hashing";
        }
        if in_flight.is_finished() {
            break "after the answer";
        }
        assert!(Instant::now() < deadline, "the import never started: {log}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    drop(daemon); // SIGKILL, then reaped.
    let answer = in_flight.await.expect("join");
    println!(
        "killed {moment}; the client got {}",
        match &answer {
            Ok((status, _)) => format!("an answer: {status}"),
            Err(error) => format!("no answer: {error}"),
        }
    );

    let daemon = setup.serve(&[]).await;
    let left = north_users(&daemon, &token).await;
    println!("the killed import left {} of {ROWS} accounts", left.len());
    assert!(
        left.is_empty() || left.len() == ROWS,
        "the import is one transaction, yet {} accounts survived",
        left.len()
    );
    assert_whole(&setup, &left).await;

    // Pasting the same list again finishes the job.
    let (status, outcome) = paste_at(&daemon, &admin, "10D/Ph1", &text).await;
    assert_eq!(status, 201, "{outcome}");
    assert_eq!(outcome["committed"], true);
    let rows = outcome["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), ROWS);
    assert!(
        rows.iter()
            .all(|r| r["action"] == "created" || r["action"] == "exists"),
        "{outcome}"
    );
    assert_eq!(outcome["counts"]["error"], 0);
    assert_eq!(
        outcome["counts"]["exists"].as_u64().expect("exists"),
        left.len() as u64
    );
    // A password the second run handed out works.
    if let Some(row) = rows.iter().find(|r| r["action"] == "created") {
        let user_name = row["userName"].as_str().expect("userName");
        let password = row["password"].as_str().expect("password");
        let (status, body) = login_at(&daemon, user_name, password).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["status"], "password_change_required");
    }

    let users = north_users(&daemon, &token).await;
    assert_eq!(users.len(), ROWS);
    for column in 0..4 {
        if column == 1 {
            continue; // every first name is "Pupil"
        }
        let distinct: HashSet<&str> = users.iter().map(|u| u[column].as_str()).collect();
        assert_eq!(distinct.len(), ROWS, "column {column} repeats");
    }
    let numbers: HashSet<String> = users.iter().map(|u| u[3].clone()).collect();
    let expected: HashSet<String> = (0..ROWS).map(|n| format!("Crash-{n:05}")).collect();
    assert_eq!(numbers, expected);
    assert_whole(&setup, &users).await;

    let group: Value = reqwest::Client::new()
        .get(format!(
            "{}/api/v1/schools/north/groups/10D%2FPh1",
            daemon.root
        ))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("JSON");
    assert_eq!(
        group["students"].as_array().map(Vec::len),
        Some(ROWS),
        "{group}"
    );
    stop(daemon).await;
}
