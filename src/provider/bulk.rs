//! `/Bulk` (RFC 7644 §3.7): many operations in one request, run one by one through the same
//! provider methods as single requests. `bulkId:` references are replaced by the ids of
//! resources created earlier in the request; an operation whose reference points at a later
//! operation waits until that one has run.

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use super::{BULK_REQUEST_URN, BULK_RESPONSE_URN, Caller, Provider, etag, parse_if_match};
use crate::scim::error::{ScimError, ScimType};
use crate::scim::schema::Kind;

#[derive(Debug)]
struct BulkOperation {
    index: usize,
    method: String,
    bulk_id: Option<String>,
    path: String,
    data: Option<Value>,
    version: Option<String>,
}

impl Provider {
    pub async fn bulk(&self, caller: &Caller, body: Value) -> Result<Value, ScimError> {
        let (fail_on_errors, operations) = self.parse_bulk(body)?;
        let mut created: HashMap<String, String> = HashMap::new();
        let mut results: Vec<Option<Value>> = (0..operations.len()).map(|_| None).collect();
        let mut pending: Vec<BulkOperation> = operations;
        let mut errors = 0usize;
        let defined: Vec<String> = pending.iter().filter_map(|op| op.bulk_id.clone()).collect();

        let mut failed: Vec<String> = Vec::new();
        'rounds: while !pending.is_empty() {
            let mut progressed = false;
            let mut waiting = Vec::new();
            for operation in std::mem::take(&mut pending) {
                let unresolved: Vec<String> = references(&operation)
                    .into_iter()
                    .filter(|r| !created.contains_key(r))
                    .collect();
                let broken = unresolved
                    .iter()
                    .find(|r| !defined.contains(r) || failed.contains(r));
                if broken.is_none() && !unresolved.is_empty() {
                    waiting.push(operation);
                    continue;
                }
                progressed = true;
                let index = operation.index;
                let outcome = match broken {
                    Some(missing) => Err(ScimError::new(
                        409,
                        Some(ScimType::InvalidValue),
                        format!("bulkId:{missing} names no resource created in this request"),
                    )),
                    None => self.run_bulk_operation(caller, &operation, &created).await,
                };
                let response = match outcome {
                    Ok((status, location, version, id)) => {
                        if let (Some(bulk_id), Some(id)) = (&operation.bulk_id, id) {
                            created.insert(bulk_id.clone(), id);
                        }
                        let mut item =
                            json!({ "method": operation.method, "status": status.to_string() });
                        if let Some(location) = location {
                            item["location"] = location.into();
                        }
                        if let Some(version) = version {
                            item["version"] = etag(version).into();
                        }
                        item
                    }
                    Err(error) => {
                        errors += 1;
                        failed.extend(operation.bulk_id.clone());
                        json!({
                            "method": operation.method,
                            "status": error.status.to_string(),
                            "response": error.to_json(),
                        })
                    }
                };
                let mut response = response;
                if let Some(bulk_id) = &operation.bulk_id {
                    response["bulkId"] = bulk_id.clone().into();
                }
                results[index] = Some(response);
                if fail_on_errors.is_some_and(|limit| errors >= limit) {
                    break 'rounds;
                }
            }
            pending = waiting;
            if !progressed {
                // Every remaining operation waits on another: a cycle of bulkIds.
                for operation in pending.drain(..) {
                    errors += 1;
                    let error = ScimError::new(
                        409,
                        Some(ScimType::InvalidValue),
                        "circular bulkId references",
                    );
                    let mut response = json!({
                        "method": operation.method,
                        "status": "409",
                        "response": error.to_json(),
                    });
                    if let Some(bulk_id) = &operation.bulk_id {
                        response["bulkId"] = bulk_id.clone().into();
                    }
                    results[operation.index] = Some(response);
                }
            }
        }
        Ok(json!({
            "schemas": [BULK_RESPONSE_URN],
            "Operations": results.into_iter().flatten().collect::<Vec<_>>(),
        }))
    }

    fn parse_bulk(&self, body: Value) -> Result<(Option<usize>, Vec<BulkOperation>), ScimError> {
        let Value::Object(body) = body else {
            return Err(ScimError::invalid_syntax(
                "the request body must be a JSON object",
            ));
        };
        let mut fail_on_errors = None;
        let mut operations = None;
        for (key, value) in body {
            match key.to_ascii_lowercase().as_str() {
                "schemas" => {
                    let ok = value.as_array().is_some_and(|l| {
                        l.iter().any(|u| {
                            u.as_str()
                                .is_some_and(|u| u.eq_ignore_ascii_case(BULK_REQUEST_URN))
                        })
                    });
                    if !ok {
                        return Err(ScimError::invalid_syntax(format!(
                            "schemas must contain {BULK_REQUEST_URN}"
                        )));
                    }
                }
                "failonerrors" => {
                    fail_on_errors = match value {
                        Value::Null => None,
                        Value::Number(n) if n.as_u64().is_some_and(|n| n >= 1) => {
                            n.as_u64().map(|n| n as usize)
                        }
                        _ => {
                            return Err(ScimError::invalid_value(
                                "failOnErrors must be a positive integer",
                            ));
                        }
                    }
                }
                "operations" => operations = Some(value),
                _ => {
                    return Err(ScimError::invalid_syntax(format!(
                        "unknown member {key} in a BulkRequest"
                    )));
                }
            }
        }
        let Some(Value::Array(list)) = operations else {
            return Err(ScimError::invalid_syntax(
                "a BulkRequest needs an Operations array",
            ));
        };
        let max = self.registry.bulk_max_operations;
        if list.len() > max {
            return Err(ScimError::new(
                413,
                None,
                format!("{} operations exceed maxOperations {max}", list.len()),
            ));
        }
        let mut seen = Vec::new();
        let mut parsed = Vec::with_capacity(list.len());
        for (index, item) in list.into_iter().enumerate() {
            let Value::Object(item) = item else {
                return Err(ScimError::invalid_syntax(format!(
                    "Operations[{index}] must be an object"
                )));
            };
            let mut op = BulkOperation {
                index,
                method: String::new(),
                bulk_id: None,
                path: String::new(),
                data: None,
                version: None,
            };
            for (key, value) in item {
                let text = |v: Value| {
                    v.as_str().map(str::to_owned).ok_or_else(|| {
                        ScimError::invalid_syntax(format!(
                            "Operations[{index}].{key} must be a string"
                        ))
                    })
                };
                match key.to_ascii_lowercase().as_str() {
                    "method" => op.method = text(value)?.to_ascii_uppercase(),
                    "bulkid" => op.bulk_id = Some(text(value)?),
                    "path" => op.path = text(value)?,
                    "version" => op.version = Some(text(value)?),
                    "data" => op.data = Some(value),
                    _ => {
                        return Err(ScimError::invalid_syntax(format!(
                            "unknown member Operations[{index}].{key}"
                        )));
                    }
                }
            }
            if !["POST", "PUT", "PATCH", "DELETE"].contains(&op.method.as_str()) {
                return Err(ScimError::invalid_syntax(format!(
                    "Operations[{index}].method must be POST, PUT, PATCH or DELETE"
                )));
            }
            if op.method == "POST" && op.bulk_id.is_none() {
                return Err(ScimError::invalid_syntax(format!(
                    "Operations[{index}]: POST needs a bulkId"
                )));
            }
            if let Some(bulk_id) = &op.bulk_id {
                if seen.contains(bulk_id) {
                    return Err(ScimError::invalid_syntax(format!(
                        "Operations[{index}]: bulkId {bulk_id} is used twice"
                    )));
                }
                seen.push(bulk_id.clone());
            }
            parsed.push(op);
        }
        Ok((fail_on_errors, parsed))
    }

    /// Runs one operation: `(status, location, version, new id)`.
    async fn run_bulk_operation(
        &self,
        caller: &Caller,
        operation: &BulkOperation,
        created: &HashMap<String, String>,
    ) -> Result<(u16, Option<String>, Option<i64>, Option<String>), ScimError> {
        let path = substitute_text(&operation.path, created);
        let mut segments = path.trim_matches('/').split('/');
        let kind = match segments.next() {
            Some("Users") => Kind::User,
            Some("Groups") => Kind::Group,
            _ => {
                return Err(ScimError::invalid_path(format!(
                    "path `{}` names no resource type",
                    operation.path
                )));
            }
        };
        let id = segments.next().map(str::to_owned);
        if segments.next().is_some() {
            return Err(ScimError::invalid_path(format!(
                "path `{}` is too long",
                operation.path
            )));
        }
        let data = operation.data.clone().map(|d| substitute(d, created));
        let if_match = match &operation.version {
            Some(version) => parse_if_match(version)?,
            None => None,
        };
        let need_data = || {
            data.clone().ok_or_else(|| {
                ScimError::invalid_syntax(format!("{} needs data", operation.method))
            })
        };
        let need_id = || {
            id.clone().ok_or_else(|| {
                ScimError::invalid_path(format!("{} needs a path with an id", operation.method))
            })
        };
        match operation.method.as_str() {
            "POST" => {
                if id.is_some() {
                    return Err(ScimError::invalid_path("POST takes a path without an id"));
                }
                let rendered = self.create(caller, kind, need_data()?).await?;
                let id = rendered
                    .body
                    .get("id")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                Ok((201, Some(rendered.location), Some(rendered.version), id))
            }
            "PUT" => {
                let rendered = self
                    .replace(caller, kind, &need_id()?, need_data()?, if_match)
                    .await?;
                Ok((200, Some(rendered.location), Some(rendered.version), None))
            }
            "PATCH" => {
                let rendered = self
                    .patch(caller, kind, &need_id()?, need_data()?, if_match)
                    .await?;
                Ok((200, Some(rendered.location), Some(rendered.version), None))
            }
            _ => {
                let id = need_id()?;
                self.delete(caller, kind, &id, if_match).await?;
                Ok((
                    204,
                    Some(format!("{}/{}/{id}", caller.base, kind.endpoint())),
                    None,
                    None,
                ))
            }
        }
    }
}

/// Every `bulkId:x` an operation refers to, in its path or anywhere in its data.
fn references(operation: &BulkOperation) -> Vec<String> {
    let mut found = Vec::new();
    collect_text(&operation.path, &mut found);
    if let Some(data) = &operation.data {
        collect(data, &mut found);
    }
    found
}

fn collect(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::String(text) => collect_text(text, found),
        Value::Array(items) => items.iter().for_each(|v| collect(v, found)),
        Value::Object(map) => map.values().for_each(|v| collect(v, found)),
        _ => {}
    }
}

fn collect_text(text: &str, found: &mut Vec<String>) {
    for (at, _) in text.match_indices("bulkId:") {
        let id = bulk_id_at(text, at);
        if !id.is_empty() && !found.iter().any(|known| known == id) {
            found.push(id.to_owned());
        }
    }
}

/// The bulkId named by the `bulkId:` at byte `at` of `text`.
fn bulk_id_at(text: &str, at: usize) -> &str {
    let rest = &text[at + "bulkId:".len()..];
    let end = rest.find(['/', '"', ' ']).unwrap_or(rest.len());
    &rest[..end]
}

fn substitute(value: Value, created: &HashMap<String, String>) -> Value {
    match value {
        Value::String(text) => Value::String(substitute_text(&text, created)),
        Value::Array(items) => {
            Value::Array(items.into_iter().map(|v| substitute(v, created)).collect())
        }
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k, substitute(v, created)))
                .collect::<Map<String, Value>>(),
        ),
        other => other,
    }
}

/// Replaces each whole `bulkId:x` whose `x` was created. Whole references only: with `u1` and
/// `u10` both created, a plain text replace of `bulkId:u1` would turn `bulkId:u10` into `<id>0`.
fn substitute_text(text: &str, created: &HashMap<String, String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    for (at, _) in text.match_indices("bulkId:") {
        if at < copied {
            continue;
        }
        let bulk_id = bulk_id_at(text, at);
        if let Some(id) = created.get(bulk_id) {
            out.push_str(&text[copied..at]);
            out.push_str(id);
            copied = at + "bulkId:".len() + bulk_id.len();
        }
    }
    out.push_str(&text[copied..]);
    out
}
