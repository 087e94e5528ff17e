//! OneRoster 1.1 CSV import: a generated export of a school (300 students, 20 teachers, their
//! classes and enrollments) imported through a `kind = "oneroster"` source, as a folder and as
//! a zip file; a delta; leavers and the deletion threshold; broken exports refused with every
//! problem's file, line and column and nothing changed; the `import-oneroster` command; and the
//! daemon's schedule.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use rollcall::scim::schema::{Kind, SCHOOL_GROUP, SCHOOL_USER};
use rollcall::store::{Record, Scope};
use rollcall::sync::oneroster::{Error as RosterError, Problem};
use rollcall::sync::{self, Mode, Outcome, Report};
use serde_json::Value;

use crate::cli::Setup;
use crate::harness::{TestApp, config_text, config_text_with_store, test_store};
use crate::postgres::TestDatabase;
use crate::sync::with_source;

const SOURCE: &str = "sis";
const STUDENTS: usize = 300;
const TEACHERS: usize = 20;
const MODIFIED: &str = "2025-01-15T08:30:00.000Z";

// ---------------------------------------------------------------------------------------------
// The generator.

#[derive(Debug, Clone)]
struct User {
    id: String,
    role: &'static str,
    username: String,
    given: String,
    family: String,
    identifier: String,
    email: String,
    grade: String,
    enabled: bool,
    /// `tobedeleted`, or empty.
    status: &'static str,
    agents: String,
}

#[derive(Debug, Clone)]
struct Course {
    id: &'static str,
    title: &'static str,
    code: &'static str,
}

#[derive(Debug, Clone)]
struct Class {
    id: String,
    title: String,
    course: &'static str,
    kind: &'static str,
    deleted: bool,
}

#[derive(Debug, Clone)]
struct Enrollment {
    id: String,
    class: String,
    user: String,
    role: &'static str,
    begin: &'static str,
    end: &'static str,
    status: &'static str,
}

impl Enrollment {
    /// An active student enrollment without dates.
    fn student(id: String, class: &str, user: &str) -> Enrollment {
        Enrollment {
            id,
            class: class.into(),
            user: user.into(),
            role: "student",
            begin: "",
            end: "",
            status: "",
        }
    }

    /// Whether it makes its person a member today.
    fn current(&self) -> bool {
        let today = time::OffsetDateTime::now_utc().date().to_string();
        matches!(self.role, "student" | "teacher")
            && self.status != "tobedeleted"
            && (self.begin.is_empty() || self.begin <= today.as_str())
            && (self.end.is_empty() || today.as_str() < self.end)
    }
}

/// A school's roster, generated the same way every time.
#[derive(Debug, Clone)]
struct Roster {
    users: Vec<User>,
    courses: Vec<Course>,
    classes: Vec<Class>,
    enrollments: Vec<Enrollment>,
}

const GIVEN: [&str; 13] = [
    "Ann", "Bob", "Cy", "Dee", "Eli", "Fay", "Gus", "Hal", "Ida", "Jo", "Kit", "Lou", "Mo",
];
const FAMILY: [&str; 11] = [
    "Lee", "Ray", "Orr", "Shaw", "Nash", "Ford", "Kemp", "Moss", "Vance", "Wren", "Young",
];

impl Roster {
    fn generate() -> Roster {
        let courses = vec![
            Course {
                id: "crs-ma",
                title: "Mathematics Year 1 (AS)",
                code: "MA-Y1-AS",
            },
            Course {
                id: "crs-ph",
                title: "Physics Year 1",
                code: "PH-Y1",
            },
            Course {
                id: "crs-hr",
                title: "Homeroom",
                code: "HR",
            },
            Course {
                id: "crs-la",
                title: "Latin",
                code: "LA-11",
            },
        ];
        let mut users = Vec::new();
        for i in 0..STUDENTS {
            let year = 7 + i % 7;
            users.push(User {
                id: format!("stu-{i:04}"),
                role: "student",
                username: format!("s{i:04}"),
                given: GIVEN[i % GIVEN.len()].into(),
                family: if i == 3 {
                    "O'Brien, Jr".into()
                } else {
                    FAMILY[(i / GIVEN.len()) % FAMILY.len()].into()
                },
                identifier: format!("S{i:04}"),
                email: if i % 10 == 9 {
                    String::new()
                } else {
                    format!("s{i:04}@north.example")
                },
                grade: format!("{year:02}"),
                enabled: i % 61 != 60,
                status: "",
                agents: String::new(),
            });
        }
        for j in 0..TEACHERS {
            users.push(User {
                id: format!("tch-{j:02}"),
                role: "teacher",
                username: format!("t{j:02}"),
                given: GIVEN[(j + 5) % GIVEN.len()].into(),
                family: FAMILY[(j + 3) % FAMILY.len()].into(),
                identifier: String::new(),
                email: format!("t{j:02}@north.example"),
                grade: String::new(),
                enabled: true,
                status: "",
                agents: String::new(),
            });
        }
        for (k, role) in [
            "parent",
            "parent",
            "parent",
            "aide",
            "aide",
            "administrator",
        ]
        .into_iter()
        .enumerate()
        {
            users.push(User {
                id: format!("oth-{k}"),
                role,
                username: format!("o{k}"),
                given: "Other".into(),
                family: FAMILY[k].into(),
                identifier: String::new(),
                email: String::new(),
                grade: String::new(),
                enabled: true,
                status: "",
                agents: if role == "parent" {
                    format!("stu-{k:04}")
                } else {
                    String::new()
                },
            });
        }
        let mut classes = Vec::new();
        for year in 7..=13 {
            for set in ['A', 'B'] {
                let mut add = |kind: &str, title: String, course, class_kind| {
                    classes.push(Class {
                        id: format!("cls-{year}{set}-{kind}"),
                        title,
                        course,
                        kind: class_kind,
                        deleted: false,
                    })
                };
                add("ph", format!("{year}{set}/Ph1"), "crs-ph", "scheduled");
                if year >= 12 {
                    add("ma", format!("{year}{set}/Ma1"), "crs-ma", "scheduled");
                }
                add("hr", format!("Tutor {year}{set}"), "crs-hr", "homeroom");
            }
        }
        classes.push(Class {
            id: "cls-11A-la".into(),
            title: "11A/La1".into(),
            course: "crs-la",
            kind: "scheduled",
            deleted: false,
        });
        classes.push(Class {
            id: "cls-old".into(),
            title: "10A/Old1".into(),
            course: "crs-ph",
            kind: "scheduled",
            deleted: true,
        });
        let mut enrollments = Vec::new();
        let mut enrol = |class: &str, user: &str, role, begin, end| {
            enrollments.push(Enrollment {
                id: format!("enr-{:05}", enrollments.len()),
                class: class.into(),
                user: user.into(),
                role,
                begin,
                end,
                status: "",
            })
        };
        for i in 0..STUDENTS {
            let year = 7 + i % 7;
            let set = if (i / 7) % 2 == 0 { 'A' } else { 'B' };
            let user = format!("stu-{i:04}");
            let (begin, end) = match i {
                _ if i % 37 == 5 => ("2000-01-01", "2001-01-01"),
                _ if i % 41 == 7 => ("2999-01-01", ""),
                _ => ("", ""),
            };
            enrol(&format!("cls-{year}{set}-ph"), &user, "student", begin, end);
            if year >= 12 {
                enrol(&format!("cls-{year}{set}-ma"), &user, "student", "", "");
            }
            enrol(&format!("cls-{year}{set}-hr"), &user, "student", "", "");
            if year == 11 && set == 'A' {
                enrol("cls-11A-la", &user, "student", "", "");
            }
            if i < 4 {
                enrol("cls-old", &user, "student", "", "");
            }
        }
        for (k, class) in classes.iter().enumerate() {
            let teacher = format!("tch-{:02}", k % TEACHERS);
            enrol(&class.id, &teacher, "teacher", "", "");
        }
        enrol("cls-12A-ma", "oth-5", "administrator", "", "");
        Roster {
            users,
            courses,
            classes,
            enrollments,
        }
    }

    fn user(&self, id: &str) -> &User {
        self.users.iter().find(|u| u.id == id).unwrap()
    }

    fn user_mut(&mut self, id: &str) -> &mut User {
        self.users.iter_mut().find(|u| u.id == id).unwrap()
    }

    /// The people rollcall creates: students and teachers, enabled and not to be deleted.
    fn accounts(&self) -> Vec<&User> {
        self.users
            .iter()
            .filter(|u| matches!(u.role, "student" | "teacher"))
            .filter(|u| u.enabled && u.status != "tobedeleted")
            .collect()
    }

    /// The teaching groups rollcall creates (by title) with their members' sourcedIds: classes
    /// whose title looks like `12A/…` and whose course is in the catalogue, with the people
    /// currently enrolled who have accounts.
    fn groups(&self) -> BTreeMap<String, BTreeSet<String>> {
        let accounts: BTreeSet<&str> = self.accounts().iter().map(|u| u.id.as_str()).collect();
        let mut out = BTreeMap::new();
        for class in &self.classes {
            if class.deleted || !class.title.contains('/') || class.course == "crs-la" {
                continue;
            }
            let members = self
                .enrollments
                .iter()
                .filter(|e| e.class == class.id && e.current())
                .filter(|e| accounts.contains(e.user.as_str()))
                .map(|e| e.user.clone())
                .collect();
            out.insert(class.title.clone(), members);
        }
        out
    }

    /// The export's files: a bulk export of everything.
    fn bulk(&self) -> BTreeMap<String, String> {
        let mut files = BTreeMap::new();
        files.insert(
            "manifest.csv".into(),
            manifest(&[
                ("orgs", "bulk"),
                ("users", "bulk"),
                ("courses", "bulk"),
                ("classes", "bulk"),
                ("enrollments", "bulk"),
            ]),
        );
        files.insert(
            "orgs.csv".into(),
            csv(
                &[
                    "sourcedId",
                    "status",
                    "dateLastModified",
                    "name",
                    "type",
                    "identifier",
                    "parentSourcedId",
                ],
                &[
                    ["org-district", "", "", "North Trust", "district", "NT", ""],
                    [
                        "org-north",
                        "",
                        "",
                        "North Academy",
                        "school",
                        "NA",
                        "org-district",
                    ],
                ]
                .map(|row| row.map(str::to_owned)),
            ),
        );
        // users.csv as a Windows spreadsheet saves it: a byte order mark and CRLF.
        let users = csv(
            &USERS_HEADER,
            &self
                .users
                .iter()
                .map(|u| user_row(u, ""))
                .collect::<Vec<_>>(),
        );
        files.insert(
            "users.csv".into(),
            format!("\u{feff}{}", users.replace('\n', "\r\n")),
        );
        files.insert(
            "courses.csv".into(),
            csv(
                &[
                    "sourcedId",
                    "status",
                    "dateLastModified",
                    "schoolYearSourcedId",
                    "title",
                    "courseCode",
                    "grades",
                    "orgSourcedId",
                    "subjects",
                    "subjectCodes",
                ],
                &self
                    .courses
                    .iter()
                    .map(|c| {
                        vec![
                            c.id,
                            "",
                            "",
                            "year-2025",
                            c.title,
                            c.code,
                            "",
                            "org-north",
                            "",
                            "",
                        ]
                        .into_iter()
                        .map(str::to_owned)
                        .collect()
                    })
                    .collect::<Vec<Vec<String>>>(),
            ),
        );
        files.insert(
            "classes.csv".into(),
            csv(
                &CLASSES_HEADER,
                &self
                    .classes
                    .iter()
                    .map(|c| class_row(c, ""))
                    .collect::<Vec<Vec<String>>>(),
            ),
        );
        files.insert(
            "enrollments.csv".into(),
            csv(
                &ENROLLMENTS_HEADER,
                &self
                    .enrollments
                    .iter()
                    .map(|e| enrollment_row(e, ""))
                    .collect::<Vec<_>>(),
            ),
        );
        files
    }
}

fn class_row(c: &Class, modified: &str) -> Vec<String> {
    let status = if c.deleted { "tobedeleted" } else { "" };
    [
        c.id.as_str(),
        status,
        modified,
        &c.title,
        "",
        c.course,
        "",
        c.kind,
        "Room 1",
        "org-north",
        "term-1",
        "",
        "",
        "1, 2",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect()
}

const USERS_HEADER: [&str; 18] = [
    "sourcedId",
    "status",
    "dateLastModified",
    "enabledUser",
    "orgSourcedIds",
    "role",
    "username",
    "userIds",
    "givenName",
    "familyName",
    "middleName",
    "identifier",
    "email",
    "sms",
    "phone",
    "agentSourcedIds",
    "grades",
    "password",
];

const CLASSES_HEADER: [&str; 14] = [
    "sourcedId",
    "status",
    "dateLastModified",
    "title",
    "grades",
    "courseSourcedId",
    "classCode",
    "classType",
    "location",
    "schoolSourcedId",
    "termSourcedIds",
    "subjects",
    "subjectCodes",
    "periods",
];

const ENROLLMENTS_HEADER: [&str; 10] = [
    "sourcedId",
    "status",
    "dateLastModified",
    "classSourcedId",
    "schoolSourcedId",
    "userSourcedId",
    "role",
    "primary",
    "beginDate",
    "endDate",
];

fn user_row(u: &User, modified: &str) -> Vec<String> {
    let status = match (u.status, modified.is_empty()) {
        ("", false) => "active",
        (status, _) => status,
    };
    let enabled = if u.enabled { "true" } else { "false" };
    let user_ids = format!("{{SIS:{}}}", u.username);
    vec![
        u.id.as_str(),
        status,
        modified,
        enabled,
        "org-north",
        u.role,
        &u.username,
        &user_ids,
        &u.given,
        &u.family,
        "",
        &u.identifier,
        &u.email,
        "",
        "",
        &u.agents,
        &u.grade,
        "not-carried",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect()
}

fn enrollment_row(e: &Enrollment, modified: &str) -> Vec<String> {
    let status = match (e.status, modified.is_empty()) {
        ("", false) => "active",
        (status, _) => status,
    };
    let primary = if e.role == "teacher" { "true" } else { "false" };
    vec![
        e.id.as_str(),
        status,
        modified,
        &e.class,
        "org-north",
        &e.user,
        e.role,
        primary,
        e.begin,
        e.end,
    ]
    .into_iter()
    .map(str::to_owned)
    .collect()
}

/// `manifest.csv` with these files (every other one absent).
fn manifest(files: &[(&str, &str)]) -> String {
    let mut rows = vec![
        vec!["manifest.version".to_owned(), "1.0".to_owned()],
        vec!["oneroster.version".to_owned(), "1.1".to_owned()],
    ];
    for name in [
        "academicSessions",
        "categories",
        "classes",
        "classResources",
        "courses",
        "courseResources",
        "demographics",
        "enrollments",
        "lineItems",
        "orgs",
        "resources",
        "results",
        "users",
    ] {
        let mode = files
            .iter()
            .find(|(n, _)| *n == name)
            .map_or("absent", |(_, m)| *m);
        rows.push(vec![format!("file.{name}"), mode.to_owned()]);
    }
    rows.push(vec!["source.systemName".to_owned(), "Test SIS".to_owned()]);
    csv(&["propertyName", "value"], &rows)
}

/// A CSV file: a header and rows, quoted where needed.
fn csv<R: AsRef<[String]>>(header: &[&str], rows: &[R]) -> String {
    let field = |value: &str| {
        if value.contains([',', '"', '\n']) {
            format!("\"{}\"", value.replace('"', "\"\""))
        } else {
            value.to_owned()
        }
    };
    let mut text = header.join(",") + "\n";
    for row in rows {
        let fields: Vec<String> = row.as_ref().iter().map(|v| field(v)).collect();
        text.push_str(&fields.join(","));
        text.push('\n');
    }
    text
}

/// A delta export: these users and enrollments changed.
fn delta(users: &[User], enrollments: &[Enrollment]) -> BTreeMap<String, String> {
    let mut files = BTreeMap::new();
    let mut modes = vec![("enrollments", "delta")];
    if !users.is_empty() {
        modes.push(("users", "delta"));
        let rows: Vec<Vec<String>> = users.iter().map(|u| user_row(u, MODIFIED)).collect();
        files.insert("users.csv".into(), csv(&USERS_HEADER, &rows));
    }
    let rows: Vec<Vec<String>> = enrollments
        .iter()
        .map(|e| enrollment_row(e, MODIFIED))
        .collect();
    files.insert("enrollments.csv".into(), csv(&ENROLLMENTS_HEADER, &rows));
    files.insert("manifest.csv".into(), manifest(&modes));
    files
}

/// Writes an export at `path` as a folder (replacing whatever is there).
fn write_folder(path: &Path, files: &BTreeMap<String, String>) {
    remove(path);
    std::fs::create_dir_all(path).unwrap();
    for (name, text) in files {
        std::fs::write(path.join(name), text).unwrap();
    }
}

/// Writes an export at `path` as a zip file (replacing whatever is there).
fn write_zip(path: &Path, files: &BTreeMap<String, String>) {
    remove(path);
    let mut zip = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, text) in files {
        zip.start_file(name.as_str(), options).unwrap();
        zip.write_all(text.as_bytes()).unwrap();
    }
    zip.finish().unwrap();
}

fn remove(path: &Path) {
    if path.is_dir() {
        std::fs::remove_dir_all(path).unwrap();
    } else if path.exists() {
        std::fs::remove_file(path).unwrap();
    }
}

/// The row starting with `start` again, with its line end.
fn duplicate(text: &str, start: &str) -> String {
    let line = text.lines().find(|line| line.starts_with(start)).unwrap();
    format!("{line}\r\n")
}

/// The line (as a spreadsheet numbers it) of the row starting with `start`.
fn line_of(text: &str, start: &str) -> u64 {
    let index = text
        .lines()
        .position(|line| line.trim_start_matches('\u{feff}').starts_with(start))
        .unwrap_or_else(|| panic!("no line starts with {start}"));
    index as u64 + 1
}

// ---------------------------------------------------------------------------------------------
// The daemon with a OneRoster source.

/// The source's table, reading `path`, with `extra` lines.
fn source_toml(path: &Path, extra: &str) -> String {
    format!(
        r#"
[[schools.sources]]
id = "{SOURCE}"
kind = "oneroster"
path = "{path}"
{extra}

[schools.sources.students]
year_group_pattern = '^0*(?<year>\d+)$'

[schools.sources.groups]
teaching = '^\d+[A-Z]/'
courses_attribute = "course.courseCode"

"#,
        path = path.display(),
    )
}

struct Fixture {
    app: TestApp,
    /// The source reads this path: a folder, or a zip file.
    path: PathBuf,
    _dir: tempfile::TempDir,
}

async fn fixture(extra: &str) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("export");
    let source = source_toml(&path, extra);
    let app = TestApp::start_with(move |text| with_source(text, &source)).await;
    Fixture {
        app,
        path,
        _dir: dir,
    }
}

impl Fixture {
    async fn run(&self, mode: Mode) -> Result<Report, sync::Error> {
        sync::run(&self.app.state.provider, "north", SOURCE, mode, &|_| {}).await
    }

    /// The source's records of a kind by `key` (a top-level attribute).
    async fn owned(&self, kind: Kind, key: &str) -> BTreeMap<String, Record> {
        let scope = Scope {
            school_id: "north".into(),
            source: SOURCE.into(),
        };
        let records = self
            .app
            .state
            .provider
            .store
            .owned(&scope, kind)
            .await
            .unwrap();
        records
            .into_iter()
            .map(|r| (r.data[key].as_str().unwrap().to_owned(), r))
            .collect()
    }

    /// Accounts by anchor (sourcedId).
    async fn accounts(&self) -> BTreeMap<String, Record> {
        self.owned(Kind::User, "externalId").await
    }

    /// Teaching groups by name.
    async fn groups(&self) -> BTreeMap<String, Record> {
        self.owned(Kind::Group, "displayName").await
    }

    /// Each group's members as sourcedIds.
    async fn members(&self) -> BTreeMap<String, BTreeSet<String>> {
        let accounts = self.accounts().await;
        let anchors: BTreeMap<&str, &str> = accounts
            .iter()
            .map(|(anchor, r)| (r.id.as_str(), anchor.as_str()))
            .collect();
        self.groups()
            .await
            .into_iter()
            .map(|(name, group)| {
                let members = group
                    .links
                    .iter()
                    .map(|l| anchors[l.id.as_str()].to_owned())
                    .collect();
                (name, members)
            })
            .collect()
    }

    /// Every record's version: what a run that changes nothing leaves as it is.
    async fn versions(&self) -> Vec<(String, i64)> {
        let mut out: Vec<(String, i64)> = Vec::new();
        for (kind, key) in [(Kind::User, "externalId"), (Kind::Group, "externalId")] {
            out.extend(
                self.owned(kind, key)
                    .await
                    .into_iter()
                    .map(|(k, r)| (k, r.version)),
            );
        }
        out
    }

    async fn stop(self) {
        self.app.stop().await;
    }
}

fn school(record: &Record, name: &str) -> String {
    record.data[SCHOOL_USER][name]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn active(record: &Record) -> bool {
    record.data["active"].as_bool().unwrap()
}

fn courses(group: &Record) -> Vec<(String, bool)> {
    group.data[SCHOOL_GROUP]["courses"]
        .as_array()
        .map(|courses| {
            courses
                .iter()
                .map(|c| {
                    (
                        c["value"].as_str().unwrap().to_owned(),
                        c["implied"].as_bool().unwrap_or(false),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The problems of a refused run, as (file, line, column).
fn locations(error: sync::Error) -> Vec<(String, Option<u64>, Option<String>)> {
    match error {
        sync::Error::OneRoster(RosterError::Refused { problems, .. }) => problems
            .into_iter()
            .map(
                |Problem {
                     file, line, column, ..
                 }| (file, line, column),
            )
            .collect(),
        other => panic!("expected a refused export, got {other}"),
    }
}

fn at(file: &str, line: u64, column: &str) -> (String, Option<u64>, Option<String>) {
    (file.to_owned(), Some(line), Some(column.to_owned()))
}

// ---------------------------------------------------------------------------------------------
// The tests.

#[tokio::test]
async fn a_bulk_export_creates_exactly_the_roster_as_a_folder_or_a_zip() {
    let roster = Roster::generate();
    let fixture = fixture("").await;
    write_folder(&fixture.path, &roster.bulk());

    let report = fixture.run(Mode::Apply).await.unwrap();
    assert_eq!(report.outcome, Outcome::Applied);
    assert!(report.full);
    let expected = roster.accounts();
    let disabled = STUDENTS - expected.iter().filter(|u| u.role == "student").count();
    assert_eq!(disabled, 4, "enabledUser=false");
    assert_eq!(report.read.students, STUDENTS);
    assert_eq!(report.read.tutors, TEACHERS);
    assert_eq!(
        report.counts.create,
        expected.len(),
        "disabled users are not created"
    );
    let groups = roster.groups();
    assert_eq!(groups.len(), 18);
    assert_eq!(report.counts.create_groups, groups.len());
    // The Latin class's course is not in the catalogue: reported, not created.
    assert_eq!(report.counts.skipped, 1, "{:?}", report.plan.skipped);
    assert_eq!(
        report.plan.skipped[0].dn,
        "sourcedId=cls-11A-la,ou=classes,o=oneroster"
    );
    assert!(
        report.plan.skipped[0].reason.contains("LA-11"),
        "{:?}",
        report.plan.skipped
    );

    let accounts = fixture.accounts().await;
    assert_eq!(accounts.len(), expected.len());
    for user in &expected {
        let account = &accounts[&user.id];
        assert_eq!(account.data["name"]["givenName"], user.given.as_str());
        assert_eq!(account.data["name"]["familyName"], user.family.as_str());
        let email = account
            .data
            .get("emails")
            .map(|e| e[0]["value"].as_str().unwrap());
        assert_eq!(email.unwrap_or_default(), user.email);
        assert!(active(account));
        let role = if user.role == "student" {
            "student"
        } else {
            "tutor"
        };
        assert_eq!(school(account, "role"), role);
        assert_eq!(school(account, "studentNumber"), user.identifier);
        // Year groups from grades, `09` read as 9 by the source's pattern.
        let year = user.grade.trim_start_matches('0');
        assert_eq!(school(account, "yearGroup"), year, "{}", user.id);
    }
    assert_eq!(
        accounts["stu-0003"].data["name"]["familyName"],
        "O'Brien, Jr"
    );
    assert!(!accounts.contains_key("stu-0060"), "enabledUser=false");
    assert!(!accounts.contains_key("oth-0"), "a parent is not read");

    let stored = fixture.groups().await;
    assert_eq!(fixture.members().await, groups);
    assert_eq!(
        courses(&stored["12A/Ma1"]),
        [
            ("MA-Y1-AS".to_owned(), false),
            ("MA-Y1-STAT".to_owned(), true),
            ("MA-Y1-MECH".to_owned(), true)
        ]
    );
    assert_eq!(courses(&stored["9B/Ph1"]), [("PH-Y1".to_owned(), false)]);
    assert!(!stored.contains_key("Tutor 9B"), "not a teaching group");
    assert!(!stored.contains_key("10A/Old1"), "a class to be deleted");
    // A teacher is in their classes; an ended enrollment and one yet to begin are not.
    assert!(groups["12A/Ma1"].iter().any(|m| m.starts_with("tch-")));
    let ended = roster
        .enrollments
        .iter()
        .find(|e| !e.end.is_empty())
        .unwrap();
    let title = &roster
        .classes
        .iter()
        .find(|c| c.id == ended.class)
        .unwrap()
        .title;
    assert!(!groups[title].contains(&ended.user));

    let versions = fixture.versions().await;
    let again = fixture.run(Mode::Apply).await.unwrap();
    assert!(again.plan.is_empty(), "{:?}", again.counts);
    assert_eq!(again.counts.skipped, 1);
    assert_eq!(fixture.versions().await, versions, "nothing was written");

    // The same export as a zip file at the same place: nothing to do either.
    write_zip(&fixture.path, &roster.bulk());
    let zipped = fixture.run(Mode::Apply).await.unwrap();
    assert!(zipped.full);
    assert_eq!(zipped.read.students, STUDENTS);
    assert!(zipped.plan.is_empty(), "{:?}", zipped.counts);
    assert_eq!(fixture.versions().await, versions);

    // enabledUser=false for someone with an account: disabled, as in a directory.
    let mut changed = roster.clone();
    changed.user_mut("stu-0001").enabled = false;
    write_zip(&fixture.path, &changed.bulk());
    let report = fixture.run(Mode::Apply).await.unwrap();
    assert_eq!(report.counts.disable, 1, "{:?}", report.counts);
    assert_eq!(
        report.plan.disable[0].details,
        ["disabled in the directory"]
    );
    assert!(!active(&fixture.accounts().await["stu-0001"]));
    fixture.stop().await;
}

#[tokio::test]
async fn a_delta_applies_exactly_what_it_says_and_disables_nobody_else() {
    let mut roster = Roster::generate();
    let fixture = fixture("passwords = false").await;
    write_folder(&fixture.path, &roster.bulk());
    fixture.run(Mode::Apply).await.unwrap();
    let before = fixture.accounts().await;
    let members_before = fixture.members().await;

    // A new student, enrolled in 12A/Ma1; a student leaving 12B/Ma1; a student to be deleted;
    // a teacher renamed.
    let newcomer = User {
        id: "stu-new".into(),
        username: "snew".into(),
        given: "Nia".into(),
        family: "Quill".into(),
        identifier: "S9999".into(),
        email: "nia@north.example".into(),
        grade: "12".into(),
        ..roster.user("stu-0005").clone()
    };
    roster.users.push(newcomer.clone());
    let joins = Enrollment::student("enr-new".into(), "cls-12A-ma", &newcomer.id);
    roster.enrollments.push(joins.clone());
    let leaves = roster
        .enrollments
        .iter_mut()
        .find(|e| e.class == "cls-12B-ma" && e.role == "student")
        .unwrap();
    leaves.status = "tobedeleted";
    let leaves = leaves.clone();
    let deleted = roster.user_mut("stu-0020");
    deleted.status = "tobedeleted";
    let deleted = deleted.clone();
    let renamed = roster.user_mut("tch-03");
    renamed.family = "Renamed".into();
    let renamed = renamed.clone();

    write_folder(
        &fixture.path,
        &delta(
            &[newcomer.clone(), deleted.clone(), renamed.clone()],
            &[joins, leaves.clone()],
        ),
    );
    let report = fixture.run(Mode::Apply).await.unwrap();
    assert!(!report.full, "a delta");
    assert_eq!(report.outcome, Outcome::Applied);
    assert_eq!((report.read.students, report.read.tutors), (2, 1));
    assert_eq!(report.counts.create, 1, "{:?}", report.plan.create);
    assert_eq!(report.counts.update, 1, "{:?}", report.plan.update);
    assert_eq!(report.counts.disable, 1, "{:?}", report.plan.disable);
    assert_eq!(
        report.plan.disable[0].details,
        ["disabled in the directory"]
    );
    assert_eq!(
        report.counts.update_groups, 2,
        "{:?}",
        report.plan.update_groups
    );
    assert_eq!(
        (report.counts.create_groups, report.counts.delete_groups),
        (0, 0)
    );

    let after = fixture.accounts().await;
    assert_eq!(after.len(), before.len() + 1);
    assert_eq!(after["tch-03"].data["name"]["familyName"], "Renamed");
    assert_eq!(
        after["tch-03"].data["userName"],
        before["tch-03"].data["userName"]
    );
    assert!(!active(&after["stu-0020"]));
    for (id, account) in &before {
        if id != "stu-0020" {
            assert!(active(&after[id]), "{id} is still active");
        }
        if !matches!(id.as_str(), "stu-0020" | "tch-03") {
            assert_eq!(after[id].version, account.version, "{id} is untouched");
        }
    }
    let members = fixture.members().await;
    let mut expected = members_before.clone();
    expected
        .get_mut("12A/Ma1")
        .unwrap()
        .insert(newcomer.id.clone());
    expected.get_mut("12B/Ma1").unwrap().remove(&leaves.user);
    assert_eq!(members, expected);

    // The same delta again changes nothing; so does a bulk export of the changed roster.
    let versions = fixture.versions().await;
    let again = fixture.run(Mode::Apply).await.unwrap();
    assert!(again.plan.is_empty(), "{:?}", again.counts);
    write_folder(&fixture.path, &roster.bulk());
    let bulk = fixture.run(Mode::Apply).await.unwrap();
    assert!(bulk.full);
    assert!(bulk.plan.is_empty(), "{:?}", bulk.plan);
    assert_eq!(fixture.versions().await, versions);
    fixture.stop().await;
}

#[tokio::test]
async fn a_sync_tells_the_platform_of_each_students_changed_courses_once() {
    use crate::entitlements::{EVENT, MATHS, change, events_written, received};
    use crate::webhooks::{Mode as Delivery, Receiver, SECRET, secret_dir, until, webhook_toml};
    let receiver = Receiver::start(SECRET, Delivery::Accept).await;
    let (_secrets, secret_file) = secret_dir(SECRET);
    let hook = webhook_toml(
        &receiver,
        &secret_file,
        &format!("events = [\"{EVENT}\"]\n"),
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("export");
    let source = source_toml(&path, "passwords = false");
    let app =
        TestApp::start_with(move |text| format!("{}{hook}", with_source(text, &source))).await;
    let fixture = Fixture {
        app,
        path,
        _dir: dir,
    };
    let mut roster = Roster::generate();
    write_folder(&fixture.path, &roster.bulk());
    fixture.run(Mode::Apply).await.unwrap();
    // Every enrolled student gained their classes' courses: one event each.
    let first = events_written(&fixture.app).await;
    assert!(first > 100, "{first} events");

    // A newcomer enrolled in 12A/Ma1, a student leaving 12B/Ma1 (keeping physics), a teacher
    // renamed: one event for each student, none for the teacher.
    let newcomer = User {
        id: "stu-new".into(),
        username: "snew".into(),
        identifier: "S9999".into(),
        email: "nia@north.example".into(),
        ..roster.user("stu-0005").clone()
    };
    roster.users.push(newcomer.clone());
    let joins = Enrollment::student("enr-new".into(), "cls-12A-ma", &newcomer.id);
    let leaves = roster
        .enrollments
        .iter_mut()
        .find(|e| e.class == "cls-12B-ma" && e.role == "student")
        .unwrap();
    leaves.status = "tobedeleted";
    let leaves = leaves.clone();
    let renamed = roster.user_mut("tch-03");
    renamed.family = "Renamed".into();
    let renamed = renamed.clone();
    write_folder(
        &fixture.path,
        &delta(&[newcomer.clone(), renamed], &[joins, leaves.clone()]),
    );
    let report = fixture.run(Mode::Apply).await.unwrap();
    assert_eq!(report.outcome, Outcome::Applied);
    assert_eq!(events_written(&fixture.app).await, first + 2);
    let accounts = fixture.accounts().await;
    let (newcomer, leaver) = (&accounts["stu-new"].id, &accounts[&leaves.user].id);
    until("the newcomer's and the leaver's events", || async {
        (received(&receiver, newcomer).len() == 1 && received(&receiver, leaver).len() == 2)
            .then_some(())
    })
    .await;
    assert_eq!(received(&receiver, newcomer), [change(&MATHS, &[])]);
    assert_eq!(received(&receiver, leaver)[1], change(&[], &MATHS));

    // The same delta again changes nothing, and tells nothing.
    let again = fixture.run(Mode::Apply).await.unwrap();
    assert!(again.plan.is_empty(), "{:?}", again.counts);
    assert_eq!(events_written(&fixture.app).await, first + 2);
    fixture.stop().await;
}

#[tokio::test]
async fn a_delta_deleting_a_class_deletes_its_group_and_nothing_else() {
    let roster = Roster::generate();
    let fixture = fixture("passwords = false").await;
    write_folder(&fixture.path, &roster.bulk());
    fixture.run(Mode::Apply).await.unwrap();
    let groups = fixture.groups().await;
    assert!(groups.contains_key("12A/Ma1") && groups.contains_key("12B/Ma1"));
    let versions = |accounts: BTreeMap<String, Record>| -> BTreeMap<String, i64> {
        accounts.into_iter().map(|(k, r)| (k, r.version)).collect()
    };
    let accounts = versions(fixture.accounts().await);

    let mut gone = roster
        .classes
        .iter()
        .find(|c| c.id == "cls-12A-ma")
        .unwrap()
        .clone();
    gone.deleted = true;
    let mut files = delta(&[], &[]);
    files.insert(
        "classes.csv".into(),
        csv(&CLASSES_HEADER, &[class_row(&gone, MODIFIED)]),
    );
    files.insert(
        "manifest.csv".into(),
        manifest(&[("classes", "delta"), ("enrollments", "delta")]),
    );
    write_folder(&fixture.path, &files);
    let report = fixture.run(Mode::Apply).await.unwrap();
    assert!(!report.full, "a delta");
    assert_eq!(report.counts.delete_groups, 1, "{:?}", report.plan);
    assert_eq!(report.plan.delete_groups[0].name, "12A/Ma1");
    assert_eq!(
        report.plan.delete_groups[0].details,
        ["deleted in the directory"]
    );
    assert_eq!(report.plan.counts().disable, 0);
    let after = fixture.groups().await;
    assert!(!after.contains_key("12A/Ma1"));
    assert_eq!(after.len(), groups.len() - 1);
    assert!(after.contains_key("12B/Ma1"));
    // Its members are not touched: only the group goes.
    assert_eq!(versions(fixture.accounts().await), accounts);
    // The same delta again has nothing left to delete.
    let again = fixture.run(Mode::Apply).await.unwrap();
    assert!(again.plan.is_empty(), "{:?}", again.plan);
    fixture.stop().await;
}

#[tokio::test]
async fn a_bulk_export_without_some_students_disables_them_and_a_mass_disappearance_is_held() {
    let roster = Roster::generate();
    let fixture = fixture("passwords = false").await;
    write_folder(&fixture.path, &roster.bulk());
    fixture.run(Mode::Apply).await.unwrap();

    // Five leavers: gone from users.csv and enrollments.csv.
    let without = |roster: &Roster, gone: &BTreeSet<String>| {
        let mut out = roster.clone();
        out.users.retain(|u| !gone.contains(&u.id));
        out.enrollments.retain(|e| !gone.contains(&e.user));
        out
    };
    let leavers: BTreeSet<String> = (100..105).map(|i| format!("stu-{i:04}")).collect();
    let smaller = without(&roster, &leavers);
    write_folder(&fixture.path, &smaller.bulk());
    let report = fixture.run(Mode::Apply).await.unwrap();
    assert_eq!(report.outcome, Outcome::Applied);
    assert_eq!(report.counts.disable, 5, "{:?}", report.plan.disable);
    assert!(
        report
            .plan
            .disable
            .iter()
            .all(|c| c.details == ["no longer in the directory"])
    );
    let accounts = fixture.accounts().await;
    for id in &leavers {
        assert!(!active(&accounts[id]), "{id}");
    }
    assert_eq!(fixture.members().await, smaller.groups());

    // A hundred more: held by the threshold, nothing changed until approved.
    let many: BTreeSet<String> = (150..250).map(|i| format!("stu-{i:04}")).collect();
    write_folder(&fixture.path, &without(&smaller, &many).bulk());
    let versions = fixture.versions().await;
    let held = fixture.run(Mode::Apply).await.unwrap();
    assert_eq!(held.outcome, Outcome::Held);
    assert!(held.counts.disable >= 95, "{:?}", held.counts);
    assert!(
        held.held_because
            .as_deref()
            .unwrap()
            .contains("max_disable_count = 50"),
        "{:?}",
        held.held_because
    );
    assert_eq!(fixture.versions().await, versions, "nothing changed");
    let approved = fixture.run(Mode::Approve).await.unwrap();
    assert_eq!(approved.outcome, Outcome::Applied);
    let accounts = fixture.accounts().await;
    assert!(
        many.iter()
            .filter(|id| accounts.contains_key(*id))
            .all(|id| !active(&accounts[id]))
    );
    fixture.stop().await;
}

#[tokio::test]
async fn broken_exports_are_refused_with_every_location_and_nothing_changes() {
    let roster = Roster::generate();
    let fixture = fixture("passwords = false").await;
    let bulk = roster.bulk();
    write_folder(&fixture.path, &bulk);
    fixture.run(Mode::Apply).await.unwrap();
    let versions = fixture.versions().await;

    let edit = |name: &str, change: &dyn Fn(&str) -> String| {
        let mut files = bulk.clone();
        let text = files[name].clone();
        files.insert(name.to_owned(), change(&text));
        files
    };
    let users = &bulk["users.csv"];
    let enrollments = &bulk["enrollments.csv"];
    let shared = &fixture;
    let refused = |files: BTreeMap<String, String>, zip: bool| {
        if zip {
            write_zip(&shared.path, &files);
        } else {
            write_folder(&shared.path, &files);
        }
        async move { shared.run(Mode::Apply).await.unwrap_err() }
    };

    // A required column missing.
    let files = edit("users.csv", &|t| t.replacen(",username,", ",user_name,", 1));
    assert_eq!(
        locations(refused(files, false).await),
        [at("users.csv", 1, "username")]
    );
    // A bad date, a bad enumeration value and a bad boolean; a duplicate sourcedId; an
    // enrollment in a class the export does not have. Every one, together, in order.
    let enrolled = line_of(enrollments, "enr-00010,");
    let unknown = line_of(enrollments, "enr-00020,");
    let files = edit("enrollments.csv", &|t| {
        let mut text = String::new();
        for line in t.lines() {
            let mut fields: Vec<&str> = line.split(',').collect();
            if line.starts_with("enr-00010,") {
                fields[8] = "2024-02-30";
            } else if line.starts_with("enr-00020,") {
                fields[3] = "cls-nowhere";
            }
            text.push_str(&fields.join(","));
            text.push('\n');
        }
        text
    });
    let files = {
        let mut files = files;
        let text = files["users.csv"]
            .replacen(
                "stu-0007,,,true,org-north,student",
                "stu-0007,,,true,org-north,Student",
                1,
            )
            .replacen("stu-0008,,,true,", "stu-0008,,,yes,", 1)
            + &duplicate(users, "stu-0002,");
        files.insert("users.csv".into(), text);
        files
    };
    let last = users.lines().count() as u64 + 1;
    let student = |i: u64| line_of(users, &format!("stu-{i:04},"));
    assert_eq!(
        locations(refused(files, true).await),
        [
            at("users.csv", student(7), "role"),
            at("users.csv", student(8), "enabledUser"),
            at("users.csv", last, "sourcedId"),
            at("enrollments.csv", enrolled, "beginDate"),
            at("enrollments.csv", unknown, "classSourcedId"),
        ]
    );
    // The manifest: missing; declaring a file absent that the export has; declaring one bulk
    // that it does not have.
    let mut files = bulk.clone();
    files.remove("manifest.csv");
    assert_eq!(
        locations(refused(files, false).await),
        [("manifest.csv".to_owned(), None, None)]
    );
    let files = edit("manifest.csv", &|t| {
        t.replace("file.courses,bulk", "file.courses,absent")
            .replace("file.demographics,absent", "file.demographics,bulk")
    });
    let manifest_line = line_of(&files["manifest.csv"], "file.demographics");
    let error = refused(files, false).await;
    let message = error.to_string();
    assert_eq!(
        locations(error),
        [
            ("courses.csv".to_owned(), None, None),
            ("demographics.csv".to_owned(), None, None)
        ]
    );
    assert!(
        message.contains(&format!(
            "demographics.csv: is missing, but manifest.csv declares it bulk (line {manifest_line})"
        )),
        "{message}"
    );
    let files = edit("manifest.csv", &|t| {
        t.replace("oneroster.version,1.1", "oneroster.version,1.2")
    });
    assert_eq!(
        locations(refused(files, false).await),
        [at("manifest.csv", 3, "value")]
    );
    // A zip file that is not one.
    remove(&fixture.path);
    std::fs::write(&fixture.path, b"PK\x03\x04 but not really a zip file").unwrap();
    let error = fixture.run(Mode::Apply).await.unwrap_err();
    assert!(
        error
            .to_string()
            .contains("is neither a folder nor a zip file"),
        "{error}"
    );
    assert_eq!(
        locations(error),
        [(fixture.path.display().to_string(), None, None)]
    );
    // Nowhere at all.
    remove(&fixture.path);
    assert!(
        fixture
            .run(Mode::Apply)
            .await
            .unwrap_err()
            .to_string()
            .contains("cannot be read")
    );

    assert_eq!(fixture.versions().await, versions, "nothing changed");
    let status = sync::status(&fixture.app.state.provider, "north")
        .await
        .unwrap();
    let last = status[0].last_run.as_ref().unwrap();
    assert_eq!(last.outcome, "failed");
    fixture.stop().await;
}

/// The binary with a configuration of its own (no OneRoster source declared) on the test's
/// backend; its PostgreSQL database, if any, is dropped with it.
struct Binary {
    setup: Setup,
    database: Option<TestDatabase>,
}

impl Binary {
    async fn new() -> Binary {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("rollcall.toml");
        let database = match test_store() {
            "postgres" => Some(TestDatabase::create().await),
            _ => None,
        };
        let text = match &database {
            Some(database) => config_text_with_store(&database.url),
            None => config_text(&dir.path().join("rollcall.db")),
        };
        std::fs::write(&config, with_source(text, "")).unwrap();
        Binary {
            setup: Setup { dir, config },
            database,
        }
    }

    async fn drop_now(self) {
        if let Some(database) = self.database {
            database.drop_now().await;
        }
    }
}

#[tokio::test]
async fn import_oneroster_on_the_command_line_plans_applies_and_refuses() {
    let binary = Binary::new().await;
    let setup = &binary.setup;
    let roster = Roster::generate();
    let export = setup.dir.path().join("export.zip");
    write_zip(&export, &roster.bulk());
    let path = export.to_str().unwrap();
    let accounts = roster.accounts().len();

    let stdout = setup.ok(&["import-oneroster", "--school", "north", path, "--dry-run"]);
    assert!(
        stdout.contains(&format!("accounts: {accounts} to create")),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "  create   Ann Lee (student, username leea): sourcedId=stu-0000,ou=users,o=oneroster"
        ),
        "{stdout}"
    );
    assert!(
        stdout.ends_with("dry run: nothing was changed\n"),
        "{stdout}"
    );
    // The default source reads no courses: every class that looks like one is a group.
    assert!(stdout.contains("group +  12A/Ma1: "), "{stdout}");
    let again = setup.ok(&["import-oneroster", "--school", "north", path, "--dry-run"]);
    assert!(
        again.contains(&format!("accounts: {accounts} to create")),
        "nothing was written"
    );

    let stdout = setup.ok(&["import-oneroster", "--school", "north", path, "--json"]);
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["source"], "oneroster");
    assert_eq!(report["outcome"], "applied");
    assert_eq!(report["counts"]["create"], accounts);
    let stdout = setup.ok(&["import-oneroster", "--school", "north", path]);
    assert!(stdout.ends_with("nothing to change\n"), "{stdout}");

    // Sixty students gone at once: held, and approved with the same command. The source is
    // not declared, so `rollcall sync` could not name it.
    let mut fewer = roster.clone();
    let gone = |id: &str| ("stu-0100".."stu-0160").contains(&id);
    fewer.users.retain(|u| !gone(&u.id));
    fewer.enrollments.retain(|e| !gone(&e.user));
    write_zip(&export, &fewer.bulk());
    let output = setup.run(&["import-oneroster", "--school", "north", path]);
    assert!(!output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.ends_with("held: nothing was changed\n"), "{stdout}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!(
            "Check it with `rollcall import-oneroster --school north --dry-run {path}`, then \
             apply it with `--approve` instead of `--dry-run`"
        )),
        "{stderr}"
    );
    let stdout = setup.ok(&["import-oneroster", "--school", "north", path, "--approve"]);
    assert!(stdout.contains("59 to disable"), "{stdout}");
    assert!(stdout.ends_with("applied\n"), "{stdout}");
    write_zip(&export, &roster.bulk());
    let stdout = setup.ok(&["import-oneroster", "--school", "north", path]);
    assert!(stdout.contains("59 to re-enable"), "{stdout}");

    // A broken export: each problem on a line of its own, and a failure.
    let mut files = roster.bulk();
    let original = files["users.csv"].clone();
    let users = original.replacen("stu-0007,,,true,", "stu-0007,,,maybe,", 1)
        + &duplicate(&original, "stu-0002,");
    files.insert("users.csv".into(), users);
    write_zip(&export, &files);
    let output = setup.run(&["import-oneroster", "--school", "north", path]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    // The error, after the log lines.
    let error = &stderr[stderr.find("rollcall: ").unwrap()..];
    let lines: Vec<&str> = error.lines().skip(1).collect();
    assert_eq!(
        lines,
        [
            format!(
                "  users.csv, line {}, column enabledUser: `maybe` is not `true` or `false`",
                line_of(&original, "stu-0007,")
            ),
            format!(
                "  users.csv, line {}, column sourcedId: `stu-0002` is the sourcedId of line {} \
                 already",
                original.lines().count() + 1,
                line_of(&original, "stu-0002,")
            ),
        ],
        "{stderr}"
    );
    assert!(
        error.contains("was refused (2 problems); nothing was changed"),
        "{stderr}"
    );

    // Bad arguments.
    let output = setup.run(&[
        "import-oneroster",
        "--school",
        "north",
        "--source",
        "nope",
        path,
    ]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("no source `nope`"));
    binary.drop_now().await;
}

#[tokio::test]
async fn check_config_connect_reads_a_oneroster_export() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("export");
    write_folder(&path, &Roster::generate().bulk());
    let source = source_toml(&path, "");
    let setup = Setup::with_config(|text| with_source(text, &source));
    let stdout = setup.ok(&["check-config", "--connect"]);
    assert!(
        stdout.contains("manifest.csv: a OneRoster 1.1 bulk export"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "users.csv: bulk ({} rows)",
            STUDENTS + TEACHERS + 6
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains("bulk export: 300 students, 20 tutors, 33 classes; users of other roles left out: 1 administrator, 2 aide, 3 parent"),
        "{stdout}"
    );
    std::fs::remove_file(path.join("manifest.csv")).unwrap();
    let output = setup.run(&["check-config", "--connect"]);
    assert!(!output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("  manifest.csv: is missing"), "{stdout}");
}

#[tokio::test]
async fn the_daemon_reads_a_oneroster_folder_on_its_schedule() {
    let fixture = fixture("passwords = false\ninterval_minutes = 60").await;
    write_folder(&fixture.path, &Roster::generate().bulk());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let run = loop {
        let status = sync::status(&fixture.app.state.provider, "north")
            .await
            .unwrap();
        if let Some(run) = status[0].last_run.clone() {
            break run;
        }
        assert!(std::time::Instant::now() < deadline, "no scheduled run");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert_eq!(run.outcome, "applied", "{:?}", run.report);
    assert_eq!(
        run.report["counts"]["create"],
        Roster::generate().accounts().len()
    );
    fixture.stop().await;
}

/// `roster`'s bulk export as a trust's: a second school, `org-south`, under the same district,
/// with `students` students of its own in a class of its own (its rows made by the same code,
/// the school's id swapped).
fn trust_export(roster: &Roster, students: usize) -> BTreeMap<String, String> {
    let mut files = roster.bulk();
    let south = |row: Vec<String>| -> Vec<String> {
        row.into_iter()
            .map(|field| {
                if field == "org-north" {
                    "org-south".into()
                } else {
                    field
                }
            })
            .collect()
    };
    let rows = |header: &[&str], rows: Vec<Vec<String>>| {
        let text = csv(header, &rows);
        text.split_once('\n').unwrap().1.to_owned()
    };
    let template = roster.users.iter().find(|u| u.role == "student").unwrap();
    let users: Vec<User> = (0..students)
        .map(|i| User {
            id: format!("south-{i:03}"),
            username: format!("south{i:03}"),
            identifier: format!("SS{i:03}"),
            email: String::new(),
            ..template.clone()
        })
        .collect();
    let class = Class {
        id: "cls-south-12A-ph".into(),
        title: "12A/Ph1".into(),
        course: "crs-ph",
        kind: "scheduled",
        deleted: false,
    };
    let enrollments: Vec<Enrollment> = users
        .iter()
        .enumerate()
        .map(|(i, u)| Enrollment::student(format!("enr-south-{i:03}"), &class.id, &u.id))
        .collect();
    let append = |files: &mut BTreeMap<String, String>, name: &str, more: String| {
        let text = files.get_mut(name).unwrap();
        let crlf = text.ends_with("\r\n");
        text.push_str(&if crlf {
            more.replace('\n', "\r\n")
        } else {
            more
        });
    };
    append(
        &mut files,
        "orgs.csv",
        "org-south,,,South Academy,school,SA,org-district\n".into(),
    );
    append(
        &mut files,
        "users.csv",
        rows(
            &USERS_HEADER,
            users.iter().map(|u| south(user_row(u, ""))).collect(),
        ),
    );
    append(
        &mut files,
        "classes.csv",
        rows(&CLASSES_HEADER, vec![south(class_row(&class, ""))]),
    );
    append(
        &mut files,
        "enrollments.csv",
        rows(
            &ENROLLMENTS_HEADER,
            enrollments
                .iter()
                .map(|e| south(enrollment_row(e, "")))
                .collect(),
        ),
    );
    files
}

#[tokio::test]
async fn a_trusts_export_is_refused_without_org_and_read_for_one_school_with_it() {
    let binary = Binary::new().await;
    let setup = &binary.setup;
    let roster = Roster::generate();
    let export = setup.dir.path().join("trust.zip");
    write_zip(&export, &trust_export(&roster, 25));
    let path = export.to_str().unwrap();

    // Two schools' people in one export, and nothing says which are north's: refused whole.
    let output = setup.run(&["import-oneroster", "--school", "north", path]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(
            "orgs.csv: lists 2 schools (`org-north` (North Academy), `org-south` (South Academy))"
        ) && stderr.contains("set `org` on source `oneroster`"),
        "{stderr}"
    );

    // North's org: exactly north's accounts (nothing was written before), none of south's.
    let north = |then: &str| {
        setup.ok(&[
            "import-oneroster",
            "--school",
            "north",
            "--org",
            "org-north",
            path,
            then,
        ])
    };
    let stdout = north("--json");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["outcome"], "applied", "{stdout}");
    assert_eq!(report["counts"]["create"], roster.accounts().len());
    assert_eq!(report["read"]["students"], STUDENTS);
    let stdout = north("--dry-run");
    assert!(
        stdout.contains("accounts: 0 to create, 0 to update, 0 to re-enable, 0 to disable"),
        "{stdout}"
    );
    assert!(!stdout.contains("south"), "{stdout}");
}
