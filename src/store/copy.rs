//! Moving schools from one store to another (`rollcall migrate-store`): SQLite to PostgreSQL
//! when a school joins a trust's shared database, or back.
//!
//! Every table is copied row by row, as stored (documents byte for byte, hashes, sealed slips,
//! audit history with its ids), for the schools asked for. Browser sessions and sync leases
//! are not: they belong to running processes (admins sign in again); nor is the webhook outbox,
//! which the source's daemon delivers (let it drain first). The whole copy is one transaction
//! on the target, committed only after each table's rows have been read back from it and found
//! equal to the source's: same count, same SHA-256 over the rows in key order. A target that
//! already holds data of one of these schools is refused before anything is written.

use sha2::{Digest, Sha256};
use sqlx::{Postgres, QueryBuilder, Row, Sqlite};

use super::{Error, Result, Store};

/// How a column's values travel.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Type {
    Text,
    /// INTEGER on SQLite, BIGINT on PostgreSQL.
    Int,
    /// INTEGER 0/1 on SQLite, BOOLEAN on PostgreSQL.
    Bool,
    /// BLOB on SQLite, BYTEA on PostgreSQL.
    Bytes,
}

/// A table: its name, its columns, the condition selecting one school's rows (`$school`
/// stands for the school id), and the key that orders its rows. In an order that respects
/// foreign keys.
struct Table {
    name: &'static str,
    columns: &'static [(&'static str, Type)],
    of_school: &'static str,
    key: &'static str,
}

use Type::*;

const TABLES: &[Table] = &[
    Table {
        name: "schools",
        columns: &[("id", Text), ("name", Text)],
        of_school: "id = $school",
        key: "id",
    },
    Table {
        name: "admins",
        columns: &[
            ("id", Text),
            ("school_id", Text),
            ("user_name", Text),
            ("user_name_key", Text),
            ("created_at", Text),
            ("password_hash", Text),
            ("password_set_at", Text),
            ("role", Text),
            ("user_id", Text),
        ],
        of_school: "school_id = $school",
        key: "id",
    },
    Table {
        name: "tokens",
        columns: &[
            ("id", Text),
            ("school_id", Text),
            ("source", Text),
            ("hash", Bytes),
            ("created_at", Text),
            ("revoked_at", Text),
            ("admin_id", Text),
        ],
        of_school: "school_id = $school",
        key: "id",
    },
    Table {
        name: "users",
        columns: &[
            ("id", Text),
            ("school_id", Text),
            ("source", Text),
            ("user_name", Text),
            ("user_name_key", Text),
            ("external_id", Text),
            ("active", Bool),
            ("data", Text),
            ("password_hash", Text),
            ("must_change", Bool),
            ("created_at", Text),
            ("modified_at", Text),
            ("version", Int),
            ("password_set_at", Text),
        ],
        of_school: "school_id = $school",
        key: "id",
    },
    Table {
        name: "user_emails",
        columns: &[
            ("user_id", Text),
            ("school_id", Text),
            ("type_key", Text),
            ("value_key", Text),
        ],
        of_school: "school_id = $school",
        key: "user_id, value_key, type_key",
    },
    Table {
        name: "groups",
        columns: &[
            ("id", Text),
            ("school_id", Text),
            ("source", Text),
            ("display_name", Text),
            ("display_name_key", Text),
            ("external_id", Text),
            ("data", Text),
            ("created_at", Text),
            ("modified_at", Text),
            ("version", Int),
        ],
        of_school: "school_id = $school",
        key: "id",
    },
    Table {
        name: "group_members",
        columns: &[
            ("group_id", Text),
            ("member_id", Text),
            ("member_type", Text),
        ],
        of_school: "group_id IN (SELECT id FROM groups WHERE school_id = $school)",
        key: "group_id, member_id",
    },
    Table {
        name: "audit_events",
        columns: &[
            ("id", Int),
            ("school_id", Text),
            ("at", Text),
            ("actor", Text),
            ("source", Text),
            ("request_id", Text),
            ("action", Text),
            ("resource_type", Text),
            ("resource_id", Text),
            ("before", Text),
            ("after", Text),
        ],
        of_school: "school_id = $school",
        key: "id",
    },
    Table {
        name: "retired_user_names",
        columns: &[
            ("school_id", Text),
            ("user_name_key", Text),
            ("retired_at", Text),
        ],
        of_school: "school_id = $school",
        key: "user_name_key",
    },
    Table {
        name: "pending_slips",
        columns: &[
            ("user_id", Text),
            ("school_id", Text),
            ("sealed", Bytes),
            ("created_at", Text),
            ("expires_at", Text),
        ],
        of_school: "school_id = $school",
        key: "user_id",
    },
    Table {
        name: "sync_leavers",
        columns: &[
            ("user_id", Text),
            ("school_id", Text),
            ("source", Text),
            ("since", Text),
        ],
        of_school: "school_id = $school",
        key: "user_id",
    },
    Table {
        name: "sync_held_plans",
        columns: &[
            ("school_id", Text),
            ("source", Text),
            ("plan", Text),
            ("created_at", Text),
        ],
        of_school: "school_id = $school",
        key: "source",
    },
    Table {
        name: "sync_runs",
        columns: &[
            ("id", Int),
            ("school_id", Text),
            ("source", Text),
            ("started_at", Text),
            ("finished_at", Text),
            ("outcome", Text),
            ("report", Text),
        ],
        of_school: "school_id = $school",
        key: "id",
    },
    Table {
        name: "sync_entries",
        columns: &[
            ("school_id", Text),
            ("source", Text),
            ("anchor", Text),
            ("dn_key", Text),
            ("uid_key", Text),
            ("digest", Text),
        ],
        of_school: "school_id = $school",
        key: "source, anchor",
    },
    Table {
        name: "sync_cursors",
        columns: &[
            ("school_id", Text),
            ("source", Text),
            ("marker", Text),
            ("full_at", Text),
        ],
        of_school: "school_id = $school",
        key: "source",
    },
];

/// One value, as both backends can bind and both sides compare.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Null,
    Text(String),
    Int(i64),
    Bool(bool),
    Bytes(Vec<u8>),
}

impl Value {
    /// Feeds a checksum: type-tagged and length-prefixed, so no two rows hash alike by accident.
    fn digest(&self, hasher: &mut Sha256) {
        match self {
            Value::Null => hasher.update(b"n"),
            Value::Text(text) => {
                hasher.update(b"t");
                hasher.update((text.len() as u64).to_le_bytes());
                hasher.update(text.as_bytes());
            }
            Value::Int(n) => {
                hasher.update(b"i");
                hasher.update(n.to_le_bytes());
            }
            Value::Bool(b) => hasher.update(if *b { b"T" } else { b"F" }),
            Value::Bytes(bytes) => {
                hasher.update(b"b");
                hasher.update((bytes.len() as u64).to_le_bytes());
                hasher.update(bytes);
            }
        }
    }
}

/// What was copied of one table: its row count and the checksum both sides agree on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copied {
    pub table: &'static str,
    pub rows: usize,
    pub sha256: String,
}

#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("the source store has no school `{0}`")]
    NoSuchSchool(String),
    #[error(
        "the target store already holds data of school `{school}` (in {table}); nothing was copied"
    )]
    NotEmpty { school: String, table: &'static str },
    #[error(
        "after copying, {table} differs: {source_rows} rows (sha256 {source_sum}) in the source, \
         {target_rows} (sha256 {target_sum}) in the target; nothing was kept"
    )]
    Differs {
        table: &'static str,
        source_rows: usize,
        source_sum: String,
        target_rows: usize,
        target_sum: String,
    },
    #[error(
        "copying from SQLite to SQLite or PostgreSQL to PostgreSQL is not supported: copy the file, or use pg_dump"
    )]
    SameBackend,
    #[error(transparent)]
    Store(#[from] Error),
}

impl From<sqlx::Error> for CopyError {
    fn from(error: sqlx::Error) -> CopyError {
        CopyError::Store(Error::Db(error))
    }
}

fn select_sql(table: &Table, marker: &str) -> String {
    let columns: Vec<&str> = table.columns.iter().map(|(name, _)| *name).collect();
    format!(
        "SELECT {} FROM {} WHERE {} ORDER BY {}",
        columns.join(", "),
        table.name,
        table.of_school.replace("$school", marker),
        table.key
    )
}

/// A row's values by the table's column types; the same body for either backend's rows.
macro_rules! decode {
    ($row:expr, $table:expr) => {{
        let mut out = Vec::with_capacity($table.columns.len());
        for (i, (_, kind)) in $table.columns.iter().enumerate() {
            out.push(match kind {
                Text => $row
                    .try_get::<Option<String>, _>(i)?
                    .map_or(Value::Null, Value::Text),
                Int => $row
                    .try_get::<Option<i64>, _>(i)?
                    .map_or(Value::Null, Value::Int),
                Bool => $row
                    .try_get::<Option<bool>, _>(i)?
                    .map_or(Value::Null, Value::Bool),
                Bytes => $row
                    .try_get::<Option<Vec<u8>>, _>(i)?
                    .map_or(Value::Null, Value::Bytes),
            });
        }
        Ok::<_, sqlx::Error>(out)
    }};
}

/// An INSERT of `rows` into `table` for either backend's query builder, `limit` parameters
/// per statement at most (PostgreSQL takes 65,535, SQLite 32,766).
macro_rules! insert {
    ($db:ty, $conn:expr, $table:expr, $rows:expr, $limit:expr) => {{
        let columns: Vec<&str> = $table.columns.iter().map(|(name, _)| *name).collect();
        for chunk in $rows.chunks(($limit / columns.len()).max(1)) {
            let mut insert: QueryBuilder<$db> = QueryBuilder::new(format!(
                "INSERT INTO {} ({}) ",
                $table.name,
                columns.join(", ")
            ));
            if <$db as sqlx::Database>::NAME == "PostgreSQL" && $table.columns[0] == ("id", Int) {
                insert.push("OVERRIDING SYSTEM VALUE ");
            }
            insert.push_values(chunk, |mut values, row| {
                for value in row {
                    match value {
                        Value::Null => values.push_bind(None::<String>),
                        Value::Text(text) => values.push_bind(text.clone()),
                        Value::Int(n) => values.push_bind(*n),
                        Value::Bool(b) => values.push_bind(*b),
                        Value::Bytes(bytes) => values.push_bind(bytes.clone()),
                    };
                }
            });
            // The target's configuration may have named the school already.
            if $table.name == "schools" {
                insert.push(" ON CONFLICT (id) DO UPDATE SET name = excluded.name");
            }
            insert.build().execute(&mut **$conn).await?;
        }
    }};
}

/// The store copied from.
enum Source<'a> {
    Sqlite(&'a sqlx::SqlitePool),
    Postgres(&'a sqlx::PgPool),
}

impl Source<'_> {
    async fn schools(&self) -> Result<Vec<String>, sqlx::Error> {
        let sql = "SELECT id FROM schools ORDER BY id";
        match self {
            Source::Sqlite(pool) => sqlx::query_scalar(sql).fetch_all(*pool).await,
            Source::Postgres(pool) => sqlx::query_scalar(sql).fetch_all(*pool).await,
        }
    }

    async fn rows(&self, table: &Table, school: &str) -> Result<Vec<Vec<Value>>, sqlx::Error> {
        match self {
            Source::Sqlite(pool) => {
                let rows = sqlx::query(&select_sql(table, "?1"))
                    .bind(school)
                    .fetch_all(*pool)
                    .await?;
                rows.iter().map(|row| decode!(row, table)).collect()
            }
            Source::Postgres(pool) => {
                let rows = sqlx::query(&select_sql(table, "$1"))
                    .bind(school)
                    .fetch_all(*pool)
                    .await?;
                rows.iter().map(|row| decode!(row, table)).collect()
            }
        }
    }
}

/// The store copied to: one transaction, committed only when every table is verified.
enum Target {
    Sqlite(sqlx::Transaction<'static, Sqlite>),
    Postgres(sqlx::Transaction<'static, Postgres>),
}

impl Target {
    /// How many of the school's rows the table holds already.
    async fn present(&mut self, table: &Table, school: &str) -> Result<i64, sqlx::Error> {
        let sql = |marker| {
            format!(
                "SELECT count(*) FROM {} WHERE {}",
                table.name,
                table.of_school.replace("$school", marker)
            )
        };
        match self {
            Target::Sqlite(tx) => {
                sqlx::query_scalar(&sql("?1"))
                    .bind(school)
                    .fetch_one(&mut **tx)
                    .await
            }
            Target::Postgres(tx) => {
                sqlx::query_scalar(&sql("$1"))
                    .bind(school)
                    .fetch_one(&mut **tx)
                    .await
            }
        }
    }

    async fn write(&mut self, table: &Table, rows: &[Vec<Value>]) -> Result<(), sqlx::Error> {
        match self {
            Target::Sqlite(tx) => insert!(Sqlite, tx, table, rows, 30_000),
            Target::Postgres(tx) => insert!(Postgres, tx, table, rows, 60_000),
        }
        Ok(())
    }

    /// The school's rows as written, read back inside the transaction.
    async fn rows(&mut self, table: &Table, school: &str) -> Result<Vec<Vec<Value>>, sqlx::Error> {
        match self {
            Target::Sqlite(tx) => {
                let rows = sqlx::query(&select_sql(table, "?1"))
                    .bind(school)
                    .fetch_all(&mut **tx)
                    .await?;
                rows.iter().map(|row| decode!(row, table)).collect()
            }
            Target::Postgres(tx) => {
                let rows = sqlx::query(&select_sql(table, "$1"))
                    .bind(school)
                    .fetch_all(&mut **tx)
                    .await?;
                rows.iter().map(|row| decode!(row, table)).collect()
            }
        }
    }

    async fn commit(self) -> Result<(), sqlx::Error> {
        match self {
            Target::Sqlite(tx) => tx.commit().await,
            Target::Postgres(mut tx) => {
                // Identity columns continue after the copied ids.
                for table in ["audit_events", "sync_runs"] {
                    sqlx::query(&format!(
                        "SELECT setval(pg_get_serial_sequence('{table}', 'id'), \
                         GREATEST((SELECT max(id) FROM {table}), 1))"
                    ))
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await
            }
        }
    }
}

/// The SHA-256 of a table's rows whatever their order (the backends collate text keys
/// differently): each row is hashed, the row hashes are sorted and hashed together.
fn checksum(rows: &[Vec<Value>]) -> String {
    let mut row_hashes: Vec<[u8; 32]> = rows
        .iter()
        .map(|row| {
            let mut hasher = Sha256::new();
            for value in row {
                value.digest(&mut hasher);
            }
            hasher.finalize().into()
        })
        .collect();
    row_hashes.sort_unstable();
    let mut hasher = Sha256::new();
    for row in &row_hashes {
        hasher.update(row);
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Copies the schools (all of the source's when `schools` is empty) from `from` to `to`, and
/// returns each table's count and checksum.
pub async fn copy(from: &Store, to: &Store, schools: &[String]) -> Result<Vec<Copied>, CopyError> {
    let (source, mut target) = match (from, to) {
        (Store::Sqlite(from), Store::Postgres(to)) => (
            Source::Sqlite(from.pool()),
            Target::Postgres(to.pool().begin().await?),
        ),
        (Store::Postgres(from), Store::Sqlite(to)) => (
            Source::Postgres(from.pool()),
            Target::Sqlite(to.pool().begin_with("BEGIN IMMEDIATE").await?),
        ),
        _ => return Err(CopyError::SameBackend),
    };
    let schools = match schools {
        [] => source.schools().await?,
        some => some.to_vec(),
    };
    let mut copied = Vec::new();
    for table in TABLES {
        let mut source_rows = Vec::new();
        for school in &schools {
            let rows = source.rows(table, school).await?;
            if table.name == "schools" && rows.is_empty() {
                return Err(CopyError::NoSuchSchool(school.clone()));
            }
            // The school's name may be there already (the target's configuration lists it).
            if table.name != "schools" && target.present(table, school).await? > 0 {
                return Err(CopyError::NotEmpty {
                    school: school.clone(),
                    table: table.name,
                });
            }
            source_rows.extend(rows);
        }
        target.write(table, &source_rows).await?;
        let mut target_rows = Vec::new();
        for school in &schools {
            target_rows.extend(target.rows(table, school).await?);
        }
        copied.push(verified(table, &source_rows, &target_rows)?);
    }
    target.commit().await?;
    Ok(copied)
}

fn verified(
    table: &'static Table,
    source: &[Vec<Value>],
    target: &[Vec<Value>],
) -> Result<Copied, CopyError> {
    let (source_sum, target_sum) = (checksum(source), checksum(target));
    if source.len() != target.len() || source_sum != target_sum {
        return Err(CopyError::Differs {
            table: table.name,
            source_rows: source.len(),
            source_sum,
            target_rows: target.len(),
            target_sum,
        });
    }
    Ok(Copied {
        table: table.name,
        rows: source.len(),
        sha256: source_sum,
    })
}
