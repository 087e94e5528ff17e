//! The admin console (`/admin`) and the log-in page people use with their slip (`/login`):
//! server-rendered HTML from templates compiled into the binary, forms that work without
//! JavaScript.
//!
//! - **Sessions.** A random 256-bit token in an `HttpOnly; SameSite=Strict` cookie (`Secure`
//!   unless configured off for plain-HTTP development); only its SHA-256 is stored. An admin's
//!   session names one school, and every page and action asks the store for that school only.
//! - **CSRF.** Every form carries a token derived from the session's secret (or, before
//!   signing in, from a cookie of its own): a post without it, or from another origin, is
//!   refused with 403 and changes nothing.
//! - **Headers.** Every page is `Cache-Control: no-store` (first passwords appear on some) and
//!   carries a Content-Security-Policy that allows only this server's own stylesheet and script.

// Handlers answer a page either way: an error is a page too, as large as any other.
#![allow(clippy::result_large_err)]

mod admin;
mod forms;
mod person;
mod session;

use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use minijinja::{Environment, UndefinedBehavior};
use serde::Serialize;

use super::AppState;

pub use person::loggable_path;
pub use session::Sessions;

/// The templates, compiled in: `(name, source)`.
const TEMPLATES: [(&str, &str); 23] = [
    ("layout.html", include_str!("templates/layout.html")),
    ("error.html", include_str!("templates/error.html")),
    ("login.html", include_str!("templates/login.html")),
    ("groups.html", include_str!("templates/groups.html")),
    ("group.html", include_str!("templates/group.html")),
    ("group_form.html", include_str!("templates/group_form.html")),
    ("students.html", include_str!("templates/students.html")),
    (
        "person_fields.html",
        include_str!("templates/person_fields.html"),
    ),
    ("preview.html", include_str!("templates/preview.html")),
    ("created.html", include_str!("templates/created.html")),
    ("slips.html", include_str!("templates/slips.html")),
    ("users.html", include_str!("templates/users.html")),
    ("user.html", include_str!("templates/user.html")),
    ("sources.html", include_str!("templates/sources.html")),
    ("staff.html", include_str!("templates/staff.html")),
    ("plan.html", include_str!("templates/plan.html")),
    (
        "person_login.html",
        include_str!("templates/person_login.html"),
    ),
    (
        "person_password.html",
        include_str!("templates/person_password.html"),
    ),
    (
        "person_done.html",
        include_str!("templates/person_done.html"),
    ),
    (
        "person_forgot.html",
        include_str!("templates/person_forgot.html"),
    ),
    (
        "person_reset.html",
        include_str!("templates/person_reset.html"),
    ),
    (
        "new_password_fields.html",
        include_str!("templates/new_password_fields.html"),
    ),
    (
        "person_reset_gone.html",
        include_str!("templates/person_reset_gone.html"),
    ),
];

const STYLESHEET: &str = include_str!("static/console.css");
const SCRIPT: &str = include_str!("static/console.js");
const ICON: &str = include_str!("static/favicon.svg");

/// The console's templates and settings, built once at start-up.
#[derive(Debug)]
pub struct Pages {
    templates: Environment<'static>,
    sessions: Sessions,
    /// The Content-Security-Policy of every page.
    policy: HeaderValue,
}

#[derive(Debug, thiserror::Error)]
#[error("console template {name}: {source}")]
pub struct TemplateError {
    name: &'static str,
    source: minijinja::Error,
}

impl Pages {
    /// Parses every template (a mistake is found at start-up, not when a page is first shown).
    pub fn new(sessions: Sessions) -> Result<Pages, TemplateError> {
        let mut templates = Environment::new();
        templates.set_undefined_behavior(UndefinedBehavior::Strict);
        for (name, source) in TEMPLATES {
            templates
                .add_template(name, source)
                .map_err(|source| TemplateError { name, source })?;
        }
        // The printable slips page is `roster::slips::html`, whose one inline style is allowed
        // by its hash.
        let policy = format!(
            "default-src 'none'; style-src 'self' '{}'; script-src 'self'; img-src 'self'; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
            crate::roster::slips::style_hash()
        );
        Ok(Pages {
            templates,
            sessions,
            policy: HeaderValue::from_str(&policy).unwrap_or(HeaderValue::from_static(
                "default-src 'none'; style-src 'self'; script-src 'self'",
            )),
        })
    }

    /// Renders a template into a page with the console's headers.
    fn render(&self, status: StatusCode, name: &str, context: impl Serialize) -> Response {
        let rendered = self
            .templates
            .get_template(name)
            .and_then(|template| template.render(minijinja::value::Serde(context)));
        match rendered {
            Ok(body) => self.page(status, body),
            Err(error) => {
                // The error alone: its detailed form would print the context, which may hold personal data.
                tracing::error!(template = name, %error, "a console page failed to render");
                self.page(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "<!DOCTYPE html><html lang=\"en\"><title>Internal error</title>\
                     <p>Internal error: the page could not be shown. The server's log says why."
                        .into(),
                )
            }
        }
    }

    /// An HTML body with the console's headers.
    fn page(&self, status: StatusCode, body: String) -> Response {
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        secure_headers(headers, &self.policy);
        response
    }
}

fn secure_headers(headers: &mut axum::http::HeaderMap, policy: &HeaderValue) {
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::CONTENT_SECURITY_POLICY, policy.clone());
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
}

/// The console's routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { see_other("/admin") }))
        .nest("/admin", admin::router())
        .nest("/login", person::router())
        .route("/static/console.css", get(stylesheet))
        .route("/static/console.js", get(script))
        // Browsers ask for it on every page that names no icon (the printable slips).
        .route("/favicon.ico", get(icon))
        .route("/static/favicon.svg", get(icon))
}

async fn icon() -> Response {
    asset("image/svg+xml", ICON)
}

async fn stylesheet() -> Response {
    asset("text/css; charset=utf-8", STYLESHEET)
}

async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

fn asset(kind: &'static str, body: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// Where to go after a form that changed something (303: the browser follows with a GET, so a
/// reload does not post again).
fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

/// The state the console's handlers need.
fn pages(state: &AppState) -> &Arc<Pages> {
    &state.pages
}

#[cfg(test)]
mod tests;
