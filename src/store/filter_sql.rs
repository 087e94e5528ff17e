//! Lowers a SCIM filter AST to a SQL condition with bound parameters, for SQLite or PostgreSQL.
//!
//! Attribute paths are resolved against the served schemas, so case rules follow each
//! attribute's `caseExact`, and an unknown attribute is an `invalidFilter` error before any SQL
//! runs. Indexed columns serve `id`, `userName`, `externalId`, `displayName`, `active`, `meta`
//! timestamps, e-mail addresses and memberships; every other attribute is read from the JSON
//! document. No filter text ever reaches the SQL string: only schema names and numbered markers
//! (`?1` on SQLite, `$1` on PostgreSQL) do.
//!
//! Both dialects mean the same. On PostgreSQL the document (JSON text, kept byte for byte) is
//! read as `(r.data::jsonb)`; a number or a boolean is read as one only when the JSON holds one
//! (a cast never fails on a bad document); text orders byte by byte (`COLLATE "C"`) as SQLite's
//! BINARY collation does; and `IS DISTINCT FROM` stands for SQLite's null-safe `IS NOT`.

use crate::scim::filter::{AttrPath, CompValue, CompareOp, Filter};
use crate::scim::schema::{AttrType, Attribute, Kind, Owner, Registry, Resolved};

use super::format_time;

/// The SQL dialect to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Dialect {
    /// `?N` markers, `json_extract`/`json_each` over the JSON text.
    Sqlite,
    /// `$N` markers, `jsonb` operators over `r.data::jsonb`.
    Postgres,
}

/// A value bound to a marker.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Bind {
    Text(String),
    Int(i64),
    Float(f64),
}

/// A SQL condition over the table aliased `r` and its parameters, in order.
#[derive(Debug)]
pub(super) struct Sql {
    pub text: String,
    pub binds: Vec<Bind>,
    dialect: Dialect,
}

impl Sql {
    fn new(dialect: Dialect) -> Sql {
        Sql {
            text: String::new(),
            binds: Vec::new(),
            dialect,
        }
    }

    /// Adds a parameter and returns its numbered marker (`?3`, `$3`), which may be used many
    /// times.
    fn bind(&mut self, value: Bind) -> String {
        self.binds.push(value);
        match self.dialect {
            Dialect::Sqlite => format!("?{}", self.binds.len()),
            Dialect::Postgres => format!("${}", self.binds.len()),
        }
    }

    /// Binds a path of member names and returns the expression for it: a JSON path for
    /// SQLite's JSON functions, a `text[]` for PostgreSQL's `#>`/`#>>`.
    fn path(&mut self, names: &[&str]) -> String {
        match self.dialect {
            Dialect::Sqlite => self.bind(Bind::Text(json_path(names))),
            Dialect::Postgres => format!("{}::text[]", self.bind(Bind::Text(pg_path(names)))),
        }
    }

    /// The value at `names` inside the JSON `base` (`e.value` itself with no names), as SQL
    /// compares it. SQLite's `json_extract` gives text, a number or 0/1 as stored; PostgreSQL
    /// gives text, or (when `typed`) a `numeric` or `boolean` for such an attribute, NULL when
    /// the JSON holds something else.
    fn json_value(&mut self, base: &str, names: &[&str], kind: AttrType, typed: bool) -> String {
        match self.dialect {
            Dialect::Sqlite => {
                if names.is_empty() {
                    return base.to_owned();
                }
                let path = self.path(names);
                format!("json_extract({base}, {path})")
            }
            Dialect::Postgres => {
                let (json, text) = if names.is_empty() {
                    (base.to_owned(), format!("{base} #>> '{{}}'"))
                } else {
                    let path = self.path(names);
                    (format!("{base} #> {path}"), format!("{base} #>> {path}"))
                };
                let cast = match kind {
                    AttrType::Integer | AttrType::Decimal if typed => ("number", "numeric"),
                    AttrType::Boolean if typed => ("boolean", "boolean"),
                    _ => return format!("({text})"),
                };
                format!(
                    "(CASE WHEN jsonb_typeof({json}) = '{}' THEN ({text})::{} END)",
                    cast.0, cast.1
                )
            }
        }
    }

    /// A `FROM` item iterating, as `e.value`, the elements of the array at `names` in the
    /// row's document. PostgreSQL numbers them as `e.n`, from 1.
    fn elements(&mut self, names: &[&str]) -> String {
        let path = self.path(names);
        match self.dialect {
            Dialect::Sqlite => format!("json_each(r.data, {path}) AS e"),
            Dialect::Postgres => {
                let array = format!("{PG_DOC} #> {path}");
                format!(
                    "jsonb_array_elements(CASE WHEN jsonb_typeof({array}) = 'array' THEN {array} END) \
                     WITH ORDINALITY AS e(value, n)"
                )
            }
        }
    }

    /// The row's document as the JSON functions take it.
    fn doc(&self) -> &'static str {
        match self.dialect {
            Dialect::Sqlite => "r.data",
            Dialect::Postgres => PG_DOC,
        }
    }

    /// Null-safe inequality.
    fn distinct(&self) -> &'static str {
        match self.dialect {
            Dialect::Sqlite => "IS NOT",
            Dialect::Postgres => "IS DISTINCT FROM",
        }
    }
}

/// The document column, read as `jsonb` (it is stored as text, to keep its bytes).
const PG_DOC: &str = "(r.data::jsonb)";

pub(super) fn lower(
    registry: &Registry,
    kind: Kind,
    filter: &Filter,
    dialect: Dialect,
) -> Result<Sql, String> {
    let mut sql = Sql::new(dialect);
    let text = Lowering { registry, kind }.filter(&mut sql, filter, Scope::Root)?;
    sql.text = text;
    Ok(sql)
}

/// An `ORDER BY` expression for `sortBy`; [`order_term`] adds the direction.
pub(super) fn sort_key(
    registry: &Registry,
    kind: Kind,
    path: &AttrPath,
    dialect: Dialect,
) -> Result<Sql, String> {
    let resolved = registry.resolve(kind, path)?;
    let mut sql = Sql::new(dialect);
    let lowering = Lowering { registry, kind };
    let text = if resolved.attr.multi_valued {
        // RFC 7644 §3.4.2.3: a multi-valued attribute sorts by its primary (or first) value.
        let leaf = resolved.sub.map(|s| s.name.as_str()).unwrap_or("value");
        let names = resolved.json_path();
        let container = &names[..names.len() - usize::from(resolved.sub.is_some())];
        match dialect {
            Dialect::Sqlite => {
                let path = sql.path(container);
                let sub = sql.path(&[leaf]);
                let primary = sql.path(&["primary"]);
                format!(
                    "(SELECT lower(json_extract(e.value, {sub})) FROM json_each(r.data, {path}) AS e \
                     ORDER BY json_extract(e.value, {primary}) DESC LIMIT 1)"
                )
            }
            Dialect::Postgres => {
                let elements = sql.elements(container);
                let sub = sql.path(&[leaf]);
                let primary = sql.path(&["primary"]);
                format!(
                    "(SELECT lower(e.value #>> {sub}) FROM {elements} \
                     ORDER BY e.value #> {primary} = 'true'::jsonb DESC NULLS LAST, e.n LIMIT 1) \
                     COLLATE \"C\""
                )
            }
        }
    } else {
        let leaf = resolved.leaf();
        let (expr, _) = lowering.root_expr(&mut sql, &resolved, true)?;
        let expr = if leaf.kind == AttrType::String && !leaf.case_exact && !expr.starts_with("r.") {
            format!("lower({expr})")
        } else {
            expr
        };
        let text = !matches!(
            leaf.kind,
            AttrType::Integer | AttrType::Decimal | AttrType::Boolean
        );
        if dialect == Dialect::Postgres && text {
            format!("{expr} COLLATE \"C\"")
        } else {
            expr
        }
    };
    sql.text = text;
    Ok(sql)
}

/// `key ASC` or `key DESC`, with SQLite's place for NULLs (first ascending, last descending),
/// which PostgreSQL must be told.
pub(super) fn order_term(key: &str, descending: bool, dialect: Dialect) -> String {
    match (dialect, descending) {
        (Dialect::Sqlite, false) => format!("{key} ASC"),
        (Dialect::Sqlite, true) => format!("{key} DESC"),
        (Dialect::Postgres, false) => format!("{key} ASC NULLS FIRST"),
        (Dialect::Postgres, true) => format!("{key} DESC NULLS LAST"),
    }
}

/// Shifts the markers (`?N` or `$N`) of a fragment by `by`, so it can follow `by` earlier
/// parameters. Markers inside string literals are left alone.
pub(super) fn renumber(text: &str, by: usize, dialect: Dialect) -> String {
    let marker = match dialect {
        Dialect::Sqlite => '?',
        Dialect::Postgres => '$',
    };
    let mut out = String::with_capacity(text.len() + 8);
    let mut chars = text.chars().peekable();
    let mut in_string = false;
    // On PostgreSQL `$` may also be part of an identifier (`a$1`): not a marker.
    let mut in_word = false;
    while let Some(c) = chars.next() {
        out.push(c);
        if c == '\'' {
            in_string = !in_string;
        } else if c == marker && !in_string && !in_word {
            let mut digits = String::new();
            while let Some(d) = chars.next_if(char::is_ascii_digit) {
                digits.push(d);
            }
            match digits.parse::<usize>() {
                Ok(n) => out.push_str(&(n + by).to_string()),
                Err(_) => out.push_str(&digits),
            }
            continue;
        }
        in_word = dialect == Dialect::Postgres && (c.is_alphanumeric() || c == '_' || c == '$');
    }
    out
}

/// A JSON path for SQLite's JSON functions, every member name quoted.
fn json_path(names: &[&str]) -> String {
    let mut path = String::from("$");
    for name in names {
        path.push_str(".\"");
        path.push_str(name);
        path.push('"');
    }
    path
}

/// A PostgreSQL `text[]` literal of member names, every one quoted: `{"name","givenName"}`.
fn pg_path(names: &[&str]) -> String {
    let quoted: Vec<String> = names
        .iter()
        .map(|name| format!("\"{}\"", name.replace('\\', "\\\\").replace('"', "\\\"")))
        .collect();
    format!("{{{}}}", quoted.join(","))
}

/// Which element an attribute is read from.
#[derive(Clone, Copy)]
enum Scope<'a> {
    /// The resource row `r`.
    Root,
    /// An element of a multi-valued attribute, iterated as `e.value`.
    Element(&'a Attribute),
    /// A row `x` of `user_emails`.
    Email,
    /// A row `x` of `group_members` (joined to the group as `g` for a user's `groups`).
    Membership { of_user: bool },
}

struct Lowering<'a> {
    registry: &'a Registry,
    kind: Kind,
}

/// How an expression's text compares: as stored, or lower-cased by us before storing.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Case {
    /// Compare exactly.
    Exact,
    /// Compare with SQL `lower()` on both sides.
    Fold,
    /// The column already holds a lower-cased key: lower the operand in Rust.
    Key,
}

impl<'a> Lowering<'a> {
    fn filter(&self, sql: &mut Sql, filter: &Filter, scope: Scope<'a>) -> Result<String, String> {
        Ok(match filter {
            Filter::And(left, right) => format!(
                "({} AND {})",
                self.filter(sql, left, scope)?,
                self.filter(sql, right, scope)?
            ),
            Filter::Or(left, right) => format!(
                "({} OR {})",
                self.filter(sql, left, scope)?,
                self.filter(sql, right, scope)?
            ),
            Filter::Not(inner) => {
                let inner = self.filter(sql, inner, scope)?;
                match sql.dialect {
                    Dialect::Sqlite => format!("(NOT coalesce({inner}, 0))"),
                    Dialect::Postgres => format!("(NOT coalesce({inner}, FALSE))"),
                }
            }
            Filter::Present(path) => self.present(sql, path, scope)?,
            Filter::Compare { path, op, value } => {
                self.compare_path(sql, path, *op, value, scope)?
            }
            Filter::ValuePath { attr, filter } => {
                if !matches!(scope, Scope::Root) {
                    return Err(format!("{attr}[...] cannot be nested inside another [...]"));
                }
                let resolved = self.registry.resolve(self.kind, attr)?;
                if resolved.sub.is_some() || !resolved.attr.multi_valued {
                    return Err(format!(
                        "{}[...] needs a multi-valued attribute",
                        resolved.display()
                    ));
                }
                self.any(sql, &resolved, filter)?
            }
        })
    }

    /// A condition on the elements of a multi-valued attribute: true when one element matches.
    fn any(
        &self,
        sql: &mut Sql,
        resolved: &Resolved<'a>,
        inner: &Filter,
    ) -> Result<String, String> {
        let attr = resolved.attr;
        let only = |allowed: &[&str]| {
            names_in(inner)
                .iter()
                .all(|n| allowed.iter().any(|a| a.eq_ignore_ascii_case(n)))
        };
        match (self.kind, resolved.owner, attr.name.as_str()) {
            (Kind::User, Owner::Core, "emails") if only(&["type", "value"]) => {
                let condition = self.filter(sql, inner, Scope::Email)?;
                Ok(format!(
                    "r.id IN (SELECT x.user_id FROM user_emails x WHERE x.school_id = r.school_id AND {condition})"
                ))
            }
            (Kind::Group, Owner::Core, "members") if only(&["type", "value"]) => {
                let condition = self.filter(sql, inner, Scope::Membership { of_user: false })?;
                Ok(format!(
                    "EXISTS (SELECT 1 FROM group_members x WHERE x.group_id = r.id AND {condition})"
                ))
            }
            (Kind::User, Owner::Core, "groups") if only(&["type", "value", "display"]) => {
                let condition = self.filter(sql, inner, Scope::Membership { of_user: true })?;
                Ok(format!(
                    "EXISTS (SELECT 1 FROM group_members x JOIN groups g ON g.id = x.group_id \
                     WHERE x.member_id = r.id AND {condition})"
                ))
            }
            (_, Owner::Core, "members" | "groups") => Err(format!(
                "{} can be filtered on value and type only",
                attr.name
            )),
            _ => {
                // The elements of the attribute itself, also when reached by a dotted
                // sub-attribute (`emails.display pr`): the sub-attribute is `inner`'s.
                let mut path = resolved.json_path();
                if resolved.sub.is_some() {
                    path.pop();
                }
                let elements = sql.elements(&path);
                let condition = self.filter(sql, inner, Scope::Element(attr))?;
                Ok(format!(
                    "EXISTS (SELECT 1 FROM {elements} WHERE {condition})"
                ))
            }
        }
    }

    fn present(&self, sql: &mut Sql, path: &AttrPath, scope: Scope<'a>) -> Result<String, String> {
        match scope {
            Scope::Root => {
                let resolved = self.registry.resolve(self.kind, path)?;
                if resolved.attr.multi_valued {
                    return match resolved.sub {
                        Some(sub) => {
                            let inner = Filter::Present(AttrPath {
                                urn: None,
                                name: sub.name.clone(),
                                sub: None,
                            });
                            self.any(sql, &resolved, &inner)
                        }
                        None => Ok(self.non_empty(sql, &resolved)),
                    };
                }
                let (expr, _) = self.root_expr(sql, &resolved, false)?;
                Ok(format!("coalesce(CAST({expr} AS TEXT), '') <> ''"))
            }
            _ => {
                let (expr, _, _) = self.element_expr(sql, path, scope, false)?;
                Ok(format!("coalesce(CAST({expr} AS TEXT), '') <> ''"))
            }
        }
    }

    fn compare_path(
        &self,
        sql: &mut Sql,
        path: &AttrPath,
        op: CompareOp,
        value: &CompValue,
        scope: Scope<'a>,
    ) -> Result<String, String> {
        // `eq null` and `ne null` ask whether a value is there: read it as text, as `pr` does.
        let typed = !matches!(value, CompValue::Null);
        match scope {
            Scope::Root => {
                let resolved = self.registry.resolve(self.kind, path)?;
                if resolved.attr.multi_valued {
                    // `emails co "x"` and `emails.value co "x"` both mean: some element's value.
                    let sub = match resolved.sub {
                        Some(sub) => sub.name.clone(),
                        None if resolved.attr.kind == AttrType::Complex => {
                            if resolved.attr.sub("value").is_none() {
                                return Err(format!(
                                    "{} has no value to compare",
                                    resolved.display()
                                ));
                            }
                            "value".into()
                        }
                        None => {
                            let elements = sql.elements(&resolved.json_path());
                            let element = sql.json_value("e.value", &[], resolved.attr.kind, typed);
                            let condition = compare(
                                sql,
                                &element,
                                resolved.attr,
                                Case::of(resolved.attr),
                                op,
                                value,
                                &resolved.display(),
                            )?;
                            return Ok(format!(
                                "EXISTS (SELECT 1 FROM {elements} WHERE {condition})"
                            ));
                        }
                    };
                    let inner = Filter::Compare {
                        path: AttrPath {
                            urn: None,
                            name: sub,
                            sub: None,
                        },
                        op,
                        value: value.clone(),
                    };
                    return self.any(sql, &resolved, &inner);
                }
                let (expr, case) = self.root_expr(sql, &resolved, typed)?;
                compare(
                    sql,
                    &expr,
                    resolved.leaf(),
                    case,
                    op,
                    value,
                    &resolved.display(),
                )
            }
            _ => {
                let (expr, attr, case) = self.element_expr(sql, path, scope, typed)?;
                compare(sql, &expr, attr, case, op, value, &path.to_string())
            }
        }
    }

    /// The SQL expression of a single-valued attribute of the resource row; `typed` reads a
    /// number or boolean from the document as one on PostgreSQL (else as text).
    fn root_expr(
        &self,
        sql: &mut Sql,
        resolved: &Resolved<'a>,
        typed: bool,
    ) -> Result<(String, Case), String> {
        let column = |name: &str, case| Ok((format!("r.{name}"), case));
        let sub = resolved.sub.map(|s| s.name.as_str());
        match (self.kind, resolved.owner, resolved.attr.name.as_str(), sub) {
            (_, Owner::Common, "id", None) => column("id", Case::Exact),
            (_, Owner::Common, "externalId", None) => column("external_id", Case::Exact),
            (_, Owner::Common, "meta", Some("created")) => column("created_at", Case::Exact),
            (_, Owner::Common, "meta", Some("lastModified")) => column("modified_at", Case::Exact),
            (_, Owner::Common, "meta", Some("resourceType")) => {
                let kind = sql.bind(Bind::Text(self.kind.name().into()));
                Ok((kind, Case::Exact))
            }
            (_, Owner::Common, "meta", Some("version")) => {
                Ok(("('W/\"' || r.version || '\"')".into(), Case::Exact))
            }
            (_, Owner::Common, _, _) => Err(format!("{} cannot be filtered", resolved.display())),
            (Kind::User, Owner::Core, "userName", None) => column("user_name_key", Case::Key),
            (Kind::User, Owner::Core, "active", None) => column("active", Case::Exact),
            (Kind::Group, Owner::Core, "displayName", None) => {
                column("display_name_key", Case::Key)
            }
            _ => {
                let leaf = resolved.leaf();
                let expr = sql.json_value(sql.doc(), &resolved.json_path(), leaf.kind, typed);
                Ok((expr, Case::of(leaf)))
            }
        }
    }

    /// The SQL expression of a sub-attribute inside `[...]`.
    fn element_expr(
        &self,
        sql: &mut Sql,
        path: &AttrPath,
        scope: Scope<'a>,
        typed: bool,
    ) -> Result<(String, &'a Attribute, Case), String> {
        if path.urn.is_some() || path.sub.is_some() {
            return Err(format!("{path} is not a sub-attribute name"));
        }
        let (container, email_or_member): (&'a Attribute, Option<&str>) = match scope {
            Scope::Element(attr) => (attr, None),
            Scope::Email => (self.attr(Kind::User, "emails")?, Some("email")),
            Scope::Membership { of_user: true } => {
                (self.attr(Kind::User, "groups")?, Some("group"))
            }
            Scope::Membership { of_user: false } => {
                (self.attr(Kind::Group, "members")?, Some("member"))
            }
            Scope::Root => return Err(format!("{path} is not inside [...]")),
        };
        let attr = container
            .sub(&path.name)
            .ok_or_else(|| format!("unknown attribute {}.{}", container.name, path.name))?;
        let name = attr.name.as_str();
        let expr = match (email_or_member, name) {
            (None, _) => {
                let expr = sql.json_value("e.value", &[name], attr.kind, typed);
                return Ok((expr, attr, Case::of(attr)));
            }
            (Some("email"), "value") => "x.value_key",
            (Some("email"), "type") => "x.type_key",
            (Some("member"), "value") => return Ok(("x.member_id".into(), attr, Case::Exact)),
            (Some("member"), "type") => return Ok(("x.member_type".into(), attr, Case::Fold)),
            (Some("group"), "value") => return Ok(("x.group_id".into(), attr, Case::Exact)),
            (Some("group"), "display") => {
                return Ok(("g.display_name_key".into(), attr, Case::Key));
            }
            (Some("group"), "type") => return Ok(("'direct'".into(), attr, Case::Exact)),
            _ => return Err(format!("{}.{name} cannot be filtered", container.name)),
        };
        Ok((expr.into(), attr, Case::Key))
    }

    /// `attr pr` for a multi-valued attribute: it has at least one value.
    fn non_empty(&self, sql: &mut Sql, resolved: &Resolved<'a>) -> String {
        match (self.kind, resolved.owner, resolved.attr.name.as_str()) {
            (Kind::Group, Owner::Core, "members") => {
                "EXISTS (SELECT 1 FROM group_members x WHERE x.group_id = r.id)".into()
            }
            (Kind::User, Owner::Core, "groups") => {
                "EXISTS (SELECT 1 FROM group_members x WHERE x.member_id = r.id)".into()
            }
            _ => {
                let path = sql.path(&resolved.json_path());
                match sql.dialect {
                    Dialect::Sqlite => {
                        format!("coalesce(json_array_length(r.data, {path}), 0) > 0")
                    }
                    // SQLite counts 0 for a value that is not an array; jsonb_array_length fails.
                    Dialect::Postgres => {
                        let array = format!("{PG_DOC} #> {path}");
                        format!(
                            "coalesce(jsonb_array_length(CASE WHEN jsonb_typeof({array}) = 'array' \
                             THEN {array} END), 0) > 0"
                        )
                    }
                }
            }
        }
    }

    fn attr(&self, kind: Kind, name: &str) -> Result<&'a Attribute, String> {
        self.registry
            .top_level(kind, name)
            .map(|(_, attr)| attr)
            .ok_or_else(|| format!("unknown attribute {name}"))
    }
}

impl Case {
    fn of(attr: &Attribute) -> Case {
        if attr.case_exact {
            Case::Exact
        } else {
            Case::Fold
        }
    }
}

/// The attribute names a filter inside `[...]` refers to.
fn names_in(filter: &Filter) -> Vec<&str> {
    match filter {
        Filter::And(a, b) | Filter::Or(a, b) => {
            let mut names = names_in(a);
            names.extend(names_in(b));
            names
        }
        Filter::Not(inner) => names_in(inner),
        Filter::Present(path) | Filter::Compare { path, .. } => vec![path.name.as_str()],
        Filter::ValuePath { attr, .. } => vec![attr.name.as_str()],
    }
}

/// One comparison, typed by the attribute it reads.
fn compare(
    sql: &mut Sql,
    expr: &str,
    attr: &Attribute,
    case: Case,
    op: CompareOp,
    value: &CompValue,
    name: &str,
) -> Result<String, String> {
    use CompareOp::*;
    if let CompValue::Null = value {
        return match op {
            Eq => Ok(format!("coalesce(CAST({expr} AS TEXT), '') = ''")),
            Ne => Ok(format!("coalesce(CAST({expr} AS TEXT), '') <> ''")),
            _ => Err(format!("null can only be compared with eq or ne ({name})")),
        };
    }
    let mismatch = || {
        format!(
            "{name} is a {:?} attribute; {value} does not compare with it",
            attr.kind
        )
    };
    let distinct = sql.distinct();
    match attr.kind {
        AttrType::Boolean => {
            let CompValue::Bool(b) = value else {
                return Err(mismatch());
            };
            // Bound as 0 or 1 in both dialects, so `Bind` needs no boolean: SQLite's booleans
            // are integers; PostgreSQL has no bigint-to-boolean cast, hence `<> 0`.
            let v = sql.bind(Bind::Int(i64::from(*b)));
            let v = match sql.dialect {
                Dialect::Sqlite => v,
                Dialect::Postgres => format!("({v} <> 0)"),
            };
            match op {
                Eq => Ok(format!("{expr} = {v}")),
                Ne => Ok(format!("{expr} {distinct} {v}")),
                _ => Err(format!("{name} is a boolean: use eq or ne")),
            }
        }
        AttrType::Integer | AttrType::Decimal => {
            let CompValue::Number(n) = value else {
                return Err(mismatch());
            };
            let bind = match n.as_i64() {
                Some(i) => Bind::Int(i),
                None => Bind::Float(n.as_f64().ok_or_else(mismatch)?),
            };
            let v = match sql.dialect {
                Dialect::Sqlite => sql.bind(bind),
                Dialect::Postgres => format!("{}::numeric", sql.bind(bind)),
            };
            match op {
                Eq => Ok(format!("{expr} = {v}")),
                Ne => Ok(format!("{expr} {distinct} {v}")),
                Gt => Ok(format!("{expr} > {v}")),
                Ge => Ok(format!("{expr} >= {v}")),
                Lt => Ok(format!("{expr} < {v}")),
                Le => Ok(format!("{expr} <= {v}")),
                Co | Sw | Ew => Err(format!("{name} is a number: co, sw and ew compare text")),
            }
        }
        AttrType::Complex => Err(format!(
            "{name} is complex: compare one of its sub-attributes"
        )),
        AttrType::DateTime if matches!(op, Eq | Ne | Gt | Ge | Lt | Le) => {
            let CompValue::String(text) = value else {
                return Err(mismatch());
            };
            let at = super::parse_time(text)
                .ok_or_else(|| format!("{name} is a dateTime; \"{text}\" is not RFC 3339"))?;
            // Stored meta timestamps share this fixed format, so text order is time order.
            let v = sql.bind(Bind::Text(format_time(at)));
            Ok(text_compare(sql.dialect, expr, &v, op))
        }
        AttrType::String | AttrType::Reference | AttrType::Binary | AttrType::DateTime => {
            let CompValue::String(text) = value else {
                return Err(mismatch());
            };
            let (e, v) = match case {
                Case::Exact => (expr.to_owned(), sql.bind(Bind::Text(text.clone()))),
                Case::Key => (expr.to_owned(), sql.bind(Bind::Text(text.to_lowercase()))),
                Case::Fold => (
                    format!("lower({expr})"),
                    format!("lower({})", sql.bind(Bind::Text(text.clone()))),
                ),
            };
            Ok(text_compare(sql.dialect, &e, &v, op))
        }
    }
}

fn text_compare(dialect: Dialect, e: &str, v: &str, op: CompareOp) -> String {
    use CompareOp::*;
    match dialect {
        Dialect::Sqlite => match op {
            Eq => format!("{e} = {v}"),
            Ne => format!("{e} IS NOT {v}"),
            Gt => format!("{e} > {v}"),
            Ge => format!("{e} >= {v}"),
            Lt => format!("{e} < {v}"),
            Le => format!("{e} <= {v}"),
            Co => format!("instr({e}, {v}) > 0"),
            Sw => format!("substr({e}, 1, length({v})) = {v}"),
            Ew => format!(
                "(length({e}) >= length({v}) AND substr({e}, length({e}) - length({v}) + 1) = {v})"
            ),
        },
        // Order is byte order, as SQLite's BINARY collation, whatever the database's collation.
        Dialect::Postgres => match op {
            Eq => format!("{e} = {v}"),
            Ne => format!("{e} IS DISTINCT FROM {v}"),
            Gt => format!("{e} COLLATE \"C\" > {v}"),
            Ge => format!("{e} COLLATE \"C\" >= {v}"),
            Lt => format!("{e} COLLATE \"C\" < {v}"),
            Le => format!("{e} COLLATE \"C\" <= {v}"),
            Co => format!("strpos({e}, {v}) > 0"),
            Sw => format!("starts_with({e}, {v})"),
            Ew => format!("right({e}, length({v})) = {v}"),
        },
    }
}

#[cfg(test)]
mod tests;
