//! The events each kind of change makes, from the documents the audit log records.

use serde_json::{Value, json};

use super::*;

const USER: &str = "u-1";

fn user(active: Option<bool>, family: &str) -> String {
    let mut document = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", SCHOOL_USER],
        "userName": "smithj",
        "externalId": "E1",
        "name": { "givenName": "Jo", "familyName": family },
        "emails": [{ "value": "jo@example.org", "type": "work" }],
        "phoneNumbers": [{ "value": "+44 1632 960000" }],
        SCHOOL_USER: { "role": "student", "yearGroup": "12" },
    });
    if let Some(active) = active {
        document["active"] = active.into();
    }
    document.to_string()
}

fn group(name: &str, members: &[&str]) -> String {
    let members: Vec<Value> = members.iter().map(|m| json!({ "value": m })).collect();
    let mut document = json!({ "displayName": name });
    if !members.is_empty() {
        document["members"] = Value::Array(members);
    }
    document.to_string()
}

fn kinds(events: &[Event]) -> Vec<(&'static str, &str)> {
    events
        .iter()
        .map(|e| (e.kind.as_str(), e.subject.as_str()))
        .collect()
}

#[test]
fn every_event_type_has_a_name_that_parses_back() {
    for kind in EventType::ALL {
        assert_eq!(EventType::parse(kind.as_str()), Some(kind));
        assert_eq!(kind.to_string(), kind.as_str());
    }
    assert_eq!(EventType::parse("user.renamed"), None);
    assert_eq!(EventType::parse("USER.CREATED"), None);
}

#[test]
fn a_new_user_is_created_with_the_account_and_nothing_else() {
    let after = user(None, "Smith");
    let events = derive(&Change::create(Kind::User, USER, &after), None).unwrap();
    assert_eq!(kinds(&events), [("user.created", USER)]);
    let data = &events[0].data;
    assert_eq!(data["id"], USER);
    assert_eq!(data["userName"], "smithj");
    assert_eq!(data["externalId"], "E1");
    assert_eq!(data["active"], true, "absent means active");
    assert_eq!(data["name"]["familyName"], "Smith");
    assert_eq!(data["emails"][0]["value"], "jo@example.org");
    assert_eq!(data[SCHOOL_USER]["role"], "student");
    // Only the members listed: no phone numbers, no schemas, never a password.
    assert!(data.get("phoneNumbers").is_none(), "{data}");
    assert!(data.get("schemas").is_none(), "{data}");
}

#[test]
fn a_replace_is_an_update_or_a_disable_or_an_enable() {
    let (on, off) = (user(Some(true), "Smith"), user(Some(false), "Smith"));
    let renamed = user(Some(true), "Jones");
    let derive_replace = |before: &str, after: &str, password| {
        derive(
            &Change::replace(Kind::User, USER, before, after, password),
            None,
        )
        .unwrap()
    };
    let events = derive_replace(&on, &renamed, false);
    assert_eq!(kinds(&events), [("user.updated", USER)]);
    assert_eq!(events[0].data["name"]["familyName"], "Jones");

    let events = derive_replace(&on, &off, false);
    assert_eq!(kinds(&events), [("user.disabled", USER)]);
    assert_eq!(events[0].data["active"], false);
    // A flip with other changes is still a disable or enable, not also an update.
    let events = derive_replace(&user(Some(false), "Smith"), &renamed, false);
    assert_eq!(kinds(&events), [("user.enabled", USER)]);
    // Absent `active` is true: from absent to true is no flip, and no change at all.
    assert!(derive_replace(&user(None, "Smith"), &on, false).is_empty());
    // Nor is a change to what an event does not carry.
    let phone = on.replace("+44 1632 960000", "+44 1632 960001");
    assert_ne!(phone, on);
    assert!(derive_replace(&on, &phone, false).is_empty());
    assert!(derive_replace(&on, &on, false).is_empty());
    // A replace that carries a password tells of it too, after the document's change.
    let events = derive_replace(&on, &renamed, true);
    assert_eq!(
        kinds(&events),
        [("user.updated", USER), ("user.password_changed", USER)]
    );
    let events = derive_replace(&on, &on, true);
    assert_eq!(kinds(&events), [("user.password_changed", USER)]);
}

#[test]
fn a_password_change_carries_the_account_read_for_it() {
    let document = user(Some(true), "Smith");
    let events = derive(&Change::password(USER), Some(&document)).unwrap();
    assert_eq!(kinds(&events), [("user.password_changed", USER)]);
    assert_eq!(events[0].data["userName"], "smithj");
    // Without the document (the account is gone) there is nothing to tell.
    assert!(derive(&Change::password(USER), None).unwrap().is_empty());
}

#[test]
fn a_deleted_user_carries_its_last_document() {
    let before = user(Some(false), "Smith");
    let events = derive(&Change::delete(Kind::User, USER, &before), None).unwrap();
    assert_eq!(kinds(&events), [("user.deleted", USER)]);
    assert_eq!(events[0].data["active"], false);
}

#[test]
fn membership_changes_are_one_event_per_member_keyed_by_the_member() {
    let before = group("12B/Ma1", &["a", "b", "c"]);
    let after = group("12B/Ma1", &["b", "d", "e"]);
    let events = derive(
        &Change::replace(Kind::Group, "g", &before, &after, false),
        None,
    )
    .unwrap();
    assert_eq!(
        kinds(&events),
        [
            ("group.membership_changed", "a"),
            ("group.membership_changed", "c"),
            ("group.membership_changed", "d"),
            ("group.membership_changed", "e"),
        ]
    );
    assert_eq!(
        events[0].data,
        json!({ "group": { "id": "g", "displayName": "12B/Ma1" }, "user": "a", "change": "removed" })
    );
    assert_eq!(events[2].data["change"], "added");
    assert_eq!(events[2].data["user"], "d");
    // A rename alone moves nobody.
    let renamed = group("12B/Ma2", &["b", "d", "e"]);
    assert!(
        derive(
            &Change::replace(Kind::Group, "g", &after, &renamed, false),
            None
        )
        .unwrap()
        .is_empty()
    );
}

#[test]
fn a_created_or_deleted_group_adds_or_removes_each_member() {
    let document = group("Tutors", &["t1", "t2"]);
    let created = derive(&Change::create(Kind::Group, "g", &document), None).unwrap();
    assert_eq!(
        kinds(&created),
        [
            ("group.membership_changed", "t1"),
            ("group.membership_changed", "t2")
        ]
    );
    assert!(created.iter().all(|e| e.data["change"] == "added"));
    let deleted = derive(&Change::delete(Kind::Group, "g", &document), None).unwrap();
    assert!(deleted.iter().all(|e| e.data["change"] == "removed"));
    assert_eq!(deleted[1].data["group"]["displayName"], "Tutors");
    // An empty group makes no event.
    let empty = group("Empty", &[]);
    assert!(
        derive(&Change::create(Kind::Group, "g", &empty), None)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn a_corrupt_document_is_an_error_not_a_silent_nothing() {
    assert!(derive(&Change::create(Kind::User, USER, "{not json"), None).is_err());
}

#[test]
fn the_body_holds_id_type_timestamp_school_and_data_in_that_order() {
    let after = user(None, "Smith");
    let events = derive(&Change::create(Kind::User, USER, &after), None).unwrap();
    let body = body("0190-e", &events[0], "north", "2025-01-02T03:04:05.000006Z");
    assert!(
        body.starts_with(
            r#"{"id":"0190-e","type":"user.created","timestamp":"2025-01-02T03:04:05.000006Z","school":"north","data":{"id":"u-1","#
        ),
        "{body}"
    );
    let parsed: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(parsed["data"], events[0].data);
}

#[test]
fn a_subscription_filters_by_event_and_school() {
    let all = Subscription {
        webhook: "lms".into(),
        events: EventType::ALL.to_vec(),
        schools: None,
    };
    assert!(all.wants("north", EventType::UserDeleted));
    let some = Subscription {
        webhook: "lms".into(),
        events: vec![EventType::UserCreated],
        schools: Some(vec!["south".into()]),
    };
    assert!(some.wants("south", EventType::UserCreated));
    assert!(!some.wants("south", EventType::UserDeleted));
    assert!(!some.wants("north", EventType::UserCreated));
    assert!(!some.covers("north"));
}

#[test]
fn a_students_new_courses_are_one_event_keyed_by_the_student() {
    let after = vec![crate::courses::entitlements::Entitlement {
        code: "PH1".into(),
        title: "Physics".into(),
        implied: false,
        implied_by: Vec::new(),
        groups: vec![crate::courses::entitlements::Via {
            name: "12A/Ph1".into(),
            id: "g-1".into(),
        }],
    }];
    let event = entitlements_changed(USER, &after, vec!["PH1".into()], vec!["MA1".into()]);
    assert_eq!(event.kind, EventType::UserEntitlementsChanged);
    assert_eq!(event.kind.as_str(), "user.entitlements_changed");
    assert_eq!(event.subject, USER);
    assert_eq!(
        event.data,
        json!({
            "user": USER,
            "entitlements": [{ "code": "PH1", "title": "Physics", "implied": false,
                               "impliedBy": [], "groups": [{ "name": "12A/Ph1", "id": "g-1" }] }],
            "added": ["PH1"],
            "removed": ["MA1"],
        })
    );
    // Group changes themselves make only membership events: courses are settled by the store.
    let before = group("12A", &["a"]);
    let after = group("12A", &["a", "b"]);
    let events = derive(
        &Change::replace(Kind::Group, "g", &before, &after, false),
        None,
    )
    .unwrap();
    assert_eq!(kinds(&events), [("group.membership_changed", "b")]);
}
