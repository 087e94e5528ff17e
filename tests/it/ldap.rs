//! The LDAP reader (`rollcall::sync::ldap`) against a real slapd ([`crate::slapd`]): paged
//! searches return every entry past the server's size limit of 1,000, values in any script
//! arrive intact, member DNs written in another case still name their members, and each
//! failure (unreachable server, refused bind, missing base DN) says what went wrong.

use std::collections::BTreeSet;
use std::time::Duration;

use rollcall::sync::dn;
use rollcall::sync::ldap::{Directory, Error, Settings};

use crate::slapd::{GROUPS, SIZE_LIMIT, STUDENTS, Slapd, school_ldif};

const STUDENT_COUNT: usize = 1200;
// More students than one unpaged search may return.
const _: () = assert!(STUDENT_COUNT > SIZE_LIMIT);

fn settings(slapd: &Slapd, password: &str) -> Settings {
    Settings {
        url: slapd.url.clone(),
        bind_dn: slapd.reader_dn.clone(),
        password: password.to_owned().into(),
        timeout: Duration::from_secs(10),
        page_size: 500,
    }
}

#[tokio::test]
async fn a_paged_search_reads_every_student_past_the_size_limit() {
    let school = school_ldif(STUDENT_COUNT);
    let Some(slapd) = Slapd::start(&school.ldif) else {
        return;
    };
    let mut directory = Directory::connect(&settings(&slapd, &slapd.reader_password))
        .await
        .unwrap();
    let students = directory
        .search(
            STUDENTS,
            "(objectClass=inetOrgPerson)",
            &[
                "uid",
                "givenName",
                "sn",
                "mail",
                "employeeNumber",
                "departmentNumber",
            ],
        )
        .await
        .unwrap();
    assert_eq!(students.len(), STUDENT_COUNT);
    let anchors: BTreeSet<&str> = students
        .iter()
        .map(|s| s.first("employeeNumber").unwrap())
        .collect();
    let expected: BTreeSet<&str> = school
        .students
        .iter()
        .map(|s| s.employee_number.as_str())
        .collect();
    assert_eq!(anchors, expected);

    // Every generated person arrives with the names as written, in any script.
    for person in &school.students {
        let entry = students
            .iter()
            .find(|e| dn::same(&e.dn, &person.dn))
            .unwrap_or_else(|| panic!("{} missing", person.dn));
        assert_eq!(entry.first("givenName"), Some(person.given_name.as_str()));
        assert_eq!(entry.first("SN"), Some(person.sn.as_str()));
        assert_eq!(entry.first("mail"), person.mail.as_deref());
        assert_eq!(entry.first("departmentNumber"), person.year.as_deref());
    }
    let zoe = students
        .iter()
        .find(|e| e.first("uid") == Some("zosuilleabhain"))
        .unwrap();
    assert_eq!(zoe.first("sn"), Some("Ó Súilleabháin"));
    directory.close().await;
}

#[tokio::test]
async fn member_dns_in_another_case_name_the_same_students() {
    let school = school_ldif(40);
    let Some(slapd) = Slapd::start(&school.ldif) else {
        return;
    };
    let mut directory = Directory::connect(&settings(&slapd, &slapd.reader_password))
        .await
        .unwrap();
    let groups = directory
        .search(GROUPS, "(objectClass=groupOfNames)", &["cn", "member"])
        .await
        .unwrap();
    let french = groups
        .iter()
        .find(|g| g.first("cn") == Some("10B/Fr1"))
        .unwrap();
    assert!(!french.all("member").is_empty());
    for member in french.all("member") {
        assert_ne!(
            member.to_lowercase(),
            *member,
            "the fixture writes them in capitals"
        );
        assert!(
            school
                .students
                .iter()
                .chain(&school.tutors)
                .any(|person| dn::same(member, &person.dn)),
            "{member} names nobody"
        );
    }
    directory.close().await;
}

#[tokio::test]
async fn failures_say_what_went_wrong() {
    let Some(slapd) = Slapd::start(&school_ldif(8).ldif) else {
        return;
    };
    match Directory::connect(&settings(&slapd, "wrong")).await {
        Err(error @ Error::BindRefused { .. }) => {
            let message = error.to_string();
            assert!(message.contains("invalid credentials"), "{message}");
            assert!(message.contains(&slapd.reader_dn), "{message}");
        }
        other => panic!(
            "expected a refused bind, got {:?}\n{}",
            other.err(),
            slapd.log()
        ),
    }

    let mut directory = Directory::connect(&settings(&slapd, &slapd.reader_password))
        .await
        .unwrap();
    match directory
        .search(
            "ou=Nowhere,dc=school,dc=example",
            "(objectClass=*)",
            &["cn"],
        )
        .await
    {
        Err(error @ Error::NoSuchBase { .. }) => {
            assert!(error.to_string().contains("ou=Nowhere"), "{error}");
        }
        other => panic!("expected no such base, got {other:?}"),
    }
    directory.close().await;

    // Nothing listens on a port that was just free.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut closed = settings(&slapd, &slapd.reader_password);
    closed.url = format!("ldap://127.0.0.1:{port}");
    match Directory::connect(&closed).await {
        Err(error @ Error::Unreachable { .. }) => {
            assert!(error.to_string().contains(&closed.url), "{error}");
        }
        other => panic!("expected an unreachable server, got {:?}", other.err()),
    }
    closed.url = "ldapx://127.0.0.1".into();
    assert!(matches!(
        Directory::connect(&closed).await,
        Err(Error::BadUrl { .. } | Error::Unreachable { .. })
    ));
}
