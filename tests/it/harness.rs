//! `TestApp::start()` gives each test its own daemon, store and tokens.
//!
//! The store is SQLite (a file in a temporary directory) unless `ROLLCALL_TEST_STORE=postgres`:
//! then each app gets a fresh PostgreSQL database of its own (see `postgres.rs`), so that this
//! suite is the store contract for both backends (`scripts/test.sh` runs it on each).

use std::path::Path;

use reqwest::{Method, StatusCode, header::HeaderMap};
use rollcall::clock::Clock;
use rollcall::config::Config;
use serde_json::Value;
use tokio::sync::oneshot;

use crate::postgres::TestDatabase;

pub const USER_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const GROUP_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub const ENTERPRISE_URN: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
pub const PATCH_URN: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
pub const ERROR_URN: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

/// A running daemon with two schools: `north` (token `token`, source `entra`; admin `office`
/// with `admin_token`; a course catalogue) and `south` (token `other_token`, source `okta`;
/// admin `office` with `other_admin_token`; word passwords).
pub struct TestApp {
    /// `http://127.0.0.1:PORT/scim/v2`
    pub scim: String,
    pub root: String,
    pub token: String,
    pub other_token: String,
    pub admin_token: String,
    pub other_admin_token: String,
    pub http: reqwest::Client,
    pub state: rollcall::http::AppState,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<Result<(), rollcall::Error>>>,
    _dir: tempfile::TempDir,
    /// The app's PostgreSQL database, dropped with the app (`None` on SQLite).
    database: Option<TestDatabase>,
}

/// Which backend `TestApp` runs on, from `ROLLCALL_TEST_STORE` (`sqlite`, the default, or
/// `postgres`).
pub fn test_store() -> &'static str {
    match std::env::var("ROLLCALL_TEST_STORE").as_deref() {
        Err(_) | Ok("" | "sqlite") => "sqlite",
        Ok("postgres") => "postgres",
        Ok(other) => panic!("ROLLCALL_TEST_STORE={other}: use sqlite or postgres"),
    }
}

/// A response: status, headers and the JSON body (`Value::Null` when empty).
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts an RFC 7644 §3.12 error with this status and (optional) scimType.
    #[track_caller]
    pub fn assert_error(&self, status: u16, scim_type: Option<&str>) {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.body);
        assert_eq!(self.body["schemas"][0], ERROR_URN, "body: {}", self.body);
        assert_eq!(
            self.body["status"],
            status.to_string(),
            "body: {}",
            self.body
        );
        assert_eq!(
            self.body.get("scimType").and_then(Value::as_str),
            scim_type,
            "body: {}",
            self.body
        );
        assert_eq!(
            self.header("content-type"),
            Some("application/scim+json"),
            "content type"
        );
    }
}

/// The test configuration with its store in this SQLite file.
pub fn config_text(db: &Path) -> String {
    config_text_with_store(&format!("sqlite://{}", db.display()))
}

/// The test configuration (schools `north` and `south`) with this `[store] url`.
pub fn config_text_with_store(store_url: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
shutdown_grace_secs = 5

[store]
url = "{store_url}"

[[schools]]
id = "north"
name = "North Academy"
login_url = "https://learn.north.example"

[[schools.courses]]
code = "MA-Y1-AS"
title = "Mathematics Year 1 (AS)"
implies = ["MA-Y1-STAT", "MA-Y1-MECH"]

[[schools.courses]]
code = "MA-Y1-STAT"
title = "Statistics Year 1"

[[schools.courses]]
code = "MA-Y1-MECH"
title = "Mechanics Year 1"

[[schools.courses]]
code = "PH-Y1"
title = "Physics Year 1"

[[schools]]
id = "south"
name = "South School"

[schools.passwords]
kind = "words"
words = 3
digits = 2
"#
    )
}

impl TestApp {
    pub async fn start() -> TestApp {
        TestApp::start_with(|text| text).await
    }

    /// A daemon whose configuration is `edit` applied to [`config_text`].
    pub async fn start_with(edit: impl FnOnce(String) -> String) -> TestApp {
        let dir = tempfile::tempdir().expect("temp dir");
        let database = match test_store() {
            "postgres" => Some(TestDatabase::create().await),
            _ => None,
        };
        let text = edit(match &database {
            Some(database) => config_text_with_store(&database.url),
            None => config_text(&dir.path().join("rollcall.db")),
        });
        let config = Config::parse(&text, dir.path()).expect("test config");
        let state = rollcall::state(&config, Clock::system())
            .await
            .expect("state");
        let store = &state.provider.store;
        let clock = Clock::system();
        let (_, token) = rollcall::token::create(store, &clock, "north", "entra")
            .await
            .expect("token");
        let (_, other_token) = rollcall::token::create(store, &clock, "south", "okta")
            .await
            .expect("token");
        let mut admin_tokens = Vec::new();
        for school in ["north", "south"] {
            store
                .insert_admin(school, &format!("admin-{school}"), "office", clock.now())
                .await
                .expect("admin");
            let (_, token) = rollcall::token::create_admin(store, &clock, school, "office")
                .await
                .expect("admin token");
            admin_tokens.push(token);
        }
        let other_admin_token = admin_tokens.pop().expect("south");
        let admin_token = admin_tokens.pop().expect("north");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        let (tx, rx) = oneshot::channel();
        let server = tokio::spawn(rollcall::serve(
            state.clone(),
            config.server,
            listener,
            async move {
                let _ = rx.await;
            },
        ));
        let root = format!("http://{address}");
        TestApp {
            scim: format!("{root}/scim/v2"),
            root,
            token,
            other_token,
            admin_token,
            other_admin_token,
            http: reqwest::Client::new(),
            state,
            shutdown: Some(tx),
            server: Some(server),
            _dir: dir,
            database,
        }
    }

    /// Whether the store holds these bytes anywhere: on SQLite in its files (database and WAL),
    /// on PostgreSQL in any table's rows as text (or, for BYTEA, their hex form).
    pub fn store_holds(&self, needle: &str) -> bool {
        if let Some(database) = &self.database {
            return database.holds(needle);
        }
        ["rollcall.db", "rollcall.db-wal"].iter().any(|name| {
            std::fs::read(self._dir.path().join(name)).is_ok_and(|bytes| {
                bytes
                    .windows(needle.len())
                    .any(|window| window == needle.as_bytes())
            })
        })
    }

    /// A SCIM request as north's client (`token`).
    pub async fn send(&self, method: Method, path: &str, body: Option<&Value>) -> Reply {
        self.send_as(&self.token, method, path, body, &[]).await
    }

    /// Sends a request with this token; `body` is sent as JSON when given.
    pub async fn send_as(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let url = if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{path}", self.scim)
        };
        let mut request = self.http.request(method, url).bearer_auth(token);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/scim+json")
                .body(body.to_string());
        }
        let response = request.send().await.expect("request");
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body");
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("response is not JSON ({e}): {text}"))
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    /// An `/api/v1` request (`path` below it) with a token (`None`: no Authorization), a JSON
    /// body or a text body.
    pub async fn api_as(
        &self,
        token: Option<&str>,
        method: Method,
        path: &str,
        body: Option<ApiBody<'_>>,
    ) -> Reply {
        api_request(&self.http, &self.root, token, method, path, body).await
    }

    /// An `/api/v1` request as north's admin.
    pub async fn api(&self, method: Method, path: &str, body: Option<ApiBody<'_>>) -> Reply {
        self.api_as(Some(&self.admin_token), method, path, body)
            .await
    }

    /// Creates a north account through the admin API (`POST /schools/north/users`), asserting
    /// 201; returns the answer: the account, with its first password.
    pub async fn new_account(&self, body: &Value) -> Value {
        let reply = self
            .api(
                Method::POST,
                "/schools/north/users",
                Some(ApiBody::Json(body)),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        reply.body
    }

    /// Pastes a class list into a group of north: `query` is e.g. `dry_run=true&course=…`.
    pub async fn paste(&self, group: &str, query: &str, text: &str) -> Reply {
        let group: String = url_encode(group);
        self.api(
            Method::POST,
            &format!("/schools/north/groups/{group}/students:bulk?{query}"),
            Some(ApiBody::Text(text)),
        )
        .await
    }

    /// Logs in through the platform's API.
    pub async fn login(&self, school: &str, username: &str, password: &str) -> Reply {
        let body =
            serde_json::json!({ "school": school, "username": username, "password": password });
        self.api_as(
            None,
            Method::POST,
            "/auth/login",
            Some(ApiBody::Json(&body)),
        )
        .await
    }

    /// Sends a raw body (for malformed-input tests).
    pub async fn send_raw(
        &self,
        method: Method,
        path: &str,
        body: impl Into<reqwest::Body>,
    ) -> Reply {
        let response = self
            .http
            .request(method, format!("{}{path}", self.scim))
            .bearer_auth(&self.token)
            .header("content-type", "application/scim+json")
            .body(body)
            .send()
            .await
            .expect("request");
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send_as(&self.token, Method::GET, path, None, &[])
            .await
    }
    pub async fn post(&self, path: &str, body: &Value) -> Reply {
        self.send_as(&self.token, Method::POST, path, Some(body), &[])
            .await
    }
    pub async fn put(&self, path: &str, body: &Value) -> Reply {
        self.send_as(&self.token, Method::PUT, path, Some(body), &[])
            .await
    }
    pub async fn patch(&self, path: &str, body: &Value) -> Reply {
        self.send_as(&self.token, Method::PATCH, path, Some(body), &[])
            .await
    }
    pub async fn delete(&self, path: &str) -> Reply {
        self.send_as(&self.token, Method::DELETE, path, None, &[])
            .await
    }

    /// `GET /Users?filter=…` (URL-encoded), returning the reply.
    pub async fn filter(&self, endpoint: &str, filter: &str) -> Reply {
        let url = reqwest::Url::parse_with_params(
            &format!("{}{endpoint}", self.scim),
            &[("filter", filter)],
        )
        .expect("url");
        self.send_as(&self.token, Method::GET, url.as_str(), None, &[])
            .await
    }

    /// Creates a user and returns its JSON, asserting 201.
    pub async fn create_user(&self, body: Value) -> Value {
        let reply = self.post("/Users", &body).await;
        assert_eq!(
            reply.status,
            StatusCode::CREATED,
            "create user: {}",
            reply.body
        );
        reply.body
    }

    pub async fn create_group(&self, body: Value) -> Value {
        let reply = self.post("/Groups", &body).await;
        assert_eq!(
            reply.status,
            StatusCode::CREATED,
            "create group: {}",
            reply.body
        );
        reply.body
    }

    /// Stops the daemon and waits for it; on PostgreSQL, then closes the pool and drops the
    /// app's database.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.expect("join").expect("server result");
        }
        if let Some(database) = self.database.take() {
            self.state.provider.store.close().await;
            database.drop_now().await;
        }
    }
}

impl Drop for TestApp {
    /// A test that panics (or never calls `stop`) still stops its daemon and, on PostgreSQL,
    /// drops its database (`TestDatabase`'s own drop, which ends any connection left).
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// A minimal user document.
pub fn user(user_name: &str) -> Value {
    serde_json::json!({ "schemas": [USER_URN], "userName": user_name })
}

/// A user as Microsoft Entra ID creates one.
pub fn entra_user(user_name: &str, given: &str, family: &str, mail: &str, nickname: &str) -> Value {
    serde_json::json!({
        "schemas": [USER_URN, ENTERPRISE_URN],
        "externalId": nickname,
        "userName": user_name,
        "active": true,
        "emails": [{ "primary": true, "type": "work", "value": mail }],
        "meta": { "resourceType": "User" },
        "name": { "formatted": format!("{given} {family}"), "familyName": family, "givenName": given },
        "roles": []
    })
}

pub fn ids(list: &Value) -> Vec<String> {
    list["Resources"]
        .as_array()
        .map(|r| {
            r.iter()
                .filter_map(|x| x["id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

pub fn user_names(list: &Value) -> Vec<String> {
    let mut names: Vec<String> = list["Resources"]
        .as_array()
        .map(|r| {
            r.iter()
                .filter_map(|x| x["userName"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

// --- Helpers shared by the bulk, versions, isolation, bad_input, audit and cli tests. ---

pub const BULK_URN: &str = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";

/// A BulkRequest with these operations.
pub fn bulk_request(operations: Vec<Value>) -> Value {
    serde_json::json!({ "schemas": [BULK_URN], "Operations": operations })
}

/// A PatchOp request with these operations.
pub fn patch_request(operations: Value) -> Value {
    serde_json::json!({ "schemas": [PATCH_URN], "Operations": operations })
}

/// A resource's `id`.
#[track_caller]
pub fn id_of(resource: &Value) -> String {
    resource["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id in {resource}"))
        .to_owned()
}

/// `totalResults` of `GET endpoint` (`/Users` or `/Groups`) as the holder of `token`.
pub async fn total_as(app: &TestApp, token: &str, endpoint: &str) -> i64 {
    let reply = app.send_as(token, Method::GET, endpoint, None, &[]).await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "list {endpoint}: {}",
        reply.body
    );
    reply.body["totalResults"]
        .as_i64()
        .unwrap_or_else(|| panic!("no totalResults: {}", reply.body))
}

/// How many users and groups the `north` token sees.
pub async fn north_totals(app: &TestApp) -> (i64, i64) {
    (
        total_as(app, &app.token, "/Users").await,
        total_as(app, &app.token, "/Groups").await,
    )
}

/// The body of an `/api/v1` request.
pub enum ApiBody<'a> {
    Json(&'a Value),
    Text(&'a str),
}

/// Percent-encodes a path segment (group names hold `/`).
pub fn url_encode(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The rows of a class import's preview or result.
#[track_caller]
pub fn rows(reply: &Reply) -> &Vec<Value> {
    reply.body["rows"]
        .as_array()
        .unwrap_or_else(|| panic!("no rows ({}): {}", reply.status, reply.body))
}

/// The import row with this spreadsheet row number (the header is row 1).
#[track_caller]
pub fn row(reply: &Reply, number: u64) -> &Value {
    rows(reply)
        .iter()
        .find(|row| row["row"] == number)
        .unwrap_or_else(|| panic!("no row {number}: {}", reply.body))
}

/// An `/api/v1` request (`path` below it) to the daemon at `root` (`http://127.0.0.1:PORT`),
/// in-process or a real process, with a token (`None`: no Authorization) and a JSON or text
/// body. A body that is not JSON comes back as a string.
pub async fn api_request(
    http: &reqwest::Client,
    root: &str,
    token: Option<&str>,
    method: Method,
    path: &str,
    body: Option<ApiBody<'_>>,
) -> Reply {
    let mut request = http.request(method, format!("{root}/api/v1{path}"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    match body {
        Some(ApiBody::Json(json)) => {
            request = request
                .header("content-type", "application/json")
                .body(json.to_string());
        }
        Some(ApiBody::Text(text)) => {
            request = request
                .header("content-type", "text/plain; charset=utf-8")
                .body(text.to_owned());
        }
        None => {}
    }
    let response = request.send().await.expect("request");
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Reply {
        status,
        headers,
        body,
    }
}
