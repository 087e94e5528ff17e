//! `Config::parse` and `Config::apply_env`: defaults, every validation error (each naming its
//! key and line), the environment overrides, and the shipped `config/rollcall.toml`.

use super::*;

const SHIPPED: &str = include_str!("../../config/rollcall.toml");

fn parse(text: &str) -> Result<Config, Error> {
    Config::parse(text, Path::new("/etc/rollcall"))
}

#[track_caller]
fn valid(text: &str) -> Config {
    parse(text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// Asserts a validation error naming `key` at `line`, and returns its message.
#[track_caller]
fn invalid(text: &str, want_key: &str, want_line: usize) -> String {
    match parse(text) {
        Err(error @ Error::Invalid { .. }) => {
            let Error::Invalid {
                line, key, message, ..
            } = &error
            else {
                unreachable!()
            };
            assert_eq!(key, want_key, "{error}");
            assert_eq!(*line, want_line, "{error}");
            let shown = error.to_string();
            assert!(shown.contains(&format!("line {want_line}")), "{shown}");
            assert!(shown.contains(&format!("`{want_key}`")), "{shown}");
            message.clone()
        }
        other => panic!("expected an invalid {want_key}, got {other:?}"),
    }
}

/// Asserts a syntax-level error (unknown key, wrong type) at `line` whose message names `word`.
#[track_caller]
fn syntax(text: &str, word: &str, want_line: usize) -> String {
    match parse(text) {
        Err(error @ Error::Syntax { .. }) => {
            let Error::Syntax { line, message, .. } = &error else {
                unreachable!()
            };
            assert_eq!(*line, Some(want_line), "{error}");
            assert!(message.contains(word), "{error}");
            let shown = error.to_string();
            assert!(shown.contains(&format!("line {want_line}")), "{shown}");
            shown
        }
        other => panic!("expected a syntax error naming {word}, got {other:?}"),
    }
}

const SCHOOLS: &str = r#"
[[schools]]
id = "north"
name = "North Academy"

[[schools]]
id = "south-2"
name = "South School"
"#;

#[test]
fn an_empty_file_gets_the_defaults() {
    let config = valid("");
    assert_eq!(config.path, None);
    assert_eq!(config.data_dir, Path::new("/etc/rollcall/data"));
    assert_eq!(
        config.server.listen,
        "127.0.0.1:8080".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(config.server.log_format, LogFormat::Text);
    assert_eq!(config.server.request_timeout_secs, 30);
    assert_eq!(config.server.shutdown_grace_secs, 30);
    assert_eq!(config.store.url, "sqlite:///etc/rollcall/data/rollcall.db");
    assert!(config.schools.is_empty());
    assert!(config.school("north").is_none());
    // Empty tables are the same as none.
    let config = valid("[server]\n[store]\n");
    assert_eq!(config.server.request_timeout_secs, 30);
    assert_eq!(config.store.url, "sqlite:///etc/rollcall/data/rollcall.db");
}

#[test]
fn every_setting_is_read() {
    let text = format!(
        r#"data_dir = "state"

[server]
listen = "[::1]:9090"
log_format = "json"
request_timeout_secs = 5
shutdown_grace_secs = 7

[store]
url = "sqlite::memory:"
{SCHOOLS}"#
    );
    let config = valid(&text);
    assert_eq!(config.data_dir, Path::new("/etc/rollcall/state"));
    assert_eq!(
        config.server.listen,
        "[::1]:9090".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(config.server.log_format, LogFormat::Json);
    assert_eq!(config.server.request_timeout_secs, 5);
    assert_eq!(config.server.shutdown_grace_secs, 7);
    assert_eq!(config.store.url, "sqlite::memory:");
    // Compared as text: a school's sources hold compiled patterns, which have no equality.
    assert_eq!(
        format!("{:?}", config.schools),
        format!(
            "{:?}",
            [
                School::new("north", "North Academy"),
                School::new("south-2", "South School"),
            ]
        )
    );
    assert_eq!(config.school("south-2").unwrap().name, "South School");
}

#[test]
fn data_dir_is_relative_to_the_file_unless_absolute() {
    let config = valid("data_dir = \"/var/lib/rollcall\"");
    assert_eq!(config.data_dir, Path::new("/var/lib/rollcall"));
    assert_eq!(config.store.url, "sqlite:///var/lib/rollcall/rollcall.db");
    let config = valid("data_dir = \"../data\"");
    assert_eq!(config.data_dir, Path::new("/etc/rollcall/../data"));
}

#[test]
fn a_duplicate_school_id_names_the_second_declaration() {
    let text = format!("{SCHOOLS}\n[[schools]]\nid = \"north\"\nname = \"North again\"\n");
    let line = text
        .lines()
        .enumerate()
        .filter(|(_, l)| *l == "id = \"north\"")
        .map(|(n, _)| n + 1)
        .last()
        .unwrap();
    let message = invalid(&text, "schools.id", line);
    assert!(
        message.contains("`north`") && message.contains("twice"),
        "{message}"
    );
}

#[test]
fn a_bad_school_id_is_refused() {
    let too_long = "a".repeat(65);
    for id in [
        "North",
        "north academy",
        "",
        "nörth",
        "north.academy",
        &too_long,
    ] {
        let text = format!("# a comment\n\n[[schools]]\nid = \"{id}\"\nname = \"N\"\n");
        let message = invalid(&text, "schools.id", 4);
        assert!(message.contains(&format!("`{id}`")), "{message}");
    }
    let longest = "a".repeat(64);
    valid(&format!("[[schools]]\nid = \"{longest}\"\nname = \"N\"\n"));
    valid("[[schools]]\nid = \"year_7-2024\"\nname = \"N\"\n");
}

#[test]
fn an_empty_school_name_is_refused() {
    for name in ["", "   ", "\t"] {
        let text = format!("[[schools]]\nid = \"north\"\n\nname = \"{name}\"\n");
        let message = invalid(&text, "schools.name", 4);
        assert!(message.contains("`north`"), "{message}");
    }
}

#[test]
fn unknown_keys_are_named_with_their_line_wherever_they_are() {
    syntax("# comment\ncolour = \"blue\"\n", "`colour`", 2);
    syntax(
        "[server]\nlisten = \"127.0.0.1:1\"\nlistn = \"127.0.0.1:2\"\n",
        "`listn`",
        3,
    );
    syntax("[store]\n\npath = \"x.db\"\n", "`path`", 3);
    syntax(
        "[[schools]]\nid = \"north\"\nname = \"N\"\nmotto = \"Onward\"\n",
        "`motto`",
        4,
    );
    syntax("[logging]\nlevel = \"info\"\n", "`logging`", 1);
}

#[test]
fn wrong_types_and_missing_keys_are_syntax_errors_with_a_line() {
    syntax("\n[server]\nrequest_timeout_secs = \"30\"\n", "string", 3);
    syntax("[server]\nshutdown_grace_secs = -1\n", "", 2);
    syntax("[server]\nlog_format = \"xml\"\n", "`xml`", 2);
    syntax("[[schools]]\nid = \"north\"\n", "`name`", 1);
    syntax("data_dir = 5\n", "", 1);
    syntax("[server\n", "", 1);
}

#[test]
fn a_bad_listen_address_names_server_listen() {
    for listen in ["localhost:8080", "127.0.0.1", "127.0.0.1:99999", ""] {
        let text = format!("[server]\nlog_format = \"text\"\nlisten = \"{listen}\"\n");
        let message = invalid(&text, "server.listen", 3);
        assert!(message.contains(&format!("`{listen}`")), "{message}");
    }
}

#[test]
fn an_unsupported_store_url_names_store_url_but_not_its_secrets() {
    let text = "[store]\nurl = \"mysql://rollcall:hunter2@db.example/rollcall\"\n";
    let message = invalid(text, "store.url", 2);
    assert!(message.contains("`mysql`"), "{message}");
    let shown = parse(text).unwrap_err().to_string();
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(!shown.contains("db.example"), "{shown}");
    invalid("[store]\nurl = \"rollcall.db\"\n", "store.url", 2);
    for url in [
        "sqlite://data/rollcall.db",
        "sqlite:///var/lib/rollcall.db",
        "sqlite::memory:",
        "postgres://rollcall@db.example:5432/rollcall",
        "postgresql://db.example/rollcall?sslmode=verify-full",
    ] {
        assert_eq!(valid(&format!("[store]\nurl = \"{url}\"\n")).store.url, url);
    }
}

#[test]
fn a_postgres_password_is_refused_in_the_file_but_taken_from_the_environment() {
    let text = "[store]\nurl = \"postgres://rollcall:hunter2@db.example/rollcall\"\n";
    let message = invalid(text, "store.url", 2);
    assert!(message.contains("PGPASSWORD"), "{message}");
    assert!(!parse(text).unwrap_err().to_string().contains("hunter2"));
    let mut config = valid("");
    let url = "postgres://rollcall:hunter2@db.example/rollcall";
    config
        .apply_env(environment(&[(env::DATABASE_URL, url)]))
        .unwrap();
    assert_eq!(config.store.url, url);
    assert!(!format!("{config:?}").contains("hunter2"));
}

#[test]
fn the_store_debug_output_hides_the_url() {
    let config = valid("[store]\nurl = \"sqlite:///secret/place.db\"\n");
    let debug = format!("{config:?}");
    assert!(!debug.contains("secret"), "{debug}");
    assert!(debug.contains("sqlite:"), "{debug}");
}

#[test]
fn load_prefixes_errors_with_the_file() {
    let dir = std::env::temp_dir().join(format!("rollcall-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad.toml");
    std::fs::write(&path, "[server]\nlisten = \"nowhere\"\n").unwrap();
    let shown = Config::load(&path).unwrap_err().to_string();
    assert!(
        shown.starts_with(&format!("{}: line 2: `server.listen`", path.display())),
        "{shown}"
    );
    std::fs::write(&path, "\n\nbogus = 1\n").unwrap();
    let shown = Config::load(&path).unwrap_err().to_string();
    assert!(
        shown.starts_with(&format!("{}: line 3: ", path.display())),
        "{shown}"
    );
    let missing = dir.join("missing.toml");
    let shown = Config::load(&missing).unwrap_err().to_string();
    assert!(shown.contains("missing.toml"), "{shown}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A lookup that answers from a list, like the process environment would.
/// A school with extra tables after its `id`/`name` (lines 1–3).
fn school_with(tables: &str) -> String {
    format!("[[schools]]\nid = \"north\"\nname = \"North\"\n{tables}")
}

#[test]
fn school_policies_default_to_the_products_defaults() {
    let config = valid(&school_with(""));
    let school = &config.schools[0];
    assert_eq!(school.usernames, Usernames::default());
    assert_eq!(school.usernames.max_length, 20);
    assert_eq!(school.usernames.reuse_after_days, 365);
    assert_eq!(school.passwords, Passwords::default());
    assert!(school.passwords.generate_for_scim);
    assert!(school.courses.is_empty());
    assert_eq!(config.argon2, Argon2::default());
    assert_eq!(config.argon2.memory_kib, 19456);
    assert_eq!(
        config.slips.key_file,
        Path::new("/etc/rollcall/data/slip.key")
    );
    assert_eq!(config.slips.expire_after_days, 30);
    assert_eq!(config.login, Login::default());
}

#[test]
fn school_policies_are_read() {
    let config = valid(&school_with(
        r#"login_url = "https://learn.north.example"
[schools.usernames]
template = "{first}.{surname}"
max_length = 12
reserved = ["Office"]
reuse_after_days = 30
[schools.passwords]
kind = "words"
words = 4
digits = 3
min_length = 10
require_classes = ["digit"]
generate_for_scim = false
[[schools.courses]]
code = "MA"
title = "Maths"
implies = ["ST"]
[[schools.courses]]
code = "ST"
title = "Statistics"
"#,
    ));
    let school = &config.schools[0];
    assert_eq!(
        school.login_url.as_deref(),
        Some("https://learn.north.example")
    );
    assert_eq!(
        school.usernames.template,
        Template::parse("{first}.{surname}").unwrap()
    );
    assert_eq!(school.usernames.max_length, 12);
    assert_eq!(school.usernames.reserved, ["office"]);
    assert_eq!(school.usernames.reuse_after_days, 30);
    assert_eq!(
        school.passwords.policy.generated,
        Generated::Words {
            words: 4,
            digits: 3
        }
    );
    assert_eq!(school.passwords.policy.min_length, 10);
    assert_eq!(school.passwords.policy.require_classes, [CharClass::Digit]);
    assert!(!school.passwords.generate_for_scim);
    let expanded = school.courses.expand(&["Maths"]).unwrap();
    assert_eq!(expanded.len(), 2);
    assert!(expanded[1].implied);
}

#[test]
fn bad_school_policies_name_their_key_and_line() {
    let message = invalid(
        &school_with("[schools.usernames]\ntemplate = \"{middle}\"\n"),
        "schools.usernames.template",
        5,
    );
    assert!(message.contains("{middle}"), "{message}");
    invalid(
        &school_with("[schools.usernames]\nmax_length = 2\n"),
        "schools.usernames.max_length",
        4,
    );
    let message = invalid(
        &school_with("[schools.passwords]\nkind = \"emoji\"\n"),
        "schools.passwords.kind",
        4,
    );
    assert!(message.contains("characters or words"), "{message}");
    let message = invalid(
        &school_with("[schools.passwords]\nclasses = [\"lower\", \"kanji\"]\n"),
        "schools.passwords.classes",
        4,
    );
    assert!(message.contains("`kanji`"), "{message}");
    invalid(
        &school_with("[schools.passwords]\nkind = \"words\"\nlength = 10\n"),
        "schools.passwords.length",
        4,
    );
    // A policy whose own passwords could not pass its chosen-password rules.
    invalid(
        &school_with("[schools.passwords]\nlength = 8\nmin_length = 12\n"),
        "schools.passwords",
        4,
    );
    let message = invalid(
        &school_with("[[schools.courses]]\ncode = \"MA\"\ntitle = \"Maths\"\nimplies = [\"XX\"]\n"),
        "schools.courses",
        5,
    );
    assert!(message.contains("`XX`"), "{message}");
    invalid(
        &school_with("login_url = \"learn.example\"\n"),
        "schools.login_url",
        4,
    );
    syntax(
        &school_with("[schools.passwords]\nlenght = 10\n"),
        "lenght",
        5,
    );
}

#[test]
fn argon2_slips_and_login_are_read_and_checked() {
    let config = valid(
        "[argon2]\nmemory_kib = 65536\niterations = 3\nparallelism = 2\n\
         [slips]\nkey_file = \"keys/slip.key\"\nexpire_after_days = 7\n\
         [login]\naccount_failures = 3\naccount_window_secs = 60\n",
    );
    assert_eq!(
        config.argon2,
        Argon2 {
            memory_kib: 65536,
            iterations: 3,
            parallelism: 2
        }
    );
    assert_eq!(
        config.slips.key_file,
        Path::new("/etc/rollcall/keys/slip.key")
    );
    assert_eq!(config.slips.expire_after_days, 7);
    assert_eq!(config.login.account_failures, 3);
    assert_eq!(config.login.account_window_secs, 60);
    assert_eq!(config.login.address_failures, 50);
    // Below argon2's minimum memory for its lanes.
    let message = invalid("\n[argon2]\nmemory_kib = 4\n", "argon2", 2);
    assert!(message.contains("argon2"), "{message}");
}

#[test]
fn console_sessions_are_secure_by_default_and_checked() {
    assert_eq!(valid("").console, Console::default());
    assert!(Console::default().secure_cookies);
    let config = valid("[console]\nsecure_cookies = false\nsession_hours = 2\n");
    assert!(!config.console.secure_cookies);
    assert_eq!(config.console.session_hours, 2);
    let message = invalid(
        "\n[console]\nsession_hours = 72\n",
        "console.session_hours",
        3,
    );
    assert!(message.contains("between 1 and 24"), "{message}");
    assert!(matches!(
        parse("[console]\nsecure = false\n"),
        Err(Error::Syntax { .. })
    ));
}

#[test]
fn the_slip_key_comes_from_the_environment_when_set() {
    let mut config = valid("");
    config
        .apply_env(environment(&[(env::SLIP_KEY, "  ")]))
        .unwrap();
    assert_eq!(config.slips.key_env, None);
    config
        .apply_env(environment(&[(env::SLIP_KEY, "c2VjcmV0")]))
        .unwrap();
    assert_eq!(config.slips.key_env.as_deref(), Some("c2VjcmV0"));
}

fn environment(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let vars: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
}

#[test]
fn the_environment_overrides_the_file() {
    let mut config = valid("[server]\nlisten = \"127.0.0.1:1\"\nlog_format = \"text\"\n");
    config
        .apply_env(environment(&[
            (env::DATABASE_URL, "sqlite:///srv/rollcall.db"),
            (env::LISTEN, "0.0.0.0:9000"),
            (env::LOG_FORMAT, "json"),
        ]))
        .unwrap();
    assert_eq!(config.store.url, "sqlite:///srv/rollcall.db");
    assert_eq!(
        config.server.listen,
        "0.0.0.0:9000".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(config.server.log_format, LogFormat::Json);
    config
        .apply_env(environment(&[(env::LOG_FORMAT, "text")]))
        .unwrap();
    assert_eq!(config.server.log_format, LogFormat::Text);
}

#[test]
fn unset_and_empty_variables_change_nothing() {
    let text = "[server]\nlisten = \"127.0.0.1:1\"\nlog_format = \"json\"\n";
    let mut config = valid(text);
    config.apply_env(environment(&[])).unwrap();
    config
        .apply_env(environment(&[
            (env::DATABASE_URL, ""),
            (env::LISTEN, ""),
            (env::LOG_FORMAT, ""),
            // Read by the logger, not by the configuration.
            (env::LOG, "debug"),
        ]))
        .unwrap();
    let fresh = valid(text);
    assert_eq!(config.store.url, fresh.store.url);
    assert_eq!(config.server.listen, fresh.server.listen);
    assert_eq!(config.server.log_format, LogFormat::Json);
}

#[test]
fn bad_environment_values_name_the_variable() {
    for (variable, value, word) in [
        (env::DATABASE_URL, "mysql://u:hunter2@h/db", "`mysql`"),
        (env::LISTEN, "localhost", "`localhost`"),
        (env::LOG_FORMAT, "JSON", "`JSON`"),
        (env::LOG_FORMAT, "xml", "`xml`"),
    ] {
        let mut config = valid("");
        let before = format!("{:?}", config.server);
        let error = config
            .apply_env(environment(&[(variable, value)]))
            .unwrap_err();
        let shown = error.to_string();
        assert!(
            matches!(&error, Error::Env { variable: v, .. } if v == variable),
            "{shown}"
        );
        assert!(shown.contains(variable), "{shown}");
        assert!(shown.contains(word), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert_eq!(format!("{:?}", config.server), before);
    }
}

#[test]
fn identifiers_are_lower_case_digits_dashes_and_underscores() {
    for id in ["a", "north", "year-7", "set_2", "0"] {
        assert!(is_identifier(id), "{id}");
    }
    for id in ["", "North", "a b", "a/b", "é", "a.b"] {
        assert!(!is_identifier(id), "{id}");
    }
    assert!(is_identifier(&"x".repeat(64)));
    assert!(!is_identifier(&"x".repeat(65)));
}

#[test]
fn the_shipped_configuration_is_valid() {
    let config = Config::parse(SHIPPED, Path::new("config")).unwrap();
    assert_eq!(config.data_dir, Path::new("config/../data"));
    assert_eq!(config.store.url, "sqlite://config/../data/rollcall.db");
    assert_eq!(
        config.server.listen,
        "127.0.0.1:8080".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(config.server.log_format, LogFormat::Text);
    assert_eq!(config.schools.len(), 1);
}

/// The environment variables `config::env` declares, read from this module's source so a new
/// one cannot be forgotten here.
fn declared_variables() -> Vec<String> {
    let source = include_str!("../config.rs");
    let start = source.find("pub mod env {").unwrap();
    let end = start + source[start..].find("\n}").unwrap();
    source[start..end]
        .lines()
        .filter_map(|line| {
            let line = line.trim();
            line.starts_with("pub const ")
                .then(|| line.split('"').nth(1))
                .flatten()
                .map(str::to_owned)
        })
        .collect()
}

#[test]
fn the_shipped_comments_mention_every_environment_variable() {
    let declared = declared_variables();
    assert_eq!(
        declared,
        [
            env::DATABASE_URL,
            env::LISTEN,
            env::LOG_FORMAT,
            env::LOG,
            env::SLIP_KEY
        ]
    );
    let comments: Vec<&str> = SHIPPED
        .lines()
        .filter(|line| line.trim_start().starts_with('#'))
        .collect();
    for variable in &declared {
        // Whole words: ROLLCALL_LOG must be mentioned by itself, not only inside ROLLCALL_LOG_FORMAT.
        let mentioned = comments.iter().any(|line| {
            line.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .any(|word| word == variable)
        });
        assert!(mentioned, "config/rollcall.toml never mentions {variable}");
    }
    assert!(
        comments.iter().any(|line| line.contains("ROLLCALL_CONFIG")),
        "the --config variable"
    );
}

/// The keys a table of the file model accepts, as its unknown-field error lists them.
fn model_keys(table_header: &str) -> Vec<String> {
    let text = match table_header {
        "" => "zzz_unknown = 1\n".to_owned(),
        "[[schools]]" => "[[schools]]\nid = \"a\"\nname = \"A\"\nzzz_unknown = 1\n".to_owned(),
        header if header.contains("[schools.sources.") => format!(
            "[[schools]]\nid = \"a\"\nname = \"A\"\n[[schools.sources]]\n{header}\nzzz_unknown = 1\n"
        ),
        header if header.contains("[schools.") => {
            format!("[[schools]]\nid = \"a\"\nname = \"A\"\n{header}\nzzz_unknown = 1\n")
        }
        header => format!("{header}\nzzz_unknown = 1\n"),
    };
    let Err(Error::Syntax { message, .. }) = parse(&text) else {
        panic!("{table_header}: an unknown key was accepted");
    };
    let expected = message
        .split("expected")
        .nth(1)
        .unwrap_or_else(|| panic!("{message}"));
    let keys: Vec<String> = expected
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect();
    assert!(!keys.is_empty(), "{message}");
    keys
}

/// The lines of one table of the shipped file (`""` for the top level).
fn shipped_table(table_header: &str) -> Vec<&'static str> {
    let mut current = "";
    SHIPPED
        .lines()
        .filter(|line| {
            // A table shown commented out, as an example to uncomment, is a table too.
            let trimmed = line.trim().trim_start_matches('#').trim_start();
            if trimmed.starts_with('[') {
                current = if trimmed == table_header {
                    table_header
                } else {
                    "?"
                };
                return false;
            }
            current == table_header
        })
        .collect()
}

#[test]
fn the_shipped_file_shows_every_key_of_the_file_model() {
    let top = model_keys("");
    let mut expected = vec![
        "data_dir",
        "server",
        "store",
        "argon2",
        "slips",
        "login",
        "console",
        "schools",
        "webhooks",
        "mail",
        "password_reset",
    ];
    expected.sort();
    let mut sorted = top.clone();
    sorted.sort();
    assert_eq!(sorted, expected);
    for table in ["server", "store", "argon2", "slips", "login", "console"] {
        assert!(
            SHIPPED.lines().any(|l| l.trim() == format!("[{table}]")),
            "no [{table}] table"
        );
    }
    assert!(SHIPPED.lines().any(|l| l.trim() == "[[schools]]"));
    for header in [
        "",
        "[server]",
        "[store]",
        "[argon2]",
        "[slips]",
        "[login]",
        "[console]",
        "[[schools]]",
        "[schools.usernames]",
        "[schools.passwords]",
        "[[schools.courses]]",
        "[[schools.sources]]",
        "[schools.sources.students]",
        "[schools.sources.tutors]",
        "[schools.sources.groups]",
        "[[schools.sources.groups.courses]]",
        "[schools.sources.attributes]",
        "[mail]",
        "[password_reset]",
    ] {
        let lines = shipped_table(header);
        for key in model_keys(header) {
            let table = |names: &[&str]| names.contains(&key.as_str());
            if (header.is_empty()
                && table(&[
                    "server",
                    "store",
                    "argon2",
                    "slips",
                    "login",
                    "console",
                    "schools",
                    "webhooks",
                    "mail",
                    "password_reset",
                ]))
                || (header == "[[schools]]"
                    && table(&["usernames", "passwords", "courses", "sources"]))
                || (header == "[[schools.sources]]"
                    && table(&["students", "tutors", "groups", "attributes"]))
                || (header == "[schools.sources.groups]" && key == "courses")
            {
                continue; // tables, checked on their own
            }
            // Set, or shown commented out with an example value.
            let shown = lines.iter().any(|line| {
                let line = line.trim_start().trim_start_matches('#').trim_start();
                line.strip_prefix(key.as_str())
                    .is_some_and(|rest| rest.trim_start().starts_with('='))
            });
            assert!(shown, "config/rollcall.toml does not show {header} {key}");
        }
    }
}

/// A school with a catalogue and one source; `source` lines go into its table.
fn with_source(source: &str) -> String {
    format!(
        r#"[[schools]]
id = "north"
name = "North Academy"

[[schools.courses]]
code = "MA-Y1-AS"
title = "Mathematics Year 1 (AS)"

[[schools.sources]]
id = "directory"
kind = "ldap"
url = "ldap://127.0.0.1:389"
bind_dn = "cn=reader,dc=school,dc=example"
password_file = "directory.password"
{source}
[schools.sources.students]
base = "ou=Students,dc=school,dc=example"
"#
    )
}

#[test]
fn a_source_gets_its_dialect_defaults_and_paths_from_the_file() {
    let config = valid(&with_source(""));
    let source = config.school("north").unwrap().source("directory").unwrap();
    let ldap = source.ldap().unwrap();
    assert_eq!(ldap.dialect, Dialect::Openldap);
    assert_eq!(source.attributes.anchor, "employeeNumber");
    assert_eq!(
        source.students.select,
        Select::Ldap {
            base: "ou=Students,dc=school,dc=example".into(),
            filter: "(objectClass=inetOrgPerson)".into()
        }
    );
    assert_eq!(
        ldap.password,
        Secret::File(Path::new("/etc/rollcall/directory.password").to_owned())
    );
    assert_eq!(source.interval, None);
    assert_eq!(
        (source.max_disable_percent, source.max_disable_count),
        (10, 50)
    );
    let config = valid(&with_source(
        "dialect = \"active-directory\"\ninterval_minutes = 30",
    ));
    let source = &config.school("north").unwrap().sources[0];
    assert_eq!(source.attributes.anchor, "objectGUID");
    assert_eq!(source.attributes.uid, "sAMAccountName");
    assert!(matches!(
        &source.students.select,
        Select::Ldap { filter, .. } if filter == "(&(objectCategory=person)(objectClass=user))"
    ));
    assert_eq!(source.interval, Some(std::time::Duration::from_secs(1800)));
}

#[test]
fn source_mistakes_are_named_with_their_key() {
    let cases = [
        (
            with_source("").replace("ldap://127.0.0.1:389", "http://x"),
            "schools.sources.url",
            "not an ldap:// or ldaps:// URL",
        ),
        (
            with_source("password_env = \"P\""),
            "schools.sources.password_env",
            "exactly one of",
        ),
        (
            with_source("page_size = 0"),
            "schools.sources.page_size",
            "0 is not between 1 and 5000",
        ),
        (
            with_source("max_disable_percent = 150"),
            "schools.sources.max_disable_percent",
            "not a percentage",
        ),
    ];
    for (text, key, message) in cases {
        match parse(&text) {
            Err(Error::Invalid {
                key: found,
                message: text,
                ..
            }) => {
                assert_eq!(found, key);
                assert!(text.contains(message), "{key}: {text}");
            }
            other => panic!("{key}: {other:?}"),
        }
    }
    let text = with_source("").replace("id = \"directory\"", "id = \"admin\"");
    assert!(invalid(&text, "schools.sources.id", 10).contains("not `admin`"));
    let text = with_source("").replace("kind = \"ldap\"", "kind = \"nis\"");
    assert!(invalid(&text, "schools.sources.kind", 11).contains("use `ldap`, `google`"));
    let text = with_source("").replace(
        "ldap://127.0.0.1:389\"",
        "ldaps://127.0.0.1:636\"\nstarttls = true",
    );
    assert!(invalid(&text, "schools.sources.starttls", 12).contains("encrypted already"));
}

#[test]
fn a_key_of_another_kind_of_source_is_a_mistake_not_ignored() {
    let text = with_source("key_file = \"google.json\"");
    let message = invalid(&text, "schools.sources.key_file", 15);
    assert!(
        message
            .contains("`key_file` is a setting of `google` sources; source `directory` is `ldap`"),
        "{message}"
    );
    let text = with_source("").replace("kind = \"ldap\"", "kind = \"oneroster\"");
    let message = invalid(&text, "schools.sources.url", 12);
    assert!(message.contains("setting of `ldap` sources"), "{message}");
    let text = with_source("").replace(
        "base = \"ou=Students,dc=school,dc=example\"",
        "org_unit = \"/Students\"",
    );
    let message = invalid(&text, "schools.sources.students.org_unit", 17);
    assert!(message.contains("use `base` and `filter`"), "{message}");
}

#[test]
fn a_year_group_pattern_takes_the_year_out_of_a_value() {
    let text = with_source("").replace(
        "base = \"ou=Students,dc=school,dc=example\"",
        "base = \"ou=Students,dc=school,dc=example\"\nyear_group = \"ou\"\nyear_group_pattern = 'Year (?<year>\\d+)$'",
    );
    let config = valid(&text);
    let students = &config.school("north").unwrap().sources[0].students;
    assert_eq!(students.year_group_of("/Students/Year 12"), "12");
    assert_eq!(students.year_group_of("/Staff"), "");
    let text = with_source("").replace(
        "base = \"ou=Students,dc=school,dc=example\"",
        "base = \"ou=Students,dc=school,dc=example\"\nyear_group_pattern = 'x'",
    );
    let message = invalid(&text, "schools.sources.students.year_group_pattern", 16);
    assert!(message.contains("set that too"), "{message}");
}

#[test]
fn group_rules_are_checked_against_the_catalogue_and_their_pattern() {
    let groups = |rule: &str| {
        format!(
            "{}\n[schools.sources.groups]\nbase = \"ou=Groups,dc=school,dc=example\"\n{rule}",
            with_source("")
        )
    };
    let rule = |pattern: &str, course: &str| {
        groups(&format!(
            "[[schools.sources.groups.courses]]\npattern = '{pattern}'\ncourses = [\"{course}\"]\n"
        ))
    };
    let config = valid(&rule(r"^(?<year>\d+)[A-Z]/Ma\d$", "MA-Y1-AS"));
    let source = &config.school("north").unwrap().sources[0];
    let rules = &source.groups.as_ref().unwrap().courses;
    assert_eq!(
        rules[0].courses_for("12A/Ma1"),
        Some(vec!["MA-Y1-AS".to_owned()])
    );
    assert_eq!(rules[0].courses_for("12A/En1"), None);
    let message = invalid(
        &rule("^12", "Latin"),
        "schools.sources.groups.courses.courses",
        22,
    );
    assert!(
        message.contains("`Latin` is not in the school's course catalogue"),
        "{message}"
    );
    let message = invalid(
        &rule("^12", "MA-Y{year}"),
        "schools.sources.groups.courses.courses",
        22,
    );
    assert!(message.contains("does not capture"), "{message}");
    let message = invalid(
        &rule("^(12", "MA-Y1-AS"),
        "schools.sources.groups.courses.pattern",
        22,
    );
    assert!(message.contains("not a pattern"), "{message}");
    let message = invalid(
        &groups("teaching = '[a-'\n"),
        "schools.sources.groups.teaching",
        21,
    );
    assert!(message.contains("not a pattern"), "{message}");
    let message = invalid(
        &groups("filter = \"objectClass=group\"\n"),
        "schools.sources.groups.filter",
        21,
    );
    assert!(message.contains("balanced parentheses"), "{message}");
}

#[test]
fn course_templates_fill_in_what_the_pattern_captured() {
    let pattern = regex::Regex::new(r"^(?<year>\d+)[A-Z]/(?<subject>[A-Za-z]+)\d$").unwrap();
    let rule = CourseRule {
        pattern,
        courses: vec!["{subject}-Y{year}".into(), "Costs $5".into()],
    };
    assert_eq!(
        rule.courses_for("12B/Ph2"),
        Some(vec!["Ph-Y12".to_owned(), "Costs $5".to_owned()])
    );
}

// --- [[webhooks]] ---

/// The schools and one webhook, `id = "lms"` on line 11, then `lines` from line 12.
fn with_webhook(lines: &str) -> String {
    format!("{SCHOOLS}\n[[webhooks]]\nid = \"lms\"\n{lines}")
}

#[test]
fn a_webhook_gets_every_event_every_school_and_the_default_retries() {
    let config = valid(&with_webhook(
        "url = \"https://lms.example/hooks/rollcall\"\nsecret_env = \"LMS_SECRET\"\n",
    ));
    let [webhook] = config.webhooks.as_slice() else {
        panic!("{:?}", config.webhooks)
    };
    assert_eq!(webhook.id, "lms");
    assert_eq!(webhook.url, "https://lms.example/hooks/rollcall");
    assert_eq!(
        webhook.events,
        crate::webhooks::event::EventType::ALL.to_vec()
    );
    assert_eq!(webhook.secret, Secret::Env("LMS_SECRET".into()));
    assert_eq!(webhook.timeout, std::time::Duration::from_secs(10));
    assert_eq!(webhook.max_attempts, 12);
    assert_eq!(
        webhook.retry_initial,
        std::time::Duration::from_millis(1000)
    );
    assert_eq!(webhook.retry_max, std::time::Duration::from_secs(600));
    assert_eq!(webhook.schools, None);
    let subscription = webhook.subscription();
    assert_eq!(subscription.webhook, "lms");
    assert!(subscription.covers("south-2"));
    // No webhooks at all is the default.
    assert!(valid(SCHOOLS).webhooks.is_empty());
}

#[test]
fn every_webhook_setting_is_read() {
    use crate::webhooks::event::EventType;
    let config = valid(&format!(
        "{}{}",
        with_webhook(
            r#"url = "http://127.0.0.1:9000/in"
events = ["user.created", "group.membership_changed", "user.created"]
secret_file = "secrets/lms"
timeout_secs = 3
max_attempts = 5
retry_initial_ms = 250
retry_max_secs = 60
schools = ["south-2"]
"#
        ),
        "\n[[webhooks]]\nid = \"audit\"\nurl = \"https://audit.example\"\nsecret_env = \"A\"\n"
    ));
    let webhook = &config.webhooks[0];
    assert_eq!(
        webhook.events,
        [EventType::UserCreated, EventType::GroupMembershipChanged]
    );
    assert_eq!(
        webhook.secret,
        Secret::File(Path::new("/etc/rollcall/secrets/lms").to_owned())
    );
    assert_eq!(webhook.timeout, std::time::Duration::from_secs(3));
    assert_eq!(webhook.max_attempts, 5);
    assert_eq!(webhook.retry_initial, std::time::Duration::from_millis(250));
    assert_eq!(webhook.retry_max, std::time::Duration::from_secs(60));
    assert_eq!(webhook.schools, Some(vec!["south-2".to_owned()]));
    let subscription = webhook.subscription();
    assert!(subscription.wants("south-2", EventType::UserCreated));
    assert!(!subscription.wants("north", EventType::UserCreated));
    assert!(!subscription.wants("south-2", EventType::UserDeleted));
    assert_eq!(config.webhooks[1].id, "audit");
}

#[test]
fn webhook_mistakes_name_their_key_and_line() {
    let secret = "secret_env = \"S\"\n";
    let message = invalid(
        &with_webhook(&format!(
            "url = \"https://x.example\"\n{secret}events = [\"user.created\", \"user.renamed\"]\n"
        )),
        "webhooks.events",
        14,
    );
    assert!(
        message.contains("`user.renamed` is not an event"),
        "{message}"
    );
    for name in crate::webhooks::event::EventType::ALL {
        assert!(message.contains(name.as_str()), "{message}");
    }
    let message = invalid(
        &with_webhook(&format!(
            "url = \"https://x.example\"\n{secret}events = []\n"
        )),
        "webhooks.events",
        14,
    );
    assert!(message.contains("leave `events` out"), "{message}");
    let message = invalid(
        &with_webhook(&format!("url = \"ftp://x.example\"\n{secret}")),
        "webhooks.url",
        12,
    );
    assert!(message.contains("http:// or https://"), "{message}");
    let message = invalid(
        &with_webhook(&format!("url = \"lms.example/hooks\"\n{secret}")),
        "webhooks.url",
        12,
    );
    assert!(message.contains("not a URL"), "{message}");
    let message = invalid(
        &with_webhook(&format!("url = \"https://u:hunter2@x.example\"\n{secret}")),
        "webhooks.url",
        12,
    );
    assert!(message.contains("password"), "{message}");
    assert!(!message.contains("hunter2"), "{message}");
    let message = invalid(
        &with_webhook("url = \"https://x.example\"\n"),
        "webhooks.secret_env",
        11,
    );
    assert!(message.contains("exactly one of"), "{message}");
    invalid(
        &with_webhook(&format!(
            "url = \"https://x.example\"\n{secret}secret_file = \"s\"\n"
        )),
        "webhooks.secret_env",
        11,
    );
    let message = invalid(
        &with_webhook(&format!(
            "url = \"https://x.example\"\n{secret}schools = [\"north\", \"west\"]\n"
        )),
        "webhooks.schools",
        14,
    );
    assert!(message.contains("no school `west`"), "{message}");
    invalid(
        &with_webhook(&format!(
            "url = \"https://x.example\"\n{secret}schools = []\n"
        )),
        "webhooks.schools",
        14,
    );
    for (key, value) in [
        ("timeout_secs", "0"),
        ("max_attempts", "0"),
        ("retry_initial_ms", "0"),
        ("retry_max_secs", "0"),
    ] {
        let message = invalid(
            &with_webhook(&format!(
                "url = \"https://x.example\"\n{secret}{key} = {value}\n"
            )),
            &format!("webhooks.{key}"),
            14,
        );
        assert!(message.contains("is not between"), "{message}");
    }
    let twice = format!(
        "{}\n[[webhooks]]\nid = \"lms\"\nurl = \"https://y.example\"\n{secret}",
        with_webhook(&format!("url = \"https://x.example\"\n{secret}"))
    );
    let message = invalid(&twice, "webhooks.id", 16);
    assert!(message.contains("declared twice"), "{message}");
    let message = invalid(
        &format!("[[webhooks]]\nid = \"LMS\"\nurl = \"https://x.example\"\n{secret}"),
        "webhooks.id",
        2,
    );
    assert!(message.contains("cannot name a webhook"), "{message}");
    // An unknown key is a syntax error on its line.
    syntax(
        &with_webhook(&format!(
            "url = \"https://x.example\"\n{secret}retries = 3\n"
        )),
        "retries",
        14,
    );
}

/// `[[webhooks]]` is shown commented out (a live one needs its secret to start): every key.
#[test]
fn the_shipped_file_shows_every_webhook_key() {
    let lines: Vec<&str> = SHIPPED
        .lines()
        .skip_while(|line| line.trim() != "# [[webhooks]]")
        .skip(1)
        .take_while(|line| line.trim_start().starts_with('#'))
        .collect();
    assert!(
        !lines.is_empty(),
        "config/rollcall.toml shows no # [[webhooks]]"
    );
    for key in model_keys("[[webhooks]]") {
        let shown = lines.iter().any(|line| {
            let line = line.trim_start().trim_start_matches('#').trim_start();
            line.strip_prefix(key.as_str())
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        });
        assert!(
            shown,
            "config/rollcall.toml does not show [[webhooks]] {key}"
        );
    }
    // Uncommented (with one of the two secrets), the example is valid.
    let example: String = lines
        .iter()
        .map(|line| line.trim_start().trim_start_matches('#'))
        .map(|line| line.strip_prefix(' ').unwrap_or(line))
        .filter(|line| {
            line.split_once(" = ")
                .is_some_and(|(key, _)| key.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
                && !line.starts_with("secret_file")
        })
        .fold("[[webhooks]]\n".to_owned(), |text, line| text + line + "\n");
    let config = valid(&format!(
        "[[schools]]\nid = \"example\"\nname = \"E\"\n{example}"
    ));
    assert_eq!(config.webhooks.len(), 1, "{example}");
}

fn with_oneroster(extra: &str) -> String {
    format!(
        r#"[[schools]]
id = "north"
name = "North Academy"

[[schools.courses]]
code = "MA-Y1-AS"
title = "Mathematics Year 1 (AS)"

[[schools.sources]]
id = "sis"
kind = "oneroster"
path = "export"
{extra}
"#
    )
}

#[test]
fn a_oneroster_source_needs_only_a_path_and_reads_users_by_role() {
    let config = valid(&with_oneroster(""));
    let source = config.school("north").unwrap().source("sis").unwrap();
    assert_eq!(source.kind(), "oneroster");
    assert_eq!(source.location(), "/etc/rollcall/export");
    assert_eq!(source.students.select, Select::OneRoster("student".into()));
    assert_eq!(source.students.year_group.as_deref(), Some("grades"));
    let tutors = source.tutors.as_ref().unwrap();
    assert_eq!(tutors.select, Select::OneRoster("teacher".into()));
    assert_eq!(
        tutors.select.to_string(),
        "with role `teacher` in users.csv"
    );
    let groups = source.groups.as_ref().unwrap();
    assert_eq!(groups.select.to_string(), "in classes.csv");
    assert_eq!(groups.name, "title");
    assert!(groups.courses_attribute.is_none() && groups.courses.is_empty());
    assert_eq!(source.attributes.anchor, "sourcedId");
    assert_eq!(source.attributes.surname, "familyName");
    assert_eq!(
        source.attributes.student_number.as_deref(),
        Some("identifier")
    );
    assert!(
        source.incremental.is_none(),
        "a delta export says what changed"
    );
    // The built-in default (`rollcall import-oneroster` without a declared source) is the same.
    let school = config.school("north").unwrap();
    let default =
        Source::default_oneroster("sis", Path::new("/etc/rollcall/export"), &school.courses)
            .unwrap();
    assert_eq!(format!("{default:?}"), format!("{source:?}"));

    let config = valid(&with_oneroster(
        "interval_minutes = 15\n[schools.sources.students]\nyear_group_pattern = '^0*(\\d+)$'\n\
         [schools.sources.groups]\nteaching = '/'\ncourses_attribute = \"course.courseCode\"\n",
    ));
    let source = config.school("north").unwrap().source("sis").unwrap();
    assert_eq!(source.students.year_group_of("09"), "9");
    assert_eq!(source.interval, Some(std::time::Duration::from_secs(900)));
    let groups = source.groups.as_ref().unwrap();
    assert_eq!(
        groups.courses_attribute.as_deref(),
        Some("course.courseCode")
    );
    assert!(source.tutors.is_some(), "tutors keep their default");
}

#[test]
fn a_oneroster_source_reads_one_org_of_a_trusts_export() {
    let source = |config: &Config| match &config
        .school("north")
        .unwrap()
        .source("sis")
        .unwrap()
        .connection
    {
        crate::config::Connection::OneRoster(roster) => roster.org.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(source(&valid(&with_oneroster(""))), None);
    assert_eq!(
        source(&valid(&with_oneroster("org = \" org-north \""))).as_deref(),
        Some("org-north")
    );
    let message = invalid(&with_oneroster("org = \" \""), "schools.sources.org", 13);
    assert!(message.contains("is empty"), "{message}");
}

#[test]
fn a_oneroster_source_refuses_searches_pages_and_a_missing_path() {
    let text = with_oneroster("").replace("path = \"export\"\n", "");
    let message = invalid(&text, "schools.sources.path", 10);
    assert!(message.contains("needs `path`"), "{message}");
    let message = invalid(
        &with_oneroster("page_size = 100"),
        "schools.sources.page_size",
        13,
    );
    assert!(message.contains("reads files"), "{message}");
    let message = invalid(
        &with_oneroster("[schools.sources.students]\nbase = \"ou=S\""),
        "schools.sources.students.base",
        14,
    );
    assert!(message.contains("by their role in users.csv"), "{message}");
    let message = invalid(
        &with_oneroster("[schools.sources.groups]\nfilter = \"(cn=*)\""),
        "schools.sources.groups.filter",
        14,
    );
    assert!(
        message.contains("does not use `groups.filter`"),
        "{message}"
    );
    let message = invalid(
        &with_oneroster("[schools.sources.groups]\ncourses_attribute = \"course.courseCode\"")
            .replace(
                "[[schools.courses]]\ncode = \"MA-Y1-AS\"\ntitle = \"Mathematics Year 1 (AS)\"\n",
                "",
            ),
        "schools.sources.groups.courses",
        10,
    );
    assert!(message.contains("catalogue"), "{message}");
}

#[test]
fn the_shipped_oneroster_example_is_a_valid_source_once_uncommented() {
    let start = SHIPPED
        .find("# [[schools.sources]]\n# id = \"sis\"")
        .expect("a commented OneRoster source in config/rollcall.toml");
    let example: String = SHIPPED[start..]
        .lines()
        .take_while(|line| line.starts_with('#'))
        .map(|line| {
            line.strip_prefix("# ")
                .unwrap_or(line.trim_start_matches('#'))
        })
        .filter(|line| {
            line.starts_with('[')
                || line.split_once(" = ").is_some_and(|(key, _)| {
                    key.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
                })
        })
        .fold(String::new(), |text, line| text + line + "\n");
    let school = "[[schools]]\nid = \"north\"\nname = \"N\"\n\n[[schools.courses]]\n\
                  code = \"MA-Y1-AS\"\ntitle = \"Mathematics Year 1 (AS)\"\n\n";
    let config = valid(&format!("{school}{example}"));
    let source = config.school("north").unwrap().source("sis").unwrap();
    assert_eq!(source.kind(), "oneroster");
    assert_eq!(source.students.year_group_of("09"), "9");
    let groups = source.groups.as_ref().unwrap();
    assert_eq!(
        groups.courses_attribute.as_deref(),
        Some("course.courseCode")
    );
    assert_eq!(groups.courses.len(), 1);
    assert_eq!(source.attributes, {
        let default = valid(&with_oneroster(""));
        default.schools[0].sources[0].attributes.clone()
    });
}

// --- Google Workspace sources ---

/// A school with a catalogue and a Google source; `extra` lines go into its table (from line
/// 14), `tables` after it.
fn with_google(extra: &str, tables: &str) -> String {
    format!(
        r#"[[schools]]
id = "north"
name = "North Academy"

[[schools.courses]]
code = "MA-Y1-AS"
title = "Mathematics Year 1 (AS)"

[[schools.sources]]
id = "google"
kind = "google"
key_file = "google.json"
admin = "it.admin@north.example"
{extra}
[schools.sources.students]
org_unit = "/Students"
{tables}"#
    )
}

#[test]
fn a_google_source_gets_googles_defaults() {
    let config = valid(&with_google("", ""));
    let source = config.school("north").unwrap().source("google").unwrap();
    assert_eq!(source.kind(), "google");
    let Connection::Google(google) = &source.connection else {
        panic!("{:?}", source.connection);
    };
    assert_eq!(
        google.key,
        Secret::File(Path::new("/etc/rollcall/google.json").to_owned())
    );
    assert_eq!(google.admin, "it.admin@north.example");
    assert_eq!(google.customer, "my_customer");
    assert_eq!(google.token_url, None, "the key file's token_uri");
    assert_eq!(google.api_url, "https://admin.googleapis.com");
    assert_eq!(google.page_size, 500);
    assert_eq!(google.timeout, std::time::Duration::from_secs(30));
    assert_eq!(google.deadline, std::time::Duration::from_secs(900));
    assert_eq!(
        source.location(),
        "https://admin.googleapis.com (my_customer as it.admin@north.example)"
    );
    assert_eq!(source.students.select, Select::Google("/Students".into()));
    assert_eq!(
        source.students.select.to_string(),
        "in org unit `/Students`"
    );
    assert!(source.tutors.is_none() && source.groups.is_none());
    assert!(source.incremental.is_none(), "every run reads everything");
    let a = &source.attributes;
    assert_eq!(
        (a.anchor.as_str(), a.first_name.as_str(), a.surname.as_str()),
        ("id", "name.givenName", "name.familyName")
    );
    assert_eq!(
        (a.email.as_str(), a.uid.as_str()),
        ("primaryEmail", "primaryEmail")
    );
    assert_eq!(
        a.student_number.as_deref(),
        Some("externalIds.organization")
    );

    let config = valid(&with_google(
        "customer = \"C03az79cb\"\ntoken_url = \"http://127.0.0.1:9/token/\"\n\
         api_url = \"http://127.0.0.1:9/\"\npage_size = 200\ntimeout_secs = 5\ndeadline_secs = 10\n",
        "year_group = \"orgUnitPath\"\nyear_group_pattern = 'Year (?<year>\\d+)$'\n\
         [schools.sources.tutors]\norg_unit = \"/Staff\"\n\
         [schools.sources.groups]\nmatch_on = \"email\"\nteaching = '^\\d+[a-z]-'\nflatten_nested = true\n\
         [[schools.sources.groups.courses]]\npattern = '^12[a-z]-ma\\d@'\ncourses = [\"MA-Y1-AS\"]\n",
    ));
    let source = config.school("north").unwrap().source("google").unwrap();
    let Connection::Google(google) = &source.connection else {
        panic!("{:?}", source.connection);
    };
    assert_eq!(google.customer, "C03az79cb");
    assert_eq!(
        google.token_url.as_deref(),
        Some("http://127.0.0.1:9/token")
    );
    assert_eq!(google.api_url, "http://127.0.0.1:9", "no trailing slash");
    assert_eq!(google.page_size, 200);
    assert_eq!(google.timeout, std::time::Duration::from_secs(5));
    assert_eq!(google.deadline, std::time::Duration::from_secs(10));
    assert_eq!(source.students.year_group_of("/Students/Year 12"), "12");
    assert_eq!(
        source.tutors.as_ref().unwrap().select,
        Select::Google("/Staff".into())
    );
    let groups = source.groups.as_ref().unwrap();
    assert_eq!(groups.select, Select::Google(String::new()));
    assert_eq!(groups.select.to_string(), "of the Google customer");
    assert_eq!(groups.name, "name");
    assert_eq!(groups.match_on.as_deref(), Some("email"));
    assert!(groups.flatten_nested);
    assert_eq!(
        groups.courses[0].courses_for("12a-ma1@north.example"),
        Some(vec!["MA-Y1-AS".to_owned()])
    );

    let config = valid(&with_google(
        "",
        "[schools.sources.groups]\nquery = \"email:y12*\"\n",
    ));
    let source = config.school("north").unwrap().source("google").unwrap();
    let groups = source.groups.as_ref().unwrap();
    assert_eq!(groups.select, Select::Google("email:y12*".into()));
    assert_eq!(groups.select.to_string(), "matching `email:y12*`");
    // The key from an environment variable instead.
    let text =
        with_google("", "").replace("key_file = \"google.json\"", "key_env = \"GOOGLE_KEY\"");
    let source = valid(&text).school("north").unwrap().sources[0].clone();
    let Connection::Google(google) = &source.connection else {
        panic!("{:?}", source.connection);
    };
    assert_eq!(google.key, Secret::Env("GOOGLE_KEY".into()));
}

#[test]
fn google_source_mistakes_are_named_with_their_key() {
    let cases = [
        (
            with_google("key_env = \"K\"", ""),
            "schools.sources.key_file",
            10,
            "exactly one of",
        ),
        (
            with_google("", "").replace("admin = \"it.admin@north.example\"\n", ""),
            "schools.sources.admin",
            10,
            "needs `admin`",
        ),
        (
            with_google("", "").replace("it.admin@north.example", "it-admin"),
            "schools.sources.admin",
            13,
            "not an e-mail address",
        ),
        (
            with_google("api_url = \"admin.googleapis.com\"", ""),
            "schools.sources.api_url",
            14,
            "not an http:// or https:// URL",
        ),
        (
            with_google("token_url = \"ftp://x\"", ""),
            "schools.sources.token_url",
            14,
            "not an http:// or https:// URL",
        ),
        (
            with_google("deadline_secs = 5", ""),
            "schools.sources.deadline_secs",
            14,
            "5 is not between 10 and 86400",
        ),
        (
            with_google("page_size = 1000", ""),
            "schools.sources.page_size",
            14,
            "1000 is not between 1 and 500",
        ),
        (
            with_google("bind_dn = \"cn=x\"", ""),
            "schools.sources.bind_dn",
            14,
            "`bind_dn` is a setting of `ldap` sources; source `google` is `google`",
        ),
        (
            with_google("org = \"org-north\"", ""),
            "schools.sources.org",
            14,
            "`org` is a setting of `oneroster` sources; source `google` is `google`",
        ),
        (
            with_google("incremental = true", ""),
            "schools.sources.incremental",
            14,
            "setting of `ldap` sources",
        ),
        (
            with_google("", "base = \"ou=Students\"\n"),
            "schools.sources.students.base",
            17,
            "use `org_unit`",
        ),
        (
            with_google("", "").replace("org_unit = \"/Students\"", "org_unit = \"Students\""),
            "schools.sources.students.org_unit",
            16,
            "is not an org unit path",
        ),
        (
            with_google(
                "",
                "[schools.sources.tutors]\nyear_group = \"orgUnitPath\"\n",
            ),
            "schools.sources.tutors.org_unit",
            17,
            "needs `org_unit`",
        ),
        (
            with_google("", "[schools.sources.groups]\nbase = \"ou=Groups\"\n"),
            "schools.sources.groups.base",
            18,
            "does not use `groups.base`",
        ),
    ];
    for (text, key, line, expected) in cases {
        let message = invalid(&text, key, line);
        assert!(message.contains(expected), "{key}: {message}");
    }
}

#[test]
fn the_shipped_google_example_is_a_valid_source_once_uncommented() {
    // The commented example after the LDAP source, from its `[[schools.sources]]` to the end
    // of its attributes table.
    let start = SHIPPED
        .find("# [[schools.sources]]\n# id = \"google\"")
        .expect("a commented Google source in config/rollcall.toml");
    let example: String = SHIPPED[start..]
        .lines()
        .take_while(|line| line.starts_with('#'))
        .map(|line| {
            line.strip_prefix("# ")
                .unwrap_or(line.trim_start_matches('#'))
        })
        .filter(|line| {
            line.starts_with('[')
                || line.split_once(" = ").is_some_and(|(key, _)| {
                    key.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
                })
        })
        // One way to the key.
        .filter(|line| !line.starts_with("key_env"))
        .fold(String::new(), |text, line| text + line + "\n");
    let school = "[[schools]]\nid = \"north\"\nname = \"N\"\n\n[[schools.courses]]\n\
                  code = \"MA-Y1-AS\"\ntitle = \"Mathematics Year 1 (AS)\"\n\n";
    let config = valid(&format!("{school}{example}"));
    let source = config.school("north").unwrap().source("google").unwrap();
    assert_eq!(source.kind(), "google");
    assert_eq!(source.students.year_group_of("/Students/Year 12"), "12");
    assert!(source.groups.as_ref().unwrap().flatten_nested);
    assert_eq!(source.attributes.anchor, "id");
}
