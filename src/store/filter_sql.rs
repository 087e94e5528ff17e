//! Lowers a SCIM filter AST to a SQL condition with bound parameters.
//!
//! Attribute paths are resolved against the served schemas, so case rules follow each
//! attribute's `caseExact`, and an unknown attribute is an `invalidFilter` error before any SQL
//! runs. Indexed columns serve `id`, `userName`, `externalId`, `displayName`, `active`, `meta`
//! timestamps, e-mail addresses and memberships; every other attribute is read from the JSON
//! document. No filter text ever reaches the SQL string: only schema names and `?` markers do.

use crate::scim::filter::{AttrPath, CompValue, CompareOp, Filter};
use crate::scim::schema::{AttrType, Attribute, Kind, Owner, Registry, Resolved};

use super::format_time;

/// A value bound to a `?` marker.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Bind {
    Text(String),
    Int(i64),
    Float(f64),
}

/// A SQL condition over the table aliased `r` and its parameters, in order.
#[derive(Debug, Default)]
pub(super) struct Sql {
    pub text: String,
    pub binds: Vec<Bind>,
}

impl Sql {
    /// Adds a parameter and returns its numbered marker (`?3`), which may be used many times.
    fn bind(&mut self, value: Bind) -> String {
        self.binds.push(value);
        format!("?{}", self.binds.len())
    }
}

/// Which element an attribute is read from.
#[derive(Clone, Copy)]
enum Scope<'a> {
    /// The resource row `r`.
    Root,
    /// An element of a multi-valued attribute, iterated as `e.value` by `json_each`.
    Element(&'a Attribute),
    /// A row `x` of `user_emails`.
    Email,
    /// A row `x` of `group_members` (joined to the group as `g` for a user's `groups`).
    Membership { of_user: bool },
}

pub(super) fn lower(registry: &Registry, kind: Kind, filter: &Filter) -> Result<Sql, String> {
    let mut sql = Sql::default();
    let text = Lowering { registry, kind }.filter(&mut sql, filter, Scope::Root)?;
    sql.text = text;
    Ok(sql)
}

/// An `ORDER BY` expression for `sortBy`.
pub(super) fn sort_key(registry: &Registry, kind: Kind, path: &AttrPath) -> Result<Sql, String> {
    let resolved = registry.resolve(kind, path)?;
    let mut sql = Sql::default();
    let lowering = Lowering { registry, kind };
    let text = if resolved.attr.multi_valued {
        // RFC 7644 §3.4.2.3: a multi-valued attribute sorts by its primary (or first) value.
        let leaf = resolved.sub.map(|s| s.name.as_str()).unwrap_or("value");
        let container = json_path(
            &resolved.json_path()
                [..resolved.json_path().len() - usize::from(resolved.sub.is_some())],
        );
        let path = sql.bind(Bind::Text(container));
        let sub = sql.bind(Bind::Text(json_path(&[leaf])));
        let primary = sql.bind(Bind::Text(json_path(&["primary"])));
        format!(
            "(SELECT lower(json_extract(e.value, {sub})) FROM json_each(r.data, {path}) AS e \
             ORDER BY json_extract(e.value, {primary}) DESC LIMIT 1)"
        )
    } else {
        let leaf = resolved.leaf();
        let (expr, _) = lowering.root_expr(&mut sql, &resolved)?;
        if leaf.kind == AttrType::String && !leaf.case_exact && !expr.starts_with("r.") {
            format!("lower({expr})")
        } else {
            expr
        }
    };
    sql.text = text;
    Ok(sql)
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
            Filter::Not(inner) => format!("(NOT coalesce({}, 0))", self.filter(sql, inner, scope)?),
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
                let path = sql.bind(Bind::Text(json_path(&resolved.json_path())));
                let condition = self.filter(sql, inner, Scope::Element(attr))?;
                Ok(format!(
                    "EXISTS (SELECT 1 FROM json_each(r.data, {path}) AS e WHERE {condition})"
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
                let (expr, _) = self.root_expr(sql, &resolved)?;
                Ok(format!("coalesce(CAST({expr} AS TEXT), '') <> ''"))
            }
            _ => {
                let (expr, _, _) = self.element_expr(sql, path, scope)?;
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
                            let path = sql.bind(Bind::Text(json_path(&resolved.json_path())));
                            let condition = compare(
                                sql,
                                "e.value",
                                resolved.attr,
                                Case::of(resolved.attr),
                                op,
                                value,
                                &resolved.display(),
                            )?;
                            return Ok(format!(
                                "EXISTS (SELECT 1 FROM json_each(r.data, {path}) AS e WHERE {condition})"
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
                let (expr, case) = self.root_expr(sql, &resolved)?;
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
                let (expr, attr, case) = self.element_expr(sql, path, scope)?;
                compare(sql, &expr, attr, case, op, value, &path.to_string())
            }
        }
    }

    /// The SQL expression of a single-valued attribute of the resource row.
    fn root_expr(&self, sql: &mut Sql, resolved: &Resolved<'a>) -> Result<(String, Case), String> {
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
                let path = sql.bind(Bind::Text(json_path(&resolved.json_path())));
                Ok((
                    format!("json_extract(r.data, {path})"),
                    Case::of(resolved.leaf()),
                ))
            }
        }
    }

    /// The SQL expression of a sub-attribute inside `[...]`.
    fn element_expr(
        &self,
        sql: &mut Sql,
        path: &AttrPath,
        scope: Scope<'a>,
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
                let p = sql.bind(Bind::Text(json_path(&[name])));
                return Ok((format!("json_extract(e.value, {p})"), attr, Case::of(attr)));
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
                let path = sql.bind(Bind::Text(json_path(&resolved.json_path())));
                format!("coalesce(json_array_length(r.data, {path}), 0) > 0")
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
    match attr.kind {
        AttrType::Boolean => {
            let CompValue::Bool(b) = value else {
                return Err(mismatch());
            };
            let v = sql.bind(Bind::Int(i64::from(*b)));
            match op {
                Eq => Ok(format!("{expr} = {v}")),
                Ne => Ok(format!("{expr} IS NOT {v}")),
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
            let v = sql.bind(bind);
            match op {
                Eq => Ok(format!("{expr} = {v}")),
                Ne => Ok(format!("{expr} IS NOT {v}")),
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
            Ok(text_compare(expr, &v, op))
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
            Ok(text_compare(&e, &v, op))
        }
    }
}

fn text_compare(e: &str, v: &str, op: CompareOp) -> String {
    use CompareOp::*;
    match op {
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
    }
}
