//! HTTP: the only module that knows status codes and headers.
//!
//! `/scim/v2` is a public contract (RFC 7643/7644); `/api/v1` is the admin and log-in API;
//! `/healthz` answers load balancers.
//! Every response carries an `x-request-id`, and every log line of a request names it.

mod access;
mod api;
mod auth;
pub mod console;
mod scim;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderName, Request, StatusCode};
use axum::routing::get;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnFailure, DefaultOnResponse, TraceLayer};
use tracing::Level;

use crate::provider::Provider;
use crate::roster::login::Limiter;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

#[derive(Clone, Debug)]
pub struct AppState {
    pub provider: Provider,
    /// Log-in failures, per account and per address.
    pub limiter: Arc<Limiter>,
    /// The admin console's templates and session settings.
    pub pages: Arc<console::Pages>,
    /// Forgotten-password links: settings and the mail relay.
    pub resets: Arc<crate::roster::reset::Resets>,
}

pub fn router(state: AppState, request_timeout: Duration) -> Router {
    let timeout = |limit| TimeoutLayer::with_status_code(StatusCode::SERVICE_UNAVAILABLE, limit);
    Router::new()
        .route("/healthz", get(healthz))
        .nest("/scim/v2", scim::router(&state))
        .merge(console::router())
        // A layer covers the routes added before it: `/api/v1` sets its own timeouts.
        .layer(timeout(request_timeout))
        .nest("/api/v1", api::router(timeout(request_timeout), timeout(api::IMPORT_TIMEOUT)))
        .with_state(state)
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|request: &Request<_>| {
                    let id = request
                        .headers()
                        .get(REQUEST_ID)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("-");
                    // A reset link's token is left out: a log must not hold a working link.
                    let path = console::loggable_path(request.uri().path());
                    tracing::info_span!("request", request_id = %id, method = %request.method(), path = %path)
                })
                // One line per request at info: the access log.
                .on_response(DefaultOnResponse::new().level(Level::INFO))
                .on_failure(DefaultOnFailure::new().level(Level::ERROR)),
        )
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .layer(SetSensitiveRequestHeadersLayer::new([axum::http::header::AUTHORIZATION]))
}

async fn healthz(
    axum::extract::State(state): axum::extract::State<AppState>,
) -> (StatusCode, &'static str) {
    match state.provider.store.ping().await {
        Ok(()) => (StatusCode::OK, "ok\n"),
        Err(error) => {
            tracing::error!(%error, "health check: store unreachable");
            (StatusCode::SERVICE_UNAVAILABLE, "store unavailable\n")
        }
    }
}
