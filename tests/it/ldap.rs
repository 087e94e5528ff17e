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

/// TLS against a real slapd with a throwaway CA ([`Slapd::start_tls`]): StartTLS and ldaps://
/// work with the CA in `ca_file`; a server certificate from a CA nobody trusts, a CA file that
/// cannot be used and a server that does not speak TLS all fail as TLS problems, before any
/// password is sent.
mod tls {
    use std::path::PathBuf;
    use std::time::Duration;

    use rollcall::sync::ldap::{Directory, Error, Settings};

    use super::settings;
    use crate::slapd::{STUDENTS, Slapd, school_ldif};

    fn tls_settings(
        slapd: &Slapd,
        url: &str,
        starttls: bool,
        ca_file: Option<PathBuf>,
    ) -> Settings {
        Settings {
            url: url.to_owned(),
            starttls,
            ca_file,
            ..settings(slapd, &slapd.reader_password)
        }
    }

    /// The TLS error `Directory::connect` gives with these settings, as text.
    async fn tls_error(settings: &Settings, log: impl Fn() -> String) -> String {
        match Directory::connect(settings).await {
            Err(error @ Error::Tls { .. }) => error.to_string(),
            Err(other) => panic!(
                "expected a TLS error for {settings:?}, got {other:?}\n{}",
                log()
            ),
            Ok(_) => panic!("{settings:?} connected\n{}", log()),
        }
    }

    #[tokio::test]
    async fn starttls_and_ldaps_with_the_ca_file_bind_and_search() {
        let Some((slapd, tls)) = Slapd::start_tls(&school_ldif(8).ldif) else {
            return;
        };
        for (url, starttls) in [(&slapd.url, true), (&tls.ldaps_url, false)] {
            let settings = tls_settings(&slapd, url, starttls, Some(tls.ca_file.clone()));
            let mut directory = Directory::connect(&settings)
                .await
                .unwrap_or_else(|e| panic!("{url}: {e}\n{}", slapd.log()));
            let students = directory
                .search(STUDENTS, "(objectClass=inetOrgPerson)", &["uid"])
                .await
                .unwrap();
            assert_eq!(students.len(), 8, "{url}");
            directory.close().await;
        }
        // Both connections were encrypted before the reader's password went over them.
        let log = slapd.log();
        assert_eq!(log.matches(" TLS established ").count(), 2, "{log}");
        assert_eq!(log.matches(" STARTTLS").count(), 1, "{log}");
        let binds: Vec<&str> = log.lines().filter(|l| l.contains("mech=SIMPLE")).collect();
        assert_eq!(binds.len(), 2, "{log}");
        for bind in binds {
            let ssf = bind.split_whitespace().last().unwrap();
            assert!(ssf.starts_with("ssf=") && ssf != "ssf=0", "{bind}");
        }
    }

    #[tokio::test]
    async fn a_server_certificate_from_a_ca_not_trusted_is_refused_before_the_bind() {
        let Some((slapd, tls)) = Slapd::start_tls(&school_ldif(8).ldif) else {
            return;
        };
        // Another CA in ca_file, or none: the system's roots do not know the test CA.
        for ca_file in [Some(tls.other_ca_file.clone()), None] {
            for (url, starttls) in [(&slapd.url, true), (&tls.ldaps_url, false)] {
                let settings = tls_settings(&slapd, url, starttls, ca_file.clone());
                let message = tls_error(&settings, || slapd.log()).await;
                assert_eq!(
                    message,
                    format!(
                        "TLS with {url} failed: invalid peer certificate: UnknownIssuer: the server's certificate is not signed by a CA in `ca_file` (or, without one, by a CA the system trusts)"
                    ),
                    "{ca_file:?}"
                );
            }
        }
        // slapd logs the closed connection a moment after the client has given up.
        let failures = || {
            slapd
                .log()
                .matches("closed (TLS negotiation failure)")
                .count()
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while failures() < 4 && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let log = slapd.log();
        assert_eq!(failures(), 4, "{log}");
        assert!(
            !log.contains(" BIND "),
            "the password was never sent:\n{log}"
        );
    }

    #[tokio::test]
    async fn a_ca_file_that_cannot_be_used_is_named() {
        // Nothing is reached: the CA file is read first. Port 1 on loopback has no server.
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let broken = dir.path().join("broken.pem");
        std::fs::write(
            &broken,
            "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let url = "ldaps://127.0.0.1:1";
        let cases = [
            (
                &missing,
                format!(
                    "cannot read the CA file {}: I/O error: No such file or directory",
                    missing.display()
                ),
            ),
            (
                &empty,
                format!("the CA file {} holds no certificate", empty.display()),
            ),
            (
                &broken,
                format!(
                    "the CA file {} is not PEM: base64 decode error",
                    broken.display()
                ),
            ),
        ];
        for (file, expected) in cases {
            let settings = Settings {
                url: url.to_owned(),
                starttls: false,
                ca_file: Some(file.clone()),
                bind_dn: "cn=reader,ou=Service,dc=school,dc=example".to_owned(),
                password: "unused".to_owned().into(),
                timeout: Duration::from_secs(5),
                page_size: 500,
            };
            let message = tls_error(&settings, String::new).await;
            assert!(
                message.starts_with(&format!("TLS with {url} failed: {expected}")),
                "expected `{expected}` in: {message}"
            );
        }
    }

    #[tokio::test]
    async fn a_server_without_tls_fails_as_a_tls_problem() {
        let Some(slapd) = Slapd::start(&school_ldif(8).ldif) else {
            return;
        };
        // StartTLS: slapd without certificates does not offer the extended operation.
        let settings = tls_settings(&slapd, &slapd.url, true, None);
        let message = tls_error(&settings, || slapd.log()).await;
        assert!(
            message.starts_with(&format!(
                "TLS with {} failed: the server refused StartTLS: ",
                slapd.url
            )),
            "{message}"
        );
        assert!(
            message.contains("unsupported extended operation"),
            "{message}"
        );

        // ldaps:// on the plain LDAP port: slapd takes the TLS hello for garbage and hangs up.
        let url = slapd.url.replace("ldap://", "ldaps://");
        let settings = tls_settings(&slapd, &url, false, None);
        let message = tls_error(&settings, || slapd.log()).await;
        assert_eq!(
            message,
            format!(
                "TLS with {url} failed: the server closed the connection during the TLS \
                 handshake (tls handshake eof); does it speak TLS on this port?"
            )
        );
        assert!(!slapd.log().contains(" BIND "), "{}", slapd.log());
    }
}
