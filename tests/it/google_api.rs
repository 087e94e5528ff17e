//! A test-only Google Admin SDK Directory API and OAuth 2.0 token endpoint on 127.0.0.1,
//! answering as Google documents: `users.list`, `groups.list` and `members.list` with their
//! `kind`, `etag`, items and `nextPageToken`, Google's error bodies
//! (`{"error": {"code", "message", "errors": [{"message", "domain", "reason"}], "status"}}`),
//! and the token endpoint's `{"access_token", "expires_in", "token_type"}` or
//! `{"error", "error_description"}`.
//!
//! The token endpoint takes only the JWT bearer grant: the assertion's RS256 signature is
//! checked with the test service account's public key, and its claims (`iss`, `sub` a user of
//! the domain, `aud` this endpoint, `iat`/`exp` an hour at most, not expired) and scopes
//! (those granted to the service account, as domain-wide delegation does). Every API call
//! needs a live token it issued, with the scope the method needs, for an admin.
//!
//! Tests can inject failures (403 quota errors, 429 with `Retry-After`, 500 and 503 on chosen
//! requests, or 503 always), shorten token lifetimes, revoke tokens, slow answers down, and
//! read back every request it saw. [`generate`] builds a school's domain deterministically.

// The handlers' helpers answer `Err(Response)`, as axum handlers do.
#![allow(clippy::result_large_err)]

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use serde_json::{Value, json};
use tokio::sync::oneshot;

pub const USERS_SCOPE: &str = "https://www.googleapis.com/auth/admin.directory.user.readonly";
pub const GROUPS_SCOPE: &str = "https://www.googleapis.com/auth/admin.directory.group.readonly";
pub const CLIENT_EMAIL: &str = "rollcall-sync@north-academy.iam.gserviceaccount.com";
pub const ADMIN: &str = "it.admin@north.example";
/// A user of the domain who is not an admin.
pub const NOT_ADMIN: &str = "office@north.example";
pub const CUSTOMER_ID: &str = "C03az79cb";
pub const DOMAIN: &str = "north.example";
const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// An RSA key pair: the private key as PKCS#8 PEM, the public one's modulus and exponent.
pub struct TestKey {
    pem: String,
    n: Vec<u8>,
    e: Vec<u8>,
}

impl TestKey {
    fn generate() -> TestKey {
        use rsa::pkcs8::EncodePrivateKey;
        use rsa::traits::PublicKeyParts;
        let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).unwrap();
        TestKey {
            pem: key
                .to_pkcs8_pem(rsa::pkcs8::LineEnding::LF)
                .unwrap()
                .to_string(),
            n: key.n().to_bytes_be(),
            e: key.e().to_bytes_be(),
        }
    }

    /// The service account's JSON key file as the Google Cloud console downloads it.
    pub fn key_json(&self, token_uri: &str) -> String {
        json!({
            "type": "service_account",
            "project_id": "north-academy",
            "private_key_id": "5f0d6c1a9e",
            "private_key": self.pem,
            "client_email": CLIENT_EMAIL,
            "client_id": "109876543210987654321",
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": token_uri,
            "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
            "universe_domain": "googleapis.com"
        })
        .to_string()
    }
}

/// The test service account's key (generated once per test process).
pub fn service_account() -> &'static TestKey {
    static KEY: OnceLock<TestKey> = OnceLock::new();
    KEY.get_or_init(TestKey::generate)
}

/// Another key, which the fake does not know.
pub fn stranger() -> &'static TestKey {
    static KEY: OnceLock<TestKey> = OnceLock::new();
    KEY.get_or_init(TestKey::generate)
}

#[derive(Debug, Clone)]
pub struct User {
    pub id: String,
    pub email: String,
    pub given: String,
    pub family: String,
    pub org_unit: String,
    pub suspended: bool,
    pub archived: bool,
    pub deleted: bool,
    pub admin: bool,
    /// `externalIds` of type `organization`.
    pub number: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Member {
    pub id: String,
    pub email: Option<String>,
    /// `USER`, `GROUP` or `CUSTOMER`.
    pub kind: &'static str,
}

#[derive(Debug, Clone)]
pub struct Group {
    pub id: String,
    pub email: String,
    pub name: String,
    pub members: Vec<Member>,
}

/// A Google Workspace domain.
#[derive(Debug, Clone)]
pub struct Domain {
    pub users: Vec<User>,
    pub groups: Vec<Group>,
    pub org_units: Vec<String>,
}

impl Domain {
    pub fn group(&self, email: &str) -> &Group {
        self.groups.iter().find(|g| g.email == email).unwrap()
    }

    /// Whether a user is in an org unit or below it, as Google's `orgUnitPath` query matches.
    pub fn under(user: &User, unit: &str) -> bool {
        unit == "/" || user.org_unit == unit || user.org_unit.starts_with(&format!("{unit}/"))
    }

    /// The users a group holds, directly and through the groups in it.
    pub fn people_of(&self, email: &str) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        let mut seen = BTreeSet::new();
        let mut stack = vec![self.group(email).id.clone()];
        while let Some(id) = stack.pop() {
            if !seen.insert(id.clone()) {
                continue;
            }
            let group = self.groups.iter().find(|g| g.id == id).unwrap();
            for member in &group.members {
                match member.kind {
                    "USER" => {
                        out.insert(member.id.clone());
                    }
                    "GROUP" => stack.push(member.id.clone()),
                    _ => {}
                }
            }
        }
        out
    }
}

const GIVEN: [&str; 25] = [
    "Ann", "Ben", "Cara", "Dev", "Ella", "Finn", "Grace", "Hari", "Isla", "Jack", "Kai", "Lena",
    "Mo", "Nia", "Omar", "Pia", "Quinn", "Rosa", "Sam", "Tia", "Uma", "Vik", "Wren", "Yusuf",
    "Zoe",
];
const FAMILY: [&str; 31] = [
    "Adams", "Baker", "Chen", "Davies", "Evans", "Fischer", "Garcia", "Hughes", "Iqbal", "Jones",
    "Khan", "Lewis", "Murphy", "Nowak", "O'Brien", "Patel", "Quist", "Roberts", "Singh", "Taylor",
    "Ueda", "Varga", "Walker", "Xu", "Young", "Zhang", "Ahmed", "Brown", "Clarke", "Dubois",
    "Ellis",
];
pub const SUBJECTS: [(&str, &str); 3] = [("ma", "Ma"), ("en", "En"), ("sc", "Sc")];
pub const STAFF: usize = 60;

/// A school's domain: `per_year` students in each of `/Students/Year 7` … `/Students/Year 13`
/// (some suspended, some archived, one deleted), 60 staff in `/Staff` and `/Staff/Science`,
/// an admin, office and governors' accounts elsewhere; for each year and form (a–c) a
/// maths, English and science group (`12a-ma1@…`, named `12A/Ma1`) holding the form's
/// students and a tutor, `12z-gs1@` holding years 12 and 13 and a nested group (itself
/// nesting one, in a cycle), and groups that are not teaching groups (`everyone@` with the
/// customer as member, `staff@`, `psych-13a@` named like a teaching group).
pub fn generate(per_year: usize) -> Domain {
    let mut users = Vec::new();
    let mut org_units: Vec<String> = ["/", "/Students", "/Staff", "/Staff/Science", "/Office"]
        .map(String::from)
        .into();
    org_units.extend(["/Governors".into(), "/Alumni".into()]);
    let mut n = 0;
    for year in 7..=13 {
        org_units.push(format!("/Students/Year {year}"));
        for _ in 0..per_year {
            let given = GIVEN[n % GIVEN.len()];
            let family = FAMILY[(n / GIVEN.len() + n) % FAMILY.len()];
            let local = format!("{}.{}{n}", given, family.replace('\'', "")).to_lowercase();
            users.push(User {
                id: format!("1{:020}", 4_000_000 + n * 7919),
                email: format!("{local}@{DOMAIN}"),
                given: given.into(),
                family: family.into(),
                org_unit: format!("/Students/Year {year}"),
                suspended: n % 97 == 5,
                archived: n % 131 == 7 && n % 97 != 5,
                deleted: n == 42,
                admin: false,
                number: Some(format!("S{:06}", n + 1)),
            });
            n += 1;
        }
    }
    for t in 0..STAFF {
        let given = GIVEN[(t * 7) % GIVEN.len()];
        let family = FAMILY[(t * 3 + 1) % FAMILY.len()];
        users.push(User {
            id: format!("2{:020}", 9_000_000 + t * 104_729),
            email: format!(
                "{}.{}.staff{t}@{DOMAIN}",
                given.to_lowercase(),
                family.replace('\'', "").to_lowercase()
            ),
            given: given.into(),
            family: family.into(),
            org_unit: if t < 50 { "/Staff" } else { "/Staff/Science" }.into(),
            suspended: t == 13,
            archived: false,
            deleted: false,
            admin: false,
            number: Some(format!("T{:05}", t + 1)),
        });
    }
    let other = |id: &str, email: &str, given: &str, family: &str, unit: &str, admin: bool| User {
        id: id.into(),
        email: email.into(),
        given: given.into(),
        family: family.into(),
        org_unit: unit.into(),
        suspended: false,
        archived: false,
        deleted: false,
        admin,
        number: None,
    };
    users.push(other(
        "300000000000000000001",
        ADMIN,
        "It",
        "Admin",
        "/",
        true,
    ));
    users.push(other(
        "300000000000000000002",
        NOT_ADMIN,
        "Front",
        "Office",
        "/Office",
        false,
    ));
    for (g, family) in FAMILY.iter().take(5).enumerate() {
        users.push(other(
            &format!("30000000000000000001{g}"),
            &format!("governor{g}@{DOMAIN}"),
            "Governor",
            family,
            "/Governors",
            false,
        ));
    }

    let students_of = |year: usize| -> Vec<&User> {
        users
            .iter()
            .filter(|u| u.org_unit == format!("/Students/Year {year}"))
            .collect()
    };
    let staff: Vec<&User> = users
        .iter()
        .filter(|u| u.org_unit.starts_with("/Staff"))
        .collect();
    let user = |u: &User| Member {
        id: u.id.clone(),
        email: Some(u.email.clone()),
        kind: "USER",
    };
    let mut groups = Vec::new();
    let mut group_id = 0;
    let mut next_id = || {
        group_id += 1;
        format!("03x{:012x}", 0x5eed_0000_u64 + group_id * 7_777)
    };
    for year in 7..=13 {
        let students = students_of(year);
        for (form_index, form) in ["a", "b", "c"].into_iter().enumerate() {
            for (subject_index, (code, title)) in SUBJECTS.into_iter().enumerate() {
                let mut members: Vec<Member> = students
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| i % 3 == form_index)
                    .map(|(_, u)| user(u))
                    .collect();
                members.push(user(
                    staff[(year * 3 + form_index * 5 + subject_index) % 50],
                ));
                groups.push(Group {
                    id: next_id(),
                    email: format!("{year}{form}-{code}1@{DOMAIN}"),
                    name: format!("{year}{}/{title}1", form.to_uppercase()),
                    members,
                });
            }
        }
    }
    let (gs, extra, extra2) = (next_id(), next_id(), next_id());
    let mut general: Vec<Member> = students_of(12)
        .into_iter()
        .chain(students_of(13))
        .map(user)
        .collect();
    general.insert(
        per_year / 2,
        Member {
            id: extra.clone(),
            email: Some(format!("gs-extra@{DOMAIN}")),
            kind: "GROUP",
        },
    );
    groups.push(Group {
        id: gs.clone(),
        email: format!("12z-gs1@{DOMAIN}"),
        name: "12Z/Gs1".into(),
        members: general,
    });
    let mut extra_members: Vec<Member> = students_of(11).into_iter().take(3).map(user).collect();
    extra_members.push(user(staff[51]));
    extra_members.push(Member {
        id: extra2.clone(),
        email: Some(format!("gs-extra-2@{DOMAIN}")),
        kind: "GROUP",
    });
    groups.push(Group {
        id: extra.clone(),
        email: format!("gs-extra@{DOMAIN}"),
        name: "General studies extra".into(),
        members: extra_members,
    });
    let mut extra2_members: Vec<Member> = students_of(10).into_iter().take(2).map(user).collect();
    // A cycle: followed once.
    extra2_members.push(Member {
        id: extra,
        email: Some(format!("gs-extra@{DOMAIN}")),
        kind: "GROUP",
    });
    groups.push(Group {
        id: extra2,
        email: format!("gs-extra-2@{DOMAIN}"),
        name: "General studies extra 2".into(),
        members: extra2_members,
    });
    groups.push(Group {
        id: next_id(),
        email: format!("everyone@{DOMAIN}"),
        name: "Everyone".into(),
        members: vec![Member {
            id: CUSTOMER_ID.into(),
            email: None,
            kind: "CUSTOMER",
        }],
    });
    groups.push(Group {
        id: next_id(),
        email: format!("staff@{DOMAIN}"),
        name: "All staff".into(),
        members: staff.iter().map(|u| user(u)).collect(),
    });
    groups.push(Group {
        id: next_id(),
        email: format!("psych-13a@{DOMAIN}"),
        name: "13A/Ps1".into(),
        members: students_of(13).into_iter().take(4).map(user).collect(),
    });
    Domain {
        users,
        groups,
        org_units,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    Token,
    Users,
    Groups,
    Members,
}

/// A failure to answer with.
#[derive(Debug, Clone)]
pub enum Fault {
    /// 403 with this reason (`userRateLimitExceeded`, `rateLimitExceeded`, `quotaExceeded`).
    Quota(&'static str),
    /// 429 `RESOURCE_EXHAUSTED` with `Retry-After`.
    TooMany { retry_after: u64 },
    /// 500 or 503 (or another status) as Google's front end answers it.
    Status(u16),
}

/// One request the fake answered.
#[derive(Debug, Clone)]
pub struct Seen {
    pub endpoint: Endpoint,
    pub path: String,
    pub query: HashMap<String, String>,
    pub status: u16,
}

struct Issued {
    expires: Instant,
    scopes: Vec<String>,
    sub: String,
}

struct Fake {
    domain: Domain,
    token_url: String,
    granted: Vec<String>,
    token_lifetime: u64,
    tokens: HashMap<String, Issued>,
    issued: usize,
    faults: Vec<(Endpoint, usize, Fault)>,
    always: Option<Fault>,
    counts: HashMap<Endpoint, usize>,
    api_requests: usize,
    revoke_at: Option<usize>,
    delay: Duration,
    seen: Vec<Seen>,
}

type Shared = Arc<Mutex<Fake>>;

/// The fake, listening on 127.0.0.1; stopped by [`FakeGoogle::stop`] or when dropped.
pub struct FakeGoogle {
    /// `http://127.0.0.1:PORT`: the `api_url`.
    pub url: String,
    pub token_url: String,
    state: Shared,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl FakeGoogle {
    pub async fn start(domain: Domain) -> FakeGoogle {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let token_url = format!("{url}/token");
        let state = Arc::new(Mutex::new(Fake {
            domain,
            token_url: token_url.clone(),
            granted: vec![USERS_SCOPE.into(), GROUPS_SCOPE.into()],
            token_lifetime: 3599,
            tokens: HashMap::new(),
            issued: 0,
            faults: Vec::new(),
            always: None,
            counts: HashMap::new(),
            api_requests: 0,
            revoke_at: None,
            delay: Duration::ZERO,
            seen: Vec::new(),
        }));
        let app = Router::new()
            .route("/token", post(token))
            .route("/admin/directory/v1/users", get(users))
            .route("/admin/directory/v1/groups", get(groups))
            .route("/admin/directory/v1/groups/{key}/members", get(members))
            .with_state(state.clone());
        let (shutdown, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await;
        });
        FakeGoogle {
            url,
            token_url,
            state,
            shutdown: Some(shutdown),
            task: Some(task),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut Fake) -> R) -> R {
        f(&mut self.state.lock().unwrap())
    }

    /// Answers request number `nth` (from 0, every attempt counted) to `endpoint` with `fault`.
    pub fn fail(&self, endpoint: Endpoint, nth: usize, fault: Fault) {
        self.with(|f| f.faults.push((endpoint, nth, fault)));
    }

    /// Answers every API request with `fault` (`None`: as usual again).
    pub fn always(&self, fault: Option<Fault>) {
        self.with(|f| f.always = fault);
    }

    /// The `expires_in` of the tokens it issues from now on.
    pub fn token_lifetime(&self, seconds: u64) {
        self.with(|f| f.token_lifetime = seconds);
    }

    /// Revokes every token issued so far once the API has answered `n` more requests.
    pub fn revoke_at(&self, n: usize) {
        self.with(|f| f.revoke_at = Some(f.api_requests + n));
    }

    /// Waits this long before answering each API request.
    pub fn delay(&self, delay: Duration) {
        self.with(|f| f.delay = delay);
    }

    /// The scopes domain-wide delegation grants the service account.
    pub fn grant(&self, scopes: &[&str]) {
        self.with(|f| f.granted = scopes.iter().map(|s| (*s).to_owned()).collect());
    }

    pub fn edit(&self, edit: impl FnOnce(&mut Domain)) {
        self.with(|f| edit(&mut f.domain));
    }

    /// Every request answered so far, and forgets them.
    pub fn take_seen(&self) -> Vec<Seen> {
        self.with(|f| std::mem::take(&mut f.seen))
    }

    /// Tokens issued so far.
    pub fn tokens_issued(&self) -> usize {
        self.with(|f| f.issued)
    }

    pub async fn stop(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
    }
}

impl Drop for FakeGoogle {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Google's error body.
fn google_error(code: u16, message: &str, domain: &str, reason: &str, status: &str) -> Response {
    let body = json!({
        "error": {
            "code": code,
            "message": message,
            "errors": [{"message": message, "domain": domain, "reason": reason}],
            "status": status,
        }
    });
    (StatusCode::from_u16(code).unwrap(), Json(body)).into_response()
}

fn fault_response(fault: &Fault) -> Response {
    match fault {
        Fault::Quota(reason) => {
            let message = match *reason {
                "userRateLimitExceeded" => "User Rate Limit Exceeded",
                "quotaExceeded" => "Quota Exceeded",
                _ => "Rate Limit Exceeded",
            };
            google_error(403, message, "usageLimits", reason, "PERMISSION_DENIED")
        }
        Fault::TooMany { retry_after } => {
            let mut response = google_error(
                429,
                "Resource has been exhausted (e.g. check quota).",
                "global",
                "rateLimitExceeded",
                "RESOURCE_EXHAUSTED",
            );
            response.headers_mut().insert(
                header::RETRY_AFTER,
                retry_after.to_string().parse().unwrap(),
            );
            response
        }
        Fault::Status(500) => google_error(
            500,
            "Internal error encountered.",
            "global",
            "backendError",
            "INTERNAL",
        ),
        Fault::Status(503) => google_error(
            503,
            "The service is currently unavailable.",
            "global",
            "backendError",
            "UNAVAILABLE",
        ),
        Fault::Status(code) => google_error(*code, "Error", "global", "backendError", "UNKNOWN"),
    }
}

impl Fake {
    /// The fault for this request to `endpoint`, if any; counts it.
    fn fault(&mut self, endpoint: Endpoint) -> Option<Fault> {
        let count = self.counts.entry(endpoint).or_default();
        let nth = *count;
        *count += 1;
        if endpoint != Endpoint::Token
            && let Some(fault) = &self.always
        {
            return Some(fault.clone());
        }
        self.faults
            .iter()
            .find(|(e, n, _)| *e == endpoint && *n == nth)
            .map(|(_, _, fault)| fault.clone())
    }

    fn record(
        &mut self,
        endpoint: Endpoint,
        path: &str,
        query: &HashMap<String, String>,
        status: u16,
    ) {
        self.seen.push(Seen {
            endpoint,
            path: path.to_owned(),
            query: query.clone(),
            status,
        });
    }
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        Json(json!({"error": error, "error_description": description})),
    )
        .into_response()
}

async fn token(State(state): State<Shared>, Form(form): Form<HashMap<String, String>>) -> Response {
    let mut fake = state.lock().unwrap();
    let empty = HashMap::new();
    let response = grant(&mut fake, &form);
    let status = response.status().as_u16();
    fake.record(Endpoint::Token, "/token", &empty, status);
    response
}

fn grant(fake: &mut Fake, form: &HashMap<String, String>) -> Response {
    if let Some(fault) = fake.fault(Endpoint::Token) {
        return fault_response(&fault);
    }
    let invalid =
        |description: &str| oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", description);
    if form.get("grant_type").map(String::as_str) != Some(JWT_BEARER) {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "Invalid grant_type: ",
        );
    }
    let Some(assertion) = form.get("assertion") else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Missing required parameter: assertion",
        );
    };
    let Ok(header) = jsonwebtoken::decode_header(assertion) else {
        return invalid("Invalid JWT: the assertion is not a JWT.");
    };
    if header.alg != jsonwebtoken::Algorithm::RS256 {
        return invalid("Invalid JWT Signature.");
    }
    let key = service_account();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&[fake.token_url.as_str()]);
    validation.set_issuer(&[CLIENT_EMAIL]);
    validation.set_required_spec_claims(&["exp", "iat", "aud", "iss", "sub"]);
    validation.leeway = 0;
    let decoded = jsonwebtoken::decode::<Value>(
        assertion,
        &jsonwebtoken::DecodingKey::from_rsa_raw_components(&key.n, &key.e),
        &validation,
    );
    let claims = match decoded {
        Ok(data) => data.claims,
        Err(error) => {
            use jsonwebtoken::errors::ErrorKind;
            return invalid(match error.kind() {
                ErrorKind::InvalidSignature | ErrorKind::InvalidIssuer => "Invalid JWT Signature.",
                ErrorKind::InvalidAudience => {
                    "Invalid JWT: Failed audience check. The expected value was the token endpoint."
                }
                _ => {
                    "Invalid JWT: Token must be a short-lived token (60 minutes) and in a \
                     reasonable timeframe. Check your iat and exp values in the JWT claim."
                }
            });
        }
    };
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let (iat, exp) = (
        claims["iat"].as_i64().unwrap_or(0),
        claims["exp"].as_i64().unwrap_or(0),
    );
    if exp - iat > 3600 || iat > now + 60 || exp <= now {
        return invalid(
            "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable \
             timeframe. Check your iat and exp values in the JWT claim.",
        );
    }
    let sub = claims["sub"].as_str().unwrap_or_default().to_owned();
    if !fake
        .domain
        .users
        .iter()
        .any(|u| u.email == sub && !u.deleted)
    {
        return invalid("Invalid email or User ID");
    }
    let scopes: Vec<String> = claims["scope"]
        .as_str()
        .unwrap_or_default()
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    if scopes.is_empty() {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            "Invalid OAuth scope or ID token audience provided.",
        );
    }
    if scopes.iter().any(|s| !fake.granted.contains(s)) {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "unauthorized_client",
            "Client is unauthorized to retrieve access tokens using this method, or client not \
             authorized for any of the scopes requested.",
        );
    }
    fake.issued += 1;
    let mut random = [0_u8; 12];
    getrandom::fill(&mut random).unwrap();
    let value = format!(
        "ya29.c.fake{}{}",
        fake.issued,
        random
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    let lifetime = fake.token_lifetime;
    fake.tokens.insert(
        value.clone(),
        Issued {
            expires: Instant::now() + Duration::from_secs(lifetime),
            scopes,
            sub,
        },
    );
    Json(json!({"access_token": value, "expires_in": lifetime, "token_type": "Bearer"}))
        .into_response()
}

/// Checks the bearer token and the scope, applies faults; `Err` is the answer.
fn admit(
    fake: &mut Fake,
    headers: &HeaderMap,
    endpoint: Endpoint,
    scope: &str,
) -> Result<(), Response> {
    fake.api_requests += 1;
    if fake.revoke_at.is_some_and(|n| fake.api_requests > n) {
        fake.revoke_at = None;
        fake.tokens.clear();
    }
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let issued = bearer.and_then(|t| fake.tokens.get(t));
    let Some(issued) = issued.filter(|i| i.expires > Instant::now()) else {
        let body = json!({
            "error": {
                "code": 401,
                "message": "Request had invalid authentication credentials. Expected OAuth 2 \
                            access token, login cookie or other valid authentication credential.",
                "errors": [{
                    "message": "Invalid Credentials",
                    "domain": "global",
                    "reason": "authError",
                    "location": "Authorization",
                    "locationType": "header"
                }],
                "status": "UNAUTHENTICATED"
            }
        });
        return Err((StatusCode::UNAUTHORIZED, Json(body)).into_response());
    };
    if !issued.scopes.iter().any(|s| s == scope) {
        return Err(google_error(
            403,
            "Request had insufficient authentication scopes.",
            "global",
            "insufficientPermissions",
            "PERMISSION_DENIED",
        ));
    }
    let sub = issued.sub.clone();
    if !fake.domain.users.iter().any(|u| u.email == sub && u.admin) {
        return Err(google_error(
            403,
            "Not Authorized to access this resource/api",
            "global",
            "forbidden",
            "PERMISSION_DENIED",
        ));
    }
    if let Some(fault) = fake.fault(endpoint) {
        return Err(fault_response(&fault));
    }
    Ok(())
}

fn invalid_input(message: &str) -> Response {
    google_error(400, message, "global", "invalid", "INVALID_ARGUMENT")
}

/// `maxResults`, checked against Google's range.
fn max_results(
    query: &HashMap<String, String>,
    default: usize,
    most: usize,
) -> Result<usize, Response> {
    match query.get("maxResults") {
        None => Ok(default),
        Some(text) => match text.parse::<usize>() {
            Ok(n) if (1..=most).contains(&n) => Ok(n),
            _ => Err(invalid_input(&format!(
                "Invalid value '{text}'. Values must be within the range: [1, {most}]"
            ))),
        },
    }
}

/// The customer, `my_customer` or the domain's id.
fn check_customer(query: &HashMap<String, String>) -> Result<(), Response> {
    match query.get("customer").map(String::as_str) {
        Some("my_customer" | CUSTOMER_ID) => Ok(()),
        _ => Err(google_error(
            400,
            "Bad Request",
            "global",
            "badRequest",
            "INVALID_ARGUMENT",
        )),
    }
}

/// Page tokens are opaque to clients; these say where the next page starts and which list
/// they belong to.
fn page(
    items: Vec<Value>,
    query: &HashMap<String, String>,
    list: &str,
    size: usize,
) -> Result<(Vec<Value>, Option<String>), Response> {
    let start = match query.get("pageToken") {
        None => 0,
        Some(token) => match token
            .strip_prefix(&format!("{list}~"))
            .and_then(|rest| rest.parse::<usize>().ok())
        {
            Some(start) if start < items.len() => start,
            _ => return Err(invalid_input("Invalid Input: pageToken")),
        },
    };
    let end = (start + size).min(items.len());
    let next = (end < items.len()).then(|| format!("{list}~{end}"));
    Ok((items[start..end].to_vec(), next))
}

fn etag(seed: &str) -> String {
    use sha2::{Digest, Sha256};
    let hash = Sha256::digest(seed.as_bytes());
    format!(
        "\"{}\"",
        hash[..12]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    )
}

fn user_json(user: &User, full: bool) -> Value {
    let mut out = json!({
        "kind": "admin#directory#user",
        "id": user.id,
        "etag": etag(&format!("{user:?}")),
        "primaryEmail": user.email,
        "name": {
            "givenName": user.given,
            "familyName": user.family,
            "fullName": format!("{} {}", user.given, user.family),
        },
        "isAdmin": user.admin,
        "isDelegatedAdmin": false,
        "lastLoginTime": "2025-09-01T08:00:00.000Z",
        "creationTime": "2024-08-20T10:00:00.000Z",
        "agreedToTerms": true,
        "suspended": user.suspended,
        "archived": user.archived,
        "changePasswordAtNextLogin": false,
        "ipWhitelisted": false,
        "emails": [{"address": user.email, "primary": true}],
        "customerId": CUSTOMER_ID,
        "orgUnitPath": user.org_unit,
        "isMailboxSetup": true,
        "isEnrolledIn2Sv": false,
        "isEnforcedIn2Sv": false,
        "includeInGlobalAddressList": true,
    });
    if user.suspended {
        out["suspensionReason"] = "ADMIN".into();
    }
    if let Some(number) = &user.number {
        out["externalIds"] = json!([{"value": number, "type": "organization"}]);
    }
    if full && user.org_unit.starts_with("/Students") {
        out["customSchemas"] = {
            let house = ["Red", "Blue", "Green"][user.email.len() % 3];
            json!({"School": {"House": house}})
        };
    }
    if user.deleted {
        out["deletionTime"] = "2025-09-02T08:00:00.000Z".into();
    }
    out
}

/// `orgUnitPath='…'` (quoted, `\` escapes) or `orgUnitPath=/…` (no spaces).
fn parse_org_unit(query: &str) -> Option<String> {
    let rest = query.trim().strip_prefix("orgUnitPath=")?;
    if let Some(quoted) = rest.strip_prefix('\'') {
        let mut out = String::new();
        let mut chars = quoted.chars();
        loop {
            match chars.next()? {
                '\\' => out.push(chars.next()?),
                '\'' => break,
                c => out.push(c),
            }
        }
        chars.as_str().trim().is_empty().then_some(out)
    } else {
        (!rest.contains(' ')).then(|| rest.to_owned())
    }
}

async fn users(
    State(state): State<Shared>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    // Checked on arrival, answered after the delay.
    let (response, delay) = {
        let mut fake = state.lock().unwrap();
        let response = list_users(&mut fake, &headers, &query);
        let status = response.status().as_u16();
        fake.record(Endpoint::Users, "/admin/directory/v1/users", &query, status);
        (response, fake.delay)
    };
    tokio::time::sleep(delay).await;
    response
}

fn list_users(fake: &mut Fake, headers: &HeaderMap, query: &HashMap<String, String>) -> Response {
    if let Err(response) = admit(fake, headers, Endpoint::Users, USERS_SCOPE) {
        return response;
    }
    let run = || -> Result<Response, Response> {
        check_customer(query)?;
        let size = max_results(query, 100, 500)?;
        let unit = match query.get("query") {
            None => "/".to_owned(),
            Some(text) => {
                let unit = parse_org_unit(text).ok_or_else(|| invalid_input("Invalid Input"))?;
                if !fake.domain.org_units.contains(&unit) {
                    return Err(invalid_input("Invalid Input: INVALID_OU_ID"));
                }
                unit
            }
        };
        let deleted = query.get("showDeleted").map(String::as_str) == Some("true");
        let full = query.get("projection").map(String::as_str) == Some("full");
        let matching: Vec<Value> = fake
            .domain
            .users
            .iter()
            .filter(|u| u.deleted == deleted && Domain::under(u, &unit))
            .map(|u| user_json(u, full))
            .collect();
        let list = etag(&format!("users{unit}{deleted}"));
        let (items, next) = page(matching, query, &list[1..9], size)?;
        let mut body = json!({"kind": "admin#directory#users", "etag": list});
        if !items.is_empty() {
            body["users"] = items.into();
        }
        if let Some(next) = next {
            body["nextPageToken"] = next.into();
        }
        Ok(Json(body).into_response())
    };
    run().unwrap_or_else(|response| response)
}

async fn groups(
    State(state): State<Shared>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    // Checked on arrival, answered after the delay.
    let (response, delay) = {
        let mut fake = state.lock().unwrap();
        let response = list_groups(&mut fake, &headers, &query);
        let status = response.status().as_u16();
        fake.record(
            Endpoint::Groups,
            "/admin/directory/v1/groups",
            &query,
            status,
        );
        (response, fake.delay)
    };
    tokio::time::sleep(delay).await;
    response
}

fn list_groups(fake: &mut Fake, headers: &HeaderMap, query: &HashMap<String, String>) -> Response {
    if let Err(response) = admit(fake, headers, Endpoint::Groups, GROUPS_SCOPE) {
        return response;
    }
    let run = || -> Result<Response, Response> {
        check_customer(query)?;
        let size = max_results(query, 200, 200)?;
        // Only `email:{PREFIX}*` of Google's group search is needed here.
        let prefix = match query.get("query").map(|q| q.trim()) {
            None | Some("") => String::new(),
            Some(text) => text
                .strip_prefix("email:")
                .and_then(|p| p.strip_suffix('*'))
                .ok_or_else(|| invalid_input("Invalid Input"))?
                .to_lowercase(),
        };
        let matching: Vec<Value> = fake
            .domain
            .groups
            .iter()
            .filter(|g| g.email.starts_with(&prefix))
            .map(|g| {
                json!({
                    "kind": "admin#directory#group",
                    "id": g.id,
                    "etag": etag(&g.email),
                    "email": g.email,
                    "name": g.name,
                    "directMembersCount": g.members.len().to_string(),
                    "description": format!("{} ({} members)", g.name, g.members.len()),
                    "adminCreated": true,
                    "nonEditableAliases": [g.email.replace(DOMAIN, "north.example.test-google-a.com")],
                })
            })
            .collect();
        let list = etag(&format!("groups{prefix}"));
        let (items, next) = page(matching, query, &list[1..9], size)?;
        let mut body = json!({"kind": "admin#directory#groups", "etag": list});
        if !items.is_empty() {
            body["groups"] = items.into();
        }
        if let Some(next) = next {
            body["nextPageToken"] = next.into();
        }
        Ok(Json(body).into_response())
    };
    run().unwrap_or_else(|response| response)
}

async fn members(
    State(state): State<Shared>,
    Path(key): Path<String>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    // Checked on arrival, answered after the delay.
    let (response, delay) = {
        let mut fake = state.lock().unwrap();
        let response = list_members(&mut fake, &headers, &key, &query);
        let status = response.status().as_u16();
        let path = format!("/admin/directory/v1/groups/{key}/members");
        fake.record(Endpoint::Members, &path, &query, status);
        (response, fake.delay)
    };
    tokio::time::sleep(delay).await;
    response
}

fn list_members(
    fake: &mut Fake,
    headers: &HeaderMap,
    key: &str,
    query: &HashMap<String, String>,
) -> Response {
    if let Err(response) = admit(fake, headers, Endpoint::Members, GROUPS_SCOPE) {
        return response;
    }
    let run = || -> Result<Response, Response> {
        let size = max_results(query, 200, 200)?;
        let Some(group) = fake
            .domain
            .groups
            .iter()
            .find(|g| g.id == key || g.email.eq_ignore_ascii_case(key))
        else {
            return Err(google_error(
                404,
                "Resource Not Found: groupKey",
                "global",
                "notFound",
                "NOT_FOUND",
            ));
        };
        let items: Vec<Value> = group
            .members
            .iter()
            .map(|m| {
                let mut member = json!({
                    "kind": "admin#directory#member",
                    "etag": etag(&format!("{}{}", group.id, m.id)),
                    "id": m.id,
                    "role": "MEMBER",
                    "type": m.kind,
                });
                if let Some(email) = &m.email {
                    member["email"] = email.clone().into();
                    member["status"] = "ACTIVE".into();
                }
                member
            })
            .collect();
        let list = etag(&format!("members{}", group.id));
        let (items, next) = page(items, query, &list[1..9], size)?;
        let mut body = json!({"kind": "admin#directory#members", "etag": list});
        if !items.is_empty() {
            body["members"] = items.into();
        }
        if let Some(next) = next {
            body["nextPageToken"] = next.into();
        }
        Ok(Json(body).into_response())
    };
    run().unwrap_or_else(|response| response)
}

/// Asks the fake's token endpoint for a token as the test service account, signed by `key`,
/// with these claims changed.
async fn ask_token(
    fake: &FakeGoogle,
    key: &TestKey,
    change: impl FnOnce(&mut Value),
) -> (u16, Value) {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let mut claims = json!({
        "iss": CLIENT_EMAIL,
        "sub": ADMIN,
        "scope": USERS_SCOPE,
        "aud": fake.token_url,
        "iat": now,
        "exp": now + 3600,
    });
    change(&mut claims);
    let assertion = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_rsa_pem(key.pem.as_bytes()).unwrap(),
    )
    .unwrap();
    let answer = reqwest::Client::new()
        .post(&fake.token_url)
        .form(&[("grant_type", JWT_BEARER), ("assertion", &assertion)])
        .send()
        .await
        .unwrap();
    (answer.status().as_u16(), answer.json().await.unwrap())
}

#[tokio::test]
async fn the_fake_checks_assertions_and_tokens_and_answers_as_google_does() {
    let domain = generate(30);
    let fake = FakeGoogle::start(domain.clone()).await;
    let http = reqwest::Client::new();
    // Assertions: the signature, the audience, an hour at most, a user of the domain.
    let refused = [
        (
            ask_token(&fake, stranger(), |_| {}).await,
            "Invalid JWT Signature.",
        ),
        (
            ask_token(&fake, service_account(), |c| {
                c["aud"] = "https://elsewhere/token".into()
            })
            .await,
            "Invalid JWT: Failed audience check",
        ),
        (
            ask_token(&fake, service_account(), |c| {
                c["exp"] = (c["iat"].as_i64().unwrap() + 7200).into()
            })
            .await,
            "Invalid JWT: Token must be a short-lived token",
        ),
        (
            ask_token(&fake, service_account(), |c| {
                c["iat"] = (c["iat"].as_i64().unwrap() - 4000).into();
                c["exp"] = (c["iat"].as_i64().unwrap() + 3600).into();
            })
            .await,
            "Invalid JWT: Token must be a short-lived token",
        ),
        (
            ask_token(&fake, service_account(), |c| {
                c["sub"] = "nobody@north.example".into()
            })
            .await,
            "Invalid email or User ID",
        ),
    ];
    for ((status, body), description) in refused {
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_grant")),
            "{body}"
        );
        assert!(
            body["error_description"]
                .as_str()
                .unwrap()
                .starts_with(description),
            "{body}"
        );
    }
    let (status, body) = ask_token(&fake, service_account(), |c| {
        c["scope"] = "https://www.googleapis.com/auth/admin.directory.user".into();
    })
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("unauthorized_client"))
    );
    let (status, body) = ask_token(&fake, service_account(), |_| {}).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3599);
    let token = body["access_token"].as_str().unwrap().to_owned();

    let list = |path: &str, token: Option<&str>| {
        let request = http.get(format!("{}/admin/directory/v1/{path}", fake.url));
        let request = match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        async move {
            let answer = request.send().await.unwrap();
            (
                answer.status().as_u16(),
                answer.json::<Value>().await.unwrap(),
            )
        }
    };
    // No token, or one it did not issue: 401 in Google's shape.
    for token in [None, Some("ya29.made-up")] {
        let (status, body) = list("users?customer=my_customer", token).await;
        assert_eq!(status, 401);
        assert_eq!(body["error"]["errors"][0]["reason"], "authError");
        assert_eq!(body["error"]["status"], "UNAUTHENTICATED");
    }
    // A token without the groups scope.
    let (status, body) = list("groups?customer=my_customer", Some(&token)).await;
    assert_eq!(
        (status, body["error"]["errors"][0]["reason"].as_str()),
        (403, Some("insufficientPermissions"))
    );
    // Sub-units are included; pages follow their tokens; the deleted are listed apart.
    let query = "users?customer=my_customer&query=orgUnitPath%3D%27%2FStaff%27&maxResults=25";
    let (status, first) = list(query, Some(&token)).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["kind"], "admin#directory#users");
    assert_eq!(first["users"].as_array().unwrap().len(), 25);
    let mut seen = 25;
    let mut next = first["nextPageToken"].as_str().map(str::to_owned);
    while let Some(page_token) = next {
        let (_, page) = list(&format!("{query}&pageToken={page_token}"), Some(&token)).await;
        seen += page["users"].as_array().unwrap().len();
        next = page["nextPageToken"].as_str().map(str::to_owned);
    }
    assert_eq!(seen, STAFF, "/Staff and /Staff/Science");
    let (_, deleted) = list("users?customer=my_customer&showDeleted=true", Some(&token)).await;
    let deleted = deleted["users"].as_array().unwrap();
    assert_eq!(deleted.len(), 1);
    assert!(deleted[0]["deletionTime"].is_string());
    let (status, body) = list("users?customer=my_customer&maxResults=501", Some(&token)).await;
    assert_eq!(
        (status, body["error"]["errors"][0]["reason"].as_str()),
        (400, Some("invalid"))
    );
    let (status, body) = list(
        "users?customer=my_customer&query=orgUnitPath%3D%27%2FPupils%27",
        Some(&token),
    )
    .await;
    assert_eq!(
        (status, body["error"]["message"].as_str()),
        (400, Some("Invalid Input: INVALID_OU_ID"))
    );
    let (status, _) = list("users?customer=C999", Some(&token)).await;
    assert_eq!(status, 400);
    fake.stop().await;
}

#[tokio::test]
async fn the_fake_pages_filters_by_org_unit_and_checks_tokens() {
    let domain = generate(30);
    let fake = FakeGoogle::start(domain.clone()).await;
    let http = reqwest::Client::new();
    // No token: 401 in Google's shape.
    let answer = http
        .get(format!(
            "{}/admin/directory/v1/users?customer=my_customer",
            fake.url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 401);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["error"]["errors"][0]["reason"], "authError");
    assert_eq!(body["error"]["status"], "UNAUTHENTICATED");
    // Sub-units are included; a path in quotes may hold spaces.
    assert_eq!(
        parse_org_unit("orgUnitPath='/Students/Year 12'").as_deref(),
        Some("/Students/Year 12")
    );
    assert_eq!(
        parse_org_unit(r"orgUnitPath='/O\'Neill'").as_deref(),
        Some("/O'Neill")
    );
    assert_eq!(
        parse_org_unit("orgUnitPath=/Staff").as_deref(),
        Some("/Staff")
    );
    assert_eq!(parse_org_unit("orgUnitPath=/Students/Year 12"), None);
    let staff = domain
        .users
        .iter()
        .filter(|u| Domain::under(u, "/Staff"))
        .count();
    assert_eq!(staff, STAFF);
    assert!(domain.users.iter().any(|u| u.org_unit == "/Staff/Science"));
    let gs = domain.people_of(&format!("12z-gs1@{DOMAIN}"));
    assert_eq!(
        gs.len(),
        30 * 2 + 3 + 1 + 2,
        "years 12 and 13, and the nested groups'"
    );
    fake.stop().await;
}
