//! `user.entitlements_changed` on SQLite: watching the students a change touches, and
//! settling their events before the transaction commits (see [`crate::store::entitlements`]).
//!
//! The watch list is a temporary table of the connection. Its rows are written and erased
//! inside the write transaction, so a transaction that rolls back leaves none behind.

use std::collections::HashMap;

use sqlx::{Sqlite, Transaction};
use time::OffsetDateTime;

use super::super::entitlements::{self, Student};
use super::super::outbox::Outbox;
use super::{Result, Scope, format_time, write_outbox};
use crate::webhooks::event::Change;

const CREATE: &str = "CREATE TEMP TABLE IF NOT EXISTS entitlement_watch \
     (user_id TEXT PRIMARY KEY, before TEXT NOT NULL)";

/// Records, for each student the change touches and this transaction has not yet watched,
/// the codes they had before it. Reads nothing unless a webhook wants the event.
pub(super) async fn watch(
    tx: &mut Transaction<'static, Sqlite>,
    outbox: &Outbox,
    scope: &Scope,
    change: &Change<'_>,
) -> Result<()> {
    if !outbox.wants_entitlements(&scope.school_id) {
        return Ok(());
    }
    let Some(touched) = entitlements::touched(change)? else {
        return Ok(());
    };
    let students = students(tx, scope, &touched.ids()).await?;
    if students.is_empty() {
        return Ok(());
    }
    sqlx::query(CREATE).execute(&mut **tx).await?;
    let catalogue = outbox.catalogue(&scope.school_id);
    // One statement for every student (a JSON array of `[id, codes before]`); a student
    // already watched keeps the codes they had when the transaction first touched them.
    let rows: Vec<serde_json::Value> = students
        .iter()
        .map(|student| {
            let before = entitlements::codes_before(&touched, student, &catalogue);
            serde_json::json!([student.id, serde_json::Value::from_iter(before).to_string()])
        })
        .collect();
    sqlx::query(
        "INSERT INTO entitlement_watch (user_id, before) \
         SELECT json_extract(j.value, '$[0]'), json_extract(j.value, '$[1]') \
         FROM json_each(?1) j WHERE true ON CONFLICT (user_id) DO NOTHING",
    )
    .bind(serde_json::Value::Array(rows).to_string())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Writes one event for each watched student whose codes differ from before the
/// transaction, and empties the watch list. Call it just before committing a write that may
/// have changed a group.
pub(super) async fn settle(
    tx: &mut Transaction<'static, Sqlite>,
    outbox: &Outbox,
    scope: &Scope,
    at: OffsetDateTime,
) -> Result<()> {
    if !outbox.wants_entitlements(&scope.school_id) {
        return Ok(());
    }
    let exists: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM sqlite_temp_master WHERE name = 'entitlement_watch')",
    )
    .fetch_one(&mut **tx)
    .await?;
    if !exists {
        return Ok(());
    }
    let watched: Vec<(String, String)> =
        sqlx::query_as("SELECT user_id, before FROM entitlement_watch ORDER BY user_id")
            .fetch_all(&mut **tx)
            .await?;
    if watched.is_empty() {
        return Ok(());
    }
    sqlx::query("DELETE FROM entitlement_watch")
        .execute(&mut **tx)
        .await?;
    let ids: Vec<String> = watched.iter().map(|(id, _)| id.clone()).collect();
    let students: HashMap<String, Student> = students(tx, scope, &ids)
        .await?
        .into_iter()
        .map(|student| (student.id.clone(), student))
        .collect();
    let catalogue = outbox.catalogue(&scope.school_id);
    let at = format_time(at);
    let mut rows = Vec::new();
    for (id, before) in &watched {
        // A student deleted in the same transaction has a `user.deleted` event instead.
        let Some(student) = students.get(id) else {
            continue;
        };
        if let Some(changed) = entitlements::compare(student, before, &catalogue)? {
            rows.extend(outbox.entitlement_rows(
                &scope.school_id,
                &changed.user,
                &changed.after,
                changed.added,
                changed.removed,
                &at,
            ));
        }
    }
    write_outbox(tx, &scope.school_id, &rows, &at).await
}

/// The users among `ids` (group ids and unknown ids are left out), each with their role and
/// the groups they are directly in with those groups' courses: one query.
async fn students(
    tx: &mut Transaction<'static, Sqlite>,
    scope: &Scope,
    ids: &[String],
) -> Result<Vec<Student>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<(String, Option<String>, String)> = sqlx::query_as(
        "SELECT u.id, \
         json_extract(u.data, '$.\"urn:rollcall:params:scim:schemas:extension:school:2.0:User\".role'), \
         (SELECT json_group_array(json_array(g.id, g.display_name, json(json_extract(g.data, \
          '$.\"urn:rollcall:params:scim:schemas:extension:school:2.0:Group\".courses')))) \
          FROM group_members m JOIN groups g ON g.id = m.group_id WHERE m.member_id = u.id) \
         FROM users u WHERE u.school_id = ?1 AND u.id IN (SELECT value FROM json_each(?2)) \
         ORDER BY u.id",
    )
    .bind(&scope.school_id)
    .bind(serde_json::Value::from_iter(ids.iter().cloned()).to_string())
    .fetch_all(&mut **tx)
    .await?;
    rows.into_iter()
        .map(|(id, role, groups)| Student::from_row(id, role, &groups))
        .collect()
}
