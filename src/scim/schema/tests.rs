use super::*;
use crate::scim::filter::AttrPath;

fn path(urn: Option<&str>, name: &str, sub: Option<&str>) -> AttrPath {
    AttrPath {
        urn: urn.map(str::to_owned),
        name: name.into(),
        sub: sub.map(str::to_owned),
    }
}

fn check(kind: Kind, attr: AttrPath, expected: Result<&str, &str>) {
    let registry = Registry::load().unwrap();
    let actual = registry
        .resolve(kind, &attr)
        .map(|r| r.json_path().join("/"));
    assert_eq!(
        actual.as_deref().map_err(String::as_str),
        expected,
        "{attr}"
    );
}

#[test]
fn the_files_load_and_advertise_the_limits_that_are_enforced() {
    let registry = Registry::load().unwrap();
    assert_eq!(registry.schemas.len(), 5);
    assert_eq!(registry.bulk_max_operations, 1000);
    assert_eq!(registry.bulk_max_payload_size, 1_048_576);
    assert_eq!(registry.filter_max_results, 1000);
    let user_extensions: Vec<&str> = registry.extension_urns(Kind::User).collect();
    assert_eq!(user_extensions, [ENTERPRISE_USER, SCHOOL_USER]);
    let group_extensions: Vec<&str> = registry.extension_urns(Kind::Group).collect();
    assert_eq!(group_extensions, [SCHOOL_GROUP]);
}

#[test]
fn resolves_names_case_insensitively_to_canonical_paths() {
    check(Kind::User, path(None, "userName", None), Ok("userName"));
    check(Kind::User, path(None, "USERNAME", None), Ok("userName"));
    check(
        Kind::User,
        path(None, "name", Some("FAMILYNAME")),
        Ok("name/familyName"),
    );
    check(
        Kind::User,
        path(Some(CORE_USER), "emails", Some("value")),
        Ok("emails/value"),
    );
    check(
        Kind::User,
        path(
            Some("URN:IETF:PARAMS:SCIM:SCHEMAS:EXTENSION:ENTERPRISE:2.0:USER"),
            "employeenumber",
            None,
        ),
        Ok("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User/employeeNumber"),
    );
    check(
        Kind::User,
        path(Some(SCHOOL_USER), "yearGroup", None),
        Ok("urn:rollcall:params:scim:schemas:extension:school:2.0:User/yearGroup"),
    );
    check(
        Kind::User,
        path(None, "meta", Some("lastModified")),
        Ok("meta/lastModified"),
    );
    check(Kind::User, path(None, "externalId", None), Ok("externalId"));
    check(
        Kind::Group,
        path(None, "members", Some("value")),
        Ok("members/value"),
    );
}

#[test]
fn unknown_names_are_errors() {
    check(
        Kind::User,
        path(None, "nickname", Some("x")),
        Err("unknown attribute nickname.x"),
    );
    check(
        Kind::User,
        path(None, "shoeSize", None),
        Err("unknown attribute shoeSize"),
    );
    check(
        Kind::Group,
        path(None, "userName", None),
        Err("unknown attribute userName"),
    );
    check(
        Kind::User,
        path(Some("urn:nothing:2.0:User"), "x", None),
        Err("unknown schema urn:nothing:2.0:User"),
    );
    // The school group extension is not a User extension.
    check(
        Kind::User,
        path(Some(SCHOOL_GROUP), "courses", None),
        Err(&format!("unknown schema {SCHOOL_GROUP}")),
    );
}

#[test]
fn characteristics_follow_the_files() {
    let registry = Registry::load().unwrap();
    let user_name = registry
        .resolve(Kind::User, &path(None, "userName", None))
        .unwrap();
    assert!(!user_name.leaf().case_exact);
    assert!(user_name.leaf().required);
    let password = registry
        .resolve(Kind::User, &path(None, "password", None))
        .unwrap();
    assert_eq!(password.leaf().returned, Returned::Never);
    assert_eq!(password.leaf().mutability, Mutability::WriteOnly);
    let groups = registry
        .resolve(Kind::User, &path(None, "groups", None))
        .unwrap();
    assert_eq!(groups.leaf().mutability, Mutability::ReadOnly);
    let id = registry
        .resolve(Kind::User, &path(None, "id", None))
        .unwrap();
    assert!(id.leaf().case_exact);
    assert_eq!(id.owner, Owner::Common);
}

#[test]
fn a_users_courses_are_read_only_and_returned_by_default() {
    let registry = Registry::load().unwrap();
    // Unqualified, `courses` of a User is the school extension's (the core has none).
    let courses = registry
        .resolve(Kind::User, &path(None, "courses", None))
        .unwrap();
    assert_eq!(courses.owner, Owner::Extension(SCHOOL_USER));
    let attr = courses.attr;
    assert_eq!(attr.kind, AttrType::Complex);
    assert!(attr.multi_valued && !attr.required);
    assert_eq!(attr.mutability, Mutability::ReadOnly);
    assert_eq!(attr.returned, Returned::Default);
    for (name, multi_valued) in [
        ("value", false),
        ("display", false),
        ("implied", false),
        ("impliedBy", true),
        ("groups", true),
    ] {
        let sub = attr.sub(name).unwrap_or_else(|| panic!("no {name}"));
        assert_eq!(sub.multi_valued, multi_valued, "{name}");
        assert_eq!(sub.mutability, Mutability::ReadOnly, "{name}");
    }
    check(
        Kind::User,
        path(Some(SCHOOL_USER), "courses", Some("impliedBy")),
        Ok("urn:rollcall:params:scim:schemas:extension:school:2.0:User/courses/impliedBy"),
    );
}
