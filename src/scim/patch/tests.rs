use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;
use crate::scim::resource::check;
use crate::scim::schema::{Kind, Registry};

/// Applies a PatchOp body to `doc`, then checks the result as the provider does.
fn run(kind: Kind, doc: Value, operations: Value) -> Result<Value, ScimError> {
    static REGISTRY: std::sync::OnceLock<Registry> = std::sync::OnceLock::new();
    let registry = REGISTRY.get_or_init(|| Registry::load().unwrap());
    let body = json!({ "schemas": [PATCH_URN], "Operations": operations });
    let operations = parse(body)?;
    let mut doc = doc.as_object().unwrap().clone();
    apply(registry, kind, &mut doc, &operations)?;
    let checked = check(registry, kind, Value::Object(doc))?;
    let mut data = checked.data;
    if let Some(members) = checked.members {
        data.insert("members".into(), json!(members));
    }
    Ok(Value::Object(data))
}

#[track_caller]
fn check_user(doc: Value, operations: Value, expected: Value) {
    assert_eq!(run(Kind::User, doc, operations).unwrap(), expected);
}

#[track_caller]
fn check_error(kind: Kind, doc: Value, operations: Value, status: u16, scim_type: &str) {
    let error = run(kind, doc, operations).unwrap_err();
    assert_eq!(
        (error.status, error.scim_type.map(|t| t.as_str())),
        (status, Some(scim_type)),
        "{error}"
    );
}

#[test]
fn replace_with_a_path_and_string_booleans() {
    check_user(
        json!({"userName": "a", "active": true}),
        json!([{"op": "Replace", "path": "active", "value": "False"}]),
        json!({"userName": "a", "active": false}),
    );
    check_user(
        json!({"userName": "a"}),
        json!([{"op": "REPLACE", "path": "name.familyName", "value": "Ó Súilleabháin"}]),
        json!({"userName": "a", "name": {"familyName": "Ó Súilleabháin"}}),
    );
}

#[test]
fn no_path_values_take_plain_dotted_and_urn_keys() {
    check_user(
        json!({"userName": "a", "name": {"givenName": "Old"}}),
        json!([{"op": "replace", "value": {
            "displayName": "Bjfe",
            "name.givenName": "Kkom",
            "name.familyName": "Unua",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber": "Aklq",
            "active": false,
        }}]),
        json!({
            "userName": "a",
            "name": {"givenName": "Kkom", "familyName": "Unua"},
            "displayName": "Bjfe",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"employeeNumber": "Aklq"},
            "active": false,
        }),
    );
}

#[test]
fn value_filters_select_elements() {
    let doc = json!({"userName": "a", "emails": [
        {"type": "work", "value": "a@work.example", "primary": true},
        {"type": "home", "value": "a@home.example"},
    ]});
    check_user(
        doc.clone(),
        json!([{"op": "replace", "path": "emails[type eq \"work\"].value", "value": "new@work.example"}]),
        json!({"userName": "a", "emails": [
            {"type": "work", "value": "new@work.example", "primary": true},
            {"type": "home", "value": "a@home.example"},
        ]}),
    );
    check_user(
        doc,
        json!([{"op": "remove", "path": "emails[type eq \"home\"]"}]),
        json!({"userName": "a", "emails": [{"type": "work", "value": "a@work.example", "primary": true}]}),
    );
}

#[test]
fn replacing_a_missing_work_email_creates_it() {
    check_user(
        json!({"userName": "a"}),
        json!([{"op": "replace", "path": "emails[type eq \"work\"].value", "value": "a@work.example"}]),
        json!({"userName": "a", "emails": [{"type": "work", "value": "a@work.example"}]}),
    );
}

#[test]
fn add_appends_to_multi_valued_attributes_without_duplicates() {
    check_user(
        json!({"userName": "a", "emails": [{"value": "x@example.org"}]}),
        json!([{"op": "add", "path": "emails", "value": [{"value": "x@example.org"}, {"value": "y@example.org"}]}]),
        json!({"userName": "a", "emails": [{"value": "x@example.org"}, {"value": "y@example.org"}]}),
    );
}

#[test]
fn member_removal_in_every_client_shape() {
    let run_group = |operations: Value| {
        run(Kind::Group, json!({"displayName": "12A/Ma1", "members": [{"value": "u1"}, {"value": "u2"}, {"value": "u3"}]}), operations)
            .unwrap()["members"]
            .clone()
    };
    assert_eq!(
        run_group(json!([{"op": "Remove", "path": "members", "value": [{"value": "u1"}]}])),
        json!(["u2", "u3"])
    );
    assert_eq!(
        run_group(json!([{"op": "remove", "path": "members[value eq \"u2\"]"}])),
        json!(["u1", "u3"])
    );
    assert_eq!(
        run_group(json!([
            {"op": "remove", "path": "members[value eq \"u3\"]"},
            {"op": "add", "path": "members", "value": [{"value": "u4"}]},
        ])),
        json!(["u1", "u2", "u4"])
    );
    assert_eq!(
        run_group(json!([{"op": "replace", "path": "members", "value": [{"value": "u9"}]}])),
        json!(["u9"])
    );
    // No members key at all: the provider stores that as an empty group.
    assert_eq!(
        run_group(json!([{"op": "remove", "path": "members"}])),
        Value::Null
    );
}

#[test]
fn mistakes_have_the_right_scim_type() {
    let user = json!({"userName": "a"});
    check_error(
        Kind::User,
        user.clone(),
        json!([{"op": "replace", "path": "id", "value": "x"}]),
        400,
        "mutability",
    );
    check_error(
        Kind::User,
        user.clone(),
        json!([{"op": "replace", "path": "groups", "value": []}]),
        400,
        "mutability",
    );
    check_error(
        Kind::User,
        user.clone(),
        json!([{"op": "remove"}]),
        400,
        "noTarget",
    );
    check_error(
        Kind::User,
        user.clone(),
        json!([{"op": "replace", "path": "emails[type eq", "value": "x"}]),
        400,
        "invalidPath",
    );
    check_error(
        Kind::User,
        user.clone(),
        json!([{"op": "replace", "path": "shoeSize", "value": 9}]),
        400,
        "invalidPath",
    );
    check_error(
        Kind::User,
        user.clone(),
        json!([{"op": "jump", "path": "active", "value": true}]),
        400,
        "invalidSyntax",
    );
    check_error(
        Kind::User,
        user.clone(),
        json!([{"op": "replace", "path": "active", "value": "maybe"}]),
        400,
        "invalidValue",
    );
    check_error(
        Kind::User,
        user.clone(),
        json!([{"op": "remove", "path": "userName"}]),
        400,
        "invalidValue",
    );
    check_error(
        Kind::User,
        user,
        json!([{"op": "remove", "path": "emails[type eq \"work\" and value co \"x\"].value"}, {"op": "add", "path": "emails[type pr].value", "value": "x"}]),
        400,
        "noTarget",
    );
    let error = parse(json!({"Operations": []})).unwrap_err();
    assert_eq!(
        error.scim_type,
        Some(crate::scim::error::ScimType::InvalidSyntax)
    );
}

fn arbitrary_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i32>().prop_map(|n| json!(n)),
        prop_oneof![
            Just("add".to_owned()),
            Just("Replace".to_owned()),
            Just("remove".to_owned()),
            Just("emails[type eq \"work\"].value".to_owned()),
            Just("members[value eq \"u1\"]".to_owned()),
            Just("name.givenName".to_owned()),
            Just("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User".to_owned()),
            Just(
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value"
                    .to_owned()
            ),
            "\\PC{0,12}",
        ]
        .prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec(
                (
                    prop_oneof![
                        Just("op".to_owned()),
                        Just("path".to_owned()),
                        Just("value".to_owned()),
                        Just("emails".to_owned()),
                        Just("members".to_owned()),
                        Just("active".to_owned()),
                        Just("name.familyName".to_owned()),
                        Just(
                            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User".to_owned()
                        ),
                        "[a-zA-Z.:]{1,10}",
                    ],
                    inner
                ),
                0..5
            )
            .prop_map(|pairs| Value::Object(pairs.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Whatever a client sends, PATCH parsing and application answer Ok or a 4xx, never panic.
    #[test]
    fn arbitrary_patch_requests_never_panic(operations in prop::collection::vec(arbitrary_json(), 0..4)) {
        let doc = json!({"userName": "a", "emails": [{"type": "work", "value": "a@x"}], "members": [{"value": "u1"}]});
        for kind in [Kind::User, Kind::Group] {
            if let Err(error) = run(kind, doc.clone(), Value::Array(operations.clone())) {
                prop_assert!((400..500).contains(&error.status), "{error}");
            }
        }
    }
}
