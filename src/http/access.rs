//! The one place that names the action of every admin page and `/api/v1` call. The console's
//! [`super::console`] `SignedIn` extractor and the API's `AdminCaller` both ask [`check`]
//! before a handler runs, so a route cannot be reached without its action being allowed; a
//! route missing from [`ROUTES`] is refused to everyone.

use std::collections::HashMap;

use axum::extract::{FromRequestParts, MatchedPath, Path};
use axum::http::Method;
use axum::http::request::Parts;

use super::AppState;
use crate::roster::access::{Action, Target};
use crate::roster::{self, Admin};

/// What a route acts on: the school, or the group or account its path parameter names.
#[derive(Debug, Clone, Copy)]
enum On {
    School,
    Group(&'static str),
    Person(&'static str),
}

/// What a route needs beyond a signed-in member of staff.
#[derive(Debug, Clone, Copy)]
enum Needs {
    /// Nothing more (signing out).
    SignedIn,
    Action(Action, On),
}

use Action::*;
use On::*;

const GET: &str = "GET";
const POST: &str = "POST";

/// Every admin route, by method and path as the router matched it.
const ROUTES: &[(&str, &str, Needs)] = &[
    (POST, "/admin/logout", Needs::SignedIn),
    (GET, "/admin/groups", Needs::Action(ViewGroups, School)),
    (GET, "/admin/groups/new", Needs::Action(EditGroups, School)),
    (POST, "/admin/groups/new", Needs::Action(EditGroups, School)),
    (
        GET,
        "/admin/groups/{id}",
        Needs::Action(ViewGroups, Group("id")),
    ),
    (
        GET,
        "/admin/groups/{id}/edit",
        Needs::Action(EditGroups, Group("id")),
    ),
    (
        POST,
        "/admin/groups/{id}/edit",
        Needs::Action(EditGroups, Group("id")),
    ),
    (
        GET,
        "/admin/groups/{id}/students",
        Needs::Action(AddPeople, Group("id")),
    ),
    (
        POST,
        "/admin/groups/{id}/students/one",
        Needs::Action(AddPeople, Group("id")),
    ),
    (
        POST,
        "/admin/groups/{id}/students/preview",
        Needs::Action(AddPeople, Group("id")),
    ),
    (
        POST,
        "/admin/groups/{id}/students/create",
        Needs::Action(AddPeople, Group("id")),
    ),
    (GET, "/admin/slips", Needs::Action(CollectSlips, School)),
    (POST, "/admin/slips", Needs::Action(CollectSlips, School)),
    (GET, "/admin/users", Needs::Action(ViewPeople, School)),
    (POST, "/admin/users/new", Needs::Action(AddPeople, School)),
    (
        GET,
        "/admin/users/{id}",
        Needs::Action(ViewPeople, Person("id")),
    ),
    (
        POST,
        "/admin/users/{id}/active",
        Needs::Action(SetActive, Person("id")),
    ),
    (
        POST,
        "/admin/users/{id}/password",
        Needs::Action(ResetPassword, Person("id")),
    ),
    (
        POST,
        "/admin/users/{id}/move",
        Needs::Action(MovePeople, Person("id")),
    ),
    (GET, "/admin/sources", Needs::Action(ViewSources, School)),
    (
        POST,
        "/admin/sources/{id}/plan",
        Needs::Action(RunSources, School),
    ),
    (
        POST,
        "/admin/sources/{id}/approve",
        Needs::Action(RunSources, School),
    ),
    (GET, "/admin/staff", Needs::Action(ManageStaff, School)),
    (POST, "/admin/staff", Needs::Action(ManageStaff, School)),
    (
        GET,
        "/api/v1/schools/{school}/courses",
        Needs::Action(ViewGroups, School),
    ),
    (
        GET,
        "/api/v1/schools/{school}/groups",
        Needs::Action(ViewGroups, School),
    ),
    (
        POST,
        "/api/v1/schools/{school}/groups",
        Needs::Action(EditGroups, School),
    ),
    (
        GET,
        "/api/v1/schools/{school}/groups/{group}",
        Needs::Action(ViewGroups, Group("group")),
    ),
    (
        POST,
        "/api/v1/schools/{school}/groups/{group}/students:bulk",
        Needs::Action(AddPeople, Group("group")),
    ),
    (
        POST,
        "/api/v1/schools/{school}/users",
        Needs::Action(AddPeople, School),
    ),
    (
        GET,
        "/api/v1/schools/{school}/users/{id}/entitlements",
        Needs::Action(ViewPeople, Person("id")),
    ),
    (
        POST,
        "/api/v1/schools/{school}/slips:collect",
        Needs::Action(CollectSlips, School),
    ),
    (
        GET,
        "/api/v1/schools/{school}/sources",
        Needs::Action(ViewSources, School),
    ),
    (
        POST,
        "/api/v1/schools/{school}/sources/{source}/runs",
        Needs::Action(RunSources, School),
    ),
];

/// Whether `admin` may make this request: `Ok`, or the refusal (`Forbidden`, audited by
/// [`crate::roster::access`]).
pub async fn check(
    state: &AppState,
    admin: &Admin,
    parts: &mut Parts,
) -> Result<(), roster::Error> {
    let route = parts
        .extensions
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_owned())
        .unwrap_or_default();
    // HEAD is answered by the GET route.
    let method = if parts.method == Method::HEAD {
        GET
    } else {
        parts.method.as_str()
    };
    let Some((_, _, needs)) = ROUTES
        .iter()
        .find(|(m, path, _)| *m == method && *path == route)
    else {
        tracing::error!(%route, method, "an admin route without an entry in the access table");
        return Err(roster::Error::Forbidden(
            "this page is not open to anyone".into(),
        ));
    };
    let Needs::Action(action, on) = *needs else {
        return Ok(());
    };
    let params = match on {
        School => HashMap::new(),
        Group(_) | Person(_) => Path::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map(|Path(params)| params)
            .unwrap_or_default(),
    };
    let param = |name: &str| params.get(name).map(String::as_str).unwrap_or_default();
    let target = match on {
        School => Target::School,
        Group(name) => Target::Group(param(name)),
        Person(name) => Target::Person(param(name)),
    };
    state.provider.authorize(admin, action, target).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_route_is_named_once() {
        let mut seen = std::collections::HashSet::new();
        for (method, path, _) in ROUTES {
            assert!(seen.insert((method, path)), "{method} {path} twice");
        }
    }
}
