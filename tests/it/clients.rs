//! The request shapes that Microsoft Entra ID and Okta really send, replayed over HTTP.
//!
//! The `north` token plays Entra ID and the `south` token plays Okta.

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::*;

const MS_GROUP_URN: &str =
    "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group";
const OKTA_PASSWORD: &str = "1mz050nq";

fn patch_op(operations: Value) -> Value {
    json!({ "schemas": [PATCH_URN], "Operations": operations })
}

fn id(resource: &Value) -> String {
    resource["id"].as_str().unwrap().to_owned()
}

fn etag(version: i64) -> String {
    format!("W/\"{version}\"")
}

/// Asserts that a PATCH answered 200 with the whole resource and this new version.
#[track_caller]
fn assert_patched(reply: &Reply, resource_id: &str, version: i64) {
    assert_eq!(reply.status, 200, "PATCH: {}", reply.body);
    assert_eq!(reply.header("content-type"), Some("application/scim+json"));
    assert_eq!(reply.body["id"], resource_id, "{}", reply.body);
    assert!(reply.body["schemas"].is_array(), "{}", reply.body);
    assert!(reply.body["meta"]["location"].is_string(), "{}", reply.body);
    assert!(
        reply.body["meta"]["lastModified"].is_string(),
        "{}",
        reply.body
    );
    let tag = etag(version);
    assert_eq!(reply.header("etag"), Some(tag.as_str()), "{}", reply.body);
    assert_eq!(reply.body["meta"]["version"], tag, "{}", reply.body);
}

/// `GET endpoint?filter=…&more`, asserting 200.
async fn query(app: &TestApp, token: &str, endpoint: &str, params: &[(&str, &str)]) -> Value {
    let url = reqwest::Url::parse_with_params(&format!("{}{endpoint}", app.scim), params).unwrap();
    let reply = app
        .send_as(token, Method::GET, url.as_str(), None, &[])
        .await;
    assert_eq!(reply.status, 200, "{endpoint} {params:?}: {}", reply.body);
    reply.body
}

/// The member ids of a group document, sorted.
fn member_ids(group: &Value) -> Vec<String> {
    let mut members: Vec<String> = group
        .get("members")
        .and_then(Value::as_array)
        .map(|m| {
            m.iter()
                .map(|x| x["value"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default();
    members.sort();
    members
}

fn sorted(ids: &[&str]) -> Vec<String> {
    let mut ids: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
    ids.sort();
    ids
}

// --- Microsoft Entra ID ---

#[tokio::test]
async fn entra_creates_finds_and_disables_a_user() {
    let app = TestApp::start().await;
    let body = entra_user(
        "ada@north.example",
        "Ada",
        "Lovelace",
        "ada.lovelace@north.example",
        "ada",
    );
    let created = app.post("/Users", &body).await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(
        created.header("content-type"),
        Some("application/scim+json")
    );
    assert_eq!(created.header("etag"), Some("W/\"1\""));
    let user = &created.body;
    let user_id = id(user);
    assert_eq!(
        created.header("location"),
        user["meta"]["location"].as_str()
    );
    assert!(
        user["meta"]["location"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/Users/{user_id}"))
    );
    assert_eq!(user["meta"]["resourceType"], "User");
    assert_eq!(user["schemas"][0], USER_URN);
    assert_eq!(user["userName"], "ada@north.example");
    assert_eq!(user["externalId"], "ada");
    assert_eq!(user["active"], json!(true));
    assert_eq!(
        user["emails"],
        json!([{ "primary": true, "type": "work", "value": "ada.lovelace@north.example" }])
    );
    assert_eq!(
        user["name"],
        json!({ "formatted": "Ada Lovelace", "familyName": "Lovelace", "givenName": "Ada" })
    );

    // Entra looks users up by its matching attribute, and by others.
    for filter in [
        r#"userName eq "ada@north.example""#,
        r#"externalId eq "ada""#,
        r#"emails[type eq "work"].value eq "ada.lovelace@north.example""#,
    ] {
        let found = query(&app, &app.token, "/Users", &[("filter", filter)]).await;
        assert_eq!(found["totalResults"], json!(1), "{filter}: {found}");
        assert_eq!(ids(&found), [user_id.as_str()], "{filter}");
        assert_eq!(found["Resources"][0]["userName"], "ada@north.example");
    }

    // Disable without the compliance flag: a capitalised op and a string boolean.
    let path = format!("/Users/{user_id}");
    let reply = app
        .patch(
            &path,
            &patch_op(json!([{ "op": "Replace", "path": "active", "value": "False" }])),
        )
        .await;
    assert_patched(&reply, &user_id, 2);
    assert_eq!(reply.body["active"], json!(false));
    assert_eq!(reply.body["userName"], "ada@north.example");
    let read = app.get(&path).await;
    assert_eq!(read.body["active"], json!(false));
    assert_eq!(read.header("etag"), Some("W/\"2\""));
    // Disabled users are still returned, and filterable as such.
    let found = query(
        &app,
        &app.token,
        "/Users",
        &[(
            "filter",
            r#"userName eq "ada@north.example" and active eq false"#,
        )],
    )
    .await;
    assert_eq!(ids(&found), [user_id.as_str()]);

    let reply = app
        .patch(
            &path,
            &patch_op(json!([{ "op": "Replace", "path": "active", "value": "True" }])),
        )
        .await;
    assert_patched(&reply, &user_id, 3);
    assert_eq!(reply.body["active"], json!(true));
    // With `?aadOptscim062020`: a lower-case op and a JSON boolean.
    let reply = app
        .patch(
            &path,
            &patch_op(json!([{ "op": "replace", "path": "active", "value": false }])),
        )
        .await;
    assert_patched(&reply, &user_id, 4);
    assert_eq!(reply.body["active"], json!(false));
    app.stop().await;
}

#[tokio::test]
async fn entra_replaces_many_attributes_without_a_path() {
    let app = TestApp::start().await;
    let user = app
        .create_user(entra_user(
            "bj@north.example",
            "Bj",
            "Fe",
            "bj@north.example",
            "bj",
        ))
        .await;
    let user_id = id(&user);
    let reply = app
        .patch(
            &format!("/Users/{user_id}"),
            &patch_op(json!([{
                "op": "replace",
                "value": {
                    "displayName": "Bjfe",
                    "name.givenName": "Kkom",
                    "name.familyName": "Unua",
                    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber": "Aklq",
                },
            }])),
        )
        .await;
    assert_patched(&reply, &user_id, 2);
    let body = &reply.body;
    assert_eq!(body["displayName"], "Bjfe");
    assert_eq!(
        body["name"],
        json!({ "formatted": "Bj Fe", "familyName": "Unua", "givenName": "Kkom" })
    );
    assert_eq!(body[ENTERPRISE_URN], json!({ "employeeNumber": "Aklq" }));
    assert!(
        body["schemas"]
            .as_array()
            .unwrap()
            .contains(&json!(ENTERPRISE_URN)),
        "{body}"
    );
    // No dotted or URN-prefixed keys were stored as such.
    let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
    assert!(!keys.iter().any(|k| k.contains("name.")), "{keys:?}");
    assert_eq!(app.get(&format!("/Users/{user_id}")).await.body, *body);
    let found = query(
        &app,
        &app.token,
        "/Users",
        &[(
            "filter",
            &format!(r#"{ENTERPRISE_URN}:employeeNumber eq "Aklq""#),
        )],
    )
    .await;
    assert_eq!(ids(&found), [user_id]);
    app.stop().await;
}

#[tokio::test]
async fn entra_replaces_one_path_per_operation() {
    let app = TestApp::start().await;
    // One op per changed attribute, as Entra sends them without the compliance flag.
    let operations = |mail: &str| {
        patch_op(json!([
            { "op": "Replace", "path": "emails[type eq \"work\"].value", "value": mail },
            { "op": "Replace", "path": "name.familyName", "value": "Byron" },
            { "op": "Replace", "path": "externalId", "value": "ada.byron" },
            {
                "op": "Replace",
                "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber",
                "value": "E-77",
            },
        ]))
    };

    // A user with a work address: the address changes in place.
    let with_work = app
        .create_user(entra_user(
            "ada@north.example",
            "Ada",
            "Lovelace",
            "ada@old.example",
            "ada",
        ))
        .await;
    let with_work_id = id(&with_work);
    let reply = app
        .patch(
            &format!("/Users/{with_work_id}"),
            &operations("ada@new.example"),
        )
        .await;
    assert_patched(&reply, &with_work_id, 2);
    let body = &reply.body;
    assert_eq!(
        body["emails"],
        json!([{ "primary": true, "type": "work", "value": "ada@new.example" }])
    );
    assert_eq!(body["name"]["familyName"], "Byron");
    assert_eq!(body["name"]["givenName"], "Ada");
    assert_eq!(body["externalId"], "ada.byron");
    assert_eq!(body[ENTERPRISE_URN]["employeeNumber"], "E-77");
    let found = query(
        &app,
        &app.token,
        "/Users",
        &[(
            "filter",
            r#"emails[type eq "work"].value eq "ada@new.example""#,
        )],
    )
    .await;
    assert_eq!(ids(&found), [with_work_id.as_str()]);
    let found = query(
        &app,
        &app.token,
        "/Users",
        &[("filter", r#"emails.value eq "ada@old.example""#)],
    )
    .await;
    assert_eq!(found["totalResults"], json!(0));
    let found = query(
        &app,
        &app.token,
        "/Users",
        &[("filter", r#"externalId eq "ada.byron""#)],
    )
    .await;
    assert_eq!(ids(&found), [with_work_id]);

    // A user without any address: the work address is created.
    let bare = app.create_user(user("bare@north.example")).await;
    let bare_id = id(&bare);
    let reply = app
        .patch(
            &format!("/Users/{bare_id}"),
            &operations("bare@new.example"),
        )
        .await;
    assert_patched(&reply, &bare_id, 2);
    assert_eq!(
        reply.body["emails"],
        json!([{ "type": "work", "value": "bare@new.example" }])
    );
    assert_eq!(reply.body["name"], json!({ "familyName": "Byron" }));
    assert_eq!(reply.body["externalId"], "ada.byron");

    // A user with only a home address keeps it and gains a work one.
    let home = app
        .create_user(json!({
            "schemas": [USER_URN],
            "userName": "home@north.example",
            "emails": [{ "type": "home", "value": "home@home.example" }],
        }))
        .await;
    let home_id = id(&home);
    let reply = app
        .patch(
            &format!("/Users/{home_id}"),
            &operations("home@new.example"),
        )
        .await;
    assert_patched(&reply, &home_id, 2);
    assert_eq!(
        reply.body["emails"],
        json!([
            { "type": "home", "value": "home@home.example" },
            { "type": "work", "value": "home@new.example" },
        ])
    );
    let found = query(
        &app,
        &app.token,
        "/Users",
        &[(
            "filter",
            r#"emails[type eq "work"].value eq "home@new.example""#,
        )],
    )
    .await;
    assert_eq!(ids(&found), [home_id]);
    app.stop().await;
}

#[tokio::test]
async fn entra_manages_group_members_one_patch_at_a_time() {
    let app = TestApp::start().await;
    let ada = id(&app
        .create_user(entra_user(
            "ada@north.example",
            "Ada",
            "L",
            "ada@north.example",
            "ada",
        ))
        .await);
    let bob = id(&app
        .create_user(entra_user(
            "bob@north.example",
            "Bob",
            "B",
            "bob@north.example",
            "bob",
        ))
        .await);

    // Created empty, with Microsoft's extra schema.
    let created = app
        .post(
            "/Groups",
            &json!({
                "schemas": [GROUP_URN, MS_GROUP_URN],
                "externalId": "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159",
                "displayName": "Year 9 Science",
                "meta": { "resourceType": "Group" },
            }),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let group = id(&created.body);
    assert_eq!(created.body["displayName"], "Year 9 Science");
    assert_eq!(
        created.body["externalId"],
        "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159"
    );
    assert!(member_ids(&created.body).is_empty());
    let path = format!("/Groups/{group}");

    let add = |member: &str| {
        patch_op(
            json!([{ "op": "Add", "path": "members", "value": [{ "$ref": null, "value": member }] }]),
        )
    };
    let reply = app.patch(&path, &add(&ada)).await;
    assert_patched(&reply, &group, 2);
    assert_eq!(member_ids(&reply.body), [ada.as_str()]);
    let member = &reply.body["members"][0];
    assert_eq!(member["type"], "User");
    assert!(
        member["$ref"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/Users/{ada}"))
    );
    let reply = app.patch(&path, &add(&bob)).await;
    assert_patched(&reply, &group, 3);
    assert_eq!(member_ids(&reply.body), sorted(&[&ada, &bob]));
    // Adding a member twice is harmless.
    let reply = app.patch(&path, &add(&bob)).await;
    assert_patched(&reply, &group, 4);
    assert_eq!(member_ids(&reply.body), sorted(&[&ada, &bob]));

    // The user sees the group.
    let read = app.get(&format!("/Users/{ada}")).await;
    assert_eq!(read.body["groups"][0]["value"], group.as_str());
    assert_eq!(read.body["groups"][0]["display"], "Year 9 Science");
    let found = query(
        &app,
        &app.token,
        "/Groups",
        &[("filter", &format!(r#"members[value eq "{bob}"]"#))],
    )
    .await;
    assert_eq!(ids(&found), [group.as_str()]);

    // Remove without the flag: a value list.
    let reply = app
        .patch(
            &path,
            &patch_op(json!([{ "op": "Remove", "path": "members", "value": [{ "value": ada }] }])),
        )
        .await;
    assert_patched(&reply, &group, 5);
    assert_eq!(member_ids(&reply.body), [bob.as_str()]);
    assert!(
        app.get(&format!("/Users/{ada}"))
            .await
            .body
            .get("groups")
            .is_none()
    );

    // An unknown member is the client's mistake: 400, and the group is left as it was.
    for body in [
        add("00000000-0000-0000-0000-000000000000"),
        patch_op(json!([
            { "op": "Add", "path": "members", "value": [{ "value": ada }] },
            { "op": "Add", "path": "members", "value": [{ "$ref": null, "value": "not-a-user" }] },
        ])),
    ] {
        let reply = app.patch(&path, &body).await;
        reply.assert_error(400, Some("invalidValue"));
        let read = app.get(&path).await;
        assert_eq!(read.header("etag"), Some("W/\"5\""));
        assert_eq!(member_ids(&read.body), [bob.as_str()]);
    }
    // Nor may a group be created with one.
    let reply = app
        .post(
            "/Groups",
            &json!({
                "schemas": [GROUP_URN, MS_GROUP_URN],
                "displayName": "Ghosts",
                "members": [{ "value": "00000000-0000-0000-0000-000000000000" }],
            }),
        )
        .await;
    reply.assert_error(400, Some("invalidValue"));
    let found = query(
        &app,
        &app.token,
        "/Groups",
        &[("filter", r#"displayName eq "Ghosts""#)],
    )
    .await;
    assert_eq!(found["totalResults"], json!(0));

    // Remove with the flag: a value filter in the path.
    let reply = app
        .patch(
            &path,
            &patch_op(json!([{ "op": "remove", "path": format!("members[value eq \"{bob}\"]") }])),
        )
        .await;
    assert_patched(&reply, &group, 6);
    assert!(member_ids(&reply.body).is_empty());

    // Rename, as Entra sends it.
    let reply = app
        .patch(
            &path,
            &patch_op(
                json!([{ "op": "Replace", "path": "displayName", "value": "Year 9 Physics" }]),
            ),
        )
        .await;
    assert_patched(&reply, &group, 7);
    assert_eq!(reply.body["displayName"], "Year 9 Physics");

    // Entra reads groups without their members.
    app.patch(&path, &add(&ada)).await;
    let found = query(
        &app,
        &app.token,
        "/Groups",
        &[
            ("excludedAttributes", "members"),
            ("filter", r#"displayName eq "Year 9 Physics""#),
        ],
    )
    .await;
    assert_eq!(found["totalResults"], json!(1), "{found}");
    let listed = &found["Resources"][0];
    assert_eq!(listed["id"], group.as_str());
    assert_eq!(listed["displayName"], "Year 9 Physics");
    assert!(listed.get("members").is_none(), "{listed}");
    // displayName is unique in the school.
    let reply = app
        .post(
            "/Groups",
            &json!({ "schemas": [GROUP_URN, MS_GROUP_URN], "displayName": "year 9 physics" }),
        )
        .await;
    reply.assert_error(409, Some("uniqueness"));
    app.stop().await;
}

// --- Okta ---

/// A user as Okta creates one, with a cleartext password and an empty `groups`.
fn okta_user(user_name: &str, given: &str, family: &str) -> Value {
    json!({
        "schemas": [USER_URN],
        "userName": user_name,
        "name": { "givenName": given, "familyName": family },
        "emails": [{ "primary": true, "value": user_name, "type": "work" }],
        "displayName": format!("{given} {family}"),
        "locale": "en-US",
        "externalId": format!("00u{given}"),
        "groups": [],
        "password": OKTA_PASSWORD,
        "active": true,
    })
}

async fn as_okta(app: &TestApp, method: Method, path: &str, body: Option<&Value>) -> Reply {
    app.send_as(&app.other_token, method, path, body, &[]).await
}

/// Asserts that no password, plaintext or hashed, is anywhere in a response.
#[track_caller]
fn assert_no_password(body: &Value) {
    let text = body.to_string();
    assert!(!text.contains(OKTA_PASSWORD), "{text}");
    assert!(!text.contains("s3cret-Again"), "{text}");
    assert!(!text.contains("argon2"), "{text}");
    assert!(
        !text.to_ascii_lowercase().contains("\"password\""),
        "{text}"
    );
}

#[tokio::test]
async fn okta_tests_the_connection_and_matches_by_user_name() {
    let app = TestApp::start().await;
    for (name, given) in [
        ("ada@south.example", "Ada"),
        ("bob@south.example", "Bob"),
        ("cy@south.example", "Cy"),
    ] {
        let reply = as_okta(
            &app,
            Method::POST,
            "/Users",
            Some(&okta_user(name, given, "Okta")),
        )
        .await;
        assert_eq!(reply.status, 201, "{}", reply.body);
    }
    let page = query(
        &app,
        &app.other_token,
        "/Users",
        &[("startIndex", "1"), ("count", "2")],
    )
    .await;
    assert_eq!(
        page["schemas"],
        json!(["urn:ietf:params:scim:api:messages:2.0:ListResponse"])
    );
    assert_eq!(page["totalResults"].as_i64(), Some(3));
    assert_eq!(page["startIndex"].as_i64(), Some(1));
    assert_eq!(page["itemsPerPage"].as_i64(), Some(2));
    assert_eq!(page["Resources"].as_array().unwrap().len(), 2);
    assert_no_password(&page);

    let found = query(
        &app,
        &app.other_token,
        "/Users",
        &[
            ("filter", r#"userName eq "bob@south.example""#),
            ("startIndex", "1"),
            ("count", "100"),
        ],
    )
    .await;
    assert_eq!(found["totalResults"].as_i64(), Some(1));
    assert_eq!(found["itemsPerPage"].as_i64(), Some(1));
    assert_eq!(user_names(&found), ["bob@south.example"]);
    assert_no_password(&found);
    // No match is an empty list, not a 404.
    let none = query(
        &app,
        &app.other_token,
        "/Users",
        &[
            ("filter", r#"userName eq "nobody@south.example""#),
            ("startIndex", "1"),
            ("count", "100"),
        ],
    )
    .await;
    assert_eq!(none["totalResults"].as_i64(), Some(0));
    // Okta's school is not Entra's.
    let north = query(&app, &app.token, "/Users", &[]).await;
    assert_eq!(north["totalResults"].as_i64(), Some(0));
    app.stop().await;
}

#[tokio::test]
async fn okta_creates_updates_and_deactivates_a_user_without_leaking_the_password() {
    let app = TestApp::start().await;
    let body = okta_user("ada@south.example", "Ada", "Lovelace");
    let created = as_okta(&app, Method::POST, "/Users", Some(&body)).await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_no_password(&created.body);
    let user_id = id(&created.body);
    assert_eq!(created.body["userName"], "ada@south.example");
    assert_eq!(created.body["active"], json!(true));
    let groups = created.body.get("groups");
    assert!(
        groups.is_none() || groups == Some(&json!([])),
        "{}",
        created.body
    );
    let path = format!("/Users/{user_id}");

    // The same userName again, in any case: 409 with the SCIM error schema.
    for name in ["ada@south.example", "ADA@South.Example"] {
        let again = as_okta(
            &app,
            Method::POST,
            "/Users",
            Some(&okta_user(name, "Ada", "Again")),
        )
        .await;
        again.assert_error(409, Some("uniqueness"));
        assert!(again.body["detail"].is_string(), "{}", again.body);
    }

    // Reads never show it, not even when asked for.
    for read_path in [
        path.clone(),
        format!("{path}?attributes=password"),
        "/Users".to_owned(),
        "/Users?filter=userName%20eq%20%22ada%40south.example%22&startIndex=1&count=100".to_owned(),
    ] {
        let read = as_okta(&app, Method::GET, &read_path, None).await;
        assert_eq!(read.status, 200, "{read_path}: {}", read.body);
        assert_no_password(&read.body);
    }

    // Custom app-wizard apps send every update as PUT: the full document.
    let mut update = body.clone();
    update["id"] = json!(user_id);
    update["name"]["familyName"] = json!("Byron");
    update["emails"] =
        json!([{ "primary": true, "value": "ada.byron@south.example", "type": "work" }]);
    update["password"] = json!("s3cret-Again");
    update.as_object_mut().unwrap().remove("displayName");
    let reply = as_okta(&app, Method::PUT, &path, Some(&update)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.header("etag"), Some("W/\"2\""));
    assert_no_password(&reply.body);
    assert_eq!(reply.body["name"]["familyName"], "Byron");
    assert_eq!(
        reply.body["emails"],
        json!([{ "primary": true, "value": "ada.byron@south.example", "type": "work" }])
    );
    // PUT replaces: what the document left out is gone.
    assert!(reply.body.get("displayName").is_none(), "{}", reply.body);

    // Deactivation by PUT.
    update["active"] = json!(false);
    update.as_object_mut().unwrap().remove("password");
    let reply = as_okta(&app, Method::PUT, &path, Some(&update)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.header("etag"), Some("W/\"3\""));
    assert_eq!(reply.body["active"], json!(false));
    assert_no_password(&reply.body);
    let read = as_okta(&app, Method::GET, &path, None).await;
    assert_eq!(read.body["active"], json!(false));

    // OIN apps: activate and deactivate by PATCH without a path.
    for (version, active) in [(4, true), (5, false)] {
        let reply = as_okta(
            &app,
            Method::PATCH,
            &path,
            Some(&patch_op(
                json!([{ "op": "replace", "value": { "active": active } }]),
            )),
        )
        .await;
        assert_patched(&reply, &user_id, version);
        assert_eq!(reply.body["active"], json!(active));
        assert_eq!(reply.body["name"]["familyName"], "Byron");
        assert_no_password(&reply.body);
    }
    // Password sync by PATCH.
    let reply = as_okta(
        &app,
        Method::PATCH,
        &path,
        Some(&patch_op(
            json!([{ "op": "replace", "value": { "password": OKTA_PASSWORD } }]),
        )),
    )
    .await;
    assert_patched(&reply, &user_id, 6);
    assert_no_password(&reply.body);

    // Nor is it in the audit trail. (The stored hash has no public reader; the password
    // module's own tests check its argon2id form.)
    let trail = app
        .state
        .provider
        .store
        .audit_trail("south", &user_id)
        .await
        .unwrap();
    assert_eq!(trail.len(), 6);
    for (_, _, _, before, after) in trail {
        for document in [before, after].into_iter().flatten() {
            assert!(!document.contains(OKTA_PASSWORD), "{document}");
            assert!(!document.contains("s3cret-Again"), "{document}");
            assert!(!document.contains("argon2"), "{document}");
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn okta_pushes_groups() {
    let app = TestApp::start().await;
    let mut users = Vec::new();
    for (name, given) in [
        ("a@south.example", "A"),
        ("b@south.example", "B"),
        ("c@south.example", "C"),
    ] {
        let reply = as_okta(
            &app,
            Method::POST,
            "/Users",
            Some(&okta_user(name, given, "Okta")),
        )
        .await;
        assert_eq!(reply.status, 201, "{}", reply.body);
        users.push(id(&reply.body));
    }
    let (a, b, c) = (users[0].clone(), users[1].clone(), users[2].clone());

    let created = as_okta(
        &app,
        Method::POST,
        "/Groups",
        Some(&json!({ "schemas": [GROUP_URN], "displayName": "Tutors", "members": [] })),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let group = id(&created.body);
    let path = format!("/Groups/{group}");
    let patch = |operations: Value| {
        let app = &app;
        let path = path.clone();
        async move { as_okta(app, Method::PATCH, &path, Some(&patch_op(operations))).await }
    };

    // Okta sends members with their display name.
    let reply = patch(json!([{
        "op": "add",
        "path": "members",
        "value": [{ "value": a, "display": "a@south.example" }],
    }]))
    .await;
    assert_patched(&reply, &group, 2);
    assert_eq!(member_ids(&reply.body), [a.as_str()]);

    // A rename echoes the id, and is re-sent with every membership update.
    let reply = patch(json!([{
        "op": "replace",
        "value": { "id": group, "displayName": "Tutors 2025" },
    }]))
    .await;
    assert_patched(&reply, &group, 3);
    assert_eq!(reply.body["displayName"], "Tutors 2025");
    assert_eq!(member_ids(&reply.body), [a.as_str()]);

    // One PATCH that removes one member and adds another.
    let reply = patch(json!([
        { "op": "remove", "path": format!("members[value eq \"{a}\"]") },
        { "op": "add", "path": "members", "value": [{ "value": b, "display": "b@south.example" }] },
    ]))
    .await;
    assert_patched(&reply, &group, 4);
    assert_eq!(member_ids(&reply.body), [b.as_str()]);

    // A full replace of members.
    let reply = patch(json!([{
        "op": "replace",
        "path": "members",
        "value": [{ "value": a, "display": "a@south.example" }, { "value": c, "display": "c@south.example" }],
    }]))
    .await;
    assert_patched(&reply, &group, 5);
    assert_eq!(member_ids(&reply.body), sorted(&[&a, &c]));

    // The rename again, with the membership update it rides along with.
    let reply = patch(json!([
        { "op": "replace", "value": { "id": group, "displayName": "Tutors 2025" } },
        { "op": "remove", "path": format!("members[value eq \"{c}\"]") },
    ]))
    .await;
    assert_patched(&reply, &group, 6);
    assert_eq!(member_ids(&reply.body), [a.as_str()]);

    // App-wizard apps PUT the whole group.
    let reply = as_okta(
        &app,
        Method::PUT,
        &path,
        Some(&json!({
            "schemas": [GROUP_URN],
            "id": group,
            "displayName": "Tutors 2025",
            "members": [{ "value": b, "display": "b@south.example" }],
        })),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.header("etag"), Some("W/\"7\""));
    assert_eq!(member_ids(&reply.body), [b.as_str()]);

    // Creating a group with members, as Okta does for a push of a populated group.
    let reply = as_okta(
        &app,
        Method::POST,
        "/Groups",
        Some(&json!({
            "schemas": [GROUP_URN],
            "displayName": "Year 7",
            "members": [{ "value": a, "display": "a@south.example" }, { "value": c, "display": "c@south.example" }],
        })),
    )
    .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    assert_eq!(member_ids(&reply.body), sorted(&[&a, &c]));

    // The users see their groups.
    let read = as_okta(&app, Method::GET, &format!("/Users/{c}"), None).await;
    let groups: Vec<&str> = read.body["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["display"].as_str().unwrap())
        .collect();
    assert_eq!(groups, ["Year 7"]);
    app.stop().await;
}

// --- PATCH semantics every client relies on ---

#[tokio::test]
async fn replacing_a_complex_attribute_keeps_the_sub_attributes_it_does_not_name() {
    let app = TestApp::start().await;
    let user = app
        .create_user(entra_user(
            "ada@north.example",
            "Ada",
            "Lovelace",
            "ada@north.example",
            "ada",
        ))
        .await;
    let user_id = id(&user);
    let path = format!("/Users/{user_id}");
    // RFC 7644 §3.5.2.3: "Sub-attributes that are not specified in the value parameter are
    // left unchanged."
    let reply = app
        .patch(
            &path,
            &patch_op(
                json!([{ "op": "replace", "path": "name", "value": { "givenName": "Augusta" } }]),
            ),
        )
        .await;
    assert_patched(&reply, &user_id, 2);
    assert_eq!(
        reply.body["name"],
        json!({ "formatted": "Ada Lovelace", "familyName": "Lovelace", "givenName": "Augusta" })
    );
    let reply = app
        .patch(
            &path,
            &patch_op(json!([{ "op": "replace", "value": { "name": { "familyName": "King" } } }])),
        )
        .await;
    assert_patched(&reply, &user_id, 3);
    assert_eq!(
        reply.body["name"],
        json!({ "formatted": "Ada Lovelace", "familyName": "King", "givenName": "Augusta" })
    );
    // A multi-valued attribute is replaced whole.
    let reply = app
        .patch(
            &path,
            &patch_op(json!([{ "op": "replace", "path": "emails", "value": [{ "type": "home", "value": "ada@home.example" }] }])),
        )
        .await;
    assert_patched(&reply, &user_id, 4);
    assert_eq!(
        reply.body["emails"],
        json!([{ "type": "home", "value": "ada@home.example" }])
    );
    app.stop().await;
}
