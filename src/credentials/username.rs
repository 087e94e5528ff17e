//! Usernames: made from a school's template and a person's names, or given explicitly and checked.

use std::collections::HashSet;
use std::fmt;

/// The placeholders a template may use, as the error messages list them.
const PLACEHOLDERS: &str = "{first}, {surname}, {first_initial} or {surname_initial}";

/// Characters that may separate parts of a username but may not end one.
const SEPARATORS: [char; 3] = ['.', '_', '-'];

/// The highest clash counter [`candidates`] appends.
const MAX_COUNTER: u32 = 9999;

/// A parsed username template such as `{surname}{first_initial}` or `{first}.{surname}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    First,
    Surname,
    FirstInitial,
    SurnameInitial,
}

impl Template {
    /// The template used when a school configures none.
    pub const DEFAULT: &'static str = "{surname}{first_initial}";

    /// Parses a template. Placeholders are `{first}`, `{surname}`, `{first_initial}` and
    /// `{surname_initial}`; literal text between them may only use `a-z`, `0-9`, `.`, `_` and `-`,
    /// and may not start the template with `.`, `_` or `-`. A template needs at least one
    /// placeholder. The error is a sentence naming the problem.
    pub fn parse(text: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        while let Some(c) = rest.chars().next() {
            rest = &rest[c.len_utf8()..];
            match c {
                '{' => {
                    let Some((name, after)) = rest.split_once('}') else {
                        return Err("unclosed `{`".to_owned());
                    };
                    let part = match name {
                        "first" => Part::First,
                        "surname" => Part::Surname,
                        "first_initial" => Part::FirstInitial,
                        "surname_initial" => Part::SurnameInitial,
                        _ => {
                            return Err(format!(
                                "unknown placeholder `{{{name}}}`: use {PLACEHOLDERS}"
                            ));
                        }
                    };
                    if !literal.is_empty() {
                        parts.push(Part::Literal(std::mem::take(&mut literal)));
                    }
                    parts.push(part);
                    rest = after;
                }
                '}' => return Err("`}` without a matching `{`".to_owned()),
                'a'..='z' | '0'..='9' | '.' | '_' | '-' => {
                    if parts.is_empty() && literal.is_empty() && SEPARATORS.contains(&c) {
                        return Err(format!(
                            "a username template may not start with `{c}`: start with a letter, a digit or a placeholder"
                        ));
                    }
                    literal.push(c);
                }
                _ => {
                    return Err(format!(
                        "`{c}` may not appear in a username template: use a-z, 0-9, `.`, `_` or `-`"
                    ));
                }
            }
        }
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        if parts.iter().all(|part| matches!(part, Part::Literal(_))) {
            return Err(format!(
                "a username template needs at least one placeholder: {PLACEHOLDERS}"
            ));
        }
        Ok(Template { parts })
    }

    /// The base username for a person (before any clash counter), or why none can be made.
    ///
    /// Each name part is normalised with [`normalise`] first; a placeholder whose name part is
    /// then empty is an error. The result is cut to `max_len` characters and never ends in `.`,
    /// `_` or `-`; it is empty only when `max_len` is 0. Whether the result is reserved is the
    /// caller's question ([`is_reserved`]).
    pub fn render(&self, first: &str, surname: &str, max_len: usize) -> Result<String, NameError> {
        let first = normalise(first);
        let surname = normalise(surname);
        let need = |name: &str, field: &'static str| {
            if name.is_empty() {
                Err(NameError::Empty { field })
            } else {
                Ok(())
            }
        };
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(text) => out.push_str(text),
                Part::First | Part::FirstInitial => need(&first, "first name")?,
                Part::Surname | Part::SurnameInitial => need(&surname, "surname")?,
            }
            match part {
                Part::Literal(_) => {}
                Part::First => out.push_str(&first),
                Part::Surname => out.push_str(&surname),
                Part::FirstInitial => out.push_str(&first[..1]),
                Part::SurnameInitial => out.push_str(&surname[..1]),
            }
        }
        // Everything pushed is ASCII, so bytes are characters.
        out.truncate(max_len);
        let kept = out.trim_end_matches(SEPARATORS).len();
        out.truncate(kept);
        Ok(out)
    }
}

impl Default for Template {
    /// The template [`Template::DEFAULT`].
    fn default() -> Self {
        Template {
            parts: vec![Part::Surname, Part::FirstInitial],
        }
    }
}

/// Why no username can be made from a person's names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameError {
    /// A name part the template uses has no letters or digits left after [`normalise`].
    Empty {
        /// `"first name"` or `"surname"`.
        field: &'static str,
    },
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameError::Empty { field } => write!(
                f,
                "the {field} has no letters or digits usable in a username"
            ),
        }
    }
}

impl std::error::Error for NameError {}

/// A name as it may appear in a username: transliterated to ASCII, lower-cased, and keeping
/// only `a-z` and `0-9`. Characters that are not letters or digits (apostrophes, spaces,
/// hyphens, emoji, …) are dropped before transliteration, so "😀" gives "" and "王小明" gives
/// "wangxiaoming".
pub fn normalise(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_alphanumeric())
        .filter_map(deunicode::deunicode_char)
        .flat_map(str::chars)
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// The candidates for a base name, in order: `base`, `base2`, `base3`, … up to `base9999`.
///
/// When base and counter would exceed `max_len`, the base is cut so that they fit (`abcdefgh`
/// with max_len 8 gives `abcdefgh`, `abcdefg2`, … `abcdef10`). Every candidate keeps at least
/// one character of the base, so a `max_len` below 5 yields fewer candidates, and an empty base
/// none. A candidate equal to an earlier one (possible only when the base holds digits) is
/// skipped. Never yields a name longer than `max_len`. `base` is expected to come from
/// [`Template::render`]; a longer one is cut to `max_len` as the first candidate.
pub fn candidates(base: &str, max_len: usize) -> impl Iterator<Item = String> + '_ {
    let first = (!base.is_empty() && max_len > 0).then(|| cut(base, max_len).to_owned());
    let numbered = (2..=MAX_COUNTER).map_while(move |counter| {
        let counter = counter.to_string();
        let room = max_len
            .checked_sub(counter.len())
            .filter(|&room| room > 0)?;
        (!base.is_empty()).then(|| format!("{}{counter}", cut(base, room)))
    });
    let mut seen = HashSet::new();
    first
        .into_iter()
        .chain(numbered)
        .filter(move |name| seen.insert(name.clone()))
}

/// The longest prefix every candidate of `base` shares, so that a store can fetch all names
/// that might clash with one prefix query: `base` cut to `max_len - 4` characters (or the whole
/// base if shorter).
pub fn candidate_prefix(base: &str, max_len: usize) -> &str {
    cut(base, max_len.saturating_sub(4))
}

/// The first of [`candidates`] for which `taken` is false, or `None` if all are taken.
/// `taken` should also say true for reserved names ([`is_reserved`]).
pub fn first_free(base: &str, max_len: usize, taken: impl Fn(&str) -> bool) -> Option<String> {
    candidates(base, max_len).find(|name| !taken(name))
}

/// The first `n` characters of `text` (all of it if shorter).
fn cut(text: &str, n: usize) -> &str {
    text.char_indices()
        .nth(n)
        .map_or(text, |(at, _)| &text[..at])
}

/// Names no account may have, whatever the school configures. Lower case.
pub const RESERVED: &[&str] = &[
    "abuse",
    "admin",
    "administrator",
    "anonymous",
    "api",
    "auth",
    "backup",
    "daemon",
    "default",
    "everyone",
    "ftp",
    "guest",
    "help",
    "helpdesk",
    "hostmaster",
    "info",
    "ldap",
    "localhost",
    "login",
    "mail",
    "mailer-daemon",
    "noc",
    "nobody",
    "none",
    "noreply",
    "no-reply",
    "null",
    "operator",
    "owner",
    "postmaster",
    "root",
    "rollcall",
    "scim",
    "security",
    "service",
    "smtp",
    "staff",
    "student",
    "sudo",
    "superuser",
    "support",
    "sysadmin",
    "system",
    "teacher",
    "test",
    "undefined",
    "webmaster",
    "www",
];

/// Checks a username given explicitly, without changing it: 1 to `max_len` characters, only
/// ASCII letters, digits, `.`, `_` and `-`, starting with a letter or digit, and not reserved
/// (see [`is_reserved`]). The error is a sentence saying why.
pub fn check_explicit(name: &str, max_len: usize, extra_reserved: &[String]) -> Result<(), String> {
    if name.is_empty() {
        return Err("a username may not be empty".to_owned());
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || SEPARATORS.contains(&c))
    {
        return Err(format!(
            "`{name}` may only contain letters, digits, `.`, `_` and `-`"
        ));
    }
    if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err(format!("`{name}` must start with a letter or a digit"));
    }
    if name.len() > max_len {
        return Err(format!(
            "`{name}` is longer than the school's maximum of {max_len} characters"
        ));
    }
    if is_reserved(name, extra_reserved) {
        return Err(format!("`{name}` is reserved"));
    }
    Ok(())
}

/// True if `name` is one of [`RESERVED`] or of `extra_reserved`, ignoring case.
pub fn is_reserved(name: &str, extra_reserved: &[String]) -> bool {
    let name = name.to_lowercase();
    RESERVED.contains(&name.as_str()) || extra_reserved.iter().any(|r| r.to_lowercase() == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn render(template: &str, first: &str, surname: &str, max_len: usize) -> String {
        Template::parse(template)
            .unwrap()
            .render(first, surname, max_len)
            .unwrap()
    }

    #[test]
    fn normalises_names_from_many_scripts() {
        for (name, want) in [
            ("Ó Súilleabháin", "osuilleabhain"),
            ("Zoë", "zoe"),
            ("Żółć", "zolc"),
            ("Łukasz", "lukasz"),
            ("Nguyễn", "nguyen"),
            ("D'Arcy-O’Neill", "darcyoneill"),
            ("Müller", "muller"),
            ("Straße", "strasse"),
            (" van der Berg ", "vanderberg"),
            ("王小明", "wangxiaoming"),
            ("😀", ""),
            ("Ngā\u{301}ti", "ngati"),
            ("ʼOkina", "okina"),
        ] {
            assert_eq!(normalise(name), want, "{name}");
        }
    }

    #[test]
    fn default_template_renders_surname_and_first_initial() {
        let template = Template::default();
        assert_eq!(template, Template::parse(Template::DEFAULT).unwrap());
        let cases = [
            ("Zoë", "Ó Súilleabháin", "osuilleabhainz"),
            ("Łukasz", "Żółć", "zolcl"),
            ("Văn", "Nguyễn", "nguyenv"),
        ];
        for (first, surname, want) in cases {
            assert_eq!(template.render(first, surname, 20).unwrap(), want);
        }
    }

    #[test]
    fn renders_other_templates() {
        assert_eq!(
            render("{first}.{surname}", "Mary-Jane", "O'Brien", 20),
            "maryjane.obrien"
        );
        assert_eq!(
            render("s{surname_initial}{first}", "Ana", "Ruiz", 20),
            "srana"
        );
        assert_eq!(
            render("{first_initial}_{surname}-2024", "Ana", "Ruiz", 20),
            "a_ruiz-2024"
        );
    }

    #[test]
    fn render_cuts_to_max_len_without_a_trailing_separator() {
        assert_eq!(
            render(Template::DEFAULT, "Zoë", "Ó Súilleabháin", 8),
            "osuillea"
        );
        // "maryjane.obrien" cut to 9 is "maryjane." and loses the dot.
        assert_eq!(
            render("{first}.{surname}", "Mary-Jane", "O'Brien", 9),
            "maryjane"
        );
        assert_eq!(render("{first}._-{surname}", "Al", "Bo", 4), "al");
    }

    #[test]
    fn render_reports_an_empty_name_part() {
        let template = Template::default();
        assert_eq!(
            template.render("😀", "Smith", 20),
            Err(NameError::Empty {
                field: "first name"
            })
        );
        assert_eq!(
            template.render("Ann", "--", 20),
            Err(NameError::Empty { field: "surname" })
        );
        let surname_only = Template::parse("{surname}").unwrap();
        assert_eq!(surname_only.render("", "Smith", 20).unwrap(), "smith");
        assert_eq!(
            NameError::Empty {
                field: "first name"
            }
            .to_string(),
            "the first name has no letters or digits usable in a username"
        );
    }

    #[test]
    fn parse_errors_are_sentences() {
        for (text, want) in [
            (
                "{middle}",
                "unknown placeholder `{middle}`: use {first}, {surname}, {first_initial} or {surname_initial}",
            ),
            ("{first", "unclosed `{`"),
            ("{first}}", "`}` without a matching `{`"),
            (
                "{first} {surname}",
                "` ` may not appear in a username template: use a-z, 0-9, `.`, `_` or `-`",
            ),
            (
                "{First}",
                "unknown placeholder `{First}`: use {first}, {surname}, {first_initial} or {surname_initial}",
            ),
            (
                "X{first}",
                "`X` may not appear in a username template: use a-z, 0-9, `.`, `_` or `-`",
            ),
            (
                "student",
                "a username template needs at least one placeholder: {first}, {surname}, {first_initial} or {surname_initial}",
            ),
            (
                "",
                "a username template needs at least one placeholder: {first}, {surname}, {first_initial} or {surname_initial}",
            ),
            (
                ".{first}",
                "a username template may not start with `.`: start with a letter, a digit or a placeholder",
            ),
        ] {
            assert_eq!(Template::parse(text), Err(want.to_owned()), "{text}");
        }
    }

    #[test]
    fn candidates_count_up_and_cut_the_base_to_fit() {
        let all: Vec<String> = candidates("abcdefgh", 8).collect();
        assert_eq!(all.len(), 9999);
        assert_eq!(all[0], "abcdefgh");
        assert_eq!(all[1], "abcdefg2");
        assert_eq!(all[8], "abcdefg9");
        assert_eq!(all[9], "abcdef10");
        assert_eq!(all[99], "abcde100");
        assert_eq!(all[9998], "abcd9999");
        assert!(
            all.iter()
                .all(|name| name.starts_with(candidate_prefix("abcdefgh", 8)))
        );
        assert_eq!(candidate_prefix("abcdefgh", 8), "abcd");
        assert_eq!(candidate_prefix("ab", 8), "ab");

        let short: Vec<String> = candidates("smithj", 20).take(3).collect();
        assert_eq!(short, ["smithj", "smithj2", "smithj3"]);
        assert_eq!(candidates("smithj", 20).last().unwrap(), "smithj9999");

        // Every candidate keeps a character of the base.
        let tiny: Vec<String> = candidates("ab", 3).collect();
        assert_eq!(tiny.len(), 1 + 8 + 90);
        assert_eq!(tiny.last().unwrap(), "a99");
        assert_eq!(candidates("", 20).count(), 0);
    }

    #[test]
    fn candidates_skip_repeats_when_the_base_ends_in_digits() {
        // "ab1" + "2" and "ab" + "12" would both be "ab12"; so would "x1" + "2" and "x" + "12".
        for (base, max_len, twice) in [("ab1", 4, "ab12"), ("x1yz", 3, "x12")] {
            let all: Vec<String> = candidates(base, max_len).collect();
            let distinct: HashSet<&String> = all.iter().collect();
            assert_eq!(distinct.len(), all.len());
            assert_eq!(all.iter().filter(|name| *name == twice).count(), 1);
        }
    }

    #[test]
    fn first_free_skips_taken_names() {
        let taken = ["smithj", "smithj2", "smithj4"];
        assert_eq!(
            first_free("smithj", 20, |name| taken.contains(&name)).as_deref(),
            Some("smithj3")
        );
        assert_eq!(
            first_free("smithj", 20, |_| false).as_deref(),
            Some("smithj")
        );
        assert_eq!(first_free("smithj", 20, |_| true), None);
    }

    #[test]
    fn check_explicit_explains_refusals() {
        let extra = vec!["Office".to_owned()];
        assert_eq!(check_explicit("j.smith-2_b", 20, &extra), Ok(()));
        assert_eq!(check_explicit("JSmith", 20, &extra), Ok(()));
        assert_eq!(check_explicit("a", 1, &extra), Ok(()));
        for (name, want) in [
            ("", "a username may not be empty"),
            (
                "ad min",
                "`ad min` may only contain letters, digits, `.`, `_` and `-`",
            ),
            (
                "zoë",
                "`zoë` may only contain letters, digits, `.`, `_` and `-`",
            ),
            ("-smith", "`-smith` must start with a letter or a digit"),
            ("admin", "`admin` is reserved"),
            ("Admin", "`Admin` is reserved"),
            ("no-reply", "`no-reply` is reserved"),
            ("office", "`office` is reserved"),
            (
                "abcdefghijklmnopqrstu",
                "`abcdefghijklmnopqrstu` is longer than the school's maximum of 20 characters",
            ),
        ] {
            assert_eq!(
                check_explicit(name, 20, &extra),
                Err(want.to_owned()),
                "{name}"
            );
        }
    }

    #[test]
    fn reserved_names_cover_the_required_set() {
        for name in [
            "admin",
            "administrator",
            "root",
            "system",
            "support",
            "guest",
            "test",
            "postmaster",
            "webmaster",
            "hostmaster",
            "abuse",
            "noreply",
            "no-reply",
            "security",
            "info",
            "help",
            "sysadmin",
            "operator",
            "anonymous",
            "nobody",
            "null",
            "undefined",
            "api",
            "scim",
            "rollcall",
            "www",
            "mail",
            "staff",
            "teacher",
            "student",
        ] {
            assert!(is_reserved(name, &[]), "{name}");
            assert!(is_reserved(&name.to_uppercase(), &[]), "{name}");
        }
        assert!(RESERVED.iter().all(|name| *name == name.to_lowercase()));
        assert!(!is_reserved("smithj", &[]));
        assert!(is_reserved("smithj", &["SmithJ".to_owned()]));
    }

    proptest! {
        #[test]
        fn rendered_names_and_candidates_are_well_formed(
            first in any::<String>(),
            surname in "\\PC{0,30}",
            template in prop::sample::select(vec![
                Template::DEFAULT,
                "{first}.{surname}",
                "{first_initial}{surname_initial}-{first}",
                "x_{surname}_{first}",
                "{surname}9",
            ]),
            max_len in 1usize..=64,
        ) {
            let template = Template::parse(template).unwrap();
            if let Ok(name) = template.render(&first, &surname, max_len) {
                prop_assert!((1..=max_len).contains(&name.len()), "{name:?}");
                prop_assert!(name.bytes().all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'-')), "{name:?}");
                prop_assert!(!name.ends_with(SEPARATORS), "{name:?}");
                let prefix = candidate_prefix(&name, max_len);
                let mut seen = HashSet::new();
                for candidate in candidates(&name, max_len) {
                    prop_assert!(!candidate.is_empty() && candidate.len() <= max_len, "{candidate:?}");
                    prop_assert!(candidate.starts_with(prefix), "{candidate:?}");
                    prop_assert!(seen.insert(candidate.clone()), "repeated {candidate:?}");
                }
            }
        }
    }
}
