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
        starttls: false,
        ca_file: None,
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

/// The Active Directory-shaped school ([`crate::slapd::ad_school_ldif`]) as the reader sees it:
/// every `user` past the size limit, `objectGUID` as 16 bytes in `bin_attrs`, the account flags
/// and the back-links (`memberOf`) as text, groups with groups as members.
mod active_directory_fixture {
    use std::collections::HashMap;

    use rollcall::sync::dn;
    use rollcall::sync::ldap::{Directory, Entry};

    use super::settings;
    use crate::slapd::{
        AD_BASE, AD_DISABLED_STUDENT, AD_GROUPS, SIZE_LIMIT, Slapd, ad_school_ldif,
    };

    const STUDENTS: usize = 1100;
    const _: () = assert!(STUDENTS > SIZE_LIMIT);

    /// The one `objectGUID` of an entry, which must have arrived as bytes.
    fn guid(entry: &Entry) -> &[u8] {
        assert!(entry.first("objectGUID").is_none(), "{} as text", entry.dn);
        let (_, values) = entry
            .bin_attrs
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case("objectGUID"))
            .unwrap_or_else(|| panic!("{} has no binary objectGUID", entry.dn));
        assert_eq!(values.len(), 1, "{}", entry.dn);
        assert_eq!(values[0].len(), 16, "{}", entry.dn);
        &values[0]
    }

    #[tokio::test]
    async fn every_user_arrives_with_its_guid_as_bytes_its_flags_and_its_groups() {
        let school = ad_school_ldif(STUDENTS);
        let Some(slapd) = Slapd::start(&school.ldif) else {
            return;
        };
        let mut directory = Directory::connect(&settings(&slapd, &slapd.reader_password))
            .await
            .unwrap();
        let users = directory
            .search(
                AD_BASE,
                "(objectClass=user)",
                &[
                    "objectGUID",
                    "sAMAccountName",
                    "userAccountControl",
                    "memberOf",
                ],
            )
            .await
            .unwrap();
        assert_eq!(users.len(), STUDENTS + school.staff.len());
        let by_guid: HashMap<&[u8], &Entry> = users.iter().map(|u| (guid(u), u)).collect();
        assert_eq!(by_guid.len(), users.len(), "GUIDs are unique");

        for person in school.students.iter().chain(&school.staff) {
            let entry = by_guid
                .get(person.object_guid.as_slice())
                .unwrap_or_else(|| panic!("{} missing", person.dn));
            assert!(
                dn::same(&entry.dn, &person.dn),
                "{} {}",
                entry.dn,
                person.dn
            );
            assert_eq!(
                entry.first("sAMAccountName"),
                Some(person.sam_account_name.as_str())
            );
            assert_eq!(
                entry.first("userAccountControl"),
                Some(person.user_account_control.to_string().as_str())
            );
            assert!(!person.member_of.is_empty(), "{}", person.dn);
            assert_eq!(entry.all("memberOf"), person.member_of, "{}", person.dn);
        }

        let leaver = school.person(AD_DISABLED_STUDENT.0);
        assert!(leaver.disabled());
        let entry = by_guid[leaver.object_guid.as_slice()];
        assert_eq!(entry.first("userAccountControl"), Some("514"));
        // Microsoft's text form of the GUID: the first three fields little-endian.
        let text = uuid::Uuid::from_bytes_le(guid(entry).try_into().unwrap()).to_string();
        assert_eq!(text, leaver.guid);

        // AD's idiom for disabled accounts, through the reader.
        let disabled = directory
            .search(
                AD_BASE,
                "(&(objectClass=user)(userAccountControl:1.2.840.113556.1.4.803:=2))",
                &["sAMAccountName"],
            )
            .await
            .unwrap();
        assert_eq!(disabled.len(), 1);
        assert_eq!(disabled[0].first("sAMAccountName"), Some("lleaver"));

        // Groups: members written as AD writes them, groups among them.
        let groups = directory
            .search(
                AD_GROUPS,
                "(objectClass=group)",
                &["cn", "member", "objectGUID"],
            )
            .await
            .unwrap();
        assert_eq!(groups.len(), school.groups.len());
        for group in school.groups.iter() {
            let entry = groups
                .iter()
                .find(|g| g.first("cn") == Some(group.cn.as_str()))
                .unwrap_or_else(|| panic!("{} missing", group.dn));
            assert_eq!(guid(entry), group.object_guid);
            assert_eq!(entry.all("member"), group.members, "{}", group.dn);
        }
        let year12 = groups
            .iter()
            .find(|g| g.first("cn") == Some("Year 12 Maths"))
            .unwrap();
        for set in ["12A/Ma1", "12B/Ma1"] {
            let nested = &school.group(set).dn;
            assert!(year12.all("member").iter().any(|m| dn::same(m, nested)));
        }
        assert_eq!(school.people_in("Year 12 Maths").len(), {
            let year12 = school
                .students
                .iter()
                .filter(|s| s.year.as_deref() == Some("12"));
            year12.count() + 2
        });
        directory.close().await;
    }
}
