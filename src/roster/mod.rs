//! What a school admin does with accounts: teaching groups with courses and tutors, students
//! created one at a time or from a pasted class list, credential slips, and the log-in API the
//! platform calls.
//!
//! HTTP-free like [`crate::provider`], on which it builds: documents are SCIM documents checked
//! by [`crate::scim::resource`], written through the store with their credentials.

pub mod access;
pub mod entitlements;
pub mod import;
pub mod login;
pub mod manage;
pub mod paste;
pub mod reset;
pub mod slips;

use serde::Serialize;
use serde_json::{Map, Value, json};
use time::{Duration, OffsetDateTime};
use zeroize::Zeroizing;

use crate::config::School;
use crate::courses::{self, Assigned};
use crate::credentials::{self, username};
use crate::provider::Provider;
use crate::scim::filter;
use crate::scim::resource;
use crate::scim::schema::{CORE_GROUP, CORE_USER, Kind, SCHOOL_GROUP, SCHOOL_USER};
use crate::store::{self, Actor, NewRecord, Query, Record, Scope, Stamp, UserName};

/// The source that owns what admins create.
pub const ADMIN_SOURCE: &str = "admin";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is wrong; the message says where and why.
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Forbidden(String),
    /// A fault of the server; the detail is logged, never shown.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    fn store(error: store::Error) -> Error {
        use store::Error as S;
        match error {
            S::NotFound => Error::NotFound("not found".into()),
            S::Conflict { field, value } => {
                Error::Conflict(format!("{field} `{value}` is already taken in this school"))
            }
            S::Retired { value, retired } => Error::Conflict(format!(
                "username `{value}` belonged to an account deleted on {retired}; it cannot be reused yet"
            )),
            S::NamesExhausted(base) => {
                Error::Conflict(format!("every username made from `{base}` is taken"))
            }
            S::OwnedBy(source) => Error::Forbidden(format!(
                "it belongs to source `{source}`; only that source may change it"
            )),
            S::VersionMismatch { .. } => {
                Error::Conflict("it changed while this request ran; try again".into())
            }
            other => Error::Internal(other.to_string()),
        }
    }
}

impl From<credentials::Error> for Error {
    fn from(error: credentials::Error) -> Error {
        Error::Internal(error.to_string())
    }
}

/// A member of staff (or the command line) acting on their school, with the role that decides
/// what they may do ([`access`]).
#[derive(Debug, Clone)]
pub struct Admin {
    pub scope: Scope,
    pub actor: Actor,
    pub role: store::StaffRole,
    /// The account a tutor signs in with: its teaching groups are theirs.
    pub account: Option<String>,
}

impl Admin {
    /// The command line, acting as the school's admin.
    pub fn cli(school_id: &str) -> Admin {
        Admin {
            scope: Scope {
                school_id: school_id.to_owned(),
                source: ADMIN_SOURCE.to_owned(),
            },
            actor: Actor {
                name: "cli".into(),
                request_id: None,
            },
            role: store::StaffRole::Admin,
            account: None,
        }
    }

    /// A member of staff, with the role that applies now.
    pub fn staff(staff: &store::Staff, request_id: Option<String>) -> Admin {
        Admin {
            scope: Scope {
                school_id: staff.school_id.clone(),
                source: ADMIN_SOURCE.to_owned(),
            },
            actor: Actor {
                name: format!("admin:{}", staff.user_name),
                request_id,
            },
            role: staff.effective(),
            account: staff.account.clone(),
        }
    }
}

/// A person's role in the school.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    #[default]
    Student,
    Tutor,
}

impl Role {
    pub fn parse(text: &str) -> Option<Role> {
        match text.trim().to_ascii_lowercase().as_str() {
            "student" => Some(Role::Student),
            "tutor" => Some(Role::Tutor),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Role::Student => "student",
            Role::Tutor => "tutor",
        }
    }
}

/// A person as an admin describes them. Empty strings are absent values.
#[derive(Debug, Clone, Default)]
pub struct Person {
    pub first_name: String,
    pub surname: String,
    pub email: String,
    /// Empty: generate one from the school's template.
    pub user_name: String,
    pub year_group: String,
    pub student_number: String,
    pub role: Role,
}

/// A problem with one field of a person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
}

impl Person {
    /// Checks each field; on success returns the base username (explicit, or from the
    /// template).
    pub(crate) fn check(&self, school: &School) -> Result<String, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut error =
            |field: &'static str, message: String| errors.push(FieldError { field, message });
        for (field, value, max) in [
            ("first name", &self.first_name, 100),
            ("surname", &self.surname, 100),
            ("email", &self.email, 254),
            ("year group", &self.year_group, 20),
            ("student number", &self.student_number, 40),
        ] {
            if value.chars().count() > max {
                error(field, format!("is longer than {max} characters"));
            }
            if value.chars().any(char::is_control) {
                error(field, "holds a control character".into());
            }
        }
        if self.first_name.is_empty() {
            error("first name", "is empty".into());
        }
        if self.surname.is_empty() {
            error("surname", "is empty".into());
        }
        if !self.email.is_empty() && !plausible_email(&self.email) {
            error("email", format!("`{}` is not an email address", self.email));
        }
        let usernames = &school.usernames;
        let base = if self.user_name.is_empty() {
            if self.first_name.is_empty() || self.surname.is_empty() {
                None
            } else {
                match usernames.template.render(
                    &self.first_name,
                    &self.surname,
                    usernames.max_length,
                ) {
                    Ok(base) => Some(base),
                    Err(e) => {
                        let username::NameError::Empty { field } = e;
                        error(field, format!("{e}"));
                        None
                    }
                }
            }
        } else {
            match username::check_explicit(
                &self.user_name,
                usernames.max_length,
                &usernames.reserved,
            ) {
                Ok(()) => Some(self.user_name.clone()),
                Err(message) => {
                    error("username", message);
                    None
                }
            }
        };
        match base {
            Some(base) if errors.is_empty() => Ok(base),
            _ => Err(errors),
        }
    }

    /// The SCIM document of the person (with `base` as a placeholder `userName`).
    fn document(&self, base: &str) -> Value {
        let mut school = Map::new();
        school.insert("role".into(), self.role.name().into());
        if !self.year_group.is_empty() {
            school.insert("yearGroup".into(), self.year_group.clone().into());
        }
        if !self.student_number.is_empty() {
            school.insert("studentNumber".into(), self.student_number.clone().into());
        }
        let mut document = json!({
            "schemas": [CORE_USER, SCHOOL_USER],
            "userName": base,
            "name": {
                "givenName": self.first_name,
                "familyName": self.surname,
                "formatted": format!("{} {}", self.first_name, self.surname),
            },
            "displayName": format!("{} {}", self.first_name, self.surname),
            "active": true,
            SCHOOL_USER: Value::Object(school),
        });
        if !self.email.is_empty() {
            document["emails"] = json!([{ "value": self.email, "type": "work", "primary": true }]);
        }
        document
    }
}

/// One `@`, something either side, a dot in the domain, no spaces.
fn plausible_email(text: &str) -> bool {
    let Some((local, domain)) = text.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !text.chars().any(char::is_whitespace)
}

/// An account created by an admin, with its first password (shown once).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Created {
    pub id: String,
    pub user_name: String,
    pub first_name: String,
    pub surname: String,
    /// `None` when held as a pending slip.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<Zeroizing<String>>,
}

/// A teaching group as the admin API shows it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupView {
    pub id: String,
    pub name: String,
    pub source: String,
    pub courses: Vec<CourseView>,
    pub tutors: Vec<Member>,
    pub students: Vec<Member>,
    pub version: i64,
}

#[derive(Debug, Serialize)]
pub struct CourseView {
    pub code: String,
    pub title: String,
    pub implied: bool,
}

impl From<Assigned> for CourseView {
    fn from(a: Assigned) -> CourseView {
        CourseView {
            code: a.code,
            title: a.title,
            implied: a.implied,
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    pub id: String,
    pub user_name: String,
    pub name: String,
}

impl Provider {
    fn school_of(&self, admin: &Admin) -> Result<&School, Error> {
        self.schools
            .get(&admin.scope.school_id)
            .ok_or_else(|| Error::NotFound(format!("no school `{}`", admin.scope.school_id)))
    }

    fn admin_stamp<'a>(&self, admin: &'a Admin) -> Stamp<'a> {
        Stamp {
            actor: &admin.actor,
            at: self.clock.now(),
        }
    }

    /// The time before which a freed username may be given out again.
    fn reuse_cutoff(&self, school: &School) -> OffsetDateTime {
        self.clock.now() - Duration::days(school.usernames.reuse_after_days.into())
    }

    /// How the store settles a person's username: the explicit one checked, or a generated one.
    fn user_name_rule(&self, school: &School, person: &Person, base: &str) -> UserName {
        let retired_after = self.reuse_cutoff(school);
        if person.user_name.is_empty() {
            UserName::Generate {
                base: base.to_owned(),
                max_len: school.usernames.max_length,
                reserved: school.usernames.reserved.clone(),
                retired_after,
            }
        } else {
            UserName::Checked { retired_after }
        }
    }

    /// A person's document, without a credential, ready for the store: a new account's
    /// (`user_name` its base, settled by the store) or a replacement (`user_name` the stored
    /// one). `external_id` ties it to a directory entry.
    pub(crate) fn person_record(
        &self,
        school: &School,
        person: &Person,
        user_name: &str,
        external_id: Option<&str>,
        active: bool,
    ) -> Result<NewRecord, Error> {
        let mut document = person.document(user_name);
        if let Some(external_id) = external_id {
            document["externalId"] = external_id.into();
        }
        document["active"] = active.into();
        let checked = resource::check(&self.registry, Kind::User, document)
            .map_err(|e| Error::Invalid(e.detail))?;
        Ok(NewRecord {
            index: resource::index(Kind::User, &checked.data),
            data: checked.data,
            members: None,
            password_hash: None,
            must_change: false,
            slip: None,
            user_name: self.user_name_rule(school, person, user_name),
        })
    }

    /// A person's document and credential, ready for the store as account `id`. Returns the
    /// first password, or, with `hold_slip`, seals it as the account's pending slip instead.
    async fn new_account(
        &self,
        school: &School,
        person: &Person,
        base: &str,
        id: &str,
        hold_slip: bool,
    ) -> Result<(NewRecord, Option<Zeroizing<String>>), Error> {
        let mut record = self.person_record(school, person, base, None, true)?;
        let issued = credentials::issue(&school.passwords.policy, &self.hasher).await?;
        record.password_hash = Some(issued.hash);
        record.must_change = true;
        if hold_slip {
            record.slip =
                Some(
                    self.vault
                        .seal(&school.id, id, &issued.password, self.clock.now())?,
                );
            return Ok((record, None));
        }
        Ok((record, Some(issued.password)))
    }

    /// Creates one account with a generated first password, always a new one (no matching):
    /// the username is settled under the store's write lock, so concurrent creations of the
    /// same name get `smithj`, `smithj2`, … The password is in the answer, or, with
    /// `hold_slip`, held as the account's pending slip.
    pub async fn create_person(
        &self,
        admin: &Admin,
        person: &Person,
        group: Option<&str>,
        hold_slip: bool,
    ) -> Result<Created, Error> {
        let school = self.school_of(admin)?;
        let base = person.check(school).map_err(|errors| {
            Error::Invalid(
                errors
                    .iter()
                    .map(|e| format!("{}: {}", e.field, e.message))
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        })?;
        let group = match group {
            Some(name) => Some(self.owned_group(admin, name).await?),
            None => None,
        };
        let id = uuid::Uuid::now_v7().to_string();
        let (record, password) = self
            .new_account(school, person, &base, &id, hold_slip)
            .await?;
        let target = match &group {
            Some(group) => store::ImportGroup::Existing(group.id.clone()),
            None => store::ImportGroup::None,
        };
        let names = self
            .store
            .import(
                &admin.scope,
                &target,
                &[(id.clone(), record)],
                &[],
                self.admin_stamp(admin),
            )
            .await
            .map_err(Error::store)?;
        Ok(Created {
            id,
            user_name: names.into_iter().next().unwrap_or_default(),
            first_name: person.first_name.clone(),
            surname: person.surname.clone(),
            password,
        })
    }

    /// A teaching group of the school, by id or name.
    async fn group(&self, admin: &Admin, id_or_name: &str) -> Result<Record, Error> {
        self.store
            .find_group(&admin.scope, id_or_name)
            .await
            .map_err(|e| match e {
                store::Error::NotFound => {
                    Error::NotFound(format!("no teaching group `{id_or_name}`"))
                }
                other => Error::store(other),
            })
    }

    /// A group the admins own, by id or name.
    async fn owned_group(&self, admin: &Admin, name: &str) -> Result<Record, Error> {
        let group = self.group(admin, name).await?;
        if group.source != ADMIN_SOURCE {
            return Err(Error::Forbidden(format!(
                "teaching group `{name}` belongs to source `{}`; change it there",
                group.source
            )));
        }
        Ok(group)
    }

    /// Every account of the school, with the groups each belongs to.
    async fn people(&self, scope: &Scope) -> Result<Vec<Record>, Error> {
        let query = Query {
            limit: i64::MAX,
            ..Query::default()
        };
        let (_, people) = self
            .store
            .list(scope, Kind::User, &self.registry, &query, true)
            .await
            .map_err(Error::store)?;
        Ok(people)
    }

    /// The ids of the named tutors (by username); each must have the tutor role.
    fn tutor_ids(people: &[Record], names: &[String]) -> Result<Vec<String>, Error> {
        names
            .iter()
            .map(|name| {
                let person = people
                    .iter()
                    .find(|p| user_name_of(p).eq_ignore_ascii_case(name.trim()))
                    .ok_or_else(|| Error::Invalid(format!("tutor `{name}`: no such account")))?;
                if role_of(person) != Some(Role::Tutor) {
                    return Err(Error::Invalid(format!(
                        "tutor `{name}`: the account does not have the tutor role"
                    )));
                }
                Ok(person.id.clone())
            })
            .collect()
    }

    /// The document of a teaching group with its members (`external_id` ties it to a
    /// directory entry).
    pub(crate) fn group_record(
        &self,
        school: &School,
        name: &str,
        courses: &[String],
        members: Vec<String>,
        external_id: Option<&str>,
    ) -> Result<NewRecord, Error> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
            return Err(Error::Invalid(
                "a teaching group needs a name of 1 to 100 characters".into(),
            ));
        }
        if !courses.is_empty() && school.courses.is_empty() {
            return Err(Error::Invalid(format!(
                "school `{}` has no course catalogue: add [[schools.courses]] to the configuration",
                school.id
            )));
        }
        // Names (codes or titles) to codes; the implied modules are added below, as for SCIM.
        let chosen: Vec<Value> = school
            .courses
            .expand(courses)
            .map_err(Error::Invalid)?
            .into_iter()
            .filter(|course| !course.implied)
            .map(|course| json!({ "value": course.code }))
            .collect();
        let mut document = json!({
            "schemas": [CORE_GROUP],
            "displayName": name,
        });
        if !chosen.is_empty() {
            document["schemas"] = json!([CORE_GROUP, SCHOOL_GROUP]);
            document[SCHOOL_GROUP] = json!({ "courses": chosen });
        }
        if let Some(external_id) = external_id {
            document["externalId"] = external_id.into();
        }
        let mut checked = resource::check(&self.registry, Kind::Group, document)
            .map_err(|e| Error::Invalid(e.detail))?;
        courses::expand_in(&school.courses, &mut checked.data).map_err(Error::Invalid)?;
        Ok(NewRecord {
            index: resource::index(Kind::Group, &checked.data),
            data: checked.data,
            members: Some(members),
            password_hash: None,
            must_change: false,
            slip: None,
            user_name: UserName::AsGiven,
        })
    }

    /// Creates a teaching group with its courses (implied modules added) and tutors.
    pub async fn create_group(
        &self,
        admin: &Admin,
        name: &str,
        courses: &[String],
        tutors: &[String],
    ) -> Result<GroupView, Error> {
        let school = self.school_of(admin)?;
        let people = self.people(&admin.scope).await?;
        let tutors = Self::tutor_ids(&people, tutors)?;
        let record = self.group_record(school, name, courses, tutors, None)?;
        let id = uuid::Uuid::now_v7().to_string();
        self.store
            .insert(
                &admin.scope,
                Kind::Group,
                &id,
                &record,
                self.admin_stamp(admin),
            )
            .await
            .map_err(group_write_error)?;
        self.group_view(admin, &id).await
    }

    /// A teaching group by id or name, with its courses, tutors and students.
    pub async fn group_view(&self, admin: &Admin, id_or_name: &str) -> Result<GroupView, Error> {
        let group = self.group(admin, id_or_name).await?;
        let members = self.members_of(&admin.scope, &group.id).await?;
        let (mut tutors, mut students) = (Vec::new(), Vec::new());
        for person in &members {
            let member = Member {
                id: person.id.clone(),
                user_name: user_name_of(person).to_owned(),
                name: display_name_of(person),
            };
            match role_of(person) {
                Some(Role::Tutor) => tutors.push(member),
                _ => students.push(member),
            }
        }
        Ok(GroupView {
            name: display_name_of(&group),
            courses: courses::of_group(&group.data)
                .into_iter()
                .map(CourseView::from)
                .collect(),
            id: group.id,
            source: group.source,
            tutors,
            students,
            version: group.version,
        })
    }

    /// The school's teaching groups (a tutor's own), by name.
    pub async fn group_views(&self, admin: &Admin) -> Result<Vec<GroupView>, Error> {
        let visible = self.visible_groups(admin).await?;
        let query = Query {
            limit: i64::MAX,
            sort_by: resource::attribute_path("displayName"),
            ..Query::default()
        };
        let (_, groups) = self
            .store
            .list(&admin.scope, Kind::Group, &self.registry, &query, false)
            .await
            .map_err(Error::store)?;
        let mut views = Vec::with_capacity(groups.len());
        for group in groups {
            if visible.as_ref().is_some_and(|own| !own.contains(&group.id)) {
                continue;
            }
            views.push(self.group_view(admin, &group.id).await?);
        }
        Ok(views)
    }

    /// The accounts directly in a group.
    async fn members_of(&self, scope: &Scope, group_id: &str) -> Result<Vec<Record>, Error> {
        self.linked(scope, Kind::User, "groups", group_id, "userName")
            .await
    }

    /// Every record of `kind` whose `links` (`groups` of a user, `members` of a group) name
    /// `id`, sorted by `sort_by`.
    async fn linked(
        &self,
        scope: &Scope,
        kind: Kind,
        links: &str,
        id: &str,
        sort_by: &str,
    ) -> Result<Vec<Record>, Error> {
        let text = format!("{links}.value eq {}", Value::String(id.to_owned()));
        let query = Query {
            filter: Some(filter::parse(&text).map_err(|e| Error::Internal(e.to_string()))?),
            sort_by: resource::attribute_path(sort_by),
            limit: i64::MAX,
            ..Query::default()
        };
        let (_, records) = self
            .store
            .list(scope, kind, &self.registry, &query, false)
            .await
            .map_err(Error::store)?;
        Ok(records)
    }

    /// Takes the school's pending slips (of one group, when named) out of the store, opened.
    /// Each slip is handed out once.
    pub async fn collect_slips(
        &self,
        admin: &Admin,
        group: Option<&str>,
    ) -> Result<Vec<slips::Slip>, Error> {
        let school = self.school_of(admin)?;
        // A tutor's slips are those of their own groups, one group at a time.
        if access::reach(admin.role, access::Action::CollectSlips) == access::Reach::OwnGroups {
            let Some(group) = group else {
                return Err(Error::Forbidden(
                    "a tutor collects the slips of one of their own teaching groups: name it"
                        .into(),
                ));
            };
            self.authorize(
                admin,
                access::Action::CollectSlips,
                access::Target::Group(group),
            )
            .await?;
        }
        let group_id = match group {
            Some(name) => Some(self.group(admin, name).await?.id),
            None => None,
        };
        let taken = self
            .store
            .take_slips(&school.id, group_id.as_deref(), self.clock.now())
            .await
            .map_err(Error::store)?;
        let mut out = Vec::with_capacity(taken.len());
        for slip in taken {
            let password = match self.vault.open(&school.id, &slip.user.id, &slip.sealed) {
                Ok(password) => password,
                Err(error) => {
                    // Sealed with another key: nobody can read it. It is gone; say so.
                    tracing::error!(user = %slip.user.id, %error, "a pending slip could not be opened");
                    continue;
                }
            };
            out.push(slip_for(school, &slip.user, password));
        }
        tracing::info!(school = %school.id, slips = out.len(), actor = %admin.actor.name, "pending slips collected");
        Ok(out)
    }
}

/// A store error of writing a teaching group, a clash of names in the admin's words.
fn group_write_error(error: store::Error) -> Error {
    match error {
        store::Error::Conflict {
            field: "displayName",
            value,
        } => Error::Conflict(format!(
            "there is already a teaching group called `{value}`"
        )),
        other => Error::store(other),
    }
}

/// A credential slip for an account and its first password.
pub fn slip_for(school: &School, user: &Record, password: Zeroizing<String>) -> slips::Slip {
    let name = |part| name_part(user, part).to_owned();
    slips::Slip {
        school: school.name.clone(),
        group: user
            .links
            .iter()
            .filter_map(|l| l.display.clone())
            .collect::<Vec<_>>()
            .join(", "),
        first_name: name("givenName"),
        surname: name("familyName"),
        user_name: user_name_of(user).to_owned(),
        password,
        login_url: school.login_url.clone().unwrap_or_default(),
    }
}

fn user_name_of(record: &Record) -> &str {
    record
        .data
        .get("userName")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn display_name_of(record: &Record) -> String {
    if let Some(name) = record.data.get("displayName").and_then(Value::as_str) {
        return name.to_owned();
    }
    format!(
        "{} {}",
        name_part(record, "givenName"),
        name_part(record, "familyName")
    )
    .trim()
    .to_owned()
}

/// A sub-attribute of a user's `name`, such as `givenName`; "" when absent.
fn name_part<'a>(record: &'a Record, part: &str) -> &'a str {
    record
        .data
        .get("name")
        .and_then(|n| n.get(part))
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn school_attribute<'a>(record: &'a Record, name: &str) -> Option<&'a str> {
    record.data.get(SCHOOL_USER)?.get(name)?.as_str()
}

fn role_of(record: &Record) -> Option<Role> {
    school_attribute(record, "role").and_then(Role::parse)
}
