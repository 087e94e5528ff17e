//! Distinguished names compared as LDAP compares them, not as strings: attribute types and
//! values without regard to case, spaces around `=` and `,` ignored, escapes (RFC 4514)
//! resolved. `UID=ada,OU=Students, DC=School` and `uid=ada,ou=students,dc=school` are the
//! same entry; a member list written in another case must still find its members.

/// The normalised form of a DN: each RDN as `type=value` in lower case, escapes resolved and
/// special characters escaped again the one way, joined by `,`. Multi-valued RDNs (`a=1+b=2`)
/// are sorted, since their order carries no meaning.
pub fn normalise(dn: &str) -> String {
    plain(dn).unwrap_or_else(|| general(dn))
}

/// The common case without allocating per RDN (a sync normalises every person's DN and every
/// member value): ASCII, no escapes, no multi-valued RDNs, one `=` in each RDN. `None` for
/// anything else, which [`general`] handles.
fn plain(dn: &str) -> Option<String> {
    if !dn.is_ascii() || dn.bytes().any(|b| br#"\+;"<>#"#.contains(&b)) {
        return None;
    }
    let mut out = String::with_capacity(dn.len());
    for (i, rdn) in dn.split(',').enumerate() {
        let (kind, value) = rdn.split_once('=')?;
        if value.contains('=') {
            return None;
        }
        let (kind, value) = (kind.trim(), value.trim());
        if i > 0 {
            out.push(',');
        }
        out.extend(kind.chars().map(|c| c.to_ascii_lowercase()));
        out.push('=');
        out.extend(value.chars().map(|c| c.to_ascii_lowercase()));
    }
    Some(out)
}

fn general(dn: &str) -> String {
    let mut rdns: Vec<String> = Vec::new();
    let mut rdn: Vec<String> = Vec::new();
    // Bytes, so `\XX` escapes can spell UTF-8 sequences.
    let mut current: Vec<u8> = Vec::new();
    let finish = |current: &mut Vec<u8>, rdn: &mut Vec<String>| {
        let text = String::from_utf8_lossy(&std::mem::take(current)).into_owned();
        let (kind, value) = text.split_once('=').unwrap_or((text.as_str(), ""));
        rdn.push(format!(
            "{}={}",
            escape(&kind.trim().to_lowercase()),
            escape(&value.trim().to_lowercase())
        ));
    };
    let bytes = dn.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => {
                // Two hex digits (checked by hand: `from_str_radix` would take a sign).
                let hex = bytes
                    .get(i + 1..i + 3)
                    .filter(|pair| pair.iter().all(u8::is_ascii_hexdigit))
                    .and_then(|pair| std::str::from_utf8(pair).ok())
                    .and_then(|pair| u8::from_str_radix(pair, 16).ok());
                match (hex, bytes.get(i + 1)) {
                    (Some(byte), _) => {
                        current.push(byte);
                        i += 3;
                        continue;
                    }
                    (None, Some(&next)) if next.is_ascii() => {
                        let mut marker = [0u8; 4];
                        let marker = protect(char::from(next)).encode_utf8(&mut marker);
                        current.extend_from_slice(marker.as_bytes());
                        i += 2;
                        continue;
                    }
                    // A stray backslash: dropped; a non-ASCII character after it is kept.
                    _ => {}
                }
            }
            b',' | b';' => {
                finish(&mut current, &mut rdn);
                rdn.sort();
                rdns.push(std::mem::take(&mut rdn).join("+"));
            }
            b'+' => finish(&mut current, &mut rdn),
            other => current.push(other),
        }
        i += 1;
    }
    if !current.iter().all(u8::is_ascii_whitespace) || !rdn.is_empty() {
        finish(&mut current, &mut rdn);
        rdn.sort();
        rdns.push(rdn.join("+"));
    }
    rdns.join(",")
}

/// Characters taken literally from an escape are marked, so `escape` writes them back escaped
/// even where they would otherwise be plain (a literal `,` in a value, say).
fn protect(c: char) -> char {
    match c {
        ',' => '\u{E000}',
        '+' => '\u{E001}',
        '=' => '\u{E002}',
        ';' => '\u{E003}',
        other => other,
    }
}

fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\u{E000}' | ',' => out.push_str("\\,"),
            '\u{E001}' | '+' => out.push_str("\\+"),
            '\u{E002}' | '=' => out.push_str("\\="),
            '\u{E003}' | ';' => out.push_str("\\;"),
            '"' | '<' | '>' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            other => out.push(other),
        }
    }
    out
}

/// True when two DNs name the same entry.
#[must_use]
pub fn same(a: &str, b: &str) -> bool {
    normalise(a) == normalise(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_and_spaces_do_not_matter() {
        assert!(same(
            "UID=ada,OU=Students, DC=School ,dc=Example",
            "uid=ada,ou=students,dc=school,dc=example"
        ));
        assert!(!same("uid=ada,ou=students", "uid=ada,ou=tutors"));
        assert_eq!(normalise("CN=12A/Ma1,OU=Groups"), "cn=12a/ma1,ou=groups");
    }

    #[test]
    fn escapes_are_resolved_and_written_one_way() {
        // An escaped comma stays inside its value; hex pairs spell UTF-8.
        assert_eq!(
            normalise(r"cn=Smith\, James,ou=Students"),
            r"cn=smith\, james,ou=students"
        );
        assert!(same(r"cn=Smith\2C James,ou=S", r"cn=Smith\, James,ou=S"));
        assert!(same(r"cn=Zo\C3\AB,ou=S", "cn=Zoë,ou=S"));
        assert!(same(r"cn=O\'Neill,ou=S", "cn=O'Neill,ou=S"));
        assert_eq!(normalise(r"cn=a\+b"), r"cn=a\+b");
    }

    #[test]
    fn multi_valued_rdns_are_sorted() {
        assert!(same("cn=Ada+uid=ada,ou=S", "UID=ada+CN=ada,ou=S"));
    }

    proptest::proptest! {
        #[test]
        fn the_plain_path_agrees_with_the_general_one(dn in "[a-zA-Z0-9 =,.'/-]{0,40}") {
            if let Some(plain) = plain(&dn) {
                proptest::prop_assert_eq!(plain, general(&dn));
            }
        }

        #[test]
        fn dns_as_directories_write_them_take_the_plain_path(
            rdns in proptest::collection::vec("[a-zA-Z ]{1,6}=[a-zA-Z0-9 .'/-]{0,10}", 1..6)
        ) {
            let dn = rdns.join(",");
            let plain = plain(&dn);
            proptest::prop_assert!(plain.is_some(), "{}", dn);
            proptest::prop_assert_eq!(plain.unwrap_or_default(), general(&dn));
        }

        #[test]
        fn normalising_twice_changes_nothing(dn in "[a-zA-Z0-9 =,+;\\\\\"<>#éÉ']{0,40}") {
            let once = normalise(&dn);
            proptest::prop_assert_eq!(normalise(&once), once);
        }
    }

    #[test]
    fn nonsense_does_not_panic_and_normalises_once() {
        for text in [
            "", ",", "=", "\\", "\\\\", "\\4", "a=\\zz", "++", "=,=,", "cn=\\+b",
        ] {
            let once = normalise(text);
            assert_eq!(normalise(&once), once, "{text}");
        }
    }
}
