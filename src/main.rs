//! The `rollcall` command: parse the command line, set up logging, load the configuration,
//! and hand over to the library.

/// mimalloc rather than the system allocator: a directory sync builds and frees a whole
/// directory's entries each run, and with glibc's malloc the no-change resync of 10,000
/// students spent a third of its time allocating and freeing (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use rollcall::clock::Clock;
use rollcall::config::{self, Config, LogFormat};
use rollcall::sync;

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
    CheckConfig {
        /// Also connect to each directory source, bind, and run each of its searches.
        #[arg(long)]
        connect: bool,
    },
    /// Sync a school's directory source: read it, plan, and apply the plan (or hold it when it
    /// would disable too many accounts). `--status` shows every source's last run instead.
    Sync {
        /// The source's id (`[[schools.sources]] id`).
        #[arg(required_unless_present = "status")]
        source: Option<String>,
        /// The school (may be left out when the configuration has one).
        #[arg(long)]
        school: Option<String>,
        /// Print the plan, change nothing.
        #[arg(long, conflicts_with_all = ["approve", "status"])]
        dry_run: bool,
        /// Apply the plan the deletion threshold held.
        #[arg(long, conflicts_with = "status")]
        approve: bool,
        /// Read everything, even when the source could read only what changed.
        #[arg(long, conflicts_with_all = ["dry_run", "approve", "status"])]
        full: bool,
        /// Show each source's last run and held plan.
        #[arg(long)]
        status: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Copy schools from one store to another (SQLite to PostgreSQL, or back): every account,
    /// group, credential, pending slip, audit event and sync state, verified by each table's row
    /// count and checksum before the copy is committed. The target must hold nothing of them.
    MigrateStore {
        /// The store to copy from, e.g. sqlite://data/rollcall.db.
        #[arg(long)]
        from: String,
        /// The store to copy to, e.g. postgres://rollcall@db.example/rollcall (a password comes
        /// from PGPASSWORD or a pgpass file).
        #[arg(long)]
        to: String,
        /// Copy only this school (repeatable); every school of the source by default.
        #[arg(long)]
        school: Vec<String>,
    },
    /// Manage a school's admins (who use the /api/v1 admin API).
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Create a class's accounts from a class list pasted from a spreadsheet (tab-, comma- or
    /// semicolon-separated; header row optional). Prints each new account's first password once.
    Import {
        #[arg(long)]
        school: String,
        /// The teaching group (name or id); created when it does not exist yet.
        #[arg(long)]
        group: String,
        /// A course for a new group (code or title); repeat for several.
        #[arg(long = "course")]
        courses: Vec<String>,
        /// A tutor (username) for a new group; repeat for several.
        #[arg(long = "tutor")]
        tutors: Vec<String>,
        /// Show what would happen, row by row; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Create the valid rows even if other rows have errors.
        #[arg(long)]
        partial: bool,
        /// Also write the new accounts' credential slips to this CSV file (mode 0600).
        #[arg(long)]
        slips: Option<PathBuf>,
        /// The class list; `-` reads standard input.
        file: PathBuf,
    },
    /// Collect a school's pending credential slips (first passwords generated for SCIM pushes
    /// and syncs). Each slip is handed out once, then erased.
    Slips {
        #[arg(long)]
        school: String,
        /// Only the slips of this teaching group's members.
        #[arg(long)]
        group: Option<String>,
        #[arg(long, value_enum, default_value = "html")]
        format: SlipFormat,
        /// Write here (mode 0600) instead of standard output.
        #[arg(long)]
        output: Option<PathBuf>,
    },
    /// Webhook deliveries: each webhook's outbox (`--status`), the events that failed for good
    /// (`--failed`), or queue those again for the daemon to send (`--replay`).
    #[command(group(clap::ArgGroup::new("what").required(true).args(["status", "failed", "replay"])))]
    Webhooks {
        /// Pending, failed and recently delivered events, and the last error, per webhook.
        #[arg(long)]
        status: bool,
        /// The events whose attempts are used up.
        #[arg(long)]
        failed: bool,
        /// Queue the failed events again (the running daemon sends them).
        #[arg(long)]
        replay: bool,
        /// Only this webhook (`[[webhooks]] id`).
        #[arg(long)]
        webhook: Option<String>,
        /// With --replay: only the event with this id.
        #[arg(long, requires = "replay")]
        event: Option<String>,
    },
    /// Import a OneRoster 1.1 CSV export (a folder or a zip file): students, tutors and
    /// teaching groups, by the rules of the school's OneRoster source (a source `oneroster`
    /// with the default rules when it has none). Prints the plan and applies it, as `rollcall
    /// sync` does; a bad export is refused with every problem's file, line and column.
    ImportOneroster {
        #[arg(long)]
        school: String,
        /// The OneRoster source whose rules apply, when the school has several.
        #[arg(long)]
        source: Option<String>,
        /// The sourcedId of the school's org in orgs.csv, for an export of several schools
        /// (in place of the source's `org`).
        #[arg(long)]
        org: Option<String>,
        /// Print the plan, change nothing.
        #[arg(long, conflicts_with = "approve")]
        dry_run: bool,
        /// Apply the plan the deletion threshold held for this export.
        #[arg(long)]
        approve: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// The export: a folder holding manifest.csv and the other files, or a zip file.
        path: PathBuf,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum SlipFormat {
    Csv,
    Html,
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Create an admin of one school; prints their first API token once, alone on the last line.
    Create {
        #[arg(long)]
        school: String,
        #[arg(long)]
        username: String,
    },
    /// Issue another API token for an existing admin (revoke with `rollcall token revoke`).
    Token {
        #[arg(long)]
        school: String,
        #[arg(long)]
        username: String,
    },
    /// Give an existing admin a new password for the web console (`/admin`); prints it once,
    /// alone on the last line, and signs the admin's browsers out.
    Password {
        #[arg(long)]
        school: String,
        #[arg(long)]
        username: String,
    },
    /// Give a member of staff a role: `admin` (every account of the school), `tutor` (their
    /// own teaching groups and students), `read-only`, or `none`. A tutor's account (a person
    /// with the tutor role) becomes staff who sign in to the console with it.
    Grant {
        #[arg(long)]
        school: String,
        #[arg(long)]
        username: String,
        #[arg(long)]
        role: String,
    },
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
        Command::CheckConfig { connect } => {
            print!("{}", explain(&config));
            let store = rollcall::open_store(&config).await?;
            store.close().await;
            println!("store: opened and up to date");
            check_webhooks(&config)?;
            check_mail(&config, connect).await?;
            if connect {
                check_sources(&config).await?;
            }
        }
        Command::Sync {
            source,
            school,
            dry_run,
            approve,
            full,
            status,
            json,
        } => {
            let school = match school {
                Some(school) => known_school(&config, &school)?.id.clone(),
                None => match config.schools.as_slice() {
                    [only] => only.id.clone(),
                    _ => anyhow::bail!("name the school with --school"),
                },
            };
            let provider = rollcall::provider(&config, Clock::system()).await?;
            let result = if status {
                sync_status(&provider, &school, json).await
            } else {
                let mode = match (dry_run, approve, full) {
                    (true, ..) => sync::Mode::DryRun,
                    (_, true, _) => sync::Mode::Approve,
                    (.., true) => sync::Mode::Full,
                    _ => sync::Mode::Apply,
                };
                let source = source.unwrap_or_default();
                sync_once(&provider, &school, &source, mode, json).await
            };
            provider.store.close().await;
            result?;
        }
        Command::Token { command } => token(&config, command).await?,
        Command::Admin { command } => admin(&config, command).await?,
        Command::MigrateStore { from, to, school } => migrate_store(&from, &to, &school).await?,
        Command::Import {
            school,
            group,
            courses,
            tutors,
            dry_run,
            partial,
            slips,
            file,
        } => {
            let bytes = if file.as_os_str() == "-" {
                let mut bytes = Vec::new();
                std::io::Read::read_to_end(&mut std::io::stdin(), &mut bytes)
                    .context("cannot read standard input")?;
                bytes
            } else {
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?
            };
            let (text, encoding) = rollcall::roster::paste::decode(&bytes);
            if encoding != "UTF-8" {
                eprintln!("read {} as {encoding}", file.display());
            }
            let request = rollcall::roster::import::Request {
                group,
                courses,
                tutors,
                text,
                dry_run,
                partial,
                hold_slips: false,
            };
            import(&config, &school, request, slips.as_deref()).await?;
        }
        Command::Webhooks {
            status,
            failed,
            replay,
            webhook,
            event,
        } => {
            let what = match (status, failed, replay) {
                (true, ..) => WebhooksView::Status,
                (_, true, _) => WebhooksView::Failed,
                _ => WebhooksView::Replay(event),
            };
            webhooks(&config, what, webhook.as_deref()).await?
        }
        Command::Slips {
            school,
            group,
            format,
            output,
        } => {
            collect_slips(
                &config,
                &school,
                group.as_deref(),
                format,
                output.as_deref(),
            )
            .await?
        }
        Command::ImportOneroster {
            school,
            source,
            org,
            dry_run,
            approve,
            json,
            path,
        } => {
            let mode = match (dry_run, approve) {
                (true, _) => sync::Mode::DryRun,
                (_, true) => sync::Mode::Approve,
                _ => sync::Mode::Apply,
            };
            let options = OneRosterImport {
                school,
                source,
                org,
                path,
                mode,
                json,
            };
            import_oneroster(config, options).await?
        }
    }
    Ok(())
}

async fn sync_once(
    provider: &rollcall::provider::Provider,
    school: &str,
    source: &str,
    mode: sync::Mode,
    json: bool,
) -> anyhow::Result<()> {
    let progress: sync::Progress = &|step| eprintln!("{step}");
    let report = sync::run(provider, school, source, mode, progress).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", describe_report(&report, mode == sync::Mode::DryRun));
    }
    if let Some(reason) = &report.held_because {
        anyhow::bail!(
            "the plan is held: {reason}. Check it with `rollcall sync {source} --school {school} \
             --dry-run`, then apply it with `--approve`"
        );
    }
    Ok(())
}

/// A sync report for people: the counts, each change (all of them for a dry run), and every
/// skipped entry with its reason.
fn describe_report(report: &sync::Report, every_change: bool) -> String {
    use std::fmt::Write;
    let mut text = String::new();
    let c = &report.counts;
    let _ = writeln!(
        text,
        "source {}: read {}{} students, {} tutors, {} groups in {:.1} s",
        report.source,
        if report.full {
            ""
        } else {
            "the changes since the last run: "
        },
        report.read.students,
        report.read.tutors,
        report.read.groups,
        report.seconds
    );
    let _ = writeln!(
        text,
        "accounts: {} to create, {} to update, {} to re-enable, {} to disable, {} to delete",
        c.create, c.update, c.enable, c.disable, c.delete
    );
    let _ = writeln!(
        text,
        "teaching groups: {} to create, {} to update, {} to delete; {} entries skipped",
        c.create_groups, c.update_groups, c.delete_groups, c.skipped
    );
    let plan = &report.plan;
    if every_change {
        for account in &plan.create {
            let _ = writeln!(
                text,
                "  create   {} ({}, username {}): {}",
                account.name,
                match account.role {
                    rollcall::roster::Role::Student => "student",
                    rollcall::roster::Role::Tutor => "tutor",
                },
                account.user_name_base,
                account.dn
            );
        }
        for (verb, changes) in [
            ("update", &plan.update),
            ("enable", &plan.enable),
            ("disable", &plan.disable),
            ("delete", &plan.delete),
            ("group +", &plan.create_groups),
            ("group ~", &plan.update_groups),
            ("group -", &plan.delete_groups),
        ] {
            for change in changes {
                let _ = writeln!(
                    text,
                    "  {verb:<8} {}: {}",
                    change.name,
                    change.details.join("; ")
                );
            }
        }
    }
    for skipped in &plan.skipped {
        let _ = writeln!(text, "  skipped  {}: {}", skipped.dn, skipped.reason);
    }
    let _ = writeln!(
        text,
        "{}",
        match report.outcome {
            sync::Outcome::Applied if plan.is_empty() => "nothing to change",
            sync::Outcome::Applied => "applied",
            sync::Outcome::Held => "held: nothing was changed",
            sync::Outcome::Planned => "dry run: nothing was changed",
        }
    );
    text
}

async fn sync_status(
    provider: &rollcall::provider::Provider,
    school: &str,
    json: bool,
) -> anyhow::Result<()> {
    let status = sync::status(provider, school).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&status)?);
        return Ok(());
    }
    if status.is_empty() {
        println!("school {school} has no directory sources");
    }
    for source in status {
        let schedule = source
            .interval_minutes
            .map_or_else(|| "on request".to_owned(), |m| format!("every {m} min"));
        println!("{} ({}, {schedule})", source.source, source.url);
        match source.last_run {
            None => println!("  last run: never"),
            Some(run) => {
                let detail = run
                    .report
                    .get("error")
                    .and_then(|e| e.as_str())
                    .map(str::to_owned)
                    .or_else(|| run.report.get("counts").map(|c| c.to_string()))
                    .unwrap_or_default();
                println!(
                    "  last run: {} ({:.1} s): {} {detail}",
                    run.started, run.seconds, run.outcome
                );
            }
        }
        if let Some(held) = source.held {
            println!(
                "  held plan since {}: {} (approve with --approve)",
                held.since, held.reason
            );
        }
    }
    Ok(())
}

/// Connects to every source, binds and runs each search; says exactly what is wrong.
async fn check_sources(config: &Config) -> anyhow::Result<()> {
    let mut failures = 0;
    for school in &config.schools {
        for source in &school.sources {
            println!(
                "source {}/{} ({}):",
                school.id,
                source.id,
                source.location()
            );
            match sync::check(source).await {
                Ok(lines) => {
                    for (line, fine) in lines {
                        println!("  {line}");
                        failures += usize::from(!fine);
                    }
                }
                Err(error) => {
                    println!("  FAILED: {error}");
                    failures += 1;
                }
            }
        }
    }
    if failures > 0 {
        anyhow::bail!("{failures} problem(s) with directory sources");
    }
    Ok(())
}

fn known_school<'a>(config: &'a Config, school: &str) -> anyhow::Result<&'a config::School> {
    config.school(school).with_context(|| {
        format!(
            "no school `{school}` in {}: declare it under [[schools]] first",
            cli_path(config)
        )
    })
}

async fn admin(config: &Config, command: AdminCommand) -> anyhow::Result<()> {
    let clock = Clock::system();
    let (school, username, create) = match command {
        AdminCommand::Create { school, username } => (school, username, true),
        AdminCommand::Token { school, username } => (school, username, false),
        AdminCommand::Password { school, username } => {
            known_school(config, &school)?;
            let store = rollcall::open_store(config).await?;
            return admin_password(config, &store, &clock, &school, &username).await;
        }
        AdminCommand::Grant {
            school,
            username,
            role,
        } => return grant(config, &school, &username, &role).await,
    };
    let store = rollcall::open_store(config).await?;
    known_school(config, &school)?;
    anyhow::ensure!(
        config::is_identifier(&username.to_lowercase()),
        "`{username}` is not an admin name: use 1 to 64 letters, digits, `-` or `_`"
    );
    if create {
        store
            .insert_admin(
                &school,
                &uuid::Uuid::now_v7().to_string(),
                &username,
                clock.now(),
            )
            .await
            .map_err(|e| match e {
                rollcall::store::Error::Conflict { .. } => anyhow::anyhow!(
                    "school `{school}` already has an admin `{username}`; \
                     `rollcall admin token` issues another token"
                ),
                other => other.into(),
            })?;
    } else {
        anyhow::ensure!(
            store.admin_exists(&school, &username).await?,
            "school `{school}` has no admin `{username}` (create one with `rollcall admin create`)"
        );
    }
    let (token, plaintext) =
        rollcall::token::create_admin(&store, &clock, &school, &username).await?;
    println!(
        "admin {username} of school {school}: API token {} (shown once; only its hash is stored):",
        token.id
    );
    println!("{plaintext}");
    store.close().await;
    Ok(())
}

async fn migrate_store(from: &str, to: &str, schools: &[String]) -> anyhow::Result<()> {
    use rollcall::store::{Store, copy, redacted};
    let source = Store::open(from)
        .await
        .with_context(|| format!("cannot open the source store {}", redacted(from)))?;
    let target = Store::open(to)
        .await
        .with_context(|| format!("cannot open the target store {}", redacted(to)))?;
    let copied = copy::copy(&source, &target, schools).await;
    source.close().await;
    target.close().await;
    let copied = copied?;
    println!(
        "copied {} to {}, verified table by table:",
        redacted(from),
        redacted(to)
    );
    for table in &copied {
        println!(
            "  {:<20} {:>8} rows  sha256 {}",
            table.table, table.rows, table.sha256
        );
    }
    Ok(())
}

/// A new console password for an admin: 16 characters without look-alikes, shown once.
async fn admin_password(
    config: &Config,
    store: &rollcall::store::Store,
    clock: &Clock,
    school: &str,
    username: &str,
) -> anyhow::Result<()> {
    use rollcall::credentials::generate::{CharClass, Generated, Policy};
    if let Some(staff) = store.staff_named(school, username).await?
        && staff.account.is_some()
    {
        anyhow::bail!(
            "{username} signs in to the console with their own account's password; \
             reset that account's password instead"
        );
    }
    let policy = Policy {
        generated: Generated::Characters {
            length: 16,
            classes: vec![CharClass::Lower, CharClass::Upper, CharClass::Digit],
            no_lookalikes: true,
        },
        ..Policy::default()
    };
    let hasher = rollcall::password::Hasher::per_core(config.argon2)?;
    let issued = rollcall::credentials::issue(&policy, &hasher).await?;
    store
        .set_admin_password(school, username, &issued.hash, clock.now())
        .await
        .map_err(|e| match e {
            rollcall::store::Error::NotFound => anyhow::anyhow!(
                "school `{school}` has no admin `{username}` (create one with `rollcall admin create`)"
            ),
            other => other.into(),
        })?;
    println!(
        "console password of admin {username} of school {school} (shown once; only its hash is stored):"
    );
    println!("{}", issued.password.as_str());
    store.close().await;
    Ok(())
}

/// `rollcall admin grant`: a role for a member of staff, audited as the command line's.
async fn grant(config: &Config, school: &str, username: &str, role: &str) -> anyhow::Result<()> {
    use rollcall::store::StaffRole;
    known_school(config, school)?;
    let role = StaffRole::parse(role)
        .with_context(|| format!("role `{role}` is not admin, tutor, read-only or none"))?;
    let provider = rollcall::provider(config, Clock::system()).await?;
    let granted = provider
        .grant(&rollcall::roster::Admin::cli(school), username, role)
        .await;
    provider.store.close().await;
    let granted = granted.map_err(|e| anyhow::anyhow!("{e}"))?;
    println!(
        "{} of school {school} is now {}{}",
        granted.user_name,
        match granted.role {
            StaffRole::ReadOnly => "read-only",
            StaffRole::None => "without a role",
            other => other.as_str(),
        },
        if granted.account.is_some() {
            "; they sign in to the console with their own account"
        } else {
            ""
        }
    );
    Ok(())
}

async fn import(
    config: &Config,
    school: &str,
    request: rollcall::roster::import::Request,
    slips_file: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    use rollcall::roster::import::Action;
    let school_config = known_school(config, school)?;
    let provider = rollcall::provider(config, Clock::system()).await?;
    let admin = rollcall::roster::Admin::cli(school);
    let outcome = provider.import(&admin, &request).await;
    provider.store.close().await;
    let outcome = outcome.map_err(|e| anyhow::anyhow!("{e}"))?;
    println!(
        "group {}{}",
        outcome.group.name,
        if outcome.group.new { " (new)" } else { "" }
    );
    for course in &outcome.group.courses {
        println!(
            "  course {} {}{}",
            course.code,
            course.title,
            if course.implied { " (implied)" } else { "" }
        );
    }
    for heading in &outcome.ignored_columns {
        println!("  ignored column: {heading}");
    }
    println!(
        "{:>5}  {:<8}  {:<20}  {:<30}  {}",
        "row",
        "action",
        "username",
        "name",
        if outcome.committed {
            "first password / notes"
        } else {
            "notes"
        }
    );
    for row in &outcome.rows {
        let action = match row.action {
            Action::Create => "create",
            Action::Created => "created",
            Action::Exists => "exists",
            Action::Error => "error",
        };
        let notes = match (&row.password, row.errors.is_empty()) {
            (Some(password), _) => password.to_string(),
            (None, false) => row
                .errors
                .iter()
                .map(|e| format!("{}: {}", e.field, e.message))
                .collect::<Vec<_>>()
                .join("; "),
            (None, true) => row.note.clone().unwrap_or_default(),
        };
        println!(
            "{:>5}  {:<8}  {:<20}  {:<30}  {notes}",
            row.row,
            action,
            row.user_name.as_deref().unwrap_or("-"),
            format!("{} {}", row.first_name, row.surname),
        );
    }
    println!(
        "{} to create, {} existing, {} with errors",
        outcome.counts.create, outcome.counts.exists, outcome.counts.error
    );
    if outcome.committed {
        if let Some(path) = slips_file {
            let slips: Vec<_> = outcome
                .rows
                .iter()
                .filter_map(|row| {
                    Some(rollcall::roster::slips::Slip {
                        school: school_config.name.clone(),
                        group: outcome.group.name.clone(),
                        first_name: row.first_name.clone(),
                        surname: row.surname.clone(),
                        user_name: row.user_name.clone()?,
                        password: row.password.clone()?,
                        login_url: school_config.login_url.clone().unwrap_or_default(),
                    })
                })
                .collect();
            write_private(path, rollcall::roster::slips::csv(&slips).as_bytes())?;
            println!("{} slips written to {}", slips.len(), path.display());
        }
        println!("committed");
    } else if request.dry_run {
        println!("dry run: nothing was written");
    } else {
        anyhow::bail!(
            "nothing was written: fix the rows with errors, or pass --partial to create the valid rows only"
        );
    }
    Ok(())
}

async fn collect_slips(
    config: &Config,
    school: &str,
    group: Option<&str>,
    format: SlipFormat,
    output: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    let school_config = known_school(config, school)?;
    let provider = rollcall::provider(config, Clock::system()).await?;
    let admin = rollcall::roster::Admin::cli(school);
    let taken = provider.collect_slips(&admin, group).await;
    provider.store.close().await;
    let taken = taken.map_err(|e| anyhow::anyhow!("{e}"))?;
    let text = match format {
        SlipFormat::Csv => rollcall::roster::slips::csv(&taken),
        SlipFormat::Html => rollcall::roster::slips::html(&school_config.name, &taken),
    };
    match output {
        Some(path) => {
            write_private(path, text.as_bytes())?;
            eprintln!("{} slips written to {}", taken.len(), path.display());
        }
        None => {
            print!("{text}");
            eprintln!("{} slips", taken.len());
        }
    }
    Ok(())
}

/// Writes a file only its owner can read: it holds first passwords.
fn write_private(path: &std::path::Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    // `mode` applies only to a new file: an existing one keeps its permissions otherwise.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("cannot make {} private", path.display()))?;
    file.write_all(bytes)
        .with_context(|| format!("cannot write {}", path.display()))?;
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
    let store = rollcall::store::redacted(&config.store.url);
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
        let usernames = &school.usernames;
        text.push_str(&format!(
            "    usernames: up to {} characters; a freed name is reused after {} days\n",
            usernames.max_length, usernames.reuse_after_days
        ));
        let policy = &school.passwords.policy;
        text.push_str(&format!(
            "    first passwords: {}, about {:.0} bits; chosen ones at least {} characters{}\n",
            describe(&policy.generated),
            policy.entropy_bits(),
            policy.min_length,
            if school.passwords.generate_for_scim {
                "; SCIM-created accounts get one too (pending slips)"
            } else {
                ""
            }
        ));
        for source in &school.sources {
            text.push_str(&format!(
                "    source {}: {} ({:?}), {}; anchor {}; {}; held when it would disable more \
                 than {}% or {} accounts; leavers deleted after {} days\n",
                source.id,
                source.location(),
                source
                    .ldap()
                    .map_or_else(|| source.kind().to_owned(), |l| format!("{:?}", l.dialect)),
                source.interval.map_or_else(
                    || "run on request".to_owned(),
                    |i| format!("every {} min", i.as_secs() / 60)
                ),
                source.attributes.anchor,
                if source.passwords {
                    "first passwords as pending slips"
                } else {
                    "no passwords"
                },
                source.max_disable_percent,
                source.max_disable_count,
                source.retention_days,
            ));
        }
        let courses = school.courses.courses();
        if !courses.is_empty() {
            text.push_str(&format!(
                "    courses: {}\n",
                courses
                    .iter()
                    .map(|c| c.code.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    text.push_str(&match &config.slips.key_env {
        Some(_) => format!("slip key: from {}\n", config::env::SLIP_KEY),
        None => format!(
            "slip key: {} ({})\n",
            config.slips.key_file.display(),
            if config.slips.key_file.exists() {
                "exists"
            } else {
                "created on first start"
            }
        ),
    });
    if config.schools.is_empty() {
        text.push_str("  (none: add [[schools]] entries before creating tokens)\n");
    }
    text
}

fn describe(generated: &rollcall::credentials::generate::Generated) -> String {
    use rollcall::credentials::generate::Generated;
    match generated {
        Generated::Characters {
            length,
            classes,
            no_lookalikes,
        } => format!(
            "{length} characters ({}){}",
            classes
                .iter()
                .map(|c| c.name())
                .collect::<Vec<_>>()
                .join(", "),
            if *no_lookalikes {
                ", no look-alikes"
            } else {
                ""
            }
        ),
        Generated::Words { words, digits } => format!("{words} words and {digits} digits"),
    }
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

// --- `rollcall webhooks` and the webhooks' part of `check-config`. ---

/// What `rollcall webhooks` shows or does.
enum WebhooksView {
    Status,
    Failed,
    /// Requeue the failed events (only the one with this id, when given).
    Replay(Option<String>),
}

async fn webhooks(config: &Config, view: WebhooksView, only: Option<&str>) -> anyhow::Result<()> {
    let store = rollcall::open_store(config).await?;
    let result = webhooks_in(config, &store, view, only).await;
    store.close().await;
    result
}

async fn webhooks_in(
    config: &Config,
    store: &rollcall::store::Store,
    view: WebhooksView,
    only: Option<&str>,
) -> anyhow::Result<()> {
    let now = Clock::system().now();
    let statuses = store
        .outbox_status(now - std::time::Duration::from_secs(24 * 3600))
        .await?;
    if let Some(id) = only
        && !config.webhooks.iter().any(|w| w.id == id)
        && !statuses.iter().any(|s| s.webhook == id)
    {
        anyhow::bail!(
            "no webhook `{id}` is configured{}",
            match config.webhooks.as_slice() {
                [] => " (the configuration has no [[webhooks]])".to_owned(),
                hooks => format!(
                    ": use {}",
                    hooks
                        .iter()
                        .map(|w| w.id.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }
        );
    }
    match view {
        WebhooksView::Status => {
            // Every configured webhook, then any the outbox still holds events of.
            let mut ids: Vec<&str> = config.webhooks.iter().map(|w| w.id.as_str()).collect();
            for status in &statuses {
                if !ids.contains(&status.webhook.as_str()) {
                    ids.push(&status.webhook);
                }
            }
            if ids.is_empty() {
                println!(
                    "no webhooks are configured ([[webhooks]] in {})",
                    cli_path(config)
                );
            }
            for id in ids
                .into_iter()
                .filter(|id| only.is_none_or(|only| only == *id))
            {
                let status = statuses
                    .iter()
                    .find(|s| s.webhook == id)
                    .cloned()
                    .unwrap_or_default();
                let configured = config.webhooks.iter().any(|w| w.id == id);
                println!(
                    "webhook {id}{}: {} pending{}, {} failed, {} delivered in the last 24 h",
                    if configured {
                        ""
                    } else {
                        " (no longer configured)"
                    },
                    status.pending,
                    status
                        .oldest_pending
                        .map(|at| format!(" (oldest {} ago)", age(now - at)))
                        .unwrap_or_default(),
                    status.failed,
                    status.delivered,
                );
                if let Some((error, at)) = &status.last_error {
                    println!(
                        "  last error {} ({} ago): {error}",
                        rollcall::store::format_time(*at),
                        age(now - *at)
                    );
                }
            }
        }
        WebhooksView::Failed => {
            let failed = store.failed_events(only).await?;
            if failed.is_empty() {
                println!("no failed events");
            }
            for event in failed {
                println!(
                    "{}\t{}\t{}\t{}\t{}\tsubject {}\t{} attempts\t{}",
                    event.seq,
                    event.webhook,
                    event.event_id,
                    event.event_type,
                    rollcall::store::format_time(event.created),
                    event.subject,
                    event.attempts,
                    event.last_error.as_deref().unwrap_or("-"),
                );
            }
        }
        WebhooksView::Replay(event) => {
            let requeued = store.replay_events(only, event.as_deref(), now).await?;
            if requeued == 0
                && let Some(event) = event
            {
                anyhow::bail!("no failed event {event}");
            }
            println!(
                "{requeued} failed event{} queued again; the running daemon sends {}",
                if requeued == 1 { "" } else { "s" },
                if requeued == 1 {
                    "it"
                } else {
                    "them, in order"
                }
            );
        }
    }
    Ok(())
}

/// A duration as people read it: 45 s, 12 min, 3 h, 2 d.
fn age(duration: time::Duration) -> String {
    let seconds = duration.whole_seconds().max(0);
    match seconds {
        0..120 => format!("{seconds} s"),
        120..7200 => format!("{} min", seconds / 60),
        7200..172_800 => format!("{} h", seconds / 3600),
        _ => format!("{} d", seconds / 86_400),
    }
}

/// `check-config`: the mail relay (its password and templates read; with `--connect`, a
/// connection made and the account signed in), and the password-reset settings.
async fn check_mail(config: &Config, connect: bool) -> anyhow::Result<()> {
    let Some(mail) = &config.mail else {
        println!("mail: none configured (nobody can reset their own password)");
        return Ok(());
    };
    let mailer = rollcall::mail::Mailer::new(mail)
        .map_err(|e| anyhow::anyhow!("{e}: `rollcall serve` would not start"))?;
    let reset = &config.password_reset;
    println!(
        "mail: relay {}, from {}, links to {}; templates {}",
        mailer.relay,
        mail.from,
        mail.public_url,
        mail.templates
            .as_ref()
            .map_or_else(|| "built in".to_owned(), |dir| dir.display().to_string())
    );
    println!(
        "password reset: links work {} min; {} requests per account and {} per address in {} s",
        reset.expire_after_secs.div_ceil(60),
        reset.account_requests,
        reset.address_requests,
        reset.window_secs
    );
    if connect {
        mailer
            .check_connection()
            .await
            .map_err(|e| anyhow::anyhow!("mail relay {}: {e}", mailer.relay))?;
        println!("mail: connected to {}", mailer.relay);
    }
    Ok(())
}

/// `check-config`: each webhook's events and schools, and whether its secret can be read (the
/// daemon refuses to start without it).
fn check_webhooks(config: &Config) -> anyhow::Result<()> {
    let mut unreadable = 0;
    for webhook in &config.webhooks {
        let events = if webhook.events.len() == rollcall::webhooks::event::EventType::ALL.len() {
            "every event".to_owned()
        } else {
            webhook
                .events
                .iter()
                .map(|e| e.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let schools = webhook
            .schools
            .as_ref()
            .map_or_else(|| "every school".to_owned(), |s| s.join(", "));
        let secret = match rollcall::webhooks::signing_key(webhook) {
            Ok(_) => "secret readable".to_owned(),
            Err(error) => {
                unreadable += 1;
                error.to_string()
            }
        };
        println!(
            "webhook {}: {events} of {schools}; {} attempts at most; {secret}",
            webhook.id, webhook.max_attempts
        );
    }
    if unreadable > 0 {
        anyhow::bail!(
            "{unreadable} webhook secret(s) cannot be read: `rollcall serve` would not start"
        );
    }
    Ok(())
}

/// `rollcall import-oneroster`.
struct OneRosterImport {
    school: String,
    source: Option<String>,
    org: Option<String>,
    path: PathBuf,
    mode: sync::Mode,
    json: bool,
}

/// Runs the school's OneRoster source (or a default one, `oneroster`) once on `path` instead
/// of its configured one: the same run as `rollcall sync`, lease, threshold and record included.
async fn import_oneroster(mut config: Config, options: OneRosterImport) -> anyhow::Result<()> {
    use rollcall::config::{Connection, Source};
    const DEFAULT: &str = "oneroster";
    let shown = cli_path(&config);
    let school = config
        .schools
        .iter_mut()
        .find(|s| s.id == options.school)
        .with_context(|| {
            format!(
                "no school `{}` in {shown}: declare it under [[schools]] first",
                options.school
            )
        })?;
    let ours: Vec<String> = school
        .sources
        .iter()
        .filter(|s| matches!(s.connection, Connection::OneRoster(_)))
        .map(|s| s.id.clone())
        .collect();
    let id = match (&options.source, ours.as_slice()) {
        (Some(id), _) if ours.contains(id) => id.clone(),
        (Some(id), _) if school.source(id).is_some() => {
            anyhow::bail!(
                "source `{id}` of school `{}` is not a OneRoster source",
                school.id
            )
        }
        (Some(id), _) => anyhow::bail!("school `{}` has no source `{id}`", school.id),
        (None, [one]) => one.clone(),
        (None, []) if school.source(DEFAULT).is_some() => anyhow::bail!(
            "school `{}` has a source `{DEFAULT}` that is not a OneRoster source: declare a \
             OneRoster source and name it with --source",
            school.id
        ),
        (None, []) => {
            let source = Source::default_oneroster(DEFAULT, &options.path, &school.courses)
                .map_err(|e| anyhow::anyhow!("the default OneRoster source: {e}"))?;
            school.sources.push(source);
            DEFAULT.to_owned()
        }
        (None, _) => anyhow::bail!(
            "school `{}` has several OneRoster sources ({}): name one with --source",
            school.id,
            ours.join(", ")
        ),
    };
    for source in &mut school.sources {
        if source.id == id
            && let Connection::OneRoster(roster) = &mut source.connection
        {
            roster.path = options.path.clone();
            if let Some(org) = &options.org {
                roster.org = Some(org.clone());
            }
        }
    }
    let school_id = school.id.clone();
    let provider = rollcall::provider(&config, Clock::system()).await?;
    let progress: sync::Progress = &|step| eprintln!("{step}");
    let result = sync::run(&provider, &school_id, &id, options.mode, progress).await;
    provider.store.close().await;
    let report = result?;
    if options.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!(
            "{}",
            describe_report(&report, options.mode == sync::Mode::DryRun)
        );
    }
    if let Some(reason) = &report.held_because {
        let source = options
            .source
            .as_ref()
            .map(|s| format!(" --source {s}"))
            .unwrap_or_default();
        anyhow::bail!(
            "the plan is held: {reason}. Check it with `rollcall import-oneroster --school \
             {school_id}{source} --dry-run {path}`, then apply it with `--approve` instead of \
             `--dry-run`",
            path = options.path.display()
        );
    }
    Ok(())
}
