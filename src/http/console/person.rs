//! `/login/{school}`: where a student (or tutor) signs in with the slip and must choose a new
//! password before anything else. The same checks and throttling as the log-in API; the person's
//! session lasts only until the new password is chosen.

use std::net::SocketAddr;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use serde_json::{Value, json};

use super::forms::{Fields, Forged};
use super::session::{self, FORM_COOKIE, PERSON_COOKIE, cookie, csrf_token, find};
use super::{pages, see_other};
use crate::config::School;
use crate::http::AppState;
use crate::roster::login::{Change, Outcome};
use crate::store::{Session, SessionKind};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/{school}", get(login_form).post(login))
        .route(
            "/{school}/password",
            get(password_form).post(choose_password),
        )
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
    let Some(secret) = cookie(&headers, FORM_COOKIE) else {
        return refused(&state, Forged("the log-in form has expired"));
    };
    let fields = match Fields::checked(&headers, &body, secret) {
        Ok(fields) => fields,
        Err(forged) => return refused(&state, forged),
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

fn password_page(
    state: &AppState,
    school: &School,
    session: &Session,
    secret: &str,
    status: StatusCode,
    error: Option<&str>,
) -> Response {
    let policy = &school.passwords.policy;
    let rules: Vec<Value> = std::iter::once(format!("at least {} characters", policy.min_length))
        .chain(
            policy
                .require_classes
                .iter()
                .map(|class| format!("include {}", class.described())),
        )
        .chain(["not your username".to_owned()])
        .map(Value::from)
        .collect();
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
