//! User management: finding accounts, an account's page, disabling and enabling, password
//! resets (a new slip), moving a student between groups, and editing a teaching group.
//!
//! A source changes only what it owns: accounts and groups of a directory source are shown, and
//! their passwords can be reset (credentials are rollcall's), but their documents change in the
//! directory.

use serde::Serialize;
use serde_json::Value;

use super::{
    ADMIN_SOURCE, Admin, Error, GroupView, Member, Role, display_name_of, group_write_error,
    name_part, role_of, school_attribute, user_name_of,
};
use crate::credentials;
use crate::provider::Provider;
use crate::scim::resource;
use crate::scim::schema::Kind;
use crate::store::{self, HistoryEntry, NewRecord, Record, UserName};

/// At most this many accounts answer a search.
pub const SEARCH_LIMIT: usize = 200;

/// An account in a list.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PersonRow {
    pub id: String,
    pub user_name: String,
    pub name: String,
    pub role: Role,
    pub email: String,
    pub groups: Vec<String>,
    pub active: bool,
    pub source: String,
}

impl PersonRow {
    fn of(record: &Record) -> PersonRow {
        PersonRow {
            id: record.id.clone(),
            user_name: user_name_of(record).to_owned(),
            name: display_name_of(record),
            role: role_of(record).unwrap_or_default(),
            email: record
                .data
                .get("emails")
                .and_then(Value::as_array)
                .and_then(|emails| emails.first())
                .and_then(|email| email.get("value"))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            groups: record
                .links
                .iter()
                .filter_map(|link| link.display.clone())
                .collect(),
            active: record
                .data
                .get("active")
                .and_then(Value::as_bool)
                .unwrap_or(true),
            source: record.source.clone(),
        }
    }
}

/// One account, as its page shows it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PersonView {
    #[serde(flatten)]
    pub row: PersonRow,
    pub first_name: String,
    pub surname: String,
    pub year_group: String,
    pub student_number: String,
    /// The groups the account is directly in, by id and name.
    pub memberships: Vec<Member>,
    /// The courses those groups give a student (none for a tutor), by code.
    pub courses: Vec<crate::courses::entitlements::Entitlement>,
    pub version: i64,
    /// Newest first.
    pub history: Vec<HistoryEntry>,
}

/// How many history lines an account's page shows.
const HISTORY: i64 = 50;

impl Provider {
    /// The school's accounts whose username, name, email or group contains `text` (ignoring
    /// case), by username; at most [`SEARCH_LIMIT`]. An empty `text` finds nobody.
    pub async fn search_people(&self, admin: &Admin, text: &str) -> Result<Vec<PersonRow>, Error> {
        let needle = text.trim().to_lowercase();
        if needle.is_empty() {
            return Ok(Vec::new());
        }
        let people = self.people(&admin.scope).await?;
        let visible = self.visible_groups(admin).await?;
        let mut found: Vec<PersonRow> = people
            .iter()
            .filter(|person| {
                visible
                    .as_ref()
                    .is_none_or(|own| person.links.iter().any(|link| own.contains(&link.id)))
            })
            .map(PersonRow::of)
            .filter(|row| {
                [&row.user_name, &row.name, &row.email]
                    .into_iter()
                    .chain(&row.groups)
                    .any(|field| field.to_lowercase().contains(&needle))
            })
            .take(SEARCH_LIMIT)
            .collect();
        found.sort_by(|a, b| a.user_name.cmp(&b.user_name));
        Ok(found)
    }

    /// The school's tutors, by username: who a teaching group can be given.
    pub async fn tutors(&self, admin: &Admin) -> Result<Vec<Member>, Error> {
        let mut tutors: Vec<Member> = self
            .people(&admin.scope)
            .await?
            .iter()
            .filter(|p| role_of(p) == Some(Role::Tutor))
            .map(|p| Member {
                id: p.id.clone(),
                user_name: user_name_of(p).to_owned(),
                name: display_name_of(p),
            })
            .collect();
        tutors.sort_by(|a, b| a.user_name.cmp(&b.user_name));
        Ok(tutors)
    }

    /// An account of the school, by id, with its groups and history.
    pub async fn person_view(&self, admin: &Admin, id: &str) -> Result<PersonView, Error> {
        let record = self.person(admin, id).await?;
        let history = self
            .store
            .history(&admin.scope.school_id, id, HISTORY)
            .await
            .map_err(Error::store)?;
        let text = |name| {
            school_attribute(&record, name)
                .unwrap_or_default()
                .to_owned()
        };
        Ok(PersonView {
            first_name: name_part(&record, "givenName").to_owned(),
            surname: name_part(&record, "familyName").to_owned(),
            year_group: text("yearGroup"),
            student_number: text("studentNumber"),
            memberships: record
                .links
                .iter()
                .map(|link| Member {
                    id: link.id.clone(),
                    user_name: String::new(),
                    name: link.display.clone().unwrap_or_default(),
                })
                .collect(),
            courses: self.entitlements_of(&admin.scope.school_id, &record),
            version: record.version,
            row: PersonRow::of(&record),
            history,
        })
    }

    async fn person(&self, admin: &Admin, id: &str) -> Result<Record, Error> {
        self.store
            .get(&admin.scope, Kind::User, id)
            .await
            .map_err(|e| match e {
                store::Error::NotFound => Error::NotFound("no such account in this school".into()),
                other => Error::store(other),
            })
    }

    /// Disables or re-enables an account the admins own. A disabled account cannot log in.
    pub async fn set_active(&self, admin: &Admin, id: &str, active: bool) -> Result<(), Error> {
        let record = self.person(admin, id).await?;
        owned_by_admins(&record, "account", user_name_of(&record))?;
        if record.data.get("active").and_then(Value::as_bool) == Some(active) {
            return Ok(());
        }
        let mut data = record.data.clone();
        data.insert("active".into(), active.into());
        self.store
            .replace(
                &admin.scope,
                Kind::User,
                id,
                Some(record.version),
                &stored_as(Kind::User, data, None),
                self.admin_stamp(admin),
            )
            .await
            .map_err(Error::store)?;
        Ok(())
    }

    /// Gives an account a new first password, held as its pending slip (any source: the
    /// credential is rollcall's). The person must choose their own at the next log-in; the old
    /// password stops working at once. Returns the username.
    pub async fn reset_password(&self, admin: &Admin, id: &str) -> Result<String, Error> {
        let school = self.school_of(admin)?;
        let record = self.person(admin, id).await?;
        let user_name = user_name_of(&record).to_owned();
        let current = self
            .store
            .credential(&school.id, &user_name)
            .await
            .map_err(Error::store)?
            .ok_or_else(|| Error::NotFound("no such account in this school".into()))?;
        let issued = credentials::issue(&school.passwords.policy, &self.hasher).await?;
        let slip = self
            .vault
            .seal(&school.id, id, &issued.password, self.clock.now())?;
        self.store
            .set_password(
                &admin.scope,
                id,
                current.password_hash.as_deref(),
                &issued.hash,
                true,
                Some(&slip),
                self.admin_stamp(admin),
            )
            .await
            .map_err(Error::store)?;
        tracing::info!(school = %school.id, user = %id, actor = %admin.actor.name, "password reset");
        Ok(user_name)
    }

    /// Moves an account from one teaching group to another, both the admins', in one write.
    pub async fn move_member(
        &self,
        admin: &Admin,
        id: &str,
        from: &str,
        to: &str,
    ) -> Result<(), Error> {
        let person = self.person(admin, id).await?;
        let (from, to) = (
            self.owned_group(admin, from).await?,
            self.owned_group(admin, to).await?,
        );
        if from.id == to.id {
            return Err(Error::Invalid("choose a different group to move to".into()));
        }
        let members = |group: &Record| group.links.iter().map(|l| l.id.clone()).collect::<Vec<_>>();
        let mut leaving = members(&from);
        if !leaving.contains(&person.id) {
            return Err(Error::Invalid(format!(
                "{} is not in {}",
                user_name_of(&person),
                display_name_of(&from)
            )));
        }
        leaving.retain(|member| *member != person.id);
        let mut joining = members(&to);
        if !joining.contains(&person.id) {
            joining.push(person.id.clone());
        }
        let changes = [(from, leaving), (to, joining)].map(|(group, members)| {
            (
                group.id,
                group.version,
                stored_as(Kind::Group, group.data, Some(members)),
            )
        });
        self.store
            .replace_all(&admin.scope, Kind::Group, &changes, self.admin_stamp(admin))
            .await
            .map_err(Error::store)
    }

    /// Renames a teaching group of the admins', and sets its courses (implied modules added) and
    /// tutors; its students stay. `version` is the one the admin edited: a change made since
    /// then is not overwritten.
    pub async fn edit_group(
        &self,
        admin: &Admin,
        id: &str,
        version: i64,
        name: &str,
        courses: &[String],
        tutors: &[String],
    ) -> Result<GroupView, Error> {
        let school = self.school_of(admin)?;
        let group = self.owned_group(admin, id).await?;
        let people = self.people(&admin.scope).await?;
        let tutor_ids = Self::tutor_ids(&people, tutors)?;
        let mut members: Vec<String> = people
            .iter()
            .filter(|p| role_of(p) != Some(Role::Tutor))
            .filter(|p| group.links.iter().any(|l| l.id == p.id))
            .map(|p| p.id.clone())
            .collect();
        members.extend(tutor_ids);
        let record = self.group_record(school, name, courses, members, None)?;
        self.store
            .replace(
                &admin.scope,
                Kind::Group,
                &group.id,
                Some(version),
                &record,
                self.admin_stamp(admin),
            )
            .await
            .map_err(|e| match e {
                store::Error::VersionMismatch { .. } => Error::Conflict(
                    "the group was changed by someone else since this form was opened: \
                     open it again and redo your changes"
                        .into(),
                ),
                other => group_write_error(other),
            })?;
        self.group_view(admin, &group.id).await
    }
}

/// Refuses to change what a directory source owns.
fn owned_by_admins(record: &Record, what: &str, name: &str) -> Result<(), Error> {
    if record.source == ADMIN_SOURCE {
        return Ok(());
    }
    Err(Error::Forbidden(format!(
        "{what} `{name}` comes from source `{}`; change it there",
        record.source
    )))
}

/// A stored document written back as it is (with new members, for a group).
fn stored_as(
    kind: Kind,
    data: serde_json::Map<String, Value>,
    members: Option<Vec<String>>,
) -> NewRecord {
    NewRecord {
        index: resource::index(kind, &data),
        data,
        members,
        password_hash: None,
        must_change: false,
        slip: None,
        user_name: UserName::AsGiven,
    }
}
