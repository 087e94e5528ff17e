//! Teaching groups' courses through SCIM: a school's catalogue fills in titles and adds the
//! modules a course implies (marked `implied`), whatever the client sends back, and refuses
//! codes it does not know. A school without a catalogue takes courses as sent.

use serde_json::{Value, json};

use crate::harness::*;

const SCHOOL_GROUP: &str = "urn:rollcall:params:scim:schemas:extension:school:2.0:Group";

fn group_with(courses: Value) -> Value {
    json!({
        "schemas": [GROUP_URN, SCHOOL_GROUP],
        "displayName": "12A/Ma1",
        SCHOOL_GROUP: { "courses": courses },
    })
}

/// `(code, implied)` of a SCIM group's courses.
fn courses(group: &Value) -> Vec<(String, bool)> {
    group[SCHOOL_GROUP]["courses"]
        .as_array()
        .unwrap_or_else(|| panic!("no courses: {group}"))
        .iter()
        .map(|c| {
            (
                c["value"].as_str().unwrap().to_owned(),
                c["implied"].as_bool().unwrap(),
            )
        })
        .collect()
}

fn owned(pairs: &[(&str, bool)]) -> Vec<(String, bool)> {
    pairs.iter().map(|(c, i)| (c.to_string(), *i)).collect()
}

#[tokio::test]
async fn a_course_brings_its_modules_through_every_kind_of_write() {
    let app = TestApp::start().await;
    let maths = owned(&[
        ("MA-Y1-AS", false),
        ("MA-Y1-STAT", true),
        ("MA-Y1-MECH", true),
    ]);
    let created = app
        .create_group(group_with(json!([{ "value": "MA-Y1-AS" }])))
        .await;
    assert_eq!(courses(&created), maths);
    assert_eq!(
        created[SCHOOL_GROUP]["courses"][1]["display"],
        "Statistics Year 1"
    );
    let id = id_of(&created);

    // A client that PUTs back what it read (implied modules included) changes nothing.
    let reply = app.put(&format!("/Groups/{id}"), &created).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(courses(&reply.body), maths);

    // Adding a course by PATCH adds it after the others; removing the one that implied the
    // modules removes them too.
    let add = patch_request(json!([{ "op": "add",
        "path": format!("{SCHOOL_GROUP}:courses"), "value": [{ "value": "PH-Y1" }] }]));
    let reply = app.patch(&format!("/Groups/{id}"), &add).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let mut with_physics = maths.clone();
    with_physics.push(("PH-Y1".into(), false));
    assert_eq!(courses(&reply.body), with_physics);
    let remove = patch_request(json!([{ "op": "remove",
        "path": format!("{SCHOOL_GROUP}:courses[value eq \"MA-Y1-AS\"]") }]));
    let reply = app.patch(&format!("/Groups/{id}"), &remove).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(courses(&reply.body), owned(&[("PH-Y1", false)]));

    // A module chosen on its own is not implied.
    let reply = app
        .post(
            "/Groups",
            &json!({ "schemas": [GROUP_URN, SCHOOL_GROUP], "displayName": "12B/St1",
                     SCHOOL_GROUP: { "courses": [{ "value": "MA-Y1-STAT" }] } }),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    assert_eq!(courses(&reply.body), owned(&[("MA-Y1-STAT", false)]));
}

#[tokio::test]
async fn an_unknown_course_is_refused_and_nothing_is_written() {
    let app = TestApp::start().await;
    let before = north_totals(&app).await;
    let reply = app
        .post("/Groups", &group_with(json!([{ "value": "LATIN" }])))
        .await;
    reply.assert_error(400, Some("invalidValue"));
    assert!(
        reply.body["detail"].as_str().unwrap().contains("`LATIN`"),
        "{}",
        reply.body
    );
    assert_eq!(north_totals(&app).await, before);

    // South has no catalogue: its identity system's course codes are kept as sent.
    let reply = app
        .send_as(
            &app.other_token,
            reqwest::Method::POST,
            "/Groups",
            Some(&group_with(
                json!([{ "value": "LATIN", "display": "Latin" }]),
            )),
            &[],
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    assert_eq!(reply.body[SCHOOL_GROUP]["courses"][0]["value"], "LATIN");
}
