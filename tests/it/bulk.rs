//! `/Bulk` (RFC 7644 §3.7): bulkId references (including forward ones), every method, failOnErrors,
//! per-operation errors, the advertised limits, and versions inside operations.

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::*;

/// Sends a BulkRequest as `north`, asserting the request as a whole answered 200.
async fn bulk(app: &TestApp, operations: Vec<Value>) -> Vec<Value> {
    let reply = app.post("/Bulk", &bulk_request(operations)).await;
    assert_eq!(reply.status, 200, "bulk: {}", reply.body);
    assert_eq!(
        reply.body["schemas"],
        json!(["urn:ietf:params:scim:api:messages:2.0:BulkResponse"])
    );
    reply.body["Operations"]
        .as_array()
        .unwrap_or_else(|| panic!("no Operations: {}", reply.body))
        .clone()
}

/// The id at the end of a `location`.
#[track_caller]
fn id_in(location: &Value) -> String {
    let location = location.as_str().expect("location");
    location.rsplit('/').next().expect("id").to_owned()
}

fn post_user(bulk_id: &str, user_name: &str) -> Value {
    json!({ "method": "POST", "path": "/Users", "bulkId": bulk_id, "data": user(user_name) })
}

fn member_ids(group: &Value) -> Vec<String> {
    let mut ids: Vec<String> = group["members"]
        .as_array()
        .map(|m| {
            m.iter()
                .map(|x| x["value"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default();
    ids.sort();
    ids
}

#[tokio::test]
async fn users_and_a_group_referring_to_them_by_bulk_id_are_created_even_out_of_order() {
    let app = TestApp::start().await;
    let ops = bulk(
        &app,
        vec![
            // Listed before the user it refers to: it must wait for `u2`.
            json!({
                "method": "POST", "path": "/Groups", "bulkId": "early",
                "data": { "schemas": [GROUP_URN], "displayName": "Early birds",
                          "members": [{ "value": "bulkId:u2" }] }
            }),
            post_user("u1", "ada@north.example"),
            post_user("u2", "grace@north.example"),
            json!({
                "method": "POST", "path": "/Groups", "bulkId": "g",
                "data": { "schemas": [GROUP_URN], "displayName": "7A",
                          "members": [{ "value": "bulkId:u1" }, { "value": "bulkId:u2" }] }
            }),
        ],
    )
    .await;
    assert_eq!(ops.len(), 4, "{ops:?}");
    // Responses come in request order, each naming its method and bulkId.
    for (op, (bulk_id, endpoint)) in ops.iter().zip([
        ("early", "Groups"),
        ("u1", "Users"),
        ("u2", "Users"),
        ("g", "Groups"),
    ]) {
        assert_eq!(op["method"], "POST", "{op}");
        assert_eq!(op["bulkId"], bulk_id, "{op}");
        assert_eq!(op["status"], "201", "{op}");
        assert_eq!(op["version"], "W/\"1\"", "{op}");
        let location = op["location"].as_str().unwrap();
        assert!(
            location.starts_with(&format!("{}/{endpoint}/", app.scim)),
            "{location}"
        );
        let read = app.get(location).await;
        assert_eq!(read.status, 200, "{}", read.body);
        assert_eq!(read.body["meta"]["location"], location);
    }
    let u1 = id_in(&ops[1]["location"]);
    let u2 = id_in(&ops[2]["location"]);

    let group = app.get(ops[3]["location"].as_str().unwrap()).await.body;
    let mut both = vec![u1.clone(), u2.clone()];
    both.sort();
    assert_eq!(member_ids(&group), both, "{group}");
    let early = app.get(ops[0]["location"].as_str().unwrap()).await.body;
    assert_eq!(member_ids(&early), vec![u2.clone()], "{early}");

    // The membership is real on the user's side too.
    let grace = app.get(&format!("/Users/{u2}")).await.body;
    let mut groups: Vec<&str> = grace["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["display"].as_str().unwrap())
        .collect();
    groups.sort();
    assert_eq!(groups, ["7A", "Early birds"], "{grace}");
    assert_eq!(north_totals(&app).await, (2, 2));
}

#[tokio::test]
async fn a_bulk_id_that_is_a_prefix_of_another_does_not_corrupt_the_reference() {
    let app = TestApp::start().await;
    // `u1` is a prefix of `u10`…`u19`: `bulkId:u10` must not become `<id of u1>0`.
    let mut operations: Vec<Value> = (1..=19)
        .map(|n| post_user(&format!("u{n}"), &format!("pupil{n}@north.example")))
        .collect();
    let members: Vec<Value> = (10..=19)
        .map(|n| json!({ "value": format!("bulkId:u{n}") }))
        .collect();
    operations.push(json!({
        "method": "POST", "path": "/Groups", "bulkId": "g",
        "data": { "schemas": [GROUP_URN], "displayName": "Teens", "members": members }
    }));
    let ops = bulk(&app, operations).await;
    let group = &ops[19];
    assert_eq!(group["status"], "201", "{group}");
    let mut expected: Vec<String> = ops[9..19].iter().map(|op| id_in(&op["location"])).collect();
    expected.sort();
    let group = app.get(group["location"].as_str().unwrap()).await.body;
    assert_eq!(member_ids(&group), expected, "{group}");
}

#[tokio::test]
async fn put_patch_and_delete_work_by_id_and_by_bulk_id() {
    let app = TestApp::start().await;
    let ada = id_of(&app.create_user(user("ada@north.example")).await);
    let old = id_of(&app.create_user(user("old@north.example")).await);
    let ops = bulk(
        &app,
        vec![
            post_user("new", "new@north.example"),
            json!({ "method": "PATCH", "path": "/Users/bulkId:new",
                    "data": patch_request(json!([{ "op": "replace", "path": "displayName", "value": "Newcomer" }])) }),
            json!({ "method": "PUT", "path": format!("/Users/{ada}"),
                    "data": { "schemas": [USER_URN], "userName": "ada.lovelace@north.example", "title": "Countess" } }),
            json!({ "method": "PATCH", "path": format!("/Users/{ada}"),
                    "data": patch_request(json!([{ "op": "replace", "path": "active", "value": false }])) }),
            post_user("temp", "temp@north.example"),
            json!({ "method": "PUT", "path": "/Users/bulkId:temp",
                    "data": { "schemas": [USER_URN], "userName": "temp2@north.example" } }),
            json!({ "method": "DELETE", "path": "/Users/bulkId:temp" }),
            json!({ "method": "DELETE", "path": format!("/Users/{old}") }),
        ],
    )
    .await;
    let statuses: Vec<&str> = ops
        .iter()
        .map(|op| op["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        ["201", "200", "200", "200", "201", "200", "204", "204"],
        "{ops:?}"
    );
    let new = id_in(&ops[0]["location"]);
    let temp = id_in(&ops[4]["location"]);
    // Paths with a bulkId answer with the real resource's location.
    assert_eq!(ops[1]["location"], format!("{}/Users/{new}", app.scim));
    assert_eq!(ops[1]["version"], "W/\"2\"");
    assert_eq!(ops[2]["location"], format!("{}/Users/{ada}", app.scim));
    assert_eq!(ops[2]["version"], "W/\"2\"");
    assert_eq!(ops[3]["version"], "W/\"3\"");
    assert_eq!(ops[5]["location"], format!("{}/Users/{temp}", app.scim));
    assert_eq!(ops[6]["location"], format!("{}/Users/{temp}", app.scim));
    assert_eq!(ops[7]["location"], format!("{}/Users/{old}", app.scim));
    for (op, method) in ops.iter().zip([
        "POST", "PATCH", "PUT", "PATCH", "POST", "PUT", "DELETE", "DELETE",
    ]) {
        assert_eq!(op["method"], method, "{op}");
    }

    let read = app.get(&format!("/Users/{new}")).await.body;
    assert_eq!(read["displayName"], "Newcomer", "{read}");
    let read = app.get(&format!("/Users/{ada}")).await.body;
    assert_eq!(read["userName"], "ada.lovelace@north.example", "{read}");
    assert_eq!(read["title"], "Countess", "{read}");
    assert_eq!(read["active"], false, "{read}");
    assert_eq!(read["meta"]["version"], "W/\"3\"");
    app.get(&format!("/Users/{temp}"))
        .await
        .assert_error(404, None);
    app.get(&format!("/Users/{old}"))
        .await
        .assert_error(404, None);
    assert_eq!(north_totals(&app).await, (2, 0));
}

#[tokio::test]
async fn fail_on_errors_stops_at_the_first_error_and_runs_nothing_after_it() {
    let app = TestApp::start().await;
    let reply = app
        .post(
            "/Bulk",
            &json!({
                "schemas": [BULK_URN],
                "failOnErrors": 1,
                "Operations": [
                    post_user("a", "a@north.example"),
                    { "method": "POST", "path": "/Users", "bulkId": "bad",
                      "data": { "schemas": [USER_URN], "userName": "b@north.example", "active": "maybe" } },
                    post_user("c", "c@north.example"),
                    { "method": "DELETE", "path": "/Users/bulkId:a" },
                ]
            }),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let ops = reply.body["Operations"].as_array().unwrap();
    assert_eq!(ops.len(), 2, "later operations must be absent: {ops:?}");
    assert_eq!(ops[0]["status"], "201");
    assert_eq!(ops[1]["bulkId"], "bad");
    assert_eq!(ops[1]["status"], "400");
    assert_eq!(ops[1]["response"]["scimType"], "invalidValue");
    // The operations after the error did not run: `c` was not created and `a` not deleted.
    let names = user_names(&app.get("/Users").await.body);
    assert_eq!(names, ["a@north.example"]);
    assert_eq!(
        total_as(
            &app,
            &app.token,
            "/Users?filter=userName%20eq%20%22c%40north.example%22"
        )
        .await,
        0
    );
}

#[tokio::test]
async fn fail_on_errors_two_tolerates_one_error() {
    let app = TestApp::start().await;
    let reply = app
        .post(
            "/Bulk",
            &json!({
                "schemas": [BULK_URN],
                "failOnErrors": 2,
                "Operations": [
                    { "method": "DELETE", "path": "/Users/no-such-user" },
                    post_user("a", "a@north.example"),
                    { "method": "PATCH", "path": "/Users/nobody-either",
                      "data": patch_request(json!([{ "op": "replace", "path": "title", "value": "x" }])) },
                    post_user("b", "b@north.example"),
                ]
            }),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let statuses: Vec<&str> = reply.body["Operations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|op| op["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["404", "201", "404"]);
    assert_eq!(
        user_names(&app.get("/Users").await.body),
        ["a@north.example"]
    );
}

#[tokio::test]
async fn a_failing_operation_gets_its_own_error_while_the_others_succeed() {
    let app = TestApp::start().await;
    app.create_user(user("taken@north.example")).await;
    let ops = bulk(
        &app,
        vec![
            post_user("ok1", "one@north.example"),
            post_user("dup", "TAKEN@north.example"),
            json!({ "method": "POST", "path": "/Users", "bulkId": "typed",
                    "data": { "schemas": [USER_URN], "userName": 5 } }),
            json!({ "method": "POST", "path": "/Users", "bulkId": "unknown-attr",
                    "data": { "schemas": [USER_URN], "userName": "x@north.example", "shoeSize": 9 } }),
            json!({ "method": "PUT", "path": "/Users/does-not-exist",
                    "data": user("ghost@north.example") }),
            json!({ "method": "POST", "path": "/Teachers", "bulkId": "where",
                    "data": user("t@north.example") }),
            post_user("ok2", "two@north.example"),
        ],
    )
    .await;
    let summary: Vec<(&str, Option<&str>)> = ops
        .iter()
        .map(|op| {
            (
                op["status"].as_str().unwrap(),
                op["response"]["scimType"].as_str(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("201", None),
            ("409", Some("uniqueness")),
            ("400", Some("invalidValue")),
            ("400", Some("invalidSyntax")),
            ("404", None),
            ("400", Some("invalidPath")),
            ("201", None),
        ],
        "{ops:?}"
    );
    for op in ops.iter().filter(|op| op["response"].is_object()) {
        assert_eq!(op["response"]["schemas"][0], ERROR_URN, "{op}");
        assert_eq!(op["response"]["status"], op["status"], "{op}");
        assert!(op.get("location").is_none(), "{op}");
    }
    assert_eq!(
        user_names(&app.get("/Users").await.body),
        [
            "one@north.example",
            "taken@north.example",
            "two@north.example"
        ]
    );
}

#[tokio::test]
async fn more_than_max_operations_is_413_and_nothing_is_created() {
    let app = TestApp::start().await;
    let operations: Vec<Value> = (0..1001)
        .map(|n| post_user(&format!("u{n}"), &format!("u{n}@north.example")))
        .collect();
    let reply = app.post("/Bulk", &bulk_request(operations)).await;
    assert_eq!(reply.status, 413, "{}", reply.body);
    assert_eq!(reply.body["schemas"][0], ERROR_URN);
    assert_eq!(reply.body["status"], "413");
    assert_eq!(reply.header("content-type"), Some("application/scim+json"));
    assert_eq!(north_totals(&app).await, (0, 0));
}

#[tokio::test]
async fn exactly_max_operations_is_accepted() {
    let app = TestApp::start().await;
    let operations: Vec<Value> = (0..1000)
        .map(|n| json!({ "method": "DELETE", "path": format!("/Users/missing-{n}") }))
        .collect();
    let ops = bulk(&app, operations).await;
    assert_eq!(ops.len(), 1000);
    assert!(ops.iter().all(|op| op["status"] == "404"));
}

#[tokio::test]
async fn a_body_over_max_payload_size_is_413_and_nothing_is_created() {
    let app = TestApp::start().await;
    let max = app.state.provider.registry.bulk_max_payload_size;
    assert_eq!(max, 1_048_576);
    let big = "x".repeat(max);
    let reply = app
        .post(
            "/Bulk",
            &bulk_request(vec![
                post_user("small", "small@north.example"),
                json!({ "method": "POST", "path": "/Users", "bulkId": "big",
                        "data": { "schemas": [USER_URN], "userName": "big@north.example", "nickName": big } }),
            ]),
        )
        .await;
    reply.assert_error(413, None);
    assert_eq!(north_totals(&app).await, (0, 0));
}

#[tokio::test]
async fn a_malformed_bulk_request_is_400_invalid_syntax_and_runs_nothing() {
    let app = TestApp::start().await;
    let raw = app.send_raw(Method::POST, "/Bulk", "{\"schemas\": [").await;
    raw.assert_error(400, Some("invalidSyntax"));
    let valid = post_user("a", "a@north.example");
    for body in [
        json!([valid.clone()]),
        json!({ "schemas": [BULK_URN] }),
        json!({ "schemas": [BULK_URN], "Operations": {} }),
        json!({ "schemas": [PATCH_URN], "Operations": [valid.clone()] }),
        json!({ "schemas": [BULK_URN], "Operations": [valid.clone(), "DELETE /Users/x"] }),
        json!({ "schemas": [BULK_URN], "Operations": [valid.clone(), { "method": "GET", "path": "/Users" }] }),
        json!({ "schemas": [BULK_URN], "Operations": [valid.clone(), { "method": "POST", "path": "/Users", "data": user("b@north.example") }] }),
        json!({ "schemas": [BULK_URN], "Operations": [valid.clone(), post_user("a", "c@north.example")] }),
        json!({ "schemas": [BULK_URN], "Operations": [valid.clone()], "Extra": true }),
        json!({ "schemas": [BULK_URN], "Operations": [{ "method": "POST", "path": "/Users", "bulkId": 7, "data": user("d@north.example") }] }),
    ] {
        let reply = app.post("/Bulk", &body).await;
        assert_eq!(reply.status, 400, "{body} → {}", reply.body);
        assert_eq!(
            reply.body["scimType"], "invalidSyntax",
            "{body} → {}",
            reply.body
        );
    }
    let reply = app
        .post(
            "/Bulk",
            &json!({ "schemas": [BULK_URN], "failOnErrors": 0, "Operations": [valid] }),
        )
        .await;
    reply.assert_error(400, Some("invalidValue"));
    assert_eq!(north_totals(&app).await, (0, 0));
}

#[tokio::test]
async fn an_unknown_bulk_id_fails_its_operation_without_half_applying_it() {
    let app = TestApp::start().await;
    let ops = bulk(
        &app,
        vec![
            json!({
                "method": "POST", "path": "/Groups", "bulkId": "g",
                "data": { "schemas": [GROUP_URN], "displayName": "Half",
                          "members": [{ "value": "bulkId:u1" }, { "value": "bulkId:nobody" }] }
            }),
            post_user("u1", "u1@north.example"),
            json!({ "method": "PATCH", "path": "/Users/bulkId:nobody",
                    "data": patch_request(json!([{ "op": "replace", "path": "title", "value": "x" }])) }),
            // Refers to an operation that failed.
            json!({ "method": "POST", "path": "/Users", "bulkId": "broken",
                    "data": { "schemas": [USER_URN], "userName": 5 } }),
            json!({
                "method": "POST", "path": "/Groups", "bulkId": "g2",
                "data": { "schemas": [GROUP_URN], "displayName": "Also half",
                          "members": [{ "value": "bulkId:u1" }, { "value": "bulkId:broken" }] }
            }),
        ],
    )
    .await;
    let statuses: Vec<u16> = ops
        .iter()
        .map(|op| op["status"].as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(statuses[1], 201, "{ops:?}");
    for index in [0, 2, 3, 4] {
        assert!(
            (400..500).contains(&statuses[index]),
            "operation {index}: {}",
            ops[index]
        );
        assert_eq!(ops[index]["response"]["schemas"][0], ERROR_URN);
    }
    assert_eq!(ops[0]["bulkId"], "g");
    // Neither group exists, not even with only the member that did resolve.
    assert_eq!(north_totals(&app).await, (1, 0));
    let u1 = app.get(ops[1]["location"].as_str().unwrap()).await.body;
    assert!(u1.get("groups").is_none(), "{u1}");
    assert!(u1.get("title").is_none(), "{u1}");
}

#[tokio::test]
async fn circular_bulk_ids_fail_both_operations() {
    let app = TestApp::start().await;
    let ops = bulk(
        &app,
        vec![
            json!({ "method": "POST", "path": "/Groups", "bulkId": "a",
                    "data": { "schemas": [GROUP_URN], "displayName": "A", "members": [{ "value": "bulkId:b" }] } }),
            json!({ "method": "POST", "path": "/Groups", "bulkId": "b",
                    "data": { "schemas": [GROUP_URN], "displayName": "B", "members": [{ "value": "bulkId:a" }] } }),
            post_user("fine", "fine@north.example"),
        ],
    )
    .await;
    assert_eq!(ops[0]["status"], "409", "{ops:?}");
    assert_eq!(ops[1]["status"], "409", "{ops:?}");
    assert_eq!(ops[2]["status"], "201", "{ops:?}");
    assert_eq!(north_totals(&app).await, (1, 0));
}

#[tokio::test]
async fn a_version_inside_an_operation_is_checked() {
    let app = TestApp::start().await;
    let id = id_of(&app.create_user(user("ada@north.example")).await);
    let path = format!("/Users/{id}");
    let ops = bulk(
        &app,
        vec![
            json!({ "method": "PATCH", "path": path, "version": "W/\"1\"",
                    "data": patch_request(json!([{ "op": "replace", "path": "title", "value": "First" }])) }),
            // Stale now: version 1 was replaced by version 2 just above.
            json!({ "method": "PUT", "path": path, "version": "W/\"1\"",
                    "data": { "schemas": [USER_URN], "userName": "stale@north.example" } }),
            json!({ "method": "PATCH", "path": path, "version": "W/\"7\"",
                    "data": patch_request(json!([{ "op": "replace", "path": "title", "value": "Stale" }])) }),
            json!({ "method": "DELETE", "path": path, "version": "W/\"1\"" }),
            json!({ "method": "PUT", "path": path, "version": "*",
                    "data": { "schemas": [USER_URN], "userName": "ada@north.example", "title": "Second" } }),
        ],
    )
    .await;
    let statuses: Vec<&str> = ops
        .iter()
        .map(|op| op["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["200", "412", "412", "412", "200"], "{ops:?}");
    assert_eq!(ops[0]["version"], "W/\"2\"");
    assert_eq!(ops[4]["version"], "W/\"3\"");
    let read = app.get(&path).await;
    assert_eq!(read.body["title"], "Second");
    assert_eq!(read.body["userName"], "ada@north.example");
    assert_eq!(read.header("etag"), Some("W/\"3\""));

    let ops = bulk(
        &app,
        vec![json!({ "method": "DELETE", "path": path, "version": "W/\"3\"" })],
    )
    .await;
    assert_eq!(ops[0]["status"], "204", "{ops:?}");
    app.get(&path).await.assert_error(404, None);
}

#[tokio::test]
async fn bulk_needs_a_token_and_stays_in_the_tokens_school() {
    let app = TestApp::start().await;
    let north_user = id_of(&app.create_user(user("ada@north.example")).await);
    let reply = app
        .send_as(
            "rct_garbage",
            Method::POST,
            "/Bulk",
            Some(&bulk_request(vec![post_user("a", "a@north.example")])),
            &[],
        )
        .await;
    reply.assert_error(401, None);
    let reply = app
        .send_as(
            &app.other_token,
            Method::POST,
            "/Bulk",
            Some(&bulk_request(vec![
                json!({ "method": "DELETE", "path": format!("/Users/{north_user}") }),
                json!({ "method": "POST", "path": "/Groups", "bulkId": "g",
                        "data": { "schemas": [GROUP_URN], "displayName": "Raid",
                                  "members": [{ "value": north_user }] } }),
            ])),
            &[],
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["Operations"][0]["status"], "404");
    assert_eq!(reply.body["Operations"][1]["status"], "400");
    assert_eq!(north_totals(&app).await, (1, 0));
    assert_eq!(total_as(&app, &app.other_token, "/Groups").await, 0);
}
