//! The admin console and the log-in page over plain HTTP, as a browser without JavaScript uses
//! them: sessions, CSRF, one school's admin against another's, lock-out, user management, the
//! first log-in. (`browser_console.rs` drives the same pages in Chromium.)

use std::collections::HashMap;

use reqwest::StatusCode;
use reqwest::header::{COOKIE, HeaderMap, LOCATION, SET_COOKIE};
use serde_json::json;

use crate::harness::*;

/// The console password the tests give each school's admin `office`.
pub const ADMIN_PASSWORD: &str = "correct horse battery";

/// Gives `office` of `school` a console password.
pub async fn console_password(app: &TestApp, school: &str) {
    let provider = &app.state.provider;
    let hash = provider.hasher.hash(ADMIN_PASSWORD).await.unwrap();
    provider
        .store
        .set_admin_password(school, "office", &hash, provider.clock.now())
        .await
        .unwrap();
}

/// A browser without JavaScript: keeps cookies, does not follow redirects.
pub struct Visitor {
    root: String,
    http: reqwest::Client,
    cookies: HashMap<String, String>,
}

/// A page: status, headers, body.
pub struct Page {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Page {
    pub fn location(&self) -> &str {
        self.headers
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    /// The first form's CSRF token on the page.
    pub fn csrf(&self) -> String {
        self.field("csrf")
    }

    /// The body without its forms' CSRF token, for asserting what a page does not show: the
    /// token is random text that holds any short string (`7X`) now and then.
    pub fn shown(&self) -> String {
        if self.body.contains("name=\"csrf\" value=\"") {
            self.body.replace(&self.csrf(), "")
        } else {
            self.body.clone()
        }
    }

    /// The value of the first field `name` on the page.
    pub fn field(&self, name: &str) -> String {
        let marker = format!("name=\"{name}\" value=\"");
        let start = self
            .body
            .find(&marker)
            .unwrap_or_else(|| panic!("no field {name} on the page:\n{}", self.body))
            + marker.len();
        let end = self.body[start..].find('"').unwrap() + start;
        self.body[start..end].to_owned()
    }
}

impl Visitor {
    pub fn new(app: &TestApp) -> Visitor {
        Visitor::at(&app.root)
    }

    /// A visitor of the daemon at `root` (`http://127.0.0.1:PORT`).
    pub fn at(root: &str) -> Visitor {
        Visitor {
            root: root.to_owned(),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: HashMap::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn keep(&mut self, response: reqwest::Response) -> Page {
        for value in response.headers().get_all(SET_COOKIE) {
            let text = value.to_str().unwrap();
            let (pair, attributes) = text.split_once(';').unwrap_or((text, ""));
            let (name, value) = pair.split_once('=').unwrap();
            if value.is_empty() || attributes.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        Page {
            status: response.status(),
            headers: response.headers().clone(),
            body: response.text().await.unwrap(),
        }
    }

    pub async fn get(&mut self, path: &str) -> Page {
        let response = self
            .http
            .get(format!("{}{path}", self.root))
            .header(COOKIE, self.cookie_header())
            .send()
            .await
            .unwrap();
        self.keep(response).await
    }

    /// Posts a form (`csrf` included only if given among the fields).
    pub async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        let body: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        let response = self
            .http
            .post(format!("{}{path}", self.root))
            .header(COOKIE, self.cookie_header())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        self.keep(response).await
    }

    /// Signs in to the console.
    pub async fn sign_in(&mut self, school: &str, user: &str, password: &str) -> Page {
        let form = self.get("/admin/login").await;
        let csrf = form.csrf();
        self.post(
            "/admin/login",
            &[
                ("csrf", &csrf),
                ("school", school),
                ("username", user),
                ("password", password),
            ],
        )
        .await
    }

    pub async fn admin_of(app: &TestApp, school: &str) -> Visitor {
        console_password(app, school).await;
        let mut visitor = Visitor::new(app);
        let signed = visitor.sign_in(school, "office", ADMIN_PASSWORD).await;
        assert_eq!(signed.status, StatusCode::SEE_OTHER, "{}", signed.body);
        assert_eq!(signed.location(), "/admin/groups");
        visitor
    }

    /// A page's CSRF token, then a post with it.
    pub async fn submit(&mut self, page: &str, path: &str, fields: &[(&str, &str)]) -> Page {
        let csrf = self.get(page).await.csrf();
        let mut all = vec![("csrf", csrf.as_str())];
        all.extend_from_slice(fields);
        self.post(path, &all).await
    }
}

/// A tutor account made through the admin API; returns its username.
pub async fn tutor(app: &TestApp, first: &str, surname: &str) -> String {
    let tutor = json!({ "firstName": first, "surname": surname, "role": "tutor" });
    app.new_account(&tutor).await["userName"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Tess Teacher, a north tutor (with this email, if any) made staff with the tutor role, who
/// has not signed in yet: `(userName, first password)`.
pub async fn staff_tutor(app: &TestApp, email: Option<&str>) -> (String, String) {
    let mut body = json!({ "firstName": "Tess", "surname": "Teacher", "role": "tutor" });
    if let Some(email) = email {
        body["email"] = email.into();
    }
    let account = app.new_account(&body).await;
    let name = account["userName"].as_str().unwrap().to_owned();
    let first = account["password"].as_str().unwrap().to_owned();
    app.state
        .provider
        .grant(
            &rollcall::roster::Admin::cli("north"),
            &name,
            rollcall::store::StaffRole::Tutor,
        )
        .await
        .unwrap();
    (name, first)
}

/// Signs in on the log-in page with a first password and chooses `chosen` in its place, as a
/// person does with their slip.
pub async fn choose_password(
    app: &TestApp,
    school: &str,
    user_name: &str,
    first: &str,
    chosen: &str,
) {
    let mut person = Visitor::new(app);
    let login = format!("/login/{school}");
    let signed = person
        .submit(
            &login,
            &login,
            &[("username", user_name), ("password", first)],
        )
        .await;
    let change = format!("{login}/password");
    assert_eq!(signed.location(), change, "{}", signed.body);
    let saved = person
        .submit(
            &change,
            &change,
            &[("password", chosen), ("repeat", chosen)],
        )
        .await;
    assert_eq!(saved.status, StatusCode::OK, "{}", saved.body);
    assert!(
        saved.body.contains("Your password is saved"),
        "{}",
        saved.body
    );
}

/// The id in a `/admin/groups/{id}…` location.
fn group_id(location: &str) -> String {
    location
        .trim_start_matches("/admin/groups/")
        .split(['?', '/'])
        .next()
        .unwrap()
        .to_owned()
}

async fn group_with_students(app: &TestApp, admin: &mut Visitor, rows: &str) -> String {
    let created = admin
        .submit(
            "/admin/groups/new",
            "/admin/groups/new",
            &[("name", "12A/Ma1"), ("course", "MA-Y1-AS")],
        )
        .await;
    assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.body);
    let id = group_id(created.location());
    let page = format!("/admin/groups/{id}/students");
    let done = admin
        .submit(&page, &format!("{page}/create"), &[("text", rows)])
        .await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    let _ = app;
    id
}

#[tokio::test]
async fn admin_password_prints_a_console_password_once_and_replaces_the_last() {
    let setup = crate::cli::Setup::new();
    let missing = setup.run(&[
        "admin",
        "password",
        "--school",
        "north",
        "--username",
        "office",
    ]);
    assert!(!missing.status.success());
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("school `north` has no admin `office`")
    );
    setup.create_admin("office");
    let password = |setup: &crate::cli::Setup| {
        let stdout = setup.ok(&[
            "admin",
            "password",
            "--school",
            "north",
            "--username",
            "office",
        ]);
        assert!(stdout.contains("shown once"), "{stdout}");
        stdout.lines().last().unwrap().to_owned()
    };
    let first = password(&setup);
    let second = password(&setup);
    assert_eq!(first.len(), 16);
    assert_ne!(first, second);

    let daemon = setup.serve(&[]).await;
    let mut visitor = Visitor::at(&daemon.root);
    let old = visitor.sign_in("north", "office", &first).await;
    assert_eq!(
        old.status,
        StatusCode::UNAUTHORIZED,
        "the first password was replaced"
    );
    let signed = visitor.sign_in("north", "office", &second).await;
    assert_eq!(signed.location(), "/admin/groups", "{}", signed.body);
    assert_eq!(visitor.get("/admin/groups").await.status, StatusCode::OK);
    drop(daemon);
}

#[tokio::test]
async fn sessions_are_http_only_strict_secure_cookies_and_end_at_log_out() {
    let app = TestApp::start().await;
    console_password(&app, "north").await;
    let mut visitor = Visitor::new(&app);
    assert_eq!(
        visitor.get("/admin/groups").await.location(),
        "/admin/login"
    );
    let signed = visitor.sign_in("north", "office", ADMIN_PASSWORD).await;
    let cookie = signed
        .headers
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap())
        .find(|v| v.starts_with("rollcall_admin="))
        .unwrap();
    for attribute in ["HttpOnly", "SameSite=Strict", "Secure", "Path=/admin"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    let groups = visitor.get("/admin/groups").await;
    assert_eq!(groups.status, StatusCode::OK);
    assert_eq!(groups.headers["cache-control"], "no-store");
    let policy = groups.headers["content-security-policy"].to_str().unwrap();
    assert!(policy.contains("script-src 'self'") && !policy.contains("unsafe-inline"));
    assert!(groups.body.contains("North Academy"), "{}", groups.body);
    // Only the session token's hash is stored.
    let secret = visitor.cookies["rollcall_admin"].clone();
    assert!(!app.store_holds(&secret));

    let out = visitor.submit("/admin/groups", "/admin/logout", &[]).await;
    assert_eq!(out.location(), "/admin/login");
    // The old cookie is dead, not just forgotten by this browser.
    visitor.cookies.insert("rollcall_admin".into(), secret);
    assert_eq!(
        visitor.get("/admin/groups").await.location(),
        "/admin/login"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_tutors_first_password_opens_the_console_only_once_they_have_chosen_their_own() {
    let app = TestApp::start().await;
    let (name, first) = staff_tutor(&app, None).await;

    // The slip's password is right, but it opens nothing: the page says where to choose one.
    let mut visitor = Visitor::new(&app);
    let refused = visitor.sign_in("north", &name, &first).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    assert!(
        refused
            .body
            .contains("still the first password from your slip")
            && refused.body.contains("href=\"/login/north\""),
        "{}",
        refused.body
    );
    assert!(!visitor.cookies.contains_key("rollcall_admin"));
    assert_eq!(
        visitor.get("/admin/groups").await.location(),
        "/admin/login"
    );

    // Once they have chosen their own there, the slip's password is wrong and theirs works.
    choose_password(&app, "north", &name, &first, "a password of my own").await;
    let stale = visitor.sign_in("north", &name, &first).await;
    assert_eq!(stale.status, StatusCode::UNAUTHORIZED, "{}", stale.body);
    let signed = visitor
        .sign_in("north", &name, "a password of my own")
        .await;
    assert_eq!(signed.status, StatusCode::SEE_OTHER, "{}", signed.body);
    assert_eq!(signed.location(), "/admin/groups");
    assert_eq!(visitor.get("/admin/groups").await.status, StatusCode::OK);
    app.stop().await;
}

#[tokio::test]
async fn a_wrong_password_is_refused_and_repeated_failures_lock_the_admin_out() {
    let app = TestApp::start().await;
    console_password(&app, "north").await;
    let mut visitor = Visitor::new(&app);
    let wrong = visitor.sign_in("north", "office", "not it").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(
        wrong
            .body
            .contains("The school, username or password is wrong.")
    );
    assert!(
        !visitor.cookies.contains_key("rollcall_admin"),
        "no session"
    );
    // The same answer for an admin that does not exist, or of another school.
    let unknown = visitor.sign_in("north", "nobody", ADMIN_PASSWORD).await;
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
    let elsewhere = visitor.sign_in("south", "office", ADMIN_PASSWORD).await;
    assert_eq!(
        elsewhere.status,
        StatusCode::UNAUTHORIZED,
        "south has no console password"
    );
    for _ in 0..4 {
        visitor.sign_in("north", "office", "still not it").await;
    }
    // Five failures: now even the right password waits.
    let locked = visitor.sign_in("north", "office", ADMIN_PASSWORD).await;
    assert_eq!(
        locked.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        locked.body
    );
    assert!(locked.body.contains("Too many failed attempts"));
    assert!(!visitor.cookies.contains_key("rollcall_admin"));
    app.stop().await;
}

#[tokio::test]
async fn a_form_without_its_csrf_token_is_refused_and_changes_nothing() {
    let app = TestApp::start().await;
    let mut admin = Visitor::admin_of(&app, "north").await;
    for fields in [
        vec![("name", "7X")],
        vec![("name", "7X"), ("csrf", "forged")],
    ] {
        let refused = admin.post("/admin/groups/new", &fields).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
        assert!(refused.body.contains("This form was refused"));
    }
    // A post from another site, even with the right token, is refused too.
    let csrf = admin.get("/admin/groups/new").await.csrf();
    let foreign = admin
        .http
        .post(format!("{}/admin/groups/new", app.root))
        .header(COOKIE, admin.cookie_header())
        .header("origin", "https://evil.example")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf={csrf}&name=7X"))
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status(), StatusCode::FORBIDDEN);
    // The log-in form needs its token as well.
    let mut stranger = Visitor::new(&app);
    let login = stranger
        .post(
            "/admin/login",
            &[
                ("school", "north"),
                ("username", "office"),
                ("password", ADMIN_PASSWORD),
            ],
        )
        .await;
    assert_eq!(login.status, StatusCode::FORBIDDEN);
    let groups = admin.get("/admin/groups").await;
    assert!(
        !groups.shown().contains("7X"),
        "a refused form created a group"
    );
    assert!(groups.body.contains("No teaching groups yet"));
    app.stop().await;
}

#[tokio::test]
async fn an_admin_of_another_school_sees_nothing_of_this_one() {
    let app = TestApp::start().await;
    let mut north = Visitor::admin_of(&app, "north").await;
    let group = group_with_students(&app, &mut north, "First name\tSurname\nAda\tLovelace\n").await;
    let found = north.get("/admin/users?q=lovelace").await;
    let start = found.body.find("/admin/users/").unwrap() + 13;
    let user = found.body[start..start + 36].to_owned();

    let mut south = Visitor::admin_of(&app, "south").await;
    let groups = south.get("/admin/groups").await;
    assert!(groups.body.contains("South School"));
    assert!(!groups.shown().contains("12A"), "{}", groups.body);
    for path in [
        format!("/admin/groups/{group}"),
        format!("/admin/groups/{group}/students"),
        format!("/admin/groups/{group}/edit"),
        format!("/admin/users/{user}"),
    ] {
        let page = south.get(&path).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{path}: {}", page.body);
        let shown = page.shown();
        assert!(
            !shown.contains("Lovelace") && !shown.contains("12A"),
            "{shown}"
        );
    }
    let search = south.get("/admin/users?q=lovelace").await;
    assert!(search.body.contains("Nobody matches"), "{}", search.body);
    // Acting on north's records from south's session fails and changes nothing.
    let csrf = south.get("/admin/groups").await.csrf();
    for path in [
        format!("/admin/users/{user}/active"),
        format!("/admin/users/{user}/password"),
        format!("/admin/groups/{group}/students/create"),
    ] {
        let page = south
            .post(
                &path,
                &[
                    ("csrf", &csrf),
                    ("active", "false"),
                    ("text", "First name\tSurname\nEve\tX\n"),
                ],
            )
            .await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{path}: {}", page.body);
    }
    let slips = south.get("/admin/slips").await;
    assert!(slips.body.contains("No slips are waiting"));
    let groups = south.get("/admin/groups").await;
    assert!(
        groups.body.contains("No teaching groups yet"),
        "{}",
        groups.body
    );
    let north_view = north.get(&format!("/admin/users/{user}")).await;
    // Still active, and no password change in its history.
    assert!(
        north_view
            .body
            .contains("<span class=\"tag ok\">active</span>")
    );
    assert!(
        !north_view.body.contains("<td>password</td>"),
        "{}",
        north_view.body
    );
    app.stop().await;
}

#[tokio::test]
async fn user_management_finds_disables_resets_and_moves_with_history() {
    let app = TestApp::start().await;
    let mut admin = Visitor::admin_of(&app, "north").await;
    let first = group_with_students(
        &app,
        &mut admin,
        "First name\tSurname\tEmail\nAda\tLovelace\tada@north.example\nAlan\tTuring\t\n",
    )
    .await;
    let second = admin
        .submit(
            "/admin/groups/new",
            "/admin/groups/new",
            &[("name", "12B/Ma1")],
        )
        .await;
    let second = group_id(second.location());
    // Their slips wait; collect them so that a reset's new slip is the only one.
    let slips = admin
        .submit("/admin/slips", "/admin/slips", &[("format", "csv")])
        .await;
    assert_eq!(slips.headers["content-type"], "text/csv; charset=utf-8");
    assert_eq!(slips.body.lines().count(), 3, "{}", slips.body);
    let password = slips
        .body
        .lines()
        .find(|l| l.contains("lovelacea"))
        .unwrap()
        .split(',')
        .nth(5)
        .unwrap()
        .to_owned();

    let found = admin.get("/admin/users?q=12a").await;
    assert!(found.body.contains("lovelacea") && found.body.contains("turinga"));
    let start = found.body.find("/admin/users/").unwrap() + 13;
    let ada = found.body[start..start + 36].to_owned();
    let page = format!("/admin/users/{ada}");
    let view = admin.get(&page).await;
    assert!(view.body.contains("ada@north.example"));
    let turing = admin.get("/admin/users?q=turing").await;
    let start = turing.body.find("/admin/users/").unwrap();
    let turing = admin.get(&turing.body[start..start + 49]).await;
    assert!(
        turing
            .body
            .contains("none: cannot reset their own password")
    );

    // Disabled: the log-in API refuses the right password; enabled again, it works.
    let disabled = admin
        .submit(&page, &format!("{page}/active"), &[("active", "false")])
        .await;
    assert_eq!(disabled.location(), format!("{page}?notice=disabled"));
    assert_eq!(app.login("north", "lovelacea", &password).await.status, 401);
    admin
        .submit(&page, &format!("{page}/active"), &[("active", "true")])
        .await;
    assert_eq!(app.login("north", "lovelacea", &password).await.status, 200);

    // A reset: the old password stops working and one new slip waits.
    let reset = admin.submit(&page, &format!("{page}/password"), &[]).await;
    assert_eq!(reset.location(), format!("{page}?notice=password-reset"));
    assert_eq!(app.login("north", "lovelacea", &password).await.status, 401);
    let slips = admin
        .submit("/admin/slips", "/admin/slips", &[("format", "csv")])
        .await;
    assert_eq!(slips.body.lines().count(), 2, "{}", slips.body);
    let new_password = slips
        .body
        .lines()
        .nth(1)
        .unwrap()
        .split(',')
        .nth(5)
        .unwrap()
        .to_owned();
    let login = app.login("north", "lovelacea", &new_password).await;
    assert_eq!(login.body["status"], "password_change_required");

    // Moved: out of the first group, into the second, in one change.
    let moved = admin
        .submit(
            &page,
            &format!("{page}/move"),
            &[("from", &first), ("to", &second)],
        )
        .await;
    assert_eq!(moved.location(), format!("{page}?notice=moved"));
    let first_page = admin.get(&format!("/admin/groups/{first}")).await;
    assert!(!first_page.body.contains("lovelacea") && first_page.body.contains("turinga"));
    assert!(
        admin
            .get(&format!("/admin/groups/{second}"))
            .await
            .body
            .contains("lovelacea")
    );

    // The history names each change and who made it, newest first.
    let view = admin.get(&page).await;
    let history = &view.body[view.body.find("<h2>History</h2>").unwrap()..];
    let actions: Vec<&str> = ["password", "replace", "replace", "create"]
        .into_iter()
        .filter(|a| history.contains(&format!("<td>{a}</td>")))
        .collect();
    assert_eq!(actions.len(), 4, "{history}");
    assert!(history.contains("admin:office"));
    assert!(history.find("<td>password</td>") < history.find("<td>create</td>"));
    app.stop().await;
}

#[tokio::test]
async fn a_student_signs_in_with_the_slip_and_must_choose_a_password_first() {
    let app = TestApp::start().await;
    let mut admin = Visitor::admin_of(&app, "north").await;
    group_with_students(&app, &mut admin, "First name\tSurname\nAda\tLovelace\n").await;
    let slips = admin
        .submit("/admin/slips", "/admin/slips", &[("format", "csv")])
        .await;
    let password = slips
        .body
        .lines()
        .nth(1)
        .unwrap()
        .split(',')
        .nth(5)
        .unwrap()
        .to_owned();

    let mut student = Visitor::new(&app);
    let wrong = student
        .submit(
            "/login/north",
            "/login/north",
            &[("username", "lovelacea"), ("password", "nope")],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.body.contains("The username or password is wrong."));
    // Without a first log-in, the password page sends back to the log-in form.
    assert_eq!(
        student.get("/login/north/password").await.location(),
        "/login/north"
    );

    let first = student
        .submit(
            "/login/north",
            "/login/north",
            &[("username", "lovelacea"), ("password", &password)],
        )
        .await;
    assert_eq!(first.location(), "/login/north/password", "{}", first.body);
    let form = student.get("/login/north/password").await;
    assert!(form.body.contains("Choose your own password"));
    for (new, repeat, message) in [
        ("short", "short", "at least 8 characters"),
        (
            "lovelacea-2026",
            "lovelacea-2026",
            "do not include your username",
        ),
        (
            password.as_str(),
            password.as_str(),
            "different from the one on the slip",
        ),
        ("a fine new one", "a different one", "not the same"),
    ] {
        let refused = student
            .submit(
                "/login/north/password",
                "/login/north/password",
                &[("password", new), ("repeat", repeat)],
            )
            .await;
        assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            refused.body.contains(message),
            "{message}: {}",
            refused.body
        );
    }
    let chosen = student
        .submit(
            "/login/north/password",
            "/login/north/password",
            &[("password", "a fine new one"), ("repeat", "a fine new one")],
        )
        .await;
    assert_eq!(chosen.status, StatusCode::OK, "{}", chosen.body);
    assert!(chosen.body.contains("Your password is saved"));
    assert!(chosen.body.contains("learn.north.example"));
    // The slip's password is gone; the chosen one signs in without a detour.
    assert_eq!(app.login("north", "lovelacea", &password).await.status, 401);
    let again = student
        .submit(
            "/login/north",
            "/login/north",
            &[("username", "lovelacea"), ("password", "a fine new one")],
        )
        .await;
    assert_eq!(again.status, StatusCode::OK);
    assert!(again.body.contains("You are signed in"));
    assert_eq!(
        student.get("/login/nowhere").await.status,
        StatusCode::NOT_FOUND
    );
    app.stop().await;
}

#[tokio::test]
async fn a_group_is_edited_and_a_student_added_one_at_a_time_with_errors_by_field() {
    let app = TestApp::start().await;
    let tess = tutor(&app, "Tess", "Tutor").await;
    let mut admin = Visitor::admin_of(&app, "north").await;
    let created = admin
        .submit(
            "/admin/groups/new",
            "/admin/groups/new",
            &[
                ("name", "12A/Ma1"),
                ("course", "MA-Y1-AS"),
                ("tutor", &tess),
            ],
        )
        .await;
    let id = group_id(created.location());
    let page = format!("/admin/groups/{id}");

    // One student: each mistake sits next to its field, and nothing is created.
    let students = format!("{page}/students");
    let refused = admin
        .submit(
            &students,
            &format!("{students}/one"),
            &[("first_name", "Ada"), ("surname", ""), ("email", "ada@")],
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        refused.body.contains("id=\"surname-error\">Is empty</p>"),
        "{}",
        refused.body
    );
    assert!(
        refused
            .body
            .contains("id=\"email-error\">`ada@` is not an email address</p>")
    );
    assert!(
        refused.body.contains("value=\"Ada\""),
        "the form keeps what was typed"
    );
    let added = admin
        .submit(
            &students,
            &format!("{students}/one"),
            &[
                ("first_name", "Ada"),
                ("surname", "Lovelace"),
                ("email", "ada@north.example"),
            ],
        )
        .await;
    assert_eq!(added.location(), format!("{page}?notice=student-created"));
    let group = admin.get(&page).await;
    assert!(group.body.contains("lovelacea"));
    assert!(
        group.body.contains("1</strong> credential slip waiting"),
        "{}",
        group.body
    );

    // Edited: renamed, Physics instead of Mathematics (its modules go with it), no tutor; the
    // student stays.
    let form = admin.get(&format!("{page}/edit")).await;
    assert!(
        form.body.contains("value=\"MA-Y1-AS\" checked"),
        "{}",
        form.body
    );
    let version = form.field("version");
    let csrf = form.csrf();
    let edit = format!("{page}/edit");
    let saved = admin
        .post(
            &edit,
            &[
                ("csrf", &csrf),
                ("version", &version),
                ("name", "12A/Ph1"),
                ("course", "PH-Y1"),
            ],
        )
        .await;
    assert_eq!(
        saved.location(),
        format!("{page}?notice=group-saved"),
        "{}",
        saved.body
    );
    let group = admin.get(&page).await;
    assert!(group.body.contains("12A&#x2f;Ph1") && group.body.contains("PH-Y1"));
    assert!(!group.body.contains("MA-Y1-STAT") && !group.body.contains("Tess Tutor"));
    assert!(group.body.contains("lovelacea"));
    // The same form again (its version is stale now) does not overwrite the change.
    let stale = admin
        .post(
            &edit,
            &[("csrf", &csrf), ("version", &version), ("name", "12A/Ma9")],
        )
        .await;
    assert_eq!(stale.status, StatusCode::CONFLICT, "{}", stale.body);
    assert!(
        stale
            .body
            .contains("changed by someone else since this form was opened")
    );
    assert!(admin.get(&page).await.body.contains("12A&#x2f;Ph1"));
    // A name another group has is refused next to the name field.
    admin
        .submit(
            "/admin/groups/new",
            "/admin/groups/new",
            &[("name", "12B/Ma1")],
        )
        .await;
    let form = admin.get(&format!("{page}/edit")).await;
    let version = form.field("version");
    let clash = admin
        .post(
            &edit,
            &[
                ("csrf", &form.csrf()),
                ("version", &version),
                ("name", "12B/Ma1"),
            ],
        )
        .await;
    assert_eq!(clash.status, StatusCode::CONFLICT);
    assert!(
        clash
            .body
            .contains("id=\"name-error\">There is already a teaching group called")
    );
    app.stop().await;
}

#[tokio::test]
async fn an_admin_creates_a_tutor_who_can_then_be_given_a_group() {
    let app = TestApp::start().await;
    let mut admin = Visitor::admin_of(&app, "north").await;
    let refused = admin
        .submit(
            "/admin/users",
            "/admin/users/new",
            &[("first_name", "Tess"), ("surname", "")],
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        refused.body.contains("id=\"surname-error\">Is empty</p>"),
        "{}",
        refused.body
    );
    assert!(
        admin
            .get("/admin/groups/new")
            .await
            .body
            .contains("No tutor accounts yet")
    );

    let created = admin
        .submit(
            "/admin/users",
            "/admin/users/new",
            &[
                ("first_name", "Tess"),
                ("surname", "Tutor"),
                ("email", "tess@north.example"),
            ],
        )
        .await;
    assert!(
        created.location().ends_with("?notice=tutor-created"),
        "{}",
        created.body
    );
    let page = admin.get(created.location()).await;
    assert!(page.body.contains("<dd>tutor</dd>") && page.body.contains("tutort"));
    let form = admin.get("/admin/groups/new").await;
    assert!(form.body.contains("value=\"tutort\""), "{}", form.body);
    let slips = admin
        .submit("/admin/slips", "/admin/slips", &[("format", "csv")])
        .await;
    assert!(
        slips.body.lines().nth(1).unwrap().contains("tutort"),
        "{}",
        slips.body
    );
    app.stop().await;
}
