use std::sync::OnceLock;
use std::time::Duration;

use serde_json::json;
use tokio::time::Instant;

use super::client::{BACKOFF_BASE, BACKOFF_CAP, Failure, Token, Verdict, backoff, verdict};
use super::*;

#[test]
fn org_unit_paths_are_quoted_and_escaped() {
    assert_eq!(
        org_unit_query("/Students/Year 12"),
        "orgUnitPath='/Students/Year 12'"
    );
    assert_eq!(org_unit_query("/"), "orgUnitPath='/'");
    assert_eq!(
        org_unit_query(r"/Staff/O'Neill\Sub"),
        r"orgUnitPath='/Staff/O\'Neill\\Sub'"
    );
}

#[test]
fn a_user_becomes_an_entry_with_the_apis_field_names() {
    let user = json!({
        "kind": "admin#directory#user",
        "id": "104857600000000000001",
        "etag": "\"abc\"",
        "primaryEmail": "ann.lee@north.example",
        "name": {"givenName": "Ann", "familyName": "Lee", "fullName": "Ann Lee"},
        "isAdmin": false,
        "suspended": true,
        "archived": false,
        "orgUnitPath": "/Students/Year 12",
        "aliases": ["ann@north.example", "a.lee@north.example"],
        "externalIds": [
            {"value": "S000123", "type": "organization"},
            {"value": "UPN-9", "type": "custom", "customType": "upn"},
            {"value": "no type"}
        ],
        "customSchemas": {
            "School": {
                "House": "Red",
                "Year": 12,
                "Clubs": [{"type": "work", "value": "Chess"}, {"value": "Drama"}]
            }
        },
        "lastLoginTime": "2024-01-01T00:00:00.000Z"
    });
    let entry = user_entry(user.as_object().unwrap());
    assert_eq!(entry.dn, "id=104857600000000000001,ou=users,o=google");
    assert_eq!(entry.first("id"), Some("104857600000000000001"));
    assert_eq!(entry.first("name.givenName"), Some("Ann"));
    assert_eq!(entry.first("name.familyName"), Some("Lee"));
    assert_eq!(entry.first("primaryEmail"), Some("ann.lee@north.example"));
    assert_eq!(entry.first("orgUnitPath"), Some("/Students/Year 12"));
    assert_eq!(entry.first("suspended"), Some("true"));
    assert_eq!(entry.first("archived"), Some("false"));
    assert_eq!(entry.all("aliases").len(), 2);
    assert_eq!(entry.first("externalIds.organization"), Some("S000123"));
    assert_eq!(entry.first("externalIds.upn"), Some("UPN-9"));
    assert_eq!(entry.first("customSchemas.School.House"), Some("Red"));
    assert_eq!(entry.first("customSchemas.School.Year"), Some("12"));
    assert_eq!(entry.all("customSchemas.School.Clubs"), ["Chess", "Drama"]);
    // What changes without the person changing stays out of the digest.
    assert!(entry.first("lastLoginTime").is_none());
    assert!(entry.first("etag").is_none());
}

#[test]
fn a_group_becomes_an_entry_named_by_its_id() {
    let group = json!({
        "kind": "admin#directory#group",
        "id": "03x8tuzt3kqzf5a",
        "email": "12a-ma1@north.example",
        "name": "12A/Ma1",
        "description": "Maths, set 1",
        "directMembersCount": "24",
        "aliases": ["12a-maths@north.example"]
    });
    let entry = group_entry(group.as_object().unwrap());
    assert_eq!(entry.dn, "id=03x8tuzt3kqzf5a,ou=groups,o=google");
    assert_eq!(entry.first("email"), Some("12a-ma1@north.example"));
    assert_eq!(entry.first("name"), Some("12A/Ma1"));
    assert!(entry.first("directMembersCount").is_none());
    assert_eq!(
        super::super::dn::normalise(&group_dn("03x8tuzt3kqzf5a")),
        super::super::dn::normalise(&entry.dn)
    );
    // Escaped as a DN value.
    assert_eq!(
        super::super::dn::normalise(&user_dn("a,b")),
        super::super::dn::normalise(r"id=a\,b,ou=users,o=google")
    );
}

#[test]
fn backoff_doubles_up_to_its_cap_with_full_jitter() {
    assert_eq!(backoff(0, 1.0), BACKOFF_BASE);
    assert_eq!(backoff(1, 1.0), BACKOFF_BASE * 2);
    assert_eq!(backoff(3, 1.0), Duration::from_secs(4));
    assert_eq!(backoff(6, 1.0), BACKOFF_CAP);
    assert_eq!(backoff(400, 1.0), BACKOFF_CAP, "no overflow");
    assert_eq!(backoff(5, 0.0), Duration::ZERO);
    assert_eq!(backoff(2, 0.5), Duration::from_secs(1));
    assert_eq!(backoff(2, 7.0), Duration::from_secs(2), "clamped");
}

fn google_error(code: u16, reason: &str, message: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "error": {
            "code": code,
            "message": message,
            "errors": [{"message": message, "domain": "global", "reason": reason}],
            "status": "FAILED"
        }
    }))
    .unwrap()
}

#[test]
fn quotas_and_server_errors_are_retried_and_the_rest_is_not() {
    for reason in [
        "userRateLimitExceeded",
        "rateLimitExceeded",
        "quotaExceeded",
    ] {
        assert!(
            matches!(
                verdict(403, &google_error(403, reason, "Quota")),
                Verdict::Retry(_)
            ),
            "{reason}"
        );
    }
    for status in [429, 500, 502, 503, 504] {
        assert!(
            matches!(verdict(status, b"<html>busy</html>"), Verdict::Retry(_)),
            "{status}"
        );
    }
    assert_eq!(verdict(200, b"{}"), Verdict::Fine);
    assert!(matches!(
        verdict(401, &google_error(401, "authError", "Invalid Credentials")),
        Verdict::Reauthenticate(_)
    ));
    let Verdict::Fail(Failure::Forbidden(detail)) = verdict(
        403,
        &google_error(
            403,
            "forbidden",
            "Not Authorized to access this resource/api",
        ),
    ) else {
        panic!("a 403 that is not a quota is final");
    };
    assert_eq!(
        detail,
        "403 Not Authorized to access this resource/api (forbidden)"
    );
    assert!(matches!(
        verdict(
            404,
            &google_error(404, "notFound", "Resource Not Found: groupKey")
        ),
        Verdict::Fail(Failure::NotFound(_))
    ));
    assert_eq!(
        verdict(
            400,
            &google_error(400, "invalid", "Invalid Input: INVALID_OU_ID")
        ),
        Verdict::Fail(Failure::BadRequest {
            message: "Invalid Input: INVALID_OU_ID".into(),
            reason: "invalid".into()
        })
    );
    assert!(matches!(
        verdict(418, b""),
        Verdict::Fail(Failure::Other(_))
    ));
}

#[test]
fn a_token_is_renewed_a_minute_or_a_tenth_of_its_life_before_it_ends() {
    let now = Instant::now();
    let token = |lifetime: u64, left: u64| Token {
        value: String::new().into(),
        expires: now + Duration::from_secs(left),
        lifetime: Duration::from_secs(lifetime),
    };
    assert!(token(3600, 3599).fresh(now));
    assert!(token(3600, 61).fresh(now));
    assert!(!token(3600, 60).fresh(now));
    assert!(!token(3600, 30).fresh(now));
    // A short-lived token is used until its last tenth.
    assert!(token(20, 3).fresh(now));
    assert!(!token(20, 2).fresh(now));
}

/// A 2048-bit test key as PKCS#8 PEM, and its public modulus and exponent.
fn test_key() -> &'static (String, Vec<u8>, Vec<u8>) {
    static KEY: OnceLock<(String, Vec<u8>, Vec<u8>)> = OnceLock::new();
    KEY.get_or_init(|| {
        use rsa::pkcs8::EncodePrivateKey;
        use rsa::traits::PublicKeyParts;
        let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).unwrap();
        let pem = key.to_pkcs8_pem(rsa::pkcs8::LineEnding::LF).unwrap();
        (
            pem.to_string(),
            key.n().to_bytes_be(),
            key.e().to_bytes_be(),
        )
    })
}

fn key_json(private_key: &str) -> String {
    json!({
        "type": "service_account",
        "project_id": "north",
        "private_key_id": "k1",
        "private_key": private_key,
        "client_email": "rollcall@north.iam.gserviceaccount.com",
        "client_id": "1234",
        "token_uri": "https://oauth2.googleapis.com/token"
    })
    .to_string()
}

#[test]
fn the_assertion_is_signed_with_rs256_and_carries_the_grant_claims() {
    let (pem, n, e) = test_key();
    let key = Key::parse(&key_json(pem), "the key file k.json").unwrap();
    assert_eq!(key.client_email, "rollcall@north.iam.gserviceaccount.com");
    assert_eq!(
        key.token_uri.as_deref(),
        Some("https://oauth2.googleapis.com/token")
    );
    assert!(
        !format!("{key:?}").contains("PRIVATE"),
        "the key is not printed"
    );
    let now = 1_700_000_000;
    let token_url = "https://oauth2.googleapis.com/token";
    let assertion = key
        .assertion("admin@north.example", USERS_SCOPE, token_url, now)
        .unwrap();
    let header = jsonwebtoken::decode_header(assertion.as_str()).unwrap();
    assert_eq!(header.alg, jsonwebtoken::Algorithm::RS256);
    assert_eq!(header.kid.as_deref(), Some("k1"));
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.validate_exp = false;
    validation.set_audience(&[token_url]);
    let claims = jsonwebtoken::decode::<serde_json::Value>(
        assertion.as_str(),
        &jsonwebtoken::DecodingKey::from_rsa_raw_components(n, e),
        &validation,
    )
    .unwrap()
    .claims;
    assert_eq!(claims["iss"], "rollcall@north.iam.gserviceaccount.com");
    assert_eq!(claims["sub"], "admin@north.example");
    assert_eq!(claims["scope"], USERS_SCOPE);
    assert_eq!(claims["aud"], token_url);
    assert_eq!(claims["iat"], now);
    assert_eq!(claims["exp"], now + 3600);
}

#[test]
fn a_key_that_is_not_a_service_accounts_is_refused_without_showing_it() {
    let place = "the key file k.json";
    let refused = |text: &str| match Key::parse(text, place) {
        Err(Error::Key(message)) => message,
        other => panic!("{other:?}"),
    };
    let message = refused("not json {");
    assert!(
        message.starts_with("the key file k.json is not a service account's JSON key"),
        "{message}"
    );
    let message = refused(r#"{"type": "authorized_user", "client_id": "x"}"#);
    assert!(message.contains("is a `authorized_user` key"), "{message}");
    let message = refused(r#"{"client_email": "a@b"}"#);
    assert!(
        message.contains("no `\"type\": \"service_account\"`"),
        "{message}"
    );
    let without = json!({"type": "service_account", "client_email": "a@b"}).to_string();
    assert!(refused(&without).contains("has no `private_key`"));
    let secret = "-----BEGIN PRIVATE KEY-----\nTOPSECRETBYTES\n-----END PRIVATE KEY-----\n";
    let message = refused(&key_json(secret));
    assert!(
        message.contains("not an RSA private key in PEM"),
        "{message}"
    );
    assert!(!message.contains("TOPSECRET"), "{message}");
}
