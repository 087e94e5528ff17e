//! `/login/{school}`: where a student (or tutor) signs in with the slip and must choose a new
//! password before anything else. The same checks and throttling as the log-in API; the person's
//! session lasts only until the new password is chosen.

use std::net::SocketAddr;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::get;
use serde_json::{Value, json};

use super::forms::{Fields, Forged};
use super::session::{self, FORM_COOKIE, PERSON_COOKIE, cookie, csrf_token, find};
use super::{pages, see_other};
use crate::config::School;
use crate::http::AppState;
use crate::roster::Error as RosterError;
use crate::roster::login::{Change, Outcome};
use crate::roster::reset::{Completed, Opened, Requested};
use crate::store::{Session, SessionKind};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/{school}", get(login_form).post(login))
        .route(
            "/{school}/password",
            get(password_form).post(choose_password),
        )
        .route("/{school}/forgot", get(forgot_form).post(forgot))
        .route("/{school}/reset/{token}", get(reset_form).post(reset))
}

fn school<'a>(state: &'a AppState, id: &str) -> Result<&'a School, Response> {
    state.provider.schools.get(id).ok_or_else(|| {
        pages(state).render(
            StatusCode::NOT_FOUND,
            "error.html",
            json!({ "status": 404, "message": "There is no such school here. Check the address on your slip." }),
        )
    })
}

fn refused(state: &AppState, forged: Forged) -> Response {
    tracing::warn!(reason = forged.0, "a log-in form was refused");
    pages(state).render(
        StatusCode::FORBIDDEN,
        "error.html",
        json!({
            "status": 403,
            "message": format!("This form was refused: {}. Go back, reload the page and try again.", forged.0),
        }),
    )
}

/// The fields of a form posted before signing in, checked by `check` against the CSRF secret
/// of the form's own cookie (`expired` says which form, when the cookie is gone); else the
/// refusal page.
fn posted(
    state: &AppState,
    headers: &HeaderMap,
    body: &[u8],
    expired: &'static str,
    check: fn(&HeaderMap, &[u8], &str) -> Result<Fields, Forged>,
) -> Result<Fields, Response> {
    cookie(headers, FORM_COOKIE)
        .ok_or(Forged(expired))
        .and_then(|secret| check(headers, body, secret))
        .map_err(|forged| refused(state, forged))
}

fn internal(state: &AppState, headers: &HeaderMap) -> Response {
    super::admin::internal(state, &super::super::scim::request_id(headers))
}

async fn login_form(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    match school(&state, &id) {
        Ok(school) => login_page(&state, school, StatusCode::OK, "", None),
        Err(page) => page,
    }
}

fn login_page(
    state: &AppState,
    school: &School,
    status: StatusCode,
    user_name: &str,
    error: Option<&str>,
) -> Response {
    session::login_form(state, "/login", |csrf| {
        pages(state).render(
            status,
            "person_login.html",
            json!({
                "school": school.name,
                "school_id": school.id,
                "csrf": csrf,
                "user_name": user_name,
                "error": error,
            }),
        )
    })
}

async fn login(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let school = match school(&state, &id) {
        Ok(school) => school,
        Err(page) => return page,
    };
    let expired = "the log-in form has expired";
    let fields = match posted(&state, &headers, &body, expired, Fields::checked) {
        Ok(fields) => fields,
        Err(page) => return page,
    };
    let user_name = fields.get("username");
    let address = super::super::api::client(&state, peer, &headers);
    let outcome = state
        .provider
        .login(
            &state.limiter,
            &school.id,
            user_name,
            fields.raw("password"),
            address,
        )
        .await;
    match outcome {
        Ok(Outcome::Success { user_name, .. }) => done(&state, school, &user_name, false),
        // A first password: a short session that only allows choosing a new one.
        Ok(Outcome::PasswordChangeRequired { user_id, user_name }) => {
            session::start(
                &state,
                SessionKind::Person,
                &school.id,
                &user_id,
                &user_name,
                &format!("/login/{}/password", school.id),
            )
            .await
        }
        Ok(Outcome::Failed) => login_page(
            &state,
            school,
            StatusCode::UNAUTHORIZED,
            user_name,
            Some("The username or password is wrong."),
        ),
        Ok(Outcome::Throttled { retry_after_secs }) => login_page(
            &state,
            school,
            StatusCode::TOO_MANY_REQUESTS,
            user_name,
            Some(&format!(
                "Too many failed attempts. Try again in {} minutes.",
                retry_after_secs.div_ceil(60).max(1)
            )),
        ),
        Err(error) => {
            tracing::error!(%error, "log-in page failed");
            internal(&state, &headers)
        }
    }
}

/// The person's session for this school, or the way back to the log-in form.
async fn session(
    state: &AppState,
    school: &School,
    headers: &HeaderMap,
) -> Result<(Session, String), Response> {
    match find(state, headers, PERSON_COOKIE, SessionKind::Person).await {
        Ok(Some((session, secret))) if session.school_id == school.id => Ok((session, secret)),
        Ok(_) => Err(see_other(&format!("/login/{}", school.id))),
        Err(error) => {
            tracing::error!(%error, "log-in session lookup failed");
            Err(internal(state, headers))
        }
    }
}

/// The school's password policy as a list of rules, as the password forms show it.
fn rules(school: &School) -> Vec<Value> {
    let policy = &school.passwords.policy;
    std::iter::once(format!("at least {} characters", policy.min_length))
        .chain(
            policy
                .require_classes
                .iter()
                .map(|class| format!("include {}", class.described())),
        )
        .chain(["not your username".to_owned()])
        .map(Value::from)
        .collect()
}

fn password_page(
    state: &AppState,
    school: &School,
    session: &Session,
    secret: &str,
    status: StatusCode,
    error: Option<&str>,
) -> Response {
    let rules = rules(school);
    pages(state).render(
        status,
        "person_password.html",
        json!({
            "school": school.name,
            "school_id": school.id,
            "user_name": session.name,
            "csrf": csrf_token(secret),
            "rules": rules,
            "error": error,
        }),
    )
}

async fn password_form(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let school = match school(&state, &id) {
        Ok(school) => school,
        Err(page) => return page,
    };
    match session(&state, school, &headers).await {
        Ok((session, secret)) => {
            password_page(&state, school, &session, &secret, StatusCode::OK, None)
        }
        Err(page) => page,
    }
}

async fn choose_password(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let school = match school(&state, &id) {
        Ok(school) => school,
        Err(page) => return page,
    };
    let (session, secret) = match session(&state, school, &headers).await {
        Ok(found) => found,
        Err(page) => return page,
    };
    let fields = match Fields::checked(&headers, &body, &secret) {
        Ok(fields) => fields,
        Err(forged) => return refused(&state, forged),
    };
    let (new, repeated) = (fields.raw("password"), fields.raw("repeat"));
    let rejected = |message: &str| {
        password_page(
            &state,
            school,
            &session,
            &secret,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some(message),
        )
    };
    if new != repeated {
        return rejected("The two passwords are not the same.");
    }
    match state
        .provider
        .choose_password(&school.id, &session.name, new)
        .await
    {
        Ok(Change::Changed) => {
            let done = done(&state, school, &session.name, true);
            session::end(&state, SessionKind::Person, &secret, done).await
        }
        Ok(Change::Rejected { detail }) => rejected(&format!("Choose another password: {detail}.")),
        Ok(Change::Failed | Change::Throttled { .. }) => {
            see_other(&format!("/login/{}", school.id))
        }
        Err(error) => {
            tracing::error!(%error, "choosing a password failed");
            internal(&state, &headers)
        }
    }
}

/// Signed in: where to go next.
fn done(state: &AppState, school: &School, user_name: &str, changed: bool) -> Response {
    pages(state).render(
        StatusCode::OK,
        "person_done.html",
        json!({
            "school": school.name,
            "school_id": school.id,
            "user_name": user_name,
            "changed": changed,
            "continue_to": school.login_url,
        }),
    )
}

// Forgotten passwords: `/login/{school}/forgot` asks for a link, `/login/{school}/reset/{token}`
// is where it leads. The link's token is in the path, so the link's pages send no `Referer` at
// all (the console's `same-origin` would still show it to this server's own pages and logs).

/// Sends no `Referer` from this page, whatever the console's default.
fn no_referrer(mut response: Response) -> Response {
    response.headers_mut().insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

fn forgot_page(
    state: &AppState,
    school: &School,
    status: StatusCode,
    account: &str,
    sent: bool,
    error: Option<&str>,
) -> Response {
    let resets = &state.resets;
    session::login_form(state, "/login", |csrf| {
        pages(state).render(
            status,
            "person_forgot.html",
            json!({
                "school": school.name,
                "school_id": school.id,
                "csrf": csrf,
                "account": account,
                "enabled": resets.enabled(),
                "sent": sent,
                "minutes": resets.expires_minutes(),
                "error": error,
            }),
        )
    })
}

async fn forgot_form(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    match school(&state, &id) {
        Ok(school) => forgot_page(&state, school, StatusCode::OK, "", false, None),
        Err(page) => page,
    }
}

async fn forgot(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let school = match school(&state, &id) {
        Ok(school) => school,
        Err(page) => return page,
    };
    let fields = match posted(
        &state,
        &headers,
        &body,
        "the form has expired",
        Fields::checked,
    ) {
        Ok(fields) => fields,
        Err(page) => return page,
    };
    let account = fields.get("account");
    if !state.resets.enabled() {
        return forgot_page(&state, school, StatusCode::OK, "", false, None);
    }
    let address = super::super::api::client(&state, peer, &headers);
    let request_id = super::super::scim::request_id(&headers);
    match state
        .provider
        .request_reset(
            &state.resets,
            &state.limiter,
            &school.id,
            account,
            address,
            Some(request_id),
        )
        .await
    {
        // The same page whether or not the account exists or has an address.
        Ok(Requested::Accepted) => forgot_page(&state, school, StatusCode::OK, "", true, None),
        Ok(Requested::Throttled { retry_after_secs }) => forgot_page(
            &state,
            school,
            StatusCode::TOO_MANY_REQUESTS,
            account,
            false,
            Some(&match retry_after_secs.div_ceil(60) {
                0 | 1 => "Too many requests. Try again in a minute.".to_owned(),
                minutes => format!("Too many requests. Try again in {minutes} minutes."),
            }),
        ),
        Err(RosterError::Invalid(message)) => forgot_page(
            &state,
            school,
            StatusCode::UNPROCESSABLE_ENTITY,
            account,
            false,
            Some(&message),
        ),
        Err(error) => {
            tracing::error!(%error, "a password-reset request failed");
            internal(&state, &headers)
        }
    }
}

/// The one answer for a link that does not work: used, expired, unknown, or another school's.
fn gone(state: &AppState, school: &School) -> Response {
    no_referrer(pages(state).render(
        StatusCode::GONE,
        "person_reset_gone.html",
        json!({ "school": school.name, "school_id": school.id }),
    ))
}

fn reset_page(
    state: &AppState,
    school: &School,
    token: &str,
    user_name: &str,
    status: StatusCode,
    error: Option<&str>,
) -> Response {
    no_referrer(session::login_form(state, "/login", |csrf| {
        pages(state).render(
            status,
            "person_reset.html",
            json!({
                "school": school.name,
                "school_id": school.id,
                "token": token,
                "user_name": user_name,
                "csrf": csrf,
                "rules": rules(school),
                "done": false,
                "error": error,
            }),
        )
    }))
}

async fn reset_form(
    State(state): State<AppState>,
    Path((id, token)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let school = match school(&state, &id) {
        Ok(school) => school,
        Err(page) => return no_referrer(page),
    };
    let request_id = super::super::scim::request_id(&headers);
    match state
        .provider
        .open_reset(&school.id, &token, Some(request_id))
        .await
    {
        Ok(Opened::Valid { user_name }) => {
            reset_page(&state, school, &token, &user_name, StatusCode::OK, None)
        }
        Ok(Opened::Gone) => gone(&state, school),
        Err(error) => {
            tracing::error!(%error, "opening a password-reset link failed");
            no_referrer(internal(&state, &headers))
        }
    }
}

async fn reset(
    State(state): State<AppState>,
    Path((id, token)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let school = match school(&state, &id) {
        Ok(school) => school,
        Err(page) => return no_referrer(page),
    };
    // The page sends no referrer, so the browser posts with `Origin: null`.
    let check = Fields::checked_without_referrer;
    let fields = match posted(&state, &headers, &body, "the form has expired", check) {
        Ok(fields) => fields,
        Err(page) => return no_referrer(page),
    };
    let (new, repeated) = (fields.raw("password"), fields.raw("repeat"));
    let request_id = super::super::scim::request_id(&headers);
    if new != repeated {
        // Only a working link shows the form again.
        return match state
            .provider
            .open_reset(&school.id, &token, Some(request_id))
            .await
        {
            Ok(Opened::Valid { user_name }) => reset_page(
                &state,
                school,
                &token,
                &user_name,
                StatusCode::UNPROCESSABLE_ENTITY,
                Some("The two passwords are not the same."),
            ),
            Ok(Opened::Gone) => gone(&state, school),
            Err(error) => {
                tracing::error!(%error, "opening a password-reset link failed");
                no_referrer(internal(&state, &headers))
            }
        };
    }
    match state
        .provider
        .complete_reset(&school.id, &token, new, Some(request_id))
        .await
    {
        Ok(Completed::Changed { user_name }) => no_referrer(pages(&state).render(
            StatusCode::OK,
            "person_reset.html",
            json!({
                "school": school.name,
                "school_id": school.id,
                "user_name": user_name,
                "done": true,
            }),
        )),
        Ok(Completed::Rejected { user_name, detail }) => reset_page(
            &state,
            school,
            &token,
            &user_name,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some(&format!("Choose another password: {detail}.")),
        ),
        Ok(Completed::Gone) => gone(&state, school),
        Err(error) => {
            tracing::error!(%error, "a password reset failed");
            no_referrer(internal(&state, &headers))
        }
    }
}

/// A request's path as logs show it: a reset link's token replaced, so that no log holds a
/// token that still works.
pub fn loggable_path(path: &str) -> std::borrow::Cow<'_, str> {
    let mut parts = path.splitn(5, '/');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(""), Some("login"), Some(school), Some("reset")) => {
            std::borrow::Cow::Owned(format!("/login/{school}/reset/…"))
        }
        _ => std::borrow::Cow::Borrowed(path),
    }
}

#[cfg(test)]
mod tests {
    use super::loggable_path;

    #[test]
    fn reset_tokens_are_left_out_of_logged_paths() {
        assert_eq!(
            loggable_path("/login/north/reset/abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"),
            "/login/north/reset/…"
        );
        assert_eq!(loggable_path("/login/north/reset/"), "/login/north/reset/…");
        assert_eq!(loggable_path("/login/north/forgot"), "/login/north/forgot");
        assert_eq!(loggable_path("/scim/v2/Users"), "/scim/v2/Users");
        assert_eq!(loggable_path("/"), "/");
    }
}
