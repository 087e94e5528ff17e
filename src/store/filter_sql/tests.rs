use std::time::Duration;

use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::SqlitePoolOptions;

use super::*;
use crate::scim::filter;

const SCHOOL_USER: &str = "urn:rollcall:params:scim:schemas:extension:school:2.0:User";
const SCHOOL_GROUP: &str = "urn:rollcall:params:scim:schemas:extension:school:2.0:Group";

fn registry() -> &'static Registry {
    static REGISTRY: std::sync::OnceLock<Registry> = std::sync::OnceLock::new();
    REGISTRY.get_or_init(|| Registry::load().unwrap())
}

fn path(text: &str) -> AttrPath {
    match filter::parse(&format!("{text} pr")).unwrap() {
        Filter::Present(path) => path,
        other => panic!("{other:?}"),
    }
}

fn lowered(kind: Kind, text: &str, dialect: Dialect) -> Sql {
    let filter = filter::parse(text).unwrap();
    lower(registry(), kind, &filter, dialect).unwrap()
}

fn text(value: &str) -> Bind {
    Bind::Text(value.into())
}

#[track_caller]
fn assert_lowered(kind: Kind, filter: &str, dialect: Dialect, sql: &str, binds: &[Bind]) {
    let lowered = lowered(kind, filter, dialect);
    assert_eq!(lowered.text, sql, "{filter}");
    assert_eq!(lowered.binds, binds, "{filter}");
}

#[test]
fn sqlite_lowering_is_unchanged() {
    // Pinned from before dialects existed.
    let cases: &[(&str, &str, &[Bind])] = &[
        (
            r#"userName ne "Alice""#,
            "r.user_name_key IS NOT ?1",
            &[text("alice")],
        ),
        (
            r#"name.familyName co "MIT""#,
            "instr(lower(json_extract(r.data, ?1)), lower(?2)) > 0",
            &[text("$.\"name\".\"familyName\""), text("MIT")],
        ),
        (r#"active eq true"#, "r.active = ?1", &[Bind::Int(1)]),
        (
            r#"not (title pr)"#,
            "(NOT coalesce(coalesce(CAST(json_extract(r.data, ?1) AS TEXT), '') <> '', 0))",
            &[text("$.\"title\"")],
        ),
        (
            r#"emails[primary eq true]"#,
            "EXISTS (SELECT 1 FROM json_each(r.data, ?1) AS e WHERE json_extract(e.value, ?2) = ?3)",
            &[text("$.\"emails\""), text("$.\"primary\""), Bind::Int(1)],
        ),
        (
            r#"emails pr"#,
            "coalesce(json_array_length(r.data, ?1), 0) > 0",
            &[text("$.\"emails\"")],
        ),
        (
            r#"userName sw "b" or meta.lastModified gt "2024-03-01T00:00:00Z""#,
            "(substr(r.user_name_key, 1, length(?1)) = ?1 OR r.modified_at > ?2)",
            &[text("b"), text("2024-03-01T00:00:00.000000Z")],
        ),
    ];
    for (filter, sql, binds) in cases {
        assert_lowered(Kind::User, filter, Dialect::Sqlite, sql, binds);
    }
    let key = sort_key(registry(), Kind::User, &path("emails"), Dialect::Sqlite).unwrap();
    assert_eq!(
        key.text,
        "(SELECT lower(json_extract(e.value, ?2)) FROM json_each(r.data, ?1) AS e \
         ORDER BY json_extract(e.value, ?3) DESC LIMIT 1)"
    );
    assert_eq!(
        key.binds,
        [
            text("$.\"emails\""),
            text("$.\"value\""),
            text("$.\"primary\"")
        ]
    );
}

/// The PostgreSQL form of each kind of comparison, condition and path.
#[test]
fn postgres_lowering() {
    const ELEMENTS: &str = "jsonb_array_elements(CASE WHEN jsonb_typeof((r.data::jsonb) #> $1::text[]) = 'array' \
         THEN (r.data::jsonb) #> $1::text[] END) WITH ORDINALITY AS e(value, n)";
    let user_cases: Vec<(&str, String, Vec<Bind>)> = vec![
        (
            r#"userName eq "ALICE""#,
            "r.user_name_key = $1".into(),
            vec![text("alice")],
        ),
        (
            r#"userName ne "alice""#,
            "r.user_name_key IS DISTINCT FROM $1".into(),
            vec![text("alice")],
        ),
        (
            r#"name.familyName co "MIT""#,
            "strpos(lower(((r.data::jsonb) #>> $1::text[])), lower($2)) > 0".into(),
            vec![text(r#"{"name","familyName"}"#), text("MIT")],
        ),
        (
            r#"userName sw "B""#,
            "starts_with(r.user_name_key, $1)".into(),
            vec![text("b")],
        ),
        (
            r#"displayName ew "%_x""#,
            "right(lower(((r.data::jsonb) #>> $1::text[])), length(lower($2))) = lower($2)".into(),
            vec![text(r#"{"displayName"}"#), text("%_x")],
        ),
        (
            r#"name.familyName gt "a""#,
            r#"lower(((r.data::jsonb) #>> $1::text[])) COLLATE "C" > lower($2)"#.into(),
            vec![text(r#"{"name","familyName"}"#), text("a")],
        ),
        (
            r#"meta.lastModified ge "2024-03-01T01:00:00+01:00""#,
            r#"r.modified_at COLLATE "C" >= $1"#.into(),
            vec![text("2024-03-01T00:00:00.000000Z")],
        ),
        (
            r#"meta.created lt "2024-03-01T00:00:00Z" and meta.created le "2024-03-01T00:00:00Z""#,
            r#"(r.created_at COLLATE "C" < $1 AND r.created_at COLLATE "C" <= $2)"#.into(),
            vec![
                text("2024-03-01T00:00:00.000000Z"),
                text("2024-03-01T00:00:00.000000Z"),
            ],
        ),
        (
            "title pr",
            "coalesce(CAST(((r.data::jsonb) #>> $1::text[]) AS TEXT), '') <> ''".into(),
            vec![text(r#"{"title"}"#)],
        ),
        (
            "active eq true",
            "r.active = ($1 <> 0)".into(),
            vec![Bind::Int(1)],
        ),
        (
            r#"not (title eq "Head") or externalId eq "x""#,
            "((NOT coalesce(lower(((r.data::jsonb) #>> $1::text[])) = lower($2), FALSE)) \
             OR r.external_id = $3)"
                .into(),
            vec![text(r#"{"title"}"#), text("Head"), text("x")],
        ),
        (
            r#"emails[type eq "work"].value eq "Alice@School.org""#,
            "r.id IN (SELECT x.user_id FROM user_emails x WHERE x.school_id = r.school_id \
             AND (x.type_key = $1 AND x.value_key = $2))"
                .into(),
            vec![text("work"), text("alice@school.org")],
        ),
        (
            "emails pr",
            "coalesce(jsonb_array_length(CASE WHEN jsonb_typeof((r.data::jsonb) #> $1::text[]) = 'array' \
             THEN (r.data::jsonb) #> $1::text[] END), 0) > 0"
                .into(),
            vec![text(r#"{"emails"}"#)],
        ),
        (
            "emails[primary eq true]",
            format!(
                "EXISTS (SELECT 1 FROM {ELEMENTS} WHERE (CASE WHEN jsonb_typeof(e.value #> $2::text[]) = 'boolean' \
                 THEN (e.value #>> $2::text[])::boolean END) = ($3 <> 0))"
            ),
            vec![text(r#"{"emails"}"#), text(r#"{"primary"}"#), Bind::Int(1)],
        ),
        (
            r#"groups.value eq "g1""#,
            "EXISTS (SELECT 1 FROM group_members x JOIN groups g ON g.id = x.group_id \
             WHERE x.member_id = r.id AND x.group_id = $1)"
                .into(),
            vec![text("g1")],
        ),
        (
            &*Box::leak(format!(r#"{SCHOOL_USER}:yearGroup eq "12""#).into_boxed_str()),
            "lower(((r.data::jsonb) #>> $1::text[])) = lower($2)".into(),
            vec![text(&format!(r#"{{"{SCHOOL_USER}","yearGroup"}}"#)), text("12")],
        ),
    ];
    for (filter, sql, binds) in &user_cases {
        assert_lowered(Kind::User, filter, Dialect::Postgres, sql, binds);
    }
    assert_lowered(
        Kind::Group,
        r#"members[value eq "u2" and type eq "User"]"#,
        Dialect::Postgres,
        "EXISTS (SELECT 1 FROM group_members x WHERE x.group_id = r.id \
         AND (x.member_id = $1 AND lower(x.member_type) = lower($2)))",
        &[text("u2"), text("User")],
    );

    let key = sort_key(registry(), Kind::User, &path("emails"), Dialect::Postgres).unwrap();
    assert_eq!(
        key.text,
        format!(
            "(SELECT lower(e.value #>> $2::text[]) FROM {ELEMENTS} \
             ORDER BY e.value #> $3::text[] = 'true'::jsonb DESC NULLS LAST, e.n LIMIT 1) COLLATE \"C\""
        )
    );
    assert_eq!(
        key.binds,
        [
            text(r#"{"emails"}"#),
            text(r#"{"value"}"#),
            text(r#"{"primary"}"#)
        ]
    );
    let key = sort_key(registry(), Kind::User, &path("active"), Dialect::Postgres).unwrap();
    assert_eq!(key.text, "r.active");
    let key = sort_key(
        registry(),
        Kind::User,
        &path("name.givenName"),
        Dialect::Postgres,
    )
    .unwrap();
    assert_eq!(
        key.text,
        r#"lower(((r.data::jsonb) #>> $1::text[])) COLLATE "C""#
    );
}

#[test]
fn numbers_compare_as_numbers() {
    let attr: Attribute = serde_json::from_str(r#"{"name": "score", "type": "decimal"}"#).unwrap();
    let number = |n: &str| CompValue::Number(n.parse().unwrap());
    let mut sql = Sql::new(Dialect::Postgres);
    let expr = sql.json_value(sql.doc(), &["score"], attr.kind, true);
    let condition = compare(
        &mut sql,
        &expr,
        &attr,
        Case::Exact,
        CompareOp::Gt,
        &number("2.4"),
        "score",
    )
    .unwrap();
    assert_eq!(
        condition,
        "(CASE WHEN jsonb_typeof((r.data::jsonb) #> $1::text[]) = 'number' \
         THEN ((r.data::jsonb) #>> $1::text[])::numeric END) > $2::numeric"
    );
    assert_eq!(sql.binds, [text(r#"{"score"}"#), Bind::Float(2.4)]);
    let mut sql = Sql::new(Dialect::Sqlite);
    let expr = sql.json_value(sql.doc(), &["score"], attr.kind, true);
    let condition = compare(
        &mut sql,
        &expr,
        &attr,
        Case::Exact,
        CompareOp::Ne,
        &number("10"),
        "score",
    )
    .unwrap();
    assert_eq!(condition, "json_extract(r.data, ?1) IS NOT ?2");
    assert_eq!(sql.binds, [text("$.\"score\""), Bind::Int(10)]);
}

#[test]
fn renumber_shifts_markers_outside_strings() {
    assert_eq!(
        renumber("a = ?1 AND b = ?12 AND c = '?1'", 2, Dialect::Sqlite),
        "a = ?3 AND b = ?14 AND c = '?1'"
    );
    assert_eq!(
        renumber(
            "a = $1 AND b = $12::text[] AND c = '$1' AND d$1 = ?1",
            2,
            Dialect::Postgres
        ),
        "a = $3 AND b = $14::text[] AND c = '$1' AND d$1 = ?1"
    );
}

#[test]
fn order_terms_put_nulls_where_sqlite_does() {
    assert_eq!(order_term("k", false, Dialect::Sqlite), "k ASC");
    assert_eq!(order_term("k", true, Dialect::Sqlite), "k DESC");
    assert_eq!(
        order_term("k", false, Dialect::Postgres),
        "k ASC NULLS FIRST"
    );
    assert_eq!(
        order_term("k", true, Dialect::Postgres),
        "k DESC NULLS LAST"
    );
}

// --- the same filters run on both databases ---

const SCHEMA: &str = "
CREATE TABLE users (
    id TEXT PRIMARY KEY, school_id TEXT NOT NULL, source TEXT NOT NULL,
    user_name TEXT NOT NULL, user_name_key TEXT NOT NULL, external_id TEXT,
    active BOOLEAN NOT NULL, data TEXT NOT NULL,
    created_at TEXT NOT NULL, modified_at TEXT NOT NULL, version BIGINT NOT NULL
);
CREATE TABLE user_emails (
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    school_id TEXT NOT NULL, type_key TEXT, value_key TEXT NOT NULL
);
CREATE TABLE groups (
    id TEXT PRIMARY KEY, school_id TEXT NOT NULL, source TEXT NOT NULL,
    display_name TEXT NOT NULL, display_name_key TEXT NOT NULL, external_id TEXT,
    data TEXT NOT NULL, created_at TEXT NOT NULL, modified_at TEXT NOT NULL,
    version BIGINT NOT NULL
);
CREATE TABLE group_members (
    group_id TEXT NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    member_id TEXT NOT NULL, member_type TEXT NOT NULL,
    PRIMARY KEY (group_id, member_id)
);
";

fn rows() -> String {
    let user =
        |id: &str, name: &str, external: &str, active: bool, modified: &str, data: String| {
            format!(
                "INSERT INTO users VALUES ('{id}', 's1', 'scim', '{name}', '{name}', {external}, \
             {}, '{data}', '2024-01-01T00:00:00.000000Z', '{modified}T00:00:00.000000Z', 1);\n",
                if active { "TRUE" } else { "FALSE" }
            )
        };
    let mut sql = String::new();
    sql += &user(
        "u1",
        "alice",
        "'ext-1'",
        true,
        "2024-05-01",
        format!(
            r#"{{"userName":"alice","name":{{"givenName":"Alice","familyName":"Smith"}},"displayName":"Alice Smith","emails":[{{"value":"a@home.org","type":"home"}},{{"value":"alice@school.org","type":"work","primary":true}}],"{SCHOOL_USER}":{{"yearGroup":"12","studentNumber":"S1"}},"score":10}}"#
        ),
    );
    sql += &user(
        "u2",
        "bob",
        "NULL",
        false,
        "2024-01-01",
        format!(
            r#"{{"userName":"bob","name":{{"familyName":"jones"}},"title":"","emails":[{{"value":"bob@home.org","type":"home"}}],"{SCHOOL_USER}":{{"yearGroup":"11"}},"score":2.5}}"#
        ),
    );
    sql += &user(
        "u3",
        "carol",
        "NULL",
        true,
        "2024-06-01",
        format!(
            r#"{{"userName":"carol","name":{{"givenName":"carol","familyName":"_Ng"}},"displayName":"Carol 100%_x","title":"Head","emails":[],"{SCHOOL_USER}":{{"yearGroup":"12","studentNumber":"s3"}},"score":null}}"#
        ),
    );
    sql += &user(
        "u4",
        "dave",
        "NULL",
        true,
        "2024-03-01",
        r#"{"userName":"dave","displayName":"Dave 1000x"}"#.to_owned(),
    );
    // Another school's user matches nothing.
    sql += "INSERT INTO users VALUES ('v1', 's2', 'scim', 'alice', 'alice', 'ext-1', TRUE, \
            '{\"userName\":\"alice\"}', '2024-01-01T00:00:00.000000Z', \
            '2024-05-01T00:00:00.000000Z', 1);\n";
    sql += "INSERT INTO user_emails VALUES ('u1', 's1', 'home', 'a@home.org'), \
            ('u1', 's1', 'work', 'alice@school.org'), ('u2', 's1', 'home', 'bob@home.org');\n";
    sql += &format!(
        "INSERT INTO groups VALUES ('g1', 's1', 'scim', 'Year 12', 'year 12', NULL, \
         '{{\"displayName\":\"Year 12\",\"{SCHOOL_GROUP}\":{{\"courses\":[\
         {{\"value\":\"MA1\",\"display\":\"Maths\",\"implied\":false}},\
         {{\"value\":\"PH\",\"display\":\"Physics\",\"implied\":true}}]}}}}', \
         '2024-01-01T00:00:00.000000Z', '2024-01-01T00:00:00.000000Z', 1), \
         ('g2', 's1', 'scim', 'Staff', 'staff', NULL, '{{\"displayName\":\"Staff\"}}', \
         '2024-01-01T00:00:00.000000Z', '2024-01-01T00:00:00.000000Z', 1);\n"
    );
    sql += "INSERT INTO group_members VALUES ('g1', 'u1', 'User'), ('g1', 'u3', 'User'), \
            ('g2', 'u2', 'User'), ('g2', 'g1', 'Group');\n";
    sql
}

/// Filters and the ids they select.
fn filter_cases() -> Vec<(Kind, String, &'static str)> {
    let user = |filter: &str, ids| (Kind::User, filter.to_owned(), ids);
    let group = |filter: &str, ids| (Kind::Group, filter.to_owned(), ids);
    vec![
        user(r#"userName eq "ALICE""#, "u1"),
        user(r#"userName ne "alice""#, "u2 u3 u4"),
        user(r#"userName sw "B""#, "u2"),
        user(r#"id eq "u2""#, "u2"),
        user(r#"name.familyName co "MIT""#, "u1"),
        // Byte order: "_" sorts before "a".
        user(r#"name.familyName gt "a""#, "u1 u2"),
        user(r#"name.familyName lt "a""#, "u3"),
        // No wildcards: % and _ are themselves.
        user(r#"displayName ew "%_x""#, "u3"),
        user(r#"displayName co "100%""#, "u3"),
        user(r#"displayName sw "dave 1""#, "u4"),
        user("title pr", "u3"),
        user("externalId pr", "u1"),
        user("title eq null", "u1 u2 u4"),
        user("title ne null", "u3"),
        user("active eq true", "u1 u3 u4"),
        user("active ne true", "u2"),
        user("active eq false", "u2"),
        user(r#"meta.lastModified gt "2024-03-01T00:00:00Z""#, "u1 u3"),
        user(
            r#"meta.lastModified ge "2024-03-01T01:00:00+01:00""#,
            "u1 u3 u4",
        ),
        user(r#"meta.lastModified lt "2024-03-01T00:00:00Z""#, "u2"),
        user(r#"meta.lastModified le "2024-03-01T00:00:00Z""#, "u2 u4"),
        user(r#"meta.resourceType eq "User""#, "u1 u2 u3 u4"),
        user(
            r#"emails[type eq "work"].value eq "ALICE@school.org""#,
            "u1",
        ),
        user(r#"emails[type eq "work" and value co "school"]"#, "u1"),
        user(r#"emails.value ew "home.org""#, "u1 u2"),
        user("emails pr", "u1 u2"),
        user("emails[primary eq true]", "u1"),
        user("emails[not (primary eq true)]", "u1 u2"),
        user(r#"groups.value eq "g1""#, "u1 u3"),
        user(r#"groups[display eq "STAFF"]"#, "u2"),
        user("groups pr", "u1 u2 u3"),
        user(&format!(r#"{SCHOOL_USER}:yearGroup eq "12""#), "u1 u3"),
        user(&format!(r#"{SCHOOL_USER}:studentNumber sw "S""#), "u1"),
        user(r#"not (title eq "Head")"#, "u1 u2 u4"),
        user(r#"userName eq "bob" or title eq "head""#, "u2 u3"),
        user(
            r#"active eq true and (not (emails pr) or name.givenName le "b")"#,
            "u1 u3 u4",
        ),
        group(r#"displayName eq "YEAR 12""#, "g1"),
        group(r#"members.value eq "u1""#, "g1"),
        group(r#"members[value eq "g1" and type eq "group"]"#, "g2"),
        group("members pr", "g1 g2"),
        group(
            &format!(r#"{SCHOOL_GROUP}:courses[implied eq false and value sw "MA"]"#),
            "g1",
        ),
        group(
            &format!(r#"not ({SCHOOL_GROUP}:courses[implied eq true])"#),
            "g2",
        ),
    ]
}

/// `sortBy`, descending, and the ids in order.
fn sort_cases() -> Vec<(&'static str, bool, &'static str)> {
    vec![
        ("userName", false, "u1 u2 u3 u4"),
        ("name.familyName", false, "u4 u3 u2 u1"),
        ("name.familyName", true, "u1 u2 u3 u4"),
        // The primary address, else the first; none sorts first ascending, last descending.
        ("emails", false, "u3 u4 u1 u2"),
        ("emails", true, "u2 u1 u3 u4"),
        ("title", false, "u1 u4 u2 u3"),
        ("active", false, "u2 u1 u3 u4"),
        ("meta.lastModified", true, "u3 u1 u4 u2"),
    ]
}

/// `score` is a decimal in no served schema: compared through `compare` directly.
fn number_cases() -> Vec<(CompareOp, &'static str, &'static str)> {
    use CompareOp::*;
    vec![
        (Gt, "5", "u1"),
        (Le, "2.5", "u2"),
        (Eq, "10", "u1"),
        (Ne, "10", "u2 u3 u4"),
        (Ge, "2.4", "u1 u2"),
        (Lt, "11", "u1 u2"),
    ]
}

/// Every query of the cases, in `dialect`, selecting ids of school `s1`.
fn queries(dialect: Dialect) -> Vec<(String, String, Vec<Bind>, &'static str)> {
    let school = match dialect {
        Dialect::Sqlite => "?1",
        Dialect::Postgres => "$1",
    };
    let mut out = Vec::new();
    for (kind, filter, ids) in filter_cases() {
        let sql = lowered(kind, &filter, dialect);
        let table = match kind {
            Kind::User => "users",
            Kind::Group => "groups",
        };
        let query = format!(
            "SELECT r.id FROM {table} r WHERE r.school_id = {school} AND ({}) ORDER BY r.id",
            renumber(&sql.text, 1, dialect)
        );
        out.push((filter, query, sql.binds, ids));
    }
    for (sort_by, descending, ids) in sort_cases() {
        let key = sort_key(registry(), Kind::User, &path(sort_by), dialect).unwrap();
        let query = format!(
            "SELECT r.id FROM users r WHERE r.school_id = {school} ORDER BY {}, r.id",
            order_term(&renumber(&key.text, 1, dialect), descending, dialect)
        );
        out.push((
            format!("sortBy={sort_by} {descending}"),
            query,
            key.binds,
            ids,
        ));
    }
    let attr: Attribute = serde_json::from_str(r#"{"name": "score", "type": "decimal"}"#).unwrap();
    for (op, number, ids) in number_cases() {
        let mut sql = Sql::new(dialect);
        let expr = sql.json_value(sql.doc(), &["score"], attr.kind, true);
        let value = CompValue::Number(number.parse().unwrap());
        let condition = compare(&mut sql, &expr, &attr, Case::Exact, op, &value, "score").unwrap();
        let query = format!(
            "SELECT r.id FROM users r WHERE r.school_id = {school} AND ({}) ORDER BY r.id",
            renumber(&condition, 1, dialect)
        );
        out.push((format!("score {op:?} {number}"), query, sql.binds, ids));
    }
    out
}

macro_rules! run_all {
    ($pool:expr, $dialect:expr) => {{
        let mut failures = Vec::new();
        for (name, query, binds, expected) in queries($dialect) {
            let mut q = sqlx::query_scalar::<_, String>(&query).bind("s1");
            for bind in &binds {
                q = match bind {
                    Bind::Text(text) => q.bind(text.clone()),
                    Bind::Int(i) => q.bind(*i),
                    Bind::Float(f) => q.bind(*f),
                };
            }
            match q.fetch_all($pool).await {
                Ok(ids) if ids.join(" ") == expected => {}
                Ok(ids) => failures.push(format!(
                    "{:?} {name}: got {:?}, expected {expected:?}\n  {query}",
                    $dialect,
                    ids.join(" ")
                )),
                Err(error) => failures.push(format!("{:?} {name}: {error}\n  {query}", $dialect)),
            }
        }
        failures
    }};
}

#[tokio::test]
async fn filters_select_the_same_rows_on_sqlite() {
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect("sqlite::memory:")
        .await
        .unwrap();
    sqlx::raw_sql(&format!("{SCHEMA}{}", rows()))
        .execute(&pool)
        .await
        .unwrap();
    let failures = run_all!(&pool, Dialect::Sqlite);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn filters_select_the_same_rows_on_postgres() {
    // The server the integration tests use (`ROLLCALL_TEST_POSTGRES_URL`, a URL ending in a
    // database to connect to first), with another database in place of its path.
    let url = std::env::var("ROLLCALL_TEST_POSTGRES_URL")
        .ok()
        .filter(|url| !url.is_empty())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let server = url
        .rsplit_once('/')
        .map_or(url.as_str(), |(server, _)| server)
        .to_owned();
    let connect = |database: String| {
        let url = format!("{server}/{database}");
        async move {
            PgPoolOptions::new()
                .max_connections(2)
                .acquire_timeout(Duration::from_secs(5))
                .connect(&url)
                .await
        }
    };
    let admin = match connect("postgres".into()).await {
        Ok(pool) => pool,
        Err(error) if std::env::var("CI").as_deref() != Ok("true") => {
            println!("skipped: PostgreSQL at {url} is unreachable: {error}");
            return;
        }
        Err(error) => panic!("PostgreSQL at {url} is unreachable: {error}"),
    };
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let database = format!("rollcall_filter_{}_{nanos}", std::process::id());
    sqlx::raw_sql(&format!("CREATE DATABASE {database}"))
        .execute(&admin)
        .await
        .unwrap();
    let outcome = async {
        let pool = connect(database.clone())
            .await
            .map_err(|e| vec![e.to_string()])?;
        sqlx::raw_sql(&format!("{SCHEMA}{}", rows()))
            .execute(&pool)
            .await
            .map_err(|e| vec![e.to_string()])?;
        let failures = run_all!(&pool, Dialect::Postgres);
        pool.close().await;
        if failures.is_empty() {
            Ok(())
        } else {
            Err(failures)
        }
    }
    .await;
    sqlx::raw_sql(&format!("DROP DATABASE {database} WITH (FORCE)"))
        .execute(&admin)
        .await
        .unwrap();
    admin.close().await;
    if let Err(failures) = outcome {
        panic!("{}", failures.join("\n"));
    }
}
