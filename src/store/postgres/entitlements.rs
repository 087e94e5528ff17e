//! `user.entitlements_changed` on PostgreSQL: watching the students a change touches, and
//! settling their events before the transaction commits (see [`crate::store::entitlements`]).
//!
//! The watch list is a temporary table the transaction creates and drops when it ends
//! (`ON COMMIT DROP`), so a transaction that rolls back leaves none behind.

use std::collections::HashMap;

use sqlx::{Postgres, Transaction};
use time::OffsetDateTime;

use super::super::entitlements::{self, Student};
use super::super::outbox::Outbox;
use super::{Result, Scope, format_time, write_outbox};
use crate::webhooks::event::Change;

const CREATE: &str = "CREATE TEMP TABLE entitlement_watch \
     (user_id TEXT PRIMARY KEY, before TEXT NOT NULL) ON COMMIT DROP";

/// Records, for each student the change touches and this transaction has not yet watched,
/// the codes they had before it. Reads nothing unless a webhook wants the event.
pub(super) async fn watch(
    tx: &mut Transaction<'static, Postgres>,
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
    if !exists(tx).await? {
        sqlx::query(CREATE).execute(&mut **tx).await?;
    }
    let catalogue = outbox.catalogue(&scope.school_id);
    // One statement for every student; a student already watched keeps the codes they had
    // when the transaction first touched them.
    let (ids, before): (Vec<&str>, Vec<String>) = students
        .iter()
        .map(|student| {
            let codes = entitlements::codes_before(&touched, student, &catalogue);
            (
                student.id.as_str(),
                serde_json::Value::from_iter(codes).to_string(),
            )
        })
        .unzip();
    sqlx::query(
        "INSERT INTO entitlement_watch (user_id, before) \
         SELECT * FROM unnest($1::text[], $2::text[]) ON CONFLICT (user_id) DO NOTHING",
    )
    .bind(&ids)
    .bind(&before)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Writes one event for each watched student whose codes differ from before the
/// transaction, and empties the watch list. Call it just before committing a write that may
/// have changed a group.
pub(super) async fn settle(
    tx: &mut Transaction<'static, Postgres>,
    outbox: &Outbox,
    scope: &Scope,
    at: OffsetDateTime,
) -> Result<()> {
    if !outbox.wants_entitlements(&scope.school_id) {
        return Ok(());
    }
    if !exists(tx).await? {
        return Ok(());
    }
    let watched: Vec<(String, String)> = sqlx::query_as(
        "SELECT user_id, before FROM entitlement_watch ORDER BY user_id COLLATE \"C\"",
    )
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
    tx: &mut Transaction<'static, Postgres>,
    scope: &Scope,
    ids: &[String],
) -> Result<Vec<Student>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<(String, Option<String>, String)> = sqlx::query_as(
        "SELECT u.id, \
         u.data::json -> 'urn:rollcall:params:scim:schemas:extension:school:2.0:User' ->> 'role', \
         coalesce((SELECT json_agg(json_build_array(g.id, g.display_name, g.data::json \
          -> 'urn:rollcall:params:scim:schemas:extension:school:2.0:Group' -> 'courses'))::text \
          FROM group_members m JOIN groups g ON g.id = m.group_id WHERE m.member_id = u.id), '[]') \
         FROM users u WHERE u.school_id = $1 AND u.id = ANY($2) ORDER BY u.id COLLATE \"C\"",
    )
    .bind(&scope.school_id)
    .bind(ids)
    .fetch_all(&mut **tx)
    .await?;
    rows.into_iter()
        .map(|(id, role, groups)| Student::from_row(id, role, &groups))
        .collect()
}

/// Whether this transaction has a watch list yet.
async fn exists(tx: &mut Transaction<'static, Postgres>) -> Result<bool> {
    Ok(
        sqlx::query_scalar("SELECT to_regclass('pg_temp.entitlement_watch') IS NOT NULL")
            .fetch_one(&mut **tx)
            .await?,
    )
}
