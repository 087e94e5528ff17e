//! A forgotten password end to end in a real headless Chromium: from the log-in page's
//! "Forgotten your password?" to the mail (received by the SMTP sink), its link, a new
//! password, and signing in with it on the log-in page.

use crate::browser::Browser;
use crate::reset::{PUBLIC_URL, app_with_mail, student};
use crate::smtp::SmtpSink;

/// Checks the page for browser console errors and keeps a screenshot of it.
async fn look(browser: &Browser, name: &str) {
    browser.screenshot(name).await;
    let errors = browser.console_errors().await;
    assert!(errors.is_empty(), "console errors on {name}: {errors:?}");
}

#[tokio::test]
async fn a_person_resets_a_forgotten_password_in_the_browser() {
    let Some(sink) = SmtpSink::start().await else {
        return;
    };
    let Some(browser) = Browser::start().await else {
        return;
    };
    let app = app_with_mail(&sink, "").await;
    let (_, user_name, _) = student(&app, "Dorothy", "Vaughan", "dorothy@north.example").await;

    browser.goto(&format!("{}/login/north", app.root)).await;
    browser.submit("#forgot").await;
    assert!(browser.current_url().await.ends_with("/login/north/forgot"));
    look(&browser, "reset-ask").await;
    browser.fill("#account", &user_name).await;
    browser.submit("button[type=submit]").await;
    let sent = browser.text("#reset-sent").await;
    assert!(
        sent.starts_with("If that account has an email address, we have sent it a link"),
        "{sent}"
    );
    look(&browser, "reset-sent").await;

    let message = &sink.wait_for(1).await[0];
    assert_eq!(message.to, ["dorothy@north.example"]);
    let link = message.link(PUBLIC_URL);
    let path = link.strip_prefix(PUBLIC_URL).unwrap();
    // The configured public address is not this test's server: follow the path here.
    browser.goto(&format!("{}{path}", app.root)).await;
    assert!(browser.text("h1").await.contains("Choose a new password"));
    look(&browser, "reset-choose").await;
    browser.fill("#password", "mangoes at midnight").await;
    browser.fill("#repeat", "mangoes at midnight").await;
    browser.submit("button[type=submit]").await;
    assert!(browser.text("#reset-done").await.contains(&user_name));
    look(&browser, "reset-done").await;

    browser.submit("a.button.primary").await;
    assert!(browser.current_url().await.ends_with("/login/north"));
    browser.fill("#username", &user_name).await;
    browser.fill("#password", "mangoes at midnight").await;
    browser.submit("button[type=submit]").await;
    let status = browser.text("[role=status]").await;
    assert!(
        status.contains(&format!("Signed in as {user_name}")),
        "{status}"
    );

    // The link worked once.
    browser.goto(&format!("{}{path}", app.root)).await;
    assert!(
        browser
            .text("#reset-gone")
            .await
            .contains("This link has expired or was already used")
    );
    // The browser logs the 410 itself as a console error: a screenshot only.
    browser.screenshot("reset-gone").await;
    browser.close().await;
    app.stop().await;
}
