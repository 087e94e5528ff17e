//! `/api/v1`: the admin JSON API (bearer tokens of a school's admins) and the log-in API the
//! platform calls (no token; throttled).
//!
//! Errors are `{"error": code, "detail": sentence}`; a 5xx says only which request failed.
//! Responses that carry a first password are marked `Cache-Control: no-store`.

use std::collections::HashMap;
use std::net::SocketAddr;

use axum::Json;
use axum::Router;
use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, FromRequestParts, Path, RawQuery, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use tower_http::timeout::TimeoutLayer;

use super::AppState;
use super::auth::{Refused, bearer_token};
use super::scim::request_id;
use crate::roster::import::Request as ImportRequest;
use crate::roster::login::{Change, Outcome as LoginOutcome};
use crate::roster::{self, Admin, Person, Role, slips};
use crate::sync;

/// Pasted class lists can be long: 20,000 rows of a few hundred bytes.
const BODY_LIMIT: usize = 8 * 1024 * 1024;

/// How long an import may take: 20,000 rows at 25 ms of hashing each fit on one core. A client
/// that goes away cancels it before anything is written.
pub const IMPORT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3600);

/// The routes, each under `timeout` but the class-list import, which hashes one password per
/// student, under `import_timeout`.
pub fn router(timeout: TimeoutLayer, import_timeout: TimeoutLayer) -> Router<AppState> {
    let import = Router::new()
        .route(
            "/schools/{school}/groups/{group}/students:bulk",
            post(import),
        )
        .route("/schools/{school}/sources/{source}/runs", post(run_source))
        .layer(import_timeout);
    Router::new()
        .route("/auth/login", post(login))
        .route("/auth/password", post(change_password))
        .route("/schools/{school}/courses", get(courses))
        .route(
            "/schools/{school}/groups",
            get(list_groups).post(create_group),
        )
        .route("/schools/{school}/groups/{group}", get(get_group))
        .route("/schools/{school}/users", post(create_user))
        .route(
            "/schools/{school}/users/{id}/entitlements",
            get(user_entitlements),
        )
        .route("/schools/{school}/slips:collect", post(collect_slips))
        .route("/schools/{school}/sources", get(sources))
        .layer(timeout)
        .merge(import)
        .fallback(|| async {
            ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
        })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this endpoint does not take that method",
            )
        })
        .layer(axum::extract::DefaultBodyLimit::max(BODY_LIMIT))
}

/// A JSON error answer.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    detail: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            detail: detail.into(),
        }
    }

    fn invalid(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid", detail)
    }

    fn roster(error: roster::Error, request_id: &str) -> ApiError {
        use roster::Error::*;
        match error {
            Invalid(detail) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", detail),
            NotFound(detail) => ApiError::new(StatusCode::NOT_FOUND, "not_found", detail),
            Conflict(detail) => ApiError::new(StatusCode::CONFLICT, "conflict", detail),
            Forbidden(detail) => ApiError::new(StatusCode::FORBIDDEN, "forbidden", detail),
            Internal(detail) => {
                tracing::error!(error = %detail, "admin API failure");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    format!("internal error, request {request_id}"),
                )
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(json!({ "error": self.code, "detail": self.detail })),
        )
            .into_response()
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> ApiError {
        ApiError::new(
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                StatusCode::PAYLOAD_TOO_LARGE
            } else {
                StatusCode::BAD_REQUEST
            },
            "invalid",
            rejection.body_text(),
        )
    }
}

/// An authenticated admin of the school named in the path.
pub struct AdminCaller(Admin);

impl FromRequestParts<AppState> for AdminCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let request_id = request_id(&parts.headers);
        let unauthorized =
            |detail: &str| ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", detail);
        let token = match bearer_token(&parts.headers, state).await {
            Ok(token) => token,
            Err(Refused::Missing | Refused::Malformed) => {
                return Err(unauthorized(
                    "an Authorization: Bearer token of an admin is required",
                ));
            }
            Err(Refused::Unknown) => return Err(unauthorized("the token is unknown or revoked")),
            Err(Refused::Store(e)) => {
                return Err(ApiError::roster(
                    roster::Error::Internal(e.to_string()),
                    &request_id,
                ));
            }
        };
        let Some(admin) = token.admin else {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "this is a SCIM token; the admin API needs an admin's token",
            ));
        };
        let Path(params) = Path::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::invalid(e.body_text()))?;
        if params
            .get("school")
            .is_some_and(|school| school != &token.school_id)
        {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "this token belongs to an admin of another school",
            ));
        }
        let staff = state
            .provider
            .store
            .staff_named(&token.school_id, &admin)
            .await
            .map_err(|e| ApiError::roster(roster::Error::Internal(e.to_string()), &request_id))?
            .ok_or_else(|| unauthorized("the token is unknown or revoked"))?;
        let admin = Admin::staff(&staff, Some(request_id.clone()));
        super::access::check(state, &admin, parts)
            .await
            .map_err(|e| ApiError::roster(e, &request_id))?;
        Ok(AdminCaller(admin))
    }
}

fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

type Reply = Result<Response, ApiError>;

fn rid(admin: &Admin) -> &str {
    admin.actor.request_id.as_deref().unwrap_or("-")
}

/// Every directory source of the school: its last run and its held plan.
async fn sources(State(state): State<AppState>, AdminCaller(admin): AdminCaller) -> Reply {
    let status = sync::status(&state.provider, &admin.scope.school_id)
        .await
        .map_err(|e| sync_error(e, rid(&admin)))?;
    Ok(Json(json!({ "sources": status })).into_response())
}

/// Runs a source now and answers with its report.
async fn run_source(
    State(state): State<AppState>,
    AdminCaller(admin): AdminCaller,
    Path((_, source)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Reply {
    let mut mode = "apply".to_owned();
    for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match key.as_ref() {
            "mode" => mode = value.into_owned(),
            other => {
                return Err(ApiError::invalid(format!(
                    "unknown query parameter `{other}`: use mode"
                )));
            }
        }
    }
    let mode = match mode.as_str() {
        "apply" => sync::Mode::Apply,
        "full" => sync::Mode::Full,
        "dry-run" => sync::Mode::DryRun,
        "approve" => sync::Mode::Approve,
        other => {
            return Err(ApiError::invalid(format!(
                "mode `{other}` is not apply, full, dry-run or approve"
            )));
        }
    };
    tracing::info!(source = %source, actor = %admin.actor.name, ?mode, "sync requested");
    let report = sync::run(
        &state.provider,
        &admin.scope.school_id,
        &source,
        mode,
        &|_| {},
    )
    .await
    .map_err(|e| sync_error(e, rid(&admin)))?;
    Ok(Json(report).into_response())
}

fn sync_error(error: sync::Error, request_id: &str) -> ApiError {
    use sync::Error::*;
    match error {
        NoSource { .. } => ApiError::new(StatusCode::NOT_FOUND, "not_found", error.to_string()),
        Busy(_) | NothingHeld(_) | ApprovalOutdated { .. } => {
            ApiError::new(StatusCode::CONFLICT, "conflict", error.to_string())
        }
        // The directory failed or answered something refused: not the caller's fault, and
        // not ours; the message says what to fix.
        Directory(_) | Google(_) | OneRoster(_) | EmptySearch { .. } | Secret(_) => {
            ApiError::new(StatusCode::BAD_GATEWAY, "directory", error.to_string())
        }
        Roster(error) => ApiError::roster(error, request_id),
        Store(error) => ApiError::roster(roster::Error::Internal(error.to_string()), request_id),
    }
}

async fn courses(State(state): State<AppState>, AdminCaller(admin): AdminCaller) -> Reply {
    let school = state
        .provider
        .schools
        .get(&admin.scope.school_id)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such school"))?;
    let courses: Vec<Value> = school
        .courses
        .courses()
        .iter()
        .map(|c| json!({ "code": c.code, "title": c.title, "implies": c.implies }))
        .collect();
    Ok(Json(json!({ "courses": courses })).into_response())
}

async fn list_groups(State(state): State<AppState>, AdminCaller(admin): AdminCaller) -> Reply {
    let groups = state
        .provider
        .group_views(&admin)
        .await
        .map_err(|e| ApiError::roster(e, rid(&admin)))?;
    Ok(Json(json!({ "groups": groups })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct NewGroup {
    name: String,
    #[serde(default)]
    courses: Vec<String>,
    #[serde(default)]
    tutors: Vec<String>,
}

async fn create_group(
    State(state): State<AppState>,
    AdminCaller(admin): AdminCaller,
    body: Result<Json<NewGroup>, JsonRejection>,
) -> Reply {
    let Json(body) = body?;
    let group = state
        .provider
        .create_group(&admin, &body.name, &body.courses, &body.tutors)
        .await
        .map_err(|e| ApiError::roster(e, rid(&admin)))?;
    Ok((StatusCode::CREATED, Json(group)).into_response())
}

async fn get_group(
    State(state): State<AppState>,
    AdminCaller(admin): AdminCaller,
    Path((_, group)): Path<(String, String)>,
) -> Reply {
    let group = state
        .provider
        .group_view(&admin, &group)
        .await
        .map_err(|e| ApiError::roster(e, rid(&admin)))?;
    Ok(Json(group).into_response())
}

/// Query flags: `dry_run`, `partial` (true/false/1/0/yes/no or bare), and repeated `course`
/// and `tutor`.
struct ImportQuery {
    dry_run: bool,
    partial: bool,
    courses: Vec<String>,
    tutors: Vec<String>,
}

fn import_query(query: Option<&str>) -> Result<ImportQuery, ApiError> {
    let mut out = ImportQuery {
        dry_run: false,
        partial: false,
        courses: Vec::new(),
        tutors: Vec::new(),
    };
    for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        let flag = || match value.to_ascii_lowercase().as_str() {
            "" | "true" | "1" | "yes" => Ok(true),
            "false" | "0" | "no" => Ok(false),
            other => Err(ApiError::invalid(format!(
                "`{key}` must be true or false, not `{other}`"
            ))),
        };
        match key.as_ref() {
            "dry_run" | "dryRun" => out.dry_run = flag()?,
            "partial" => out.partial = flag()?,
            "course" => out.courses.push(value.into_owned()),
            "tutor" => out.tutors.push(value.into_owned()),
            other => {
                return Err(ApiError::invalid(format!(
                    "unknown query parameter `{other}`: use dry_run, partial, course or tutor"
                )));
            }
        }
    }
    Ok(out)
}

async fn import(
    State(state): State<AppState>,
    AdminCaller(admin): AdminCaller,
    Path((_, group)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    body: axum::body::Bytes,
) -> Reply {
    let query = import_query(query.as_deref())?;
    let request = ImportRequest {
        group,
        courses: query.courses,
        tutors: query.tutors,
        text: crate::roster::paste::decode(&body).0,
        dry_run: query.dry_run,
        partial: query.partial,
        hold_slips: false,
    };
    let outcome = state
        .provider
        .import(&admin, &request)
        .await
        .map_err(|e| ApiError::roster(e, rid(&admin)))?;
    let status = if outcome.committed {
        StatusCode::CREATED
    } else if outcome.dry_run {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    Ok(no_store((status, Json(outcome)).into_response()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct NewUser {
    first_name: String,
    surname: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    user_name: String,
    #[serde(default)]
    year_group: String,
    #[serde(default)]
    student_number: String,
    #[serde(default)]
    role: Option<String>,
    /// A teaching group (id or name) to join.
    #[serde(default)]
    group: Option<String>,
}

async fn create_user(
    State(state): State<AppState>,
    AdminCaller(admin): AdminCaller,
    body: Result<Json<NewUser>, JsonRejection>,
) -> Reply {
    let Json(body) = body?;
    let role = match body.role.as_deref() {
        None => Role::Student,
        Some(text) => Role::parse(text).ok_or_else(|| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid",
                format!("role `{text}` is neither student nor tutor"),
            )
        })?,
    };
    let person = Person {
        first_name: body.first_name.trim().to_owned(),
        surname: body.surname.trim().to_owned(),
        email: body.email.trim().to_owned(),
        user_name: body.user_name.trim().to_owned(),
        year_group: body.year_group.trim().to_owned(),
        student_number: body.student_number.trim().to_owned(),
        role,
    };
    let created = state
        .provider
        .create_person(&admin, &person, body.group.as_deref(), false)
        .await
        .map_err(|e| ApiError::roster(e, rid(&admin)))?;
    Ok(no_store(
        (StatusCode::CREATED, Json(created)).into_response(),
    ))
}

async fn collect_slips(
    State(state): State<AppState>,
    AdminCaller(admin): AdminCaller,
    RawQuery(query): RawQuery,
) -> Reply {
    let mut group = None;
    let mut format = "json".to_owned();
    for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match key.as_ref() {
            "group" => group = Some(value.into_owned()),
            "format" => format = value.to_ascii_lowercase(),
            other => {
                return Err(ApiError::invalid(format!(
                    "unknown query parameter `{other}`: use group or format"
                )));
            }
        }
    }
    if !["json", "csv", "html"].contains(&format.as_str()) {
        return Err(ApiError::invalid(format!(
            "format `{format}` is not json, csv or html"
        )));
    }
    let taken = state
        .provider
        .collect_slips(&admin, group.as_deref())
        .await
        .map_err(|e| ApiError::roster(e, rid(&admin)))?;
    let school = state
        .provider
        .schools
        .get(&admin.scope.school_id)
        .map(|s| s.name.clone())
        .unwrap_or_default();
    let response = match format.as_str() {
        "csv" => (
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"slips.csv\"",
                ),
            ],
            slips::csv(&taken),
        )
            .into_response(),
        "html" => (
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            slips::html(&school, &taken),
        )
            .into_response(),
        _ => {
            let slips: Vec<Value> = taken
                .iter()
                .map(|s| {
                    json!({
                        "school": s.school, "group": s.group, "firstName": s.first_name,
                        "surname": s.surname, "userName": s.user_name,
                        "password": s.password.as_str(), "loginUrl": s.login_url,
                    })
                })
                .collect();
            Json(json!({ "slips": slips })).into_response()
        }
    };
    Ok(no_store(response))
}

/// The client's address (see [`crate::roster::login::Limiter::client`]).
pub(super) fn client(
    state: &AppState,
    peer: SocketAddr,
    headers: &axum::http::HeaderMap,
) -> std::net::IpAddr {
    let forwarded = headers
        .get("x-forwarded-for")
        .and_then(|value| value.to_str().ok());
    state.limiter.client(peer.ip(), forwarded)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct LoginBody {
    school: String,
    username: String,
    password: String,
}

async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: axum::http::HeaderMap,
    body: Result<Json<LoginBody>, JsonRejection>,
) -> Reply {
    let Json(body) = body?;
    let outcome = state
        .provider
        .login(
            &state.limiter,
            &body.school,
            body.username.trim(),
            &body.password,
            client(&state, peer, &headers),
        )
        .await
        .map_err(|e| ApiError::roster(e, &request_id(&headers)))?;
    let status = match &outcome {
        LoginOutcome::Success { .. } | LoginOutcome::PasswordChangeRequired { .. } => {
            StatusCode::OK
        }
        LoginOutcome::Failed => StatusCode::UNAUTHORIZED,
        LoginOutcome::Throttled { .. } => StatusCode::TOO_MANY_REQUESTS,
    };
    let mut response = (status, Json(&outcome)).into_response();
    if let LoginOutcome::Throttled { retry_after_secs } = outcome {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
    }
    Ok(no_store(response))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PasswordBody {
    school: String,
    username: String,
    password: String,
    new_password: String,
}

async fn change_password(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: axum::http::HeaderMap,
    body: Result<Json<PasswordBody>, JsonRejection>,
) -> Reply {
    let Json(body) = body?;
    let change = state
        .provider
        .change_password(
            &state.limiter,
            &body.school,
            body.username.trim(),
            &body.password,
            &body.new_password,
            client(&state, peer, &headers),
        )
        .await
        .map_err(|e| ApiError::roster(e, &request_id(&headers)))?;
    let status = match &change {
        Change::Changed => StatusCode::OK,
        Change::Rejected { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        Change::Failed => StatusCode::UNAUTHORIZED,
        Change::Throttled { .. } => StatusCode::TOO_MANY_REQUESTS,
    };
    let mut response = (status, Json(&change)).into_response();
    if let Change::Throttled { retry_after_secs } = change {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
    }
    Ok(no_store(response))
}

/// The courses an account has through its teaching groups, derived now; another school's
/// account, or an unknown id, is 404.
async fn user_entitlements(
    State(state): State<AppState>,
    AdminCaller(admin): AdminCaller,
    Path((_, id)): Path<(String, String)>,
) -> Reply {
    let entitlements = state
        .provider
        .entitlements(&admin, &id)
        .await
        .map_err(|e| ApiError::roster(e, rid(&admin)))?;
    Ok(Json(entitlements).into_response())
}
