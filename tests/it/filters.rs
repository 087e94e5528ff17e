//! Filters (RFC 7644 §3.4.2.2) over HTTP: every operator and combination against a seeded
//! school, compared as exact sets of userNames (or group displayNames).

use std::collections::HashMap;

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::*;

const SCHOOL_URN: &str = "urn:rollcall:params:scim:schemas:extension:school:2.0:User";

const ADA: &str = "ada@north.example";
const BOB: &str = "bob@north.example";
const CY: &str = "cy.young@north.example";
/// Stored in mixed case: userName keeps the case it was sent in.
const DEE: &str = "Dee.Turing@North.Example";
const EVE: &str = "eve@north.example";
const FAY: &str = "fay@north.example";
const GUS: &str = "gus@north.example";
const HAL: &str = "hal@north.example";
const ALL: [&str; 8] = [ADA, BOB, CY, DEE, EVE, FAY, GUS, HAL];

const Y12: &str = "Year 12 Maths";
const STAFF: &str = "Staff";
const EMPTY: &str = "Empty Club";

/// Ids and creation times of the seeded school.
struct Seeded {
    users: HashMap<&'static str, String>,
    /// `meta.created` of each user, in creation order (ADA first).
    created: Vec<String>,
    groups: HashMap<&'static str, String>,
}

impl Seeded {
    fn user(&self, name: &str) -> &str {
        &self.users[name]
    }
    fn group(&self, name: &str) -> &str {
        &self.groups[name]
    }
}

fn email(kind: &str, value: &str) -> Value {
    json!({ "type": kind, "value": value })
}

/// Eight users with varied data and three groups, created over HTTP in this order.
async fn seed(app: &TestApp) -> Seeded {
    let people = [
        json!({
            "schemas": [USER_URN, ENTERPRISE_URN, SCHOOL_URN],
            "userName": ADA, "externalId": "abc", "active": true, "title": "Teacher",
            "name": { "givenName": "Ada", "familyName": "Lovelace" },
            "emails": [
                { "type": "work", "value": "ada@north.example", "primary": true },
                email("home", "ada@home.example"),
            ],
            ENTERPRISE_URN: { "employeeNumber": "E100", "department": "Maths" },
            SCHOOL_URN: { "role": "tutor" },
        }),
        json!({
            "schemas": [USER_URN, ENTERPRISE_URN, SCHOOL_URN],
            "userName": BOB, "externalId": "ABC", "active": false,
            "name": { "givenName": "Bob", "familyName": "Babbage" },
            "emails": [email("work", "bob@north.example")],
            ENTERPRISE_URN: { "employeeNumber": "E200", "department": "Science" },
            SCHOOL_URN: { "role": "student", "yearGroup": "12", "studentNumber": "S-2002" },
        }),
        json!({
            "schemas": [USER_URN, SCHOOL_URN],
            "userName": CY, "externalId": "x-3", "active": true,
            "name": { "givenName": "Cy", "familyName": "Young" },
            "emails": [email("home", "cy@mail.example")],
            SCHOOL_URN: { "role": "student", "yearGroup": "7", "studentNumber": "S-3003" },
        }),
        json!({
            "schemas": [USER_URN, ENTERPRISE_URN, SCHOOL_URN],
            "userName": DEE, "active": true,
            "name": { "givenName": "Dee", "familyName": "Turing" },
            "emails": [email("work", "dee@northfield.example"), email("home", "dee@mail.example")],
            ENTERPRISE_URN: { "employeeNumber": "E300", "department": "Maths" },
            SCHOOL_URN: { "role": "student", "yearGroup": "12", "studentNumber": "S-4004" },
        }),
        json!({
            "schemas": [USER_URN, SCHOOL_URN],
            "userName": EVE, "active": false,
            "name": { "givenName": "Eve", "familyName": "Hopper" },
            SCHOOL_URN: { "role": "student", "yearGroup": "Reception", "studentNumber": "S-5005" },
        }),
        json!({
            "schemas": [USER_URN, ENTERPRISE_URN, SCHOOL_URN],
            "userName": FAY, "active": true,
            "name": { "givenName": "Fay", "familyName": "Lovelace" },
            "emails": [email("work", "fay@west.example")],
            ENTERPRISE_URN: { "employeeNumber": "E400", "department": "Science" },
            SCHOOL_URN: { "role": "tutor" },
        }),
        json!({
            "schemas": [USER_URN],
            "userName": GUS, "active": true,
            "emails": [email("other", "gus@north.example")],
        }),
        json!({
            "schemas": [USER_URN, SCHOOL_URN],
            "userName": HAL, "externalId": "HAL-8", "active": true, "nickName": "Hally",
            "name": { "givenName": "Hal", "familyName": "Young" },
            "emails": [email("work", "hal@north.example")],
            SCHOOL_URN: { "role": "student", "yearGroup": "7", "studentNumber": "S-8008" },
        }),
    ];
    let mut users = HashMap::new();
    let mut created = Vec::new();
    for (name, body) in ALL.into_iter().zip(people) {
        let user = app.create_user(body).await;
        users.insert(name, user["id"].as_str().unwrap().to_owned());
        created.push(user["meta"]["created"].as_str().unwrap().to_owned());
    }
    let mut groups = HashMap::new();
    for (name, members) in [
        (Y12, vec![BOB, DEE]),
        (STAFF, vec![ADA, FAY]),
        (EMPTY, vec![]),
    ] {
        let members: Vec<Value> = members
            .iter()
            .map(|m| json!({ "value": users[m] }))
            .collect();
        let group = app
            .create_group(
                json!({ "schemas": [GROUP_URN], "displayName": name, "members": members }),
            )
            .await;
        groups.insert(name, group["id"].as_str().unwrap().to_owned());
    }
    Seeded {
        users,
        created,
        groups,
    }
}

/// The sorted names a filter finds, checking the ListResponse around them.
async fn found(app: &TestApp, endpoint: &str, filter: &str, key: &str) -> Vec<String> {
    let reply = app.filter(endpoint, filter).await;
    assert_eq!(reply.status, 200, "filter `{filter}`: {}", reply.body);
    let body = &reply.body;
    assert_eq!(body["schemas"], json!([LIST]), "filter `{filter}`");
    let resources = body["Resources"].as_array().cloned().unwrap_or_default();
    assert_eq!(
        body["totalResults"],
        json!(resources.len()),
        "filter `{filter}`"
    );
    let mut names: Vec<String> = resources
        .iter()
        .map(|r| r[key].as_str().unwrap_or_default().to_owned())
        .collect();
    names.sort();
    names
}

const LIST: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";

/// Asserts that a `/Users` filter finds exactly these users.
async fn users(app: &TestApp, filter: &str, expected: &[&str]) {
    let mut expected: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
    expected.sort();
    let names = found(app, "/Users", filter, "userName").await;
    assert_eq!(names, expected, "filter `{filter}`");
}

/// Asserts that a `/Groups` filter finds exactly these groups.
async fn groups(app: &TestApp, filter: &str, expected: &[&str]) {
    let mut expected: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
    expected.sort();
    let names = found(app, "/Groups", filter, "displayName").await;
    assert_eq!(names, expected, "filter `{filter}`");
}

fn all_but(excluded: &[&str]) -> Vec<&'static str> {
    ALL.into_iter().filter(|u| !excluded.contains(u)).collect()
}

async fn invalid(app: &TestApp, endpoint: &str, filter: &str) {
    let reply = app.filter(endpoint, filter).await;
    assert_eq!(
        reply.status,
        400,
        "filter `{}` should be refused: {}",
        filter.chars().take(80).collect::<String>(),
        reply.body
    );
    reply.assert_error(400, Some("invalidFilter"));
}

#[tokio::test]
async fn string_operators_on_user_name_and_name() {
    let app = TestApp::start().await;
    seed(&app).await;
    users(&app, r#"userName eq "ada@north.example""#, &[ADA]).await;
    users(&app, r#"userName ne "ada@north.example""#, &all_but(&[ADA])).await;
    users(&app, r#"userName co "YOUNG""#, &[CY]).await;
    users(&app, r#"userName sw "c""#, &[CY]).await;
    users(&app, r#"userName ew "@north.example""#, &ALL).await;
    users(&app, r#"userName ew "turing@NORTH.example""#, &[DEE]).await;
    users(&app, r#"userName gt "eve@north.example""#, &[FAY, GUS, HAL]).await;
    users(
        &app,
        r#"userName ge "eve@north.example""#,
        &[EVE, FAY, GUS, HAL],
    )
    .await;
    users(&app, r#"userName lt "bob@north.example""#, &[ADA]).await;
    users(&app, r#"userName le "bob@north.example""#, &[ADA, BOB]).await;
    users(&app, "userName pr", &ALL).await;

    users(&app, r#"name.familyName eq "lovelace""#, &[ADA, FAY]).await;
    // An unassigned attribute is "not equal" to any value.
    users(
        &app,
        r#"name.familyName ne "Lovelace""#,
        &all_but(&[ADA, FAY]),
    )
    .await;
    users(&app, r#"name.givenName co "A""#, &[ADA, FAY, HAL]).await;
    users(&app, r#"name.familyName sw "l""#, &[ADA, FAY]).await;
    users(&app, r#"name.familyName ew "NG""#, &[CY, DEE, HAL]).await;
    users(&app, r#"name.familyName gt "m""#, &[CY, DEE, HAL]).await;
    users(&app, r#"name.familyName ge "Young""#, &[CY, HAL]).await;
    users(&app, r#"name.familyName lt "Hopper""#, &[BOB]).await;
    users(&app, r#"name.familyName le "hopper""#, &[BOB, EVE]).await;
    users(&app, "name.familyName pr", &all_but(&[GUS])).await;
    users(&app, "name pr", &all_but(&[GUS])).await;
    users(&app, r#"title eq "teacher""#, &[ADA]).await;
    users(&app, "title pr", &[ADA]).await;
    users(&app, r#"title ne "Teacher""#, &all_but(&[ADA])).await;
    users(&app, r#"nickName eq "HALLY""#, &[HAL]).await;
    app.stop().await;
}

#[tokio::test]
async fn boolean_operators_on_active() {
    let app = TestApp::start().await;
    seed(&app).await;
    let inactive = [BOB, EVE];
    users(&app, "active eq true", &all_but(&inactive)).await;
    users(&app, "active eq false", &inactive).await;
    users(&app, "active ne true", &inactive).await;
    users(&app, "active ne false", &all_but(&inactive)).await;
    users(&app, "active pr", &ALL).await;
    users(
        &app,
        "active eq false and name.familyName eq \"Babbage\"",
        &[BOB],
    )
    .await;
    users(&app, "emails[primary eq true]", &[ADA]).await;
    // The dotted form of a sub-attribute the index does not hold means the same.
    users(&app, "emails.primary eq true", &[ADA]).await;
    users(&app, "emails.primary pr", &[ADA]).await;
    users(
        &app,
        r#"emails[type eq "work" and primary eq true]"#,
        &[ADA],
    )
    .await;
    for filter in [
        "active gt true",
        "active ge false",
        "active lt true",
        "active le true",
        "active co true",
        "active sw true",
        "active ew true",
        r#"active eq "yes""#,
        "active eq 1",
    ] {
        invalid(&app, "/Users", filter).await;
    }
    app.stop().await;
}

#[tokio::test]
async fn date_time_operators_on_meta() {
    let app = TestApp::start().await;
    let seeded = seed(&app).await;
    let c = &seeded.created;
    // Creation times are distinct and in creation order.
    for pair in c.windows(2) {
        assert!(pair[0] < pair[1], "{c:?}");
    }
    let dee = &c[3];
    users(
        &app,
        &format!("meta.created gt \"{dee}\""),
        &[EVE, FAY, GUS, HAL],
    )
    .await;
    users(
        &app,
        &format!("meta.created ge \"{dee}\""),
        &[DEE, EVE, FAY, GUS, HAL],
    )
    .await;
    users(&app, &format!("meta.created lt \"{dee}\""), &[ADA, BOB, CY]).await;
    users(
        &app,
        &format!("meta.created le \"{dee}\""),
        &[ADA, BOB, CY, DEE],
    )
    .await;
    users(&app, &format!("meta.created eq \"{dee}\""), &[DEE]).await;
    users(
        &app,
        &format!("meta.created ne \"{dee}\""),
        &all_but(&[DEE]),
    )
    .await;
    users(&app, "meta.created pr", &ALL).await;
    users(&app, r#"meta.created gt "2000-01-01T00:00:00Z""#, &ALL).await;
    users(&app, r#"meta.created lt "2000-01-01T00:00:00+01:00""#, &[]).await;

    // The same instant written with another offset compares equal.
    let at = time::OffsetDateTime::parse(dee, &time::format_description::well_known::Rfc3339)
        .unwrap()
        .to_offset(time::UtcOffset::from_hms(2, 0, 0).unwrap());
    let shifted = at
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    assert!(shifted.contains("+02:00"), "{shifted}");
    users(&app, &format!("meta.created eq \"{shifted}\""), &[DEE]).await;
    users(
        &app,
        &format!("meta.created gt \"{shifted}\""),
        &[EVE, FAY, GUS, HAL],
    )
    .await;

    // A change moves lastModified, not created.
    let last = &c[7];
    users(&app, &format!("meta.lastModified gt \"{last}\""), &[]).await;
    let patched = app
        .patch(
            &format!("/Users/{}", seeded.user(BOB)),
            &json!({ "schemas": [PATCH_URN], "Operations": [
                { "op": "replace", "path": "title", "value": "Prefect" }
            ]}),
        )
        .await;
    assert_eq!(patched.status, 200, "{}", patched.body);
    users(&app, &format!("meta.lastModified gt \"{last}\""), &[BOB]).await;
    users(
        &app,
        &format!("meta.lastModified le \"{last}\""),
        &all_but(&[BOB]),
    )
    .await;
    users(&app, &format!("meta.created gt \"{last}\""), &[]).await;
    users(
        &app,
        &format!("meta.lastModified gt \"{last}\" and meta.created lt \"{dee}\""),
        &[BOB],
    )
    .await;

    invalid(&app, "/Users", r#"meta.created gt "yesterday""#).await;
    invalid(&app, "/Users", r#"meta.created gt "2024-01-01""#).await;
    invalid(&app, "/Users", "meta.created gt 5").await;
    app.stop().await;
}

#[tokio::test]
async fn logical_operators_and_precedence() {
    let app = TestApp::start().await;
    seed(&app).await;
    // `and` binds tighter than `or`: false-users, or (a* and has a title).
    users(
        &app,
        r#"active eq false or userName sw "a" and title pr"#,
        &[ADA, BOB, EVE],
    )
    .await;
    users(
        &app,
        r#"(active eq false or userName sw "a") and title pr"#,
        &[ADA],
    )
    .await;
    users(
        &app,
        r#"userName sw "a" and title pr or active eq false"#,
        &[ADA, BOB, EVE],
    )
    .await;
    users(&app, "not (active eq true)", &[BOB, EVE]).await;
    users(&app, "not(active eq true)", &[BOB, EVE]).await;
    users(
        &app,
        r#"not (userName sw "a" or userName sw "b")"#,
        &all_but(&[ADA, BOB]),
    )
    .await;
    users(
        &app,
        r#"not (userName sw "a") and not (userName sw "b")"#,
        &all_but(&[ADA, BOB]),
    )
    .await;
    users(
        &app,
        r#"active eq true and not (emails[type eq "work"])"#,
        &[CY, GUS],
    )
    .await;
    // `not` over an attribute that some users lack: they match the negation.
    users(&app, r#"not (title eq "Teacher")"#, &all_but(&[ADA])).await;
    users(&app, "not (not (active eq false))", &[BOB, EVE]).await;
    users(&app, r#"((userName eq "ada@north.example"))"#, &[ADA]).await;
    users(
        &app,
        &format!(
            r#"not (name.familyName eq "Young") and ({SCHOOL_URN}:yearGroup eq "7" or {SCHOOL_URN}:yearGroup eq "12")"#
        ),
        &[BOB, DEE],
    )
    .await;
    users(
        &app,
        r#"userName eq "ada@north.example" or userName eq "bob@north.example" or userName eq "nobody""#,
        &[ADA, BOB],
    )
    .await;
    // Operators and logical words in any case.
    users(&app, r#"userName sw "c" OR userName sw "d""#, &[CY, DEE]).await;
    users(
        &app,
        r#"userName Eq "ada@north.example" AnD active EQ true"#,
        &[ADA],
    )
    .await;
    users(&app, "NOT (active eq true)", &[BOB, EVE]).await;
    users(&app, "userName PR and active Ne TRUE", &[BOB, EVE]).await;
    app.stop().await;
}

#[tokio::test]
async fn value_paths_on_emails() {
    let app = TestApp::start().await;
    seed(&app).await;
    users(
        &app,
        r#"emails[type eq "work" and value co "@north"]"#,
        &[ADA, BOB, DEE, HAL],
    )
    .await;
    // Microsoft Entra ID's shape for its uniqueness attribute.
    users(
        &app,
        r#"emails[type eq "work"].value eq "dee@northfield.example""#,
        &[DEE],
    )
    .await;
    users(
        &app,
        r#"emails[type eq "work"].value eq "DEE@NorthField.example""#,
        &[DEE],
    )
    .await;
    users(
        &app,
        r#"emails[type eq "home"].value eq "dee@northfield.example""#,
        &[],
    )
    .await;
    users(
        &app,
        r#"emails[type eq "work"].value pr"#,
        &[ADA, BOB, DEE, FAY, HAL],
    )
    .await;
    users(&app, r#"emails.value sw "cy@""#, &[CY]).await;
    users(
        &app,
        r#"emails.value ew "@north.example""#,
        &[ADA, BOB, GUS, HAL],
    )
    .await;
    users(&app, r#"emails co "mail.example""#, &[CY, DEE]).await;
    users(&app, r#"emails eq "HAL@north.example""#, &[HAL]).await;
    users(&app, "emails pr", &all_but(&[EVE])).await;
    users(&app, "not (emails pr)", &[EVE]).await;
    users(&app, r#"emails.type eq "home""#, &[ADA, CY, DEE]).await;
    users(&app, r#"emails[type eq "other"]"#, &[GUS]).await;
    users(
        &app,
        r#"emails[not (type eq "work")]"#,
        &[ADA, CY, DEE, GUS],
    )
    .await;
    users(
        &app,
        r#"emails[type eq "home" or value sw "fay"]"#,
        &[ADA, CY, DEE, FAY],
    )
    .await;
    users(
        &app,
        r#"emails[value eq "ada@home.example"] and emails[type eq "work"]"#,
        &[ADA],
    )
    .await;
    // Both conditions must hold for the same address: Dee's work address is not @mail.
    users(
        &app,
        r#"emails[type eq "work" and value co "mail.example"]"#,
        &[],
    )
    .await;
    users(
        &app,
        r#"emails[type eq "home"] or active eq false"#,
        &[ADA, BOB, CY, DEE, EVE],
    )
    .await;
    users(
        &app,
        &format!(r#"{USER_URN}:emails[type eq "work"].value eq "bob@north.example""#),
        &[BOB],
    )
    .await;
    app.stop().await;
}

#[tokio::test]
async fn memberships_filter_both_ways() {
    let app = TestApp::start().await;
    let s = seed(&app).await;
    let (bob, ada) = (s.user(BOB), s.user(ADA));
    groups(&app, &format!(r#"members[value eq "{bob}"]"#), &[Y12]).await;
    groups(&app, &format!(r#"members.value eq "{ada}""#), &[STAFF]).await;
    groups(
        &app,
        &format!(r#"members[value eq "{ada}" or value eq "{bob}"]"#),
        &[STAFF, Y12],
    )
    .await;
    groups(&app, r#"members[type eq "User"]"#, &[STAFF, Y12]).await;
    groups(&app, "members pr", &[STAFF, Y12]).await;
    groups(&app, "not (members pr)", &[EMPTY]).await;
    groups(
        &app,
        &format!(r#"members[value eq "{}"]"#, s.user(EVE)),
        &[],
    )
    .await;

    let (y12, staff) = (s.group(Y12), s.group(STAFF));
    users(&app, &format!(r#"groups[value eq "{y12}"]"#), &[BOB, DEE]).await;
    users(&app, &format!(r#"groups.value eq "{staff}""#), &[ADA, FAY]).await;
    users(&app, r#"groups[display eq "staff"]"#, &[ADA, FAY]).await;
    users(&app, "groups pr", &[ADA, BOB, DEE, FAY]).await;
    users(
        &app,
        &format!(r#"groups[value eq "{y12}"] and active eq true"#),
        &[DEE],
    )
    .await;
    app.stop().await;
}

#[tokio::test]
async fn urn_qualified_and_extension_attributes() {
    let app = TestApp::start().await;
    seed(&app).await;
    users(
        &app,
        &format!(r#"{USER_URN}:userName eq "bob@north.example""#),
        &[BOB],
    )
    .await;
    users(
        &app,
        &format!(r#"{USER_URN}:name.familyName eq "young""#),
        &[CY, HAL],
    )
    .await;
    users(&app, &format!(r#"{USER_URN}:externalId eq "abc""#), &[ADA]).await;
    let e = ENTERPRISE_URN;
    users(&app, &format!(r#"{e}:employeeNumber eq "E300""#), &[DEE]).await;
    // employeeNumber is not caseExact in the enterprise schema.
    users(&app, &format!(r#"{e}:employeeNumber eq "e300""#), &[DEE]).await;
    users(&app, &format!(r#"{e}:department eq "maths""#), &[ADA, DEE]).await;
    users(
        &app,
        &format!("{e}:employeeNumber pr"),
        &[ADA, BOB, DEE, FAY],
    )
    .await;
    users(
        &app,
        &format!(r#"{e}:employeeNumber gt "E200""#),
        &[DEE, FAY],
    )
    .await;
    users(
        &app,
        &format!(r#"{e}:department eq "Science" and active eq true"#),
        &[FAY],
    )
    .await;
    let s = SCHOOL_URN;
    users(&app, &format!(r#"{s}:yearGroup eq "12""#), &[BOB, DEE]).await;
    users(&app, &format!(r#"{s}:yearGroup eq "reception""#), &[EVE]).await;
    users(&app, &format!(r#"{s}:role eq "Tutor""#), &[ADA, FAY]).await;
    // studentNumber is caseExact in the school schema.
    users(&app, &format!(r#"{s}:studentNumber eq "S-2002""#), &[BOB]).await;
    users(&app, &format!(r#"{s}:studentNumber eq "s-2002""#), &[]).await;
    users(
        &app,
        &format!(r#"{s}:studentNumber sw "S-""#),
        &[BOB, CY, DEE, EVE, HAL],
    )
    .await;
    users(&app, &format!("not ({s}:yearGroup pr)"), &[ADA, FAY, GUS]).await;

    // Attribute names and schema URNs in any case.
    users(&app, r#"USERNAME eq "dee.turing@north.example""#, &[DEE]).await;
    users(&app, r#"Name.FamilyName eq "LOVELACE""#, &[ADA, FAY]).await;
    users(
        &app,
        r#"EMAILS[TYPE EQ "WORK"].VALUE EQ "bob@north.example""#,
        &[BOB],
    )
    .await;
    users(
        &app,
        &format!(r#"{}:EMPLOYEENUMBER eq "E100""#, e.to_uppercase()),
        &[ADA],
    )
    .await;
    users(
        &app,
        &format!(r#"{}:YEARGROUP eq "7""#, s.to_ascii_lowercase()),
        &[CY, HAL],
    )
    .await;
    app.stop().await;
}

#[tokio::test]
async fn case_exactness_follows_the_schema() {
    let app = TestApp::start().await;
    let s = seed(&app).await;
    // userName is case-insensitive.
    users(&app, r#"userName eq "ADA@NORTH.EXAMPLE""#, &[ADA]).await;
    users(&app, r#"userName eq "dee.turing@north.example""#, &[DEE]).await;
    users(&app, r#"userName eq "DEE.TURING@NORTH.EXAMPLE""#, &[DEE]).await;
    // externalId and id are caseExact.
    users(&app, r#"externalId eq "abc""#, &[ADA]).await;
    users(&app, r#"externalId eq "ABC""#, &[BOB]).await;
    users(&app, r#"externalId eq "Abc""#, &[]).await;
    users(&app, r#"externalId co "b""#, &[ADA]).await;
    users(&app, r#"externalId sw "HAL""#, &[HAL]).await;
    users(&app, r#"externalId sw "hal""#, &[]).await;
    users(&app, "externalId pr", &[ADA, BOB, CY, HAL]).await;
    let ada = s.user(ADA);
    users(&app, &format!(r#"id eq "{ada}""#), &[ADA]).await;
    users(&app, &format!(r#"id eq "{}""#, ada.to_uppercase()), &[]).await;
    users(&app, &format!(r#"id ne "{ada}""#), &all_but(&[ADA])).await;

    // userName is unique per school without regard to case, whichever way it arrives.
    let again = app.post("/Users", &user("ADA@North.Example")).await;
    again.assert_error(409, Some("uniqueness"));
    let again = app.post("/Users", &user("dee.turing@north.example")).await;
    again.assert_error(409, Some("uniqueness"));
    let bob = s.user(BOB);
    let put = app
        .put(&format!("/Users/{bob}"), &user("ADA@NORTH.EXAMPLE"))
        .await;
    put.assert_error(409, Some("uniqueness"));
    let patch = app
        .patch(
            &format!("/Users/{bob}"),
            &json!({ "schemas": [PATCH_URN], "Operations": [
                { "op": "replace", "path": "userName", "value": "Ada@north.example" }
            ]}),
        )
        .await;
    patch.assert_error(409, Some("uniqueness"));
    users(&app, r#"userName eq "ada@north.example""#, &[ADA]).await;
    users(&app, r#"userName eq "bob@north.example""#, &[BOB]).await;
    // Another school may use the same userName.
    let south = app
        .send_as(
            &app.other_token,
            Method::POST,
            "/Users",
            Some(&user("ADA@north.example")),
            &[],
        )
        .await;
    assert_eq!(south.status, 201, "{}", south.body);
    app.stop().await;
}

#[tokio::test]
async fn group_display_names_are_case_insensitive() {
    let app = TestApp::start().await;
    seed(&app).await;
    groups(&app, r#"displayName eq "staff""#, &[STAFF]).await;
    groups(&app, r#"displayName eq "STAFF""#, &[STAFF]).await;
    groups(&app, r#"displayName eq "year 12 MATHS""#, &[Y12]).await;
    groups(&app, r#"displayName ne "Staff""#, &[EMPTY, Y12]).await;
    groups(&app, r#"displayName co "12""#, &[Y12]).await;
    groups(&app, r#"displayName sw "e""#, &[EMPTY]).await;
    groups(&app, r#"displayName ew "CLUB""#, &[EMPTY]).await;
    groups(&app, r#"displayName gt "f""#, &[STAFF, Y12]).await;
    groups(&app, "displayName pr", &[EMPTY, STAFF, Y12]).await;
    groups(
        &app,
        &format!(r#"{GROUP_URN}:displayName eq "Empty club""#),
        &[EMPTY],
    )
    .await;
    let again = app
        .post(
            "/Groups",
            &json!({ "schemas": [GROUP_URN], "displayName": "STAFF" }),
        )
        .await;
    again.assert_error(409, Some("uniqueness"));
    app.stop().await;
}

#[tokio::test]
async fn a_filter_that_matches_nothing_is_an_empty_list() {
    let app = TestApp::start().await;
    seed(&app).await;
    // Entra's test connection asks for a random user and group that do not exist.
    for (endpoint, filter) in [
        (
            "/Users",
            r#"userName eq "6f1d2c5e-96f4-4d3c-9f0a-5a1f0b7e2c11""#,
        ),
        ("/Users", r#"externalId eq "no-such-person""#),
        (
            "/Groups",
            r#"displayName eq "0b5a8a4e-56f2-4e2c-8b7e-3f6c3f0b2d90""#,
        ),
    ] {
        let reply = app.filter(endpoint, filter).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(reply.header("content-type"), Some("application/scim+json"));
        assert_eq!(reply.body["schemas"], json!([LIST]));
        assert_eq!(reply.body["totalResults"], json!(0));
        assert_eq!(reply.body["itemsPerPage"], json!(0));
        assert_eq!(reply.body["startIndex"], json!(1));
        let resources = reply.body.get("Resources");
        assert!(
            resources.is_none() || resources == Some(&json!([])),
            "{}",
            reply.body
        );
    }
    // A token of another school sees none of this school's people.
    let url = reqwest::Url::parse_with_params(
        &format!("{}/Users", app.scim),
        &[("filter", r#"userName eq "ada@north.example""#)],
    )
    .unwrap();
    let south = app
        .send_as(&app.other_token, Method::GET, url.as_str(), None, &[])
        .await;
    assert_eq!(south.status, 200, "{}", south.body);
    assert_eq!(south.body["totalResults"], json!(0));
    app.stop().await;
}

#[tokio::test]
async fn invalid_filters_are_refused_and_the_daemon_keeps_serving() {
    let app = TestApp::start().await;
    seed(&app).await;
    let deep_parens = format!("{}userName pr{}", "(".repeat(4994), ")".repeat(4994));
    assert!(deep_parens.len() >= 9_999);
    let deep_not = format!("{}userName pr{}", "not (".repeat(2000), ")".repeat(2000));
    let deep_brackets = format!(
        "{}type eq \"x\"{}",
        "emails[".repeat(1300),
        "]".repeat(1300)
    );
    let too_many = vec!["userName pr"; 1001].join(" or ");
    for filter in [
        // Syntax.
        "userName eq",
        r#"userName equals "x""#,
        r#"userName "x""#,
        r#"(userName eq "x""#,
        r#"userName eq "x")"#,
        r#"userName eq "x" junk"#,
        r#"userName eq "x" and"#,
        r#"userName eq "x" or or userName pr"#,
        r#"not userName eq "x""#,
        "userName eq unquoted",
        r#"userName eq "unterminated"#,
        r#"userName eq 'single'"#,
        r#"emails[type eq "work""#,
        r#"emails[type eq "work"]]"#,
        r#"emails[type[value eq "x"] eq "y"]"#,
        "emails[]",
        "()",
        r#"userName eq "\x""#,
        // Unknown attributes and schemas.
        r#"bogus eq "x""#,
        r#"name.bogus eq "x""#,
        r#"emails[bogus eq "x"]"#,
        r#"urn:ietf:params:scim:schemas:extension:bogus:2.0:User:x eq "y""#,
        &format!(r#"{SCHOOL_URN}:shoeSize eq "9""#),
        // Types that do not compare.
        "active gt true",
        r#"name eq "Ada""#,
        "userName gt 5",
        r#"userName co null"#,
        // Too big.
        &deep_parens,
        &deep_not,
        &deep_brackets,
        &too_many,
    ] {
        invalid(&app, "/Users", filter).await;
    }
    // An attribute of users is unknown to groups.
    invalid(&app, "/Groups", r#"userName eq "ada@north.example""#).await;

    // A long filter within the limits is fine: 10,000 characters, 626 comparisons.
    let long = vec!["userName pr"; 626].join(" and ");
    assert!(long.len() >= 9_999);
    users(&app, &long, &ALL).await;

    let list = app.get("/Users").await;
    assert_eq!(list.status, 200);
    assert_eq!(user_names(&list.body).len(), 8);
    let health = app
        .http
        .get(format!("{}/healthz", app.root))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn values_with_quotes_wildcards_and_non_ascii_are_literal() {
    let app = TestApp::start().await;
    let names = [
        "o'brien@north.example",
        "per%cent@north.example",
        "under_score@north.example",
        "quote\"d@north.example",
        "back\\slash@north.example",
        "ada+test@north.example",
        "ødegård@north.example",
        "plain@north.example",
    ];
    for name in names {
        app.create_user(user(name)).await;
    }
    let by_name = |filter: &'static str, expected: &'static [&'static str]| (filter, expected);
    for (filter, expected) in [
        by_name(r#"userName co "'""#, &["o'brien@north.example"]),
        by_name(r#"userName sw "o'b""#, &["o'brien@north.example"]),
        by_name(r#"userName co "%""#, &["per%cent@north.example"]),
        by_name(r#"userName co "_""#, &["under_score@north.example"]),
        by_name(r#"userName co "\"""#, &["quote\"d@north.example"]),
        by_name(
            r#"userName eq "quote\"d@north.example""#,
            &["quote\"d@north.example"],
        ),
        by_name(r#"userName co "\\""#, &["back\\slash@north.example"]),
        by_name(r#"userName sw "ada+""#, &["ada+test@north.example"]),
        by_name(
            r#"userName eq "ada+test@north.example""#,
            &["ada+test@north.example"],
        ),
        // userName folds case beyond ASCII.
        by_name(
            r#"userName eq "ØDEGÅRD@NORTH.EXAMPLE""#,
            &["ødegård@north.example"],
        ),
        by_name(r#"userName sw "\u00f8deg""#, &["ødegård@north.example"]),
        by_name(r#"userName co "*""#, &[]),
        by_name(r#"userName eq "plain@north.example' OR '1'='1""#, &[]),
    ] {
        users(&app, filter, expected).await;
    }
    // Clients encode the filter differently; all of these are the same request.
    for query in [
        "filter=userName%20eq%20%22ada%2Btest%40north.example%22",
        "filter=userName+eq+%22ada%2Btest@north.example%22",
        "FILTER=userName%20EQ%20%22ADA%2BTEST%40NORTH.EXAMPLE%22",
    ] {
        let reply = app.get(&format!("/Users?{query}")).await;
        assert_eq!(reply.status, 200, "{query}: {}", reply.body);
        assert_eq!(
            user_names(&reply.body),
            vec!["ada+test@north.example"],
            "{query}"
        );
    }
    users(&app, r#"meta.resourceType eq "User""#, &names).await;
    users(&app, r#"meta.resourceType eq "Group""#, &[]).await;
    users(&app, r#"meta.version eq "W/\"1\"""#, &names).await;
    app.stop().await;
}
