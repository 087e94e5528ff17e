//! Username rules, through the admin API and SCIM: names come from the school's template
//! (`{surname}{first_initial}`), transliterated to ASCII; a clash (with an existing account,
//! another row of the same paste, or a concurrent creation) gets a counter, never a duplicate;
//! reserved names and names freed by a deletion are skipped; a username given explicitly is
//! kept exactly or refused with the reason; and a username never changes once given.
//!
//! The tests needing another `[schools.usernames]` than the harness's start a daemon with the
//! harness's configuration plus that section.

use std::collections::BTreeSet;
use std::sync::Arc;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::task::JoinSet;

use crate::harness::*;

// --- Daemons --------------------------------------------------------------------------------

/// A daemon whose school `north` has this `[schools.usernames]` section.
async fn configured(usernames: &str) -> TestApp {
    TestApp::start_with(|base| {
        let south = "\n[[schools]]\nid = \"south\"";
        assert!(base.contains(south), "the harness configuration changed");
        base.replacen(
            south,
            &format!("\n[schools.usernames]\n{usernames}\n{south}"),
            1,
        )
    })
    .await
}

// --- Admin API helpers ----------------------------------------------------------------------

/// `POST /schools/north/users` with this JSON body.
async fn create(app: &TestApp, body: Value) -> Reply {
    app.api(
        Method::POST,
        "/schools/north/users",
        Some(ApiBody::Json(&body)),
    )
    .await
}

/// Creates a north account from its names alone, asserting 201; returns its username.
async fn create_named(app: &TestApp, first: &str, surname: &str) -> String {
    let reply = create(app, json!({ "firstName": first, "surname": surname })).await;
    assert_eq!(
        reply.status,
        StatusCode::CREATED,
        "create {first} {surname}: {}",
        reply.body
    );
    user_name_in(&reply.body)
}

/// Pastes `text` into north's group `group` (`query` e.g. `dry_run=true`).
async fn paste(app: &TestApp, group: &str, query: &str, text: &str) -> Reply {
    app.api(
        Method::POST,
        &format!(
            "/schools/north/groups/{}/students:bulk?{query}",
            url_encode(group)
        ),
        Some(ApiBody::Text(text)),
    )
    .await
}

/// A tab-separated class list (what a spreadsheet copies): a header row, then the rows.
fn sheet(header: &[&str], rows: &[&[&str]]) -> String {
    let mut text = header.join("\t");
    for row in rows {
        text.push('\n');
        text.push_str(&row.join("\t"));
    }
    text.push('\n');
    text
}

/// A class list of first names and surnames.
fn names_sheet(rows: &[(&str, &str)]) -> String {
    let rows: Vec<[&str; 2]> = rows.iter().map(|(f, s)| [*f, *s]).collect();
    let rows: Vec<&[&str]> = rows.iter().map(|r| r.as_slice()).collect();
    sheet(&["First name", "Surname"], &rows)
}

/// The `userName` of each row, in row order ("" for a row without one).
fn row_names(reply: &Reply) -> Vec<String> {
    rows(reply)
        .iter()
        .map(|row| row["userName"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// The `action` of each row, in row order.
fn actions(reply: &Reply) -> Vec<String> {
    rows(reply)
        .iter()
        .map(|row| row["action"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// The message of a row's error on `field`, asserting the row is an error with one there.
#[track_caller]
fn row_error(row: &Value, field: &str) -> String {
    assert_eq!(row["action"], "error", "{row}");
    row["errors"]
        .as_array()
        .and_then(|errors| errors.iter().find(|e| e["field"] == field))
        .and_then(|e| e["message"].as_str())
        .unwrap_or_else(|| panic!("no error on `{field}`: {row}"))
        .to_owned()
}

#[track_caller]
fn user_name_in(body: &Value) -> String {
    body["userName"]
        .as_str()
        .unwrap_or_else(|| panic!("no userName: {body}"))
        .to_owned()
}

/// The usernames of the students of north's group `group`, sorted.
async fn group_students(app: &TestApp, group: &str) -> Vec<String> {
    let reply = app
        .api(
            Method::GET,
            &format!("/schools/north/groups/{}", url_encode(group)),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "group view: {}", reply.body);
    let mut names: Vec<String> = reply.body["students"]
        .as_array()
        .unwrap_or_else(|| panic!("no students: {}", reply.body))
        .iter()
        .map(user_name_in)
        .collect();
    names.sort();
    names
}

// --- SCIM helpers ---------------------------------------------------------------------------

/// The users matching a SCIM filter (as north's SCIM client), asserting 200.
async fn scim_users(app: &TestApp, filter: &str) -> Vec<Value> {
    let path = format!("/Users?count=500&filter={}", url_encode(filter));
    let reply = app.send(Method::GET, &path, None).await;
    assert_eq!(reply.status, StatusCode::OK, "{filter}: {}", reply.body);
    let found = reply.body["Resources"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        reply.body["totalResults"],
        found.len(),
        "{filter}: {}",
        reply.body
    );
    found
}

/// The usernames matching a SCIM filter, sorted.
async fn scim_names(app: &TestApp, filter: &str) -> Vec<String> {
    user_names(&json!({ "Resources": scim_users(app, filter).await }))
}

/// The one account whose username is `name` (any case), read through SCIM.
async fn scim_user(app: &TestApp, name: &str) -> Value {
    let mut found = scim_users(app, &format!("userName eq \"{name}\"")).await;
    assert_eq!(found.len(), 1, "userName eq {name}: {found:?}");
    found.remove(0)
}

/// Creates a SCIM user (as north's `entra` client) with these names; returns its id.
async fn scim_create(app: &TestApp, user_name: &str, given: &str, family: &str) -> String {
    let body = entra_user(
        user_name,
        given,
        family,
        &format!("{given}.{family}@north.example").to_lowercase(),
        &format!("{user_name}-ext"),
    );
    let reply = app.send(Method::POST, "/Users", Some(&body)).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    assert_eq!(reply.body["userName"], user_name);
    id_of(&reply.body)
}

/// `taylors`, `taylors2`, … up to the `n`th candidate.
fn counted(base: &str, n: usize) -> BTreeSet<String> {
    (1..=n)
        .map(|i| {
            if i == 1 {
                base.to_owned()
            } else {
                format!("{base}{i}")
            }
        })
        .collect()
}

// --- 1. Twins in one paste ------------------------------------------------------------------

#[tokio::test]
async fn twins_in_one_paste_get_counters_in_the_preview_and_exactly_those_when_committed() {
    let app = TestApp::start().await;
    let text = names_sheet(&[("James", "Smith"), ("Jane", "Smith"), ("John", "Smith")]);
    let want = ["smithj", "smithj2", "smithj3"];

    let preview = paste(&app, "7S Maths", "dry_run=true", &text).await;
    assert_eq!(preview.status, StatusCode::OK, "{}", preview.body);
    assert_eq!(preview.body["committed"], false);
    assert_eq!(preview.body["counts"]["create"], 3, "{}", preview.body);
    assert_eq!(actions(&preview), ["create"; 3]);
    assert_eq!(row_names(&preview), want);
    for (number, first) in [(2, "James"), (3, "Jane"), (4, "John")] {
        assert_eq!(row(&preview, number)["firstName"], first);
    }
    // A preview writes nothing.
    assert!(scim_names(&app, "userName sw \"smithj\"").await.is_empty());

    let done = paste(&app, "7S Maths", "", &text).await;
    assert_eq!(done.status, StatusCode::CREATED, "{}", done.body);
    assert_eq!(done.body["committed"], true);
    assert_eq!(actions(&done), ["created"; 3]);
    assert_eq!(row_names(&done), want);

    // Every account exists under exactly that name, for exactly that person.
    for (name, first) in want.iter().zip(["James", "Jane", "John"]) {
        let user = scim_user(&app, name).await;
        assert_eq!(user["userName"], *name);
        assert_eq!(user["name"]["givenName"], first, "{user}");
        assert_eq!(user["name"]["familyName"], "Smith", "{user}");
    }
    assert_eq!(
        scim_names(&app, "userName sw \"smithj\"").await,
        want.to_vec()
    );
    assert_eq!(group_students(&app, "7S Maths").await, want.to_vec());
    app.stop().await;
}

// --- 2. Clashes with existing accounts ------------------------------------------------------

#[tokio::test]
async fn a_pasted_name_clashing_with_an_existing_account_gets_the_next_counter() {
    let app = TestApp::start().await;
    assert_eq!(create_named(&app, "John", "Smith").await, "smithj");

    let text = names_sheet(&[("Jo", "Smith")]);
    let preview = paste(&app, "8S", "dry_run=true", &text).await;
    assert_eq!(row_names(&preview), ["smithj2"], "{}", preview.body);
    let done = paste(&app, "8S", "", &text).await;
    assert_eq!(done.status, StatusCode::CREATED, "{}", done.body);
    assert_eq!(row_names(&done), ["smithj2"]);

    // The first account kept its name; the second has the counter.
    assert_eq!(scim_user(&app, "smithj").await["name"]["givenName"], "John");
    assert_eq!(scim_user(&app, "smithj2").await["name"]["givenName"], "Jo");
    assert_eq!(group_students(&app, "8S").await, ["smithj2"]);
    app.stop().await;
}

#[tokio::test]
async fn an_existing_scim_username_blocks_the_generated_one_whatever_its_case() {
    let app = TestApp::start().await;
    scim_create(&app, "SmithJ", "Jack", "Smith").await;

    let text = names_sheet(&[("Jo", "Smith")]);
    let preview = paste(&app, "8S", "dry_run=true", &text).await;
    assert_eq!(row_names(&preview), ["smithj2"], "{}", preview.body);

    assert_eq!(create_named(&app, "Jim", "Smith").await, "smithj2");
    // The paste is settled again when committed: smithj2 went meanwhile.
    let done = paste(&app, "8S", "", &text).await;
    assert_eq!(done.status, StatusCode::CREATED, "{}", done.body);
    assert_eq!(row_names(&done), ["smithj3"]);

    assert_eq!(
        scim_names(&app, "userName sw \"smithj\"").await,
        ["SmithJ", "smithj2", "smithj3"]
    );
    app.stop().await;
}

#[tokio::test]
async fn usernames_are_unique_per_school_not_across_schools() {
    let app = TestApp::start().await;
    assert_eq!(create_named(&app, "John", "Smith").await, "smithj");
    let south = app
        .api_as(
            Some(&app.other_admin_token),
            Method::POST,
            "/schools/south/users",
            Some(ApiBody::Json(
                &json!({ "firstName": "Jane", "surname": "Smith" }),
            )),
        )
        .await;
    assert_eq!(south.status, StatusCode::CREATED, "{}", south.body);
    assert_eq!(south.body["userName"], "smithj");
    assert_eq!(create_named(&app, "Jo", "Smith").await, "smithj2");
    app.stop().await;
}

// --- 3. Concurrent creations ----------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_creations_of_one_name_get_fifty_distinct_counters() {
    const N: usize = 50;
    let app = Arc::new(TestApp::start().await);
    let mut tasks = JoinSet::new();
    for _ in 0..N {
        let app = app.clone();
        tasks.spawn(async move {
            create(
                app.as_ref(),
                json!({ "firstName": "Sam", "surname": "Taylor" }),
            )
            .await
        });
    }
    let mut names = BTreeSet::new();
    while let Some(reply) = tasks.join_next().await {
        let reply = reply.expect("task");
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        assert!(
            names.insert(user_name_in(&reply.body)),
            "given twice: {}",
            reply.body
        );
    }
    assert_eq!(names, counted("taylors", N));

    let stored: BTreeSet<String> = scim_names(app.as_ref(), "userName sw \"taylors\"")
        .await
        .into_iter()
        .collect();
    assert_eq!(stored, names);
    Arc::into_inner(app).expect("no task left").stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_paste_racing_single_creations_of_the_same_base_never_duplicates_a_name() {
    const SINGLES: usize = 10;
    let firsts = [
        "Sam", "Sara", "Seb", "Sid", "Sky", "Sol", "Stan", "Suki", "Syd", "Sven",
    ];
    let pairs: Vec<(&str, &str)> = firsts.iter().map(|f| (*f, "Taylor")).collect();
    let text = names_sheet(&pairs);
    let app = Arc::new(TestApp::start().await);

    let mut singles = JoinSet::new();
    for _ in 0..SINGLES {
        let app = app.clone();
        singles.spawn(async move {
            create(
                app.as_ref(),
                json!({ "firstName": "Sue", "surname": "Taylor" }),
            )
            .await
        });
    }
    let pasted = {
        let app = app.clone();
        tokio::spawn(async move { paste(app.as_ref(), "9T", "", &text).await })
    };

    let mut names = BTreeSet::new();
    while let Some(reply) = singles.join_next().await {
        let reply = reply.expect("task");
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        assert!(names.insert(user_name_in(&reply.body)), "{}", reply.body);
    }
    let pasted = pasted.await.expect("task");
    assert_eq!(pasted.status, StatusCode::CREATED, "{}", pasted.body);
    assert_eq!(actions(&pasted), ["created"; 10]);
    let mut in_group = BTreeSet::new();
    for name in row_names(&pasted) {
        assert!(names.insert(name.clone()), "{name} given twice");
        in_group.insert(name);
    }
    assert_eq!(names, counted("taylors", SINGLES + firsts.len()));

    let stored: BTreeSet<String> = scim_names(app.as_ref(), "userName sw \"taylors\"")
        .await
        .into_iter()
        .collect();
    assert_eq!(stored, names);
    let group: BTreeSet<String> = group_students(app.as_ref(), "9T")
        .await
        .into_iter()
        .collect();
    assert_eq!(group, in_group);
    Arc::into_inner(app).expect("no task left").stop().await;
}

// --- 4. Transliteration and cutting -------------------------------------------------------

#[tokio::test]
async fn names_in_any_script_are_transliterated_in_a_paste_and_a_single_creation() {
    let app = TestApp::start().await;
    let cases = [
        ("Zoë", "Ó Súilleabháin", "osuilleabhainz"),
        ("Łukasz", "Żółć", "zolcl"),
        ("Văn", "Nguyễn", "nguyenv"),
        ("D'Arcy", "O'Neill-Smith", "oneillsmithd"),
    ];
    let pairs: Vec<(&str, &str)> = cases.iter().map(|(f, s, _)| (*f, *s)).collect();
    let want: Vec<&str> = cases.iter().map(|(.., name)| *name).collect();

    let preview = paste(&app, "Languages", "dry_run=true", &names_sheet(&pairs)).await;
    assert_eq!(row_names(&preview), want, "{}", preview.body);
    let done = paste(&app, "Languages", "", &names_sheet(&pairs)).await;
    assert_eq!(done.status, StatusCode::CREATED, "{}", done.body);
    assert_eq!(row_names(&done), want);
    for (first, surname, name) in cases {
        let user = scim_user(&app, name).await;
        // The names themselves are kept as written.
        assert_eq!(user["name"]["givenName"], first, "{user}");
        assert_eq!(user["name"]["familyName"], surname, "{user}");
    }

    // A single creation of the same people makes the same bases, counted on.
    for (first, surname, name) in cases {
        assert_eq!(create_named(&app, first, surname).await, format!("{name}2"));
    }
    app.stop().await;
}

#[tokio::test]
async fn a_long_surname_is_cut_to_the_schools_maximum_and_counters_fit_within_it() {
    let app = TestApp::start().await;
    let surname = "Wolfeschlegelsteinhausenbergerdorff";
    let first = create_named(&app, "Hubert", surname).await;
    assert_eq!(first, "wolfeschlegelsteinha");
    assert_eq!(first.len(), 20);

    let preview = paste(
        &app,
        "Long names",
        "dry_run=true",
        &names_sheet(&[("Hans", surname)]),
    )
    .await;
    // The base is cut further so that the counter still fits in 20 characters.
    assert_eq!(
        row_names(&preview),
        ["wolfeschlegelsteinh2"],
        "{}",
        preview.body
    );
    let second = create_named(&app, "Hugo", surname).await;
    assert_eq!(second, "wolfeschlegelsteinh2");
    assert_eq!(
        scim_names(&app, "userName sw \"wolfeschlegel\"").await,
        ["wolfeschlegelsteinh2", "wolfeschlegelsteinha"]
    );
    app.stop().await;
}

#[tokio::test]
async fn a_name_without_usable_letters_is_an_error_naming_that_field() {
    let app = TestApp::start().await;
    let text = names_sheet(&[("Sam", "😀"), ("🙂", "Lee"), ("Ann", "Lee")]);
    let reply = paste(&app, "Emoji", "", &text).await;
    assert_eq!(
        reply.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        reply.body
    );
    assert_eq!(reply.body["committed"], false);
    let message = row_error(row(&reply, 2), "surname");
    assert!(message.contains("no letters or digits"), "{message}");
    let message = row_error(row(&reply, 3), "first name");
    assert!(message.contains("no letters or digits"), "{message}");
    assert_eq!(row(&reply, 4)["action"], "create");
    assert!(scim_names(&app, "userName sw \"lee\"").await.is_empty());

    let single = create(&app, json!({ "firstName": "Sam", "surname": "😀" })).await;
    assert_eq!(
        single.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        single.body
    );
    let detail = single.body["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("surname") && detail.contains("no letters or digits"),
        "{detail}"
    );
    app.stop().await;
}

// --- 5. Explicit usernames ------------------------------------------------------------------

#[tokio::test]
async fn an_explicit_username_is_kept_exactly_as_given() {
    let app = TestApp::start().await;
    let reply = create(
        &app,
        json!({ "firstName": "Jo", "surname": "Smith", "userName": "JS.Custom-1" }),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    assert_eq!(reply.body["userName"], "JS.Custom-1");
    assert_eq!(
        scim_user(&app, "JS.Custom-1").await["userName"],
        "JS.Custom-1"
    );

    let text = sheet(
        &["First name", "Surname", "Username"],
        &[&["Kim", "Lee", "KL.Paste_2"], &["Ken", "Lee", ""]],
    );
    let done = paste(&app, "Custom", "", &text).await;
    assert_eq!(done.status, StatusCode::CREATED, "{}", done.body);
    assert_eq!(row_names(&done), ["KL.Paste_2", "leek"]);
    assert_eq!(
        scim_user(&app, "kl.paste_2").await["userName"],
        "KL.Paste_2"
    );
    // The generated name of the explicit row's person was not used.
    assert!(scim_names(&app, "userName eq \"smithj\"").await.is_empty());
    app.stop().await;
}

#[tokio::test]
async fn a_taken_explicit_username_is_refused_with_its_name_never_changed() {
    let app = TestApp::start().await;
    assert_eq!(create_named(&app, "John", "Smith").await, "smithj");

    for given in ["smithj", "SMITHJ"] {
        let reply = create(
            &app,
            json!({ "firstName": "Jo", "surname": "Smith", "userName": given }),
        )
        .await;
        assert_eq!(reply.status, StatusCode::CONFLICT, "{}", reply.body);
        let detail = reply.body["detail"].as_str().unwrap_or_default();
        assert!(
            detail.contains(given) && detail.contains("taken"),
            "{detail}"
        );
    }

    let text = sheet(
        &["First name", "Surname", "Username"],
        &[&["Jo", "Smith", "SmithJ"]],
    );
    let reply = paste(&app, "Taken", "", &text).await;
    assert_eq!(
        reply.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        reply.body
    );
    let message = row_error(row(&reply, 2), "username");
    assert!(
        message.contains("SmithJ") && message.contains("taken"),
        "{message}"
    );
    // Refused, not moved on to smithj2; the existing account is untouched.
    assert_eq!(scim_names(&app, "userName sw \"smithj\"").await, ["smithj"]);
    assert_eq!(scim_user(&app, "smithj").await["name"]["givenName"], "John");
    app.stop().await;
}

#[tokio::test]
async fn reserved_and_malformed_explicit_usernames_are_refused() {
    let app = TestApp::start().await;
    for (given, reason) in [
        ("admin", "reserved"),
        ("Admin", "reserved"),
        ("postmaster", "reserved"),
        ("ad min", "may only contain"),
        ("-smith", "must start with"),
        ("abcdefghijklmnopqrstu", "longer than"),
    ] {
        let reply = create(
            &app,
            json!({ "firstName": "Al", "surname": "Min", "userName": given }),
        )
        .await;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{given}: {}",
            reply.body
        );
        let detail = reply.body["detail"].as_str().unwrap_or_default();
        assert!(
            detail.contains("username") && detail.contains(given) && detail.contains(reason),
            "{given}: {detail}"
        );
    }

    let text = sheet(
        &["First name", "Surname", "Username"],
        &[&["Al", "Min", "admin"], &["Ad", "Min", "ad min"]],
    );
    let reply = paste(&app, "Reserved", "dry_run=true", &text).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert!(row_error(row(&reply, 2), "username").contains("reserved"));
    assert!(row_error(row(&reply, 3), "username").contains("may only contain"));
    assert!(scim_names(&app, "userName sw \"min\"").await.is_empty());
    assert_eq!(total_as(&app, &app.token, "/Users").await, 0);
    app.stop().await;
}

#[tokio::test]
async fn the_same_explicit_username_twice_in_one_paste_names_the_first_row() {
    let app = TestApp::start().await;
    let text = sheet(
        &["First name", "Surname", "Username"],
        &[
            &["Kim", "Lee", "kl1"],
            &["Ann", "Bee", ""],
            &["Ken", "Lee", "KL1"],
        ],
    );
    let reply = paste(&app, "Twice", "", &text).await;
    assert_eq!(
        reply.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        reply.body
    );
    assert_eq!(row(&reply, 2)["action"], "create");
    assert_eq!(row(&reply, 2)["userName"], "kl1");
    let message = row_error(row(&reply, 4), "username");
    assert!(message.contains("row 2"), "{message}");
    assert_eq!(total_as(&app, &app.token, "/Users").await, 0);

    // With `partial`, the first keeps the name and the second is still refused.
    let reply = paste(&app, "Twice", "partial=true", &text).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    assert_eq!(actions(&reply), ["created", "created", "error"]);
    assert_eq!(scim_user(&app, "kl1").await["name"]["givenName"], "Kim");
    assert_eq!(group_students(&app, "Twice").await, ["beea", "kl1"]);
    app.stop().await;
}

/// A row giving explicitly the name an earlier row of the same paste would be generated must
/// not be planned with the same name: the preview would promise one name twice and the commit
/// would fail as a whole.
#[tokio::test]
async fn an_explicit_username_equal_to_an_earlier_rows_generated_one_is_settled_in_the_preview() {
    let app = TestApp::start().await;
    let text = sheet(
        &["First name", "Surname", "Username"],
        &[&["John", "Smith", ""], &["Jane", "Doe", "smithj"]],
    );
    let preview = paste(&app, "Mixed", "dry_run=true", &text).await;
    assert_eq!(preview.status, StatusCode::OK, "{}", preview.body);
    let planned: Vec<String> = rows(&preview)
        .iter()
        .filter(|row| row["action"] == "create")
        .map(user_name_in)
        .collect();
    let distinct: BTreeSet<String> = planned.iter().map(|n| n.to_lowercase()).collect();
    assert_eq!(
        distinct.len(),
        planned.len(),
        "the preview promises one username to two rows: {}",
        preview.body
    );

    // Whatever the preview settled (the generated row moved on, or the explicit one refused),
    // the commit does it: it is not refused wholesale as a conflict.
    let done = paste(&app, "Mixed", "partial=true", &text).await;
    assert_eq!(done.status, StatusCode::CREATED, "{}", done.body);
    assert_eq!(row_names(&done), row_names(&preview));
    app.stop().await;
}

// --- 6. Usernames never change --------------------------------------------------------------

#[tokio::test]
async fn scim_cannot_rename_an_account_an_admin_created() {
    let app = TestApp::start().await;
    assert_eq!(create_named(&app, "Amy", "Brown").await, "browna");
    let id = id_of(&scim_user(&app, "browna").await);

    let reply = app
        .send(
            Method::PATCH,
            &format!("/Users/{id}"),
            Some(&patch_request(json!([
                { "op": "replace", "path": "name.familyName", "value": "Green" }
            ]))),
        )
        .await;
    reply.assert_error(403, None);
    let user = scim_user(&app, "browna").await;
    assert_eq!(user["name"]["familyName"], "Brown", "{user}");
    app.stop().await;
}

#[tokio::test]
async fn changing_a_scim_users_family_name_keeps_its_username() {
    let app = TestApp::start().await;
    let id = scim_create(&app, "cole.k", "Kit", "Cole").await;
    let reply = app
        .send(
            Method::PATCH,
            &format!("/Users/{id}"),
            Some(&patch_request(json!([
                { "op": "replace", "path": "name.familyName", "value": "Cole-Baker" }
            ]))),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["userName"], "cole.k");
    assert_eq!(reply.body["name"]["familyName"], "Cole-Baker");

    let read = app.send(Method::GET, &format!("/Users/{id}"), None).await;
    assert_eq!(read.body["userName"], "cole.k", "{}", read.body);
    assert!(
        scim_names(&app, "userName sw \"colebaker\"")
            .await
            .is_empty()
    );
    app.stop().await;
}

#[tokio::test]
async fn a_reimport_with_a_changed_surname_reports_the_original_username() {
    let app = TestApp::start().await;
    let header = ["First name", "Surname", "Student number"];
    let first = paste(
        &app,
        "10B",
        "",
        &sheet(&header, &[&["Amy", "Brown", "S100"]]),
    )
    .await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    assert_eq!(row_names(&first), ["browna"]);
    let id = row(&first, 2)["id"].clone();

    let again = sheet(&header, &[&["Amy", "Brown-Jones", "S100"]]);
    for query in ["dry_run=true", ""] {
        let reply = paste(&app, "10B", query, &again).await;
        assert!(reply.status.is_success(), "{query}: {}", reply.body);
        assert_eq!(actions(&reply), ["exists"], "{query}: {}", reply.body);
        assert_eq!(row_names(&reply), ["browna"], "{query}");
        assert_eq!(row(&reply, 2)["id"], id, "{query}");
        assert_eq!(reply.body["counts"]["create"], 0, "{query}");
    }
    assert_eq!(scim_names(&app, "userName pr").await, ["browna"]);
    assert_eq!(group_students(&app, "10B").await, ["browna"]);
    app.stop().await;
}

// --- 7. Names freed by a deletion -----------------------------------------------------------

#[tokio::test]
async fn a_deleted_accounts_username_is_not_given_out_again() {
    let app = TestApp::start().await;
    let id = scim_create(&app, "greene", "Eve", "Green").await;
    let deleted = app
        .send(Method::DELETE, &format!("/Users/{id}"), None)
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.body);
    assert!(scim_names(&app, "userName sw \"greene\"").await.is_empty());

    // Generated: skipped, in the preview and when committed.
    let text = names_sheet(&[("Eve", "Green")]);
    let preview = paste(&app, "11G", "dry_run=true", &text).await;
    assert_eq!(row_names(&preview), ["greene2"], "{}", preview.body);
    let done = paste(&app, "11G", "", &text).await;
    assert_eq!(done.status, StatusCode::CREATED, "{}", done.body);
    assert_eq!(row_names(&done), ["greene2"]);
    assert_eq!(create_named(&app, "Ed", "Green").await, "greene3");

    // Explicit: refused, saying why.
    let text = sheet(
        &["First name", "Surname", "Username"],
        &[&["Eva", "Green", "Greene"]],
    );
    let reply = paste(&app, "11G", "", &text).await;
    assert_eq!(
        reply.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        reply.body
    );
    let message = row_error(row(&reply, 2), "username");
    assert!(message.contains("deleted account"), "{message}");
    let single = create(
        &app,
        json!({ "firstName": "Eva", "surname": "Green", "userName": "greene" }),
    )
    .await;
    assert_eq!(single.status, StatusCode::CONFLICT, "{}", single.body);
    let detail = single.body["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("greene") && detail.contains("deleted"),
        "{detail}"
    );
    assert_eq!(
        scim_names(&app, "userName sw \"greene\"").await,
        ["greene2", "greene3"]
    );
    app.stop().await;
}

#[tokio::test]
async fn a_school_with_reuse_after_days_zero_gives_a_freed_name_out_at_once() {
    let app = configured("reuse_after_days = 0").await;
    for name in ["greene", "hilla"] {
        let id = scim_create(&app, name, "Someone", "Else").await;
        let deleted = app
            .send(Method::DELETE, &format!("/Users/{id}"), None)
            .await;
        assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.body);
    }

    let done = paste(&app, "11G", "", &names_sheet(&[("Eve", "Green")])).await;
    assert_eq!(done.status, StatusCode::CREATED, "{}", done.body);
    assert_eq!(row_names(&done), ["greene"]);
    let explicit = create(
        &app,
        json!({ "firstName": "Al", "surname": "Hill", "userName": "hilla" }),
    )
    .await;
    assert_eq!(explicit.status, StatusCode::CREATED, "{}", explicit.body);
    assert_eq!(explicit.body["userName"], "hilla");
    assert_eq!(scim_names(&app, "userName pr").await, ["greene", "hilla"]);
    app.stop().await;
}

// --- 8. Reserved names are skipped by generation --------------------------------------------

#[tokio::test]
async fn generation_skips_a_built_in_reserved_name() {
    let app = TestApp::start().await;
    // Roo + T = "root", which no account may have.
    let text = names_sheet(&[("Tia", "Roo")]);
    let preview = paste(&app, "Reserved", "dry_run=true", &text).await;
    assert_eq!(row_names(&preview), ["root2"], "{}", preview.body);
    assert_eq!(create_named(&app, "Tom", "Roo").await, "root2");
    let done = paste(&app, "Reserved", "", &text).await;
    assert_eq!(done.status, StatusCode::CREATED, "{}", done.body);
    assert_eq!(row_names(&done), ["root3"]);
    assert!(scim_names(&app, "userName eq \"root\"").await.is_empty());
    app.stop().await;
}

#[tokio::test]
async fn generation_skips_a_name_the_school_reserves() {
    let app = configured("template = \"{surname}\"\nreserved = [\"Office\"]").await;
    let text = names_sheet(&[("Ann", "Office"), ("Ben", "Office")]);
    let preview = paste(&app, "Staff room", "dry_run=true", &text).await;
    assert_eq!(preview.status, StatusCode::OK, "{}", preview.body);
    assert_eq!(row_names(&preview), ["office2", "office3"]);
    let done = paste(&app, "Staff room", "", &text).await;
    assert_eq!(done.status, StatusCode::CREATED, "{}", done.body);
    assert_eq!(row_names(&done), ["office2", "office3"]);
    assert_eq!(create_named(&app, "Cat", "Office").await, "office4");

    // The template applies to everyone; the reserved name is refused when given explicitly.
    assert_eq!(create_named(&app, "Dan", "Desk").await, "desk");
    let explicit = create(
        &app,
        json!({ "firstName": "Eve", "surname": "Office", "userName": "office" }),
    )
    .await;
    assert_eq!(
        explicit.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        explicit.body
    );
    assert!(
        explicit.body["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("reserved"),
        "{}",
        explicit.body
    );
    assert_eq!(
        scim_names(&app, "userName pr").await,
        ["desk", "office2", "office3", "office4"]
    );
    app.stop().await;
}
