//! Who may do what: one table of staff roles against the actions of the admin console and the
//! admin API, and the check each page and call goes through before it runs.
//!
//! - A **school admin** may do everything in their school.
//! - A **tutor** sees their own teaching groups (those whose members include the account they
//!   sign in with) and those groups' students, resets a password of one of those students and
//!   collects the new slip; nothing else.
//! - **Read-only** staff see what an admin sees (groups, accounts, sources, entitlements) and
//!   change nothing; slips hold passwords, so they are not theirs to collect.
//!
//! A refusal is a [`Error::Forbidden`] and an audit event (`denied:<action>`) on what was asked
//! for. A tutor asking about a group or account that is not theirs is refused whether or not it
//! exists, so the answer tells nothing about other classes.

use std::collections::HashSet;

use serde::Serialize;
use serde_json::Value;

use super::{Admin, Error, Role, role_of};
use crate::provider::Provider;
use crate::scim::schema::Kind;
use crate::store::{Record, StaffRole};

/// What a page or call does, as far as roles are concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Teaching groups, their courses and members; the course catalogue.
    ViewGroups,
    /// Create or edit a teaching group.
    EditGroups,
    /// Create accounts: one, or a class list.
    AddPeople,
    /// Find accounts, see one with its history and entitlements.
    ViewPeople,
    /// A new first password for an account (held as a slip).
    ResetPassword,
    /// Disable or enable an account.
    SetActive,
    /// Move a student between teaching groups.
    MovePeople,
    /// Collect pending slips (first passwords).
    CollectSlips,
    /// Directory sources: status and last runs.
    ViewSources,
    /// Run a source, plan it or approve a held plan.
    RunSources,
    /// Grant and take away staff roles.
    ManageStaff,
}

impl Action {
    pub const ALL: [Action; 11] = [
        Action::ViewGroups,
        Action::EditGroups,
        Action::AddPeople,
        Action::ViewPeople,
        Action::ResetPassword,
        Action::SetActive,
        Action::MovePeople,
        Action::CollectSlips,
        Action::ViewSources,
        Action::RunSources,
        Action::ManageStaff,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::ViewGroups => "view_groups",
            Action::EditGroups => "edit_groups",
            Action::AddPeople => "add_people",
            Action::ViewPeople => "view_people",
            Action::ResetPassword => "reset_password",
            Action::SetActive => "set_active",
            Action::MovePeople => "move_people",
            Action::CollectSlips => "collect_slips",
            Action::ViewSources => "view_sources",
            Action::RunSources => "run_sources",
            Action::ManageStaff => "manage_staff",
        }
    }

    /// The refusal in the words of the person refused.
    fn refusal(self) -> &'static str {
        match self {
            Action::ViewGroups => "see teaching groups",
            Action::EditGroups => "create or edit teaching groups",
            Action::AddPeople => "create accounts",
            Action::ViewPeople => "see accounts",
            Action::ResetPassword => "reset passwords",
            Action::SetActive => "disable or enable accounts",
            Action::MovePeople => "move students between groups",
            Action::CollectSlips => "collect credential slips",
            Action::ViewSources => "see directory sources",
            Action::RunSources => "run directory sources",
            Action::ManageStaff => "grant staff roles",
        }
    }
}

/// How far a role reaches for one action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    Everything,
    /// Only the tutor's own teaching groups and their students.
    OwnGroups,
    Nothing,
}

/// The table: what each role may do.
pub fn reach(role: StaffRole, action: Action) -> Reach {
    use Action::*;
    match (role, action) {
        (StaffRole::Admin, _) => Reach::Everything,
        (StaffRole::Tutor, ViewGroups | ViewPeople | ResetPassword | CollectSlips) => {
            Reach::OwnGroups
        }
        (StaffRole::ReadOnly, ViewGroups | ViewPeople | ViewSources) => Reach::Everything,
        _ => Reach::Nothing,
    }
}

/// Which of the console's actions a role has at all, for showing only the links and buttons
/// that work.
pub fn allowed(role: StaffRole) -> serde_json::Map<String, Value> {
    Action::ALL
        .into_iter()
        .map(|action| {
            let yes = reach(role, action) != Reach::Nothing;
            (action.as_str().to_owned(), Value::Bool(yes))
        })
        .collect()
}

/// What an action is about.
#[derive(Debug, Clone, Copy)]
pub enum Target<'a> {
    /// The school as a whole (lists, new things); a tutor's lists are narrowed to their groups.
    School,
    /// A teaching group, by id or name.
    Group(&'a str),
    /// An account, by id.
    Person(&'a str),
}

impl Provider {
    /// Whether `admin` may do `action` on `target`: `Ok`, or `Forbidden` with the refusal
    /// audited.
    pub async fn authorize(
        &self,
        admin: &Admin,
        action: Action,
        target: Target<'_>,
    ) -> Result<(), Error> {
        let allowed = match reach(admin.role, action) {
            Reach::Everything => true,
            Reach::Nothing => false,
            Reach::OwnGroups => match target {
                Target::School => true,
                Target::Group(id_or_name) => self.teaches_group(admin, id_or_name).await?,
                Target::Person(id) => self.teaches_person(admin, id, action).await?,
            },
        };
        if allowed {
            return Ok(());
        }
        let (kind, id) = match target {
            Target::School => ("School", admin.scope.school_id.as_str()),
            Target::Group(id) => ("Group", id),
            Target::Person(id) => ("User", id),
        };
        tracing::warn!(actor = %admin.actor.name, role = admin.role.as_str(), action = action.as_str(), resource = %id, "refused");
        self.store
            .record_event(
                &admin.scope.school_id,
                &admin.actor,
                &format!("denied:{}", action.as_str()),
                kind,
                id,
                self.clock.now(),
            )
            .await
            .map_err(Error::store)?;
        Err(Error::Forbidden(
            match (admin.role, reach(admin.role, action)) {
                (StaffRole::Tutor, Reach::OwnGroups) => format!(
                    "a tutor may {} only in their own teaching groups",
                    action.refusal()
                ),
                (StaffRole::Tutor, _) => format!("a tutor may not {}", action.refusal()),
                (StaffRole::ReadOnly, _) => {
                    format!("read-only staff may not {}", action.refusal())
                }
                _ => format!("your role does not allow you to {}", action.refusal()),
            },
        ))
    }

    /// The teaching groups a tutor's account is a member of (none for other roles, and for a
    /// tutor without an account).
    pub async fn own_groups(&self, admin: &Admin) -> Result<Vec<Record>, Error> {
        let Some(account) = &admin.account else {
            return Ok(Vec::new());
        };
        self.linked(&admin.scope, Kind::Group, "members", account, "displayName")
            .await
    }

    /// The ids of the groups whose lists `admin` sees: `None` for all of them.
    pub(crate) async fn visible_groups(
        &self,
        admin: &Admin,
    ) -> Result<Option<HashSet<String>>, Error> {
        if reach(admin.role, Action::ViewGroups) == Reach::OwnGroups {
            let own = self.own_groups(admin).await?;
            Ok(Some(own.into_iter().map(|g| g.id).collect()))
        } else {
            Ok(None)
        }
    }

    async fn teaches_group(&self, admin: &Admin, id_or_name: &str) -> Result<bool, Error> {
        let own = self.own_groups(admin).await?;
        Ok(own.iter().any(|group| {
            group.id == id_or_name
                || group
                    .data
                    .get("displayName")
                    .and_then(Value::as_str)
                    .is_some_and(|name| name.to_lowercase() == id_or_name.to_lowercase())
        }))
    }

    /// Whether the account is in one of the tutor's groups (and, for a password reset, a
    /// student: tutors do not reset each other's).
    async fn teaches_person(&self, admin: &Admin, id: &str, action: Action) -> Result<bool, Error> {
        let person = match self.store.get(&admin.scope, Kind::User, id).await {
            Ok(person) => person,
            Err(crate::store::Error::NotFound) => return Ok(false),
            Err(other) => return Err(Error::store(other)),
        };
        if action == Action::ResetPassword && role_of(&person) == Some(Role::Tutor) {
            return Ok(false);
        }
        let own: HashSet<String> = self
            .own_groups(admin)
            .await?
            .into_iter()
            .map(|g| g.id)
            .collect();
        Ok(person.links.iter().any(|link| own.contains(&link.id)))
    }
}

/// A member of staff as the console's staff page shows them.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StaffRow {
    pub user_name: String,
    pub role: StaffRole,
    /// Signs in with their own account (a tutor), not a console password.
    pub own_account: bool,
    /// The account is disabled or gone: the role grants nothing now.
    pub suspended: bool,
}

impl Provider {
    /// The school's staff, by username.
    pub async fn staff(&self, admin: &Admin) -> Result<Vec<StaffRow>, Error> {
        let staff = self
            .store
            .list_staff(&admin.scope.school_id)
            .await
            .map_err(Error::store)?;
        Ok(staff
            .into_iter()
            .map(|member| StaffRow {
                suspended: member.role != StaffRole::None && member.effective() == StaffRole::None,
                user_name: member.user_name,
                role: member.role,
                own_account: member.account.is_some(),
            })
            .collect())
    }

    /// Gives `role` to the member of staff called `user_name`; when there is none, to the
    /// school's tutor account of that name, who then signs in to the console with it. A tutor
    /// must have an account (their groups are its groups); a student's account gets no role.
    pub async fn grant(
        &self,
        admin: &Admin,
        user_name: &str,
        role: StaffRole,
    ) -> Result<crate::store::Staff, Error> {
        let user_name = user_name.trim();
        let school_id = &admin.scope.school_id;
        let existing = self
            .store
            .staff_named(school_id, user_name)
            .await
            .map_err(Error::store)?;
        let account = match &existing {
            Some(member) => {
                if role == StaffRole::Tutor && member.account.is_none() {
                    return Err(Error::Invalid(format!(
                        "`{user_name}` signs in with a console password, not an account: a \
                         tutor signs in with their own account, whose teaching groups are theirs"
                    )));
                }
                None
            }
            None => {
                let account = self
                    .store
                    .credential(school_id, user_name)
                    .await
                    .map_err(Error::store)?
                    .ok_or_else(|| {
                        Error::NotFound(format!(
                            "`{user_name}` is neither a member of staff nor an account of this school"
                        ))
                    })?;
                let record = self
                    .store
                    .get(&admin.scope, Kind::User, &account.user_id)
                    .await
                    .map_err(Error::store)?;
                if role_of(&record) != Some(Role::Tutor) {
                    return Err(Error::Invalid(format!(
                        "`{}` is not a tutor's account: staff roles go to tutors' accounts",
                        account.user_name
                    )));
                }
                Some(account)
            }
        };
        let name = account.as_ref().map_or(user_name, |a| a.user_name.as_str());
        let granted = self
            .store
            .grant_role(
                school_id,
                name,
                account.as_ref().map(|a| a.user_id.as_str()),
                role,
                &uuid::Uuid::now_v7().to_string(),
                &admin.actor,
                self.clock.now(),
            )
            .await
            .map_err(|error| match error {
                crate::store::Error::Conflict { value, .. } => Error::Conflict(format!(
                    "`{value}` is already the name of a member of staff who signs in otherwise"
                )),
                other => Error::store(other),
            })?;
        tracing::info!(school = %school_id, staff = %granted.user_name, role = role.as_str(), actor = %admin.actor.name, "role granted");
        Ok(granted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admins_may_do_everything_and_none_nothing() {
        for action in Action::ALL {
            assert_eq!(reach(StaffRole::Admin, action), Reach::Everything);
            assert_eq!(reach(StaffRole::None, action), Reach::Nothing);
        }
    }

    #[test]
    fn read_only_staff_change_nothing() {
        let allowed: Vec<Action> = Action::ALL
            .into_iter()
            .filter(|a| reach(StaffRole::ReadOnly, *a) != Reach::Nothing)
            .collect();
        assert_eq!(
            allowed,
            [Action::ViewGroups, Action::ViewPeople, Action::ViewSources]
        );
    }

    #[test]
    fn tutors_reach_only_their_own_groups() {
        for action in Action::ALL {
            let expected = match action {
                Action::ViewGroups
                | Action::ViewPeople
                | Action::ResetPassword
                | Action::CollectSlips => Reach::OwnGroups,
                _ => Reach::Nothing,
            };
            assert_eq!(reach(StaffRole::Tutor, action), expected, "{action:?}");
        }
    }

    #[test]
    fn the_console_is_told_what_a_role_has() {
        let tutor = allowed(StaffRole::Tutor);
        assert_eq!(tutor["reset_password"], Value::Bool(true));
        assert_eq!(tutor["edit_groups"], Value::Bool(false));
        assert_eq!(allowed(StaffRole::ReadOnly).len(), Action::ALL.len());
    }
}
