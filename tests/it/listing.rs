//! Listing (RFC 7644 §3.4.2.3–3.4.2.5, §3.4.3): paging, sorting, attribute projection and
//! `POST .search`.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::harness::*;

const SCHOOL_URN: &str = "urn:rollcall:params:scim:schemas:extension:school:2.0:User";
const SEARCH_URN: &str = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";

/// `GET endpoint?params`, URL-encoded; asserts 200 and returns the body.
async fn list(app: &TestApp, endpoint: &str, params: &[(&str, &str)]) -> Value {
    let reply = list_reply(app, endpoint, params).await;
    assert_eq!(reply.status, 200, "{endpoint} {params:?}: {}", reply.body);
    reply.body
}

async fn list_reply(app: &TestApp, endpoint: &str, params: &[(&str, &str)]) -> Reply {
    let url = reqwest::Url::parse_with_params(&format!("{}{endpoint}", app.scim), params).unwrap();
    app.get(url.as_str()).await
}

/// The `Resources` of a list (none when absent).
fn resources(body: &Value) -> Vec<Value> {
    body["Resources"].as_array().cloned().unwrap_or_default()
}

/// userNames in the order the server returned them.
fn ordered_names(body: &Value) -> Vec<String> {
    resources(body)
        .iter()
        .map(|r| r["userName"].as_str().unwrap().to_owned())
        .collect()
}

fn keys(resource: &Value) -> BTreeSet<String> {
    resource.as_object().unwrap().keys().cloned().collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// Asserts the paging members of a ListResponse; they are JSON integers.
#[track_caller]
fn assert_page(body: &Value, total: i64, start: i64, items: usize) {
    assert_eq!(body["totalResults"].as_i64(), Some(total), "{body}");
    assert_eq!(body["startIndex"].as_i64(), Some(start), "{body}");
    assert_eq!(body["itemsPerPage"].as_i64(), Some(items as i64), "{body}");
    assert_eq!(resources(body).len(), items, "{body}");
}

/// 25 users `user00@…` to `user24@…`, created in that order; returns their ids.
async fn seed_25(app: &TestApp) -> Vec<String> {
    let mut ids = Vec::new();
    for n in 0..25 {
        let created = app
            .create_user(json!({
                "schemas": [USER_URN],
                "userName": format!("user{n:02}@north.example"),
                "name": { "givenName": format!("Given{n:02}"), "familyName": format!("Family{:02}", 24 - n) },
                "emails": [{ "type": "work", "value": format!("user{n:02}@north.example") }],
            }))
            .await;
        ids.push(created["id"].as_str().unwrap().to_owned());
    }
    ids
}

#[tokio::test]
async fn paging_is_one_based_clamped_and_stable() {
    let app = TestApp::start().await;
    let created = seed_25(&app).await;
    let everything = list(&app, "/Users", &[]).await;
    assert_page(&everything, 25, 1, 25);
    let all = ids(&everything);
    assert_eq!(
        all.iter().collect::<BTreeSet<_>>(),
        created.iter().collect::<BTreeSet<_>>()
    );

    // Okta's test connection.
    let okta = list(&app, "/Users", &[("startIndex", "1"), ("count", "2")]).await;
    assert_page(&okta, 25, 1, 2);
    assert_eq!(ids(&okta), all[..2]);

    // 25 users, 7 at a time: 7 + 7 + 7 + 4, each exactly once, in the same order as one page.
    let mut paged = Vec::new();
    for (start, size) in [(1, 7), (8, 7), (15, 7), (22, 4)] {
        let page = list(
            &app,
            "/Users",
            &[("startIndex", &start.to_string()), ("count", "7")],
        )
        .await;
        assert_page(&page, 25, start, size);
        paged.extend(ids(&page));
    }
    assert_eq!(paged, all);
    let unique: BTreeSet<&String> = paged.iter().collect();
    assert_eq!(unique.len(), 25);

    // Paging a sorted list is stable too.
    let mut sorted = Vec::new();
    for start in [1, 8, 15, 22] {
        let page = list(
            &app,
            "/Users",
            &[
                ("sortBy", "name.familyName"),
                ("startIndex", &start.to_string()),
                ("count", "7"),
            ],
        )
        .await;
        sorted.extend(ordered_names(&page));
    }
    let expected: Vec<String> = (0..25)
        .rev()
        .map(|n| format!("user{n:02}@north.example"))
        .collect();
    assert_eq!(sorted, expected);

    // startIndex below 1 means 1.
    for start in ["0", "-5"] {
        let page = list(&app, "/Users", &[("startIndex", start), ("count", "3")]).await;
        assert_page(&page, 25, 1, 3);
        assert_eq!(ids(&page), all[..3]);
    }
    // count=0 answers the total only; a negative count means 0.
    for count in ["0", "-3"] {
        let page = list(&app, "/Users", &[("count", count)]).await;
        assert_eq!(page["totalResults"], json!(25), "{page}");
        assert_eq!(page["itemsPerPage"], json!(0), "{page}");
        assert!(resources(&page).is_empty(), "{page}");
    }
    // Past the end: an empty page that still tells the total.
    let past = list(&app, "/Users", &[("startIndex", "26"), ("count", "5")]).await;
    assert_page(&past, 25, 26, 0);
    let tail = list(&app, "/Users", &[("startIndex", "24"), ("count", "10")]).await;
    assert_page(&tail, 25, 24, 2);
    assert_eq!(ids(&tail), all[23..]);
    // A count above maxResults is not an error.
    let big = list(&app, "/Users", &[("count", "5000")]).await;
    assert_page(&big, 25, 1, 25);

    // Paging a filtered list counts the matches only.
    let filtered = list(
        &app,
        "/Users",
        &[
            ("filter", r#"userName sw "user1""#),
            ("startIndex", "2"),
            ("count", "3"),
        ],
    )
    .await;
    assert_page(&filtered, 10, 2, 3);
    let all_filtered = list(&app, "/Users", &[("filter", r#"userName sw "user1""#)]).await;
    assert_eq!(ids(&filtered), ids(&all_filtered)[1..4]);

    // Parameter names in any case.
    let upper = list(&app, "/Users", &[("STARTINDEX", "3"), ("Count", "1")]).await;
    assert_page(&upper, 25, 3, 1);
    assert_eq!(ids(&upper), all[2..3]);
    app.stop().await;
}

#[tokio::test]
async fn paging_parameters_must_be_integers() {
    let app = TestApp::start().await;
    seed_25(&app).await;
    for params in [
        [("count", "abc")],
        [("count", "1.5")],
        [("startIndex", "x")],
        [("startIndex", "")],
        [("count", "99999999999999999999")],
    ] {
        let reply = list_reply(&app, "/Users", &params).await;
        reply.assert_error(400, Some("invalidValue"));
    }
    let reply = list_reply(&app, "/Groups", &[("count", "abc")]).await;
    reply.assert_error(400, Some("invalidValue"));
    // The daemon still answers.
    let page = list(&app, "/Users", &[("count", "1")]).await;
    assert_page(&page, 25, 1, 1);
    app.stop().await;
}

#[tokio::test]
async fn count_above_max_results_is_clamped_to_1000() {
    // Each created user gets a first password: with the default argon2 cost, a thousand of them
    // take most of the request timeout on two busy cores. This test is about paging.
    let app = TestApp::start_with(|text| {
        format!("[argon2]\nmemory_kib = 64\niterations = 1\nparallelism = 1\n{text}")
    })
    .await;
    // 1,005 users in two bulk requests (maxOperations is 1,000).
    for range in [0..1000, 1000..1005] {
        let operations: Vec<Value> = range
            .map(|n| {
                json!({
                    "method": "POST",
                    "path": "/Users",
                    "bulkId": format!("u{n}"),
                    "data": { "schemas": [USER_URN], "userName": format!("bulk{n:04}@north.example") },
                })
            })
            .collect();
        let reply = app
            .post(
                "/Bulk",
                &json!({
                    "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
                    "Operations": operations,
                }),
            )
            .await;
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
    let clamped = list(&app, "/Users", &[("count", "5000")]).await;
    assert_page(&clamped, 1005, 1, 1000);
    // Without count, a page is at most maxResults long.
    let default = list(&app, "/Users", &[]).await;
    assert_page(&default, 1005, 1, 1000);
    let rest = list(&app, "/Users", &[("startIndex", "1001"), ("count", "1000")]).await;
    assert_page(&rest, 1005, 1001, 5);
    let mut seen: BTreeSet<String> = ids(&clamped).into_iter().collect();
    seen.extend(ids(&rest));
    assert_eq!(seen.len(), 1005);
    app.stop().await;
}

#[tokio::test]
async fn sorting() {
    let app = TestApp::start().await;
    // (userName, familyName, employeeNumber), created in this order.
    let people = [
        ("zoe@n.example", "Able", "E5"),
        ("Amy@n.example", "zimmer", "E3"),
        ("bea@n.example", "Moss", "E6"),
        ("Carl@n.example", "baker", "E1"),
        ("dan@n.example", "Ng", "E4"),
        ("Eli@n.example", "Ortiz", "E2"),
    ];
    for (name, family, number) in people {
        app.create_user(json!({
            "schemas": [USER_URN, ENTERPRISE_URN],
            "userName": name,
            "name": { "familyName": family },
            ENTERPRISE_URN: { "employeeNumber": number },
        }))
        .await;
    }
    let sorted = |params: &[(&str, &str)]| {
        let params: Vec<(String, String)> = params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let app = &app;
        async move {
            let params: Vec<(&str, &str)> = params
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            ordered_names(&list(app, "/Users", &params).await)
        }
    };
    // Case-insensitive, as userName is not caseExact.
    let by_name = [
        "Amy@n.example",
        "bea@n.example",
        "Carl@n.example",
        "dan@n.example",
        "Eli@n.example",
        "zoe@n.example",
    ];
    assert_eq!(sorted(&[("sortBy", "userName")]).await, by_name);
    assert_eq!(
        sorted(&[("sortBy", "userName"), ("sortOrder", "ascending")]).await,
        by_name
    );
    let mut descending = by_name.to_vec();
    descending.reverse();
    assert_eq!(
        sorted(&[("sortBy", "userName"), ("sortOrder", "descending")]).await,
        descending
    );
    assert_eq!(
        sorted(&[("sortBy", "USERNAME"), ("sortOrder", "DESCENDING")]).await,
        descending
    );
    assert_eq!(
        sorted(&[("sortBy", &format!("{USER_URN}:userName"))]).await,
        by_name
    );

    let by_family = [
        "zoe@n.example",  // Able
        "Carl@n.example", // baker
        "bea@n.example",  // Moss
        "dan@n.example",  // Ng
        "Eli@n.example",  // Ortiz
        "Amy@n.example",  // zimmer
    ];
    assert_eq!(sorted(&[("sortBy", "name.familyName")]).await, by_family);
    let mut family_down = by_family.to_vec();
    family_down.reverse();
    assert_eq!(
        sorted(&[("sortBy", "name.familyName"), ("sortOrder", "descending")]).await,
        family_down
    );
    assert_eq!(
        sorted(&[
            ("sortBy", "Name.FamilyName"),
            ("sortOrder", "descending"),
            ("startIndex", "2"),
            ("count", "2"),
        ])
        .await,
        ["Eli@n.example", "dan@n.example"]
    );
    assert_eq!(
        sorted(&[
            ("sortBy", &format!("{ENTERPRISE_URN}:employeeNumber")),
            ("sortOrder", "descending"),
        ])
        .await,
        [
            "bea@n.example",
            "zoe@n.example",
            "dan@n.example",
            "Amy@n.example",
            "Eli@n.example",
            "Carl@n.example"
        ]
    );
    let created: Vec<&str> = people.iter().map(|p| p.0).collect();
    assert_eq!(sorted(&[("sortBy", "meta.created")]).await, created);
    let mut newest_first = created.clone();
    newest_first.reverse();
    assert_eq!(
        sorted(&[("sortBy", "meta.created"), ("sortOrder", "descending")]).await,
        newest_first
    );
    // Sorting a filtered list.
    assert_eq!(
        sorted(&[
            (
                "filter",
                r#"userName sw "a" or userName sw "B" or userName sw "c" or userName sw "d""#,
            ),
            ("sortBy", "userName"),
            ("sortOrder", "descending"),
        ])
        .await,
        [
            "dan@n.example",
            "Carl@n.example",
            "bea@n.example",
            "Amy@n.example"
        ]
    );

    // Groups sort by displayName.
    for name in ["beta", "Alpha", "gamma"] {
        app.create_group(json!({ "schemas": [GROUP_URN], "displayName": name }))
            .await;
    }
    let groups = list(
        &app,
        "/Groups",
        &[("sortBy", "displayName"), ("sortOrder", "descending")],
    )
    .await;
    let names: Vec<String> = resources(&groups)
        .iter()
        .map(|g| g["displayName"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["gamma", "beta", "Alpha"]);

    // What cannot be sorted by is refused.
    for params in [
        [("sortBy", "bogus"), ("sortOrder", "ascending")],
        [("sortBy", "name.bogus"), ("sortOrder", "ascending")],
        [
            ("sortBy", r#"emails[type eq "work"]"#),
            ("sortOrder", "ascending"),
        ],
        // A complex attribute sorts by one of its sub-attributes (RFC 7644 §3.4.2.3).
        [("sortBy", "name"), ("sortOrder", "ascending")],
        [("sortBy", "meta"), ("sortOrder", "ascending")],
        [("sortBy", "userName"), ("sortOrder", "sideways")],
    ] {
        let reply = list_reply(&app, "/Users", &params).await;
        reply.assert_error(400, Some("invalidValue"));
    }
    app.stop().await;
}

/// A user with something in every attribute the projection tests look at.
fn full_user(name: &str) -> Value {
    json!({
        "schemas": [USER_URN, ENTERPRISE_URN, SCHOOL_URN],
        "userName": name,
        "externalId": format!("ext-{name}"),
        "displayName": "Ada Lovelace",
        "name": { "givenName": "Ada", "familyName": "Lovelace", "formatted": "Ada Lovelace" },
        "emails": [
            { "type": "work", "value": name, "primary": true },
            { "type": "home", "value": "ada@home.example" },
        ],
        "active": true,
        ENTERPRISE_URN: { "employeeNumber": "E1", "department": "Maths" },
        SCHOOL_URN: { "role": "student", "yearGroup": "12", "studentNumber": "S-1" },
    })
}

#[tokio::test]
async fn attribute_projection() {
    let app = TestApp::start().await;
    let ada = app.create_user(full_user("ada@north.example")).await;
    let plain = app.create_user(user("plain@north.example")).await;
    let group = app
        .create_group(json!({
            "schemas": [GROUP_URN],
            "displayName": "Year 12",
            "members": [{ "value": ada["id"] }, { "value": plain["id"] }],
        }))
        .await;
    let ada_id = ada["id"].as_str().unwrap();

    // Only id, schemas and the attributes asked for.
    for attributes in ["userName", "USERNAME", &format!("{USER_URN}:userName")] {
        let body = list(&app, "/Users", &[("attributes", attributes)]).await;
        assert_eq!(resources(&body).len(), 2);
        for resource in resources(&body) {
            assert_eq!(
                keys(&resource),
                set(&["id", "schemas", "userName"]),
                "{attributes}: {resource}"
            );
        }
    }
    let body = list(&app, "/Users", &[("attributes", "name.givenName")]).await;
    for resource in resources(&body) {
        if resource["id"] == ada["id"] {
            assert_eq!(
                keys(&resource),
                set(&["id", "schemas", "name"]),
                "{resource}"
            );
            assert_eq!(resource["name"], json!({ "givenName": "Ada" }));
        } else {
            assert_eq!(keys(&resource), set(&["id", "schemas"]), "{resource}");
        }
    }
    let body = list(
        &app,
        "/Users",
        &[
            ("filter", r#"userName eq "ada@north.example""#),
            ("attributes", "userName, emails.value"),
        ],
    )
    .await;
    let resource = &resources(&body)[0];
    assert_eq!(
        keys(resource),
        set(&["id", "schemas", "userName", "emails"])
    );
    assert_eq!(
        resource["emails"],
        json!([{ "value": "ada@north.example" }, { "value": "ada@home.example" }])
    );
    let body = list(
        &app,
        "/Users",
        &[
            ("filter", r#"userName eq "ada@north.example""#),
            (
                "attributes",
                &format!("{ENTERPRISE_URN}:department,{SCHOOL_URN}"),
            ),
        ],
    )
    .await;
    let resource = &resources(&body)[0];
    assert_eq!(
        keys(resource),
        set(&["id", "schemas", ENTERPRISE_URN, SCHOOL_URN])
    );
    assert_eq!(resource[ENTERPRISE_URN], json!({ "department": "Maths" }));
    assert_eq!(
        resource[SCHOOL_URN],
        json!({ "role": "student", "yearGroup": "12", "studentNumber": "S-1" })
    );

    // excludedAttributes removes just those; id and schemas cannot be excluded.
    let body = list(&app, "/Users", &[("excludedAttributes", "emails")]).await;
    for resource in resources(&body) {
        assert!(resource.get("emails").is_none(), "{resource}");
        assert!(resource.get("meta").is_some(), "{resource}");
        assert!(resource.get("userName").is_some(), "{resource}");
    }
    let with_ada = |body: &Value| {
        resources(body)
            .into_iter()
            .find(|r| r["id"] == ada["id"])
            .unwrap()
    };
    let full = with_ada(&list(&app, "/Users", &[]).await);
    assert!(full.get("groups").is_some(), "{full}");
    let trimmed = with_ada(
        &list(
            &app,
            "/Users",
            &[(
                "excludedAttributes",
                &format!("name.givenName,{SCHOOL_URN}:yearGroup,groups,id,schemas"),
            )],
        )
        .await,
    );
    assert_eq!(
        trimmed["name"],
        json!({ "familyName": "Lovelace", "formatted": "Ada Lovelace" })
    );
    assert_eq!(
        trimmed[SCHOOL_URN],
        json!({ "role": "student", "studentNumber": "S-1" })
    );
    assert!(trimmed.get("groups").is_none(), "{trimmed}");
    assert_eq!(trimmed["id"], ada["id"]);
    assert!(trimmed.get("schemas").is_some(), "{trimmed}");
    let mut expected_keys = keys(&full);
    expected_keys.remove("groups");
    assert_eq!(keys(&trimmed), expected_keys);

    // Groups: Entra reads them without members.
    let body = list(&app, "/Groups", &[]).await;
    assert_eq!(resources(&body)[0]["members"].as_array().unwrap().len(), 2);
    let body = list(&app, "/Groups", &[("excludedAttributes", "members")]).await;
    let resource = &resources(&body)[0];
    assert!(resource.get("members").is_none(), "{resource}");
    assert_eq!(resource["displayName"], "Year 12");
    assert!(resource.get("meta").is_some(), "{resource}");
    let body = list(&app, "/Groups", &[("attributes", "displayName")]).await;
    assert_eq!(
        keys(&resources(&body)[0]),
        set(&["id", "schemas", "displayName"])
    );
    let body = list(&app, "/Groups", &[("attributes", "members.value")]).await;
    let mut members: Vec<Value> = resources(&body)[0]["members"].as_array().unwrap().clone();
    members.sort_by_key(|m| m["value"].as_str().unwrap().to_owned());
    let mut expected = vec![
        json!({ "value": ada["id"] }),
        json!({ "value": plain["id"] }),
    ];
    expected.sort_by_key(|m| m["value"].as_str().unwrap().to_owned());
    assert_eq!(members, expected);

    // The same on GET by id.
    let one = app
        .get(&format!("/Users/{ada_id}?attributes=userName"))
        .await;
    assert_eq!(one.status, 200, "{}", one.body);
    assert_eq!(keys(&one.body), set(&["id", "schemas", "userName"]));
    assert!(one.header("etag").is_some());
    let one = app
        .get(&format!("/Users/{ada_id}?excludedAttributes=emails,name"))
        .await;
    assert_eq!(one.status, 200, "{}", one.body);
    assert!(one.body.get("emails").is_none() && one.body.get("name").is_none());
    assert_eq!(one.body["userName"], "ada@north.example");
    let group_id = group["id"].as_str().unwrap();
    let one = app
        .get(&format!("/Groups/{group_id}?excludedAttributes=members"))
        .await;
    assert_eq!(one.status, 200, "{}", one.body);
    assert!(one.body.get("members").is_none(), "{}", one.body);
    assert_eq!(one.body["displayName"], "Year 12");

    // Unknown attributes are refused.
    for (endpoint, params) in [
        ("/Users", [("attributes", "bogus")]),
        ("/Users", [("excludedAttributes", "name.bogus")]),
        ("/Groups", [("attributes", "userName")]),
    ] {
        let reply = list_reply(&app, endpoint, &params).await;
        reply.assert_error(400, Some("invalidValue"));
    }
    let reply = app.get(&format!("/Users/{ada_id}?attributes=bogus")).await;
    reply.assert_error(400, Some("invalidValue"));
    app.stop().await;
}

#[tokio::test]
async fn post_search_on_users_groups_and_the_root() {
    let app = TestApp::start().await;
    let user_ids = seed_25(&app).await;
    let mut group_ids = Vec::new();
    for name in ["Club A", "Club B"] {
        let group = app
            .create_group(json!({
                "schemas": [GROUP_URN],
                "displayName": name,
                "members": [{ "value": user_ids[0] }],
            }))
            .await;
        group_ids.push(group["id"].as_str().unwrap().to_owned());
    }

    let reply = app
        .post(
            "/Users/.search",
            &json!({
                "schemas": [SEARCH_URN],
                "attributes": ["userName"],
                "filter": "userName sw \"user0\"",
                "startIndex": 1,
                "count": 3,
                "sortBy": "userName",
                "sortOrder": "descending",
            }),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.header("content-type"), Some("application/scim+json"));
    assert_page(&reply.body, 10, 1, 3);
    assert_eq!(
        ordered_names(&reply.body),
        [
            "user09@north.example",
            "user08@north.example",
            "user07@north.example"
        ]
    );
    for resource in resources(&reply.body) {
        assert_eq!(keys(&resource), set(&["id", "schemas", "userName"]));
    }

    let reply = app
        .post(
            "/Users/.search",
            &json!({
                "schemas": [SEARCH_URN],
                "excludedAttributes": ["emails", "name"],
                "filter": "emails[type eq \"work\" and value eq \"USER24@north.example\"]",
            }),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_page(&reply.body, 1, 1, 1);
    let found = &resources(&reply.body)[0];
    assert_eq!(found["userName"], "user24@north.example");
    assert!(found.get("emails").is_none() && found.get("name").is_none());

    let reply = app
        .post(
            "/Groups/.search",
            &json!({ "schemas": [SEARCH_URN], "filter": "displayName eq \"club b\"", "excludedAttributes": ["members"] }),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_page(&reply.body, 1, 1, 1);
    assert_eq!(resources(&reply.body)[0]["id"], json!(group_ids[1]));
    assert!(resources(&reply.body)[0].get("members").is_none());

    // At the root: users, then groups, as one list.
    let reply = app
        .post(
            "/.search",
            &json!({ "schemas": [SEARCH_URN], "filter": "userName sw \"user0\"" }),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_page(&reply.body, 10, 1, 10);
    let reply = app
        .post(
            "/.search",
            &json!({ "schemas": [SEARCH_URN], "count": 1000 }),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_page(&reply.body, 27, 1, 27);
    let types: Vec<String> = resources(&reply.body)
        .iter()
        .map(|r| r["meta"]["resourceType"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(types[..25], ["User"; 25]);
    assert_eq!(types[25..], ["Group"; 2]);
    // A page across the boundary between users and groups.
    let reply = app
        .post(
            "/.search",
            &json!({ "schemas": [SEARCH_URN], "startIndex": 25, "count": 2 }),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_page(&reply.body, 27, 25, 2);
    assert_eq!(
        ids(&reply.body),
        [user_ids[24].clone(), group_ids[0].clone()]
    );
    // displayName is an attribute of both; only the group has one here.
    let reply = app
        .post(
            "/.search",
            &json!({ "schemas": [SEARCH_URN], "filter": "displayName eq \"Club A\"" }),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_page(&reply.body, 1, 1, 1);
    assert_eq!(ids(&reply.body), [group_ids[0].clone()]);

    // Bad searches.
    for (path, body, scim_type) in [
        (
            "/.search",
            json!({ "schemas": [SEARCH_URN], "filter": "bogus eq 1" }),
            "invalidFilter",
        ),
        (
            "/Users/.search",
            json!({ "schemas": [SEARCH_URN], "filter": "userName eq" }),
            "invalidFilter",
        ),
        (
            "/Users/.search",
            json!({ "schemas": [SEARCH_URN], "count": "abc" }),
            "invalidValue",
        ),
        (
            "/Users/.search",
            json!({ "schemas": [SEARCH_URN], "sortBy": "bogus" }),
            "invalidValue",
        ),
        (
            "/Users/.search",
            json!({ "schemas": [SEARCH_URN], "bogus": true }),
            "invalidSyntax",
        ),
    ] {
        let reply = app.post(path, &body).await;
        reply.assert_error(400, Some(scim_type));
    }
    app.stop().await;
}

#[tokio::test]
async fn sorting_by_a_multi_valued_attribute_uses_its_primary_or_first_value() {
    let app = TestApp::start().await;
    for (name, emails) in [
        (
            "p1@north.example",
            json!([
                { "type": "home", "value": "z@home.example" },
                { "type": "work", "value": "a@work.example", "primary": true },
            ]),
        ),
        (
            "p2@north.example",
            json!([{ "type": "work", "value": "M@work.example" }]),
        ),
        (
            "p3@north.example",
            json!([
                { "type": "home", "value": "b@home.example" },
                { "type": "work", "value": "y@work.example" },
            ]),
        ),
        ("p4@north.example", json!([{ "value": "c@x.example" }])),
    ] {
        app.create_user(json!({ "schemas": [USER_URN], "userName": name, "emails": emails }))
            .await;
    }
    let body = list(&app, "/Users", &[("sortBy", "emails")]).await;
    assert_eq!(
        ordered_names(&body),
        [
            "p1@north.example",
            "p3@north.example",
            "p4@north.example",
            "p2@north.example"
        ]
    );
    let body = list(
        &app,
        "/Users",
        &[("sortBy", "emails.value"), ("sortOrder", "descending")],
    )
    .await;
    assert_eq!(
        ordered_names(&body),
        [
            "p2@north.example",
            "p4@north.example",
            "p3@north.example",
            "p1@north.example"
        ]
    );
    app.stop().await;
}
