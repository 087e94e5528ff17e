//! A student's entitlements follow their teaching groups: the SCIM User school extension's
//! read-only `courses`, `GET /api/v1/schools/{school}/users/{id}/entitlements` and the
//! console's user page show them at once, and a `user.entitlements_changed` event (checked by
//! a receiver that verifies every signature) tells the platform of each real change, once per
//! student and write, and of nothing else: joining, leaving, moving between groups, a course
//! with implied modules, a student in two groups with the same course, a group's courses
//! changed or the group deleted; through SCIM PATCH, class imports and the console's move.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::console::Visitor;
use crate::harness::*;
use crate::webhooks::{Mode, Receiver, SECRET, secret_dir, until, webhook_toml};

const SCHOOL_USER: &str = "urn:rollcall:params:scim:schemas:extension:school:2.0:User";
const SCHOOL_GROUP: &str = "urn:rollcall:params:scim:schemas:extension:school:2.0:Group";
pub(crate) const EVENT: &str = "user.entitlements_changed";

pub(crate) const MATHS: [&str; 3] = ["MA-Y1-AS", "MA-Y1-MECH", "MA-Y1-STAT"];

/// The daemon with one webhook that wants only students' course changes, and its receiver.
async fn start() -> (TestApp, Receiver, tempfile::TempDir) {
    let receiver = Receiver::start(SECRET, Mode::Accept).await;
    let (secrets, secret_file) = secret_dir(SECRET);
    let toml = webhook_toml(
        &receiver,
        &secret_file,
        &format!("events = [\"{EVENT}\"]\n"),
    );
    let app = TestApp::start_with(|text| format!("{text}{toml}")).await;
    (app, receiver, secrets)
}

fn student(user_name: &str, role: &str) -> Value {
    json!({
        "schemas": [USER_URN, SCHOOL_USER],
        "userName": user_name,
        SCHOOL_USER: { "role": role },
    })
}

async fn scim_group(app: &TestApp, name: &str, courses: &[&str], members: &[&str]) -> String {
    let courses: Vec<Value> = courses.iter().map(|c| json!({ "value": c })).collect();
    let members: Vec<Value> = members.iter().map(|m| json!({ "value": m })).collect();
    id_of(
        &app.create_group(json!({
            "schemas": [GROUP_URN, SCHOOL_GROUP],
            "displayName": name,
            "members": members,
            SCHOOL_GROUP: { "courses": courses },
        }))
        .await,
    )
}

async fn patch_members(app: &TestApp, group: &str, op: &str, user: &str) {
    let operation = match op {
        "add" => json!([{ "op": "add", "path": "members", "value": [{ "value": user }] }]),
        _ => json!([{ "op": "remove", "path": format!("members[value eq \"{user}\"]") }]),
    };
    let reply = app
        .patch(&format!("/Groups/{group}"), &patch_request(operation))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
}

/// One course as SCIM shows it: `(value, implied, impliedBy, groups)`.
type ScimCourse = (String, bool, Vec<String>, Vec<String>);

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|list| {
            list.iter()
                .map(|v| v.as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The `courses` of a SCIM User document (none when absent).
fn scim_courses(user: &Value) -> Vec<ScimCourse> {
    user[SCHOOL_USER]["courses"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|c| {
                    (
                        c["value"].as_str().unwrap().to_owned(),
                        c["implied"].as_bool().unwrap(),
                        strings(&c["impliedBy"]),
                        strings(&c["groups"]),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn course(code: &str, implied_by: &[&str], groups: &[&str]) -> ScimCourse {
    (
        code.to_owned(),
        !implied_by.is_empty(),
        implied_by.iter().map(|s| s.to_string()).collect(),
        groups.iter().map(|s| s.to_string()).collect(),
    )
}

/// What GET /Users/{id} shows.
async fn courses_of(app: &TestApp, user: &str) -> Vec<ScimCourse> {
    let reply = app.get(&format!("/Users/{user}")).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    scim_courses(&reply.body)
}

/// What the admin API shows: `(code, implied, impliedBy, group ids)`, after checking the
/// envelope.
async fn api_courses(app: &TestApp, user: &str) -> Vec<ScimCourse> {
    let reply = app
        .api(
            Method::GET,
            &format!("/schools/north/users/{user}/entitlements"),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["user"], user, "{}", reply.body);
    assert!(reply.body["userName"].is_string(), "{}", reply.body);
    reply.body["entitlements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            assert!(e["title"].is_string(), "{e}");
            (
                e["code"].as_str().unwrap().to_owned(),
                e["implied"].as_bool().unwrap(),
                strings(&e["impliedBy"]),
                e["groups"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|g| g["id"].as_str().unwrap().to_owned())
                    .collect(),
            )
        })
        .collect()
}

/// Asserts that SCIM and the admin API both show `want`.
async fn assert_courses(app: &TestApp, user: &str, want: &[ScimCourse]) {
    assert_eq!(courses_of(app, user).await, want, "SCIM");
    assert_eq!(api_courses(app, user).await, want, "admin API");
}

/// How many events the outbox holds: each write puts its events there before it answers, so
/// this counts every event the writes so far made, delivered or not.
pub(crate) async fn events_written(app: &TestApp) -> i64 {
    let status = app
        .state
        .provider
        .store
        .outbox_status(time::OffsetDateTime::now_utc() - std::time::Duration::from_secs(3600))
        .await
        .unwrap();
    status
        .iter()
        .map(|s| s.pending + s.failed + s.delivered)
        .sum()
}

/// `(added, removed)` of each event the receiver accepted for `user`, in order, once each.
pub(crate) fn received(receiver: &Receiver, user: &str) -> Vec<(Vec<String>, Vec<String>)> {
    let mut ids = Vec::new();
    let mut out = Vec::new();
    for delivery in receiver.accepted() {
        assert_eq!(delivery.event_type, EVENT, "{}", delivery.body);
        if delivery.subject != user || ids.contains(&delivery.id) {
            continue;
        }
        ids.push(delivery.id.clone());
        let data = &delivery.json["data"];
        assert_eq!(data["user"], user, "{}", delivery.body);
        assert!(data["entitlements"].is_array(), "{}", delivery.body);
        out.push((strings(&data["added"]), strings(&data["removed"])));
    }
    out
}

pub(crate) fn change(added: &[&str], removed: &[&str]) -> (Vec<String>, Vec<String>) {
    (
        added.iter().map(|s| s.to_string()).collect(),
        removed.iter().map(|s| s.to_string()).collect(),
    )
}

/// Waits until the receiver has `want` for `user`, and checks it got nothing else.
async fn assert_received(receiver: &Receiver, user: &str, want: &[(Vec<String>, Vec<String>)]) {
    until(&format!("{} events for {user}", want.len()), || async {
        (received(receiver, user).len() >= want.len()).then_some(())
    })
    .await;
    assert_eq!(received(receiver, user), want);
    assert!(receiver.rejected().is_empty(), "{:?}", receiver.rejected());
}

#[tokio::test]
async fn scim_membership_changes_show_at_once_and_each_real_change_is_one_event() {
    let (app, receiver, _secrets) = start().await;
    let alice = id_of(&app.create_user(student("alice", "student")).await);
    // No role: a student, as for admins' accounts.
    let bob = id_of(&app.create_user(user("bob")).await);
    let tom = id_of(&app.create_user(student("tom", "tutor")).await);
    let ma = scim_group(&app, "12A/Ma1", &["MA-Y1-AS"], &[]).await;
    let ma_b = scim_group(&app, "12B/Ma1", &["MA-Y1-AS"], &[]).await;
    let stats = scim_group(&app, "12A/St", &["MA-Y1-STAT"], &[]).await;
    assert_eq!(events_written(&app).await, 0);
    assert_courses(&app, &alice, &[]).await;

    // Joining: the course and the modules it implies, marked with what implies them.
    patch_members(&app, &ma, "add", &alice).await;
    patch_members(&app, &ma, "add", &tom).await;
    let maths = [
        course("MA-Y1-AS", &[], &[&ma]),
        course("MA-Y1-MECH", &["MA-Y1-AS"], &[&ma]),
        course("MA-Y1-STAT", &["MA-Y1-AS"], &[&ma]),
    ];
    assert_courses(&app, &alice, &maths).await;
    let reply = app.get(&format!("/Users/{alice}")).await;
    let stat = &reply.body[SCHOOL_USER]["courses"][2];
    assert_eq!(stat["display"], "Statistics Year 1", "{}", reply.body);
    assert_eq!(reply.body[SCHOOL_USER]["role"], "student");
    // A tutor teaches the group's courses and takes none.
    assert_courses(&app, &tom, &[]).await;
    assert!(
        app.get(&format!("/Users/{tom}")).await.body[SCHOOL_USER]
            .get("courses")
            .is_none()
    );
    assert_eq!(events_written(&app).await, 1);

    // A second group with the same course: nothing new. Leaving the first keeps it.
    patch_members(&app, &ma_b, "add", &alice).await;
    assert_eq!(
        courses_of(&app, &alice).await[0],
        course("MA-Y1-AS", &[], &[&ma, &ma_b])
    );
    patch_members(&app, &ma, "remove", &alice).await;
    assert_courses(
        &app,
        &alice,
        &[
            course("MA-Y1-AS", &[], &[&ma_b]),
            course("MA-Y1-MECH", &["MA-Y1-AS"], &[&ma_b]),
            course("MA-Y1-STAT", &["MA-Y1-AS"], &[&ma_b]),
        ],
    )
    .await;
    assert_eq!(events_written(&app).await, 1);

    // Chosen in one group and implied in another: chosen. Leaving the maths group keeps it.
    // (The groups of a course are in the order of their names.)
    patch_members(&app, &stats, "add", &alice).await;
    assert_eq!(
        courses_of(&app, &alice).await[2],
        course("MA-Y1-STAT", &[], &[&stats, &ma_b])
    );
    assert_eq!(events_written(&app).await, 1);
    patch_members(&app, &ma_b, "remove", &alice).await;
    assert_courses(&app, &alice, &[course("MA-Y1-STAT", &[], &[&stats])]).await;
    assert_eq!(events_written(&app).await, 2);

    // A group's courses changed: every member's event.
    patch_members(&app, &stats, "add", &bob).await;
    let physics = patch_request(json!([{
        "op": "replace",
        "path": format!("{SCHOOL_GROUP}:courses"),
        "value": [{ "value": "PH-Y1" }],
    }]));
    let reply = app.patch(&format!("/Groups/{stats}"), &physics).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_courses(&app, &alice, &[course("PH-Y1", &[], &[&stats])]).await;
    assert_courses(&app, &bob, &[course("PH-Y1", &[], &[&stats])]).await;
    // A rename changes no one's courses.
    let rename = patch_request(json!([
        { "op": "replace", "path": "displayName", "value": "12A/Ph1" }
    ]));
    let reply = app.patch(&format!("/Groups/{stats}"), &rename).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(events_written(&app).await, 5);

    // The group deleted: its courses go.
    let reply = app.delete(&format!("/Groups/{stats}")).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert_courses(&app, &alice, &[]).await;
    assert!(
        app.get(&format!("/Users/{alice}")).await.body[SCHOOL_USER]
            .get("courses")
            .is_none()
    );
    assert_eq!(events_written(&app).await, 7);

    assert_received(
        &receiver,
        &alice,
        &[
            change(&MATHS, &[]),
            change(&[], &["MA-Y1-AS", "MA-Y1-MECH"]),
            change(&["PH-Y1"], &["MA-Y1-STAT"]),
            change(&[], &["PH-Y1"]),
        ],
    )
    .await;
    assert_received(
        &receiver,
        &bob,
        &[
            change(&["MA-Y1-STAT"], &[]),
            change(&["PH-Y1"], &["MA-Y1-STAT"]),
            change(&[], &["PH-Y1"]),
        ],
    )
    .await;
    assert_received(&receiver, &tom, &[]).await;
    // The event carries the courses as the admin API shows them.
    let last = receiver
        .accepted()
        .into_iter()
        .find(|d| d.subject == bob)
        .unwrap();
    assert_eq!(
        last.json["data"]["entitlements"],
        json!([{ "code": "MA-Y1-STAT", "title": "Statistics Year 1", "implied": false,
                 "impliedBy": [], "groups": [{ "name": "12A/St", "id": stats }] }]),
        "{}",
        last.body
    );
    app.stop().await;
}

#[tokio::test]
async fn the_scim_attribute_is_read_only_projected_and_not_filterable() {
    let (app, _receiver, _secrets) = start().await;
    let created = app.create_user(student("carol", "student")).await;
    let carol = id_of(&created);
    let ma = scim_group(&app, "12A/Ma1", &["MA-Y1-AS"], &[&carol]).await;
    let maths = [
        course("MA-Y1-AS", &[], &[&ma]),
        course("MA-Y1-MECH", &["MA-Y1-AS"], &[&ma]),
        course("MA-Y1-STAT", &["MA-Y1-AS"], &[&ma]),
    ];

    // A client that sends courses back (or invents some) is ignored, as for any read-only
    // attribute; the reply to each write shows the courses.
    let mut document = app.get(&format!("/Users/{carol}")).await.body;
    document[SCHOOL_USER]["courses"] = json!([{ "value": "PH-Y1", "display": "Physics" }]);
    document["displayName"] = "Carol".into();
    let reply = app.put(&format!("/Users/{carol}"), &document).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(scim_courses(&reply.body), maths);
    let reply = app
        .patch(
            &format!("/Users/{carol}"),
            &patch_request(json!([{ "op": "replace", "path": "displayName", "value": "C" }])),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(scim_courses(&reply.body), maths);
    let reply = app
        .patch(
            &format!("/Users/{carol}"),
            &patch_request(json!([{
                "op": "add",
                "path": format!("{SCHOOL_USER}:courses"),
                "value": [{ "value": "PH-Y1" }],
            }])),
        )
        .await;
    reply.assert_error(400, Some("mutability"));
    assert!(!app.store_holds("PH-Y1"), "a course was stored on a user");
    let reply = app
        .post(
            "/Users",
            &json!({
                "schemas": [USER_URN, SCHOOL_USER],
                "userName": "dave",
                SCHOOL_USER: { "role": "student", "courses": [{ "value": "PH-Y1" }] },
            }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    assert!(scim_courses(&reply.body).is_empty(), "{}", reply.body);

    // Lists carry it, with or without `groups`; projections keep or drop it.
    let list = app.filter("/Users", "userName eq \"carol\"").await;
    assert_eq!(scim_courses(&list.body["Resources"][0]), maths);
    for (query, shown) in [
        ("excludedAttributes=groups", true),
        ("attributes=userName", false),
        ("attributes=courses", true),
        (
            "attributes=urn:rollcall:params:scim:schemas:extension:school:2.0:User:courses.value",
            true,
        ),
        (
            "excludedAttributes=urn:rollcall:params:scim:schemas:extension:school:2.0:User:courses",
            false,
        ),
    ] {
        let reply = app.get(&format!("/Users?{query}")).await;
        assert_eq!(reply.status, StatusCode::OK, "{query}: {}", reply.body);
        let carol = reply.body["Resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == carol.as_str())
            .unwrap()
            .clone();
        assert_eq!(
            carol[SCHOOL_USER].get("courses").is_some(),
            shown,
            "{query}: {carol}"
        );
        if query.contains("excludedAttributes=groups") {
            assert!(carol.get("groups").is_none(), "{carol}");
            assert_eq!(scim_courses(&carol), maths);
        }
    }
    let reply = app
        .get(&format!("/Users/{}?attributes=courses.value", carol))
        .await;
    assert_eq!(
        reply.body[SCHOOL_USER]["courses"][0],
        json!({ "value": "MA-Y1-AS" }),
        "{}",
        reply.body
    );

    // Computed when read: no filter or sort by it.
    app.filter("/Users", "courses.value eq \"MA-Y1-AS\"")
        .await
        .assert_error(400, Some("invalidFilter"));
    app.get("/Users?sortBy=courses.value")
        .await
        .assert_error(400, Some("invalidValue"));
    app.stop().await;
}

/// A class list with student numbers, so a second import finds the same accounts.
const CLASS: &str = "First name\tSurname\tEmail\tYear\tUPN\n\
    Ada\tLovelace\tada@north.example\t7\tA100000000001\n\
    Alan\tTuring\talan@north.example\t7\tA100000000002\n";

async fn api_group(app: &TestApp, name: &str, courses: &[&str]) -> String {
    let reply = app
        .api(
            Method::POST,
            "/schools/north/groups",
            Some(ApiBody::Json(&json!({ "name": name, "courses": courses }))),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    reply.body["id"].as_str().unwrap().to_owned()
}

/// Imports `text` into group `name` of north; returns the accounts' ids by username.
async fn import(app: &TestApp, name: &str, query: &str, text: &str) -> Vec<(String, String)> {
    let reply = app.paste(name, query, text).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    rows(&reply)
        .iter()
        .map(|row| {
            (
                row["userName"].as_str().unwrap().to_owned(),
                row["id"]
                    .as_str()
                    .unwrap_or_else(|| panic!("no id: {row}"))
                    .to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn imports_and_moves_in_the_console_make_one_event_per_real_change() {
    let (app, receiver, _secrets) = start().await;
    let physics = api_group(&app, "7 Ph", &["PH-Y1"]).await;

    // A class imported into a group with a course: each new student has it.
    let first = import(
        &app,
        "7 Ph",
        "",
        "Ada\tLovelace\tada@north.example\t7\tA100000000001\n",
    )
    .await;
    let ada = first[0].1.clone();
    assert_courses(&app, &ada, &[course("PH-Y1", &[], &[&physics])]).await;
    assert_eq!(events_written(&app).await, 1);

    // The class imported into a new maths group: Ada is found again, Alan is new; both gain
    // the course and its modules, in one event each.
    let second = import(&app, "7 Ma", "course=MA-Y1-AS", CLASS).await;
    assert_eq!(second[0], first[0]);
    let alan = second[1].1.clone();
    let maths_group = app
        .api(Method::GET, "/schools/north/groups/7%20Ma", None)
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_courses(
        &app,
        &alan,
        &[
            course("MA-Y1-AS", &[], &[&maths_group]),
            course("MA-Y1-MECH", &["MA-Y1-AS"], &[&maths_group]),
            course("MA-Y1-STAT", &["MA-Y1-AS"], &[&maths_group]),
        ],
    )
    .await;
    assert_eq!(events_written(&app).await, 3);

    // Ada imported into another group with a course she has: no event.
    let again = import(
        &app,
        "7 Ph B",
        "course=PH-Y1",
        "Ada\tLovelace\tada@north.example\t7\tA100000000001\n",
    )
    .await;
    assert_eq!(again[0], first[0]);
    assert_eq!(events_written(&app).await, 3);

    // Moved in the console, each in one write: Alan from maths to physics (one event, with
    // what he gained and lost); Ada from one maths group to another (none).
    let maths_b = api_group(&app, "7 Ma B", &["MA-Y1-AS"]).await;
    let mut admin = Visitor::admin_of(&app, "north").await;
    let page = format!("/admin/users/{alan}");
    let moved = admin
        .submit(
            &page,
            &format!("{page}/move"),
            &[("from", &maths_group), ("to", &physics)],
        )
        .await;
    assert_eq!(moved.location(), format!("{page}?notice=moved"));
    assert_courses(&app, &alan, &[course("PH-Y1", &[], &[&physics])]).await;
    assert_eq!(events_written(&app).await, 4);
    let page = format!("/admin/users/{ada}");
    let moved = admin
        .submit(
            &page,
            &format!("{page}/move"),
            &[("from", &maths_group), ("to", &maths_b)],
        )
        .await;
    assert_eq!(moved.location(), format!("{page}?notice=moved"));
    assert_eq!(courses_of(&app, &ada).await[0].3, vec![maths_b]);
    assert_eq!(events_written(&app).await, 4);

    // The console's user page shows a student's courses.
    let view = admin.get(&format!("/admin/users/{ada}")).await;
    assert_eq!(view.status, StatusCode::OK);
    assert!(
        view.body.contains("Physics Year 1 (<code>PH-Y1</code>)"),
        "{}",
        view.body
    );
    assert!(
        view.body
            .contains("Statistics Year 1 (<code>MA-Y1-STAT</code>, module of MA-Y1-AS)"),
        "{}",
        view.body
    );

    assert_received(
        &receiver,
        &ada,
        &[change(&["PH-Y1"], &[]), change(&MATHS, &[])],
    )
    .await;
    assert_received(
        &receiver,
        &alan,
        &[change(&MATHS, &[]), change(&["PH-Y1"], &MATHS)],
    )
    .await;

    // Another school's admin, or an unknown id: 404.
    let reply = app
        .api_as(
            Some(&app.other_admin_token),
            Method::GET,
            &format!("/schools/south/users/{ada}/entitlements"),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.body);
    let reply = app
        .api(
            Method::GET,
            "/schools/north/users/00000000-0000-0000-0000-000000000000/entitlements",
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.body);
    app.stop().await;
}

#[tokio::test]
async fn a_student_who_becomes_a_tutor_takes_no_more_courses() {
    let (app, receiver, _secrets) = start().await;
    let eve = id_of(&app.create_user(student("eve", "student")).await);
    let physics = scim_group(&app, "12A/Ph1", &["PH-Y1"], &[&eve]).await;
    assert_courses(&app, &eve, &[course("PH-Y1", &[], &[&physics])]).await;
    let role = |role: &str| {
        patch_request(json!([{
            "op": "replace",
            "path": format!("{SCHOOL_USER}:role"),
            "value": role,
        }]))
    };
    let reply = app.patch(&format!("/Users/{eve}"), &role("tutor")).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert!(scim_courses(&reply.body).is_empty(), "{}", reply.body);
    assert_courses(&app, &eve, &[]).await;
    // Another change to her account tells nothing of courses.
    let reply = app
        .patch(
            &format!("/Users/{eve}"),
            &patch_request(json!([{ "op": "replace", "path": "displayName", "value": "Eve" }])),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let reply = app.patch(&format!("/Users/{eve}"), &role("student")).await;
    assert_eq!(
        scim_courses(&reply.body),
        [course("PH-Y1", &[], &[&physics])]
    );
    assert_eq!(events_written(&app).await, 3);
    assert_received(
        &receiver,
        &eve,
        &[
            change(&["PH-Y1"], &[]),
            change(&[], &["PH-Y1"]),
            change(&["PH-Y1"], &[]),
        ],
    )
    .await;
    app.stop().await;
}
