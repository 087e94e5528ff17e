//! Staff roles: every admin action, as a console page and as an `/api/v1` call, tried by a
//! school admin, a tutor, read-only staff and staff whose role was taken away; each allowed or
//! refused (403, audited) as `roster::access` says. A tutor's lists hold their own groups only.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::cli::Setup;
use crate::console::{Visitor, choose_password, tutor};
use crate::harness::*;

/// The roles of the matrix, in its columns' order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Admin,
    Tutor,
    ReadOnly,
    Revoked,
}

const WHO: [Who; 4] = [Who::Revoked, Who::ReadOnly, Who::Tutor, Who::Admin];

/// The password each member of staff chose in place of their first one.
const STAFF_PASSWORD: &str = "a staff password of my own";

/// A school with two groups, each with its tutor and a student, and its staff: `office` (the
/// admin), a tutor of `7A`, read-only staff, and a tutor whose role was taken away.
struct School {
    app: TestApp,
    /// 7A, whose tutor is the tutor of the matrix, and 7B, whose tutor is another.
    own: Value,
    other: Value,
    /// A student of 7A and one of 7B.
    sam: String,
    pat: String,
    /// Each role's API token and account (username, password); the admin signs in as
    /// `office` with a console password.
    tokens: Vec<(Who, String)>,
    accounts: Vec<(Who, String, String)>,
}

async fn account(
    app: &TestApp,
    first: &str,
    surname: &str,
    role: &str,
    group: Option<&str>,
) -> Value {
    let mut body = json!({ "firstName": first, "surname": surname, "role": role });
    if let Some(group) = group {
        body["group"] = group.into();
    }
    app.new_account(&body).await
}

async fn group(app: &TestApp, name: &str, tutor: &str) -> Value {
    let reply = app
        .api(
            Method::POST,
            "/schools/north/groups",
            Some(ApiBody::Json(&json!({ "name": name, "tutors": [tutor] }))),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    reply.body
}

async fn grant(app: &TestApp, user_name: &str, role: &str) {
    let provider = &app.state.provider;
    let role = rollcall::store::StaffRole::parse(role).unwrap();
    provider
        .grant(&rollcall::roster::Admin::cli("north"), user_name, role)
        .await
        .unwrap();
}

async fn school() -> School {
    let app = TestApp::start().await;
    let tutor_7a = account(&app, "Ada", "Lovelace", "tutor", None).await;
    let tutor_7b = tutor(&app, "Bea", "Other").await;
    let reader = account(&app, "Rita", "Reader", "tutor", None).await;
    let leaver = account(&app, "Len", "Leaver", "tutor", None).await;
    let own = group(&app, "7A", tutor_7a["userName"].as_str().unwrap()).await;
    let other = group(&app, "7B", &tutor_7b).await;
    let sam = account(&app, "Sam", "Student", "student", Some("7A")).await;
    let pat = account(&app, "Pat", "Pupil", "student", Some("7B")).await;
    let mut tokens = vec![(Who::Admin, app.admin_token.clone())];
    let mut accounts = Vec::new();
    for (who, person, role) in [
        (Who::Tutor, &tutor_7a, "tutor"),
        (Who::ReadOnly, &reader, "read-only"),
        (Who::Revoked, &leaver, "tutor"),
    ] {
        let user_name = person["userName"].as_str().unwrap();
        grant(&app, user_name, role).await;
        let (_, token) = rollcall::token::create_admin(
            &app.state.provider.store,
            &app.state.provider.clock,
            "north",
            user_name,
        )
        .await
        .unwrap();
        tokens.push((who, token));
        // A first password opens no console: each chooses their own, as on their first day.
        let first = person["password"].as_str().unwrap();
        choose_password(&app, "north", user_name, first, STAFF_PASSWORD).await;
        accounts.push((who, user_name.to_owned(), STAFF_PASSWORD.to_owned()));
    }
    School {
        own,
        other,
        sam: sam["id"].as_str().unwrap().to_owned(),
        pat: pat["id"].as_str().unwrap().to_owned(),
        tokens,
        accounts,
        app,
    }
}

impl School {
    fn token(&self, who: Who) -> &str {
        &self.tokens.iter().find(|(w, _)| *w == who).unwrap().1
    }

    fn account(&self, who: Who) -> (&str, &str) {
        let (_, name, password) = self.accounts.iter().find(|(w, ..)| *w == who).unwrap();
        (name, password)
    }

    /// A console visitor signed in as `who`.
    async fn visitor(&self, who: Who) -> Visitor {
        if who == Who::Admin {
            return Visitor::admin_of(&self.app, "north").await;
        }
        let (name, password) = self.account(who);
        let mut visitor = Visitor::new(&self.app);
        let signed = visitor.sign_in("north", name, password).await;
        assert_eq!(
            signed.status,
            StatusCode::SEE_OTHER,
            "{who:?}: {}",
            signed.body
        );
        assert_eq!(signed.location(), "/admin/groups");
        visitor
    }
}

/// One action of the matrix: method, path, what it sends, who may, and the status they get.
type Row<Sent> = (Method, String, Sent, Vec<Who>, u16);

/// The expected answer of an action for each role: its status when allowed, or `None` when
/// refused (403).
fn expect(who: Who, allowed: &[Who], status: u16) -> Option<u16> {
    allowed.contains(&who).then_some(status)
}

#[tokio::test]
async fn each_role_may_call_the_admin_api_as_specified() {
    let school = school().await;
    // Taken away after its token was issued: the token stays, the role is gone.
    grant(&school.app, school.account(Who::Revoked).0, "none").await;
    let (own, other) = (
        school.own["id"].as_str().unwrap(),
        school.other["id"].as_str().unwrap(),
    );
    let (sam, pat) = (school.sam.as_str(), school.pat.as_str());
    use Who::*;
    let all_staff = [Admin, Tutor, ReadOnly];
    let new_group = json!({ "name": "8C" });
    let new_person = json!({ "firstName": "New", "surname": "Person" });
    let calls: Vec<Row<Option<Value>>> = vec![
        (
            Method::GET,
            "/schools/north/courses".into(),
            None,
            all_staff.to_vec(),
            200,
        ),
        (
            Method::GET,
            "/schools/north/groups".into(),
            None,
            all_staff.to_vec(),
            200,
        ),
        (
            Method::GET,
            format!("/schools/north/groups/{own}"),
            None,
            all_staff.to_vec(),
            200,
        ),
        (
            Method::GET,
            format!("/schools/north/groups/{other}"),
            None,
            vec![Admin, ReadOnly],
            200,
        ),
        (
            Method::GET,
            "/schools/north/groups/7B".into(),
            None,
            vec![Admin, ReadOnly],
            200,
        ),
        (
            Method::POST,
            "/schools/north/groups".into(),
            Some(new_group),
            vec![Admin],
            201,
        ),
        (
            Method::POST,
            format!("/schools/north/groups/{own}/students:bulk?dry_run=true"),
            None,
            vec![Admin],
            200,
        ),
        (
            Method::POST,
            "/schools/north/users".into(),
            Some(new_person),
            vec![Admin],
            201,
        ),
        (
            Method::GET,
            format!("/schools/north/users/{sam}/entitlements"),
            None,
            all_staff.to_vec(),
            200,
        ),
        (
            Method::GET,
            format!("/schools/north/users/{pat}/entitlements"),
            None,
            vec![Admin, ReadOnly],
            200,
        ),
        (
            Method::POST,
            format!("/schools/north/slips:collect?group={own}"),
            None,
            vec![Admin, Tutor],
            200,
        ),
        (
            Method::POST,
            format!("/schools/north/slips:collect?group={other}"),
            None,
            vec![Admin],
            200,
        ),
        (
            Method::POST,
            "/schools/north/slips:collect".into(),
            None,
            vec![Admin],
            200,
        ),
        (
            Method::GET,
            "/schools/north/sources".into(),
            None,
            vec![Admin, ReadOnly],
            200,
        ),
        // Allowed, and then there is no such source.
        (
            Method::POST,
            "/schools/north/sources/nowhere/runs".into(),
            None,
            vec![Admin],
            404,
        ),
    ];
    for who in WHO {
        for (method, path, body, allowed, status) in &calls {
            let body = match (body, path.contains("students:bulk")) {
                (Some(json), _) => Some(ApiBody::Json(json)),
                (None, true) => Some(ApiBody::Text("First name\tSurname\nNew\tStudent\n")),
                (None, false) => None,
            };
            let reply = school
                .app
                .api_as(Some(school.token(who)), method.clone(), path, body)
                .await;
            match expect(who, allowed, *status) {
                Some(status) => assert_eq!(
                    reply.status, status,
                    "{who:?} {method} {path} should be allowed: {}",
                    reply.body
                ),
                None => {
                    assert_eq!(reply.status, 403, "{who:?} {method} {path}: {}", reply.body);
                    assert_eq!(reply.body["error"], "forbidden");
                }
            }
        }
    }
    // A tutor's list holds their own group only; read-only staff see both.
    let names = |reply: &Reply| -> Vec<String> {
        reply.body["groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let list = |who| {
        school.app.api_as(
            Some(school.token(who)),
            Method::GET,
            "/schools/north/groups",
            None,
        )
    };
    assert_eq!(names(&list(Tutor).await), ["7A"]);
    assert_eq!(names(&list(ReadOnly).await), ["7A", "7B", "8C"]);
    // Each refusal is in the audit log, on what was asked for, with who asked.
    let trail = school
        .app
        .state
        .provider
        .store
        .audit_trail("north", pat)
        .await
        .unwrap();
    let denied: Vec<(&str, &str)> = trail
        .iter()
        .filter(|(action, ..)| action.starts_with("denied:"))
        .map(|(action, actor, ..)| (action.as_str(), actor.as_str()))
        .collect();
    let tutor_actor = format!("admin:{}", school.account(Tutor).0);
    let revoked_actor = format!("admin:{}", school.account(Revoked).0);
    assert_eq!(
        denied,
        [
            ("denied:view_people", revoked_actor.as_str()),
            ("denied:view_people", tutor_actor.as_str()),
        ]
    );
    school.app.stop().await;
}

#[tokio::test]
async fn each_role_may_use_the_console_as_specified() {
    let school = school().await;
    let (own, other) = (
        school.own["id"].as_str().unwrap(),
        school.other["id"].as_str().unwrap(),
    );
    let (sam, pat) = (school.sam.as_str(), school.pat.as_str());
    use Who::*;
    let all_staff = [Admin, Tutor, ReadOnly];
    let pages: Vec<Row<Vec<(&str, &str)>>> = vec![
        (
            Method::GET,
            "/admin/groups".into(),
            vec![],
            all_staff.to_vec(),
            200,
        ),
        (
            Method::GET,
            format!("/admin/groups/{own}"),
            vec![],
            all_staff.to_vec(),
            200,
        ),
        (
            Method::GET,
            format!("/admin/groups/{other}"),
            vec![],
            vec![Admin, ReadOnly],
            200,
        ),
        (
            Method::GET,
            "/admin/groups/new".into(),
            vec![],
            vec![Admin],
            200,
        ),
        // Allowed, and refused for the empty name.
        (
            Method::POST,
            "/admin/groups/new".into(),
            vec![("name", "")],
            vec![Admin],
            422,
        ),
        (
            Method::GET,
            format!("/admin/groups/{own}/edit"),
            vec![],
            vec![Admin],
            200,
        ),
        (
            Method::GET,
            format!("/admin/groups/{own}/students"),
            vec![],
            vec![Admin],
            200,
        ),
        (
            Method::POST,
            format!("/admin/groups/{own}/students/preview"),
            vec![("text", "First name\tSurname\nNew\tStudent\n")],
            vec![Admin],
            200,
        ),
        (
            Method::GET,
            "/admin/users?q=p".into(),
            vec![],
            all_staff.to_vec(),
            200,
        ),
        (
            Method::GET,
            format!("/admin/users/{sam}"),
            vec![],
            all_staff.to_vec(),
            200,
        ),
        (
            Method::GET,
            format!("/admin/users/{pat}"),
            vec![],
            vec![Admin, ReadOnly],
            200,
        ),
        (
            Method::POST,
            format!("/admin/users/{sam}/password"),
            vec![],
            vec![Admin, Tutor],
            303,
        ),
        (
            Method::POST,
            format!("/admin/users/{pat}/password"),
            vec![],
            vec![Admin],
            303,
        ),
        (
            Method::POST,
            format!("/admin/users/{sam}/active"),
            vec![("active", "true")],
            vec![Admin],
            303,
        ),
        (
            Method::POST,
            format!("/admin/users/{sam}/move"),
            vec![("from", own), ("to", own)],
            vec![Admin],
            422,
        ),
        (
            Method::POST,
            "/admin/users/new".into(),
            vec![],
            vec![Admin],
            422,
        ),
        (
            Method::GET,
            "/admin/slips".into(),
            vec![],
            vec![Admin, Tutor],
            200,
        ),
        (
            Method::GET,
            "/admin/sources".into(),
            vec![],
            vec![Admin, ReadOnly],
            200,
        ),
        (
            Method::POST,
            "/admin/sources/nowhere/plan".into(),
            vec![],
            vec![Admin],
            404,
        ),
        (Method::GET, "/admin/staff".into(), vec![], vec![Admin], 200),
        (
            Method::POST,
            "/admin/staff".into(),
            vec![("user_name", school.account(Tutor).0), ("role", "tutor")],
            vec![Admin],
            303,
        ),
    ];
    for who in [ReadOnly, Tutor, Admin] {
        let mut visitor = school.visitor(who).await;
        // Any page carries the form token of the session.
        let csrf = visitor.get("/admin/groups").await.csrf();
        for (method, path, fields, allowed, status) in &pages {
            let page = if *method == Method::GET {
                visitor.get(path).await
            } else {
                let mut all = vec![("csrf", csrf.as_str())];
                all.extend(fields.iter().copied());
                visitor.post(path, &all).await
            };
            match expect(who, allowed, *status) {
                Some(status) => assert_eq!(
                    page.status.as_u16(),
                    status,
                    "{who:?} {method} {path} should be allowed: {}",
                    page.body
                ),
                None => {
                    assert_eq!(page.status, 403, "{who:?} {method} {path}: {}", page.body);
                    assert!(
                        page.body.contains("may not") || page.body.contains("only in their own"),
                        "{}",
                        page.body
                    );
                }
            }
        }
    }
    // A tutor's console shows their group and its students, not another's.
    let mut tutor = school.visitor(Tutor).await;
    let groups = tutor.get("/admin/groups").await.shown();
    assert!(groups.contains("7A") && !groups.contains("7B"), "{groups}");
    assert!(!groups.contains("New teaching group"), "{groups}");
    // Both groups' students match; the tutor finds their own.
    let found = tutor.get("/admin/users?q=7").await.shown();
    assert!(found.contains(sam) && !found.contains(pat), "{found}");
    // Taking the role away ends what a signed-in session may do at once.
    grant(&school.app, school.account(Tutor).0, "none").await;
    let refused = tutor.get("/admin/groups").await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    // And with no role, signing in fails like a wrong password.
    let (name, password) = school.account(Revoked);
    grant(&school.app, name, "none").await;
    let mut visitor = Visitor::new(&school.app);
    let signed = visitor.sign_in("north", name, password).await;
    assert_ne!(signed.status, StatusCode::SEE_OTHER, "{}", signed.body);
    school.app.stop().await;
}

#[tokio::test]
async fn a_disabled_tutor_account_loses_the_console() {
    let school = school().await;
    let (name, _) = school.account(Who::Tutor);
    let tutor_id = school.own["tutors"][0]["id"].as_str().unwrap().to_owned();
    let allowed = school
        .app
        .api_as(
            Some(school.token(Who::Tutor)),
            Method::GET,
            "/schools/north/groups",
            None,
        )
        .await;
    assert_eq!(allowed.status, 200, "{}", allowed.body);
    let mut admin = Visitor::admin_of(&school.app, "north").await;
    let disabled = admin
        .submit(
            &format!("/admin/users/{tutor_id}"),
            &format!("/admin/users/{tutor_id}/active"),
            &[("active", "false")],
        )
        .await;
    assert_eq!(disabled.status, StatusCode::SEE_OTHER, "{}", disabled.body);
    let refused = school
        .app
        .api_as(
            Some(school.token(Who::Tutor)),
            Method::GET,
            "/schools/north/groups",
            None,
        )
        .await;
    assert_eq!(refused.status, 403, "{name}: {}", refused.body);
    school.app.stop().await;
}

#[test]
fn admin_grant_gives_a_tutor_account_a_role_from_the_command_line() {
    let setup = Setup::new();
    setup.create_admin("office");
    // No such person yet: a clear refusal, nothing written.
    let output = setup.run(&[
        "admin",
        "grant",
        "--school",
        "north",
        "--username",
        "nobody",
        "--role",
        "tutor",
    ]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("neither a member of staff nor an account"),
        "{stderr}"
    );
    let output = setup.run(&[
        "admin",
        "grant",
        "--school",
        "north",
        "--username",
        "office",
        "--role",
        "boss",
    ]);
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("is not admin, tutor, read-only or none")
    );
    // An existing admin made read-only.
    let stdout = setup.ok(&[
        "admin",
        "grant",
        "--school",
        "north",
        "--username",
        "office",
        "--role",
        "read-only",
    ]);
    assert!(
        stdout.contains("office of school north is now read-only"),
        "{stdout}"
    );
    // A tutor signs in with their own account, so an admin with a console password is none.
    let output = setup.run(&[
        "admin",
        "grant",
        "--school",
        "north",
        "--username",
        "office",
        "--role",
        "tutor",
    ]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("signs in with a console password"));
}

#[tokio::test]
async fn a_renamed_tutor_keeps_their_role_under_the_new_name_only() {
    let app = TestApp::start().await;
    const SCHOOL_URN: &str = "urn:rollcall:params:scim:schemas:extension:school:2.0:User";
    const PASSWORD: &str = "a tutor's own password";
    let tess = app
        .create_user(json!({
            "schemas": [USER_URN, SCHOOL_URN],
            "userName": "tess.teacher",
            "name": { "givenName": "Tess", "familyName": "Teacher" },
            "password": PASSWORD,
            SCHOOL_URN: { "role": "tutor" },
        }))
        .await;
    let path = format!("/Users/{}", tess["id"].as_str().unwrap());
    grant(&app, "tess.teacher", "tutor").await;
    let mut before = Visitor::new(&app);
    let signed = before.sign_in("north", "tess.teacher", PASSWORD).await;
    assert_eq!(signed.location(), "/admin/groups", "{}", signed.body);

    // The directory renames her: the staff list, her log-in and her role follow the account.
    let rename = |name: &str| {
        json!({
            "schemas": [PATCH_URN],
            "Operations": [{ "op": "replace", "path": "userName", "value": name }],
        })
    };
    let renamed = app.patch(&path, &rename("tess.married")).await;
    assert_eq!(renamed.status, StatusCode::OK, "{}", renamed.body);
    let staff = app.state.provider.store.list_staff("north").await.unwrap();
    let names: Vec<&str> = staff.iter().map(|s| s.user_name.as_str()).collect();
    assert!(
        names.contains(&"tess.married") && !names.contains(&"tess.teacher"),
        "{names:?}"
    );
    let mut after = Visitor::new(&app);
    let old = after.sign_in("north", "tess.teacher", PASSWORD).await;
    assert_eq!(old.status, StatusCode::UNAUTHORIZED, "{}", old.body);
    let new = after.sign_in("north", "tess.married", PASSWORD).await;
    assert_eq!(new.location(), "/admin/groups", "{}", new.body);
    assert_eq!(after.get("/admin/groups").await.status, StatusCode::OK);
    // The old name is free for someone else; a session started under it is not theirs.
    app.create_user(json!({
        "schemas": [USER_URN, SCHOOL_URN],
        "userName": "tess.teacher",
        "name": { "givenName": "Tessa", "familyName": "Teacher" },
        SCHOOL_URN: { "role": "tutor" },
    }))
    .await;
    grant(&app, "tess.teacher", "read-only").await;
    assert_eq!(before.get("/admin/groups").await.location(), "/admin/login");

    // A name another member of staff goes by is taken: the rename is refused, nothing changes.
    let taken = app.patch(&path, &rename("office")).await;
    taken.assert_error(409, Some("uniqueness"));
    let user = app.send(Method::GET, &path, None).await;
    assert_eq!(user.body["userName"], "tess.married");
    let staff = app
        .state
        .provider
        .store
        .staff_named("north", "tess.married")
        .await
        .unwrap();
    assert_eq!(
        staff.map(|s| s.role),
        Some(rollcall::store::StaffRole::Tutor)
    );
    app.stop().await;
}
