//! Class lists pasted from a spreadsheet: a preview row by row, then every account at once.
//!
//! Planning reads the school once and decides, for each row: create (with the username it
//! would get), already exists (matched on student number, email, or name within the group),
//! or error (naming the field). Committing writes the group, the accounts and their
//! credentials in one transaction: all rows or none (`partial` writes the valid rows only).
//! The usernames are settled again under the store's write lock, so a concurrent creation can
//! move a generated name on (`smithj2` → `smithj3`), never duplicate it.

use std::collections::{HashMap, HashSet};

use serde::Serialize;
use tokio::task::JoinSet;
use zeroize::Zeroizing;

use super::paste::{self, Column};
use super::{
    ADMIN_SOURCE, Admin, CourseView, Error, FieldError, Person, Role, display_name_of, name_part,
    school_attribute, user_name_of,
};
use crate::config::School;
use crate::courses;
use crate::credentials::username;
use crate::provider::Provider;
use crate::store::{ImportGroup, Record};

/// What an admin asks for.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// The teaching group, by id or name; created when no group has that name.
    pub group: String,
    /// For a new group: its courses (codes or titles) and tutors (usernames).
    pub courses: Vec<String>,
    pub tutors: Vec<String>,
    /// The pasted text.
    pub text: String,
    pub dry_run: bool,
    /// Create the valid rows even when others have errors.
    pub partial: bool,
    /// Hold each first password as the account's pending slip instead of answering with it.
    pub hold_slips: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Would be created (preview).
    Create,
    /// Was created.
    Created,
    /// An account for this row already exists; it joins the group if it is not in it.
    Exists,
    Error,
}

/// One row of the preview or the result.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RowOutcome {
    /// The row number the admin sees in the spreadsheet.
    pub row: u64,
    pub action: Action,
    pub first_name: String,
    pub surname: String,
    pub email: String,
    /// The username the account has, or would get.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Why the row matched an existing account, or is flagged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// The first password of a created account: shown once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<Zeroizing<String>>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupOutcome {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub name: String,
    /// True when this import creates (or created) the group.
    pub new: bool,
    pub courses: Vec<CourseView>,
    pub tutors: Vec<String>,
}

#[derive(Debug, Default, Serialize)]
pub struct Counts {
    pub create: usize,
    pub exists: usize,
    pub error: usize,
}

impl Counts {
    fn of(rows: &[RowOutcome]) -> Counts {
        let mut counts = Counts::default();
        for row in rows {
            match row.action {
                Action::Create | Action::Created => counts.create += 1,
                Action::Exists => counts.exists += 1,
                Action::Error => counts.error += 1,
            }
        }
        counts
    }
}

/// The preview, or the result once committed.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Outcome {
    pub committed: bool,
    pub dry_run: bool,
    pub group: GroupOutcome,
    pub counts: Counts,
    /// Header columns that were not recognised and were ignored.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ignored_columns: Vec<String>,
    pub rows: Vec<RowOutcome>,
}

/// A row that will be written.
struct Planned {
    index: usize,
    person: Person,
    base: String,
}

/// Lookup tables over the school's accounts, for matching rows to existing accounts.
struct Known<'a> {
    by_number: HashMap<&'a str, &'a Record>,
    by_email: HashMap<String, &'a Record>,
    names: HashSet<String>,
}

impl<'a> Known<'a> {
    fn new(people: &'a [Record]) -> Known<'a> {
        let mut known = Known {
            by_number: HashMap::new(),
            by_email: HashMap::new(),
            names: HashSet::new(),
        };
        for person in people {
            if let Some(number) = school_attribute(person, "studentNumber") {
                known.by_number.insert(number, person);
            }
            for email in person
                .data
                .get("emails")
                .and_then(|e| e.as_array())
                .into_iter()
                .flatten()
                .filter_map(|e| e.get("value").and_then(|v| v.as_str()))
            {
                known.by_email.insert(email.to_lowercase(), person);
            }
            known.names.insert(user_name_of(person).to_lowercase());
        }
        known
    }
}

fn name_key(first: &str, surname: &str) -> (String, String) {
    (first.to_lowercase(), surname.to_lowercase())
}

impl Provider {
    /// Previews an import, or carries it out.
    pub async fn import(&self, admin: &Admin, request: &Request) -> Result<Outcome, Error> {
        let school = self.school_of(admin)?;
        let pasted = paste::parse(&request.text).map_err(|e| Error::Invalid(e.to_string()))?;

        let people = self.people(&admin.scope).await?;
        let (group_outcome, import_group, members) =
            self.import_group(admin, school, request, &people).await?;

        // Each row: error, existing account, or a new one with the username it would get.
        let known = Known::new(&people);
        let retired: HashSet<String> = self
            .store
            .retired_names(&school.id, self.reuse_cutoff(school))
            .await
            .map_err(Error::store)?
            .into_iter()
            .collect();
        let mut in_group: HashMap<(String, String), Vec<&Record>> = HashMap::new();
        for person in people.iter().filter(|p| members.contains(&p.id)) {
            in_group
                .entry(name_key(
                    name_part(person, "givenName"),
                    name_part(person, "familyName"),
                ))
                .or_default()
                .push(person);
        }
        let mut seen_emails: HashMap<String, u64> = HashMap::new();
        let mut seen_numbers: HashMap<String, u64> = HashMap::new();
        let mut seen_names: HashMap<String, u64> = HashMap::new();
        // Usernames the paste asks for explicitly: generated names step around them, wherever
        // the rows are.
        let mut planned_names: HashSet<String> = pasted
            .rows
            .iter()
            .map(|row| row.get(Column::UserName).to_lowercase())
            .filter(|name| !name.is_empty())
            .collect();
        let mut rows = Vec::with_capacity(pasted.rows.len());
        let mut plan = Vec::new();
        let mut joining = Vec::new();
        for row in &pasted.rows {
            let person = Person {
                first_name: row.get(Column::FirstName).to_owned(),
                surname: row.get(Column::Surname).to_owned(),
                email: row.get(Column::Email).to_owned(),
                user_name: row.get(Column::UserName).to_owned(),
                year_group: row.get(Column::YearGroup).to_owned(),
                student_number: row.get(Column::StudentNumber).to_owned(),
                role: Role::Student,
            };
            let mut outcome = RowOutcome {
                row: row.line,
                action: Action::Error,
                first_name: person.first_name.clone(),
                surname: person.surname.clone(),
                email: person.email.clone(),
                user_name: None,
                id: None,
                note: None,
                errors: Vec::new(),
                password: None,
            };
            let repeated = |seen: &mut HashMap<String, u64>, key: String, field| {
                if key.is_empty() {
                    return None;
                }
                match seen.get(&key) {
                    Some(first) => Some(FieldError {
                        field,
                        message: format!("the same as row {first}"),
                    }),
                    None => {
                        seen.insert(key, row.line);
                        None
                    }
                }
            };
            let mut errors = Vec::new();
            errors.extend(repeated(
                &mut seen_emails,
                person.email.to_lowercase(),
                "email",
            ));
            errors.extend(repeated(
                &mut seen_numbers,
                person.student_number.clone(),
                "student number",
            ));
            errors.extend(repeated(
                &mut seen_names,
                person.user_name.to_lowercase(),
                "username",
            ));
            let base = match person.check(school) {
                Ok(base) => Some(base),
                Err(mut field_errors) => {
                    errors.append(&mut field_errors);
                    None
                }
            };

            // An existing account: by student number, then email, then name within the group.
            let matched = known
                .by_number
                .get(person.student_number.as_str())
                .filter(|_| !person.student_number.is_empty())
                .map(|r| (*r, "student number"))
                .or_else(|| {
                    known
                        .by_email
                        .get(&person.email.to_lowercase())
                        .filter(|_| !person.email.is_empty())
                        .map(|r| (*r, "email"))
                })
                .or_else(|| {
                    let twins = in_group.get_mut(&name_key(&person.first_name, &person.surname))?;
                    (!twins.is_empty()).then(|| (twins.remove(0), "name in this group"))
                });
            if let Some((record, why)) = matched
                && errors.is_empty()
            {
                outcome.action = Action::Exists;
                outcome.user_name = Some(user_name_of(record).to_owned());
                outcome.id = Some(record.id.clone());
                let joins = !members.contains(&record.id);
                outcome.note = Some(format!(
                    "matches {} ({why}){}",
                    display_name_of(record),
                    if joins { "; joins the group" } else { "" }
                ));
                if joins && !joining.contains(&record.id) {
                    joining.push(record.id.clone());
                }
                rows.push(outcome);
                continue;
            }
            let Some(base) = base.filter(|_| errors.is_empty()) else {
                outcome.errors = errors;
                rows.push(outcome);
                continue;
            };
            let user_name = if person.user_name.is_empty() {
                username::first_free(&base, school.usernames.max_length, |candidate| {
                    known.names.contains(candidate)
                        || retired.contains(candidate)
                        || planned_names.contains(candidate)
                        || username::is_reserved(candidate, &school.usernames.reserved)
                })
            } else {
                let key = person.user_name.to_lowercase();
                if known.names.contains(&key) {
                    outcome.errors.push(FieldError {
                        field: "username",
                        message: format!("`{}` is taken by another account", person.user_name),
                    });
                } else if retired.contains(&key) {
                    outcome.errors.push(FieldError {
                        field: "username",
                        message: format!(
                            "`{}` belonged to a deleted account and cannot be reused yet",
                            person.user_name
                        ),
                    });
                }
                Some(person.user_name.clone())
            };
            let Some(user_name) = user_name.filter(|_| outcome.errors.is_empty()) else {
                if outcome.errors.is_empty() {
                    outcome.errors.push(FieldError {
                        field: "username",
                        message: format!("every username made from `{base}` is taken"),
                    });
                }
                rows.push(outcome);
                continue;
            };
            if person.email.is_empty() {
                outcome.note = Some("no email: cannot reset their own password".into());
            }
            planned_names.insert(user_name.to_lowercase());
            outcome.action = Action::Create;
            outcome.user_name = Some(user_name);
            plan.push(Planned {
                index: rows.len(),
                person,
                base,
            });
            rows.push(outcome);
        }

        let mut outcome = Outcome {
            committed: false,
            dry_run: request.dry_run,
            counts: Counts::of(&rows),
            group: group_outcome,
            ignored_columns: pasted.ignored.iter().map(|(_, h)| h.clone()).collect(),
            rows,
        };
        let blocked = outcome.counts.error > 0 && !request.partial;
        if request.dry_run || blocked {
            return Ok(outcome);
        }

        self.commit(
            admin,
            school,
            request,
            &plan,
            &import_group,
            &joining,
            &mut outcome,
        )
        .await?;
        outcome.committed = true;
        outcome.counts = Counts::of(&outcome.rows);
        tracing::info!(
            school = %school.id,
            group = %outcome.group.name,
            created = outcome.counts.create,
            existing = outcome.counts.exists,
            errors = outcome.counts.error,
            actor = %admin.actor.name,
            "class list imported"
        );
        Ok(outcome)
    }

    /// The group an import writes into: an existing one the admins own (with its members), or
    /// a new one with its courses and tutors.
    async fn import_group(
        &self,
        admin: &Admin,
        school: &School,
        request: &Request,
        people: &[Record],
    ) -> Result<(GroupOutcome, ImportGroup, HashSet<String>), Error> {
        let existing = match self.group(admin, &request.group).await {
            Ok(group) => Some(group),
            Err(Error::NotFound(_)) => None,
            Err(other) => return Err(other),
        };
        Ok(match existing {
            Some(group) => {
                if group.source != ADMIN_SOURCE {
                    return Err(Error::Forbidden(format!(
                        "teaching group `{}` belongs to source `{}`; rollcall can only add \
                         students to groups its admins created",
                        request.group, group.source
                    )));
                }
                if !request.courses.is_empty() || !request.tutors.is_empty() {
                    return Err(Error::Invalid(format!(
                        "teaching group `{}` already exists: leave out courses and tutors, \
                         which only describe a new group",
                        request.group
                    )));
                }
                let members: HashSet<String> = group.links.iter().map(|l| l.id.clone()).collect();
                let outcome = GroupOutcome {
                    id: Some(group.id.clone()),
                    name: display_name_of(&group),
                    new: false,
                    courses: courses::of_group(&group.data)
                        .into_iter()
                        .map(CourseView::from)
                        .collect(),
                    tutors: Vec::new(),
                };
                (outcome, ImportGroup::Existing(group.id), members)
            }
            None => {
                let tutors = Self::tutor_ids(people, &request.tutors)?;
                let record =
                    self.group_record(school, &request.group, &request.courses, tutors, None)?;
                let id = uuid::Uuid::now_v7().to_string();
                let outcome = GroupOutcome {
                    id: None,
                    name: record.index.name.clone(),
                    new: true,
                    courses: courses::of_group(&record.data)
                        .into_iter()
                        .map(CourseView::from)
                        .collect(),
                    tutors: request.tutors.clone(),
                };
                (
                    outcome,
                    ImportGroup::New {
                        id,
                        record: Box::new(record),
                    },
                    HashSet::new(),
                )
            }
        })
    }

    /// Generates and hashes the planned rows' passwords on every core, then writes the group,
    /// the accounts and the new members in one transaction, filling in each created row.
    #[allow(clippy::too_many_arguments)]
    async fn commit(
        &self,
        admin: &Admin,
        school: &School,
        request: &Request,
        plan: &[Planned],
        import_group: &ImportGroup,
        joining: &[String],
        outcome: &mut Outcome,
    ) -> Result<(), Error> {
        // Passwords: generated and hashed on every core at once.
        let mut hashing = JoinSet::new();
        for planned in plan {
            let provider = self.clone();
            let school = school.clone();
            let person = planned.person.clone();
            let base = planned.base.clone();
            let index = planned.index;
            let hold = request.hold_slips;
            hashing.spawn(async move {
                let id = uuid::Uuid::now_v7().to_string();
                let account = provider
                    .new_account(&school, &person, &base, &id, hold)
                    .await;
                (index, id, account)
            });
        }
        let mut hashed = Vec::with_capacity(plan.len());
        while let Some(done) = hashing.join_next().await {
            let (index, id, account) = done.map_err(|e| Error::Internal(e.to_string()))?;
            let (record, password) = account?;
            hashed.push((index, id, record, password));
        }
        hashed.sort_by_key(|(index, ..)| *index);
        let mut new_accounts = Vec::with_capacity(hashed.len());
        let mut secrets = Vec::with_capacity(hashed.len());
        for (index, id, record, password) in hashed {
            secrets.push((index, id.clone(), password));
            new_accounts.push((id, record));
        }
        if let ImportGroup::New { id, .. } = import_group {
            outcome.group.id = Some(id.clone());
        }
        let names = self
            .store
            .import(
                &admin.scope,
                import_group,
                &new_accounts,
                joining,
                self.admin_stamp(admin),
            )
            .await
            .map_err(super::group_write_error)?;
        for ((index, id, password), name) in secrets.into_iter().zip(names) {
            let row = &mut outcome.rows[index];
            row.action = Action::Created;
            row.id = Some(id);
            row.user_name = Some(name);
            row.password = password;
        }
        Ok(())
    }
}
