//! Moving schools from one store to another (`rollcall migrate-store`): SQLite to PostgreSQL
//! when a school joins a trust's shared database, or back.
//!
//! Every table is copied row by row, as stored (documents byte for byte, hashes, sealed slips,
//! audit history with its ids), for the schools asked for. Browser sessions and sync leases
//! are not: they belong to running processes (admins sign in again). The whole copy is one transaction
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

fn decode_sqlite(row: &sqlx::sqlite::SqliteRow, table: &Table) -> Result<Vec<Value>, sqlx::Error> {
    let mut out = Vec::with_capacity(table.columns.len());
    for (i, (_, kind)) in table.columns.iter().enumerate() {
        out.push(match kind {
            Text => row
                .try_get::<Option<String>, _>(i)?
                .map_or(Value::Null, Value::Text),
            Int => row
                .try_get::<Option<i64>, _>(i)?
                .map_or(Value::Null, Value::Int),
            Bool => row
                .try_get::<Option<bool>, _>(i)?
                .map_or(Value::Null, Value::Bool),
            Bytes => row
                .try_get::<Option<Vec<u8>>, _>(i)?
                .map_or(Value::Null, Value::Bytes),
        });
    }
    Ok(out)
}

fn decode_postgres(row: &sqlx::postgres::PgRow, table: &Table) -> Result<Vec<Value>, sqlx::Error> {
    let mut out = Vec::with_capacity(table.columns.len());
    for (i, (_, kind)) in table.columns.iter().enumerate() {
        out.push(match kind {
            Text => row
                .try_get::<Option<String>, _>(i)?
                .map_or(Value::Null, Value::Text),
            Int => row
                .try_get::<Option<i64>, _>(i)?
                .map_or(Value::Null, Value::Int),
            Bool => row
                .try_get::<Option<bool>, _>(i)?
                .map_or(Value::Null, Value::Bool),
            Bytes => row
                .try_get::<Option<Vec<u8>>, _>(i)?
                .map_or(Value::Null, Value::Bytes),
        });
    }
    Ok(out)
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
    match (from, to) {
        (Store::Sqlite(from), Store::Postgres(to)) => sqlite_to_postgres(from, to, schools).await,
        (Store::Postgres(from), Store::Sqlite(to)) => postgres_to_sqlite(from, to, schools).await,
        _ => Err(CopyError::SameBackend),
    }
}

async fn sqlite_to_postgres(
    from: &super::sqlite::Store,
    to: &super::postgres::Store,
    schools: &[String],
) -> Result<Vec<Copied>, CopyError> {
    let schools = match schools {
        [] => {
            sqlx::query_scalar::<_, String>("SELECT id FROM schools ORDER BY id")
                .fetch_all(from.pool())
                .await?
        }
        some => some.to_vec(),
    };
    let mut tx = to.pool().begin().await?;
    let mut copied = Vec::new();
    for table in TABLES {
        let mut source_rows = Vec::new();
        for school in &schools {
            let rows = sqlx::query(&select_sql(table, "?1"))
                .bind(school)
                .fetch_all(from.pool())
                .await?;
            if table.name == "schools" && rows.is_empty() {
                return Err(CopyError::NoSuchSchool(school.clone()));
            }
            let present: i64 = sqlx::query_scalar(&format!(
                "SELECT count(*) FROM {} WHERE {}",
                table.name,
                table.of_school.replace("$school", "$1")
            ))
            .bind(school)
            .fetch_one(&mut *tx)
            .await?;
            // The school's name may be there already (the target's configuration lists it).
            if present > 0 && table.name != "schools" {
                return Err(CopyError::NotEmpty {
                    school: school.clone(),
                    table: table.name,
                });
            }
            for row in &rows {
                source_rows.push(decode_sqlite(row, table)?);
            }
        }
        write_postgres(&mut tx, table, &source_rows).await?;
        let mut target_rows = Vec::new();
        for school in &schools {
            for row in sqlx::query(&select_sql(table, "$1"))
                .bind(school)
                .fetch_all(&mut *tx)
                .await?
            {
                target_rows.push(decode_postgres(&row, table)?);
            }
        }
        copied.push(verified(table, &source_rows, &target_rows)?);
    }
    // Identity columns continue after the copied ids.
    for table in ["audit_events", "sync_runs"] {
        sqlx::query(&format!(
            "SELECT setval(pg_get_serial_sequence('{table}', 'id'), \
             GREATEST((SELECT max(id) FROM {table}), 1))"
        ))
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(copied)
}

async fn write_postgres(
    tx: &mut sqlx::Transaction<'static, Postgres>,
    table: &Table,
    rows: &[Vec<Value>],
) -> Result<(), sqlx::Error> {
    let columns: Vec<&str> = table.columns.iter().map(|(name, _)| *name).collect();
    // PostgreSQL takes at most 65,535 parameters per statement.
    for chunk in rows.chunks((60_000 / columns.len()).max(1)) {
        let mut insert: QueryBuilder<Postgres> = QueryBuilder::new(format!(
            "INSERT INTO {} ({}) ",
            table.name,
            columns.join(", ")
        ));
        if table.columns[0] == ("id", Int) {
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
        if table.name == "schools" {
            insert.push(" ON CONFLICT (id) DO UPDATE SET name = excluded.name");
        }
        insert.build().execute(&mut **tx).await?;
    }
    Ok(())
}

async fn postgres_to_sqlite(
    from: &super::postgres::Store,
    to: &super::sqlite::Store,
    schools: &[String],
) -> Result<Vec<Copied>, CopyError> {
    let schools = match schools {
        [] => {
            sqlx::query_scalar::<_, String>("SELECT id FROM schools ORDER BY id")
                .fetch_all(from.pool())
                .await?
        }
        some => some.to_vec(),
    };
    let mut tx = to.pool().begin_with("BEGIN IMMEDIATE").await?;
    let mut copied = Vec::new();
    for table in TABLES {
        let mut source_rows = Vec::new();
        for school in &schools {
            let rows = sqlx::query(&select_sql(table, "$1"))
                .bind(school)
                .fetch_all(from.pool())
                .await?;
            if table.name == "schools" && rows.is_empty() {
                return Err(CopyError::NoSuchSchool(school.clone()));
            }
            let present: i64 = sqlx::query_scalar(&format!(
                "SELECT count(*) FROM {} WHERE {}",
                table.name,
                table.of_school.replace("$school", "?1")
            ))
            .bind(school)
            .fetch_one(&mut *tx)
            .await?;
            if present > 0 && table.name != "schools" {
                return Err(CopyError::NotEmpty {
                    school: school.clone(),
                    table: table.name,
                });
            }
            for row in &rows {
                source_rows.push(decode_postgres(row, table)?);
            }
        }
        let columns: Vec<&str> = table.columns.iter().map(|(name, _)| *name).collect();
        // SQLite takes at most 32,766 parameters per statement.
        for chunk in source_rows.chunks((30_000 / columns.len()).max(1)) {
            let mut insert: QueryBuilder<Sqlite> = QueryBuilder::new(format!(
                "INSERT INTO {} ({}) ",
                table.name,
                columns.join(", ")
            ));
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
            if table.name == "schools" {
                insert.push(" ON CONFLICT (id) DO UPDATE SET name = excluded.name");
            }
            insert.build().execute(&mut *tx).await?;
        }
        let mut target_rows = Vec::new();
        for school in &schools {
            for row in sqlx::query(&select_sql(table, "?1"))
                .bind(school)
                .fetch_all(&mut *tx)
                .await?
            {
                target_rows.push(decode_sqlite(&row, table)?);
            }
        }
        copied.push(verified(table, &source_rows, &target_rows)?);
    }
    tx.commit().await?;
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
