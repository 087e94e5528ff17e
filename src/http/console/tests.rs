//! Every template renders with the context its handlers give it (templates fail only when
//! rendered, so each is rendered here once).

use super::*;

fn pages() -> Pages {
    Pages::new(Sessions {
        secure: true,
        admin_ttl: std::time::Duration::from_secs(60),
        person_ttl: std::time::Duration::from_secs(60),
    })
    .unwrap()
}

#[test]
fn every_template_parses_and_the_policy_allows_only_our_own_assets() {
    let pages = pages();
    let policy = pages.policy.to_str().unwrap();
    assert!(policy.starts_with("default-src 'none'; style-src 'self' 'sha256-"));
    assert!(policy.contains("script-src 'self';"));
    assert!(!policy.contains("unsafe"));
    assert_eq!(pages.templates.templates().count(), TEMPLATES.len());
}
