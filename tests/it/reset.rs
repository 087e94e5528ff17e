//! Forgotten passwords end to end, over plain HTTP as a browser without JavaScript uses the
//! log-in page, with the mail received by a real SMTP server (`smtp.rs`): the link in the
//! message sets a new password once; expired, reused, unknown and other schools' links are one
//! refusal that changes nothing; an unknown account or one without an email address gets the
//! same answer and no mail; requests are throttled; every step is audited; the store never holds
//! a link's token. (`browser_reset.rs` walks the same path in Chromium.)

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::console::{Page, Visitor, choose_password, staff_tutor};
use crate::harness::*;
use crate::smtp::SmtpSink;

/// Where the test configuration says the console is: links start with it, whatever address the
/// request came to.
pub const PUBLIC_URL: &str = "https://accounts.north.example";
/// What asking for a link answers, for every account.
pub const SENT: &str = "If that account has an email address, we have sent it a link that \
                        works for";
/// What a link that does not work answers.
pub const GONE: &str = "This link has expired or was already used; ask for a new one.";

/// A daemon sending mail through `sink`, with `extra` configuration appended.
pub async fn app_with_mail(sink: &SmtpSink, extra: &str) -> TestApp {
    let mail = sink.config(PUBLIC_URL);
    let extra = extra.to_owned();
    TestApp::start_with(move |text| format!("{text}{mail}{extra}")).await
}

/// Creates a north student through the admin API: `(id, userName, first password)`.
pub async fn student(
    app: &TestApp,
    first: &str,
    surname: &str,
    email: &str,
) -> (String, String, String) {
    let mut body = json!({ "firstName": first, "surname": surname });
    if !email.is_empty() {
        body["email"] = json!(email);
    }
    let account = app.new_account(&body).await;
    let field = |name: &str| account[name].as_str().unwrap().to_owned();
    (field("id"), field("userName"), field("password"))
}

/// Asks for a link on `school`'s log-in page, as a person would: the form, then the post.
async fn ask(visitor: &mut Visitor, school: &str, account: &str) -> Page {
    let form = visitor.get(&format!("/login/{school}/forgot")).await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.body);
    // No secret in this page's address: the console's policy.
    assert_eq!(form.headers.get("referrer-policy").unwrap(), "same-origin");
    let csrf = form.csrf();
    visitor
        .post(
            &format!("/login/{school}/forgot"),
            &[("csrf", &csrf), ("account", account)],
        )
        .await
}

/// The path of the link in a message (`/login/…/reset/TOKEN`), checked to start with the
/// configured public URL.
fn link_path(message: &crate::smtp::Received) -> String {
    let link = message.link(PUBLIC_URL);
    link.strip_prefix(PUBLIC_URL).unwrap().to_owned()
}

fn token_of(path: &str) -> String {
    path.rsplit('/').next().unwrap().to_owned()
}

/// Opens a link's page and sets a password there (`repeat` the second field).
async fn set_password(visitor: &mut Visitor, path: &str, password: &str, repeat: &str) -> Page {
    let page = visitor.get(path).await;
    if page.status != StatusCode::OK {
        return page;
    }
    let csrf = page.csrf();
    visitor
        .post(
            path,
            &[("csrf", &csrf), ("password", password), ("repeat", repeat)],
        )
        .await
}

/// The audit actions of an account, oldest first.
async fn actions(app: &TestApp, id: &str) -> Vec<String> {
    app.state
        .provider
        .store
        .audit_trail("north", id)
        .await
        .unwrap()
        .into_iter()
        .map(|(action, ..)| action)
        .collect()
}

/// Waits until the account's audit trail holds `action` (the mail is sent by a task of its own).
async fn wait_for_action(app: &TestApp, id: &str, action: &str) -> Vec<String> {
    for _ in 0..300 {
        let actions = actions(app, id).await;
        if actions.iter().any(|a| a == action) {
            return actions;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no {action} for {id}: {:?}", actions(app, id).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mailed_link_sets_a_new_password_once() {
    let Some(sink) = SmtpSink::start().await else {
        return;
    };
    let app = app_with_mail(&sink, "").await;
    let (id, user_name, first) = student(&app, "Ada", "Lovelace", "Ada.L@north.example").await;
    let mut visitor = Visitor::new(&app);

    let login = visitor.get("/login/north").await;
    assert!(
        login.body.contains("Forgotten your password?"),
        "{}",
        login.body
    );
    assert!(login.body.contains("href=\"/login/north/forgot\""));

    let answer = ask(&mut visitor, "north", &user_name).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert!(answer.body.contains(SENT), "{}", answer.body);
    assert!(answer.body.contains("30 minutes"), "{}", answer.body);
    assert!(
        answer
            .body
            .contains("If it has none, ask your tutor or a school admin to reset your password.")
    );

    let messages = sink.wait_for(1).await;
    let message = &messages[0];
    assert_eq!(message.to, ["Ada.L@north.example"]);
    assert_eq!(message.subject, "Reset your North Academy password");
    assert_eq!(message.content_type, "multipart/alternative");
    assert!(message.raw.contains("Message-ID: <"), "{}", message.raw);
    assert!(
        message
            .raw
            .contains("From: \"North Academy\" <noreply@north.example>"),
        "{}",
        message.raw
    );
    assert!(
        message.parts.iter().any(|p| p == "text/plain"),
        "{:?}",
        message.parts
    );
    assert!(
        message.parts.iter().any(|p| p == "text/html"),
        "{:?}",
        message.parts
    );
    assert!(message.text.contains(&user_name), "{}", message.text);
    assert!(message.text.contains("30 minutes"), "{}", message.text);
    let path = link_path(message);
    assert!(path.starts_with("/login/north/reset/"), "{path}");
    assert!(
        // minijinja escapes `/` in HTML as `&#x2f;`, which every HTML reader decodes.
        message
            .html
            .replace("&#x2f;", "/")
            .contains(&format!("href=\"{PUBLIC_URL}{path}\"")),
        "{}",
        message.html
    );
    let token = token_of(&path);
    assert_eq!(token.len(), 43, "{token}");
    // Only the token's digest is stored.
    assert!(!app.store_holds(&token), "the store holds the link's token");

    // The link's page: no Referer leaves it, and the form names the account.
    let page = visitor.get(&path).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert_eq!(page.headers.get("referrer-policy").unwrap(), "no-referrer");
    assert_eq!(page.headers.get("cache-control").unwrap(), "no-store");
    assert!(page.body.contains(&user_name));

    // Mistakes show the form again and use nothing up.
    let page = set_password(&mut visitor, &path, "a long new password", "another one").await;
    assert_eq!(
        page.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        page.body
    );
    assert!(page.body.contains("The two passwords are not the same."));
    let page = set_password(&mut visitor, &path, "short", "short").await;
    assert_eq!(
        page.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        page.body
    );
    assert!(
        page.body.contains("Choose another password"),
        "{}",
        page.body
    );
    // A post without the form's token changes nothing.
    let forged = visitor
        .post(
            &path,
            &[
                ("password", "a long new password"),
                ("repeat", "a long new password"),
            ],
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN, "{}", forged.body);

    let done = set_password(
        &mut visitor,
        &path,
        "a long new password",
        "a long new password",
    )
    .await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    assert!(
        done.body.contains("Your password is saved"),
        "{}",
        done.body
    );
    assert_eq!(done.headers.get("referrer-policy").unwrap(), "no-referrer");

    // The new password works (no change is asked for: the person chose it), the slip's not.
    let reply = app.login("north", &user_name, "a long new password").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["status"], "success", "{}", reply.body);
    let reply = app.login("north", &user_name, &first).await;
    assert_eq!(reply.body["status"], "failed", "{}", reply.body);

    // Once used, the link is refused, and posting through it changes nothing.
    let again = visitor.get(&path).await;
    assert_eq!(again.status, StatusCode::GONE, "{}", again.body);
    assert!(again.body.contains(GONE), "{}", again.body);
    assert_eq!(again.headers.get("referrer-policy").unwrap(), "no-referrer");
    let csrf = visitor.get("/login/north/forgot").await.csrf();
    let replay = visitor
        .post(
            &path,
            &[
                ("csrf", &csrf),
                ("password", "yet another password"),
                ("repeat", "yet another password"),
            ],
        )
        .await;
    assert_eq!(replay.status, StatusCode::GONE, "{}", replay.body);
    let reply = app.login("north", &user_name, "a long new password").await;
    assert_eq!(reply.body["status"], "success", "{}", reply.body);

    let actions = wait_for_action(&app, &id, "password_reset.refused").await;
    let steps: Vec<&str> = actions
        .iter()
        .map(String::as_str)
        .filter(|a| a.starts_with("password"))
        .collect();
    assert_eq!(
        steps,
        [
            "password_reset.requested",
            "password_reset.sent",
            "password",
            "password_reset.completed",
            "password_reset.refused",
            "password_reset.refused",
        ],
        "{actions:?}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_link_replaces_older_ones_and_links_belong_to_their_school() {
    let Some(sink) = SmtpSink::start().await else {
        return;
    };
    let app = app_with_mail(&sink, "").await;
    let (id, user_name, first) = student(&app, "Alan", "Turing", "alan@north.example").await;
    let mut visitor = Visitor::new(&app);

    // By username, then by email address in another case.
    ask(&mut visitor, "north", &user_name).await;
    let first_link = link_path(&sink.wait_for(1).await[0]);
    let answer = ask(&mut visitor, "north", "ALAN@North.Example").await;
    assert!(answer.body.contains(SENT));
    let messages = sink.wait_for(2).await;
    let second_link = link_path(&messages[1]);
    assert_ne!(first_link, second_link);

    // The older link stopped working when the newer one was made.
    let page = visitor.get(&first_link).await;
    assert_eq!(page.status, StatusCode::GONE, "{}", page.body);
    let gone = page.body;

    // Under another school's path, the link is refused with the same page, and stays unused.
    let token = token_of(&second_link);
    let page = visitor.get(&format!("/login/south/reset/{token}")).await;
    assert_eq!(page.status, StatusCode::GONE, "{}", page.body);
    assert!(page.body.contains(GONE));
    // The refusal has no form: the token of the log-in pages' form cookie.
    let csrf = visitor.get("/login/south/forgot").await.csrf();
    let page = visitor
        .post(
            &format!("/login/south/reset/{token}"),
            &[
                ("csrf", &csrf),
                ("password", "a long new password"),
                ("repeat", "a long new password"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::GONE, "{}", page.body);

    // Unknown and malformed tokens: the same refusal.
    for path in [
        format!("/login/north/reset/{}", "A".repeat(43)),
        "/login/north/reset/not-a-token".to_owned(),
        format!("/login/north/reset/{token}x"),
    ] {
        let page = visitor.get(&path).await;
        assert_eq!(page.status, StatusCode::GONE, "{path}: {}", page.body);
        assert_eq!(page.body, gone, "{path}");
    }

    // Nothing changed: the slip's password still works; the link still does.
    let reply = app.login("north", &user_name, &first).await;
    assert_eq!(
        reply.body["status"], "password_change_required",
        "{}",
        reply.body
    );
    let done = set_password(
        &mut visitor,
        &second_link,
        "a long new password",
        "a long new password",
    )
    .await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    let reply = app.login("north", &user_name, "a long new password").await;
    assert_eq!(reply.body["status"], "success", "{}", reply.body);

    let actions = actions(&app, &id).await;
    assert_eq!(
        actions
            .iter()
            .filter(|a| *a == "password_reset.requested")
            .count(),
        2,
        "{actions:?}"
    );
    assert!(!app.store_holds(&token_of(&first_link)));
    assert!(!app.store_holds(&token));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_link_is_refused_and_changes_nothing() {
    let Some(sink) = SmtpSink::start().await else {
        return;
    };
    let app = app_with_mail(&sink, "\n[password_reset]\nexpire_after_secs = 2\n").await;
    let (id, user_name, first) = student(&app, "Grace", "Hopper", "grace@north.example").await;
    let mut visitor = Visitor::new(&app);
    let answer = ask(&mut visitor, "north", &user_name).await;
    // Minutes are rounded up.
    assert!(
        answer.body.contains("works for 1 minute."),
        "{}",
        answer.body
    );
    let path = link_path(&sink.wait_for(1).await[0]);
    let page = visitor.get(&path).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let csrf = page.csrf();
    tokio::time::sleep(Duration::from_millis(2500)).await;

    let page = visitor
        .post(
            &path,
            &[
                ("csrf", &csrf),
                ("password", "a long new password"),
                ("repeat", "a long new password"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::GONE, "{}", page.body);
    assert!(page.body.contains(GONE));
    let page = visitor.get(&path).await;
    assert_eq!(page.status, StatusCode::GONE, "{}", page.body);

    let reply = app.login("north", &user_name, &first).await;
    assert_eq!(
        reply.body["status"], "password_change_required",
        "{}",
        reply.body
    );
    let actions = actions(&app, &id).await;
    assert!(
        !actions
            .iter()
            .any(|a| a == "password_reset.completed" || a == "password"),
        "{actions:?}"
    );
    assert!(
        actions.iter().any(|a| a == "password_reset.refused"),
        "{actions:?}"
    );

    // The janitor's purge erases expired links.
    let purged = app
        .state
        .provider
        .store
        .purge_expired_resets(app.state.provider.clock.now())
        .await
        .unwrap();
    assert_eq!(purged, 1);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_accounts_and_those_without_email_get_the_same_answer_and_no_mail() {
    let Some(sink) = SmtpSink::start().await else {
        return;
    };
    let app = app_with_mail(&sink, "").await;
    let (with_id, with_email, _) = student(&app, "Mary", "Somerville", "mary@north.example").await;
    let (without_id, without_email, _) = student(&app, "Emmy", "Noether", "").await;
    let mut visitor = Visitor::new(&app);

    /// The answer's text, without what differs from one form to the next.
    fn notice(page: &Page) -> String {
        let start = page.body.find("<h1>").unwrap();
        let end = page.body.find("</section>").unwrap();
        page.body[start..end].to_owned()
    }
    let known = ask(&mut visitor, "north", &with_email).await;
    let messages = sink.wait_for(1).await;
    assert_eq!(messages[0].to, ["mary@north.example"]);
    let mut answers = Vec::new();
    for account in [without_email.as_str(), "nobody", "nobody@north.example"] {
        let page = ask(&mut visitor, "north", account).await;
        assert_eq!(page.status, known.status, "{account}");
        assert_eq!(notice(&page), notice(&known), "{account}");
        answers.push(page);
    }
    // A school that does not exist is a plain 404.
    let page = visitor.get("/login/nowhere/forgot").await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);

    wait_for_action(&app, &without_id, "password_reset.no_email").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        sink.messages().len(),
        1,
        "mail was sent for an account without one"
    );
    let actions = actions(&app, &with_id).await;
    assert!(
        actions.iter().any(|a| a == "password_reset.sent"),
        "{actions:?}"
    );

    // A blank request is the asker's mistake: said so, nothing counted or sent.
    let form = visitor.get("/login/north/forgot").await;
    let page = visitor
        .post(
            "/login/north/forgot",
            &[("csrf", &form.csrf()), ("account", "  ")],
        )
        .await;
    assert_eq!(
        page.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        page.body
    );
    assert!(page.body.contains("Enter your username or email address."));
    // A forged request is refused before anything reads it.
    let page = visitor
        .post(
            "/login/north/forgot",
            &[("csrf", "forged"), ("account", &with_email)],
        )
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.body);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_throttled_per_account_and_per_address() {
    let Some(sink) = SmtpSink::start().await else {
        return;
    };
    let app = app_with_mail(
        &sink,
        "\n[password_reset]\naccount_requests = 2\naddress_requests = 4\n",
    )
    .await;
    let (_, user_name, _) = student(&app, "Rosalind", "Franklin", "rf@north.example").await;
    let mut visitor = Visitor::new(&app);
    for _ in 0..2 {
        let page = ask(&mut visitor, "north", &user_name).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    }
    // The account's name in another case is the same account.
    let page = ask(&mut visitor, "north", &user_name.to_uppercase()).await;
    assert_eq!(page.status, StatusCode::TOO_MANY_REQUESTS, "{}", page.body);
    assert!(
        page.body.contains("Too many requests. Try again in"),
        "{}",
        page.body
    );
    assert!(!page.body.contains(SENT));

    // Other names from the same address count too: 4 in all.
    let page = ask(&mut visitor, "north", "someone").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let page = ask(&mut visitor, "north", "someone-else").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let page = ask(&mut visitor, "north", "a-third").await;
    assert_eq!(page.status, StatusCode::TOO_MANY_REQUESTS, "{}", page.body);

    // Only the first two asked for a real account with an address: two messages.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sink.wait_for(2).await.len(), 2);
    app.stop().await;
}

#[tokio::test]
async fn without_mail_the_page_says_whom_to_ask() {
    let app = TestApp::start().await;
    let mut visitor = Visitor::new(&app);
    let login = visitor.get("/login/north").await;
    assert!(login.body.contains("Forgotten your password?"));
    let page = visitor.get("/login/north/forgot").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body
            .contains("Ask your tutor or a school admin to reset your password"),
        "{}",
        page.body
    );
    assert!(
        !page
            .body
            .contains("<form method=\"post\" action=\"/login/north/forgot\"")
    );
    let page = visitor
        .get(&format!("/login/north/reset/{}", "A".repeat(43)))
        .await;
    assert_eq!(page.status, StatusCode::GONE);
    app.stop().await;
}

#[tokio::test]
async fn the_console_flags_accounts_without_email() {
    let app = TestApp::start().await;
    crate::console::console_password(&app, "north").await;
    student(&app, "Nomail", "Person", "").await;
    student(&app, "Hasmail", "Person", "has@north.example").await;
    let mut visitor = Visitor::new(&app);
    visitor
        .sign_in("north", "office", crate::console::ADMIN_PASSWORD)
        .await;
    let page = visitor.get("/admin/users?q=person").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let rows: Vec<&str> = page.body.split("<tr>").skip(2).collect();
    let flagged = |name: &str| {
        rows.iter()
            .find(|row| row.contains(name))
            .unwrap_or_else(|| panic!("no row for {name}: {}", page.body))
            .contains("cannot reset their own password")
    };
    assert!(flagged("Nomail"));
    assert!(!flagged("Hasmail"));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tutor_resets_too_and_sessions_with_the_old_password_end() {
    let Some(sink) = SmtpSink::start().await else {
        return;
    };
    let app = app_with_mail(&sink, "").await;
    // Staff who sign in to the console with their own account.
    let (name, first) = staff_tutor(&app, Some("tess@north.example")).await;
    choose_password(&app, "north", &name, &first, "the password I chose").await;
    let mut console = Visitor::new(&app);
    let signed = console
        .sign_in("north", &name, "the password I chose")
        .await;
    assert_eq!(signed.status, StatusCode::SEE_OTHER, "{}", signed.body);
    assert_eq!(console.get("/admin/groups").await.status, StatusCode::OK);

    let mut visitor = Visitor::new(&app);
    ask(&mut visitor, "north", "tess@north.example").await;
    let path = link_path(&sink.wait_for(1).await[0]);
    let done = set_password(
        &mut visitor,
        &path,
        "a long new password",
        "a long new password",
    )
    .await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);

    // The console session signed in with the old password has ended; the new one works.
    let page = console.get("/admin/groups").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(page.location(), "/admin/login");
    let signed = console.sign_in("north", &name, "a long new password").await;
    assert_eq!(signed.status, StatusCode::SEE_OTHER, "{}", signed.body);
    assert_eq!(signed.location(), "/admin/groups");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_with_the_schools_own_ca_gets_the_mail_over_starttls_and_tls() {
    let dir = tempfile::tempdir().unwrap();
    let files = crate::slapd::write_certificates(dir.path());
    for security in ["starttls", "tls"] {
        let Some(sink) = SmtpSink::start_tls(security, &files.certificate, &files.key).await else {
            return;
        };
        // Trusting the school's CA: the link arrives, encrypted all the way.
        let ca = format!("ca_file = \"{}\"\n", files.ca.display());
        let app = TestApp::start_with({
            let mail = sink.config(PUBLIC_URL) + &ca;
            move |text| format!("{text}{mail}")
        })
        .await;
        student(&app, "Ada", "Lovelace", "ada@north.example").await;
        let mut visitor = Visitor::new(&app);
        let asked = ask(&mut visitor, "north", "ada@north.example").await;
        assert!(asked.body.contains(SENT), "{security}: {}", asked.body);
        let message = &sink.wait_for(1).await[0];
        assert_eq!(message.to, ["ada@north.example"], "{security}");
        assert!(link_path(message).starts_with("/login/north/reset/"));
        app.stop().await;

        // Trusting only another CA (or, without `ca_file`, only the system's): refused as a
        // certificate problem before anything is sent.
        for trust in [
            format!("ca_file = \"{}\"\n", files.other_ca.display()),
            String::new(),
        ] {
            let text = format!(
                "[[schools]]\nid = \"north\"\nname = \"North\"\n{}{trust}",
                sink.config(PUBLIC_URL)
            );
            let config = rollcall::config::Config::parse(&text, dir.path()).unwrap();
            let mailer = rollcall::mail::Mailer::new(config.mail.as_ref().unwrap()).unwrap();
            let refused = mailer.check_connection().await.unwrap_err().to_string();
            assert!(
                refused.to_lowercase().contains("certificate"),
                "{security} {trust:?}: {refused}"
            );
        }
        assert_eq!(sink.messages().len(), 1, "{security}");
    }
}
