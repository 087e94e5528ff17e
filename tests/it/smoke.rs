use crate::harness::*;
use serde_json::json;

#[tokio::test]
async fn a_created_user_can_be_read_back_and_the_daemon_stops() {
    let app = TestApp::start().await;
    let created = app.create_user(user("ada@north.example")).await;
    let id = created["id"].as_str().unwrap();
    let read = app.get(&format!("/Users/{id}")).await;
    assert_eq!(read.status, 200);
    assert_eq!(read.body["userName"], "ada@north.example");
    assert_eq!(read.header("etag"), Some("W/\"1\""));
    assert_eq!(read.body["meta"]["version"], json!("W/\"1\""));
    let health = app
        .http
        .get(format!("{}/healthz", app.root))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    assert!(health.headers().contains_key("x-request-id"));
    app.stop().await;
}
