use std::path::Path;

use super::export::{self, Column, Type};
use super::*;
use crate::config::{Config, School};

const MANIFEST: &str = "propertyName,value\nmanifest.version,1.0\noneroster.version,1.1\n\
file.academicSessions,absent\nfile.categories,absent\nfile.classes,bulk\nfile.classResources,absent\n\
file.courses,bulk\nfile.courseResources,absent\nfile.demographics,absent\nfile.enrollments,bulk\n\
file.lineItems,absent\nfile.orgs,bulk\nfile.resources,absent\nfile.results,absent\nfile.users,bulk\n";

const ORGS: &str = "sourcedId,status,dateLastModified,name,type,identifier,parentSourcedId\n\
org1,,,North Academy,school,NA,\n";

const USERS: &str = "sourcedId,status,dateLastModified,enabledUser,orgSourcedIds,role,username,\
userIds,givenName,familyName,middleName,identifier,email,sms,phone,agentSourcedIds,grades,password\n\
u1,,,true,org1,student,ann,{LDAP:ann},Ann,Lee,,S1,ann@north.example,,,,\"09\",secret\n\
u2,,,false,org1,student,bob,,Bob,Ray,,S2,,,,,\"09, 10\",\n\
t1,,,true,org1,teacher,tess,,Tess,Orr,,,tess@north.example,,,,,\n\
p1,,,true,org1,parent,pat,,Pat,Lee,,,,,,\"u1\",,\n";

const COURSES: &str = "sourcedId,status,dateLastModified,schoolYearSourcedId,title,courseCode,\
grades,orgSourcedId,subjects,subjectCodes\n\
c1,,,,Mathematics Year 1 (AS),MA-Y1-AS,12,org1,Mathematics,\n";

const CLASSES: &str = "sourcedId,status,dateLastModified,title,grades,courseSourcedId,classCode,\
classType,location,schoolSourcedId,termSourcedIds,subjects,subjectCodes,periods\n\
k1,,,12A/Ma1,12,c1,MA1,scheduled,Room 1,org1,term1,,,\"1, 2\"\n\
k2,tobedeleted,,12B/Ma1,12,c1,MA2,scheduled,,org1,term1,,,\n";

const ENROLLMENTS: &str = "sourcedId,status,dateLastModified,classSourcedId,schoolSourcedId,\
userSourcedId,role,primary,beginDate,endDate\n\
e1,,,k1,org1,u1,student,,,\n\
e2,,,k1,org1,u2,student,,2000-01-01,2001-01-01\n\
e3,,,k1,org1,t1,teacher,true,,\n\
e4,,,k1,org1,p1,administrator,,,\n\
e5,,,k2,org1,u1,student,,,\n";

fn school() -> School {
    let text = r#"[[schools]]
id = "north"
name = "North"

[[schools.courses]]
code = "MA-Y1-AS"
title = "Mathematics Year 1 (AS)"

[[schools.sources]]
id = "sis"
kind = "oneroster"
path = "export"

[schools.sources.groups]
courses_attribute = "course.courseCode"
"#;
    Config::parse(text, Path::new("/"))
        .unwrap()
        .schools
        .remove(0)
}

/// An export folder with these files (name, text).
fn folder(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    dir
}

fn bulk() -> Vec<(&'static str, String)> {
    vec![
        ("manifest.csv", MANIFEST.to_owned()),
        ("orgs.csv", ORGS.to_owned()),
        ("users.csv", USERS.to_owned()),
        ("courses.csv", COURSES.to_owned()),
        ("classes.csv", CLASSES.to_owned()),
        ("enrollments.csv", ENROLLMENTS.to_owned()),
    ]
}

/// The problems `files` have, as `file:line:column: message` lines.
fn problems(files: &[(&str, String)]) -> Vec<String> {
    let files: Vec<(&str, &str)> = files.iter().map(|(n, t)| (*n, t.as_str())).collect();
    let dir = folder(&files);
    let mut problems = match export::read(dir.path()) {
        Ok((export, mut problems)) => {
            problems.extend(references(&export));
            problems
        }
        Err(problems) => problems,
    };
    export::sort(&mut problems);
    problems
        .iter()
        .map(|p| {
            format!(
                "{}:{}:{}: {}",
                p.file,
                p.line.map(|l| l.to_string()).unwrap_or_default(),
                p.column.clone().unwrap_or_default(),
                p.message
            )
        })
        .collect()
}

fn with(
    files: &[(&'static str, String)],
    name: &str,
    edit: impl Fn(&str) -> String,
) -> Vec<(&'static str, String)> {
    files
        .iter()
        .map(|(n, t)| (*n, if *n == name { edit(t) } else { t.clone() }))
        .collect()
}

fn today() -> time::Date {
    time::macros::date!(2025 - 03 - 01)
}

fn built(files: &[(&str, String)], held: &Held) -> Result<Built, Vec<Problem>> {
    let files: Vec<(&str, &str)> = files.iter().map(|(n, t)| (*n, t.as_str())).collect();
    let dir = folder(&files);
    let (export, problems) = export::read(dir.path()).unwrap();
    assert!(problems.is_empty(), "{problems:?}");
    assert!(references(&export).is_empty());
    let school = school();
    build(&school.sources[0], &export, held, today())
}

#[test]
fn values_are_checked_against_their_column() {
    let check = |kind, required, value: &str, delta| {
        export::check(
            &Column {
                name: "x",
                required,
                kind,
            },
            value,
            delta,
        )
    };
    assert!(
        check(Type::Text, true, "", false)
            .unwrap_err()
            .contains("requires a value")
    );
    assert!(check(Type::Text, false, "", false).is_ok());
    assert!(
        check(Type::Status, false, "", false).is_ok(),
        "bulk: may be empty"
    );
    assert!(
        check(Type::Status, false, "", true)
            .unwrap_err()
            .contains("delta file")
    );
    assert!(check(Type::Modified, false, "", true).is_err());
    assert!(check(Type::Status, false, "tobedeleted", true).is_ok());
    assert!(check(Type::Status, false, "inactive", false).is_err());
    assert!(
        check(Type::Status, false, "Active", false).is_err(),
        "case-sensitive"
    );
    for good in [
        "2024-09-01T08:30:00.000Z",
        "2024-09-01T08:30:00Z",
        "2024-09-01T08:30:00+01:00",
        "2024-09-01T08:30:00",
        "2024-09-01",
    ] {
        assert!(check(Type::Modified, false, good, true).is_ok(), "{good}");
    }
    for bad in ["2024-13-01T08:30:00Z", "yesterday", "01/09/2024"] {
        assert!(check(Type::Modified, false, bad, true).is_err(), "{bad}");
    }
    assert!(check(Type::Bool, true, "true", false).is_ok());
    assert!(
        check(Type::Bool, true, "FALSE", false).is_ok(),
        "as a spreadsheet saves it"
    );
    assert_eq!(
        check(Type::Bool, true, "yes", false).unwrap_err(),
        "`yes` is not `true` or `false`"
    );
    assert!(check(Type::Date, false, "2024-02-29", false).is_ok());
    for bad in [
        "2023-02-29",
        "2024-9-1",
        "2024-09-01T00:00:00Z",
        "+024-09-01",
    ] {
        assert!(check(Type::Date, false, bad, false).is_err(), "{bad}");
    }
    let roles = Type::Enum(&["student", "teacher"]);
    assert!(check(roles, true, "teacher", false).is_ok());
    assert!(
        check(roles, true, "Teacher", false)
            .unwrap_err()
            .contains("`student`, `teacher`")
    );
    assert!(check(roles, true, "ext:tutor", false).is_err());
    let kinds = Type::Extensible(&["homeroom", "scheduled"]);
    assert!(check(kinds, true, "ext:tutorial", false).is_ok());
    assert!(check(kinds, true, "ext:", false).is_err());
    assert!(check(Type::UserIds, false, "{LDAP:ann},{SIS:42}", false).is_ok());
    assert!(
        check(Type::UserIds, false, "ann", false)
            .unwrap_err()
            .contains("{type:identifier}")
    );
    assert_eq!(export::split(" a, b ,,c "), ["a", "b", "c"]);
}

#[test]
fn a_sound_export_has_no_problems_and_byte_order_marks_crlf_and_quotes_are_read() {
    assert_eq!(problems(&bulk()), Vec::<String>::new());
    let crlf = with(&bulk(), "users.csv", |t| {
        format!("\u{feff}{}", t.replace('\n', "\r\n"))
    });
    assert_eq!(problems(&crlf), Vec::<String>::new());
    let built = built(&crlf, &Held::default()).unwrap();
    let ann = &built.read.students[0];
    assert_eq!(ann.dn, "sourcedId=u1,ou=users,o=oneroster");
    assert_eq!(ann.first("familyName"), Some("Lee"));
    assert_eq!(ann.all("grades"), ["09"]);
    assert_eq!(ann.first("status"), Some("active"), "empty in a bulk file");
    assert!(ann.first("password").is_none(), "never carried");
    assert_eq!(built.read.students[1].all("grades"), ["09", "10"]);
}

#[test]
fn manifest_problems_are_reported_with_their_lines() {
    let missing: Vec<_> = bulk()
        .into_iter()
        .filter(|(n, _)| *n != "manifest.csv")
        .collect();
    assert_eq!(
        problems(&missing),
        [
            "manifest.csv::: is missing: a OneRoster export holds manifest.csv, which says the \
          version and which files are bulk, delta or absent"
        ]
    );
    let edited = with(&bulk(), "manifest.csv", |t| {
        t.replace("oneroster.version,1.1", "oneroster.version,1.2")
            .replace("file.courses,bulk", "file.courses,full")
            .replace("file.orgs,bulk\n", "")
            .replace(
                "file.results,absent",
                "file.results,absent\nfile.users,bulk",
            )
            .replace("file.demographics,absent", "file.demographics,bulk")
    });
    assert_eq!(
        problems(&edited),
        [
            "manifest.csv:3:value: `oneroster.version` is `1.2`; rollcall reads OneRoster 1.1 \
             exports",
            "manifest.csv:8:value: `file.courses` is `full`; use `bulk`, `delta` or `absent`",
            "manifest.csv:16:propertyName: `file.users` is on line 15 already",
            "manifest.csv::: has no `file.orgs` property: it must say whether orgs.csv is \
             bulk, delta or absent",
            "demographics.csv::: is missing, but manifest.csv declares it bulk (line 10)",
        ]
    );
    let absent = with(&bulk(), "manifest.csv", |t| {
        t.replace("file.courses,bulk", "file.courses,absent")
    });
    assert_eq!(
        problems(&absent),
        ["courses.csv::: is in the export, but manifest.csv declares it absent (line 8)"]
    );
}

#[test]
fn headers_rows_and_values_are_checked_with_line_and_column() {
    let users = "sourcedId,status,dateLastModified,EnabledUser,orgSourcedIds,role,username,\
userIds,givenName,familyName,middleName,identifier,email,sms,phone,agentSourcedIds,grades,password,\
metadata.house\n\
u1,,,true,org1,student,ann,,Ann,Lee,,S1,,,,,09,,Red\n\
u2,,,false,org1,student,bob,,Bob,Ray,,S2,,,,,09,\n\
t1,,,true,org1,teacher,tess,,Tess,Orr,,,,,,,,,Blue,extra\n\
p1,,,true,org1,guardians,pat,,Pat,Lee,,,,,,,,,\n\
u9,,,true,org1,student,,,Nine,\"Nobody, Jr\",,,,,,,,,\n";
    let files = with(&bulk(), "users.csv", |_| users.to_owned());
    let expected = [
        "users.csv:1:EnabledUser: should be spelt `enabledUser` (OneRoster's column names \
             are case-sensitive)",
        "users.csv:1:enabledUser: the column is missing; OneRoster requires it",
        "users.csv:3:: has 18 fields; the header has 19",
        "users.csv:4:: has 20 fields; the header has 19",
        "users.csv:5:role: `guardians` is not one of `administrator`, `aide`, `guardian`, \
             `parent`, `proctor`, `relative`, `student`, `teacher` (values are case-sensitive)",
        "users.csv:6:username: is empty; OneRoster requires a value",
    ];
    assert_eq!(problems(&files), expected);
    // The same lines with Windows line ends, or old Macintosh ones.
    for end in ["\r\n", "\r"] {
        let other = with(&files, "users.csv", |t| t.replace('\n', end));
        assert_eq!(problems(&other), expected, "{end:?}");
    }
    let files = with(&bulk(), "enrollments.csv", |t| {
        t.replace(
            "e2,,,k1,org1,u2,student,,2000-01-01,2001-01-01",
            "e2,,,k1,org1,u2,student,yes,2000-02-30,1999-01-01",
        )
        .replace("e5,,,k2", "e5,,,k9")
            + "e1,,,k1,org1,u1,student,,,\n"
    });
    assert_eq!(
        problems(&files),
        [
            "enrollments.csv:3:primary: `yes` is not `true` or `false`",
            "enrollments.csv:3:beginDate: `2000-02-30` is not a date (YYYY-MM-DD, such as \
             2024-09-01)",
            "enrollments.csv:6:classSourcedId: `k9` is not a sourcedId in classes.csv",
            "enrollments.csv:7:sourcedId: `e1` is the sourcedId of line 2 already",
        ]
    );
}

#[test]
fn references_resolve_within_a_bulk_export_and_schools_are_schools() {
    let files = with(&bulk(), "orgs.csv", |t| {
        t.to_owned() + "dist,,,District,district,,\n"
    });
    let files = with(&files, "classes.csv", |t| {
        t.replace("Room 1,org1", "Room 1,dist")
    });
    let files = with(&files, "users.csv", |t| {
        t.replace("u2,,,false,org1", "u2,,,false,\"org1,org7\"")
            .replace("t1,", "T1,")
            .to_owned()
            + "U1,,,true,org1,student,ann,,Ann,Lee,,S1,,,,,,\n"
    });
    assert_eq!(
        problems(&files),
        [
            "users.csv:3:orgSourcedIds: `org7` is not a sourcedId in orgs.csv",
            "users.csv:6:sourcedId: `U1` differs from `u1` (line 2) only in case, which \
             rollcall cannot tell apart",
            "classes.csv:2:schoolSourcedId: `dist` is an org of type `district` (orgs.csv line \
             3), not a school",
            "enrollments.csv:4:userSourcedId: `t1` is not a sourcedId in users.csv",
        ]
    );
}

#[test]
fn a_bulk_export_becomes_entries_with_members_enrolled_today() {
    let built = built(&bulk(), &Held::default()).unwrap();
    assert!(!built.delta);
    assert_eq!(built.read.students.len(), 2);
    assert_eq!(built.read.tutors.len(), 1);
    assert_eq!(built.other_roles["parent"], 1);
    assert!(built.summary().contains("1 parent"), "{}", built.summary());
    let groups = built.read.groups.unwrap();
    assert_eq!(groups.len(), 1, "a class to be deleted is left out");
    let class = &groups[0];
    assert_eq!(class.dn, "sourcedId=k1,ou=classes,o=oneroster");
    assert_eq!(class.first("title"), Some("12A/Ma1"));
    assert_eq!(class.first("course.courseCode"), Some("MA-Y1-AS"));
    assert_eq!(class.first("course.title"), Some("Mathematics Year 1 (AS)"));
    assert_eq!(class.all("periods"), ["1", "2"]);
    // Bob's enrollment ended; the parent's role is not a student's or a teacher's.
    assert_eq!(
        class.all("member"),
        [
            "sourcedId=t1,ou=users,o=oneroster",
            "sourcedId=u1,ou=users,o=oneroster"
        ]
    );
}

#[test]
fn a_delta_completes_the_classes_it_changes_from_what_is_held() {
    let manifest = MANIFEST
        .replace("file.classes,bulk", "file.classes,absent")
        .replace("file.courses,bulk", "file.courses,absent")
        .replace("file.orgs,bulk", "file.orgs,absent")
        .replace("file.users,bulk", "file.users,delta")
        .replace("file.enrollments,bulk", "file.enrollments,delta");
    let users = "sourcedId,status,dateLastModified,enabledUser,orgSourcedIds,role,username,\
givenName,familyName\nu3,active,2025-02-01T10:00:00Z,true,org1,student,cy,Cy,Orr\n";
    let enrollments = "sourcedId,status,dateLastModified,classSourcedId,schoolSourcedId,\
userSourcedId,role\n\
e6,active,2025-02-01T10:00:00Z,k1,org1,u3,student\n\
e1,tobedeleted,2025-02-01T10:00:00Z,k1,org1,u1,student\n\
e7,active,2025-02-01T10:00:00Z,k7,org1,u3,student\n";
    let files = vec![
        ("manifest.csv", manifest),
        ("users.csv", users.to_owned()),
        ("enrollments.csv", enrollments.to_owned()),
    ];
    let mut held = Held::default();
    held.groups.insert(
        "k1".into(),
        HeldGroup {
            name: "12A/Ma1".into(),
            courses: vec!["MA-Y1-AS".into()],
            members: vec!["u1".into(), "u2".into(), "t1".into()],
        },
    );
    let built = built(&files, &held).unwrap();
    assert!(built.delta);
    assert_eq!(built.read.students.len(), 1);
    let groups = built.read.groups.unwrap();
    assert_eq!(groups.len(), 1, "k7 is neither in the export nor held");
    assert_eq!(built.unknown_classes, 1);
    let class = &groups[0];
    assert_eq!(class.first("title"), Some("12A/Ma1"));
    assert_eq!(class.all("course.courseCode"), ["MA-Y1-AS"]);
    assert_eq!(
        class.all("member"),
        [
            "sourcedId=t1,ou=users,o=oneroster",
            "sourcedId=u2,ou=users,o=oneroster",
            "sourcedId=u3,ou=users,o=oneroster"
        ]
    );
}

#[test]
fn odd_identifiers_are_escaped_in_dns() {
    assert_eq!(
        user_dn("a,b+c"),
        "sourcedId=a\\2cb\\2bc,ou=users,o=oneroster"
    );
    assert_eq!(
        crate::sync::dn::normalise(&class_dn("K=1")),
        "sourcedid=k\\=1,ou=classes,o=oneroster"
    );
}

#[test]
fn a_run_is_full_only_when_people_and_classes_are_whole() {
    let export = |modes: &[(&str, Mode)]| Export {
        manifest: export::Manifest {
            files: modes
                .iter()
                .map(|(name, mode)| ((*name).to_owned(), (*mode, 1)))
                .collect(),
        },
        tables: HashMap::new(),
    };
    use Mode::{Absent, Bulk, Delta};
    let cases = [
        ((Bulk, Bulk, Bulk), true),
        // People only: groups are left as they are.
        ((Bulk, Absent, Absent), true),
        ((Delta, Bulk, Bulk), false),
        // Every user, but only the changed enrollments: nobody is disabled for being absent.
        ((Bulk, Bulk, Delta), false),
        ((Bulk, Absent, Delta), false),
        ((Bulk, Bulk, Absent), false),
        ((Absent, Bulk, Bulk), false),
    ];
    for ((users, classes, enrollments), whole) in cases {
        let export = export(&[
            ("users", users),
            ("classes", classes),
            ("enrollments", enrollments),
        ]);
        assert_eq!(
            full(&export),
            whole,
            "{users:?} {classes:?} {enrollments:?}"
        );
    }
}

#[test]
fn a_delta_cannot_rebuild_a_class_recognised_by_another_attribute() {
    let text = r#"[[schools]]
id = "north"
name = "North"

[[schools.sources]]
id = "sis"
kind = "oneroster"
path = "export"

[schools.sources.groups]
match_on = "classCode"
teaching = '^MA'
"#;
    let school = Config::parse(text, Path::new("/"))
        .unwrap()
        .schools
        .remove(0);
    let manifest = MANIFEST
        .replace("file.classes,bulk", "file.classes,absent")
        .replace("file.courses,bulk", "file.courses,absent")
        .replace("file.orgs,bulk", "file.orgs,absent")
        .replace("file.users,bulk", "file.users,absent")
        .replace("file.enrollments,bulk", "file.enrollments,delta");
    let enrollments = "sourcedId,status,dateLastModified,classSourcedId,schoolSourcedId,\
userSourcedId,role\ne6,active,2025-02-01,k1,org1,u3,student\n";
    let dir = folder(&[
        ("manifest.csv", &manifest),
        ("enrollments.csv", enrollments),
    ]);
    let (export, problems) = export::read(dir.path()).unwrap();
    assert!(problems.is_empty(), "{problems:?}");
    let mut held = Held::default();
    held.groups.insert("k1".into(), HeldGroup::default());
    let Err(problems) = build(&school.sources[0], &export, &held, today()) else {
        panic!("built");
    };
    assert_eq!(problems.len(), 1);
    assert_eq!(
        (problems[0].line, problems[0].column.as_deref()),
        (Some(2), Some("classSourcedId"))
    );
    assert!(
        problems[0].message.contains("by `classCode`"),
        "{}",
        problems[0].message
    );
}

#[test]
fn a_delta_deleting_a_class_names_its_group_for_deletion() {
    let manifest = MANIFEST
        .replace("file.courses,bulk", "file.courses,absent")
        .replace("file.orgs,bulk", "file.orgs,absent")
        .replace("file.users,bulk", "file.users,absent")
        .replace("file.classes,bulk", "file.classes,delta")
        .replace("file.enrollments,bulk", "file.enrollments,delta");
    let classes = "sourcedId,status,dateLastModified,title,courseSourcedId,classType,\
schoolSourcedId,termSourcedIds\n\
k1,tobedeleted,2025-02-01,12A/Ma1,c1,scheduled,org1,term1\n\
k2,tobedeleted,2025-02-01,12B/Ma1,c1,scheduled,org1,term1\n";
    let enrollments = "sourcedId,status,dateLastModified,classSourcedId,schoolSourcedId,\
userSourcedId,role\ne1,tobedeleted,2025-02-01,k1,org1,u1,student\n";
    let files = vec![
        ("manifest.csv", manifest),
        ("classes.csv", classes.to_owned()),
        ("enrollments.csv", enrollments.to_owned()),
    ];
    let mut held = Held::default();
    held.groups.insert(
        "k1".into(),
        HeldGroup {
            name: "12A/Ma1".into(),
            courses: vec!["MA-Y1-AS".into()],
            members: vec!["u1".into()],
        },
    );
    let built = built(&files, &held).unwrap();
    assert_eq!(built.read.groups, Some(Vec::new()), "neither is written");
    // k2 is held nowhere: nothing to delete.
    assert_eq!(built.read.deleted_groups, ["k1"]);
}

/// A trust's export: the bulk export's school `org1` and a second, `org2`, both under the
/// district `dist`, each with a student, a class and an enrollment.
fn trust() -> Vec<(&'static str, String)> {
    let files = with(&bulk(), "orgs.csv", |text| {
        format!(
            "{}dist,,,North Trust,district,NT,\norg2,,,South Academy,school,SA,dist\n",
            text.replace(
                "North Academy,school,NA,\n",
                "North Academy,school,NA,dist\n"
            )
        )
    });
    let files = with(&files, "users.csv", |text| {
        format!("{text}s1,,,true,org2,student,sam,,Sam,Shaw,,S9,,,,,\"09\",\n")
    });
    let files = with(&files, "classes.csv", |text| {
        format!("{text}k9,,,12A/Ma1,12,c1,MA1,scheduled,,org2,term1,,,\n")
    });
    with(&files, "enrollments.csv", |text| {
        format!("{text}e9,,,k9,org2,s1,student,,,\ne10,,,k1,org2,s1,student,,,\n")
    })
}

/// [`built`] with the source's `org` set.
fn built_for(org: Option<&str>, files: &[(&str, String)]) -> Result<Built, Vec<Problem>> {
    let files: Vec<(&str, &str)> = files.iter().map(|(n, t)| (*n, t.as_str())).collect();
    let dir = folder(&files);
    let (export, problems) = export::read(dir.path()).unwrap();
    assert!(problems.is_empty(), "{problems:?}");
    assert!(references(&export).is_empty(), "{:?}", references(&export));
    let mut school = school();
    if let crate::config::Connection::OneRoster(roster) = &mut school.sources[0].connection {
        roster.org = org.map(str::to_owned);
    }
    build(&school.sources[0], &export, &Held::default(), today())
}

#[test]
fn a_trust_export_is_read_for_the_sources_org_and_refused_without_one() {
    let files = trust();
    let messages = |result: Result<Built, Vec<Problem>>| match result {
        Err(problems) => problems.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
        Ok(_) => panic!("the export was read"),
    };
    // Two schools and no `org`: nothing is read.
    let refused = messages(built_for(None, &files));
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(
        refused[0].contains("orgs.csv")
            && refused[0]
                .contains("lists 2 schools (`org1` (North Academy), `org2` (South Academy))")
            && refused[0].contains("set `org` on source `sis`"),
        "{refused:?}"
    );
    // One school: its people and classes, and no other's, not even an enrollment in its class.
    let north = built_for(Some("org1"), &files).unwrap();
    let dns = |entries: &[Entry]| entries.iter().map(|e| e.dn.clone()).collect::<Vec<_>>();
    assert_eq!(dns(&north.read.students), [user_dn("u1"), user_dn("u2")]);
    let groups = north.read.groups.as_ref().unwrap();
    assert_eq!(dns(groups), [class_dn("k1")]);
    assert!(!groups[0].all("member").contains(&user_dn("s1")));
    assert_eq!(north.other_schools, (1, 1));
    assert!(
        north
            .summary()
            .contains("1 users and 1 classes of other schools left out"),
        "{}",
        north.summary()
    );
    let south = built_for(Some("org2"), &files).unwrap();
    assert_eq!(dns(&south.read.students), [user_dn("s1")]);
    assert_eq!(dns(south.read.groups.as_ref().unwrap()), [class_dn("k9")]);
    // The district: every school under it.
    let trust = built_for(Some("dist"), &files).unwrap();
    assert_eq!(trust.read.students.len(), 3);
    assert_eq!(trust.other_schools, (0, 0));
    // An org the export does not have.
    let unknown = messages(built_for(Some("org7"), &files));
    assert!(
        unknown.len() == 1 && unknown[0].contains("has no org `org7`, the `org` of source `sis`"),
        "{unknown:?}"
    );
    // A single school's export needs no `org`.
    assert!(built_for(None, &bulk()).is_ok());
}
