//! The `rollcall` command: parse the command line, set up logging, load the configuration,
//! and hand over to the library.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use rollcall::clock::Clock;
use rollcall::config::{self, Config, LogFormat};

#[derive(Parser)]
#[command(
    name = "rollcall",
    version,
    about = "School directory to learning-platform accounts: a SCIM 2.0 service provider"
)]
struct Cli {
    /// The configuration file.
    #[arg(
        long,
        global = true,
        env = "ROLLCALL_CONFIG",
        default_value = "config/rollcall.toml"
    )]
    config: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon.
    Serve {
        /// Address to listen on, overriding `[server] listen` and ROLLCALL_LISTEN.
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
    },
    /// Manage SCIM bearer tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Validate the configuration and explain what it sets up.
    CheckConfig,
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create a token for one school and source; prints it once, alone on the last line.
    Create {
        #[arg(long)]
        school: String,
        /// The source this token's changes are attributed to, e.g. `entra` or `okta`.
        #[arg(long)]
        source: String,
    },
    /// List tokens (never their secrets).
    List {
        #[arg(long)]
        school: Option<String>,
    },
    /// Revoke a token by its id, at once.
    Revoke { id: String },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("rollcall: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(execute(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("rollcall: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn execute(cli: Cli) -> anyhow::Result<()> {
    let mut config = Config::load(&cli.config)?;
    init_logging(config.server.log_format);
    match cli.command {
        Command::Serve { listen } => {
            if let Some(listen) = listen {
                config.server.listen = listen;
            }
            let listener = tokio::net::TcpListener::bind(config.server.listen)
                .await
                .with_context(|| format!("cannot listen on {}", config.server.listen))?;
            tracing::info!(
                address = %listener.local_addr()?,
                schools = config.schools.len(),
                config = %cli.config.display(),
                "rollcall listening"
            );
            rollcall::run(config, listener, shutdown_signal()).await?;
            tracing::info!("stopped");
        }
        Command::CheckConfig => {
            print!("{}", explain(&config));
            let store = rollcall::open_store(&config).await?;
            store.close().await;
            println!("store: opened and up to date");
        }
        Command::Token { command } => token(&config, command).await?,
    }
    Ok(())
}

async fn token(config: &Config, command: TokenCommand) -> anyhow::Result<()> {
    let store = rollcall::open_store(config).await?;
    let clock = Clock::system();
    match command {
        TokenCommand::Create { school, source } => {
            anyhow::ensure!(
                config.school(&school).is_some(),
                "no school `{school}` in {}: declare it under [[schools]] first",
                cli_path(config)
            );
            anyhow::ensure!(
                config::is_identifier(&source),
                "`{source}` is not a source name: use 1 to 64 lower-case letters, digits, `-` or `_`"
            );
            let (token, plaintext) =
                rollcall::token::create(&store, &clock, &school, &source).await?;
            println!(
                "token {} for school {} and source {} (shown once; only its hash is stored):",
                token.id, token.school_id, token.source
            );
            println!("{plaintext}");
        }
        TokenCommand::List { school } => {
            let tokens = store.list_tokens(school.as_deref()).await?;
            println!(
                "{:<16}  {:<16}  {:<16}  {:<27}  status",
                "id", "school", "source", "created"
            );
            for token in tokens {
                let status = match token.revoked {
                    Some(at) => format!("revoked {}", rollcall::store::format_time(at)),
                    None => "active".into(),
                };
                println!(
                    "{:<16}  {:<16}  {:<16}  {:<27}  {status}",
                    token.id,
                    token.school_id,
                    token.source,
                    rollcall::store::format_time(token.created)
                );
            }
        }
        TokenCommand::Revoke { id } => {
            store
                .revoke_token(&id, clock.now())
                .await
                .map_err(|e| match e {
                    rollcall::store::Error::NotFound => {
                        anyhow::anyhow!("no token with id `{id}` (see `rollcall token list`)")
                    }
                    other => other.into(),
                })?;
            println!("token {id} revoked");
        }
    }
    store.close().await;
    Ok(())
}

fn cli_path(config: &Config) -> String {
    config
        .path
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "the configuration".into())
}

fn explain(config: &Config) -> String {
    let mut text = format!("configuration: {} is valid\n", cli_path(config));
    text.push_str(&format!(
        "listen: {} (override with --listen or {})\n",
        config.server.listen,
        config::env::LISTEN
    ));
    let store = &config.store.url;
    text.push_str(&format!(
        "store: {store} (override with {})\n",
        config::env::DATABASE_URL
    ));
    text.push_str(&format!(
        "logs: {:?} (set {} to text or json)\n",
        config.server.log_format,
        config::env::LOG_FORMAT
    ));
    text.push_str(&format!("schools: {}\n", config.schools.len()));
    for school in &config.schools {
        text.push_str(&format!("  {}: {}\n", school.id, school.name));
    }
    if config.schools.is_empty() {
        text.push_str("  (none: add [[schools]] entries before creating tokens)\n");
    }
    text
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env(config::env::LOG)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .init(),
        LogFormat::Text => builder.init(),
    }
}

async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
}
