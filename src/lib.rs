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
//! - [`webhooks`]: the events each change makes, and their signed, ordered delivery.
//! - [`mail`]: outgoing mail (forgotten-password links) through the configured SMTP relay.
//! - [`config`], [`token`], [`password`], [`clock`]: configuration, bearer tokens, argon2id,
//!   and the one place that reads time and randomness.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod clock;
pub mod config;
pub mod courses;
pub mod credentials;
pub mod http;
pub mod mail;
pub mod outbound;
pub mod password;
pub mod provider;
pub mod roster;
pub mod scim;
pub mod seal;
pub mod store;
pub mod sync;
pub mod token;
pub mod webhooks;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::clock::Clock;
use crate::config::Config;
use crate::credentials::Vault;
use crate::password::Hasher;
use crate::provider::Provider;
use crate::roster::login::Limiter;
use crate::scim::schema::Registry;
use crate::store::Store;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Schemas(#[from] scim::schema::LoadError),
    #[error(transparent)]
    Store(#[from] store::Error),
    #[error(transparent)]
    Password(#[from] password::Error),
    #[error("the slip key: {0}")]
    SlipKey(#[from] seal::KeyError),
    #[error(transparent)]
    Templates(#[from] http::console::TemplateError),
    #[error(transparent)]
    Webhooks(#[from] webhooks::Error),
    #[error(transparent)]
    Mail(#[from] mail::Error),
    #[error("serving HTTP failed: {0}")]
    Serve(std::io::Error),
}

/// Opens the store named by the configuration (creating and migrating it) and records the
/// configured schools in it. Its writes add the configured webhooks' events to the outbox.
pub async fn open_store(config: &Config) -> Result<Store, Error> {
    let mut store = Store::open(&config.store.url).await?;
    store.set_outbox(
        store::Outbox::new(
            config
                .webhooks
                .iter()
                .map(config::Webhook::subscription)
                .collect(),
        )
        .with_catalogues(
            config
                .schools
                .iter()
                .map(|school| (school.id.clone(), school.courses.clone()))
                .collect(),
        ),
    );
    store.upsert_schools(&config.schools).await?;
    Ok(store)
}

/// The key that seals pending slips: `ROLLCALL_SLIP_KEY`, else the key file (created on
/// first use).
pub fn slip_key(config: &Config) -> Result<seal::SlipKey, Error> {
    Ok(match &config.slips.key_env {
        Some(text) => seal::SlipKey::from_base64(text, config::env::SLIP_KEY)?,
        None => seal::SlipKey::load_or_create(&config.slips.key_file, true)?,
    })
}

/// Everything an operation needs, for the daemon and for the command line.
pub async fn provider(config: &Config, clock: Clock) -> Result<Provider, Error> {
    let registry = Arc::new(Registry::load()?);
    let vault = Vault::new(slip_key(config)?, config.slips.expire_after_days);
    let store = open_store(config).await?;
    Ok(Provider {
        store,
        registry,
        clock,
        schools: Arc::new(
            config
                .schools
                .iter()
                .map(|s| (s.id.clone(), s.clone()))
                .collect(),
        ),
        hasher: Hasher::per_core(config.argon2)?,
        vault,
        webhooks: config.webhooks.clone().into(),
    })
}

/// Builds the application state for a configuration.
pub async fn state(config: &Config, clock: Clock) -> Result<http::AppState, Error> {
    Ok(http::AppState {
        provider: provider(config, clock).await?,
        limiter: Arc::new(
            Limiter::new(config.login.clone())
                .keeping(Duration::from_secs(config.password_reset.window_secs)),
        ),
        resets: Arc::new(roster::reset::Resets::new(
            config.password_reset.clone(),
            config
                .mail
                .as_ref()
                .map(mail::Mailer::new)
                .transpose()?
                .map(Arc::new),
        )),
        pages: Arc::new(http::console::Pages::new(http::console::Sessions {
            secure: config.console.secure_cookies,
            admin_ttl: Duration::from_secs(config.console.session_hours * 3600),
            person_ttl: Duration::from_secs(15 * 60),
        })?),
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
    let deliverers = webhooks::start(&store, &state.provider.clock, &state.provider.webhooks)?;
    let janitor = tokio::spawn(purge_expired_slips(state.provider.clone()));
    let scheduler = tokio::spawn(sync::schedule(state.provider.clone()));
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
    janitor.abort();
    scheduler.abort();
    deliverers.stop().await;
    store.close().await;
    result
}

/// Erases uncollected slips and forgotten-password links once they expire: at start, then
/// every hour.
async fn purge_expired_slips(provider: Provider) {
    let mut hourly = tokio::time::interval(Duration::from_secs(3600));
    loop {
        hourly.tick().await;
        match provider
            .store
            .purge_expired_slips(provider.clock.now())
            .await
        {
            Ok(0) => {}
            Ok(purged) => tracing::info!(purged, "expired pending slips erased"),
            Err(error) => tracing::warn!(%error, "erasing expired slips failed"),
        }
        match provider
            .store
            .purge_expired_resets(provider.clock.now())
            .await
        {
            Ok(0) => {}
            Ok(purged) => tracing::info!(purged, "expired password-reset links erased"),
            Err(error) => tracing::warn!(%error, "erasing expired password-reset links failed"),
        }
    }
}
