//! Staff and their roles, and audit events that record no change (a refused action, a step of
//! a password reset).

use sqlx::Row;
use sqlx::sqlite::SqliteRow;
use time::OffsetDateTime;

use super::Store;
use crate::store::{Actor, Error, Result, Staff, StaffRole, format_time};

/// A staff row with whether the account they sign in with is usable (`a`: admins).
const STAFF: &str = "SELECT a.id, a.school_id, a.user_name, a.role, a.user_id, \
     (a.user_id IS NULL OR EXISTS (SELECT 1 FROM users u \
      WHERE u.id = a.user_id AND u.school_id = a.school_id AND u.active = 1)) AS account_active \
     FROM admins a";

impl Store {
    /// Writes an audit event that records no change: who tried what on which resource.
    pub async fn record_event(
        &self,
        school_id: &str,
        actor: &Actor,
        action: &str,
        resource_type: &str,
        resource_id: &str,
        at: OffsetDateTime,
    ) -> Result<()> {
        let (_turn, mut tx) = self.write().await?;
        sqlx::query(
            "INSERT INTO audit_events (school_id, at, actor, source, request_id, action, \
             resource_type, resource_id) VALUES (?1, ?2, ?3, '', ?4, ?5, ?6, ?7)",
        )
        .bind(school_id)
        .bind(format_time(at))
        .bind(&actor.name)
        .bind(&actor.request_id)
        .bind(action)
        .bind(resource_type)
        .bind(resource_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The member of staff with this username (any case), if any.
    pub async fn staff_named(&self, school_id: &str, user_name: &str) -> Result<Option<Staff>> {
        let row = sqlx::query(&format!(
            "{STAFF} WHERE a.school_id = ?1 AND a.user_name_key = ?2"
        ))
        .bind(school_id)
        .bind(user_name.to_lowercase())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(staff_from_row).transpose()
    }

    /// The school's staff, by username.
    pub async fn list_staff(&self, school_id: &str) -> Result<Vec<Staff>> {
        let rows = sqlx::query(&format!(
            "{STAFF} WHERE a.school_id = ?1 ORDER BY a.user_name_key"
        ))
        .bind(school_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(staff_from_row).collect()
    }

    /// Gives `role` to the member of staff called `user_name`, or, when there is none and
    /// `account` is given (that account's id, whose username `user_name` is), makes one with id
    /// `new_id` who signs in with that account. Audited. `NotFound` when neither; `Conflict`
    /// when the name belongs to another member of staff than the account's.
    #[allow(clippy::too_many_arguments)]
    pub async fn grant_role(
        &self,
        school_id: &str,
        user_name: &str,
        account: Option<&str>,
        role: StaffRole,
        new_id: &str,
        actor: &Actor,
        at: OffsetDateTime,
    ) -> Result<Staff> {
        let (_turn, mut tx) = self.write().await?;
        let key = user_name.to_lowercase();
        let existing: Option<(String, String, Option<String>)> = sqlx::query_as(
            "SELECT id, role, user_id FROM admins WHERE school_id = ?1 AND user_name_key = ?2",
        )
        .bind(school_id)
        .bind(&key)
        .fetch_optional(&mut *tx)
        .await?;
        let (id, before) = match existing {
            Some((_, _, linked)) if account.is_some() && linked.as_deref() != account => {
                return Err(Error::Conflict {
                    field: "staff",
                    value: user_name.to_owned(),
                });
            }
            Some((id, before, _)) => {
                sqlx::query("UPDATE admins SET role = ?2 WHERE id = ?1")
                    .bind(&id)
                    .bind(role.as_str())
                    .execute(&mut *tx)
                    .await?;
                (id, Some(before))
            }
            None => {
                let Some(account) = account else {
                    return Err(Error::NotFound);
                };
                sqlx::query(
                    "INSERT INTO admins (id, school_id, user_name, user_name_key, created_at, \
                     role, user_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )
                .bind(new_id)
                .bind(school_id)
                .bind(user_name)
                .bind(&key)
                .bind(format_time(at))
                .bind(role.as_str())
                .bind(account)
                .execute(&mut *tx)
                .await?;
                (new_id.to_owned(), None)
            }
        };
        sqlx::query(
            "INSERT INTO audit_events (school_id, at, actor, source, request_id, action, \
             resource_type, resource_id, before, after) \
             VALUES (?1, ?2, ?3, '', ?4, 'grant', 'Staff', ?5, ?6, ?7)",
        )
        .bind(school_id)
        .bind(format_time(at))
        .bind(&actor.name)
        .bind(&actor.request_id)
        .bind(&id)
        .bind(before.map(|role| serde_json::json!({ "role": role }).to_string()))
        .bind(serde_json::json!({ "role": role.as_str() }).to_string())
        .execute(&mut *tx)
        .await?;
        let row = sqlx::query(&format!("{STAFF} WHERE a.id = ?1"))
            .bind(&id)
            .fetch_one(&mut *tx)
            .await?;
        let staff = staff_from_row(&row)?;
        tx.commit().await?;
        Ok(staff)
    }
}

fn staff_from_row(row: &SqliteRow) -> Result<Staff> {
    let role: String = row.try_get("role")?;
    Ok(Staff {
        id: row.try_get("id")?,
        school_id: row.try_get("school_id")?,
        user_name: row.try_get("user_name")?,
        role: StaffRole::parse(&role).unwrap_or(StaffRole::None),
        account: row.try_get("user_id")?,
        account_active: row.try_get("account_active")?,
    })
}
