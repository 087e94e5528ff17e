//! Class lists pasted from real spreadsheets into `students:bulk` (and `rollcall import`):
//! Excel and Google Sheets copies, Excel's "CSV UTF-8" files, reordered headers, blank lines;
//! the preview names each row's username or error by spreadsheet row; committing is all or
//! nothing (unless `partial`); re-running matches existing accounts instead of duplicating
//! them; a new group gets its courses and tutors; a dry run writes nothing. Every outcome is
//! read back through the admin API, SCIM, or the log-in API.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::cli::Setup;
use crate::harness::*;

const SCHOOL_USER_URN: &str = "urn:rollcall:params:scim:schemas:extension:school:2.0:User";

/// `(row, action, userName)` of every row, in order.
fn summary(reply: &Reply) -> Vec<(u64, String, String)> {
    rows(reply)
        .iter()
        .map(|r| {
            (
                r["row"].as_u64().expect("row number"),
                r["action"].as_str().expect("action").to_owned(),
                r["userName"].as_str().unwrap_or("-").to_owned(),
            )
        })
        .collect()
}

/// `(userName, password)` of every row, asserting each was created with an id and a password.
#[track_caller]
fn created_rows(reply: &Reply) -> Vec<(String, String)> {
    rows(reply)
        .iter()
        .map(|r| {
            assert_eq!(r["action"], "created", "{r}");
            assert!(r["id"].is_string(), "no id: {r}");
            let password = r["password"]
                .as_str()
                .unwrap_or_else(|| panic!("no password: {r}"));
            assert!(password.len() >= 8, "{r}");
            (
                r["userName"].as_str().expect("userName").to_owned(),
                password.to_owned(),
            )
        })
        .collect()
}

/// `(field, message)` of a row's errors.
fn errors_of(row: &Value) -> Vec<(String, String)> {
    row["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .map(|e| {
                    (
                        e["field"].as_str().unwrap_or_default().to_owned(),
                        e["message"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn counts(reply: &Reply) -> (u64, u64, u64) {
    let counts = &reply.body["counts"];
    (
        counts["create"].as_u64().expect("create"),
        counts["exists"].as_u64().expect("exists"),
        counts["error"].as_u64().expect("error"),
    )
}

/// How many accounts north's SCIM client sees (admin-created ones included).
async fn north_user_count(app: &TestApp) -> i64 {
    total_as(app, &app.token, "/Users").await
}

/// `GET` a north teaching group by name.
async fn group(app: &TestApp, name: &str) -> Reply {
    app.api(
        Method::GET,
        &format!("/schools/north/groups/{}", url_encode(name)),
        None,
    )
    .await
}

/// The sorted usernames of a group view's `students` (or `tutors`).
fn member_names(view: &Value, list: &str) -> Vec<String> {
    let mut names: Vec<String> = view[list]
        .as_array()
        .unwrap_or_else(|| panic!("no {list}: {view}"))
        .iter()
        .map(|m| m["userName"].as_str().expect("userName").to_owned())
        .collect();
    names.sort();
    names
}

/// The students of an existing group, sorted.
async fn students_of(app: &TestApp, name: &str) -> Vec<String> {
    let view = group(app, name).await;
    assert_eq!(view.status, StatusCode::OK, "group {name}: {}", view.body);
    member_names(&view.body, "students")
}

async fn assert_no_group(app: &TestApp, name: &str) {
    let view = group(app, name).await;
    assert_eq!(
        view.status,
        StatusCode::NOT_FOUND,
        "group {name}: {}",
        view.body
    );
}

/// Creates a north account through the admin API, returning its username.
async fn create_person(app: &TestApp, body: Value) -> String {
    app.new_account(&body).await["userName"]
        .as_str()
        .expect("userName")
        .to_owned()
}

/// Creates an (empty) north teaching group through the admin API.
async fn create_group(app: &TestApp, name: &str) {
    let body = json!({ "name": name, "courses": [], "tutors": [] });
    let reply = app
        .api(
            Method::POST,
            "/schools/north/groups",
            Some(ApiBody::Json(&body)),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
}

/// Asserts an `/api/v1` error reply and returns its detail.
#[track_caller]
fn api_error(reply: &Reply, status: u16) -> String {
    assert_eq!(reply.status.as_u16(), status, "{}", reply.body);
    assert!(reply.body["error"].is_string(), "{}", reply.body);
    reply.body["detail"].as_str().expect("detail").to_owned()
}

/// The 1-based line of `text` holding `needle` (CRLF, LF or CR line ends).
fn line_of(text: &str, needle: &str) -> usize {
    text.replace("\r\n", "\n")
        .replace('\r', "\n")
        .lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no {needle:?} in {text:?}"))
        + 1
}

/// Five Year 7 students as Excel for Windows copies them: a header, CRLF, a trailing CRLF,
/// and trailing empty columns on the rows whose cells further right were empty.
const EXCEL_COPY: &str = "First name\tSurname\tEmail\tYear\tUPN\r\n\
    Ada\tLovelace\tada.lovelace@north.example\t7\tA100000000001\r\n\
    John\tSmith\tjohn.smith@north.example\t7\tA100000000002\t\t\r\n\
    Jane\tSmith\tjane.smith@north.example\t7\tA100000000003\r\n\
    Siobhán\tO'Connor\tsiobhan.oconnor@north.example\t7\tA100000000004\t\t\t\r\n\
    Zoë\tMüller\tzoe.muller@north.example\t7\tA100000000005\r\n";

const EXCEL_USERNAMES: [&str; 5] = ["lovelacea", "smithj", "smithj2", "oconnors", "mullerz"];

#[tokio::test]
async fn an_excel_copy_previews_every_row_then_creates_the_class() {
    let app = TestApp::start().await;

    let preview = app.paste("7A", "dry_run=true", EXCEL_COPY).await;
    assert_eq!(preview.status, StatusCode::OK, "{}", preview.body);
    assert_eq!(preview.body["dryRun"], true);
    assert_eq!(preview.body["committed"], false);
    assert_eq!(preview.body["group"]["new"], true);
    assert!(
        preview.body.get("ignoredColumns").is_none(),
        "{}",
        preview.body
    );
    let want: Vec<(u64, String, String)> = EXCEL_USERNAMES
        .iter()
        .enumerate()
        .map(|(i, name)| (i as u64 + 2, "create".to_owned(), (*name).to_owned()))
        .collect();
    assert_eq!(summary(&preview), want);
    assert!(rows(&preview).iter().all(|r| r.get("password").is_none()));

    let reply = app.paste("7A", "", EXCEL_COPY).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    assert_eq!(reply.body["committed"], true);
    assert_eq!(counts(&reply), (5, 0, 0));
    let created = created_rows(&reply);
    let names: Vec<&str> = created.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, EXCEL_USERNAMES);
    assert_eq!(
        reply.body["group"]["id"],
        group(&app, "7A").await.body["id"]
    );

    let mut sorted = EXCEL_USERNAMES.map(str::to_owned).to_vec();
    sorted.sort();
    assert_eq!(students_of(&app, "7A").await, sorted);
    assert_eq!(north_user_count(&app).await, 5);

    // The SCIM view of Siobhán: names with their accents, email, the school extension.
    let siobhan = row(&reply, 5);
    let scim = app
        .get(&format!("/Users/{}", siobhan["id"].as_str().unwrap()))
        .await;
    assert_eq!(scim.status, StatusCode::OK, "{}", scim.body);
    assert_eq!(scim.body["userName"], "oconnors");
    assert_eq!(scim.body["name"]["givenName"], "Siobhán");
    assert_eq!(scim.body["name"]["familyName"], "O'Connor");
    assert_eq!(
        scim.body["emails"][0]["value"],
        "siobhan.oconnor@north.example"
    );
    let school = &scim.body[SCHOOL_USER_URN];
    assert_eq!(school["yearGroup"], "7", "{}", scim.body);
    assert_eq!(school["studentNumber"], "A100000000004", "{}", scim.body);
    assert_eq!(school["role"], "student", "{}", scim.body);

    // The first password shown is the one that works, and must be changed.
    let (user, password) = &created[4];
    let login = app.login("north", user, password).await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.body);
    assert_eq!(login.body["status"], "password_change_required");
}

#[tokio::test]
async fn a_google_sheets_copy_without_header_uses_the_default_column_order() {
    let app = TestApp::start().await;
    // LF line ends, no final newline, no header: first name, surname, email, username, year
    // group, student number. Alan has no username (generated) and no email.
    let text = "Ada\tLovelace\tada@north.example\tada.l\tY7\t1001\n\
                Alan\tTuring\t\t\tY8\t1002\n\
                Grace\tHopper\tgrace@north.example\tghopper\tY7\t1003";

    let reply = app.paste("Computing club", "", text).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    assert_eq!(
        summary(&reply),
        [
            (1, "created".to_owned(), "ada.l".to_owned()),
            (2, "created".to_owned(), "turinga".to_owned()),
            (3, "created".to_owned(), "ghopper".to_owned()),
        ]
    );
    let alan = row(&reply, 2);
    assert_eq!(alan["email"], "");
    assert!(
        alan["note"]
            .as_str()
            .unwrap_or_default()
            .contains("no email"),
        "{alan}"
    );

    let scim = app
        .get(&format!(
            "/Users/{}",
            row(&reply, 3)["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(scim.body["name"]["givenName"], "Grace");
    assert_eq!(scim.body["name"]["familyName"], "Hopper");
    assert_eq!(scim.body["emails"][0]["value"], "grace@north.example");
    assert_eq!(scim.body[SCHOOL_USER_URN]["yearGroup"], "Y7");
    assert_eq!(scim.body[SCHOOL_USER_URN]["studentNumber"], "1003");
    assert_eq!(
        students_of(&app, "Computing club").await,
        ["ada.l", "ghopper", "turinga"]
    );
}

#[tokio::test]
async fn an_excel_csv_utf8_file_with_semicolons_and_quotes_is_read_cell_by_cell() {
    let app = TestApp::start().await;
    // What Excel in a continental locale saves as "CSV UTF-8": a BOM, `;`, CRLF; a quoted
    // surname holding the separator, a note typed with Alt+Enter, a nickname in doubled quotes.
    let text = "\u{feff}First name;Surname;Email;Notes\r\n\
                Jack;\"Smith; Jr\";jack@north.example;\r\n\
                Mary;Jones;mary@north.example;\"Allergies:\r\nnuts\"\r\n\
                \"Robert \"\"Bobby\"\"\";Tables;bobby@north.example;\"says \"\"hi\"\"\"\r\n";

    let reply = app.paste("9C", "", text).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    assert_eq!(reply.body["ignoredColumns"], json!(["Notes"]));
    // Mary's note spans two lines, so Robert is on line 5 of the file.
    assert_eq!(line_of(text, "Bobby"), 5);
    assert_eq!(
        summary(&reply),
        [
            (2, "created".to_owned(), "smithjrj".to_owned()),
            (3, "created".to_owned(), "jonesm".to_owned()),
            (5, "created".to_owned(), "tablesr".to_owned()),
        ]
    );
    assert_eq!(row(&reply, 2)["surname"], "Smith; Jr");
    assert_eq!(row(&reply, 5)["firstName"], "Robert \"Bobby\"");

    for (number, given, family, email) in [
        (2, "Jack", "Smith; Jr", "jack@north.example"),
        (5, "Robert \"Bobby\"", "Tables", "bobby@north.example"),
    ] {
        let id = row(&reply, number)["id"].as_str().unwrap().to_owned();
        let scim = app.get(&format!("/Users/{id}")).await;
        assert_eq!(scim.body["name"]["givenName"], given, "{}", scim.body);
        assert_eq!(scim.body["name"]["familyName"], family, "{}", scim.body);
        assert_eq!(scim.body["emails"][0]["value"], email, "{}", scim.body);
    }
    assert_eq!(north_user_count(&app).await, 3);
}

#[tokio::test]
async fn a_reordered_header_maps_columns_and_lists_the_ignored_ones() {
    let app = TestApp::start().await;
    let text = "Surname,First Name,E-mail,Tutor group\n\
                Lovelace,Ada,ada@north.example,7A/Tu\n\
                Turing,Alan,alan@north.example,7B/Tu\n";

    let reply = app.paste("7 Maths", "", text).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    assert_eq!(reply.body["ignoredColumns"], json!(["Tutor group"]));
    let ada = row(&reply, 2);
    assert_eq!(
        (
            &ada["firstName"],
            &ada["surname"],
            &ada["email"],
            &ada["userName"]
        ),
        (
            &json!("Ada"),
            &json!("Lovelace"),
            &json!("ada@north.example"),
            &json!("lovelacea")
        )
    );
    assert_eq!(row(&reply, 3)["userName"], "turinga");

    let scim = app
        .get(&format!("/Users/{}", ada["id"].as_str().unwrap()))
        .await;
    assert_eq!(scim.body["name"]["givenName"], "Ada");
    assert_eq!(scim.body["name"]["familyName"], "Lovelace");
    assert_eq!(scim.body["emails"][0]["value"], "ada@north.example");
    // The tutor group went nowhere: it is not the year group either.
    assert!(
        scim.body[SCHOOL_USER_URN].get("yearGroup").is_none(),
        "{}",
        scim.body
    );
}

#[tokio::test]
async fn blank_lines_and_empty_rows_are_skipped_and_rows_keep_their_line_numbers() {
    let app = TestApp::start().await;
    let lines = [
        "",
        "First name\tSurname\tEmail",
        "",
        "Ada\tLovelace\tada@north.example",
        "\t\t",
        " \t \u{a0}\t ",
        "Alan\tTuring\tnot-an-email",
        "",
        "",
        "Grace\t\tgrace@north.example",
        "Katherine\tJohnson\tkj@north.example",
        "\t\t",
    ];
    for newline in ["\n", "\r\n"] {
        let text = lines.join(newline);
        let reply = app.paste("10E", "dry_run=true", &text).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        let want = [
            (line_of(&text, "Lovelace"), "create", "lovelacea"),
            (line_of(&text, "Turing"), "error", "-"),
            (line_of(&text, "Grace"), "error", "-"),
            (line_of(&text, "Johnson"), "create", "johnsonk"),
        ]
        .map(|(line, action, name)| (line as u64, action.to_owned(), name.to_owned()));
        assert_eq!(summary(&reply), want, "{newline:?}");
        assert_eq!(want.map(|w| w.0), [4, 7, 10, 11]);
        assert_eq!(
            errors_of(row(&reply, 7)),
            [(
                "email".to_owned(),
                "`not-an-email` is not an email address".to_owned()
            )]
        );
        assert_eq!(
            errors_of(row(&reply, 10)),
            [("surname".to_owned(), "is empty".to_owned())]
        );
    }
    assert_eq!(north_user_count(&app).await, 0);
    assert_no_group(&app, "10E").await;
}

/// A class list with one good row at each end and three bad ones between.
const WITH_ERRORS: &str = "First name,Surname,Email\n\
    Ada,Lovelace,ada@north.example\n\
    Alan,,alan@north.example\n\
    Grace,Hopper,grace@north\n\
    Augusta,Byron,ADA@north.example\n\
    Katherine,Johnson,kj@north.example\n";

/// Asserts the three bad rows of `WITH_ERRORS` are reported by row and field, with nothing
/// created for them.
#[track_caller]
fn assert_error_rows(reply: &Reply) {
    for number in [3, 4, 5] {
        let bad = row(reply, number);
        assert_eq!(bad["action"], "error", "{bad}");
        assert!(
            bad.get("id").is_none() && bad.get("password").is_none(),
            "{bad}"
        );
    }
    assert_eq!(
        errors_of(row(reply, 3)),
        [("surname".to_owned(), "is empty".to_owned())]
    );
    assert_eq!(
        errors_of(row(reply, 4)),
        [(
            "email".to_owned(),
            "`grace@north` is not an email address".to_owned()
        )]
    );
    assert_eq!(
        errors_of(row(reply, 5)),
        [("email".to_owned(), "the same as row 2".to_owned())]
    );
}

#[tokio::test]
async fn rows_with_errors_block_the_whole_import_and_nothing_is_written() {
    let app = TestApp::start().await;
    let totals = north_totals(&app).await;

    let reply = app.paste("8E", "", WITH_ERRORS).await;
    assert_eq!(
        reply.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        reply.body
    );
    assert_eq!(reply.body["committed"], false);
    assert_eq!(reply.body["dryRun"], false);
    assert_eq!(counts(&reply), (2, 0, 3));
    assert_error_rows(&reply);
    for good in [2, 6] {
        assert_eq!(row(&reply, good)["action"], "create");
        assert!(row(&reply, good).get("password").is_none());
    }

    assert_eq!(north_totals(&app).await, totals);
    assert_no_group(&app, "8E").await;
}

#[tokio::test]
async fn partial_creates_the_valid_rows_and_reports_the_others() {
    let app = TestApp::start().await;

    let reply = app.paste("8E", "partial=true", WITH_ERRORS).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    assert_eq!(reply.body["committed"], true);
    assert_eq!(counts(&reply), (2, 0, 3));
    assert_error_rows(&reply);
    assert_eq!(row(&reply, 2)["action"], "created");
    assert_eq!(row(&reply, 6)["action"], "created");
    assert!(row(&reply, 6)["password"].is_string());

    assert_eq!(north_user_count(&app).await, 2);
    assert_eq!(students_of(&app, "8E").await, ["johnsonk", "lovelacea"]);
}

#[tokio::test]
async fn a_row_beyond_six_columns_without_a_header_refuses_the_paste_even_with_partial() {
    let app = TestApp::start().await;
    let text = "Ada,Lovelace,ada@north.example,,,,\n\
                \n\
                Alan,Turing,alan@north.example,aturing,8,1002,Form 8T\n";

    for query in ["", "partial=true"] {
        let reply = app.paste("8T", query, text).await;
        let detail = api_error(&reply, 422);
        assert!(
            detail.starts_with(&format!(
                "row {}: column 7 holds `Form 8T`",
                line_of(text, "Turing")
            )),
            "{detail}"
        );
        assert!(reply.body.get("committed").is_none(), "{}", reply.body);
    }
    assert_eq!(north_totals(&app).await, (0, 0));
    assert_no_group(&app, "8T").await;
}

/// Pastes `text` into `group`, asserting it committed; returns the reply.
async fn commit(app: &TestApp, group: &str, text: &str) -> Reply {
    let reply = app.paste(group, "", text).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    assert_eq!(reply.body["committed"], true, "{}", reply.body);
    reply
}

/// `(userName, id)` of every row.
fn ids_of(reply: &Reply) -> Vec<(String, String)> {
    rows(reply)
        .iter()
        .map(|r| {
            (
                r["userName"].as_str().unwrap_or_default().to_owned(),
                r["id"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// Asserts every row matched an existing account for this reason.
#[track_caller]
fn assert_all_exist(reply: &Reply, why: &str) {
    for r in rows(reply) {
        assert_eq!(r["action"], "exists", "{r}");
        let note = r["note"].as_str().unwrap_or_default();
        assert!(note.contains(&format!("({why})")), "{r}");
        assert!(r.get("password").is_none(), "{r}");
    }
}

#[tokio::test]
async fn pasting_the_same_students_again_matches_them_by_student_number() {
    let app = TestApp::start().await;
    let first = commit(&app, "7A", EXCEL_COPY).await;
    assert_eq!(counts(&first), (5, 0, 0));

    let again = commit(&app, "7A", EXCEL_COPY).await;
    assert_eq!(counts(&again), (0, 5, 0));
    assert_all_exist(&again, "student number");
    assert_eq!(ids_of(&again), ids_of(&first));
    assert!(
        rows(&again)
            .iter()
            .all(|r| !r["note"].as_str().unwrap().contains("joins")),
        "{}",
        again.body
    );
    assert_eq!(north_user_count(&app).await, 5);
    assert_eq!(students_of(&app, "7A").await.len(), 5);

    // The student number is the strongest evidence: a changed email does not make a new account.
    let moved = EXCEL_COPY.replace("ada.lovelace@north.example", "ada@home.example");
    let reply = commit(&app, "7A", &moved).await;
    assert_eq!(counts(&reply), (0, 5, 0));
    assert_eq!(north_user_count(&app).await, 5);
}

#[tokio::test]
async fn without_student_numbers_students_are_matched_by_email() {
    let app = TestApp::start().await;
    let text = "First name\tSurname\tEmail\n\
                Ada\tLovelace\tada@north.example\n\
                Alan\tTuring\talan@north.example\n";
    let first = commit(&app, "8B", text).await;

    // Retyped names and an upper-case address: still the same two people.
    let retyped = "First name\tSurname\tEmail\n\
                   Augusta Ada\tKing\tADA@North.example\n\
                   Alan M.\tTuring\talan@north.example\n";
    let again = commit(&app, "8B", retyped).await;
    assert_eq!(counts(&again), (0, 2, 0));
    assert_all_exist(&again, "email");
    assert_eq!(ids_of(&again), ids_of(&first));
    assert_eq!(north_user_count(&app).await, 2);
}

#[tokio::test]
async fn with_names_only_students_are_matched_within_the_group() {
    let app = TestApp::start().await;
    let text = "Marie\tCurie\nPierre\tCurie\n";
    let first = commit(&app, "8C", text).await;
    assert_eq!(
        created_rows(&first)
            .into_iter()
            .map(|(n, _)| n)
            .collect::<Vec<_>>(),
        ["curiem", "curiep"]
    );

    let again = commit(&app, "8C", "marie\tcurie\nPierre\tCurie\n").await;
    assert_eq!(counts(&again), (0, 2, 0));
    assert_all_exist(&again, "name in this group");
    assert_eq!(ids_of(&again), ids_of(&first));
    assert_eq!(north_user_count(&app).await, 2);

    // A name alone is no evidence outside the group: another group gets new accounts.
    let other = commit(&app, "8D", text).await;
    assert_eq!(counts(&other), (2, 0, 0));
    let names: Vec<String> = created_rows(&other).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["curiem2", "curiep2"]);
    assert_eq!(north_user_count(&app).await, 4);
}

#[tokio::test]
async fn a_student_matched_from_another_group_joins_the_existing_group() {
    let app = TestApp::start().await;
    let first = commit(&app, "7A", EXCEL_COPY).await;
    create_group(&app, "Chess club").await;

    let text = "First name\tSurname\tUPN\n\
                Ada\tLovelace\tA100000000001\n\
                Alan\tTuring\t\n";
    let reply = commit(&app, "Chess club", text).await;
    assert_eq!(reply.body["group"]["new"], false);
    assert_eq!(counts(&reply), (1, 1, 0));
    let ada = row(&reply, 2);
    assert_eq!(ada["action"], "exists");
    assert_eq!(ada["id"], row(&first, 2)["id"]);
    let note = ada["note"].as_str().unwrap();
    assert!(note.contains("(student number)"), "{note}");
    assert!(note.contains("joins the group"), "{note}");
    assert_eq!(row(&reply, 3)["action"], "created");

    assert_eq!(north_user_count(&app).await, 6);
    assert_eq!(
        students_of(&app, "Chess club").await,
        ["lovelacea", "turinga"]
    );
    assert_eq!(students_of(&app, "7A").await.len(), 5);

    // Pasting it again: Ada is now a member, so nothing joins.
    let again = commit(&app, "Chess club", text).await;
    assert_eq!(counts(&again), (0, 2, 0));
    assert!(
        !row(&again, 2)["note"].as_str().unwrap().contains("joins"),
        "{}",
        again.body
    );
}

/// `(code, implied)` of a group's courses, sorted by code.
fn courses_of(group: &Value) -> Vec<(String, bool)> {
    let mut courses: Vec<(String, bool)> = group["courses"]
        .as_array()
        .unwrap_or_else(|| panic!("no courses: {group}"))
        .iter()
        .map(|c| {
            (
                c["code"].as_str().unwrap().to_owned(),
                c["implied"].as_bool().unwrap(),
            )
        })
        .collect();
    courses.sort();
    courses
}

const MATHS_CLASS: &str = "First name\tSurname\n\
    Emmy\tNoether\n\
    Srinivasa\tRamanujan\n";

#[tokio::test]
async fn a_new_group_gets_its_courses_with_implied_modules_and_its_tutor() {
    let app = TestApp::start().await;
    let tutor = create_person(
        &app,
        json!({ "firstName": "Marie", "surname": "Curie", "role": "tutor" }),
    )
    .await;
    assert_eq!(tutor, "curiem");

    let query = format!(
        "course={}&tutor={tutor}",
        url_encode("Mathematics Year 1 (AS)")
    );
    let reply = app.paste("12A/Ma1", &query, MATHS_CLASS).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    assert_eq!(reply.body["group"]["new"], true);
    assert_eq!(reply.body["group"]["tutors"], json!([tutor]));
    let want = [
        ("MA-Y1-AS".to_owned(), false),
        ("MA-Y1-MECH".to_owned(), true),
        ("MA-Y1-STAT".to_owned(), true),
    ];
    assert_eq!(courses_of(&reply.body["group"]), want);

    let view = group(&app, "12A/Ma1").await;
    assert_eq!(view.status, StatusCode::OK, "{}", view.body);
    assert_eq!(view.body["name"], "12A/Ma1");
    assert_eq!(view.body["id"], reply.body["group"]["id"]);
    assert_eq!(courses_of(&view.body), want);
    let titles: Vec<&str> = view.body["courses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["title"].as_str().unwrap())
        .collect();
    assert!(titles.contains(&"Mathematics Year 1 (AS)"), "{titles:?}");
    assert_eq!(member_names(&view.body, "tutors"), [tutor]);
    assert_eq!(
        member_names(&view.body, "students"),
        ["noethere", "ramanujans"]
    );
}

#[tokio::test]
async fn bad_courses_and_tutors_refuse_the_import_and_write_nothing() {
    let app = TestApp::start().await;
    let student = create_person(&app, json!({ "firstName": "Ada", "surname": "Lovelace" })).await;
    let tutor = create_person(
        &app,
        json!({ "firstName": "Marie", "surname": "Curie", "role": "tutor" }),
    )
    .await;
    let totals = north_totals(&app).await;
    assert_eq!(totals, (2, 0));

    let unknown = format!(
        "course={}&course=PH-Y1&tutor={tutor}",
        url_encode("Further Mathematics")
    );
    let detail = api_error(&app.paste("12A/Ma1", &unknown, MATHS_CLASS).await, 422);
    assert!(detail.contains("`Further Mathematics`"), "{detail}");
    assert!(!detail.contains("PH-Y1"), "{detail}");

    let not_a_tutor = format!("course=PH-Y1&tutor={student}");
    let detail = api_error(&app.paste("12A/Ma1", &not_a_tutor, MATHS_CLASS).await, 422);
    assert!(detail.contains(&format!("`{student}`")), "{detail}");
    assert!(detail.contains("tutor role"), "{detail}");

    let nobody = "course=PH-Y1&tutor=nosuchtutor";
    let detail = api_error(&app.paste("12A/Ma1", nobody, MATHS_CLASS).await, 422);
    assert!(detail.contains("`nosuchtutor`"), "{detail}");

    assert_eq!(north_totals(&app).await, totals);
    assert_no_group(&app, "12A/Ma1").await;

    // A group that exists already takes no courses or tutors from an import.
    create_group(&app, "12B/Ph1").await;
    for query in ["course=PH-Y1".to_owned(), format!("tutor={tutor}")] {
        let detail = api_error(&app.paste("12B/Ph1", &query, MATHS_CLASS).await, 422);
        assert!(detail.contains("already exists"), "{detail}");
    }
    assert_eq!(north_totals(&app).await, (2, 1));
    let view = group(&app, "12B/Ph1").await;
    assert_eq!(view.body["courses"], json!([]), "{}", view.body);
    assert_eq!(view.body["tutors"], json!([]), "{}", view.body);
    assert_eq!(view.body["students"], json!([]), "{}", view.body);
}

#[tokio::test]
async fn a_dry_run_shows_the_usernames_it_would_give_and_writes_nothing() {
    let app = TestApp::start().await;
    // An existing Smith already holds `smithj`.
    let existing = create_person(&app, json!({ "firstName": "Jo", "surname": "Smith" })).await;
    assert_eq!(existing, "smithj");
    let totals = north_totals(&app).await;
    let text = "John\tSmith\nJane\tSmith\nAda\tLovelace\n";
    let query = "dry_run=true&course=PH-Y1";

    let preview = app.paste("10P/Ph1", query, text).await;
    assert_eq!(preview.status, StatusCode::OK, "{}", preview.body);
    assert_eq!(preview.body["dryRun"], true);
    assert_eq!(preview.body["committed"], false);
    assert_eq!(preview.body["group"]["new"], true);
    assert!(
        preview.body["group"].get("id").is_none(),
        "{}",
        preview.body
    );
    assert_eq!(
        courses_of(&preview.body["group"]),
        [("PH-Y1".to_owned(), false)]
    );
    let want = ["smithj2", "smithj3", "lovelacea"];
    let previewed: Vec<String> = summary(&preview).into_iter().map(|r| r.2).collect();
    assert_eq!(previewed, want);
    for r in rows(&preview) {
        assert_eq!(r["action"], "create", "{r}");
        assert!(r.get("id").is_none() && r.get("password").is_none(), "{r}");
    }

    assert_eq!(north_totals(&app).await, totals);
    assert_no_group(&app, "10P/Ph1").await;

    // The same paste committed gives the usernames the preview showed.
    let reply = commit(&app, "10P/Ph1", text).await;
    let names: Vec<String> = created_rows(&reply).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, want);
}

// --- The `rollcall import` command (the real binary). ---

/// Writes a class list into the setup's directory, returning its path as a string.
fn write_list(setup: &Setup, name: &str, text: &str) -> String {
    let path = setup.dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// The table line of a row printed by `rollcall import`.
#[track_caller]
fn table_line<'a>(stdout: &'a str, user_name: &str) -> &'a str {
    stdout
        .lines()
        .find(|l| l.split_whitespace().nth(2) == Some(user_name))
        .unwrap_or_else(|| panic!("no row for {user_name}: {stdout}"))
}

/// `(username, password)` of each data row of a slips CSV (BOM, header, CRLF).
fn slips_in(text: &str) -> Vec<(String, String)> {
    let text = text.strip_prefix('\u{feff}').expect("a byte-order mark");
    let mut lines = text.split("\r\n").filter(|l| !l.is_empty());
    assert_eq!(
        lines.next(),
        Some("school,group,first name,surname,username,password,login url")
    );
    lines
        .map(|line| {
            let cells: Vec<&str> = line.split(',').collect();
            assert_eq!(cells.len(), 7, "{line}");
            assert_eq!(cells[0], "North Academy", "{line}");
            assert_eq!(cells[1], "7X", "{line}");
            (cells[4].to_owned(), cells[5].to_owned())
        })
        .collect()
}

/// An admin API request to a running daemon.
async fn daemon_api(root: &str, token: &str, path: &str) -> (StatusCode, Value) {
    let reply = api_request(
        &reqwest::Client::new(),
        root,
        Some(token),
        Method::GET,
        path,
        None,
    )
    .await;
    (reply.status, reply.body)
}

const CLI_LIST: &str = "First name\tSurname\tEmail\tYear\tUPN\r\n\
    Ada\tLovelace\tada@north.example\t7\tU001\r\n\
    Alan\tTuring\talan@north.example\t7\tU002\t\t\r\n\
    Grace\tHopper\tgrace@north.example\t7\tU003\r\n";

const CLI_NAMES: [&str; 3] = ["lovelacea", "turinga", "hopperg"];

#[tokio::test]
async fn the_import_command_previews_creates_writes_private_slips_and_refuses_errors() {
    let setup = Setup::new();
    let admin_token = setup.create_admin("office");
    let list = write_list(&setup, "7x.txt", CLI_LIST);

    // A dry run prints the table and writes nothing.
    let stdout = setup.ok(&[
        "import",
        "--school",
        "north",
        "--group",
        "7X",
        "--dry-run",
        &list,
    ]);
    assert!(stdout.contains("group 7X (new)"), "{stdout}");
    for name in CLI_NAMES {
        let line = table_line(&stdout, name);
        assert_eq!(line.split_whitespace().nth(1), Some("create"), "{line}");
    }
    assert!(
        stdout.contains("3 to create, 0 existing, 0 with errors"),
        "{stdout}"
    );
    assert!(stdout.contains("dry run: nothing was written"), "{stdout}");

    // The import proper: the group is still new (the dry run made nothing), passwords shown.
    let slips = setup.dir.path().join("OUT.csv");
    let stdout = setup.ok(&[
        "import",
        "--school",
        "north",
        "--group",
        "7X",
        "--slips",
        slips.to_str().unwrap(),
        &list,
    ]);
    assert!(stdout.contains("group 7X (new)"), "{stdout}");
    assert!(stdout.contains("3 slips written to"), "{stdout}");
    assert!(stdout.trim_end().ends_with("committed"), "{stdout}");
    let mode = std::fs::metadata(&slips).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    let written = slips_in(&std::fs::read_to_string(&slips).unwrap());
    let names: Vec<&str> = written.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, CLI_NAMES);
    for (name, password) in &written {
        let line = table_line(&stdout, name);
        assert_eq!(line.split_whitespace().nth(1), Some("created"), "{line}");
        assert!(line.trim_end().ends_with(password.as_str()), "{line}");
    }

    // A list with an error row: refused, pointing at --partial; nothing written.
    let bad = write_list(
        &setup,
        "7y.csv",
        "First name,Surname,Email\nKatherine,Johnson,kj@north.example\nDorothy,Vaughan,dv@\n",
    );
    let output = setup.run(&["import", "--school", "north", "--group", "7Y", &bad]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--partial"), "{stderr}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("dv@"), "{stdout}");

    // The daemon, started afterwards, sees exactly what was committed.
    let scim_token = setup.create_token("north", "entra");
    let daemon = setup.serve(&[]).await;
    let http = reqwest::Client::new();
    for (name, password) in &written {
        let reply: Value = http
            .post(format!("{}/api/v1/auth/login", daemon.root))
            .json(&json!({ "school": "north", "username": name, "password": password }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            reply["status"], "password_change_required",
            "{name}: {reply}"
        );
    }
    let (status, view) = daemon_api(&daemon.root, &admin_token, "/schools/north/groups/7X").await;
    assert_eq!(status, StatusCode::OK, "{view}");
    let mut want = CLI_NAMES.map(str::to_owned);
    want.sort();
    assert_eq!(member_names(&view, "students"), want);
    let (status, _) = daemon_api(&daemon.root, &admin_token, "/schools/north/groups/7Y").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let users: Value = http
        .get(daemon.scim("/Users"))
        .bearer_auth(&scim_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(users["totalResults"], 3, "{users}");
}

#[tokio::test]
async fn the_import_command_reads_standard_input() {
    let setup = Setup::new();
    let admin_token = setup.create_admin("office");
    let mut child = setup
        .command(&["import", "--school", "north", "--group", "8Q", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"Ada\tLovelace\tada@north.example\nAlan\tTuring")
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    for name in ["lovelacea", "turinga"] {
        let line = table_line(&stdout, name);
        assert_eq!(line.split_whitespace().nth(1), Some("created"), "{line}");
    }

    let daemon = setup.serve(&[]).await;
    let (status, view) = daemon_api(&daemon.root, &admin_token, "/schools/north/groups/8Q").await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(member_names(&view, "students"), ["lovelacea", "turinga"]);
}

#[test]
fn a_slips_file_that_already_exists_is_made_private() {
    // Last term's export, left readable by everyone, is overwritten with new passwords.
    let setup = Setup::new();
    let slips = setup.dir.path().join("OUT.csv");
    std::fs::write(&slips, "old slips\n").unwrap();
    std::fs::set_permissions(&slips, std::fs::Permissions::from_mode(0o644)).unwrap();
    let list = write_list(&setup, "7x.txt", CLI_LIST);

    setup.ok(&[
        "import",
        "--school",
        "north",
        "--group",
        "7X",
        "--slips",
        slips.to_str().unwrap(),
        &list,
    ]);
    assert_eq!(slips_in(&std::fs::read_to_string(&slips).unwrap()).len(), 3);
    let mode = std::fs::metadata(&slips).unwrap().permissions().mode();
    assert_eq!(
        mode & 0o777,
        0o600,
        "the slips file holds first passwords but is left mode {:o}",
        mode & 0o777
    );
}

#[test]
fn files_saved_by_excel_as_unicode_text_or_windows_csv_are_read() {
    let setup = Setup::new();
    let text = "First name\tSurname\r\nZoë\tÓ Súilleabháin\r\nRenée\tMüller\r\n";
    // "Unicode Text": UTF-16LE with a byte-order mark.
    let utf16: Vec<u8> = [0xFF, 0xFE]
        .into_iter()
        .chain(text.encode_utf16().flat_map(u16::to_le_bytes))
        .collect();
    // "CSV (Comma delimited)" on Windows: Windows-1252, one byte per character here.
    let cp1252: Vec<u8> = text
        .replace('\t', ",")
        .chars()
        .map(|c| u8::try_from(u32::from(c)).unwrap())
        .collect();
    for (name, bytes, encoding) in [
        ("unicode.txt", utf16, "UTF-16LE"),
        ("windows.csv", cp1252, "windows-1252"),
    ] {
        let path = setup.dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let output = setup
            .command(&[
                "import",
                "--school",
                "north",
                "--group",
                "9E",
                "--dry-run",
                path.to_str().unwrap(),
            ])
            .output()
            .unwrap();
        let stdout = String::from_utf8(output.stdout).unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{stderr}");
        assert!(stderr.contains(encoding), "{name}: {stderr}");
        assert!(
            table_line(&stdout, "osuilleabhainz").contains("Zoë Ó Súilleabháin"),
            "{stdout}"
        );
        assert!(
            table_line(&stdout, "mullerr").contains("Renée Müller"),
            "{stdout}"
        );
    }
}

#[tokio::test]
async fn api_mistakes_get_json_errors_that_say_what_is_wrong() {
    let app = TestApp::start().await;
    let cases: [(Method, &str, Option<ApiBody>, u16, &str); 6] = [
        (
            Method::GET,
            "/schools/north/nothing",
            None,
            404,
            "not_found",
        ),
        (
            Method::DELETE,
            "/schools/north/groups",
            None,
            405,
            "method_not_allowed",
        ),
        (
            Method::POST,
            "/schools/north/groups",
            Some(ApiBody::Text("{not json")),
            400,
            "invalid",
        ),
        (
            Method::POST,
            "/schools/north/groups",
            Some(ApiBody::Json(&json!({ "name": "7A", "colour": "red" }))),
            400,
            "invalid",
        ),
        (
            Method::POST,
            "/schools/north/groups/7A/students:bulk?dryrun=1",
            Some(ApiBody::Text("Ada\tLovelace")),
            400,
            "invalid",
        ),
        (
            Method::POST,
            "/schools/north/slips:collect?format=pdf",
            None,
            400,
            "invalid",
        ),
    ];
    for (method, path, body, status, code) in cases {
        let reply = app.api(method.clone(), path, body).await;
        assert_eq!(reply.status, status, "{method} {path}: {}", reply.body);
        assert_eq!(reply.body["error"], code, "{method} {path}: {}", reply.body);
        assert!(
            !reply.body["detail"].as_str().unwrap_or_default().is_empty(),
            "{method} {path}: {}",
            reply.body
        );
    }
    // None of it wrote anything.
    let groups = app.api(Method::GET, "/schools/north/groups", None).await;
    assert_eq!(groups.body["groups"], json!([]), "{}", groups.body);
}
