//! Tenancy and authentication: a token sees and changes only its own school's resources (others
//! are 404, never 403), only live tokens of configured schools authenticate, and within a
//! school a source may change only the records it owns.

use reqwest::{Method, StatusCode};
use rollcall::clock::Clock;
use rollcall::config::Config;
use serde_json::{Value, json};

use crate::harness::*;

/// A north user and a north group holding it: `(user id, group id)`.
async fn north_fixture(app: &TestApp) -> (String, String) {
    let ada = id_of(
        &app.create_user(json!({
            "schemas": [USER_URN], "userName": "ada@north.example", "externalId": "ada-1",
            "emails": [{ "type": "work", "value": "ada@north.example", "primary": true }]
        }))
        .await,
    );
    let group = id_of(
        &app.create_group(json!({
            "schemas": [GROUP_URN], "displayName": "North 7A", "members": [{ "value": ada }]
        }))
        .await,
    );
    (ada, group)
}

async fn as_south(app: &TestApp, method: Method, path: &str, body: Option<&Value>) -> Reply {
    app.send_as(&app.other_token, method, path, body, &[]).await
}

#[tokio::test]
async fn another_school_cannot_see_north_resources() {
    let app = TestApp::start().await;
    let (ada, group) = north_fixture(&app).await;

    as_south(&app, Method::GET, &format!("/Users/{ada}"), None)
        .await
        .assert_error(404, None);
    as_south(&app, Method::GET, &format!("/Groups/{group}"), None)
        .await
        .assert_error(404, None);
    assert_eq!(total_as(&app, &app.other_token, "/Users").await, 0);
    assert_eq!(total_as(&app, &app.other_token, "/Groups").await, 0);

    for (endpoint, filter) in [
        ("/Users", "userName eq \"ada@north.example\"".to_owned()),
        ("/Users", format!("id eq \"{ada}\"")),
        ("/Users", "externalId eq \"ada-1\"".to_owned()),
        ("/Users", "emails[value co \"north\"]".to_owned()),
        ("/Users", "userName pr".to_owned()),
        ("/Groups", "displayName sw \"North\"".to_owned()),
        ("/Groups", format!("members[value eq \"{ada}\"]")),
    ] {
        let url = reqwest::Url::parse_with_params(
            &format!("{}{endpoint}", app.scim),
            &[("filter", filter.as_str())],
        )
        .unwrap();
        let reply = as_south(&app, Method::GET, url.as_str(), None).await;
        assert_eq!(reply.status, 200, "{filter}: {}", reply.body);
        assert_eq!(reply.body["totalResults"], 0, "{filter}: {}", reply.body);
        // The same filter finds the resource for its own school.
        let own = app
            .send_as(&app.token, Method::GET, url.as_str(), None, &[])
            .await;
        assert_eq!(own.body["totalResults"], 1, "{filter}: {}", own.body);
    }
    for path in ["/Users/.search", "/Groups/.search", "/.search"] {
        let reply = as_south(
            &app,
            Method::POST,
            path,
            Some(&json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"]
            })),
        )
        .await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.body);
        assert_eq!(reply.body["totalResults"], 0, "{path}: {}", reply.body);
    }
}

#[tokio::test]
async fn another_school_cannot_change_or_delete_north_resources() {
    let app = TestApp::start().await;
    let (ada, group) = north_fixture(&app).await;
    let user_before = app.get(&format!("/Users/{ada}")).await;
    let group_before = app.get(&format!("/Groups/{group}")).await;
    let rename =
        patch_request(json!([{ "op": "replace", "path": "displayName", "value": "Taken" }]));

    let attempts: Vec<(Method, String, Option<Value>)> = vec![
        (
            Method::PUT,
            format!("/Users/{ada}"),
            Some(user("ada@north.example")),
        ),
        (Method::PATCH, format!("/Users/{ada}"), Some(rename.clone())),
        (Method::DELETE, format!("/Users/{ada}"), None),
        (
            Method::PUT,
            format!("/Groups/{group}"),
            Some(json!({ "schemas": [GROUP_URN], "displayName": "Taken" })),
        ),
        (Method::PATCH, format!("/Groups/{group}"), Some(rename)),
        (Method::DELETE, format!("/Groups/{group}"), None),
    ];
    for (method, path, body) in attempts {
        let reply = as_south(&app, method.clone(), &path, body.as_ref()).await;
        assert_eq!(reply.status, 404, "{method} {path}: {}", reply.body);
        reply.assert_error(404, None);
        // With `If-Match: *` as well: the precondition does not reveal the resource.
        let reply = app
            .send_as(
                &app.other_token,
                method.clone(),
                &path,
                body.as_ref(),
                &[("if-match", "*")],
            )
            .await;
        reply.assert_error(404, None);
    }
    let user_after = app.get(&format!("/Users/{ada}")).await;
    let group_after = app.get(&format!("/Groups/{group}")).await;
    assert_eq!(user_after.body, user_before.body);
    assert_eq!(group_after.body, group_before.body);
    assert_eq!(user_after.header("etag"), Some("W/\"1\""));
    assert_eq!(group_after.header("etag"), Some("W/\"1\""));
}

#[tokio::test]
async fn the_same_user_name_and_group_name_may_exist_in_both_schools() {
    let app = TestApp::start().await;
    let north = app.create_user(user("sam@example.org")).await;
    let south = as_south(&app, Method::POST, "/Users", Some(&user("sam@example.org"))).await;
    assert_eq!(south.status, 201, "{}", south.body);
    assert_ne!(id_of(&north), id_of(&south.body));
    // Still unique within one school, case-insensitively.
    as_south(&app, Method::POST, "/Users", Some(&user("SAM@example.org")))
        .await
        .assert_error(409, Some("uniqueness"));

    let group = json!({ "schemas": [GROUP_URN], "displayName": "Staff" });
    app.create_group(group.clone()).await;
    let reply = as_south(&app, Method::POST, "/Groups", Some(&group)).await;
    assert_eq!(reply.status, 201, "{}", reply.body);

    // Each school sees only its own Sam.
    let filter = "/Users?filter=userName%20eq%20%22sam%40example.org%22";
    let mine = app.get(filter).await;
    assert_eq!(ids(&mine.body), [id_of(&north)]);
    let theirs = as_south(&app, Method::GET, filter, None).await;
    assert_eq!(ids(&theirs.body), [id_of(&south.body)]);
}

#[tokio::test]
async fn a_north_group_cannot_take_a_south_user_as_member() {
    let app = TestApp::start().await;
    let south_user = as_south(
        &app,
        Method::POST,
        "/Users",
        Some(&user("sid@south.example")),
    )
    .await;
    assert_eq!(south_user.status, 201);
    let south_id = id_of(&south_user.body);
    let south_group = as_south(
        &app,
        Method::POST,
        "/Groups",
        Some(&json!({ "schemas": [GROUP_URN], "displayName": "South club" })),
    )
    .await;
    let south_group = id_of(&south_group.body);

    for member in [&south_id, &south_group] {
        app.post(
            "/Groups",
            &json!({ "schemas": [GROUP_URN], "displayName": "Mixed", "members": [{ "value": member }] }),
        )
        .await
        .assert_error(400, Some("invalidValue"));
    }
    assert_eq!(total_as(&app, &app.token, "/Groups").await, 0);

    let group = app
        .create_group(json!({ "schemas": [GROUP_URN], "displayName": "North only" }))
        .await;
    let path = format!("/Groups/{}", id_of(&group));
    app.patch(
        &path,
        &patch_request(
            json!([{ "op": "add", "path": "members", "value": [{ "value": south_id }] }]),
        ),
    )
    .await
    .assert_error(400, Some("invalidValue"));
    app.put(
        &path,
        &json!({ "schemas": [GROUP_URN], "displayName": "North only", "members": [{ "value": south_id }] }),
    )
    .await
    .assert_error(400, Some("invalidValue"));
    let read = app.get(&path).await;
    assert!(read.body.get("members").is_none(), "{}", read.body);
    assert_eq!(read.header("etag"), Some("W/\"1\""));
    // And the south user does not appear to belong to anything.
    let sid = as_south(&app, Method::GET, &format!("/Users/{south_id}"), None).await;
    assert!(sid.body.get("groups").is_none(), "{}", sid.body);
}

/// Asserts a 401 with a SCIM error body and a `WWW-Authenticate: Bearer …` challenge.
#[track_caller]
fn assert_unauthorized(reply: &Reply) {
    reply.assert_error(401, None);
    let challenge = reply.header("www-authenticate").unwrap_or_default();
    assert!(challenge.starts_with("Bearer"), "{challenge:?}");
}

async fn send_with_authorization(
    app: &TestApp,
    authorization: Option<&str>,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> Reply {
    let mut request = app.http.request(method, format!("{}{path}", app.scim));
    if let Some(authorization) = authorization {
        request = request.header("authorization", authorization);
    }
    if let Some(body) = body {
        request = request
            .header("content-type", "application/scim+json")
            .body(body.to_string());
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    Reply {
        status,
        headers,
        body: serde_json::from_str(&text).unwrap_or(Value::Null),
    }
}

#[tokio::test]
async fn missing_garbage_and_revoked_tokens_are_refused_with_a_challenge() {
    let app = TestApp::start().await;
    let (ada, _) = north_fixture(&app).await;
    let store = &app.state.provider.store;
    let (revoked, revoked_secret) =
        rollcall::token::create(store, &Clock::system(), "north", "entra")
            .await
            .unwrap();
    // It works until it is revoked.
    let reply = app
        .send_as(&revoked_secret, Method::GET, "/Users", None, &[])
        .await;
    assert_eq!(reply.status, 200);
    store
        .revoke_token(&revoked.id, Clock::system().now())
        .await
        .unwrap();

    let revoked_header = format!("Bearer {revoked_secret}");
    let truncated = format!("Bearer {}", &app.token[..app.token.len() - 1]);
    let wrong_scheme = format!("Basic {}", app.token);
    let bare = app.token.clone();
    let authorizations: Vec<Option<&str>> = vec![
        None,
        Some(""),
        Some("Bearer"),
        Some("Bearer "),
        Some("Bearer rct_garbage"),
        Some("Bearer not even a token"),
        Some(truncated.as_str()),
        Some(wrong_scheme.as_str()),
        Some(bare.as_str()),
        Some(revoked_header.as_str()),
    ];
    for authorization in authorizations {
        for (method, path, body) in [
            (Method::GET, "/Users".to_owned(), None),
            (Method::GET, format!("/Users/{ada}"), None),
            (
                Method::POST,
                "/Users".to_owned(),
                Some(user("eve@north.example")),
            ),
            (Method::DELETE, format!("/Users/{ada}"), None),
            (
                Method::POST,
                "/Bulk".to_owned(),
                Some(bulk_request(vec![json!({
                    "method": "POST", "path": "/Users", "bulkId": "e", "data": user("eve@north.example")
                })])),
            ),
        ] {
            let reply =
                send_with_authorization(&app, authorization, method.clone(), &path, body.as_ref())
                    .await;
            assert_eq!(
                reply.status,
                StatusCode::UNAUTHORIZED,
                "{authorization:?} {method} {path}: {}",
                reply.body
            );
            assert_unauthorized(&reply);
        }
    }
    // Nothing was created or deleted.
    assert_eq!(north_totals(&app).await, (1, 1));
    // The revoked token stays revoked; the others still work.
    assert_eq!(app.get("/Users").await.status, 200);
    assert_eq!(total_as(&app, &app.other_token, "/Users").await, 0);
}

#[tokio::test]
async fn a_token_of_a_school_removed_from_the_configuration_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("rollcall.db");
    let both = Config::parse(&config_text(&db), dir.path()).unwrap();
    let clock = Clock::system();
    let state = rollcall::state(&both, clock.clone()).await.unwrap();
    let (_, north_token) = rollcall::token::create(&state.provider.store, &clock, "north", "entra")
        .await
        .unwrap();
    let (_, south_token) = rollcall::token::create(&state.provider.store, &clock, "south", "okta")
        .await
        .unwrap();
    state.provider.store.close().await;

    // The operator removes north from the file and restarts.
    let text = config_text(&db);
    let north = text.find("[[schools]]\nid = \"north\"").unwrap();
    let south = text.find("[[schools]]\nid = \"south\"").unwrap();
    let only_south = format!("{}{}", &text[..north], &text[south..]);
    let config = Config::parse(&only_south, dir.path()).unwrap();
    assert_eq!(config.schools.len(), 1, "{only_south}");
    let state = rollcall::state(&config, clock).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/scim/v2", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(rollcall::serve(
        state,
        config.server,
        listener,
        async move {
            let _ = stopped.await;
        },
    ));
    let http = reqwest::Client::new();
    let north = http
        .get(format!("{base}/Users"))
        .bearer_auth(&north_token)
        .send()
        .await
        .unwrap();
    assert_eq!(north.status(), 401);
    assert!(north.headers().contains_key("www-authenticate"));
    assert_eq!(
        north.headers()["content-type"].to_str().unwrap(),
        "application/scim+json"
    );
    let body: Value = north.json().await.unwrap();
    assert_eq!(body["status"], "401", "{body}");
    let south = http
        .get(format!("{base}/Users"))
        .bearer_auth(&south_token)
        .send()
        .await
        .unwrap();
    assert_eq!(south.status(), 200);
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_source_cannot_change_records_another_source_of_the_school_owns() {
    let app = TestApp::start().await;
    let store = &app.state.provider.store;
    let (_, okta) = rollcall::token::create(store, &Clock::system(), "north", "okta")
        .await
        .unwrap();
    // `app.token` is north's `entra` source.
    let (ada, group) = north_fixture(&app).await;
    let okta_user = app
        .send_as(
            &okta,
            Method::POST,
            "/Users",
            Some(&user("olga@north.example")),
            &[],
        )
        .await;
    assert_eq!(okta_user.status, 201, "{}", okta_user.body);
    let olga = id_of(&okta_user.body);

    // Both sources of a school see all of its records.
    let read = app
        .send_as(&okta, Method::GET, &format!("/Users/{ada}"), None, &[])
        .await;
    assert_eq!(read.status, 200);
    assert_eq!(total_as(&app, &okta, "/Users").await, 2);

    let title = patch_request(json!([{ "op": "replace", "path": "title", "value": "Hijacked" }]));
    let rename =
        patch_request(json!([{ "op": "replace", "path": "displayName", "value": "Hijacked" }]));
    let attempts: Vec<(&str, Method, String, Option<Value>)> = vec![
        (
            &okta,
            Method::PUT,
            format!("/Users/{ada}"),
            Some(user("ada@north.example")),
        ),
        (
            &okta,
            Method::PATCH,
            format!("/Users/{ada}"),
            Some(title.clone()),
        ),
        (&okta, Method::DELETE, format!("/Users/{ada}"), None),
        (
            &okta,
            Method::PUT,
            format!("/Groups/{group}"),
            Some(json!({ "schemas": [GROUP_URN], "displayName": "Hijacked" })),
        ),
        (
            &okta,
            Method::PATCH,
            format!("/Groups/{group}"),
            Some(rename),
        ),
        (&okta, Method::DELETE, format!("/Groups/{group}"), None),
        (
            &app.token,
            Method::PATCH,
            format!("/Users/{olga}"),
            Some(title),
        ),
        (&app.token, Method::DELETE, format!("/Users/{olga}"), None),
    ];
    let before: Vec<Value> = vec![
        app.get(&format!("/Users/{ada}")).await.body,
        app.get(&format!("/Groups/{group}")).await.body,
        app.get(&format!("/Users/{olga}")).await.body,
    ];
    for (token, method, path, body) in attempts {
        let reply = app
            .send_as(token, method.clone(), &path, body.as_ref(), &[])
            .await;
        assert_eq!(reply.status, 403, "{method} {path}: {}", reply.body);
        reply.assert_error(403, None);
    }
    // Through /Bulk as well.
    let reply = app
        .send_as(
            &okta,
            Method::POST,
            "/Bulk",
            Some(&bulk_request(vec![
                json!({ "method": "DELETE", "path": format!("/Users/{ada}") }),
            ])),
            &[],
        )
        .await;
    assert_eq!(
        reply.body["Operations"][0]["status"], "403",
        "{}",
        reply.body
    );
    let after: Vec<Value> = vec![
        app.get(&format!("/Users/{ada}")).await.body,
        app.get(&format!("/Groups/{group}")).await.body,
        app.get(&format!("/Users/{olga}")).await.body,
    ];
    assert_eq!(after, before);

    // The owner itself still may.
    let reply = app
        .send_as(
            &okta,
            Method::PATCH,
            &format!("/Users/{olga}"),
            Some(&patch_request(
                json!([{ "op": "replace", "path": "title", "value": "Mine" }]),
            )),
            &[],
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
}
