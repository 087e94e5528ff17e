//! Browser sessions: cookies, the signed-in admin, and CSRF tokens.

use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use super::super::AppState;
use crate::roster::Admin;
use crate::store::{Session, SessionKind};
use crate::token::{self, digest};

/// An admin's session cookie (path `/admin`).
pub const ADMIN_COOKIE: &str = "rollcall_admin";
/// A person's session on the log-in page, between a first password and the chosen one (path
/// `/login`).
pub const PERSON_COOKIE: &str = "rollcall_login";
/// The CSRF secret of a form shown before signing in.
pub const FORM_COOKIE: &str = "rollcall_form";

/// How long sessions last, and whether cookies are `Secure`.
#[derive(Debug, Clone)]
pub struct Sessions {
    /// `Secure` cookies: sent over HTTPS only. Off only for plain-HTTP development.
    pub secure: bool,
    pub admin_ttl: Duration,
    pub person_ttl: Duration,
}

/// The CSRF token of the forms of a session (or of a form cookie): derived from its secret, so
/// nothing more is stored, and useless to anyone who cannot read the cookie.
pub fn csrf_token(secret: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"rollcall csrf\0");
    hasher.update(secret.as_bytes());
    URL_SAFE_NO_PAD.encode(hasher.finalize())
}

impl Sessions {
    /// A `Set-Cookie` value; `max_age` zero deletes the cookie.
    pub fn cookie(&self, name: &str, value: &str, path: &str, max_age: Duration) -> HeaderValue {
        let secure = if self.secure { "; Secure" } else { "" };
        let text = format!(
            "{name}={value}; Path={path}; Max-Age={}; HttpOnly; SameSite=Strict{secure}",
            max_age.as_secs()
        );
        HeaderValue::from_str(&text).unwrap_or(HeaderValue::from_static("rollcall_invalid=1"))
    }
}

/// A cookie's value from a request.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
        .filter(|value| !value.is_empty())
}

/// How long a log-in form's CSRF secret lives.
const FORM_TTL: Duration = Duration::from_secs(3600);

/// Renders a log-in form (under `path`) with a fresh CSRF secret in its own cookie: `page`
/// gets the form's token.
pub fn login_form(state: &AppState, path: &str, page: impl FnOnce(&str) -> Response) -> Response {
    let Ok(secret) = token::secret() else {
        return super::admin::internal(state, "-");
    };
    let mut response = page(&csrf_token(&secret));
    response.headers_mut().append(
        header::SET_COOKIE,
        state
            .pages
            .sessions
            .cookie(FORM_COOKIE, &secret, path, FORM_TTL),
    );
    response
}

/// Starts a session (its cookie limited to `path`, the log-in form's cookie dropped) and sends
/// the browser on to `then`.
pub async fn start(
    state: &AppState,
    kind: SessionKind,
    school_id: &str,
    subject: &str,
    name: &str,
    then: &str,
) -> Response {
    let sessions = &state.pages.sessions;
    let (cookie_name, path, ttl) = match kind {
        SessionKind::Admin => (ADMIN_COOKIE, "/admin", sessions.admin_ttl),
        SessionKind::Person => (PERSON_COOKIE, "/login", sessions.person_ttl),
    };
    let Ok(secret) = token::secret() else {
        return super::admin::internal(state, "-");
    };
    let now = state.provider.clock.now();
    let session = Session {
        kind,
        school_id: school_id.to_owned(),
        subject: subject.to_owned(),
        name: name.to_owned(),
        created: now,
        expires: now + ttl,
    };
    if let Err(error) = state
        .provider
        .store
        .insert_session(&digest(&secret), &session)
        .await
    {
        tracing::error!(%error, "could not record a session");
        return super::admin::internal(state, "-");
    }
    let mut response = Redirect::to(then).into_response();
    let headers = response.headers_mut();
    headers.append(
        header::SET_COOKIE,
        sessions.cookie(cookie_name, &secret, path, ttl),
    );
    headers.append(
        header::SET_COOKIE,
        sessions.cookie(FORM_COOKIE, "", path, Duration::ZERO),
    );
    response
}

/// Ends the session of `secret` and drops its cookie from `response`.
pub async fn end(
    state: &AppState,
    kind: SessionKind,
    secret: &str,
    mut response: Response,
) -> Response {
    let now = state.provider.clock.now();
    if let Err(error) = state
        .provider
        .store
        .delete_session(&digest(secret), now)
        .await
    {
        tracing::error!(%error, "could not end a session");
        return super::admin::internal(state, "-");
    }
    let (cookie_name, path) = match kind {
        SessionKind::Admin => (ADMIN_COOKIE, "/admin"),
        SessionKind::Person => (PERSON_COOKIE, "/login"),
    };
    response.headers_mut().append(
        header::SET_COOKIE,
        state
            .pages
            .sessions
            .cookie(cookie_name, "", path, Duration::ZERO),
    );
    response
}

/// The live session of a request's cookie, of the kind asked for, for a configured school.
pub async fn find(
    state: &AppState,
    headers: &HeaderMap,
    name: &str,
    kind: SessionKind,
) -> Result<Option<(Session, String)>, crate::store::Error> {
    let Some(secret) = cookie(headers, name) else {
        return Ok(None);
    };
    let now = state.provider.clock.now();
    let session = state.provider.store.session(&digest(secret), now).await?;
    Ok(session
        .filter(|s| s.kind == kind && state.provider.schools.contains_key(&s.school_id))
        .map(|s| (s, secret.to_owned())))
}

/// An admin signed in to the console, acting on their school only.
pub struct SignedIn {
    pub admin: Admin,
    pub name: String,
    pub school_name: String,
    pub csrf: String,
    pub secret: String,
}

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<SignedIn, Response> {
        let request_id = super::super::scim::request_id(&parts.headers);
        match find(state, &parts.headers, ADMIN_COOKIE, SessionKind::Admin).await {
            Ok(Some((session, secret))) => {
                let staff = match state
                    .provider
                    .store
                    .staff_named(&session.school_id, &session.name)
                    .await
                {
                    // The name a session was started under may since be another's (a tutor's
                    // account renamed, the name given to someone else): the id decides.
                    Ok(Some(staff)) if staff.id == session.subject => staff,
                    Ok(_) => return Err(Redirect::to("/admin/login").into_response()),
                    Err(error) => {
                        tracing::error!(%error, "staff lookup failed");
                        return Err(super::admin::internal(state, &request_id));
                    }
                };
                let admin = Admin::staff(&staff, Some(request_id));
                if let Err(error) = super::super::access::check(state, &admin, parts).await {
                    return Err(super::admin::refused(state, &admin, error));
                }
                let school_name = state
                    .provider
                    .schools
                    .get(&session.school_id)
                    .map(|school| school.name.clone())
                    .unwrap_or_default();
                Ok(SignedIn {
                    admin,
                    name: session.name,
                    school_name,
                    csrf: csrf_token(&secret),
                    secret,
                })
            }
            Ok(None) => Err(Redirect::to("/admin/login").into_response()),
            Err(error) => {
                tracing::error!(%error, "session lookup failed");
                Err(super::admin::internal(state, &request_id))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_by_exact_name() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("rollcall_admin_x=1; rollcall_admin=abc; other=2"),
        );
        assert_eq!(cookie(&headers, "rollcall_admin"), Some("abc"));
        assert_eq!(cookie(&headers, "rollcall"), None);
        headers.insert(header::COOKIE, HeaderValue::from_static("rollcall_admin="));
        assert_eq!(cookie(&headers, "rollcall_admin"), None);
    }

    #[test]
    fn csrf_tokens_differ_per_secret_and_are_not_the_secret() {
        let (a, b) = (token::secret().unwrap(), token::secret().unwrap());
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert_eq!(csrf_token(&a), csrf_token(&a));
        assert_ne!(csrf_token(&a), csrf_token(&b));
        assert_ne!(csrf_token(&a), a);
    }

    #[test]
    fn cookies_are_http_only_strict_and_secure_when_asked() {
        let sessions = Sessions {
            secure: true,
            admin_ttl: Duration::from_secs(60),
            person_ttl: Duration::from_secs(60),
        };
        let value = sessions.cookie("a", "b", "/admin", Duration::from_secs(60));
        assert_eq!(
            value.to_str().unwrap(),
            "a=b; Path=/admin; Max-Age=60; HttpOnly; SameSite=Strict; Secure"
        );
        let plain = Sessions {
            secure: false,
            ..sessions
        };
        assert!(
            !plain
                .cookie("a", "b", "/", Duration::ZERO)
                .to_str()
                .unwrap()
                .contains("Secure")
        );
    }
}
