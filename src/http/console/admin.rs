//! `/admin`: the school admin's pages. Every handler but log-in takes a [`SignedIn`] admin and
//! asks `roster` for that admin's school only; every post is a checked [`Fields`].

use std::net::SocketAddr;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::forms::{FORM_LIMIT, Fields, Forged};
use super::session::{self, ADMIN_COOKIE, FORM_COOKIE, SignedIn, cookie};
use super::{pages, see_other};
use crate::http::AppState;
use crate::roster::import::{Action, Request as ImportRequest};
use crate::roster::login::AdminVerdict;
use crate::roster::{self, Person, Role, slips};
use crate::store::{SessionKind, StaffRole};
use crate::sync;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { see_other("/admin/groups") }))
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
        .route("/groups", get(groups))
        .route("/groups/new", get(new_group_form).post(new_group))
        .route("/groups/{id}", get(group))
        .route("/groups/{id}/edit", get(edit_group_form).post(edit_group))
        .route("/groups/{id}/students", get(students_form))
        .route("/groups/{id}/students/one", post(add_student))
        .route("/groups/{id}/students/preview", post(preview))
        .route("/groups/{id}/students/create", post(create_students))
        .route("/slips", get(slips_page).post(collect_slips))
        .route("/users", get(users))
        .route("/users/new", post(new_tutor))
        .route("/users/{id}", get(user))
        .route("/users/{id}/active", post(set_active))
        .route("/users/{id}/password", post(reset_password))
        .route("/users/{id}/move", post(move_user))
        .route("/sources", get(sources))
        .route("/sources/{id}/plan", post(plan_source))
        .route("/sources/{id}/approve", post(approve_source))
        .route("/staff", get(staff).post(grant))
        .fallback(|State(state): State<AppState>| async move {
            error_page(&state, StatusCode::NOT_FOUND, "There is no such page.")
        })
        .layer(axum::extract::DefaultBodyLimit::max(FORM_LIMIT))
}

/// A page's context: what every page of a signed-in admin shows, plus its own values.
fn context(signed: &SignedIn, nav: &str, page: Value) -> Value {
    let mut context = Map::new();
    context.insert("school".into(), signed.school_name.clone().into());
    context.insert("admin".into(), signed.name.clone().into());
    context.insert("csrf".into(), signed.csrf.clone().into());
    context.insert("nav".into(), nav.into());
    context.insert("role".into(), signed.admin.role.as_str().into());
    context.insert(
        "can".into(),
        Value::Object(roster::access::allowed(signed.admin.role)),
    );
    context.insert("notice".into(), Value::Null);
    if let Value::Object(page) = page {
        context.extend(page);
    }
    Value::Object(context)
}

fn error_page(state: &AppState, status: StatusCode, message: &str) -> Response {
    pages(state).render(
        status,
        "error.html",
        json!({ "status": status.as_u16(), "message": message }),
    )
}

/// A 500 page naming the request, whose log lines say what failed.
pub fn internal(state: &AppState, request_id: &str) -> Response {
    error_page(
        state,
        StatusCode::INTERNAL_SERVER_ERROR,
        &format!("Internal error (request {request_id}). Nothing was changed by this page."),
    )
}

/// A roster error as a page: the admin's mistake (4xx, with the message) or ours (500).
fn roster_error(state: &AppState, signed: &SignedIn, error: roster::Error) -> Response {
    refused(state, &signed.admin, error)
}

/// A roster error (a refusal by role, for one) as a page, before or after signing in.
pub(super) fn refused(state: &AppState, admin: &roster::Admin, error: roster::Error) -> Response {
    use roster::Error::*;
    let (status, message) = match error {
        Invalid(m) => (StatusCode::UNPROCESSABLE_ENTITY, m),
        NotFound(m) => (StatusCode::NOT_FOUND, m),
        Conflict(m) => (StatusCode::CONFLICT, m),
        Forbidden(m) => (StatusCode::FORBIDDEN, m),
        Internal(detail) => {
            tracing::error!(error = %detail, "console failure");
            let id = admin.actor.request_id.as_deref().unwrap_or("-");
            return internal(state, id);
        }
    };
    error_page(state, status, &capitalised(&message))
}

fn forged(state: &AppState, forged: Forged) -> Response {
    tracing::warn!(reason = forged.0, "a console form was refused");
    error_page(
        state,
        StatusCode::FORBIDDEN,
        &format!(
            "This form was refused: {}. Nothing was changed. Go back, reload the page and try again.",
            forged.0
        ),
    )
}

fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// A posted form of the signed-in admin, or the 403 page.
fn form(
    state: &AppState,
    signed: &SignedIn,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Fields, Response> {
    Fields::checked(headers, body, &signed.secret).map_err(|f| forged(state, f))
}

/// The message a `?notice=` names (fixed texts: nothing from the URL reaches the page).
fn notice(key: Option<&str>) -> Value {
    let text = match key {
        Some("group-created") => "The teaching group was created.",
        Some("group-saved") => "The teaching group was saved.",
        Some("student-created") => "The student was created; their slip is waiting under Slips.",
        Some("tutor-created") => "The tutor was created; their slip is waiting under Slips.",
        Some("disabled") => "The account was disabled: it can no longer log in.",
        Some("enabled") => "The account was enabled again.",
        Some("password-reset") => {
            "A new first password was made; its slip is waiting under Slips. The old password no longer works."
        }
        Some("moved") => "The student was moved.",
        Some("no-slips") => "There are no slips waiting.",
        Some("role-granted") => "The role was saved; it applies from their next page.",
        _ => return Value::Null,
    };
    text.into()
}

#[derive(Deserialize)]
struct NoticeQuery {
    notice: Option<String>,
}

// ---- Log-in ----

async fn login_form(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if matches!(
        super::session::find(&state, &headers, ADMIN_COOKIE, SessionKind::Admin).await,
        Ok(Some(_))
    ) {
        return see_other("/admin/groups");
    }
    login_page(&state, StatusCode::OK, "", "", None, false)
}

/// The log-in form, with what went wrong; for a first password, a link to choose one.
fn login_page(
    state: &AppState,
    status: StatusCode,
    school: &str,
    user_name: &str,
    error: Option<&str>,
    first_password: bool,
) -> Response {
    let mut schools: Vec<_> = state.provider.schools.values().collect();
    schools.sort_by(|a, b| a.name.cmp(&b.name));
    let schools: Vec<Value> = schools
        .into_iter()
        .map(|s| json!({ "id": s.id, "name": s.name }))
        .collect();
    session::login_form(state, "/admin", |csrf| {
        pages(state).render(
            status,
            "login.html",
            json!({
                "csrf": csrf,
                "schools": schools,
                "school": "rollcall console",
                "selected": school,
                "user_name": user_name,
                "error": error,
                "first_password": first_password,
            }),
        )
    })
}

async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(secret) = cookie(&headers, FORM_COOKIE) else {
        return forged(&state, Forged("the log-in form has expired"));
    };
    let fields = match Fields::checked(&headers, &body, secret) {
        Ok(fields) => fields,
        Err(f) => return forged(&state, f),
    };
    let (school, user_name) = (fields.get("school"), fields.get("username"));
    let address = super::super::api::client(&state, peer, &headers);
    let verdict = state
        .provider
        .admin_login(
            &state.limiter,
            school,
            user_name,
            fields.raw("password"),
            address,
        )
        .await;
    match verdict {
        Ok(AdminVerdict::Passed {
            admin_id,
            user_name,
        }) => {
            tracing::info!(school, admin = %user_name, "console log-in");
            session::start(
                &state,
                SessionKind::Admin,
                school,
                &admin_id,
                &user_name,
                "/admin/groups",
            )
            .await
        }
        Ok(AdminVerdict::FirstPassword) => {
            tracing::info!(
                school,
                admin = user_name,
                "console log-in with a first password"
            );
            login_page(
                &state,
                StatusCode::FORBIDDEN,
                school,
                user_name,
                Some(
                    "This is still the first password from your slip. Choose your own \
                     password on the log-in page first, then log in here with it.",
                ),
                true,
            )
        }
        Ok(AdminVerdict::Failed) => {
            tracing::info!(school, admin = user_name, %address, "console log-in failed");
            login_page(
                &state,
                StatusCode::UNAUTHORIZED,
                school,
                user_name,
                Some("The school, username or password is wrong."),
                false,
            )
        }
        Ok(AdminVerdict::Throttled(wait)) => login_page(
            &state,
            StatusCode::TOO_MANY_REQUESTS,
            school,
            user_name,
            Some(&format!(
                "Too many failed attempts. Try again in {} minutes.",
                wait.as_secs().div_ceil(60).max(1)
            )),
            false,
        ),
        Err(error) => {
            tracing::error!(%error, "console log-in failed");
            internal(&state, &super::super::scim::request_id(&headers))
        }
    }
}

async fn logout(
    State(state): State<AppState>,
    signed: SignedIn,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(page) = form(&state, &signed, &headers, &body) {
        return page;
    }
    session::end(
        &state,
        SessionKind::Admin,
        &signed.secret,
        see_other("/admin/login"),
    )
    .await
}

// ---- Teaching groups ----

async fn groups(
    State(state): State<AppState>,
    signed: SignedIn,
    Query(query): Query<NoticeQuery>,
) -> Response {
    let groups = match state.provider.group_views(&signed.admin).await {
        Ok(groups) => groups,
        Err(e) => return roster_error(&state, &signed, e),
    };
    let rows: Vec<Value> = groups
        .iter()
        .map(|g| {
            json!({
                "id": g.id,
                "name": g.name,
                "source": g.source,
                "students": g.students.len(),
                "tutors": g.tutors.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
                "courses": g.courses.iter().filter(|c| !c.implied).map(|c| c.title.as_str()).collect::<Vec<_>>(),
            })
        })
        .collect();
    let mut page = context(&signed, "groups", json!({ "groups": rows }));
    page["notice"] = notice(query.notice.as_deref());
    pages(&state).render(StatusCode::OK, "groups.html", page)
}

/// What the group form offers: the catalogue (with what each course brings with it) and the
/// school's tutors.
async fn group_choices(state: &AppState, signed: &SignedIn) -> Result<Value, roster::Error> {
    let school = state
        .provider
        .schools
        .get(&signed.admin.scope.school_id)
        .ok_or_else(|| roster::Error::NotFound("no such school".into()))?;
    let catalogue = &school.courses;
    let courses: Vec<Value> = catalogue
        .courses()
        .iter()
        .map(|c| {
            let implies: Vec<&str> = c
                .implies
                .iter()
                .filter_map(|code| catalogue.find(code))
                .map(|implied| implied.title.as_str())
                .collect();
            json!({ "code": c.code, "title": c.title, "implies": implies })
        })
        .collect();
    let tutors = state.provider.tutors(&signed.admin).await?;
    Ok(json!({ "courses": courses, "tutors": tutors }))
}

async fn new_group_form(State(state): State<AppState>, signed: SignedIn) -> Response {
    group_form(&state, &signed, StatusCode::OK, None, json!({}), None).await
}

/// The create or edit form; `values` refills it after an error.
async fn group_form(
    state: &AppState,
    signed: &SignedIn,
    status: StatusCode,
    group: Option<Value>,
    values: Value,
    error: Option<(String, String)>,
) -> Response {
    let choices = match group_choices(state, signed).await {
        Ok(choices) => choices,
        Err(e) => return roster_error(state, signed, e),
    };
    let (field, message) = error.unzip();
    let page = context(
        signed,
        "groups",
        json!({
            "group": group,
            "choices": choices,
            "values": values,
            "error_field": field,
            "error": message,
        }),
    );
    pages(state).render(status, "group_form.html", page)
}

/// Which field of the group form an error is about ("" when none: shown above the form).
fn group_field(message: &str) -> &'static str {
    if message.starts_with("tutor") {
        "tutors"
    } else if message.contains("course") {
        "courses"
    } else if message.contains("name") || message.contains("teaching group called") {
        "name"
    } else {
        ""
    }
}

/// The status of a refused group form: 409 when it clashes with what is stored, else 422.
fn refused_status(error: &roster::Error) -> StatusCode {
    match error {
        roster::Error::Conflict(_) => StatusCode::CONFLICT,
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    }
}

fn group_values(fields: &Fields) -> Value {
    json!({
        "name": fields.get("name"),
        "courses": fields.all("course"),
        "tutors": fields.all("tutor"),
        "version": fields.get("version"),
    })
}

async fn new_group(
    State(state): State<AppState>,
    signed: SignedIn,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let fields = match form(&state, &signed, &headers, &body) {
        Ok(fields) => fields,
        Err(page) => return page,
    };
    let created = state
        .provider
        .create_group(
            &signed.admin,
            fields.get("name"),
            &fields.all("course"),
            &fields.all("tutor"),
        )
        .await;
    match created {
        Ok(group) => see_other(&format!("/admin/groups/{}?notice=group-created", group.id)),
        Err(e @ (roster::Error::Invalid(_) | roster::Error::Conflict(_))) => {
            let status = refused_status(&e);
            let m = e.to_string();
            let field = group_field(&m).to_owned();
            group_form(
                &state,
                &signed,
                status,
                None,
                group_values(&fields),
                Some((field, capitalised(&m))),
            )
            .await
        }
        Err(e) => roster_error(&state, &signed, e),
    }
}

async fn group(
    State(state): State<AppState>,
    signed: SignedIn,
    Path(id): Path<String>,
    Query(query): Query<NoticeQuery>,
) -> Response {
    let view = match existing_group(&state, &signed, &id).await {
        Ok(view) => view,
        Err(page) => return page,
    };
    let pending = state
        .provider
        .store
        .count_slips(
            &signed.admin.scope.school_id,
            Some(&view.id),
            state.provider.clock.now(),
        )
        .await
        .unwrap_or_default();
    let owned = view.source == roster::ADMIN_SOURCE;
    let mut page = context(
        &signed,
        "groups",
        json!({ "group": view, "pending": pending, "owned": owned }),
    );
    page["notice"] = notice(query.notice.as_deref());
    pages(&state).render(StatusCode::OK, "group.html", page)
}

async fn edit_group_form(
    State(state): State<AppState>,
    signed: SignedIn,
    Path(id): Path<String>,
) -> Response {
    let view = match existing_group(&state, &signed, &id).await {
        Ok(view) => view,
        Err(page) => return page,
    };
    let values = json!({
        "name": view.name,
        "courses": view.courses.iter().filter(|c| !c.implied).map(|c| c.code.as_str()).collect::<Vec<_>>(),
        "tutors": view.tutors.iter().map(|t| t.user_name.as_str()).collect::<Vec<_>>(),
        "version": view.version.to_string(),
    });
    let group = json!({ "id": view.id, "name": view.name });
    group_form(&state, &signed, StatusCode::OK, Some(group), values, None).await
}

async fn edit_group(
    State(state): State<AppState>,
    signed: SignedIn,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let fields = match form(&state, &signed, &headers, &body) {
        Ok(fields) => fields,
        Err(page) => return page,
    };
    let Ok(version) = fields.get("version").parse::<i64>() else {
        return error_page(
            &state,
            StatusCode::UNPROCESSABLE_ENTITY,
            "The form lost track of the group's version; reload the page and try again.",
        );
    };
    let saved = state
        .provider
        .edit_group(
            &signed.admin,
            &id,
            version,
            fields.get("name"),
            &fields.all("course"),
            &fields.all("tutor"),
        )
        .await;
    match saved {
        Ok(group) => see_other(&format!("/admin/groups/{}?notice=group-saved", group.id)),
        Err(e @ (roster::Error::Invalid(_) | roster::Error::Conflict(_))) => {
            let status = refused_status(&e);
            let m = e.to_string();
            let field = group_field(&m).to_owned();
            let group = json!({ "id": id, "name": fields.get("name") });
            group_form(
                &state,
                &signed,
                status,
                Some(group),
                group_values(&fields),
                Some((field, capitalised(&m))),
            )
            .await
        }
        Err(e) => roster_error(&state, &signed, e),
    }
}

// ---- Students ----

/// A teaching group of the admin's school, by id (an import would create a group from any other
/// name), or the 404 page.
async fn existing_group(
    state: &AppState,
    signed: &SignedIn,
    id: &str,
) -> Result<roster::GroupView, Response> {
    match state.provider.group_view(&signed.admin, id).await {
        Ok(view) if view.id == id => Ok(view),
        Ok(_) | Err(roster::Error::NotFound(_)) => Err(error_page(
            state,
            StatusCode::NOT_FOUND,
            "There is no such group.",
        )),
        Err(e) => Err(roster_error(state, signed, e)),
    }
}

/// The add-students page: one student, or a pasted class list.
async fn students_form(
    State(state): State<AppState>,
    signed: SignedIn,
    Path(id): Path<String>,
) -> Response {
    students_page(&state, &signed, &id, StatusCode::OK, json!({})).await
}

async fn students_page(
    state: &AppState,
    signed: &SignedIn,
    id: &str,
    status: StatusCode,
    extra: Value,
) -> Response {
    let view = match existing_group(state, signed, id).await {
        Ok(view) => view,
        Err(page) => return page,
    };
    let mut page = context(
        signed,
        "groups",
        json!({
            "group": { "id": view.id, "name": view.name, "source": view.source },
            "one": {},
            "errors": {},
            "text": "",
        }),
    );
    if let (Value::Object(page), Value::Object(extra)) = (&mut page, extra) {
        page.extend(extra);
    }
    pages(state).render(status, "students.html", page)
}

async fn add_student(
    State(state): State<AppState>,
    signed: SignedIn,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let fields = match form(&state, &signed, &headers, &body) {
        Ok(fields) => fields,
        Err(page) => return page,
    };
    let (person, one) = person_of(&fields, Role::Student);
    if let Some(errors) = field_errors(&state, &signed, &person) {
        return students_page(
            &state,
            &signed,
            &id,
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({ "one": one, "errors": errors }),
        )
        .await;
    }
    match state
        .provider
        .create_person(&signed.admin, &person, Some(&id), true)
        .await
    {
        Ok(_) => see_other(&format!("/admin/groups/{id}?notice=student-created")),
        Err(roster::Error::Invalid(m) | roster::Error::Conflict(m)) => {
            students_page(
                &state,
                &signed,
                &id,
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({ "one": one, "errors": { "one": capitalised(&m) } }),
            )
            .await
        }
        Err(e) => roster_error(&state, &signed, e),
    }
}

/// The person a form describes, and its fields as typed (to fill the form again).
fn person_of(fields: &Fields, role: Role) -> (Person, Value) {
    let person = Person {
        first_name: fields.get("first_name").to_owned(),
        surname: fields.get("surname").to_owned(),
        email: fields.get("email").to_owned(),
        year_group: fields.get("year_group").to_owned(),
        student_number: fields.get("student_number").to_owned(),
        role,
        ..Person::default()
    };
    let typed = json!({
        "first_name": person.first_name, "surname": person.surname, "email": person.email,
        "year_group": person.year_group, "student_number": person.student_number,
    });
    (person, typed)
}

/// A person's mistakes by field (`first_name`, …), checked before anything is written so that
/// each message sits next to its field; `one` sums them up above the form.
fn field_errors(
    state: &AppState,
    signed: &SignedIn,
    person: &Person,
) -> Option<Map<String, Value>> {
    let school = state.provider.schools.get(&signed.admin.scope.school_id)?;
    let errors = person.check(school).err()?;
    let summary = errors
        .iter()
        .map(|e| format!("{}: {}", capitalised(e.field), e.message))
        .collect::<Vec<_>>()
        .join("; ");
    let mut by_field: Map<String, Value> = errors
        .into_iter()
        .map(|e| (e.field.replace(' ', "_"), capitalised(&e.message).into()))
        .collect();
    by_field.insert("one".into(), summary.into());
    Some(by_field)
}

fn import_request(id: &str, fields: &Fields, dry_run: bool) -> ImportRequest {
    ImportRequest {
        group: id.to_owned(),
        text: fields.raw("text").to_owned(),
        dry_run,
        partial: fields.get("partial") == "on",
        hold_slips: true,
        ..ImportRequest::default()
    }
}

/// The pasted list, row by row, as it would be created; nothing is written.
async fn preview(
    State(state): State<AppState>,
    signed: SignedIn,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let fields = match form(&state, &signed, &headers, &body) {
        Ok(fields) => fields,
        Err(page) => return page,
    };
    if let Err(page) = existing_group(&state, &signed, &id).await {
        return page;
    }
    let request = import_request(&id, &fields, true);
    if request.text.trim().is_empty() {
        return students_page(
            &state,
            &signed,
            &id,
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({ "errors": { "text": "Paste the rows of a class list first." } }),
        )
        .await;
    }
    match state.provider.import(&signed.admin, &request).await {
        Ok(outcome) => {
            let twins = twins(
                state.provider.schools.get(&signed.admin.scope.school_id),
                &outcome.rows,
            );
            let page = context(
                &signed,
                "groups",
                json!({ "outcome": outcome, "text": request.text, "group_id": id, "twins": twins }),
            );
            pages(&state).render(StatusCode::OK, "preview.html", page)
        }
        Err(roster::Error::Invalid(m)) => {
            students_page(
                &state,
                &signed,
                &id,
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({ "text": request.text, "errors": { "text": capitalised(&m) } }),
            )
            .await
        }
        Err(e) => roster_error(&state, &signed, e),
    }
}

/// Rows whose names make the same username (two J. Smiths, for `{surname}{first_initial}`),
/// grouped: the preview shows each group side by side with the distinct usernames they get.
fn twins(
    school: Option<&crate::config::School>,
    rows: &[roster::import::RowOutcome],
) -> Vec<Vec<Value>> {
    let Some(school) = school else {
        return Vec::new();
    };
    let usernames = &school.usernames;
    let mut groups: Vec<(String, Vec<Value>)> = Vec::new();
    for row in rows.iter().filter(|r| r.action != Action::Error) {
        let Ok(base) =
            usernames
                .template
                .render(&row.first_name, &row.surname, usernames.max_length)
        else {
            continue;
        };
        let entry = json!({
            "row": row.row,
            "name": format!("{} {}", row.first_name, row.surname),
            "userName": row.user_name,
        });
        match groups.iter_mut().find(|(b, _)| *b == base) {
            Some((_, group)) => group.push(entry),
            None => groups.push((base, vec![entry])),
        }
    }
    groups
        .into_iter()
        .map(|(_, group)| group)
        .filter(|group| group.len() > 1)
        .collect()
}

async fn create_students(
    State(state): State<AppState>,
    signed: SignedIn,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let fields = match form(&state, &signed, &headers, &body) {
        Ok(fields) => fields,
        Err(page) => return page,
    };
    if let Err(page) = existing_group(&state, &signed, &id).await {
        return page;
    }
    let request = import_request(&id, &fields, false);
    match state.provider.import(&signed.admin, &request).await {
        Ok(outcome) if outcome.committed => {
            let created = outcome
                .rows
                .iter()
                .filter(|r| r.action == Action::Created)
                .count();
            let page = context(
                &signed,
                "groups",
                json!({ "outcome": outcome, "created": created, "group_id": id }),
            );
            pages(&state).render(StatusCode::OK, "created.html", page)
        }
        // Rows with errors and no "create the others": the preview again, with them.
        Ok(outcome) => {
            let twins = twins(
                state.provider.schools.get(&signed.admin.scope.school_id),
                &outcome.rows,
            );
            let mut page = context(
                &signed,
                "groups",
                json!({ "outcome": outcome, "text": request.text, "group_id": id, "twins": twins }),
            );
            page["notice"] = "Nothing was created: fix the rows marked below, or tick \"create the other rows\".".into();
            pages(&state).render(StatusCode::UNPROCESSABLE_ENTITY, "preview.html", page)
        }
        Err(e) => roster_error(&state, &signed, e),
    }
}

// ---- Slips ----

async fn slips_page(
    State(state): State<AppState>,
    signed: SignedIn,
    Query(query): Query<NoticeQuery>,
) -> Response {
    let school_id = &signed.admin.scope.school_id;
    let now = state.provider.clock.now();
    let store = &state.provider.store;
    let groups = match state.provider.group_views(&signed.admin).await {
        Ok(groups) => groups,
        Err(e) => return roster_error(&state, &signed, e),
    };
    let mut rows = Vec::new();
    for group in &groups {
        match store.count_slips(school_id, Some(&group.id), now).await {
            Ok(0) => {}
            Ok(count) => rows.push(json!({ "id": group.id, "name": group.name, "count": count })),
            Err(error) => {
                return roster_error(&state, &signed, roster::Error::Internal(error.to_string()));
            }
        }
    }
    // A tutor's slips are their own groups' only.
    let total = if signed.admin.role == StaffRole::Tutor {
        rows.iter().filter_map(|row| row["count"].as_i64()).sum()
    } else {
        match store.count_slips(school_id, None, now).await {
            Ok(total) => total,
            Err(error) => {
                return roster_error(&state, &signed, roster::Error::Internal(error.to_string()));
            }
        }
    };
    let mut page = context(&signed, "slips", json!({ "groups": rows, "total": total }));
    page["notice"] = notice(query.notice.as_deref());
    pages(&state).render(StatusCode::OK, "slips.html", page)
}

/// Takes the pending slips (of one group, or all) out of the store and shows them, once: as
/// the printable page or as a CSV download.
async fn collect_slips(
    State(state): State<AppState>,
    signed: SignedIn,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let fields = match form(&state, &signed, &headers, &body) {
        Ok(fields) => fields,
        Err(page) => return page,
    };
    let group = Some(fields.get("group")).filter(|g| !g.is_empty());
    let csv = fields.get("format") == "csv";
    let taken = match state.provider.collect_slips(&signed.admin, group).await {
        Ok(taken) => taken,
        Err(e) => return roster_error(&state, &signed, e),
    };
    if taken.is_empty() {
        return see_other("/admin/slips?notice=no-slips");
    }
    if csv {
        let mut response = slips::csv(&taken).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/csv; charset=utf-8"),
        );
        headers.insert(
            header::CONTENT_DISPOSITION,
            HeaderValue::from_static("attachment; filename=\"slips.csv\""),
        );
        super::secure_headers(headers, &pages(&state).policy);
        return response;
    }
    pages(&state).page(StatusCode::OK, slips::html(&signed.school_name, &taken))
}

// ---- Users ----

#[derive(Deserialize)]
struct SearchQuery {
    q: Option<String>,
}

async fn users(
    State(state): State<AppState>,
    signed: SignedIn,
    Query(query): Query<SearchQuery>,
) -> Response {
    users_page(
        &state,
        &signed,
        &query.q.unwrap_or_default(),
        StatusCode::OK,
        json!({}),
    )
    .await
}

/// The search page, with the new-tutor form (`extra` refills it after an error).
async fn users_page(
    state: &AppState,
    signed: &SignedIn,
    text: &str,
    status: StatusCode,
    extra: Value,
) -> Response {
    let found = match state.provider.search_people(&signed.admin, text).await {
        Ok(found) => found,
        Err(e) => return roster_error(state, signed, e),
    };
    let mut page = context(
        signed,
        "users",
        json!({
            "q": text,
            "people": found,
            "limit": roster::manage::SEARCH_LIMIT,
            "one": {},
            "errors": {},
        }),
    );
    if let (Value::Object(page), Value::Object(extra)) = (&mut page, extra) {
        page.extend(extra);
    }
    pages(state).render(status, "users.html", page)
}

/// A tutor's account (tutors are then chosen for teaching groups); the first password waits as
/// a slip.
async fn new_tutor(
    State(state): State<AppState>,
    signed: SignedIn,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let fields = match form(&state, &signed, &headers, &body) {
        Ok(fields) => fields,
        Err(page) => return page,
    };
    let (person, one) = person_of(&fields, Role::Tutor);
    if let Some(errors) = field_errors(&state, &signed, &person) {
        return users_page(
            &state,
            &signed,
            "",
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({ "one": one, "errors": errors }),
        )
        .await;
    }
    match state
        .provider
        .create_person(&signed.admin, &person, None, true)
        .await
    {
        Ok(created) => see_other(&format!("/admin/users/{}?notice=tutor-created", created.id)),
        Err(roster::Error::Invalid(m) | roster::Error::Conflict(m)) => {
            users_page(
                &state,
                &signed,
                "",
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({ "one": one, "errors": { "one": capitalised(&m) } }),
            )
            .await
        }
        Err(e) => roster_error(&state, &signed, e),
    }
}

async fn user(
    State(state): State<AppState>,
    signed: SignedIn,
    Path(id): Path<String>,
    Query(query): Query<NoticeQuery>,
) -> Response {
    let person = match state.provider.person_view(&signed.admin, &id).await {
        Ok(person) => person,
        Err(e) => return roster_error(&state, &signed, e),
    };
    let groups = match state.provider.group_views(&signed.admin).await {
        Ok(groups) => groups,
        Err(e) => return roster_error(&state, &signed, e),
    };
    let ours: Vec<Value> = groups
        .iter()
        .filter(|g| g.source == roster::ADMIN_SOURCE)
        .map(|g| json!({ "id": g.id, "name": g.name }))
        .collect();
    let from: Vec<&Value> = ours
        .iter()
        .filter(|g| person.memberships.iter().any(|m| g["id"] == m.id.as_str()))
        .collect();
    let owned = person.row.source == roster::ADMIN_SOURCE;
    let mut page = context(
        &signed,
        "users",
        json!({ "person": person, "groups": ours, "from": from, "owned": owned }),
    );
    page["notice"] = notice(query.notice.as_deref());
    pages(&state).render(StatusCode::OK, "user.html", page)
}

async fn set_active(
    State(state): State<AppState>,
    signed: SignedIn,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let fields = match form(&state, &signed, &headers, &body) {
        Ok(fields) => fields,
        Err(page) => return page,
    };
    let active = fields.get("active") == "true";
    match state.provider.set_active(&signed.admin, &id, active).await {
        Ok(()) => see_other(&format!(
            "/admin/users/{id}?notice={}",
            if active { "enabled" } else { "disabled" }
        )),
        Err(e) => roster_error(&state, &signed, e),
    }
}

async fn reset_password(
    State(state): State<AppState>,
    signed: SignedIn,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(page) = form(&state, &signed, &headers, &body) {
        return page;
    }
    match state.provider.reset_password(&signed.admin, &id).await {
        Ok(_) => see_other(&format!("/admin/users/{id}?notice=password-reset")),
        Err(e) => roster_error(&state, &signed, e),
    }
}

async fn move_user(
    State(state): State<AppState>,
    signed: SignedIn,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let fields = match form(&state, &signed, &headers, &body) {
        Ok(fields) => fields,
        Err(page) => return page,
    };
    match state
        .provider
        .move_member(&signed.admin, &id, fields.get("from"), fields.get("to"))
        .await
    {
        Ok(()) => see_other(&format!("/admin/users/{id}?notice=moved")),
        Err(e) => roster_error(&state, &signed, e),
    }
}

// ---- Directory sources ----

async fn sources(State(state): State<AppState>, signed: SignedIn) -> Response {
    match sync::status(&state.provider, &signed.admin.scope.school_id).await {
        Ok(status) => {
            let page = context(&signed, "sources", json!({ "sources": status }));
            pages(&state).render(StatusCode::OK, "sources.html", page)
        }
        Err(error) => sync_error(&state, &signed, error),
    }
}

async fn plan_source(
    State(state): State<AppState>,
    signed: SignedIn,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    run_source(state, signed, id, headers, body, sync::Mode::DryRun).await
}

async fn approve_source(
    State(state): State<AppState>,
    signed: SignedIn,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    run_source(state, signed, id, headers, body, sync::Mode::Approve).await
}

async fn run_source(
    state: AppState,
    signed: SignedIn,
    id: String,
    headers: HeaderMap,
    body: Bytes,
    mode: sync::Mode,
) -> Response {
    if let Err(page) = form(&state, &signed, &headers, &body) {
        return page;
    }
    tracing::info!(source = %id, actor = %signed.admin.actor.name, ?mode, "sync requested from the console");
    match sync::run(
        &state.provider,
        &signed.admin.scope.school_id,
        &id,
        mode,
        &|_| {},
    )
    .await
    {
        Ok(report) => {
            let page = context(&signed, "sources", json!({ "report": report }));
            pages(&state).render(StatusCode::OK, "plan.html", page)
        }
        Err(error) => sync_error(&state, &signed, error),
    }
}

fn sync_error(state: &AppState, signed: &SignedIn, error: sync::Error) -> Response {
    use sync::Error::*;
    let status = match &error {
        NoSource { .. } => StatusCode::NOT_FOUND,
        Busy(_) | NothingHeld(_) | ApprovalOutdated { .. } => StatusCode::CONFLICT,
        Directory(_) | Google(_) | OneRoster(_) | EmptySearch { .. } | Secret(_) => {
            StatusCode::BAD_GATEWAY
        }
        Roster(_) | Store(_) => {
            return roster_error(state, signed, roster::Error::Internal(error.to_string()));
        }
    };
    error_page(state, status, &capitalised(&error.to_string()))
}

// ---- Staff ----

async fn staff(
    State(state): State<AppState>,
    signed: SignedIn,
    Query(query): Query<NoticeQuery>,
) -> Response {
    let mut page = staff_page(&state, &signed, json!({})).await;
    if let Ok(page) = &mut page {
        page["notice"] = notice(query.notice.as_deref());
    }
    match page {
        Ok(page) => pages(&state).render(StatusCode::OK, "staff.html", page),
        Err(response) => response,
    }
}

/// The staff page's context: each member of staff, the roles, the school's tutors not yet
/// staff; `extra` refills the form after an error.
async fn staff_page(state: &AppState, signed: &SignedIn, extra: Value) -> Result<Value, Response> {
    let staff = state
        .provider
        .staff(&signed.admin)
        .await
        .map_err(|e| roster_error(state, signed, e))?;
    let tutors = state
        .provider
        .tutors(&signed.admin)
        .await
        .map_err(|e| roster_error(state, signed, e))?;
    let candidates: Vec<&roster::Member> = tutors
        .iter()
        .filter(|t| {
            !staff
                .iter()
                .any(|s| s.user_name.eq_ignore_ascii_case(&t.user_name))
        })
        .collect();
    let mut page = context(
        signed,
        "staff",
        json!({ "staff": staff, "candidates": candidates, "errors": {}, "values": {} }),
    );
    if let (Value::Object(page), Value::Object(extra)) = (&mut page, extra) {
        page.extend(extra);
    }
    Ok(page)
}

/// Grants a role (or takes it away: `none`).
async fn grant(
    State(state): State<AppState>,
    signed: SignedIn,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let fields = match form(&state, &signed, &headers, &body) {
        Ok(fields) => fields,
        Err(page) => return page,
    };
    let user_name = fields.get("user_name").trim().to_owned();
    let values = json!({ "user_name": user_name, "role": fields.get("role") });
    let outcome = match StaffRole::parse(fields.get("role")) {
        Some(role) if !user_name.is_empty() => {
            state.provider.grant(&signed.admin, &user_name, role).await
        }
        Some(_) => Err(roster::Error::Invalid(
            "name the member of staff or tutor".into(),
        )),
        None => Err(roster::Error::Invalid(
            "choose a role: admin, tutor, read-only or none".into(),
        )),
    };
    match outcome {
        Ok(_) => see_other("/admin/staff?notice=role-granted"),
        Err(roster::Error::Internal(detail)) => {
            roster_error(&state, &signed, roster::Error::Internal(detail))
        }
        Err(error) => {
            let status = refused_status(&error);
            let extra =
                json!({ "errors": { "grant": capitalised(&error.to_string()) }, "values": values });
            match staff_page(&state, &signed, extra).await {
                Ok(page) => pages(&state).render(status, "staff.html", page),
                Err(response) => response,
            }
        }
    }
}
