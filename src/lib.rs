//! rollcall turns a school's directory into ready-to-use learning-platform accounts.
//!
//! Today it is a SCIM 2.0 service provider (RFC 7643/7644) for many schools on one store:
//! identity systems such as Microsoft Entra ID and Okta push students, tutors and teaching
//! groups to `/scim/v2`, each with a bearer token bound to one school and one source.
//!
//! Modules, from the outside in:
//! - [`http`]: axum routes; the only module that knows status codes and headers.
//! - [`provider`]: each SCIM operation over the store, and `/Bulk`.
//! - [`scim`]: SCIM as plain data (schemas, filter, PATCH, documents, errors); no IO.
//! - [`store`]: persistence; the only module with SQL.
//! - [`config`], [`token`], [`password`], [`clock`]: configuration, bearer tokens, argon2id,
//!   and the one place that reads time and randomness.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod clock;
pub mod config;
pub mod http;
pub mod password;
pub mod provider;
pub mod scim;
pub mod store;
pub mod token;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::clock::Clock;
use crate::config::Config;
use crate::provider::Provider;
use crate::scim::schema::Registry;
use crate::store::Store;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Schemas(#[from] scim::schema::LoadError),
    #[error(transparent)]
    Store(#[from] store::Error),
    #[error("serving HTTP failed: {0}")]
    Serve(std::io::Error),
}

/// Opens the store named by the configuration (creating and migrating it) and records the
/// configured schools in it.
pub async fn open_store(config: &Config) -> Result<Store, Error> {
    let store = Store::open(&config.store.url).await?;
    store.upsert_schools(&config.schools).await?;
    Ok(store)
}

/// Builds the application state for a configuration.
pub async fn state(config: &Config, clock: Clock) -> Result<http::AppState, Error> {
    let registry = Arc::new(Registry::load()?);
    let store = open_store(config).await?;
    Ok(http::AppState {
        provider: Provider {
            store,
            registry,
            clock,
        },
        schools: Arc::new(config.schools.iter().map(|s| s.id.clone()).collect()),
    })
}

/// Serves on an already-bound listener until `shutdown` completes, then lets in-flight
/// requests finish (for at most `server.shutdown_grace_secs`).
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let state = state(&config, Clock::system()).await?;
    serve(state, config.server, listener, shutdown).await
}

/// [`run`] with a prepared state (tests build their own, then keep a handle on its store).
pub async fn serve(
    state: http::AppState,
    server: config::Server,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let store = state.provider.store.clone();
    let app = http::router(state, Duration::from_secs(server.request_timeout_secs));
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let grace = Duration::from_secs(server.shutdown_grace_secs);
    let server = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        let _ = stop_rx.changed().await;
    });
    let result = tokio::select! {
        result = server => result.map_err(Error::Serve),
        () = async move {
            shutdown.await;
            tracing::info!("shutting down: finishing in-flight requests");
            let _ = stop_tx.send(true);
            tokio::time::sleep(grace).await;
        } => {
            tracing::warn!(grace_secs = grace.as_secs(), "in-flight requests did not finish in time");
            Ok(())
        }
    };
    store.close().await;
    result
}
