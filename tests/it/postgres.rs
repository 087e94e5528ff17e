//! The PostgreSQL side of the harness: with `ROLLCALL_TEST_STORE=postgres`, each `TestApp` gets
//! a database of its own on the server named by `ROLLCALL_TEST_POSTGRES_URL` (default
//! [`DEFAULT_URL`]), created empty (the daemon migrates it) and dropped when the app stops or is
//! dropped, even when its test panics.

use std::time::Duration;

use sqlx::{Connection, PgConnection};

/// The server the tests use when `ROLLCALL_TEST_POSTGRES_URL` is unset.
pub const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// Every test database's name starts with this.
pub const PREFIX: &str = "rollcall_test_";

/// The maintenance URL: the server and a database to connect to for `CREATE DATABASE`.
pub fn server_url() -> String {
    std::env::var("ROLLCALL_TEST_POSTGRES_URL")
        .ok()
        .filter(|url| !url.is_empty())
        .unwrap_or_else(|| DEFAULT_URL.to_owned())
}

/// A database of its own for one test; dropped (`WITH (FORCE)`) by [`TestDatabase::drop_now`]
/// or, failing that, on drop.
pub struct TestDatabase {
    /// `rollcall_test_<32 hex digits>`
    pub name: String,
    /// The URL of this database, for `[store] url`.
    pub url: String,
    server: String,
    dropped: bool,
}

impl TestDatabase {
    /// Creates a fresh, empty database. Panics with a clear message when the server does not
    /// answer: a test run that asked for PostgreSQL must not pass without it.
    pub async fn create() -> TestDatabase {
        let server = server_url();
        let name = format!("{PREFIX}{}", uuid::Uuid::new_v4().simple());
        let mut url = reqwest::Url::parse(&server).unwrap_or_else(|e| {
            panic!(
                "ROLLCALL_TEST_POSTGRES_URL is not a URL ({e}): {}",
                redacted(&server)
            )
        });
        url.set_path(&name);
        let mut connection = connect(&server).await;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut connection)
            .await
            .unwrap_or_else(|e| panic!("CREATE DATABASE {name} on {}: {e}", redacted(&server)));
        let _ = connection.close().await;
        TestDatabase {
            name,
            url: url.into(),
            server,
            dropped: false,
        }
    }

    /// Drops the database now (closing every connection to it). The caller closes its own pool
    /// first; `FORCE` ends any connection left.
    pub async fn drop_now(mut self) {
        self.dropped = true;
        if let Err(e) = drop_database(&self.server, &self.name).await {
            panic!("DROP DATABASE {}: {e}", self.name);
        }
    }

    /// Whether any row of any table holds `needle`, as text (BYTEA columns print as hex in a
    /// row's text, so the needle's hex form counts too). Runs on a thread of its own with its own
    /// connection, so that it can be called from a test's async code without awaiting.
    pub fn holds(&self, needle: &str) -> bool {
        let url = self.url.clone();
        let needle = needle.to_owned();
        std::thread::spawn(move || {
            runtime().block_on(async move {
                let mut connection = connect(&url).await;
                let tables: Vec<String> = sqlx::query_scalar(
                    "SELECT table_name::text FROM information_schema.tables \
                     WHERE table_schema = 'public' AND table_type = 'BASE TABLE'",
                )
                .fetch_all(&mut connection)
                .await
                .expect("list tables");
                assert!(!tables.is_empty(), "no tables in {url}");
                let hex: String = needle.bytes().map(|b| format!("{b:02x}")).collect();
                let mut found = false;
                for table in tables {
                    let quoted = format!("\"{}\"", table.replace('"', "\"\""));
                    let count: i64 = sqlx::query_scalar(&format!(
                        "SELECT count(*) FROM public.{quoted} t \
                         WHERE strpos(t::text, $1) > 0 OR strpos(t::text, $2) > 0"
                    ))
                    .bind(&needle)
                    .bind(&hex)
                    .fetch_one(&mut connection)
                    .await
                    .unwrap_or_else(|e| panic!("search {table}: {e}"));
                    found |= count > 0;
                }
                let _ = connection.close().await;
                found
            })
        })
        .join()
        .expect("search the store")
    }
}

impl Drop for TestDatabase {
    /// A test that panics never stops its app: drop the database here. `Drop` cannot await, so
    /// this runs on a thread of its own with its own runtime, and waits for it. Never panics
    /// (a panic while unwinding aborts the run): a failure is printed.
    fn drop(&mut self) {
        if self.dropped {
            return;
        }
        self.dropped = true;
        let server = self.server.clone();
        let name = self.name.clone();
        let result = std::thread::spawn(move || {
            runtime().block_on(async { drop_database(&server, &name).await })
        })
        .join();
        match result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("warning: DROP DATABASE {}: {e}", self.name),
            Err(_) => eprintln!("warning: DROP DATABASE {} panicked", self.name),
        }
    }
}

async fn drop_database(server: &str, name: &str) -> Result<(), sqlx::Error> {
    let mut connection = PgConnection::connect(server).await?;
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut connection)
        .await?;
    connection.close().await
}

/// Connects, or panics saying that the server is unreachable and how to point at another.
async fn connect(url: &str) -> PgConnection {
    match tokio::time::timeout(Duration::from_secs(10), PgConnection::connect(url)).await {
        Ok(Ok(connection)) => connection,
        Ok(Err(e)) => unreachable_server(url, &e.to_string()),
        Err(_) => unreachable_server(url, "no answer in 10 s"),
    }
}

fn unreachable_server(url: &str, why: &str) -> ! {
    panic!(
        "ROLLCALL_TEST_STORE=postgres, but PostgreSQL at {} does not answer ({why}); start it, \
         point ROLLCALL_TEST_POSTGRES_URL at one, or unset ROLLCALL_TEST_STORE",
        redacted(url)
    )
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn redacted(url: &str) -> String {
    rollcall::store::redacted(url)
}
