//! Discovery endpoints serve exactly the committed files in `schemas/` (plus `meta`).

use std::path::PathBuf;

use reqwest::Method;
use serde_json::Value;

use crate::harness::*;

fn file(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("schemas")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn without_meta(mut value: Value) -> Value {
    value.as_object_mut().expect("object").remove("meta");
    value
}

#[tokio::test]
async fn served_schemas_are_the_files() {
    let app = TestApp::start().await;
    let served = app.get("/Schemas").await;
    assert_eq!(served.status, 200);
    assert_eq!(served.header("content-type"), Some("application/scim+json"));
    let resources = served.body["Resources"]
        .as_array()
        .expect("Resources")
        .clone();
    let names = [
        "User.json",
        "Group.json",
        "EnterpriseUser.json",
        "SchoolUser.json",
        "SchoolGroup.json",
    ];
    assert_eq!(resources.len(), names.len());
    assert_eq!(served.body["totalResults"], names.len());
    for name in names {
        let expected = file(name);
        let id = expected["id"].as_str().expect("id");
        let found = resources
            .iter()
            .find(|r| r["id"] == id)
            .unwrap_or_else(|| panic!("/Schemas lacks {id}"));
        assert_eq!(found["meta"]["resourceType"], "Schema");
        assert_eq!(
            found["meta"]["location"],
            format!("{}/Schemas/{id}", app.scim)
        );
        assert_eq!(without_meta(found.clone()), expected, "{name}");
        let one = app.get(&format!("/Schemas/{id}")).await;
        assert_eq!(one.status, 200);
        assert_eq!(without_meta(one.body), expected, "/Schemas/{id}");
    }
}

#[tokio::test]
async fn served_resource_types_and_configuration_are_the_files() {
    let app = TestApp::start().await;
    let expected = file("ResourceTypes.json");
    let served = app.get("/ResourceTypes").await;
    assert_eq!(served.status, 200);
    let served: Vec<Value> = served.body["Resources"]
        .as_array()
        .expect("Resources")
        .iter()
        .cloned()
        .map(without_meta)
        .collect();
    assert_eq!(Value::Array(served), expected);
    let user = app.get("/ResourceTypes/User").await;
    assert_eq!(
        user.body["meta"]["location"],
        format!("{}/ResourceTypes/User", app.scim)
    );
    assert_eq!(without_meta(user.body), expected[0]);

    let config = app.get("/ServiceProviderConfig").await;
    assert_eq!(config.status, 200);
    assert_eq!(
        without_meta(config.body),
        file("ServiceProviderConfig.json")
    );
}

#[tokio::test]
async fn discovery_needs_no_token_but_resources_do() {
    let app = TestApp::start().await;
    for path in ["/ServiceProviderConfig", "/Schemas", "/ResourceTypes"] {
        let reply = app.send_as("", Method::GET, path, None, &[]).await;
        assert_eq!(reply.status, 200, "{path}");
    }
    let users = app.send_as("", Method::GET, "/Users", None, &[]).await;
    users.assert_error(401, None);
    assert!(
        users
            .header("www-authenticate")
            .is_some_and(|h| h.starts_with("Bearer"))
    );
    let missing = app.get("/Schemas/urn:nothing").await;
    missing.assert_error(404, None);
}
