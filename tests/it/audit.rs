//! The audit log: every change (create, replace, patch, delete; directly or through /Bulk) is
//! recorded with the token, the source and the documents before and after; refused changes
//! record nothing; and no audit document or log line holds a password or its hash.

use reqwest::Method;
use rollcall::clock::Clock;
use serde_json::{Value, json};

use crate::cli::{Setup, open_store};
use crate::harness::*;

type Event = (String, String, String, Option<String>, Option<String>);

async fn trail(app: &TestApp, school: &str, id: &str) -> Vec<Event> {
    app.state
        .provider
        .store
        .audit_trail(school, id)
        .await
        .unwrap()
}

/// The actor string of the only token of this school and source.
async fn actor(app: &TestApp, school: &str, source: &str) -> String {
    let tokens = app
        .state
        .provider
        .store
        .list_tokens(Some(school))
        .await
        .unwrap();
    let token = tokens.iter().find(|t| t.source == source).unwrap();
    format!("token:{}", token.id)
}

fn document(text: &Option<String>) -> Value {
    serde_json::from_str(text.as_deref().expect("a document")).unwrap()
}

/// Asserts no audit document of these events holds the password or any argon2 hash.
#[track_caller]
fn assert_no_secrets(events: &[Event], passwords: &[&str]) {
    for event in events {
        for text in [&event.3, &event.4].into_iter().flatten() {
            for password in passwords {
                assert!(!text.contains(password), "{event:?}");
            }
            assert!(!text.contains("$argon2"), "{event:?}");
            assert!(!text.to_lowercase().contains("password"), "{event:?}");
        }
    }
}

#[tokio::test]
async fn every_user_change_is_audited_with_actor_source_and_documents() {
    let app = TestApp::start().await;
    let entra = actor(&app, "north", "entra").await;
    let created = app
        .create_user(json!({
            "schemas": [USER_URN], "userName": "ada@north.example", "title": "Countess",
            "password": "Tr0ub4dor&3-first"
        }))
        .await;
    let id = id_of(&created);
    let path = format!("/Users/{id}");
    let put = app
        .put(
            &path,
            &json!({ "schemas": [USER_URN], "userName": "ada.lovelace@north.example",
                     "title": "Analyst", "password": "correct-horse-second" }),
        )
        .await;
    assert_eq!(put.status, 200, "{}", put.body);
    let patched = app
        .patch(
            &path,
            &patch_request(json!([
                { "op": "replace", "path": "title", "value": "Programmer" },
                { "op": "replace", "path": "password", "value": "battery-staple-third" }
            ])),
        )
        .await;
    assert_eq!(patched.status, 200, "{}", patched.body);
    assert_eq!(app.delete(&path).await.status, 204);

    let events = trail(&app, "north", &id).await;
    let actions: Vec<&str> = events.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(
        actions,
        ["create", "replace", "replace", "delete"],
        "{events:?}"
    );
    for event in &events {
        assert_eq!(event.1, entra, "{event:?}");
        assert_eq!(event.2, "entra", "{event:?}");
    }
    // create: no before; the document as stored after.
    assert!(events[0].3.is_none());
    let after = document(&events[0].4);
    assert_eq!(after["userName"], "ada@north.example");
    assert_eq!(after["title"], "Countess");
    // PUT: before and after.
    assert_eq!(document(&events[1].3), after);
    let after = document(&events[1].4);
    assert_eq!(after["userName"], "ada.lovelace@north.example");
    assert_eq!(after["title"], "Analyst");
    // PATCH: before and after.
    assert_eq!(document(&events[2].3), after);
    assert_eq!(document(&events[2].4)["title"], "Programmer");
    // delete: the last document before, nothing after.
    assert_eq!(document(&events[3].3)["title"], "Programmer");
    assert!(events[3].4.is_none());

    assert_no_secrets(
        &events,
        &[
            "Tr0ub4dor&3-first",
            "correct-horse-second",
            "battery-staple-third",
        ],
    );
    // Nor do responses carry the password.
    for reply in [&created, &put.body, &patched.body] {
        assert!(reply.get("password").is_none(), "{reply}");
    }
}

#[tokio::test]
async fn group_changes_and_bulk_operations_are_audited() {
    let app = TestApp::start().await;
    let entra = actor(&app, "north", "entra").await;
    let ada = id_of(&app.create_user(user("ada@north.example")).await);
    let reply = app
        .post(
            "/Bulk",
            &bulk_request(vec![
                json!({ "method": "POST", "path": "/Groups", "bulkId": "g",
                        "data": { "schemas": [GROUP_URN], "displayName": "7A",
                                  "members": [{ "value": ada }] } }),
                json!({ "method": "PATCH", "path": "/Groups/bulkId:g",
                        "data": patch_request(json!([{ "op": "replace", "path": "displayName", "value": "7B" }])) }),
            ]),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let location = reply.body["Operations"][0]["location"].as_str().unwrap();
    let group = location.rsplit('/').next().unwrap().to_owned();
    assert_eq!(app.delete(&format!("/Groups/{group}")).await.status, 204);

    let events = trail(&app, "north", &group).await;
    let actions: Vec<&str> = events.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(actions, ["create", "replace", "delete"], "{events:?}");
    assert!(
        events.iter().all(|e| e.1 == entra && e.2 == "entra"),
        "{events:?}"
    );
    assert_eq!(document(&events[0].4)["displayName"], "7A");
    assert_eq!(document(&events[1].3)["displayName"], "7A");
    assert_eq!(document(&events[1].4)["displayName"], "7B");
    assert_eq!(document(&events[2].3)["displayName"], "7B");
}

#[tokio::test]
async fn refused_changes_leave_no_audit_event() {
    let app = TestApp::start().await;
    let id = id_of(&app.create_user(user("ada@north.example")).await);
    let path = format!("/Users/{id}");
    let title = patch_request(json!([{ "op": "replace", "path": "title", "value": "x" }]));
    // A stale version, a bad PATCH, a bad PUT, another school, another source.
    let stale = app
        .send_as(
            &app.token,
            Method::PATCH,
            &path,
            Some(&title),
            &[("if-match", "W/\"7\"")],
        )
        .await;
    assert_eq!(stale.status, 412);
    let bad = app
        .patch(
            &path,
            &patch_request(json!([{ "op": "replace", "path": "active", "value": "maybe" }])),
        )
        .await;
    assert_eq!(bad.status, 400);
    let bad = app.put(&path, &json!({ "schemas": [USER_URN] })).await;
    assert_eq!(bad.status, 400);
    let south = app
        .send_as(&app.other_token, Method::DELETE, &path, None, &[])
        .await;
    assert_eq!(south.status, 404);
    let (_, okta) =
        rollcall::token::create(&app.state.provider.store, &Clock::system(), "north", "okta")
            .await
            .unwrap();
    let okta_reply = app
        .send_as(&okta, Method::PATCH, &path, Some(&title), &[])
        .await;
    assert_eq!(okta_reply.status, 403);

    let events = trail(&app, "north", &id).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].0, "create");
    // The other school's trail is empty for this id.
    assert!(trail(&app, "south", &id).await.is_empty());
}

#[tokio::test]
async fn a_second_source_is_audited_as_itself() {
    let app = TestApp::start().await;
    let (token, okta) =
        rollcall::token::create(&app.state.provider.store, &Clock::system(), "north", "okta")
            .await
            .unwrap();
    let reply = app
        .send_as(
            &okta,
            Method::POST,
            "/Users",
            Some(&user("olga@north.example")),
            &[],
        )
        .await;
    assert_eq!(reply.status, 201);
    let events = trail(&app, "north", &id_of(&reply.body)).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].1, format!("token:{}", token.id));
    assert_eq!(events[0].2, "okta");
}

#[tokio::test]
async fn no_log_line_holds_a_password_its_hash_or_a_token() {
    let setup = Setup::new();
    let token = setup.create_token("north", "entra");
    // The most verbose logging there is, as JSON and as text.
    for format in ["json", "text"] {
        let daemon = setup
            .serve(&[("ROLLCALL_LOG", "trace"), ("ROLLCALL_LOG_FORMAT", format)])
            .await;
        let http = reqwest::Client::new();
        let password = format!("Sup3r-secret-{format}-pw");
        let send = |method: Method, path: String, body: Value| {
            http.request(method, daemon.scim(&path))
                .bearer_auth(&token)
                .header("content-type", "application/scim+json")
                .body(body.to_string())
                .send()
        };
        let created = send(
            Method::POST,
            "/Users".into(),
            json!({ "schemas": [USER_URN], "userName": format!("ada-{format}@north.example"),
                    "password": password }),
        )
        .await
        .unwrap();
        assert_eq!(created.status(), 201);
        let created: Value = created.json().await.unwrap();
        let id = id_of(&created);
        // A refused change carrying the password is logged as a client error: still no secret.
        let refused = send(
            Method::PUT,
            format!("/Users/{id}"),
            json!({ "schemas": [USER_URN], "userName": 5, "password": password }),
        )
        .await
        .unwrap();
        assert_eq!(refused.status(), 400);
        let patched = send(
            Method::PATCH,
            format!("/Users/{id}"),
            patch_request(json!([{ "op": "replace", "path": "password", "value": password }])),
        )
        .await
        .unwrap();
        assert_eq!(patched.status(), 200);

        let store = open_store(&setup).await;
        let events = store.audit_trail("north", &id).await.unwrap();
        assert_eq!(events.len(), 2, "{events:?}");
        assert_no_secrets(&events, &[&password]);
        store.close().await;

        let log = daemon.log();
        assert!(
            log.contains(&id),
            "the log is not verbose enough to prove anything: {log}"
        );
        assert!(!log.contains(&password), "password in the log:\n{log}");
        assert!(!log.contains("$argon2"), "hash in the log:\n{log}");
        assert!(!log.contains(&token), "token in the log:\n{log}");
    }
}

/// The member ids an audited group document lists.
fn audited_members(text: &Option<String>) -> Vec<String> {
    let mut members: Vec<String> = document(text)["members"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|m| m["value"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default();
    members.sort();
    members
}

#[tokio::test]
async fn membership_changes_show_in_the_audited_documents() {
    let app = TestApp::start().await;
    let ada = id_of(&app.create_user(user("ada@north.example")).await);
    let bob = id_of(&app.create_user(user("bob@north.example")).await);
    let group = id_of(
        &app.create_group(json!({ "schemas": [GROUP_URN], "displayName": "7A",
                                  "members": [{ "value": ada }] }))
            .await,
    );
    let path = format!("/Groups/{group}");
    let reply = app
        .patch(
            &path,
            &patch_request(
                json!([{ "op": "add", "path": "members", "value": [{ "value": bob }] }]),
            ),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let reply = app
        .put(
            &path,
            &json!({ "schemas": [GROUP_URN], "displayName": "7A", "members": [{ "value": bob }] }),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(app.delete(&path).await.status, 204);

    let events = trail(&app, "north", &group).await;
    let actions: Vec<&str> = events.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(
        actions,
        ["create", "replace", "replace", "delete"],
        "{events:?}"
    );
    let mut both = vec![ada.clone(), bob.clone()];
    both.sort();
    // Who was added to or removed from the class is the point of auditing a group.
    assert_eq!(audited_members(&events[0].4), [ada.as_str()]);
    assert_eq!(audited_members(&events[1].3), [ada.as_str()]);
    assert_eq!(audited_members(&events[1].4), both);
    assert_eq!(audited_members(&events[2].3), both);
    assert_eq!(audited_members(&events[2].4), [bob.as_str()]);
    assert_eq!(audited_members(&events[3].3), [bob.as_str()]);
}
