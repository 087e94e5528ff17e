//! A SCIM load: `POST /Users`, `userName eq` lookups and `PATCH` replaces of `displayName`,
//! each from a number of keep-alive connections, every answer checked, latencies taken
//! client-side from sending a request to having read its whole body.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

const USER_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const PATCH_URN: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
/// Seed of the random choices, so every run and every setup asks for the same users.
pub const SEED: u64 = 0x5707_e5b0_2026;
/// Salt of the PATCH choices, so they differ from the lookups'.
const PATCH_SALT: u64 = 0x9a7c_4d15;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// `POST /Users` of user `k` (userName, name, one work e-mail, externalId): 201.
    Post,
    /// `GET /Users?filter=userName eq "…"` of a random user: 200, `totalResults` 1, that user.
    Lookup,
    /// `PATCH /Users/{id}` replacing a random user's `displayName` with `Bench Display {k}`:
    /// 200 with the new value.
    Patch,
}

impl Workload {
    pub const ALL: [Workload; 3] = [Workload::Post, Workload::Lookup, Workload::Patch];

    pub fn label(self) -> &'static str {
        match self {
            Workload::Post => "POST /Users",
            Workload::Lookup => "GET userName eq",
            Workload::Patch => "PATCH displayName",
        }
    }
}

pub fn user_name(i: usize) -> String {
    format!("student.{i:06}")
}

/// User `i`'s document, about 290 bytes.
pub fn user_document(i: usize) -> String {
    json!({
        "schemas": [USER_URN],
        "userName": user_name(i),
        "externalId": format!("ext-{i:06}"),
        "name": {
            "givenName": format!("Given{i}"),
            "familyName": format!("Family{i}"),
            "formatted": format!("Given{i} Family{i}"),
        },
        "emails": [{ "type": "work", "value": format!("s{i:06}@mail.bench.example"), "primary": true }],
        "active": true,
    })
    .to_string()
}

/// The `displayName` PATCH `k` sets.
pub fn display_name(k: usize) -> String {
    format!("Bench Display {k}")
}

/// The body of PATCH `k`: replace `displayName` with [`display_name`]`(k)`.
pub fn patch_body(k: usize) -> String {
    json!({
        "schemas": [PATCH_URN],
        "Operations": [{ "op": "replace", "path": "displayName", "value": display_name(k) }],
    })
    .to_string()
}

pub fn splitmix64(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A keep-alive client holding at most one connection: one per worker, so the number of
/// connections is the number of workers.
pub fn client() -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(1)
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(120))
        .build()
        .context("cannot build an HTTP client")
}

/// `n` clients from [`client`].
pub fn clients(n: usize) -> anyhow::Result<Vec<reqwest::Client>> {
    (0..n).map(|_| client()).collect()
}

/// An error with its causes: reqwest's own message rarely says what went wrong.
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Nearest-rank percentile `p` of `sorted`.
pub fn percentile<T: Copy + Default>(sorted: &[T], p: f64) -> T {
    if sorted.is_empty() {
        return T::default();
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// A write's answer: which request, which user, and the version it made.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The request's number.
    pub k: usize,
    /// The user it wrote (`k` for a POST).
    pub user: usize,
    /// That user's id.
    pub id: String,
    /// The answer's `meta.version` (`W/"N"`).
    pub version: Option<String>,
}

/// What one workload measured.
pub struct Driven {
    pub wall: Duration,
    /// Sorted.
    pub latencies: Vec<Duration>,
    /// Requests sent to each base URL.
    pub per_instance: Vec<usize>,
    /// One per POST and PATCH (none for lookups), in no particular order.
    pub answers: Vec<Answer>,
}

/// Runs `count` requests of one workload, one worker per client, worker `w` talking to
/// `bases[w % bases.len()]` (each a `…/scim/v2` URL). POST `k` creates user `k`; lookups and
/// PATCHes pick random users among `ids` (fixed seed). Fails on any answer that is not what it
/// should be.
pub async fn drive(
    bases: &[String],
    clients: Vec<reqwest::Client>,
    token: &str,
    workload: Workload,
    count: usize,
    ids: &Arc<Vec<String>>,
) -> anyhow::Result<Driven> {
    let connections = clients.len();
    let next = Arc::new(AtomicUsize::new(0));
    let token = Arc::new(token.to_owned());
    let started = Instant::now();
    let mut workers = Vec::with_capacity(connections);
    for (w, http) in clients.into_iter().enumerate() {
        let instance = w % bases.len();
        let base = bases[instance].clone();
        let (next, token, ids) = (next.clone(), token.clone(), ids.clone());
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(count / connections + 1);
            let mut answers = Vec::new();
            let mut failed = 0usize;
            let mut failures: Vec<String> = Vec::new();
            loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                if k >= count {
                    break;
                }
                let (request, user, display) = match workload {
                    Workload::Post => (
                        http.post(format!("{base}/Users"))
                            .header("content-type", "application/scim+json")
                            .body(user_document(k)),
                        k,
                        None,
                    ),
                    Workload::Lookup => {
                        let i = (splitmix64(SEED ^ k as u64) % ids.len() as u64) as usize;
                        let filter = format!("userName eq \"{}\"", user_name(i));
                        let filter: String =
                            form_urlencoded::byte_serialize(filter.as_bytes()).collect();
                        (http.get(format!("{base}/Users?filter={filter}")), i, None)
                    }
                    Workload::Patch => {
                        let i =
                            (splitmix64(SEED ^ PATCH_SALT ^ k as u64) % ids.len() as u64) as usize;
                        (
                            http.patch(format!("{base}/Users/{}", ids[i]))
                                .header("content-type", "application/scim+json")
                                .body(patch_body(k)),
                            i,
                            Some(display_name(k)),
                        )
                    }
                };
                let sent = Instant::now();
                let outcome = match request.bearer_auth(token.as_str()).send().await {
                    Ok(response) => {
                        let status = response.status();
                        response.bytes().await.map(|body| (status, body))
                    }
                    Err(error) => Err(error),
                };
                latencies.push(sent.elapsed());
                let problem = match outcome {
                    Err(error) => Some(format!("user {user}: request failed: {}", chain(&error))),
                    Ok((status, body)) => {
                        let document = serde_json::from_slice::<Value>(&body).unwrap_or_default();
                        let text = |key: &str| document.get(key).and_then(Value::as_str);
                        let answer = || Answer {
                            k,
                            user,
                            id: text("id").unwrap_or_default().to_owned(),
                            version: document
                                .pointer("/meta/version")
                                .and_then(Value::as_str)
                                .map(str::to_owned),
                        };
                        let ok = match workload {
                            Workload::Post => {
                                let ok = status.as_u16() == 201
                                    && text("userName") == Some(user_name(user).as_str())
                                    && text("id").is_some();
                                if ok {
                                    answers.push(answer());
                                }
                                ok
                            }
                            Workload::Lookup => {
                                status.as_u16() == 200
                                    && document.get("totalResults").and_then(Value::as_i64)
                                        == Some(1)
                                    && document
                                        .pointer("/Resources/0/userName")
                                        .and_then(Value::as_str)
                                        == Some(user_name(user).as_str())
                            }
                            Workload::Patch => {
                                let ok = status.as_u16() == 200
                                    && text("displayName") == display.as_deref();
                                if ok {
                                    answers.push(answer());
                                }
                                ok
                            }
                        };
                        (!ok).then(|| {
                            format!(
                                "user {user}: {status}: {:.300}",
                                String::from_utf8_lossy(&body)
                            )
                        })
                    }
                };
                if let Some(problem) = problem {
                    failed += 1;
                    if failures.len() < 3 {
                        failures.push(problem);
                    }
                }
            }
            (instance, latencies, answers, failed, failures)
        }));
    }
    let mut latencies = Vec::with_capacity(count);
    let mut answers = Vec::with_capacity(if workload == Workload::Lookup {
        0
    } else {
        count
    });
    let mut per_instance = vec![0; bases.len()];
    let mut failed = 0;
    let mut failures = Vec::new();
    for worker in workers {
        let (instance, mut l, mut a, f, mut problems) =
            worker.await.context("a client worker panicked")?;
        per_instance[instance] += l.len();
        latencies.append(&mut l);
        answers.append(&mut a);
        failed += f;
        failures.append(&mut problems);
    }
    let wall = started.elapsed();
    if failed > 0 {
        failures.truncate(5);
        bail!(
            "{}: {failed} of {count} responses were wrong; first ones:\n  {}",
            workload.label(),
            failures.join("\n  ")
        );
    }
    latencies.sort_unstable();
    Ok(Driven {
        wall,
        latencies,
        per_instance,
        answers,
    })
}
