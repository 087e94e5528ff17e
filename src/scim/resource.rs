//! SCIM resources as JSON documents: checking a client's document against the schemas, the
//! columns derived from it, rendering a stored document, and attribute projection.

use serde_json::{Map, Value};

use super::error::ScimError;
use super::filter::{AttrPath, Filter};
use super::schema::{AttrType, Attribute, Kind, Mutability, Owner, Registry, Returned};
use crate::store::Index;

/// A client's document after validation: canonical attribute names, typed values, no
/// read-only or null members, and the password (if any) taken out.
#[derive(Debug, Clone, PartialEq)]
pub struct Checked {
    pub data: Map<String, Value>,
    pub password: Option<String>,
    /// A group's member ids, taken out of `data` (`None` if the document had no `members`).
    pub members: Option<Vec<String>>,
}

/// Validates a resource document as sent in POST or PUT, or as left by a PATCH.
pub fn check(registry: &Registry, kind: Kind, body: Value) -> Result<Checked, ScimError> {
    let Value::Object(body) = body else {
        return Err(ScimError::invalid_syntax(
            "the request body must be a JSON object",
        ));
    };
    let mut data = Map::new();
    for (key, value) in body {
        if key.eq_ignore_ascii_case("schemas") {
            check_schemas(&value)?;
            continue;
        }
        if let Some(schema) = registry.extension(kind, &key) {
            let Value::Object(members) = value else {
                if value.is_null() {
                    continue;
                }
                return Err(ScimError::invalid_value(format!("{key} must be an object")));
            };
            let mut extension = Map::new();
            for (name, value) in members {
                if name.eq_ignore_ascii_case("schemas") {
                    continue; // some clients repeat the URN list inside the extension
                }
                let attr = schema.attribute(&name).ok_or_else(|| {
                    ScimError::invalid_syntax(format!("unknown attribute {}:{name}", schema.id))
                })?;
                if let Some(value) =
                    check_attribute(attr, value, &format!("{}:{}", schema.id, attr.name))?
                {
                    extension.insert(attr.name.clone(), value);
                }
            }
            if !extension.is_empty() {
                if let Some(missing) = schema
                    .attributes
                    .iter()
                    .find(|a| a.required && !extension.contains_key(&a.name))
                {
                    return Err(ScimError::invalid_value(format!(
                        "{}:{} is required",
                        schema.id, missing.name
                    )));
                }
                data.insert(schema.id.clone(), Value::Object(extension));
            }
            continue;
        }
        let (owner, attr) = registry
            .top_level(kind, &key)
            .ok_or_else(|| ScimError::invalid_syntax(format!("unknown attribute {key}")))?;
        if owner == Owner::Common && attr.name != "externalId" {
            continue; // id and meta are the server's; RFC 7643 §3.1 says ignore them.
        }
        if let Some(value) = check_attribute(attr, value, &attr.name)? {
            data.insert(attr.name.clone(), value);
        }
    }
    let password = match data.remove("password") {
        Some(Value::String(password)) => Some(password),
        _ => None,
    };
    let members = match kind {
        Kind::Group => data.remove("members").map(|members| {
            members
                .as_array()
                .map(|list| {
                    list.iter()
                        .filter_map(|m| m.get("value").and_then(Value::as_str).map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        }),
        Kind::User => None,
    };
    let required = match kind {
        Kind::User => "userName",
        Kind::Group => "displayName",
    };
    match data.get(required) {
        Some(Value::String(text)) if !text.trim().is_empty() => {}
        _ => return Err(ScimError::invalid_value(format!("{required} is required"))),
    }
    Ok(Checked {
        data,
        password,
        members,
    })
}

fn check_schemas(value: &Value) -> Result<(), ScimError> {
    match value {
        Value::Array(list) if list.iter().all(Value::is_string) => Ok(()),
        _ => Err(ScimError::invalid_syntax(
            "schemas must be an array of URNs",
        )),
    }
}

/// Checks one attribute's value; `None` means unassigned (null, empty list, read-only).
fn check_attribute(attr: &Attribute, value: Value, path: &str) -> Result<Option<Value>, ScimError> {
    if value.is_null() || attr.mutability == Mutability::ReadOnly {
        // Clients may echo read-only values back (Okta sends `groups: []`); they are ignored.
        return Ok(None);
    }
    if attr.multi_valued {
        let items = match value {
            Value::Array(items) => items,
            single => vec![single],
        };
        let mut checked = Vec::with_capacity(items.len());
        let mut primaries = 0;
        for (index, item) in items.into_iter().enumerate() {
            if let Some(item) = check_single(attr, item, &format!("{path}[{index}]"))? {
                if item.get("primary") == Some(&Value::Bool(true)) {
                    primaries += 1;
                }
                checked.push(item);
            }
        }
        if primaries > 1 {
            return Err(ScimError::invalid_value(format!(
                "{path}: only one value may be primary"
            )));
        }
        return Ok((!checked.is_empty()).then_some(Value::Array(checked)));
    }
    check_single(attr, value, path)
}

fn check_single(attr: &Attribute, value: Value, path: &str) -> Result<Option<Value>, ScimError> {
    if value.is_null() {
        return Ok(None);
    }
    let wrong = |expected: &str| {
        ScimError::invalid_value(format!(
            "{path} must be {expected}, not {}",
            kind_of(&value)
        ))
    };
    if let Value::String(text) = &value
        && text.contains('\0')
    {
        // PostgreSQL text cannot hold it; no real value has one.
        return Err(ScimError::invalid_value(format!(
            "{path} holds a NUL character (U+0000)"
        )));
    }
    let checked = match attr.kind {
        AttrType::String | AttrType::Reference | AttrType::Binary => match &value {
            Value::String(_) => value,
            _ => return Err(wrong("a string")),
        },
        AttrType::Boolean => Value::Bool(boolean(&value).ok_or_else(|| wrong("a boolean"))?),
        AttrType::Integer => match &value {
            Value::Number(n) if n.is_i64() || n.is_u64() => value,
            _ => return Err(wrong("an integer")),
        },
        AttrType::Decimal => match &value {
            Value::Number(_) => value,
            _ => return Err(wrong("a number")),
        },
        AttrType::DateTime => match &value {
            Value::String(text) if crate::store::parse_time(text).is_some() => value,
            _ => return Err(wrong("an RFC 3339 date and time")),
        },
        AttrType::Complex => {
            let members = match value {
                Value::Object(members) => members,
                // Entra ID sends the enterprise `manager` as a bare id: it is the `value`.
                Value::String(_) if attr.sub("value").is_some() && !attr.multi_valued => {
                    Map::from_iter([("value".to_owned(), value)])
                }
                _ => return Err(wrong("an object")),
            };
            let mut object = Map::new();
            for (name, value) in members {
                let sub = attr.sub(&name).ok_or_else(|| {
                    ScimError::invalid_syntax(format!("unknown attribute {path}.{name}"))
                })?;
                if let Some(value) = check_single(sub, value, &format!("{path}.{}", sub.name))?
                    && sub.mutability != Mutability::ReadOnly
                {
                    object.insert(sub.name.clone(), value);
                }
            }
            for sub in attr.sub_attributes.iter().filter(|s| s.required) {
                if !object.contains_key(&sub.name) {
                    return Err(ScimError::invalid_value(format!(
                        "{path}.{} is required",
                        sub.name
                    )));
                }
            }
            if object.is_empty() {
                return Ok(None);
            }
            Value::Object(object)
        }
    };
    Ok(Some(checked))
}

/// Booleans as JSON, or as the strings Microsoft Entra ID sends (`"True"`, `"False"`).
pub fn boolean(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Some(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A plain attribute path (`name.givenName`, URN-qualified or not), as `sortBy` and
/// `attributes` take; `None` for anything else, such as a value filter.
pub fn attribute_path(text: &str) -> Option<AttrPath> {
    super::filter::parse_path(text)
        .ok()
        .filter(|path| path.filter.is_none() && path.sub.is_none())
        .map(|path| path.attr)
}

/// Checks that every attribute a filter names exists for this resource type.
pub fn check_filter(registry: &Registry, kind: Kind, filter: &Filter) -> Result<(), String> {
    match filter {
        Filter::And(a, b) | Filter::Or(a, b) => {
            check_filter(registry, kind, a)?;
            check_filter(registry, kind, b)
        }
        Filter::Not(inner) => check_filter(registry, kind, inner),
        Filter::Present(path) | Filter::Compare { path, .. } => {
            registry.resolve(kind, path).map(|_| ())
        }
        Filter::ValuePath { attr, .. } => registry.resolve(kind, attr).map(|_| ()),
    }
}

/// The store columns derived from a checked document.
pub fn index(kind: Kind, data: &Map<String, Value>) -> Index {
    let text = |key: &str| data.get(key).and_then(Value::as_str).map(str::to_owned);
    let name = match kind {
        Kind::User => text("userName"),
        Kind::Group => text("displayName"),
    };
    let emails = data
        .get("emails")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(|email| {
                    let value = email.get("value")?.as_str()?.to_owned();
                    let kind = email.get("type").and_then(Value::as_str).map(str::to_owned);
                    Some((kind, value))
                })
                .collect()
        })
        .unwrap_or_default();
    Index {
        name: name.unwrap_or_default(),
        external_id: text("externalId"),
        active: data.get("active").and_then(Value::as_bool).unwrap_or(true),
        emails,
    }
}

/// The `schemas` list for a document: the core URN and each extension present.
pub fn schemas_of(registry: &Registry, kind: Kind, data: &Map<String, Value>) -> Value {
    let mut urns = vec![Value::from(kind.core_urn())];
    urns.extend(
        registry
            .extension_urns(kind)
            .filter(|urn| data.contains_key(*urn))
            .map(Value::from),
    );
    Value::Array(urns)
}

/// Which attributes a response carries (RFC 7644 §3.4.2.5).
#[derive(Debug, Clone, Default)]
pub struct Projection {
    pub attributes: Vec<AttrPath>,
    pub excluded: Vec<AttrPath>,
}

impl Projection {
    /// Parses the comma-separated `attributes` / `excludedAttributes` parameters.
    pub fn parse(
        registry: &Registry,
        kind: Kind,
        attributes: Option<&str>,
        excluded: Option<&str>,
    ) -> Result<Projection, ScimError> {
        let list = |text: Option<&str>| -> Result<Vec<AttrPath>, ScimError> {
            let mut paths = Vec::new();
            for part in text
                .unwrap_or("")
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
            {
                // A bare extension URN names the whole extension.
                if registry.extension(kind, part).is_some() {
                    paths.push(AttrPath {
                        urn: Some(part.to_owned()),
                        name: String::new(),
                        sub: None,
                    });
                    continue;
                }
                let path = attribute_path(part).ok_or_else(|| {
                    ScimError::invalid_value(format!("`{part}` is not an attribute path"))
                })?;
                registry
                    .resolve(kind, &path)
                    .map_err(ScimError::invalid_value)?;
                paths.push(path);
            }
            Ok(paths)
        };
        Ok(Projection {
            attributes: list(attributes)?,
            excluded: list(excluded)?,
        })
    }

    /// Like [`Projection::parse`], but drops paths this resource type does not have (for
    /// searches across resource types).
    pub fn lenient(
        registry: &Registry,
        kind: Kind,
        attributes: Option<&str>,
        excluded: Option<&str>,
    ) -> Projection {
        let keep = |text: Option<&str>| -> Option<String> {
            let parts: Vec<&str> = text?
                .split(',')
                .filter(|part| Projection::parse(registry, kind, Some(part), None).is_ok())
                .collect();
            Some(parts.join(","))
        };
        let attributes = keep(attributes);
        let excluded = keep(excluded);
        Projection::parse(registry, kind, attributes.as_deref(), excluded.as_deref())
            .unwrap_or_default()
    }

    /// True when the response needs memberships (`members` / `groups`) loaded.
    pub fn wants(&self, kind: Kind, name: &str) -> bool {
        let names = |paths: &[AttrPath]| {
            paths.iter().any(|p| {
                p.urn
                    .as_deref()
                    .is_none_or(|urn| urn.eq_ignore_ascii_case(kind.core_urn()))
                    && p.name.eq_ignore_ascii_case(name)
            })
        };
        if !self.attributes.is_empty() {
            return names(&self.attributes);
        }
        !names(&self.excluded)
    }

    /// True when the response carries attribute `name` of the extension `urn`: asked for (it,
    /// one of its sub-attributes, or the whole extension), or, without `attributes`, not
    /// excluded. The server computes some attributes only for responses that show them.
    pub fn wants_extension(&self, registry: &Registry, kind: Kind, urn: &str, name: &str) -> bool {
        let names = |paths: &[AttrPath], any_sub: bool| {
            paths
                .iter()
                .any(|path| match keys_of(registry, kind, path) {
                    Some((None, key, None)) => key.eq_ignore_ascii_case(urn),
                    Some((Some(extension), attr, sub)) => {
                        extension.eq_ignore_ascii_case(urn)
                            && attr.eq_ignore_ascii_case(name)
                            && (any_sub || sub.is_none())
                    }
                    _ => false,
                })
        };
        if !self.attributes.is_empty() {
            return names(&self.attributes, true);
        }
        !names(&self.excluded, false)
    }

    /// Applies the projection to a rendered resource.
    pub fn apply(&self, registry: &Registry, kind: Kind, resource: &mut Map<String, Value>) {
        let returned_of = |key: &str, sub: Option<&str>| -> Returned {
            let attr = match registry.extension(kind, key) {
                Some(_) => return Returned::Default,
                None => registry.top_level(kind, key).map(|(_, a)| a),
            };
            match (attr, sub) {
                (Some(a), Some(s)) => a.sub(s).map(|s| s.returned).unwrap_or(Returned::Default),
                (Some(a), None) => a.returned,
                (None, _) => Returned::Default,
            }
        };
        let keep_always = |key: &str| {
            key == "schemas" || key == "id" || returned_of(key, None) == Returned::Always
        };
        if !self.attributes.is_empty() {
            let mut kept = Map::new();
            let old = std::mem::take(resource);
            for (key, value) in old {
                if keep_always(&key) {
                    kept.insert(key, value);
                    continue;
                }
                if let Some(value) = select(registry, kind, &key, value, &self.attributes) {
                    kept.insert(key, value);
                }
            }
            *resource = kept;
        } else {
            for path in &self.excluded {
                remove(registry, kind, resource, path, &keep_always);
            }
        }
    }
}

/// The canonical key (and sub-key) a projection path names in a rendered resource.
fn keys_of(
    registry: &Registry,
    kind: Kind,
    path: &AttrPath,
) -> Option<(Option<String>, String, Option<String>)> {
    if path.name.is_empty() {
        return registry
            .extension(kind, path.urn.as_deref()?)
            .map(|s| (None, s.id.clone(), None));
    }
    let resolved = registry.resolve(kind, path).ok()?;
    let sub = resolved.sub.map(|s| s.name.clone());
    Some(match resolved.owner {
        Owner::Extension(urn) => (Some(urn.to_owned()), resolved.attr.name.clone(), sub),
        _ => (None, resolved.attr.name.clone(), sub),
    })
}

fn select(
    registry: &Registry,
    kind: Kind,
    key: &str,
    value: Value,
    wanted: &[AttrPath],
) -> Option<Value> {
    let is_extension = registry.extension(kind, key).is_some();
    let mut whole = false;
    let mut parts: Vec<(String, Option<String>)> = Vec::new();
    for path in wanted {
        let Some((urn, name, sub)) = keys_of(registry, kind, path) else {
            continue;
        };
        match urn {
            None if name == key => match sub {
                None => whole = true,
                Some(sub) => parts.push((sub, None)),
            },
            Some(urn) if is_extension && urn == key => parts.push((name, sub)),
            _ => {}
        }
    }
    if whole {
        return Some(value);
    }
    if parts.is_empty() {
        return None;
    }
    match value {
        Value::Object(object) if is_extension => {
            let mut out = Map::new();
            for (name, sub) in &parts {
                if let Some(v) = object.get(name) {
                    let v = match sub {
                        None => v.clone(),
                        Some(sub) => only_sub(v, sub)?,
                    };
                    out.insert(name.clone(), v);
                }
            }
            (!out.is_empty()).then_some(Value::Object(out))
        }
        other => {
            let subs: Vec<&str> = parts.iter().map(|(s, _)| s.as_str()).collect();
            only_subs(&other, &subs)
        }
    }
}

fn only_sub(value: &Value, sub: &str) -> Option<Value> {
    only_subs(value, &[sub])
}

/// Keeps the named sub-attributes of a complex value (or of each element of a list).
fn only_subs(value: &Value, subs: &[&str]) -> Option<Value> {
    match value {
        Value::Object(object) => {
            let kept: Map<String, Value> = object
                .iter()
                .filter(|(k, _)| subs.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            (!kept.is_empty()).then_some(Value::Object(kept))
        }
        Value::Array(items) => {
            let kept: Vec<Value> = items
                .iter()
                .filter_map(|item| only_subs(item, subs))
                .collect();
            (!kept.is_empty()).then_some(Value::Array(kept))
        }
        _ => None,
    }
}

fn remove(
    registry: &Registry,
    kind: Kind,
    resource: &mut Map<String, Value>,
    path: &AttrPath,
    keep_always: &dyn Fn(&str) -> bool,
) {
    let Some((urn, name, sub)) = keys_of(registry, kind, path) else {
        return;
    };
    let container = match &urn {
        Some(urn) => match resource.get_mut(urn) {
            Some(Value::Object(object)) => object,
            _ => return,
        },
        None => {
            if keep_always(&name) {
                return;
            }
            &mut *resource
        }
    };
    match sub {
        None => {
            container.remove(&name);
        }
        Some(sub) => match container.get_mut(&name) {
            Some(Value::Object(object)) => {
                object.remove(&sub);
            }
            Some(Value::Array(items)) => {
                for item in items.iter_mut() {
                    if let Value::Object(object) = item {
                        object.remove(&sub);
                    }
                }
            }
            _ => {}
        },
    }
    if let Some(urn) = urn
        && resource
            .get(&urn)
            .and_then(Value::as_object)
            .is_some_and(Map::is_empty)
    {
        resource.remove(&urn);
    }
}
