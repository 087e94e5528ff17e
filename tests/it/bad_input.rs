//! Client mistakes: each gets the right 4xx SCIM error (status, `scimType`, content type), never
//! a 5xx, and changes nothing: the same resources, with the same versions, afterwards.

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::*;

/// What a mistake must leave alone: both lists and the fixture resources as read back.
#[derive(Debug, PartialEq)]
struct Snapshot {
    users: Value,
    groups: Value,
    ada_etag: Option<String>,
    group_etag: Option<String>,
}

struct Fixture {
    ada: String,
    group: String,
}

async fn fixture(app: &TestApp) -> Fixture {
    let ada = id_of(
        &app.create_user(json!({
            "schemas": [USER_URN], "userName": "ada@north.example", "title": "Countess",
            "name": { "givenName": "Ada", "familyName": "Lovelace" },
            "emails": [{ "type": "work", "value": "ada@north.example", "primary": true }]
        }))
        .await,
    );
    let group = id_of(
        &app.create_group(json!({
            "schemas": [GROUP_URN], "displayName": "7A", "members": [{ "value": ada }]
        }))
        .await,
    );
    Fixture { ada, group }
}

async fn snapshot(app: &TestApp, fixture: &Fixture) -> Snapshot {
    let ada = app.get(&format!("/Users/{}", fixture.ada)).await;
    let group = app.get(&format!("/Groups/{}", fixture.group)).await;
    Snapshot {
        users: app.get("/Users").await.body,
        groups: app.get("/Groups").await.body,
        ada_etag: ada.header("etag").map(str::to_owned),
        group_etag: group.header("etag").map(str::to_owned),
    }
}

/// Asserts the error, and that nothing changed since `before`.
#[track_caller]
fn expect(what: &str, reply: &Reply, status: u16, scim_type: Option<&str>) {
    assert!(
        reply.status.as_u16() < 500,
        "{what}: a client mistake answered {}: {}",
        reply.status,
        reply.body
    );
    assert_eq!(
        reply.status.as_u16(),
        status,
        "{what}: wrong status: {}",
        reply.body
    );
    assert_eq!(
        reply.body.get("scimType").and_then(Value::as_str),
        scim_type,
        "{what}: wrong scimType: {}",
        reply.body
    );
    reply.assert_error(status, scim_type);
}

/// Documents that POST and PUT must refuse, with the error each gets.
fn bad_documents() -> Vec<(&'static str, Value, u16, &'static str)> {
    vec![
        (
            "a JSON array",
            json!([user("eve@north.example")]),
            400,
            "invalidSyntax",
        ),
        ("a JSON string", json!("userName=eve"), 400, "invalidSyntax"),
        (
            "an unknown top-level attribute",
            json!({ "schemas": [USER_URN], "userName": "eve@north.example", "shoeSize": 9 }),
            400,
            "invalidSyntax",
        ),
        (
            "an unknown sub-attribute",
            json!({ "schemas": [USER_URN], "userName": "eve@north.example", "name": { "nick": "E" } }),
            400,
            "invalidSyntax",
        ),
        (
            "an unknown extension attribute",
            json!({ "schemas": [USER_URN, ENTERPRISE_URN], "userName": "eve@north.example",
                    ENTERPRISE_URN: { "shoeSize": 9 } }),
            400,
            "invalidSyntax",
        ),
        (
            "active: \"maybe\"",
            json!({ "schemas": [USER_URN], "userName": "eve@north.example", "active": "maybe" }),
            400,
            "invalidValue",
        ),
        (
            "userName: 5",
            json!({ "schemas": [USER_URN], "userName": 5 }),
            400,
            "invalidValue",
        ),
        (
            "emails: \"x\"",
            json!({ "schemas": [USER_URN], "userName": "eve@north.example", "emails": "x" }),
            400,
            "invalidValue",
        ),
        (
            "name: a string",
            json!({ "schemas": [USER_URN], "userName": "eve@north.example", "name": "Eve" }),
            400,
            "invalidValue",
        ),
        (
            "a missing userName",
            json!({ "schemas": [USER_URN], "displayName": "Eve" }),
            400,
            "invalidValue",
        ),
        (
            "a blank userName",
            json!({ "schemas": [USER_URN], "userName": "   " }),
            400,
            "invalidValue",
        ),
        (
            "two primary emails",
            json!({ "schemas": [USER_URN], "userName": "eve@north.example", "emails": [
                { "type": "work", "value": "eve@north.example", "primary": true },
                { "type": "home", "value": "eve@home.example", "primary": true }
            ] }),
            400,
            "invalidValue",
        ),
        (
            "schemas that are not a list",
            json!({ "schemas": USER_URN, "userName": "eve@north.example" }),
            400,
            "invalidSyntax",
        ),
        // No store can hold U+0000 in text (PostgreSQL refuses it).
        (
            "a NUL character in userName",
            json!({ "schemas": [USER_URN], "userName": "eve\u{0}@north.example" }),
            400,
            "invalidValue",
        ),
        (
            "a NUL character in a sub-attribute",
            json!({ "schemas": [USER_URN], "userName": "eve@north.example",
                    "name": { "givenName": "E\u{0}ve" } }),
            400,
            "invalidValue",
        ),
    ]
}

#[tokio::test]
async fn bad_documents_are_refused_by_post_and_put_and_change_nothing() {
    let app = TestApp::start().await;
    let fixture = fixture(&app).await;
    let before = snapshot(&app, &fixture).await;
    let ada = format!("/Users/{}", fixture.ada);
    for (what, body, status, scim_type) in bad_documents() {
        let reply = app.post("/Users", &body).await;
        expect(&format!("POST {what}"), &reply, status, Some(scim_type));
        let reply = app.put(&ada, &body).await;
        expect(&format!("PUT {what}"), &reply, status, Some(scim_type));
    }
    // A taken userName, in a different case.
    let reply = app.post("/Users", &user("ADA@north.example")).await;
    expect("POST taken userName", &reply, 409, Some("uniqueness"));
    assert_eq!(snapshot(&app, &fixture).await, before);
}

#[tokio::test]
async fn unreadable_bodies_are_invalid_syntax() {
    let app = TestApp::start().await;
    let fixture = fixture(&app).await;
    let before = snapshot(&app, &fixture).await;
    let ada = format!("/Users/{}", fixture.ada);
    let bodies: Vec<(&str, Vec<u8>)> = vec![
        ("malformed JSON", b"{\"userName\": ".to_vec()),
        ("trailing garbage", br#"{"userName": "eve@north.example"} x"#.to_vec()),
        ("an empty body", Vec::new()),
        ("a blank body", b"  \n ".to_vec()),
        (
            "a non-UTF-8 body",
            b"{\"schemas\": [\"urn:ietf:params:scim:schemas:core:2.0:User\"], \"userName\": \"\xff\xfe\"}"
                .to_vec(),
        ),
    ];
    for (what, body) in bodies {
        for (method, path) in [
            (Method::POST, "/Users"),
            (Method::PUT, ada.as_str()),
            (Method::PATCH, ada.as_str()),
            (Method::POST, "/Bulk"),
            (Method::POST, "/Users/.search"),
        ] {
            let reply = app.send_raw(method.clone(), path, body.clone()).await;
            expect(
                &format!("{method} {path} with {what}"),
                &reply,
                400,
                Some("invalidSyntax"),
            );
        }
    }
    assert_eq!(snapshot(&app, &fixture).await, before);
}

#[tokio::test]
async fn a_body_over_the_limit_is_413() {
    let app = TestApp::start().await;
    let fixture = fixture(&app).await;
    let before = snapshot(&app, &fixture).await;
    let body = json!({
        "schemas": [USER_URN], "userName": "big@north.example",
        "nickName": "x".repeat(2 * 1024 * 1024)
    });
    let reply = app.post("/Users", &body).await;
    expect("POST 2 MB", &reply, 413, None);
    let reply = app.put(&format!("/Users/{}", fixture.ada), &body).await;
    expect("PUT 2 MB", &reply, 413, None);
    assert_eq!(snapshot(&app, &fixture).await, before);
}

#[tokio::test]
async fn bad_patches_are_refused_whole() {
    let app = TestApp::start().await;
    let fixture = fixture(&app).await;
    let before = snapshot(&app, &fixture).await;
    let ada = format!("/Users/{}", fixture.ada);
    let group = format!("/Groups/{}", fixture.group);
    let title = json!({ "op": "replace", "path": "title", "value": "Changed" });
    let cases: Vec<(&str, &str, Value, u16, &str)> = vec![
        (
            "no Operations",
            &ada,
            json!({ "schemas": [PATCH_URN] }),
            400,
            "invalidSyntax",
        ),
        (
            "empty Operations",
            &ada,
            patch_request(json!([])),
            400,
            "invalidSyntax",
        ),
        (
            "Operations not a list",
            &ada,
            json!({ "schemas": [PATCH_URN], "Operations": title.clone() }),
            400,
            "invalidSyntax",
        ),
        (
            "a user document instead of a PatchOp",
            &ada,
            user("ada@north.example"),
            400,
            "invalidSyntax",
        ),
        (
            "op frobnicate",
            &ada,
            patch_request(json!([{ "op": "frobnicate", "path": "title", "value": "x" }])),
            400,
            "invalidSyntax",
        ),
        (
            "an operation without op",
            &ada,
            patch_request(json!([{ "path": "title", "value": "x" }])),
            400,
            "invalidSyntax",
        ),
        (
            "an unclosed filter in the path",
            &ada,
            patch_request(json!([{ "op": "replace", "path": "emails[type eq", "value": "x" }])),
            400,
            "invalidPath",
        ),
        (
            "an unknown attribute in the path",
            &ada,
            patch_request(json!([{ "op": "replace", "path": "shoeSize", "value": 9 }])),
            400,
            "invalidPath",
        ),
        (
            "replace without a value",
            &ada,
            patch_request(json!([{ "op": "replace", "path": "title" }])),
            400,
            "invalidValue",
        ),
        (
            "replace id",
            &ada,
            patch_request(json!([{ "op": "replace", "path": "id", "value": "mine" }])),
            400,
            "mutability",
        ),
        (
            "replace meta.created",
            &ada,
            patch_request(
                json!([{ "op": "replace", "path": "meta.created", "value": "2001-01-01T00:00:00Z" }]),
            ),
            400,
            "mutability",
        ),
        (
            "replace groups",
            &ada,
            patch_request(
                json!([{ "op": "replace", "path": "groups", "value": [{ "value": fixture.group }] }]),
            ),
            400,
            "mutability",
        ),
        (
            "add to groups",
            &ada,
            patch_request(
                json!([{ "op": "add", "path": "groups", "value": [{ "value": fixture.group }] }]),
            ),
            400,
            "mutability",
        ),
        (
            "remove without a path",
            &ada,
            patch_request(json!([{ "op": "remove" }])),
            400,
            "noTarget",
        ),
        (
            "a valid op, then a wrong type",
            &ada,
            patch_request(
                json!([title.clone(), { "op": "replace", "path": "active", "value": "maybe" }]),
            ),
            400,
            "invalidValue",
        ),
        (
            "a valid op, then an invalid path",
            &ada,
            patch_request(
                json!([title.clone(), { "op": "add", "path": "name.nick", "value": "x" }]),
            ),
            400,
            "invalidPath",
        ),
        (
            "a valid op, then a second primary email",
            &ada,
            patch_request(
                json!([title.clone(), { "op": "add", "path": "emails", "value": [
                { "type": "home", "value": "ada@home.example", "primary": true },
                { "type": "other", "value": "ada@other.example", "primary": true }
            ] }]),
            ),
            400,
            "invalidValue",
        ),
        (
            "a valid op, then removing the required userName",
            &ada,
            patch_request(json!([title.clone(), { "op": "remove", "path": "userName" }])),
            400,
            "invalidValue",
        ),
        (
            "a no-path op with a non-object value",
            &ada,
            patch_request(json!([{ "op": "replace", "value": "x" }])),
            400,
            "invalidValue",
        ),
        (
            "members as a string",
            &group,
            patch_request(json!([{ "op": "add", "path": "members", "value": "someone" }])),
            400,
            "invalidValue",
        ),
        (
            "a rename, then an unknown member",
            &group,
            patch_request(json!([
                { "op": "replace", "path": "displayName", "value": "7B" },
                { "op": "add", "path": "members", "value": [{ "value": "no-such-user" }] }
            ])),
            400,
            "invalidValue",
        ),
    ];
    for (what, path, body, status, scim_type) in cases {
        let reply = app.patch(path, &body).await;
        expect(&format!("PATCH {what}"), &reply, status, Some(scim_type));
    }
    assert_eq!(snapshot(&app, &fixture).await, before);
    let read = app.get(&ada).await.body;
    assert_eq!(read["title"], "Countess", "{read}");
}

#[tokio::test]
async fn unknown_ids_are_404_for_every_method() {
    let app = TestApp::start().await;
    let fixture = fixture(&app).await;
    let before = snapshot(&app, &fixture).await;
    let patch = patch_request(json!([{ "op": "replace", "path": "displayName", "value": "x" }]));
    for endpoint in ["/Users", "/Groups"] {
        let path = format!("{endpoint}/01a00000-0000-7000-8000-000000000000");
        let body = match endpoint {
            "/Users" => user("ghost@north.example"),
            _ => json!({ "schemas": [GROUP_URN], "displayName": "Ghosts" }),
        };
        expect(&format!("GET {path}"), &app.get(&path).await, 404, None);
        expect(
            &format!("PUT {path}"),
            &app.put(&path, &body).await,
            404,
            None,
        );
        expect(
            &format!("PATCH {path}"),
            &app.patch(&path, &patch).await,
            404,
            None,
        );
        expect(
            &format!("DELETE {path}"),
            &app.delete(&path).await,
            404,
            None,
        );
    }
    // A user's id is not a group's.
    let path = format!("/Groups/{}", fixture.ada);
    expect("GET a user as a group", &app.get(&path).await, 404, None);
    expect(
        "DELETE a user as a group",
        &app.delete(&path).await,
        404,
        None,
    );
    assert_eq!(snapshot(&app, &fixture).await, before);
}

#[tokio::test]
async fn unknown_endpoints_are_404_and_wrong_methods_405() {
    let app = TestApp::start().await;
    let fixture = fixture(&app).await;
    let before = snapshot(&app, &fixture).await;
    for path in [
        "/Teachers",
        "/Users/x/y",
        "/users-and-more",
        "/Schemas/urn:nothing",
        "/ResourceTypes/Teacher",
    ] {
        let reply = app.get(path).await;
        expect(&format!("GET {path}"), &reply, 404, None);
    }
    let reply = app
        .send_as(
            &app.token,
            Method::POST,
            "/Teachers",
            Some(&user("t@north.example")),
            &[],
        )
        .await;
    expect("POST /Teachers", &reply, 404, None);
    for (method, path) in [
        (Method::DELETE, "/Users".to_owned()),
        (Method::PUT, "/Groups".to_owned()),
        (Method::PATCH, "/Users".to_owned()),
        (Method::GET, "/Bulk".to_owned()),
        (Method::POST, format!("/Users/{}", fixture.ada)),
        (Method::DELETE, "/ServiceProviderConfig".to_owned()),
    ] {
        let reply = app
            .send_as(
                &app.token,
                method.clone(),
                &path,
                Some(&user("x@north.example")),
                &[],
            )
            .await;
        expect(&format!("{method} {path}"), &reply, 405, None);
    }
    assert_eq!(snapshot(&app, &fixture).await, before);
}

#[tokio::test]
async fn a_garbage_if_match_changes_nothing() {
    let app = TestApp::start().await;
    let fixture = fixture(&app).await;
    let before = snapshot(&app, &fixture).await;
    let ada = format!("/Users/{}", fixture.ada);
    let patch = patch_request(json!([{ "op": "replace", "path": "title", "value": "x" }]));
    for garbage in ["garbage", "W/\"one\"", "\"\"", "W/", "W/\"-\"", "1 2"] {
        let headers = [("if-match", garbage)];
        for (method, body) in [
            (Method::PUT, Some(user("ada@north.example"))),
            (Method::PATCH, Some(patch.clone())),
            (Method::DELETE, None),
        ] {
            let reply = app
                .send_as(&app.token, method.clone(), &ada, body.as_ref(), &headers)
                .await;
            // No version of the resource matches a tag that names none.
            expect(&format!("{method} If-Match: {garbage}"), &reply, 412, None);
        }
    }
    assert_eq!(snapshot(&app, &fixture).await, before);
}

#[tokio::test]
async fn bad_list_parameters_are_400() {
    let app = TestApp::start().await;
    let fixture = fixture(&app).await;
    let before = snapshot(&app, &fixture).await;
    for (query, scim_type) in [
        ("startIndex=abc", "invalidValue"),
        ("count=ten", "invalidValue"),
        ("startIndex=1.5", "invalidValue"),
        ("sortOrder=sideways", "invalidValue"),
        ("sortBy=shoeSize", "invalidValue"),
        ("attributes=shoeSize", "invalidValue"),
        ("filter=userName%20eq", "invalidFilter"),
        ("filter=userName%20xx%20%22a%22", "invalidFilter"),
        ("filter=shoeSize%20eq%209", "invalidFilter"),
        ("filter=userName%20eq%20%22a%00b%22", "invalidFilter"),
    ] {
        let reply = app.get(&format!("/Users?{query}")).await;
        expect(&format!("GET /Users?{query}"), &reply, 400, Some(scim_type));
    }
    let reply = app
        .post(
            "/Users/.search",
            &json!({ "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "startIndex": "abc" }),
        )
        .await;
    expect(
        "search with startIndex abc",
        &reply,
        400,
        Some("invalidValue"),
    );
    let reply = app
        .post(
            "/Users/.search",
            &json!({ "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "shoeSize": 9 }),
        )
        .await;
    expect(
        "search with an unknown member",
        &reply,
        400,
        Some("invalidSyntax"),
    );
    assert_eq!(snapshot(&app, &fixture).await, before);
}
