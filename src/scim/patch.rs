//! PATCH (RFC 7644 §3.5.2): parsing a PatchOp request and applying its operations to a
//! resource document. The result is checked again by [`super::resource::check`], so a PATCH can
//! never store what a PUT could not.
//!
//! Beyond the RFC's letter, it takes what real clients send: op names in any case, no-path
//! operations whose value keys are dotted (`name.givenName`) or URN-qualified, `remove` of
//! `members` with a value list, and `replace` of `emails[type eq "work"].value` when no work
//! address exists yet (the element is created, as Microsoft Entra ID expects).

use serde_json::{Map, Value};

use super::error::ScimError;
use super::filter::{self, AttrPath, CompValue, CompareOp, Filter, PatchPath};
use super::resource::boolean;
use super::schema::{AttrType, Attribute, Kind, Mutability, Owner, Registry, Resolved};

pub const PATCH_URN: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Add,
    Remove,
    Replace,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Operation {
    pub op: Op,
    /// The path as sent (kept for messages and for whole-extension paths).
    pub path: Option<String>,
    pub value: Option<Value>,
}

/// Parses a PatchOp request body.
pub fn parse(body: Value) -> Result<Vec<Operation>, ScimError> {
    let Value::Object(body) = body else {
        return Err(ScimError::invalid_syntax(
            "the request body must be a JSON object",
        ));
    };
    let mut operations = None;
    for (key, value) in body {
        if key.eq_ignore_ascii_case("schemas") {
            let ok = value.as_array().is_some_and(|list| {
                list.iter().any(|urn| {
                    urn.as_str()
                        .is_some_and(|u| u.eq_ignore_ascii_case(PATCH_URN))
                })
            });
            if !ok {
                return Err(ScimError::invalid_syntax(format!(
                    "schemas must contain {PATCH_URN}"
                )));
            }
        } else if key.eq_ignore_ascii_case("Operations") {
            operations = Some(value);
        } else {
            return Err(ScimError::invalid_syntax(format!(
                "unknown member {key} in a PatchOp"
            )));
        }
    }
    let Some(Value::Array(list)) = operations else {
        return Err(ScimError::invalid_syntax(
            "a PatchOp needs an Operations array",
        ));
    };
    if list.is_empty() {
        return Err(ScimError::invalid_syntax("Operations is empty"));
    }
    list.into_iter()
        .enumerate()
        .map(|(index, item)| {
            let Value::Object(item) = item else {
                return Err(ScimError::invalid_syntax(format!(
                    "Operations[{index}] must be an object"
                )));
            };
            let mut op = None;
            let mut path = None;
            let mut value = None;
            for (key, v) in item {
                match key.to_ascii_lowercase().as_str() {
                    "op" => op = v.as_str().map(str::to_ascii_lowercase),
                    "path" => match v {
                        Value::String(p) => path = Some(p),
                        Value::Null => {}
                        _ => {
                            return Err(ScimError::invalid_path(format!(
                                "Operations[{index}].path must be a string"
                            )));
                        }
                    },
                    "value" => value = Some(v),
                    _ => {
                        return Err(ScimError::invalid_syntax(format!(
                            "unknown member Operations[{index}].{key}"
                        )));
                    }
                }
            }
            let op = match op.as_deref() {
                Some("add") => Op::Add,
                Some("remove") => Op::Remove,
                Some("replace") => Op::Replace,
                other => {
                    return Err(ScimError::invalid_syntax(format!(
                        "Operations[{index}].op must be add, remove or replace, not {other:?}"
                    )));
                }
            };
            if op != Op::Remove && value.as_ref().is_none_or(Value::is_null) {
                return Err(ScimError::invalid_value(format!(
                    "Operations[{index}] needs a value"
                )));
            }
            if op == Op::Remove && path.is_none() {
                return Err(ScimError::no_target(format!(
                    "Operations[{index}]: remove needs a path"
                )));
            }
            Ok(Operation { op, path, value })
        })
        .collect()
}

/// Applies operations in order to `doc` (the resource without id and meta; a group's members
/// as `[{"value": id}]`). All or nothing: the caller discards `doc` on error.
pub fn apply(
    registry: &Registry,
    kind: Kind,
    doc: &mut Map<String, Value>,
    operations: &[Operation],
) -> Result<(), ScimError> {
    for operation in operations {
        let value = operation.value.clone();
        match &operation.path {
            Some(path) => apply_path(registry, kind, doc, operation.op, path, value)?,
            None => {
                let Some(Value::Object(members)) = value else {
                    return Err(ScimError::invalid_value(
                        "an operation without a path needs an object value",
                    ));
                };
                for (key, value) in members {
                    if let Some(schema) = registry.extension(kind, &key) {
                        // `"urn:…:enterprise:2.0:User": {"department": "…"}` sets each member.
                        let Value::Object(inner) = value else {
                            return Err(ScimError::invalid_value(format!(
                                "{key} must be an object"
                            )));
                        };
                        for (name, value) in inner {
                            if name.eq_ignore_ascii_case("schemas") {
                                continue;
                            }
                            let path = format!("{}:{name}", schema.id);
                            apply_path(registry, kind, doc, operation.op, &path, Some(value))?;
                        }
                        continue;
                    }
                    if ["id", "meta", "schemas"]
                        .iter()
                        .any(|k| k.eq_ignore_ascii_case(&key))
                    {
                        continue; // Okta echoes the id in group renames.
                    }
                    apply_path(registry, kind, doc, operation.op, &key, Some(value))?;
                }
            }
        }
    }
    Ok(())
}

fn apply_path(
    registry: &Registry,
    kind: Kind,
    doc: &mut Map<String, Value>,
    op: Op,
    path_text: &str,
    value: Option<Value>,
) -> Result<(), ScimError> {
    // A whole extension: `replace` with path `urn:…:enterprise:2.0:User`.
    if let Some(schema) = registry.extension(kind, path_text) {
        let urn = schema.id.clone();
        return match (op, value) {
            (Op::Remove, _) => {
                doc.remove(&urn);
                Ok(())
            }
            (_, Some(Value::Object(mut members))) => {
                members.retain(|name, _| !name.eq_ignore_ascii_case("schemas"));
                let target = doc.entry(urn).or_insert_with(|| Value::Object(Map::new()));
                if op == Op::Replace {
                    *target = Value::Object(members);
                } else if let Value::Object(existing) = target {
                    existing.extend(members);
                }
                Ok(())
            }
            _ => Err(ScimError::invalid_value(format!("{urn} must be an object"))),
        };
    }
    let path = filter::parse_path(path_text)
        .map_err(|e| ScimError::invalid_path(format!("`{path_text}`: {e}")))?;
    let PatchPath {
        attr: attr_path,
        filter: value_filter,
        sub: filter_sub,
    } = path;
    let resolved = registry
        .resolve(kind, &attr_path)
        .map_err(|e| ScimError::invalid_path(format!("`{path_text}`: {e}")))?;
    let filter_sub = match &filter_sub {
        Some(name) => Some(resolved.attr.sub(name).ok_or_else(|| {
            ScimError::invalid_path(format!(
                "`{path_text}`: unknown attribute {}.{name}",
                resolved.attr.name
            ))
        })?),
        None => None,
    };
    let leaf = filter_sub.or(resolved.sub).unwrap_or(resolved.attr);
    if resolved.attr.mutability == Mutability::ReadOnly || leaf.mutability == Mutability::ReadOnly {
        return Err(ScimError::mutability(format!(
            "{} is read-only",
            resolved.display()
        )));
    }
    if resolved.owner == Owner::Common && resolved.attr.name != "externalId" {
        return Err(ScimError::mutability(format!(
            "{} is read-only",
            resolved.display()
        )));
    }
    let container = container(doc, &resolved)?;
    let name = resolved.attr.name.clone();

    if let Some(value_filter) = value_filter {
        if !resolved.attr.multi_valued || resolved.sub.is_some() {
            return Err(ScimError::invalid_path(format!(
                "`{path_text}`: [...] needs a multi-valued attribute"
            )));
        }
        return apply_filtered(
            container,
            resolved.attr,
            op,
            &value_filter,
            filter_sub,
            value,
            path_text,
        );
    }

    match (resolved.sub, op) {
        (Some(sub), Op::Remove) => match container.get_mut(&name) {
            Some(Value::Object(object)) => {
                object.remove(&sub.name);
            }
            Some(Value::Array(items)) => {
                for item in items.iter_mut().filter_map(Value::as_object_mut) {
                    item.remove(&sub.name);
                }
            }
            _ => {}
        },
        (Some(sub), _) => {
            let value = value.unwrap_or(Value::Null);
            if resolved.attr.multi_valued {
                // `emails.value` replaced: every element's value (RFC 7644 §3.5.2.3).
                if let Some(Value::Array(items)) = container.get_mut(&name) {
                    for item in items.iter_mut().filter_map(Value::as_object_mut) {
                        item.insert(sub.name.clone(), value.clone());
                    }
                } else {
                    let mut element = Map::new();
                    element.insert(sub.name.clone(), value);
                    container.insert(name, Value::Array(vec![Value::Object(element)]));
                }
            } else {
                let target = container
                    .entry(name)
                    .or_insert_with(|| Value::Object(Map::new()));
                if !target.is_object() {
                    *target = Value::Object(Map::new());
                }
                if let Value::Object(object) = target {
                    object.insert(sub.name.clone(), value);
                }
            }
        }
        (None, Op::Remove) => {
            let given = value.filter(|v| !v.is_null());
            match (resolved.attr.multi_valued, given) {
                (true, Some(given)) => {
                    // Entra's and Okta's member removal: `{"path":"members","value":[{"value":"…"}]}`.
                    let doomed: Vec<Value> = as_list(given);
                    if let Some(Value::Array(items)) = container.get_mut(&name) {
                        items.retain(|item| !doomed.iter().any(|d| same_element(d, item)));
                        if items.is_empty() {
                            container.remove(&name);
                        }
                    }
                }
                _ => {
                    container.remove(&name);
                }
            }
        }
        (None, Op::Add) if resolved.attr.multi_valued => {
            let additions = as_list(value.unwrap_or(Value::Null));
            let entry = container
                .entry(name)
                .or_insert_with(|| Value::Array(Vec::new()));
            if !entry.is_array() {
                *entry = Value::Array(vec![entry.take()]);
            }
            if let Value::Array(items) = entry {
                let makes_primary = additions
                    .iter()
                    .any(|a| a.get("primary").and_then(boolean) == Some(true));
                if makes_primary {
                    // A new primary value demotes the old one (RFC 7643 §2.4).
                    for item in items.iter_mut().filter_map(Value::as_object_mut) {
                        item.remove("primary");
                    }
                }
                for addition in additions {
                    if !items.iter().any(|item| same_element(&addition, item)) {
                        items.push(addition);
                    }
                }
            }
        }
        (None, Op::Add | Op::Replace)
            if resolved.attr.kind == AttrType::Complex && !resolved.attr.multi_valued =>
        {
            // Adding to or replacing a single complex attribute merges sub-attributes: RFC 7644
            // §3.5.2.3 leaves those the value does not name unchanged.
            match (container.get_mut(&name), value) {
                (Some(Value::Object(existing)), Some(Value::Object(new))) => existing.extend(new),
                (_, value) => {
                    container.insert(name, value.unwrap_or(Value::Null));
                }
            }
        }
        (None, _) => {
            container.insert(name, value.unwrap_or(Value::Null));
        }
    }
    Ok(())
}

/// The object holding a resolved attribute: the document, or its extension's object (created
/// when absent).
fn container<'d>(
    doc: &'d mut Map<String, Value>,
    resolved: &Resolved<'_>,
) -> Result<&'d mut Map<String, Value>, ScimError> {
    match resolved.owner {
        Owner::Extension(urn) => doc
            .entry(urn.to_owned())
            .or_insert_with(|| Value::Object(Map::new()))
            .as_object_mut()
            .ok_or_else(|| ScimError::invalid_value(format!("{urn} must be an object"))),
        _ => Ok(doc),
    }
}

fn apply_filtered(
    container: &mut Map<String, Value>,
    attr: &Attribute,
    op: Op,
    value_filter: &Filter,
    sub: Option<&Attribute>,
    value: Option<Value>,
    path_text: &str,
) -> Result<(), ScimError> {
    let items = match container.get_mut(&attr.name) {
        Some(Value::Array(items)) => std::mem::take(items),
        _ => Vec::new(),
    };
    let mut matched = 0;
    let mut kept = Vec::with_capacity(items.len());
    for mut item in items {
        if !matches(attr, &item, value_filter)? {
            kept.push(item);
            continue;
        }
        matched += 1;
        match (op, sub) {
            (Op::Remove, None) => continue,
            (Op::Remove, Some(sub)) => {
                if let Value::Object(object) = &mut item {
                    object.remove(&sub.name);
                }
            }
            (_, Some(sub)) => {
                if let Value::Object(object) = &mut item {
                    object.insert(sub.name.clone(), value.clone().unwrap_or(Value::Null));
                }
            }
            (Op::Add, None) | (Op::Replace, None) => match (&mut item, value.clone()) {
                (Value::Object(object), Some(Value::Object(new))) => {
                    if op == Op::Replace {
                        *object = new;
                    } else {
                        object.extend(new);
                    }
                }
                (_, Some(new)) => item = new,
                (_, None) => {}
            },
        }
        kept.push(item);
    }
    if matched == 0 && op != Op::Remove {
        // Entra ID replaces `emails[type eq "work"].value` on users that have no work address
        // yet: create the element from the filter's equality terms.
        let mut element = equalities(value_filter)
            .ok_or_else(|| ScimError::no_target(format!("`{path_text}` matches no value")))?;
        match (sub, value) {
            (Some(sub), Some(value)) => {
                element.insert(sub.name.clone(), value);
            }
            (None, Some(Value::Object(new))) => element.extend(new),
            _ => {
                return Err(ScimError::no_target(format!(
                    "`{path_text}` matches no value"
                )));
            }
        }
        kept.push(Value::Object(element));
    }
    if kept.is_empty() {
        container.remove(&attr.name);
    } else {
        container.insert(attr.name.clone(), Value::Array(kept));
    }
    Ok(())
}

/// `type eq "work" and primary eq true` as an element, or `None` for any other filter.
fn equalities(filter: &Filter) -> Option<Map<String, Value>> {
    match filter {
        Filter::Compare {
            path,
            op: CompareOp::Eq,
            value,
        } if path.urn.is_none() && path.sub.is_none() => {
            let mut element = Map::new();
            element.insert(path.name.clone(), comp_to_json(value));
            Some(element)
        }
        Filter::And(a, b) => {
            let mut element = equalities(a)?;
            element.extend(equalities(b)?);
            Some(element)
        }
        _ => None,
    }
}

fn comp_to_json(value: &CompValue) -> Value {
    match value {
        CompValue::Null => Value::Null,
        CompValue::Bool(b) => Value::Bool(*b),
        CompValue::Number(n) => Value::Number(n.clone()),
        CompValue::String(s) => Value::String(s.clone()),
    }
}

fn as_list(value: Value) -> Vec<Value> {
    match value {
        Value::Array(items) => items,
        Value::Null => Vec::new(),
        single => vec![single],
    }
}

/// Two values of a multi-valued attribute are the same element when their `value`s agree
/// (or, for elements without one, when they are equal).
fn same_element(a: &Value, b: &Value) -> bool {
    match (a.get("value"), b.get("value")) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

/// Evaluates a `[...]` filter against one element of a multi-valued attribute.
pub fn matches(container: &Attribute, element: &Value, filter: &Filter) -> Result<bool, ScimError> {
    Ok(match filter {
        Filter::And(a, b) => matches(container, element, a)? && matches(container, element, b)?,
        Filter::Or(a, b) => matches(container, element, a)? || matches(container, element, b)?,
        Filter::Not(inner) => !matches(container, element, inner)?,
        Filter::ValuePath { attr, .. } => {
            return Err(ScimError::invalid_filter(format!(
                "{attr}[...] cannot be nested"
            )));
        }
        Filter::Present(path) => {
            let (value, _) = element_value(container, element, path)?;
            !matches!(value, None | Some(Value::Null))
                && value != Some(&Value::String(String::new()))
        }
        Filter::Compare { path, op, value } => {
            let (actual, attr) = element_value(container, element, path)?;
            compare(actual, attr, *op, value)
        }
    })
}

fn element_value<'v>(
    container: &'v Attribute,
    element: &'v Value,
    path: &AttrPath,
) -> Result<(Option<&'v Value>, &'v Attribute), ScimError> {
    if container.sub_attributes.is_empty() && path.name.eq_ignore_ascii_case("value") {
        return Ok((Some(element), container));
    }
    let attr = container.sub(&path.name).ok_or_else(|| {
        ScimError::invalid_filter(format!(
            "unknown attribute {}.{}",
            container.name, path.name
        ))
    })?;
    Ok((element.get(&attr.name), attr))
}

fn compare(actual: Option<&Value>, attr: &Attribute, op: CompareOp, expected: &CompValue) -> bool {
    use std::cmp::Ordering;
    let ordering: Option<Ordering> = match (actual, expected) {
        (None | Some(Value::Null), CompValue::Null) => Some(Ordering::Equal),
        (None | Some(Value::Null), _) | (_, CompValue::Null) => None,
        (Some(actual), CompValue::Bool(b)) => boolean(actual).map(|a| a.cmp(b)),
        (Some(Value::Number(a)), CompValue::Number(b)) => a
            .as_f64()
            .zip(b.as_f64())
            .and_then(|(a, b)| a.partial_cmp(&b)),
        (Some(Value::String(a)), CompValue::String(b)) => {
            if attr.kind == AttrType::DateTime
                && let (Some(a), Some(b)) =
                    (crate::store::parse_time(a), crate::store::parse_time(b))
            {
                return ordered(op, a.cmp(&b));
            }
            let (a, b) = if attr.case_exact {
                (a.clone(), b.clone())
            } else {
                (a.to_lowercase(), b.to_lowercase())
            };
            return match op {
                CompareOp::Co => a.contains(&b),
                CompareOp::Sw => a.starts_with(&b),
                CompareOp::Ew => a.ends_with(&b),
                _ => ordered(op, a.cmp(&b)),
            };
        }
        _ => None,
    };
    match ordering {
        Some(ordering) => ordered(op, ordering),
        None => op == CompareOp::Ne && !matches!(expected, CompValue::Null),
    }
}

fn ordered(op: CompareOp, ordering: std::cmp::Ordering) -> bool {
    use std::cmp::Ordering::*;
    match op {
        CompareOp::Eq => ordering == Equal,
        CompareOp::Ne => ordering != Equal,
        CompareOp::Gt => ordering == Greater,
        CompareOp::Ge => ordering != Less,
        CompareOp::Lt => ordering == Less,
        CompareOp::Le => ordering != Greater,
        CompareOp::Co | CompareOp::Sw | CompareOp::Ew => ordering == Equal,
    }
}

#[cfg(test)]
mod tests;
