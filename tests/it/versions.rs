//! Versions (RFC 7644 §3.14): `meta.version` is the `ETag`, every change moves it on, `If-Match`
//! guards PUT, PATCH and DELETE, and concurrent PATCHes without `If-Match` lose no update.

use std::sync::Arc;

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::*;

fn etag(version: i64) -> String {
    format!("W/\"{version}\"")
}

/// Asserts the reply's `ETag` header equals its `meta.version` and is this version.
#[track_caller]
fn assert_version(reply: &Reply, version: i64) {
    assert_eq!(
        reply.header("etag"),
        Some(etag(version).as_str()),
        "{}",
        reply.body
    );
    assert_eq!(
        reply.body["meta"]["version"],
        etag(version),
        "{}",
        reply.body
    );
}

async fn send_if_match(
    app: &TestApp,
    method: Method,
    path: &str,
    body: Option<&Value>,
    if_match: &str,
) -> Reply {
    app.send_as(&app.token, method, path, body, &[("if-match", if_match)])
        .await
}

fn title_patch(title: &str) -> Value {
    patch_request(json!([{ "op": "replace", "path": "title", "value": title }]))
}

#[tokio::test]
async fn meta_version_is_the_etag_and_every_change_increments_it() {
    let app = TestApp::start().await;
    let created = app.post("/Users", &user("ada@north.example")).await;
    assert_eq!(created.status, 201);
    assert_version(&created, 1);
    assert_eq!(
        created.header("location"),
        created.body["meta"]["location"].as_str()
    );
    let path = format!("/Users/{}", id_of(&created.body));
    assert_version(&app.get(&path).await, 1);

    let put = app
        .put(
            &path,
            &json!({ "schemas": [USER_URN], "userName": "ada@north.example", "title": "Countess" }),
        )
        .await;
    assert_eq!(put.status, 200, "{}", put.body);
    assert_version(&put, 2);
    assert_version(&app.get(&path).await, 2);

    let patched = app.patch(&path, &title_patch("Analyst")).await;
    assert_eq!(patched.status, 200, "{}", patched.body);
    assert_version(&patched, 3);
    let read = app.get(&path).await;
    assert_version(&read, 3);
    assert_eq!(read.body["title"], "Analyst");

    // Lists carry the same version as the resource itself.
    let list = app.get("/Users").await;
    assert_eq!(list.body["Resources"][0]["meta"]["version"], etag(3));

    // Groups too, including a membership change by PATCH.
    let group = app
        .post(
            "/Groups",
            &json!({ "schemas": [GROUP_URN], "displayName": "7A" }),
        )
        .await;
    assert_version(&group, 1);
    let group_path = format!("/Groups/{}", id_of(&group.body));
    let user_id = id_of(&created.body);
    let patched = app
        .patch(
            &group_path,
            &patch_request(
                json!([{ "op": "add", "path": "members", "value": [{ "value": user_id }] }]),
            ),
        )
        .await;
    assert_eq!(patched.status, 200, "{}", patched.body);
    assert_version(&patched, 2);
    let put = app
        .put(
            &group_path,
            &json!({ "schemas": [GROUP_URN], "displayName": "7B" }),
        )
        .await;
    assert_version(&put, 3);
    assert_version(&app.get(&group_path).await, 3);
}

#[tokio::test]
async fn if_match_with_the_current_version_succeeds_on_put_patch_and_delete() {
    let app = TestApp::start().await;
    let path = format!(
        "/Users/{}",
        id_of(&app.create_user(user("ada@north.example")).await)
    );
    let put = send_if_match(
        &app,
        Method::PUT,
        &path,
        Some(&json!({ "schemas": [USER_URN], "userName": "ada@north.example", "title": "One" })),
        &etag(1),
    )
    .await;
    assert_eq!(put.status, 200, "{}", put.body);
    assert_version(&put, 2);

    // A strong tag naming the same version matches too.
    let patched = send_if_match(
        &app,
        Method::PATCH,
        &path,
        Some(&title_patch("Two")),
        "\"2\"",
    )
    .await;
    assert_eq!(patched.status, 200, "{}", patched.body);
    assert_version(&patched, 3);
    assert_eq!(patched.body["title"], "Two");

    let deleted = send_if_match(&app, Method::DELETE, &path, None, &etag(3)).await;
    assert_eq!(deleted.status, 204, "{}", deleted.body);
    app.get(&path).await.assert_error(404, None);
}

#[tokio::test]
async fn a_stale_if_match_is_412_and_changes_nothing() {
    let app = TestApp::start().await;
    let path = format!(
        "/Users/{}",
        id_of(&app.create_user(user("ada@north.example")).await)
    );
    assert_eq!(app.patch(&path, &title_patch("Current")).await.status, 200);
    let before = app.get(&path).await;
    assert_version(&before, 2);

    let put = send_if_match(
        &app,
        Method::PUT,
        &path,
        Some(&json!({ "schemas": [USER_URN], "userName": "stale@north.example" })),
        &etag(1),
    )
    .await;
    put.assert_error(412, None);
    let patched = send_if_match(
        &app,
        Method::PATCH,
        &path,
        Some(&title_patch("Stale")),
        &etag(1),
    )
    .await;
    patched.assert_error(412, None);
    // A version from the future does not match either.
    let patched = send_if_match(
        &app,
        Method::PATCH,
        &path,
        Some(&title_patch("Future")),
        &etag(3),
    )
    .await;
    patched.assert_error(412, None);
    let deleted = send_if_match(&app, Method::DELETE, &path, None, &etag(1)).await;
    deleted.assert_error(412, None);

    let after = app.get(&path).await;
    assert_version(&after, 2);
    assert_eq!(after.body, before.body);
    // No audit events beyond the create and the one real PATCH.
    let trail = app
        .state
        .provider
        .store
        .audit_trail("north", &id_of(&after.body))
        .await
        .unwrap();
    assert_eq!(trail.len(), 2, "{trail:?}");
}

#[tokio::test]
async fn a_stale_if_match_on_a_group_keeps_its_members() {
    let app = TestApp::start().await;
    let ada = id_of(&app.create_user(user("ada@north.example")).await);
    let group = app
        .create_group(
            json!({ "schemas": [GROUP_URN], "displayName": "7A", "members": [{ "value": ada }] }),
        )
        .await;
    let path = format!("/Groups/{}", id_of(&group));
    let reply = send_if_match(
        &app,
        Method::PUT,
        &path,
        Some(&json!({ "schemas": [GROUP_URN], "displayName": "7A" })),
        &etag(9),
    )
    .await;
    reply.assert_error(412, None);
    let read = app.get(&path).await;
    assert_version(&read, 1);
    assert_eq!(read.body["members"][0]["value"], ada.as_str());
}

#[tokio::test]
async fn if_match_star_matches_any_version() {
    let app = TestApp::start().await;
    let path = format!(
        "/Users/{}",
        id_of(&app.create_user(user("ada@north.example")).await)
    );
    let put = send_if_match(
        &app,
        Method::PUT,
        &path,
        Some(&json!({ "schemas": [USER_URN], "userName": "ada@north.example", "title": "A" })),
        "*",
    )
    .await;
    assert_eq!(put.status, 200, "{}", put.body);
    assert_version(&put, 2);
    let patched = send_if_match(&app, Method::PATCH, &path, Some(&title_patch("B")), "*").await;
    assert_eq!(patched.status, 200, "{}", patched.body);
    assert_version(&patched, 3);
    let deleted = send_if_match(&app, Method::DELETE, &path, None, "*").await;
    assert_eq!(deleted.status, 204);
    app.get(&path).await.assert_error(404, None);
    // `*` still needs the resource to exist.
    let again = send_if_match(&app, Method::DELETE, &path, None, "*").await;
    again.assert_error(404, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_member_additions_without_if_match_lose_no_update() {
    const WRITERS: usize = 20;
    let app = Arc::new(TestApp::start().await);
    let mut users = Vec::new();
    for n in 0..WRITERS {
        users.push(id_of(
            &app.create_user(user(&format!("pupil{n}@north.example")))
                .await,
        ));
    }
    let group = app
        .create_group(json!({ "schemas": [GROUP_URN], "displayName": "Everyone" }))
        .await;
    let path = format!("/Groups/{}", id_of(&group));

    let mut tasks = tokio::task::JoinSet::new();
    for member in users.clone() {
        let app = app.clone();
        let path = path.clone();
        tasks.spawn(async move {
            app.patch(
                &path,
                &patch_request(
                    json!([{ "op": "add", "path": "members", "value": [{ "value": member }] }]),
                ),
            )
            .await
        });
    }
    while let Some(reply) = tasks.join_next().await {
        let reply = reply.unwrap();
        assert_eq!(reply.status, 200, "{}", reply.body);
    }

    let read = app.get(&path).await;
    let mut members: Vec<String> = read.body["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["value"].as_str().unwrap().to_owned())
        .collect();
    members.sort();
    users.sort();
    assert_eq!(members, users);
    assert_version(&read, 1 + WRITERS as i64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_email_additions_without_if_match_lose_no_update() {
    const WRITERS: usize = 20;
    let app = Arc::new(TestApp::start().await);
    let path = format!(
        "/Users/{}",
        id_of(&app.create_user(user("ada@north.example")).await)
    );
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..WRITERS {
        let app = app.clone();
        let path = path.clone();
        tasks.spawn(async move {
            app.patch(
                &path,
                &patch_request(json!([{
                    "op": "add", "path": "emails",
                    "value": [{ "type": "other", "value": format!("ada{n}@north.example") }]
                }])),
            )
            .await
        });
    }
    while let Some(reply) = tasks.join_next().await {
        let reply = reply.unwrap();
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
    let read = app.get(&path).await;
    let mut emails: Vec<String> = read.body["emails"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["value"].as_str().unwrap().to_owned())
        .collect();
    emails.sort();
    let mut expected: Vec<String> = (0..WRITERS)
        .map(|n| format!("ada{n}@north.example"))
        .collect();
    expected.sort();
    assert_eq!(emails, expected);
    assert_version(&read, 1 + WRITERS as i64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_puts_without_if_match_all_succeed() {
    const WRITERS: usize = 20;
    let app = Arc::new(TestApp::start().await);
    let path = format!(
        "/Users/{}",
        id_of(&app.create_user(user("ada@north.example")).await)
    );
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..WRITERS {
        let app = app.clone();
        let path = path.clone();
        tasks.spawn(async move {
            app.put(
                &path,
                &json!({ "schemas": [USER_URN], "userName": "ada@north.example", "title": format!("t{n}") }),
            )
            .await
        });
    }
    let mut titles = Vec::new();
    while let Some(reply) = tasks.join_next().await {
        let reply = reply.unwrap();
        // No If-Match was sent, so no precondition can fail: each PUT replaces the user.
        assert_eq!(reply.status, 200, "{}", reply.body);
        titles.push((
            reply.header("etag").unwrap().to_owned(),
            reply.body["title"].as_str().unwrap().to_owned(),
        ));
    }
    // Each writer is answered with the version its own write made: 2 to 21, once each.
    let mut tags: Vec<String> = titles.iter().map(|(tag, _)| tag.clone()).collect();
    tags.sort();
    tags.dedup();
    assert_eq!(tags.len(), WRITERS, "{titles:?}");
    let read = app.get(&path).await;
    assert_version(&read, 1 + WRITERS as i64);
    // The stored document is the one the last writer was answered with.
    let last = titles
        .iter()
        .find(|(tag, _)| *tag == etag(1 + WRITERS as i64))
        .unwrap();
    assert_eq!(read.body["title"], last.1.as_str());
}
