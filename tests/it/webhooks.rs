//! Webhooks: a receiver on 127.0.0.1 that checks every signature with its own implementation
//! of the Standard Webhooks check gets every event at least once, in order per account, across
//! a receiver that fails for a while, one that is dead until the events fail for good (and
//! `rollcall webhooks --replay` sends them again), one that hangs, and a daemon restart.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use reqwest::Method;
use serde_json::{Value, json};
use sha2::Sha256;

use crate::cli::{Daemon, Setup};
use crate::harness::*;
use crate::postgres::TestDatabase;

/// The Standard Webhooks specification's example secret.
pub(crate) const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

const ALL_TYPES: [&str; 8] = [
    "user.created",
    "user.updated",
    "user.disabled",
    "user.enabled",
    "user.deleted",
    "user.password_changed",
    "group.membership_changed",
    "user.entitlements_changed",
];

// --- The receiver ---

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// 200.
    Accept,
    /// 500.
    Fail,
    /// Holds the request until the mode changes, then answers 200 (the sender may have given
    /// up by then, or may still be waiting).
    Hang,
}

/// A request that passed the signature check.
#[derive(Clone, Debug)]
pub(crate) struct Delivery {
    pub(crate) id: String,
    pub(crate) event_type: String,
    /// The account the event is about (`data.id`, or `data.user` for a membership or a
    /// student's courses).
    pub(crate) subject: String,
    pub(crate) body: String,
    pub(crate) json: Value,
}

/// A request as it came, headers and body.
#[derive(Clone, Debug)]
pub(crate) struct Raw {
    id: String,
    timestamp: String,
    signature: String,
    body: Vec<u8>,
}

#[derive(Debug)]
struct Shared {
    key: Vec<u8>,
    mode: Mutex<Mode>,
    /// Every request that passed the check, whatever it was answered.
    seen: Mutex<Vec<Delivery>>,
    /// Those answered 200 while the sender waited.
    accepted: Mutex<Vec<Delivery>>,
    /// Requests whose signature did not verify (answered 400).
    rejected: Mutex<Vec<Raw>>,
}

pub(crate) struct Receiver {
    url: String,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl Receiver {
    /// Listens on 127.0.0.1 and checks signatures with the key of `secret`.
    pub(crate) async fn start(secret: &str, mode: Mode) -> Receiver {
        let shared = Arc::new(Shared {
            key: key_of(secret),
            mode: Mutex::new(mode),
            seen: Mutex::default(),
            accepted: Mutex::default(),
            rejected: Mutex::default(),
        });
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(receive))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Receiver {
            url,
            shared,
            server,
        }
    }

    fn set(&self, mode: Mode) {
        *self.shared.mode.lock().unwrap() = mode;
    }

    pub(crate) fn accepted(&self) -> Vec<Delivery> {
        self.shared.accepted.lock().unwrap().clone()
    }

    fn seen(&self) -> Vec<Delivery> {
        self.shared.seen.lock().unwrap().clone()
    }

    pub(crate) fn rejected(&self) -> Vec<Raw> {
        self.shared.rejected.lock().unwrap().clone()
    }

    /// Accepted events per subject, each once (at its first arrival), as `type` (a membership
    /// event as `group.membership_changed:added|removed`).
    fn story(&self, subject: &str) -> Vec<String> {
        let mut ids = Vec::new();
        let mut story = Vec::new();
        for delivery in self.accepted() {
            if delivery.subject == subject && !ids.contains(&delivery.id) {
                ids.push(delivery.id.clone());
                story.push(match delivery.json["data"]["change"].as_str() {
                    Some(change) => format!("{}:{change}", delivery.event_type),
                    None => delivery.event_type.clone(),
                });
            }
        }
        story
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.set(Mode::Accept);
        self.server.abort();
    }
}

async fn receive(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let raw = Raw {
        id: header("webhook-id"),
        timestamp: header("webhook-timestamp"),
        signature: header("webhook-signature"),
        body: body.to_vec(),
    };
    if headers
        .get("content-type")
        .is_none_or(|v| v != "application/json")
        || !verify(&shared.key, &raw)
    {
        shared.rejected.lock().unwrap().push(raw);
        return StatusCode::BAD_REQUEST;
    }
    let text = String::from_utf8(raw.body).unwrap();
    let parsed: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        parsed["id"], raw.id,
        "the body's id is the header's: {text}"
    );
    let event_type = parsed["type"].as_str().unwrap().to_owned();
    let subject = match event_type.as_str() {
        "group.membership_changed" | "user.entitlements_changed" => parsed["data"]["user"].as_str(),
        _ => parsed["data"]["id"].as_str(),
    }
    .unwrap()
    .to_owned();
    let delivery = Delivery {
        id: raw.id,
        event_type,
        subject,
        body: text,
        json: parsed,
    };
    shared.seen.lock().unwrap().push(delivery.clone());
    let mode = *shared.mode.lock().unwrap();
    match mode {
        Mode::Accept => {
            shared.accepted.lock().unwrap().push(delivery);
            StatusCode::OK
        }
        Mode::Fail => StatusCode::INTERNAL_SERVER_ERROR,
        Mode::Hang => {
            let deadline = Instant::now() + Duration::from_secs(60);
            while *shared.mode.lock().unwrap() == Mode::Hang && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            if *shared.mode.lock().unwrap() == Mode::Accept {
                shared.accepted.lock().unwrap().push(delivery);
            }
            StatusCode::OK
        }
    }
}

/// The receiver's key: after `whsec_` base64, else the secret's bytes.
fn key_of(secret: &str) -> Vec<u8> {
    match secret.strip_prefix("whsec_") {
        Some(encoded) => STANDARD.decode(encoded).unwrap(),
        None => secret.as_bytes().to_vec(),
    }
}

/// The Standard Webhooks check, written here from the specification: HMAC-SHA256 over
/// `{id}.{timestamp}.{body}`, base64, compared with each `v1,` signature of the header; and a
/// timestamp within five minutes of now.
fn verify(key: &[u8], raw: &Raw) -> bool {
    let Ok(timestamp) = raw.timestamp.parse::<i64>() else {
        return false;
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    if (now - timestamp).abs() > 300 || raw.id.is_empty() {
        return false;
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(format!("{}.{}.", raw.id, raw.timestamp).as_bytes());
    mac.update(&raw.body);
    let expected = STANDARD.encode(mac.finalize().into_bytes());
    raw.signature
        .split(' ')
        .filter_map(|signature| signature.strip_prefix("v1,"))
        .any(|signature| signature == expected)
}

// --- Helpers ---

/// Polls `check` until it gives a value (20 s at most).
pub(crate) async fn until<T, F: std::future::Future<Output = Option<T>>>(
    what: &str,
    mut check: impl FnMut() -> F,
) -> T {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A `[[webhooks]]` table for this receiver, its secret in `secret_file`, quick retries.
pub(crate) fn webhook_toml(receiver: &Receiver, secret_file: &Path, extra: &str) -> String {
    format!(
        "\n[[webhooks]]\nid = \"platform\"\nurl = \"{}\"\nsecret_file = \"{}\"\n\
         timeout_secs = 1\nretry_initial_ms = 20\nretry_max_secs = 1\n{extra}",
        receiver.url,
        secret_file.display()
    )
}

/// A directory holding the webhook secret, for `secret_file`.
pub(crate) fn secret_dir(secret: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("webhook.secret");
    std::fs::write(&path, format!("{secret}\n")).unwrap();
    (dir, path)
}

fn active_patch(active: bool) -> Value {
    patch_request(json!([{ "op": "replace", "path": "active", "value": active }]))
}

/// A setup (configuration file, store) for real `rollcall serve` processes with this webhook;
/// on PostgreSQL with a database of its own, dropped by the caller.
async fn setup_with(webhook: String) -> (Setup, Option<TestDatabase>) {
    let database = match test_store() {
        "postgres" => Some(TestDatabase::create().await),
        _ => None,
    };
    let url = database.as_ref().map(|d| d.url.clone());
    let setup = Setup::with_config(move |text| {
        let text = match url {
            Some(url) => {
                let start = text.find("[store]").unwrap();
                let end = start + text[start..].find("\n\n").unwrap();
                format!("{}[store]\nurl = \"{url}\"{}", &text[..start], &text[end..])
            }
            None => text,
        };
        format!("{text}{webhook}")
    });
    (setup, database)
}

/// Runs a `rollcall` command off the runtime's threads (the receiver keeps answering), and
/// returns its output.
async fn cli(setup: &Setup, args: &[&str]) -> std::process::Output {
    let mut command = setup.command(args);
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

/// A command that must succeed: its standard output.
async fn cli_ok(setup: &Setup, args: &[&str]) -> String {
    let output = cli(setup, args).await;
    assert!(
        output.status.success(),
        "rollcall {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// A SCIM request to a daemon process: status and body.
async fn scim(
    daemon: &Daemon,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = reqwest::Client::new()
        .request(method, daemon.scim(path))
        .bearer_auth(token);
    if let Some(body) = body {
        request = request
            .header("content-type", "application/scim+json")
            .body(body.to_string());
    }
    let response = request.send().await.unwrap();
    let status = StatusCode::from_u16(response.status().as_u16()).unwrap();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Each webhook's outbox, with the last hour's deliveries counted.
async fn outbox_status(store: &rollcall::store::Store) -> Vec<rollcall::store::OutboxStatus> {
    store
        .outbox_status(time::OffsetDateTime::now_utc() - Duration::from_secs(3600))
        .await
        .unwrap()
}

async fn stop_daemon(mut daemon: Daemon) {
    daemon.terminate();
    let exit = daemon.wait_exit(Duration::from_secs(30)).await;
    assert!(exit.success(), "{exit:?}: {}", daemon.log());
}

// --- The tests ---

#[tokio::test]
async fn every_event_type_arrives_signed_once_and_in_order_per_account() {
    let receiver = Receiver::start(SECRET, Mode::Accept).await;
    let (_secrets, secret_file) = secret_dir(SECRET);
    let toml = webhook_toml(&receiver, &secret_file, "");
    let app = TestApp::start_with(|text| format!("{text}{toml}")).await;

    let first_password = "Initial-Pass-123";
    let mut alice_doc = entra_user(
        "alice@north.example",
        "Alice",
        "Smith",
        "alice@north.example",
        "A1",
    );
    alice_doc["password"] = first_password.into();
    let alice = id_of(&app.create_user(alice_doc).await);
    let bob = id_of(&app.create_user(user("bob@north.example")).await);

    let rename = patch_request(
        json!([{ "op": "replace", "path": "name.familyName", "value": "Smith-Jones" }]),
    );
    let reply = app.patch(&format!("/Users/{alice}"), &rename).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    for active in [false, true] {
        let reply = app
            .patch(&format!("/Users/{alice}"), &active_patch(active))
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    }
    let change = json!({ "school": "north", "username": "alice@north.example",
                         "password": first_password, "newPassword": "Correct-Horse-9" });
    let reply = app
        .api_as(
            None,
            Method::POST,
            "/auth/password",
            Some(ApiBody::Json(&change)),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["status"], "changed", "{}", reply.body);

    let school_group = "urn:rollcall:params:scim:schemas:extension:school:2.0:Group";
    let group = id_of(
        &app.create_group(json!({
            "schemas": [GROUP_URN, school_group], "displayName": "12B/Ma1",
            "members": [{ "value": alice }, { "value": bob }],
            school_group: { "courses": [{ "value": "MA-Y1-AS" }] },
        }))
        .await,
    );
    let remove = patch_request(
        json!([{ "op": "remove", "path": format!("members[value eq \"{alice}\"]") }]),
    );
    let reply = app.patch(&format!("/Groups/{group}"), &remove).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(
        app.delete(&format!("/Users/{alice}")).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.delete(&format!("/Groups/{group}")).await.status,
        StatusCode::NO_CONTENT
    );

    let alice_story = [
        "user.created",
        "user.updated",
        "user.disabled",
        "user.enabled",
        "user.password_changed",
        "group.membership_changed:added",
        "user.entitlements_changed",
        "group.membership_changed:removed",
        "user.entitlements_changed",
        "user.deleted",
    ];
    let bob_story = [
        "user.created",
        "group.membership_changed:added",
        "user.entitlements_changed",
        "group.membership_changed:removed",
        "user.entitlements_changed",
    ];
    until("every event", || async {
        (receiver.story(&alice).len() == alice_story.len()
            && receiver.story(&bob).len() == bob_story.len())
        .then_some(())
    })
    .await;
    assert_eq!(receiver.story(&alice), alice_story);
    assert_eq!(receiver.story(&bob), bob_story);
    assert!(receiver.rejected().is_empty(), "{:?}", receiver.rejected());

    let accepted = receiver.accepted();
    let mut types: Vec<&str> = accepted.iter().map(|d| d.event_type.as_str()).collect();
    types.sort();
    types.dedup();
    let mut all = ALL_TYPES.to_vec();
    all.sort();
    assert_eq!(types, all);
    for delivery in &accepted {
        let body = &delivery.json;
        assert_eq!(body["school"], "north", "{}", delivery.body);
        assert!(
            time::OffsetDateTime::parse(
                body["timestamp"].as_str().unwrap(),
                &time::format_description::well_known::Rfc3339
            )
            .is_ok(),
            "{}",
            delivery.body
        );
        assert!(!delivery.body.contains(first_password), "{}", delivery.body);
        assert!(
            !delivery.body.contains("Correct-Horse-9"),
            "{}",
            delivery.body
        );
        assert!(!delivery.body.contains("argon2"), "{}", delivery.body);
        assert!(body["data"].get("password").is_none(), "{}", delivery.body);
    }
    // The account as the events carry it.
    let created = accepted
        .iter()
        .find(|d| d.subject == alice && d.event_type == "user.created")
        .unwrap();
    assert_eq!(created.json["data"]["userName"], "alice@north.example");
    assert_eq!(
        created.json["data"]["emails"][0]["value"],
        "alice@north.example"
    );
    assert_eq!(created.json["data"]["active"], true);
    let disabled = accepted
        .iter()
        .find(|d| d.event_type == "user.disabled")
        .unwrap();
    assert_eq!(disabled.json["data"]["active"], false);
    assert_eq!(disabled.json["data"]["name"]["familyName"], "Smith-Jones");
    let added = accepted
        .iter()
        .find(|d| d.subject == bob && d.json["data"]["change"] == "added")
        .unwrap();
    assert_eq!(
        added.json["data"]["group"],
        json!({ "id": group, "displayName": "12B/Ma1" })
    );
    // Each event once: nothing failed, so nothing was sent twice.
    let mut ids: Vec<&str> = accepted.iter().map(|d| d.id.as_str()).collect();
    let all_ids = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), all_ids);
    // Per account, the change times never go back.
    for subject in [&alice, &bob] {
        let times: Vec<&str> = accepted
            .iter()
            .filter(|d| &d.subject == subject)
            .map(|d| d.json["timestamp"].as_str().unwrap())
            .collect();
        assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    }
    // Each answer is recorded just after the receiver gives it.
    until("every event recorded as delivered", || async {
        let status = outbox_status(&app.state.provider.store).await;
        (status.len() == 1
            && (status[0].pending, status[0].failed, status[0].delivered) == (0, 0, all_ids as i64))
            .then_some(())
    })
    .await;
    app.stop().await;
}

#[tokio::test]
async fn a_receiver_that_fails_for_a_while_gets_every_event_in_order_afterwards() {
    let receiver = Receiver::start(SECRET, Mode::Fail).await;
    let (_secrets, secret_file) = secret_dir(SECRET);
    let toml = webhook_toml(&receiver, &secret_file, "max_attempts = 100\n");
    let app = TestApp::start_with(|text| format!("{text}{toml}")).await;

    let mut people = Vec::new();
    for name in ["ann", "ben", "cat"] {
        let id = id_of(
            &app.create_user(user(&format!("{name}@north.example")))
                .await,
        );
        let reply = app
            .patch(&format!("/Users/{id}"), &active_patch(false))
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        people.push(id);
    }
    // Several attempts fail, and the store shows it.
    until("failed attempts", || async {
        (receiver.seen().len() >= 6).then_some(())
    })
    .await;
    let store = &app.state.provider.store;
    let status = until("a recorded error", || async {
        outbox_status(store)
            .await
            .into_iter()
            .find(|s| s.last_error.is_some())
    })
    .await;
    assert!(status.pending > 0, "{status:?}");
    let (error, _) = status.last_error.unwrap();
    assert!(error.contains("500"), "{error}");
    assert!(receiver.accepted().is_empty());

    receiver.set(Mode::Accept);
    for id in &people {
        until("each account's events", || async {
            (receiver.story(id).len() == 2).then_some(())
        })
        .await;
        assert_eq!(receiver.story(id), ["user.created", "user.disabled"]);
    }
    // Retries carry the id and body of the first attempt.
    let seen = receiver.seen();
    for delivery in receiver.accepted() {
        let tries: Vec<&Delivery> = seen.iter().filter(|d| d.id == delivery.id).collect();
        assert!(tries.iter().all(|d| d.body == delivery.body));
    }
    assert!(
        seen.len() > receiver.accepted().len(),
        "some were sent more than once"
    );
    // Each answer is recorded just after the receiver gives it.
    until("the outbox to drain", || async {
        let status = outbox_status(store).await;
        (status[0].pending, status[0].failed)
            .eq(&(0, 0))
            .then_some(())
    })
    .await;
    app.stop().await;
}

#[tokio::test]
async fn a_hanging_receiver_does_not_hold_up_provisioning() {
    let receiver = Receiver::start(SECRET, Mode::Hang).await;
    let (_secrets, secret_file) = secret_dir(SECRET);
    let toml = webhook_toml(&receiver, &secret_file, "max_attempts = 100\n");
    let app = TestApp::start_with(|text| format!("{text}{toml}")).await;

    let first = id_of(&app.create_user(user("first@north.example")).await);
    // The receiver is holding a delivery now …
    until("a hanging delivery", || async {
        (!receiver.seen().is_empty()).then_some(())
    })
    .await;
    // … and every write still completes.
    let mut ids = vec![first];
    for n in 0..10 {
        ids.push(id_of(
            &app.create_user(user(&format!("p{n}@north.example"))).await,
        ));
    }
    assert!(receiver.accepted().is_empty());
    receiver.set(Mode::Accept);
    for id in &ids {
        until("every creation", || async {
            (receiver.story(id) == ["user.created"]).then_some(())
        })
        .await;
    }
    app.stop().await;
}

#[tokio::test]
async fn a_receiver_with_the_wrong_secret_rejects_every_delivery() {
    let receiver = Receiver::start("whsec_c29tZSBvdGhlciBzZWNyZXQ=", Mode::Accept).await;
    let (_secrets, secret_file) = secret_dir(SECRET);
    let toml = webhook_toml(&receiver, &secret_file, "max_attempts = 100\n");
    let app = TestApp::start_with(|text| format!("{text}{toml}")).await;
    app.create_user(user("eve@north.example")).await;
    let rejected = until("a rejected delivery", || async {
        receiver.rejected().into_iter().next()
    })
    .await;
    assert!(receiver.accepted().is_empty());
    // With the right key the same request verifies; altered by one byte, it does not.
    let key = key_of(SECRET);
    assert!(verify(&key, &rejected));
    let mut tampered = rejected.clone();
    let at = tampered.body.len() - 3;
    tampered.body[at] ^= 1;
    assert!(!verify(&key, &tampered));
    let mut other_id = rejected.clone();
    other_id.id.push('x');
    assert!(!verify(&key, &other_id));
    let mut other_time = rejected.clone();
    other_time.timestamp = (other_time.timestamp.parse::<i64>().unwrap() + 1).to_string();
    assert!(!verify(&key, &other_time));
    // The sender sees the refusal and keeps the event.
    let store = &app.state.provider.store;
    let status = until("the refusal recorded", || async {
        outbox_status(store)
            .await
            .into_iter()
            .find(|s| s.last_error.is_some())
    })
    .await;
    assert_eq!(status.pending, 1);
    assert!(status.last_error.unwrap().0.contains("400"));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_that_fail_for_good_wait_for_replay_and_the_cli_shows_them() {
    let receiver = Receiver::start(SECRET, Mode::Fail).await;
    let (_secrets, secret_file) = secret_dir(SECRET);
    let (setup, database) =
        setup_with(webhook_toml(&receiver, &secret_file, "max_attempts = 2\n")).await;
    let checked = cli_ok(&setup, &["check-config"]).await;
    assert!(
        checked.contains(
            "webhook platform: every event of every school; 2 attempts at most; secret readable"
        ),
        "{checked}"
    );
    let token = setup.create_token("north", "entra");
    let daemon = setup.serve(&[]).await;

    let (status, body) = scim(
        &daemon,
        &token,
        Method::POST,
        "/Users",
        Some(user("dora@north.example")),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let dora = id_of(&body);
    let failed = until("the event to fail for good", || async {
        let out = cli_ok(&setup, &["webhooks", "--failed"]).await;
        out.contains(&dora).then_some(out)
    })
    .await;
    assert!(failed.contains("user.created"), "{failed}");
    assert!(failed.contains("2 attempts"), "{failed}");
    assert!(failed.contains("the receiver answered 500"), "{failed}");
    // Her next event waits behind the failed one, even once the receiver is back.
    let (status, body) = scim(
        &daemon,
        &token,
        Method::PATCH,
        &format!("/Users/{dora}"),
        Some(active_patch(false)),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let shown = cli_ok(&setup, &["webhooks", "--status"]).await;
    assert!(shown.contains("webhook platform: 1 pending"), "{shown}");
    assert!(
        shown.contains("1 failed, 0 delivered in the last 24 h"),
        "{shown}"
    );
    assert!(shown.contains("last error"), "{shown}");
    assert!(shown.contains("the receiver answered 500"), "{shown}");

    receiver.set(Mode::Accept);
    let (status, body) = scim(
        &daemon,
        &token,
        Method::POST,
        "/Users",
        Some(user("ed@north.example")),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let ed = id_of(&body);
    until("another account's event", || async {
        (receiver.story(&ed) == ["user.created"]).then_some(())
    })
    .await;
    assert!(
        receiver.story(&dora).is_empty(),
        "{:?}",
        receiver.story(&dora)
    );

    let replayed = cli_ok(&setup, &["webhooks", "--replay", "--webhook", "platform"]).await;
    assert!(
        replayed.contains("1 failed event queued again"),
        "{replayed}"
    );
    until("the replayed events, in order", || async {
        (receiver.story(&dora).len() == 2).then_some(())
    })
    .await;
    assert_eq!(receiver.story(&dora), ["user.created", "user.disabled"]);
    let shown = until("the status to settle", || async {
        let out = cli_ok(&setup, &["webhooks", "--status"]).await;
        out.contains("0 pending, 0 failed, 3 delivered")
            .then_some(out)
    })
    .await;
    assert!(!shown.contains("(oldest"), "{shown}");
    assert_eq!(
        cli_ok(&setup, &["webhooks", "--failed"]).await.trim(),
        "no failed events"
    );
    let output = cli(
        &setup,
        &["webhooks", "--replay", "--event", "no-such-event"],
    )
    .await;
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("no failed event no-such-event"));
    let output = cli(&setup, &["webhooks", "--status", "--webhook", "nope"]).await;
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("no webhook `nope` is configured"));
    let output = cli(&setup, &["webhooks"]).await;
    assert!(
        !output.status.success(),
        "one of --status, --failed, --replay"
    );

    stop_daemon(daemon).await;
    if let Some(database) = database {
        database.drop_now().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_outlive_a_daemon_restart_and_a_redelivery_keeps_its_id() {
    let receiver = Receiver::start(SECRET, Mode::Hang).await;
    let (_secrets, secret_file) = secret_dir(SECRET);
    let (setup, database) = setup_with(webhook_toml(
        &receiver,
        &secret_file,
        "max_attempts = 100\n",
    ))
    .await;
    let token = setup.create_token("north", "entra");
    let daemon = setup.serve(&[]).await;
    let (status, body) = scim(
        &daemon,
        &token,
        Method::POST,
        "/Users",
        Some(user("fay@north.example")),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let fay = id_of(&body);
    // The receiver got the event but never answered in time.
    let first = until("the first attempt", || async {
        receiver.seen().into_iter().find(|d| d.subject == fay)
    })
    .await;
    stop_daemon(daemon).await;
    let tries_before = receiver.seen().iter().filter(|d| d.subject == fay).count();

    // With no daemon running, the command line writes more events.
    let list = setup.dir.path().join("7x.txt");
    std::fs::write(&list, "First name\tSurname\nAda\tLovelace\nAlan\tTuring\n").unwrap();
    let imported = cli_ok(
        &setup,
        &[
            "import",
            "--school",
            "north",
            "--group",
            "7X",
            list.to_str().unwrap(),
        ],
    )
    .await;
    assert!(imported.trim_end().ends_with("committed"), "{imported}");
    let shown = cli_ok(&setup, &["webhooks", "--status"]).await;
    assert!(shown.contains("webhook platform: 5 pending"), "{shown}");

    receiver.set(Mode::Accept);
    let daemon = setup.serve(&[]).await;
    // The new daemon sends it again: the same event, id and body.
    let again = until("fay's creation, sent again", || async {
        let tries: Vec<Delivery> = receiver
            .seen()
            .into_iter()
            .filter(|d| d.subject == fay)
            .collect();
        (tries.len() > tries_before).then_some(tries)
    })
    .await;
    assert!(
        again
            .iter()
            .all(|d| d.id == first.id && d.body == first.body)
    );
    assert_eq!(receiver.story(&fay), ["user.created"]);
    // The imported accounts: created, then added to their group, each account in order.
    let students = until("the imported accounts' events", || async {
        let created: Vec<String> = receiver
            .accepted()
            .into_iter()
            .filter(|d| d.event_type == "user.created" && d.subject != fay)
            .map(|d| d.subject)
            .collect();
        (created.len() == 2 && created.iter().all(|s| receiver.story(s).len() == 2))
            .then_some(created)
    })
    .await;
    for student in &students {
        assert_eq!(
            receiver.story(student),
            ["user.created", "group.membership_changed:added"]
        );
    }
    assert!(receiver.rejected().is_empty());
    stop_daemon(daemon).await;
    if let Some(database) = database {
        database.drop_now().await;
    }
}

#[tokio::test]
async fn the_daemon_refuses_to_start_without_a_webhook_secret() {
    let receiver = Receiver::start(SECRET, Mode::Accept).await;
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("not-there.secret");
    let (setup, database) = setup_with(webhook_toml(&receiver, &missing, "")).await;
    let output = setup.run(&["check-config"]);
    assert!(!output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("webhook `platform`: the signing secret: cannot read"),
        "{stdout}"
    );
    let mut child = setup
        .command(&["serve", "--listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("rollcall serve started without its webhook secret");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(!status.success());
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(
        stderr.contains("webhook `platform`: the signing secret: cannot read"),
        "{stderr}"
    );
    if let Some(database) = database {
        database.drop_now().await;
    }
}

/// Two instances on one PostgreSQL database: one delivers at a time (its lease), so every
/// event, written through either, arrives once and in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_deliver_each_event_once() {
    if test_store() != "postgres" {
        eprintln!(
            "webhooks: two instances run in the PostgreSQL pass (ROLLCALL_TEST_STORE=postgres)"
        );
        return;
    }
    let receiver = Receiver::start(SECRET, Mode::Accept).await;
    let (_secrets, secret_file) = secret_dir(SECRET);
    // A generous timeout: no attempt may time out, so nothing is sent twice.
    let (setup, database) = setup_with(
        webhook_toml(&receiver, &secret_file, "").replace("timeout_secs = 1", "timeout_secs = 10"),
    )
    .await;
    let token = setup.create_token("north", "entra");
    let daemons = [setup.serve(&[]).await, setup.serve(&[]).await];
    let mut people = Vec::new();
    for n in 0..6 {
        let (status, body) = scim(
            &daemons[n % 2],
            &token,
            Method::POST,
            "/Users",
            Some(user(&format!("twin{n}@north.example"))),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let id = id_of(&body);
        let (status, body) = scim(
            &daemons[(n + 1) % 2],
            &token,
            Method::PATCH,
            &format!("/Users/{id}"),
            Some(active_patch(false)),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        people.push(id);
    }
    for id in &people {
        until("each account's events", || async {
            (receiver.story(id).len() == 2).then_some(())
        })
        .await;
        assert_eq!(receiver.story(id), ["user.created", "user.disabled"]);
    }
    let seen = receiver.seen();
    assert_eq!(seen.len(), 12, "each event once: {seen:?}");
    let delivering = daemons
        .iter()
        .filter(|d| d.log().contains("delivering webhook events"))
        .count();
    assert_eq!(delivering, 1, "one instance holds the webhook");
    for daemon in daemons {
        stop_daemon(daemon).await;
    }
    if let Some(database) = database {
        database.drop_now().await;
    }
}
