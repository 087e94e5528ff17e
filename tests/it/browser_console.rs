//! The admin console end to end in a real headless Chromium: the seed workflow from an admin's
//! log-in to a student's first log-in, and what must be refused. Screenshots of the main pages
//! go to `target/screenshots/`; every page is checked for browser console errors.

use crate::browser::Browser;
use crate::console::{ADMIN_PASSWORD, console_password, tutor};
use crate::harness::*;

/// 30 rows as a spreadsheet copies them: tab-separated with a heading row and CRLF line ends,
/// two students named J. Smith among them.
fn class_list() -> String {
    let mut rows = vec!["First name\tSurname\tEmail\tYear group".to_owned()];
    rows.push("John\tSmith\tjohn.smith@north.example\t12".into());
    let names = [
        ("Amara", "Okafor"),
        ("Ben", "Hughes"),
        ("Chloé", "Dubois"),
        ("Dev", "Patel"),
        ("Ella", "O'Neill"),
        ("Finn", "Murphy"),
        ("Grace", "Li"),
        ("Hamza", "Khan"),
        ("Isla", "Brown"),
        ("Jack", "Wilson"),
        ("Katie", "Evans"),
        ("Leo", "Thomas"),
        ("Maya", "Roberts"),
        ("Noah", "Walker"),
        ("Olivia", "Wright"),
        ("Priya", "Shah"),
        ("Quinn", "Baker"),
        ("Rosa", "García"),
        ("Sam", "Hall"),
        ("Tara", "Green"),
        ("Umar", "Ali"),
        ("Violet", "King"),
        ("Will", "Scott"),
        ("Xander", "Young"),
        ("Yasmin", "Hill"),
        ("Zoe", "Clarke"),
        ("Aled", "Jones-Price"),
    ];
    for (first, surname) in names {
        let email = format!(
            "{}.{}@north.example",
            first.to_lowercase(),
            surname.to_lowercase()
        )
        .replace(['\'', 'é', 'í'], "");
        rows.push(format!("{first}\t{surname}\t{email}\t12"));
    }
    rows.push("Jane\tSmith\tjane.smith@north.example\t12".into());
    rows.push("Oscar\tLewis\t\t12".into());
    rows.join("\r\n")
}

/// Checks the page for console errors and form fields without a label, and keeps a screenshot
/// of it.
async fn look(browser: &Browser, name: &str) {
    browser.screenshot(name).await;
    let errors = browser.console_errors().await;
    assert!(errors.is_empty(), "console errors on {name}: {errors:?}");
    assert_labelled(browser, name).await;
}

/// Every visible form field has a label.
async fn assert_labelled(browser: &Browser, name: &str) {
    let unlabelled = browser
        .execute(
            "return [...document.querySelectorAll('input:not([type=hidden]):not([hidden]), select, textarea')]
                .filter((field) => field.labels.length === 0).map((field) => field.name)",
        )
        .await;
    assert_eq!(
        unlabelled,
        serde_json::json!([]),
        "unlabelled fields on {name}"
    );
}

/// At a tablet's width the page still fits: nothing runs off to the side.
async fn assert_fits_a_tablet(browser: &Browser, name: &str) {
    browser.resize(768, 1024).await;
    let overflow = browser
        .execute("return document.documentElement.scrollWidth - window.innerWidth")
        .await;
    browser.screenshot(&format!("{name}-tablet")).await;
    browser.resize(1280, 1000).await;
    assert!(
        overflow.as_i64().is_some_and(|px| px <= 0),
        "{name} is {overflow} px wider than a tablet"
    );
}

/// [`look`] for a page answered with an error status: Chromium logs the status of the page
/// itself as a console error, and that line must be the only one.
async fn look_refused(browser: &Browser, name: &str, status: u16) {
    browser.screenshot(name).await;
    let errors = browser.console_errors().await;
    let expected = format!("the server responded with a status of {status}");
    assert!(
        errors.len() == 1 && errors[0].contains(&expected),
        "console errors on {name}: {errors:?}"
    );
}

/// Signs in to the console as the school's admin `office`.
async fn sign_in(browser: &Browser, app: &TestApp, school: &str, password: &str) {
    sign_in_as(browser, app, school, "office", password).await;
}

async fn sign_in_as(browser: &Browser, app: &TestApp, school: &str, user: &str, password: &str) {
    browser.goto(&format!("{}/admin/login", app.root)).await;
    browser
        .click(&format!("#school option[value='{school}']"))
        .await;
    browser.fill("#username", user).await;
    browser.fill("#password", password).await;
    browser.submit("form button[type=submit]").await;
}

#[tokio::test]
async fn an_admin_creates_a_class_and_prints_its_slips_and_a_student_signs_in() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let app = TestApp::start().await;
    console_password(&app, "north").await;
    let tutor = tutor(&app, "Tess", "Tutor").await;

    // Log in.
    browser.goto(&format!("{}/admin/login", app.root)).await;
    look(&browser, "login").await;
    sign_in(&browser, &app, "north", ADMIN_PASSWORD).await;
    assert!(browser.current_url().await.ends_with("/admin/groups"));
    assert_eq!(browser.text("h1").await, "Teaching groups");

    // A teaching group with a course (its modules come with it) and a tutor.
    browser.submit("a[href='/admin/groups/new']").await;
    browser.fill("#name", "12A/Ma1").await;
    browser.click("input[name=course][value='MA-Y1-AS']").await;
    let implies = browser
        .text(".choices li:has(input[value='MA-Y1-AS']) .implies")
        .await;
    assert_eq!(implies, "with Statistics Year 1 and Mechanics Year 1");
    browser
        .click(&format!("input[name=tutor][value='{tutor}']"))
        .await;
    look(&browser, "group-form").await;
    assert_fits_a_tablet(&browser, "group-form").await;
    browser.submit("form.stacked button[type=submit]").await;
    assert_eq!(browser.text("h1").await, "12A/Ma1");
    let courses = browser.texts("ul.courses li").await;
    assert_eq!(courses.len(), 3, "{courses:?}");
    assert!(courses[0].starts_with("Mathematics Year 1 (AS)"));
    for module in ["Statistics Year 1", "Mechanics Year 1"] {
        assert!(
            courses
                .iter()
                .any(|c| c.starts_with(module) && c.contains("added automatically")),
            "{module}: {courses:?}"
        );
    }
    assert!(browser.text(".columns").await.contains("Tess Tutor"));
    let group_url = browser
        .current_url()
        .await
        .replace("?notice=group-created", "");

    // Paste 30 rows; the preview shows each row's username, the two J. Smiths apart.
    browser.submit("a.button.primary").await;
    assert!(
        browser
            .text("h1")
            .await
            .starts_with("Add students to 12A/Ma1")
    );
    browser.fill("#text", &class_list()).await;
    look(&browser, "paste").await;
    browser.submit("form[action$='/preview'] button").await;
    assert!(
        browser
            .text("#summary")
            .await
            .starts_with("30 to create, 0 already there, 0 with errors")
    );
    let twins = browser.texts(".side-by-side li").await;
    assert_eq!(
        twins,
        ["Row 2: John Smith → smithj", "Row 30: Jane Smith → smithj2"],
        "the twins, side by side"
    );
    let usernames = browser.texts("table.preview code.username").await;
    assert_eq!(usernames.len(), 30);
    let distinct: std::collections::HashSet<&String> = usernames.iter().collect();
    assert_eq!(distinct.len(), 30, "{usernames:?}");
    assert!(
        browser
            .text("#row-31")
            .await
            .contains("no email: cannot reset their own password")
    );
    look(&browser, "preview").await;
    assert_fits_a_tablet(&browser, "preview").await;
    // Nothing is written by a preview.
    assert!(app.login("north", "smithj", "x").await.status == 401);
    browser.submit("form.confirm button[type=submit]").await;
    assert_eq!(browser.text("h1").await, "30 students created in 12A/Ma1");
    look(&browser, "created").await;

    // The slips: 30, each shown once.
    browser.submit("form.callout button[value=print]").await;
    let slips = browser.texts("article.slip").await;
    assert_eq!(slips.len(), 30);
    look(&browser, "slips").await;
    let smith = browser
        .texts("article.slip")
        .await
        .into_iter()
        .find(|slip| slip.contains("smithj2"))
        .expect("Jane Smith's slip");
    assert!(
        smith.contains("Jane Smith") && smith.contains("12A/Ma1"),
        "{smith}"
    );
    let password = slip_password(&smith);
    browser.goto(&group_url).await;
    assert!(
        !browser.source().await.contains("waiting to be printed"),
        "slips are shown once"
    );
    assert_eq!(browser.texts("table tbody tr").await.len(), 30);
    look(&browser, "group").await;

    // Log out: the console is closed to this browser.
    browser.submit(".logout button").await;
    assert!(browser.current_url().await.ends_with("/admin/login"));
    browser.goto(&format!("{}/admin/groups", app.root)).await;
    assert!(browser.current_url().await.ends_with("/admin/login"));

    // Jane signs in with her slip, must choose a password first, then gets in with it.
    browser.goto(&format!("{}/login/north", app.root)).await;
    look(&browser, "student-login").await;
    browser.fill("#username", "smithj2").await;
    browser.fill("#password", &password).await;
    browser.submit("form button[type=submit]").await;
    assert!(
        browser
            .current_url()
            .await
            .ends_with("/login/north/password")
    );
    assert_eq!(browser.text("h1").await, "Choose your own password");
    browser.fill("#password", "short").await;
    browser.fill("#repeat", "short").await;
    browser.submit("form button[type=submit]").await;
    assert!(
        browser
            .text("#password-error")
            .await
            .contains("at least 8 characters")
    );
    look_refused(&browser, "student-password", 422).await;
    browser.fill("#password", "maths is fun 42").await;
    browser.fill("#repeat", "maths is fun 42").await;
    browser.submit("form button[type=submit]").await;
    assert_eq!(browser.text("h1").await, "Your password is saved");
    browser.goto(&format!("{}/login/north", app.root)).await;
    browser.fill("#username", "smithj2").await;
    browser.fill("#password", "maths is fun 42").await;
    browser.submit("form button[type=submit]").await;
    assert_eq!(browser.text("h1").await, "You are signed in");
    assert!(browser.text("main").await.contains("Signed in as smithj2"));
    look(&browser, "student-signed-in").await;

    browser.close().await;
    app.stop().await;
}

/// The password on a slip's text ("… Password\n<password>\n…").
fn slip_password(slip: &str) -> String {
    let mut lines = slip.lines();
    lines.find(|line| line.trim() == "Password");
    lines.next().expect("a password line").trim().to_owned()
}

#[tokio::test]
async fn the_browser_is_refused_a_wrong_password_a_forged_form_and_another_schools_pages() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let app = TestApp::start().await;
    console_password(&app, "north").await;
    console_password(&app, "south").await;

    // Keyboard: the form starts at the username, Tab moves on, and the focus is visible.
    browser.goto(&format!("{}/admin/login", app.root)).await;
    assert_eq!(browser.active_element().await, "username");
    browser.press_tab().await;
    assert_eq!(browser.active_element().await, "password");
    let outline = browser
        .execute("return getComputedStyle(document.activeElement).outlineStyle")
        .await;
    assert_eq!(outline, "solid", "a visible focus ring");
    browser.press_tab().await;
    assert_eq!(browser.active_element().await, "button");
    sign_in(&browser, &app, "north", "not the password").await;
    assert!(browser.current_url().await.ends_with("/admin/login"));
    assert_eq!(
        browser.text("#login-error").await,
        "The school, username or password is wrong."
    );
    assert_eq!(browser.text("#username").await, "");
    look_refused(&browser, "login-failed", 401).await;

    sign_in(&browser, &app, "north", ADMIN_PASSWORD).await;
    browser
        .goto(&format!("{}/admin/groups/new", app.root))
        .await;
    browser.fill("#name", "Forged").await;
    // A form that lost its CSRF token (as a forged cross-site form has none) is refused.
    browser
        .execute("document.querySelector('form.stacked input[name=csrf]').remove()")
        .await;
    browser.submit("form.stacked button[type=submit]").await;
    assert_eq!(browser.text("h1").await, "Not allowed");
    assert!(
        browser
            .text(".problem")
            .await
            .contains("This form was refused")
    );
    look_refused(&browser, "csrf-refused", 403).await;
    browser
        .goto(&format!("{}/admin/groups/new", app.root))
        .await;
    browser.fill("#name", "12A/Ma1").await;
    browser.submit("form.stacked button[type=submit]").await;
    let group_url = browser.current_url().await;
    browser.goto(&format!("{}/admin/groups", app.root)).await;
    let groups = browser.texts("table tbody th").await;
    assert_eq!(groups, ["12A/Ma1"], "the forged form created nothing");
    browser.submit(".logout button").await;

    // South's admin sees none of north's groups, even by address.
    sign_in(&browser, &app, "south", ADMIN_PASSWORD).await;
    assert!(
        browser
            .text("main")
            .await
            .contains("No teaching groups yet")
    );
    browser.goto(&group_url).await;
    assert_eq!(browser.text("h1").await, "Not found");
    assert!(!browser.text("body").await.contains("12A"));
    look_refused(&browser, "other-school", 404).await;

    browser.close().await;
    app.stop().await;
}

#[tokio::test]
async fn directory_sources_show_the_last_run_a_dry_run_and_approve_a_held_plan() {
    let directory = crate::slapd::school_ldif(200);
    let Some(slapd) = crate::slapd::Slapd::start(&directory.ldif) else {
        return;
    };
    let Some(browser) = Browser::start().await else {
        return;
    };
    let secrets = tempfile::tempdir().unwrap();
    let app = crate::sync::app_for(&slapd, &secrets, "passwords = false").await;
    console_password(&app, "north").await;
    crate::sync::sync(&app, rollcall::sync::Mode::Apply)
        .await
        .unwrap();
    // 30 of 206 leave: more than max_disable_percent (10), so the next run is held.
    for leaver in &directory.students[100..130] {
        slapd.delete(&leaver.dn);
    }
    let held = crate::sync::sync(&app, rollcall::sync::Mode::Full)
        .await
        .unwrap();
    assert_eq!(held.outcome, rollcall::sync::Outcome::Held);

    sign_in(&browser, &app, "north", ADMIN_PASSWORD).await;
    browser.goto(&format!("{}/admin/sources", app.root)).await;
    let source = browser.text(".source").await;
    assert!(source.contains("Outcome\nheld"), "{source}");
    assert!(source.contains("disable: 30"), "{source}");
    assert!(source.contains("A plan is held"), "{source}");
    look(&browser, "sources").await;

    // A dry run shows the plan and changes nothing.
    browser.submit("form[action$='/plan'] button").await;
    assert!(
        browser
            .text("h1")
            .await
            .starts_with("What a run of directory would change")
    );
    assert!(
        browser
            .text("main")
            .await
            .contains("Nothing was changed: this is a dry run.")
    );
    let disables = browser.texts("#plan-disable li").await;
    assert_eq!(disables.len(), 30, "{disables:?}");
    look(&browser, "source-plan").await;
    let active = crate::sync::accounts(&app)
        .await
        .values()
        .filter(|a| a.data["active"] == true)
        .count();
    assert_eq!(active, 206);

    // Approving applies exactly the held disables (the confirmation dialog answered yes).
    browser.goto(&format!("{}/admin/sources", app.root)).await;
    browser.execute("window.confirm = () => true").await;
    browser.submit("form[action$='/approve'] button").await;
    assert!(
        browser.text("h1").await.ends_with("was applied"),
        "{}",
        browser.text("h1").await
    );
    let active = crate::sync::accounts(&app)
        .await
        .values()
        .filter(|a| a.data["active"] == true)
        .count();
    assert_eq!(active, 176);
    browser.goto(&format!("{}/admin/sources", app.root)).await;
    assert!(!browser.text(".source").await.contains("A plan is held"));
    look(&browser, "sources-after").await;

    browser.close().await;
    app.stop().await;
}

#[tokio::test]
async fn an_admin_makes_a_tutor_staff_and_the_tutor_resets_a_students_password() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let app = TestApp::start().await;
    console_password(&app, "north").await;
    let account = |first: &str, surname: &str, role: &str, group: Option<&str>| {
        let mut body = serde_json::json!({ "firstName": first, "surname": surname, "role": role });
        if let Some(group) = group {
            body["group"] = group.into();
        }
        let app = &app;
        async move { app.new_account(&body).await }
    };
    let tess = account("Tess", "Teacher", "tutor", None).await;
    let tess_name = tess["userName"].as_str().unwrap().to_owned();
    let other = tutor(&app, "Olly", "Other").await;
    for (group, tutor) in [("7A", tess_name.as_str()), ("7B", other.as_str())] {
        let reply = app
            .api(
                reqwest::Method::POST,
                "/schools/north/groups",
                Some(ApiBody::Json(
                    &serde_json::json!({ "name": group, "tutors": [tutor] }),
                )),
            )
            .await;
        assert_eq!(reply.status, 201, "{}", reply.body);
    }
    let sam = account("Sam", "Student", "student", Some("7A")).await;
    let pat = account("Pat", "Pupil", "student", Some("7B")).await;

    // The admin makes Tess a tutor on the staff page.
    sign_in(&browser, &app, "north", ADMIN_PASSWORD).await;
    browser.submit("a[href='/admin/staff']").await;
    browser.fill("#user_name", &tess_name).await;
    browser.click("#role option[value=tutor]").await;
    look(&browser, "staff").await;
    browser.submit("form[action='/admin/staff'] button").await;
    assert!(
        browser
            .text(".notice")
            .await
            .starts_with("The role was saved")
    );
    let staff = browser.text("table").await;
    assert!(
        staff.contains(&tess_name) && staff.contains("their account"),
        "{staff}"
    );
    browser.submit(".logout button").await;

    // Tess's slip password opens no console: she is sent to choose her own first.
    let slip = tess["password"].as_str().unwrap();
    sign_in_as(&browser, &app, "north", &tess_name, slip).await;
    assert!(
        browser
            .text("#login-error")
            .await
            .contains("still the first password from your slip")
    );
    look_refused(&browser, "tutor-first-password", 403).await;
    browser.submit("#choose-password").await;
    assert!(browser.current_url().await.ends_with("/login/north"));
    browser.fill("#username", &tess_name).await;
    browser.fill("#password", slip).await;
    browser.submit("form button[type=submit]").await;
    assert_eq!(browser.text("h1").await, "Choose your own password");
    browser.fill("#password", "tess chose this one").await;
    browser.fill("#repeat", "tess chose this one").await;
    browser.submit("form button[type=submit]").await;
    assert_eq!(browser.text("h1").await, "Your password is saved");

    // With it she signs in and sees her group only, without an admin's actions.
    sign_in_as(&browser, &app, "north", &tess_name, "tess chose this one").await;
    assert!(browser.current_url().await.ends_with("/admin/groups"));
    let nav = browser.texts("nav a").await;
    assert_eq!(nav, ["My groups", "Accounts", "Slips"], "{nav:?}");
    assert_eq!(browser.text("h1").await, "My teaching groups");
    let groups = browser.texts("table tbody th").await;
    assert_eq!(groups, ["7A"]);
    assert!(!browser.source().await.contains("New teaching group"));
    look(&browser, "tutor-groups").await;
    browser.submit("table tbody th a").await;
    assert_eq!(browser.text("h1").await, "7A");
    assert!(!browser.source().await.contains("Edit group"));
    assert!(browser.text("main").await.contains("Sam Student"));
    browser
        .submit(&format!(
            "a[href='/admin/users/{}']",
            sam["id"].as_str().unwrap()
        ))
        .await;
    assert!(!browser.source().await.contains("Disable the account"));
    look(&browser, "tutor-student").await;

    // She resets Sam's password and prints the new slip, once.
    browser.submit("form[action$='/password'] button").await;
    assert!(browser.text(".notice").await.contains("slip is waiting"));
    browser.submit("a[href='/admin/slips']").await;
    assert_eq!(browser.texts("table tbody th").await, ["7A"]);
    look(&browser, "tutor-slips").await;
    browser.submit("form.inline button[value=print]").await;
    let slips = browser.texts("article.slip").await;
    assert_eq!(slips.len(), 1, "{slips:?}");
    let sam_name = sam["userName"].as_str().unwrap();
    assert!(slips[0].contains(sam_name), "{}", slips[0]);
    let password = slip_password(&slips[0]);
    let login = app.login("north", sam_name, &password).await;
    assert_eq!(login.status, 200, "{}", login.body);
    assert_eq!(
        login.body["status"], "password_change_required",
        "{}",
        login.body
    );

    // Another class's student is not hers to see.
    browser
        .goto(&format!(
            "{}/admin/users/{}",
            app.root,
            pat["id"].as_str().unwrap()
        ))
        .await;
    assert!(
        browser
            .text("main")
            .await
            .contains("only in their own teaching groups")
    );
    look_refused(&browser, "tutor-refused", 403).await;

    browser.close().await;
    app.stop().await;
}
