//! Google Workspace: the Admin SDK Directory API read as a service account with domain-wide
//! delegation, acting for one of the domain's admins.
//!
//! A run gets an access token ([`client`]: the JWT bearer grant), lists the users of the
//! students' and the tutors' org units (`users.list`, sub-units included, as Google matches
//! `orgUnitPath`), the groups (`groups.list`) and the members of those that matter
//! (`members.list`: the teaching groups and, with `flatten_nested`, the groups nested in
//! them), and hands them on as directory entries, so that the mapping rules, the plan and its
//! safety checks are those of every source:
//! - a user is `id=<id>,ou=users,o=google` with the API's field names as attributes: `id`,
//!   `primaryEmail`, `name.givenName`, `name.familyName`, `name.fullName`, `orgUnitPath`,
//!   `suspended`, `archived` (`true` or `false`), `aliases`, `externalIds.<type>` (a custom
//!   type under its own name) and `customSchemas.<schema>.<field>`;
//! - a group is `id=<id>,ou=groups,o=google` with `id`, `email`, `name`, `description`,
//!   `aliases`, and `member`: the names of its users and groups (not its `CUSTOMER` member,
//!   everyone).
//!
//! Quotas and server errors are retried with backoff; everything is read within the source's
//! `deadline_secs`, or the run fails and changes nothing.

mod client;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Map, Value};

use super::Progress;
use super::ldap::Entry;
use super::map::Read;
use crate::config::{Google, Groups, Select, Source};
use client::{Client, GROUPS_SCOPE, Key, USERS_SCOPE};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The key cannot be read or is not a service account's.
    #[error("Google Workspace: {0}")]
    Key(String),
    #[error("Google Workspace: {url} refused a token for {account}: {error}{detail}")]
    TokenRefused {
        url: String,
        /// The service account and the admin it acts for.
        account: String,
        /// Google's `error` …
        error: String,
        /// … and `error_description`, with what to do about it.
        detail: String,
    },
    /// 403 other than a quota, or a token refused by the API.
    #[error("Google Workspace: {what}: refused: {detail}")]
    Refused { what: String, detail: String },
    #[error("Google Workspace: {what}: not found: {detail} (is `customer` right?)")]
    NotFound { what: String, detail: String },
    #[error("Google Workspace: {what}: Google answered {detail}")]
    BadRequest { what: String, detail: String },
    #[error(
        "Google Workspace: the {what} org unit `{path}` does not exist (Google answered \
         INVALID_OU_ID); write the path as the Admin console's Directory → Organizational \
         units shows it, from `/`"
    )]
    NoOrgUnit { what: String, path: String },
    #[error("Google Workspace: {url} did not answer within {seconds} s (timeout_secs)")]
    Timeout { url: String, seconds: u64 },
    #[error("Google Workspace: cannot reach {url}: {detail}")]
    Unreachable { url: String, detail: String },
    #[error(
        "Google Workspace: gave up {what} after {seconds} s, at the run's deadline \
         (deadline_secs = {deadline}), with {retried} request(s) retried; the last error: \
         {last}. Nothing was changed"
    )]
    Deadline {
        what: String,
        seconds: u64,
        deadline: u64,
        retried: usize,
        last: String,
    },
    #[error("Google Workspace: {0}")]
    Other(String),
}

/// The scopes a source's run needs: users always, groups when it reads groups. Each must be
/// granted to the service account's client ID (domain-wide delegation).
fn scopes(source: &Source) -> Vec<&'static str> {
    let mut scopes = vec![USERS_SCOPE];
    if source.groups.is_some() {
        scopes.push(GROUPS_SCOPE);
    }
    scopes
}

/// Reads a Google source's users, and its groups with their members, as directory entries.
pub async fn read(source: &Source, google: &Google, progress: Progress<'_>) -> Result<Read, Error> {
    let key = Key::load(&google.key)?;
    let mut client = Client::new(google, key, &scopes(source), google.deadline)?;
    let mut out = Read::default();
    progress(&format!(
        "reading students in org unit {}",
        selected(&source.students.select)?
    ));
    out.students = users(
        &mut client,
        google,
        "students",
        &source.students.select,
        false,
        progress,
    )
    .await?
    .entries;
    if let Some(tutors) = &source.tutors {
        progress(&format!(
            "reading tutors in org unit {}",
            selected(&tutors.select)?
        ));
        out.tutors = users(
            &mut client,
            google,
            "tutors",
            &tutors.select,
            false,
            progress,
        )
        .await?
        .entries;
    }
    if let Some(rules) = &source.groups {
        progress(&format!("reading groups {}", rules.select));
        out.groups = Some(groups(&mut client, google, rules, progress).await?);
    }
    tracing::info!(
        source = %source.id,
        requests = client.requests,
        retried = client.retried,
        tokens = client.tokens,
        "read Google Workspace"
    );
    if client.retried > 0 {
        progress(&format!(
            "{} requests, {} of them retries",
            client.requests, client.retried
        ));
    }
    Ok(out)
}

/// What `rollcall check-config --connect` says about a Google source: each line, and whether
/// it is fine. A token is obtained (or the check fails), then each search reads its first page.
pub async fn check(source: &Source, google: &Google) -> Result<Vec<(String, bool)>, Error> {
    let key = Key::load(&google.key)?;
    // A check answers within a minute whatever the run's deadline.
    let deadline = google.deadline.min(Duration::from_secs(60));
    let mut client = Client::new(google, key, &scopes(source), deadline)?;
    client.authenticate("checking the service account").await?;
    let mut lines = vec![(
        format!(
            "token obtained for {} acting for {} ({})",
            client.client_email(),
            google.admin,
            client.scope()
        ),
        true,
    )];
    let quiet: Progress = &|_| {};
    let mut searches = vec![("students", &source.students.select)];
    if let Some(tutors) = &source.tutors {
        searches.push(("tutors", &tutors.select));
    }
    for (what, select) in searches {
        let place = select.to_string();
        lines.push(
            match users(&mut client, google, what, select, true, quiet).await {
                Ok(listed) if listed.entries.is_empty() => {
                    (format!("{what}: no users {place}"), false)
                }
                Ok(listed) => (
                    format!(
                        "{what}: {} users {place}{}",
                        listed.entries.len(),
                        if listed.more {
                            " on the first page, and more"
                        } else {
                            ""
                        }
                    ),
                    true,
                ),
                // The API itself cannot be had: every search would say the same.
                Err(
                    error @ (Error::Unreachable { .. }
                    | Error::Timeout { .. }
                    | Error::Deadline { .. }),
                ) => return Err(error),
                Err(error) => (format!("{what}: {error}"), false),
            },
        );
    }
    if let Some(rules) = &source.groups {
        let place = rules.select.to_string();
        lines.push(
            match list_groups(&mut client, google, rules, true, quiet).await {
                Ok(listed) if listed.entries.is_empty() => {
                    (format!("groups: no groups {place}"), false)
                }
                Ok(listed) => {
                    let teaching = listed.entries.iter().filter(|g| matters(rules, g)).count();
                    (
                        format!(
                            "groups: {} groups {place}{}, {teaching} of them teaching groups",
                            listed.entries.len(),
                            if listed.more {
                                " on the first page"
                            } else {
                                ""
                            }
                        ),
                        true,
                    )
                }
                Err(error) => (format!("groups: {error}"), false),
            },
        );
    }
    Ok(lines)
}

/// What a Google search selects: an org unit's path for people, a `groups.list` query for
/// groups.
fn selected(select: &Select) -> Result<&str, Error> {
    match select {
        Select::Google(unit) => Ok(unit),
        other => Err(Error::Other(format!(
            "a Google source cannot search {other}"
        ))),
    }
}

/// A `users.list` query for the users in an org unit and its sub-units: the path in single
/// quotes (it may hold spaces), `\` and `'` escaped with a backslash.
pub fn org_unit_query(path: &str) -> String {
    let escaped = path.replace('\\', "\\\\").replace('\'', "\\'");
    format!("orgUnitPath='{escaped}'")
}

/// An API method's URL under the source's `api_url`.
fn endpoint(google: &Google, path: &[&str]) -> Result<reqwest::Url, Error> {
    let mut url = reqwest::Url::parse(&google.api_url)
        .map_err(|e| Error::Other(format!("`api_url` {} is not a URL: {e}", google.api_url)))?;
    url.path_segments_mut()
        .map_err(|()| Error::Other(format!("`api_url` {} is not an http URL", google.api_url)))?
        .pop_if_empty()
        .extend(["admin", "directory", "v1"])
        .extend(path);
    Ok(url)
}

/// Entries read, and whether pages were left unread (a check reads only the first).
struct Listed {
    entries: Vec<Entry>,
    more: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Page<T> {
    #[serde(
        default = "Vec::new",
        alias = "users",
        alias = "groups",
        alias = "members"
    )]
    items: Vec<T>,
    next_page_token: Option<String>,
}

/// The next page's token; an API that hands out the same one twice would never end.
fn next_token(
    current: Option<&String>,
    next: Option<String>,
    what: &str,
) -> Result<Option<String>, Error> {
    match next.filter(|token| !token.is_empty()) {
        Some(next) if Some(&next) == current => Err(Error::Other(format!(
            "{what}: the Directory API handed out the same page token twice"
        ))),
        next => Ok(next),
    }
}

/// Every user in an org unit (`first_page`: only the first page).
async fn users(
    client: &mut Client,
    google: &Google,
    what: &str,
    select: &Select,
    first_page: bool,
    progress: Progress<'_>,
) -> Result<Listed, Error> {
    let unit = selected(select)?;
    let base = endpoint(google, &["users"])?;
    let query = org_unit_query(unit);
    let size = google.page_size.clamp(1, 500).to_string();
    let params = [
        ("customer", google.customer.as_str()),
        ("query", query.as_str()),
        ("maxResults", size.as_str()),
        ("projection", "full"),
        ("showDeleted", "false"),
    ];
    let doing = |page| format!("reading {what} in org unit `{unit}` (page {page})");
    let read = |count| progress(&format!("{what}: {count} read"));
    let (users, more) =
        list::<Map<String, Value>>(client, &base, &params, &doing, first_page, &read)
            .await
            .map_err(|error| match error {
                Error::BadRequest { detail, .. } if detail.contains("INVALID_OU_ID") => {
                    Error::NoOrgUnit {
                        what: what.to_owned(),
                        path: unit.to_owned(),
                    }
                }
                other => other,
            })?;
    Ok(Listed {
        entries: users.iter().map(user_entry).collect(),
        more,
    })
}

/// Every item of a paged list method (`first_page`: only the first), and whether pages were
/// left unread. `doing` names page N in messages; `read` hears the count after each page
/// that has a next.
async fn list<T: serde::de::DeserializeOwned>(
    client: &mut Client,
    base: &reqwest::Url,
    params: &[(&str, &str)],
    doing: &(dyn Fn(usize) -> String + Sync),
    first_page: bool,
    read: &(dyn Fn(usize) + Sync),
) -> Result<(Vec<T>, bool), Error> {
    let mut items = Vec::new();
    let mut token: Option<String> = None;
    for page in 1.. {
        let mut url = base.clone();
        {
            let mut pairs = url.query_pairs_mut();
            pairs.extend_pairs(params);
            if let Some(token) = &token {
                pairs.append_pair("pageToken", token);
            }
        }
        let doing = doing(page);
        let answer: Page<T> = client.get(&url, &doing).await?;
        items.extend(answer.items);
        match next_token(token.as_ref(), answer.next_page_token, &doing)? {
            Some(_) if first_page => return Ok((items, true)),
            Some(next) => {
                read(items.len());
                token = Some(next);
            }
            None => break,
        }
    }
    Ok((items, false))
}

/// The groups a source's query selects, without their members.
async fn list_groups(
    client: &mut Client,
    google: &Google,
    rules: &Groups,
    first_page: bool,
    progress: Progress<'_>,
) -> Result<Listed, Error> {
    let query = selected(&rules.select)?.trim();
    let base = endpoint(google, &["groups"])?;
    let size = google.page_size.clamp(1, 200).to_string();
    let mut params = vec![
        ("customer", google.customer.as_str()),
        ("maxResults", size.as_str()),
    ];
    if !query.is_empty() {
        params.push(("query", query));
    }
    let doing = |page| format!("reading groups (page {page})");
    let read = |count| progress(&format!("groups: {count} read"));
    let (groups, more) =
        list::<Map<String, Value>>(client, &base, &params, &doing, first_page, &read).await?;
    Ok(Listed {
        entries: groups.iter().map(group_entry).collect(),
        more,
    })
}

/// Whether a group's members are worth reading: a teaching group's (by the `teaching` pattern
/// on the name or `match_on` attribute, as the mapping decides).
fn matters(rules: &Groups, entry: &Entry) -> bool {
    let Some(teaching) = &rules.teaching else {
        return true;
    };
    let attribute = rules.match_on.as_deref().unwrap_or(&rules.name);
    teaching.is_match(entry.first(attribute).map(str::trim).unwrap_or_default())
}

/// The groups with the members of those that matter: the teaching groups, and with
/// `flatten_nested` the groups read that are nested in them, at any depth.
async fn groups(
    client: &mut Client,
    google: &Google,
    rules: &Groups,
    progress: Progress<'_>,
) -> Result<Vec<Entry>, Error> {
    let mut entries = list_groups(client, google, rules, false, progress)
        .await?
        .entries;
    let by_id: HashMap<String, usize> = entries
        .iter()
        .enumerate()
        .filter_map(|(index, entry)| Some((entry.first("id")?.to_owned(), index)))
        .collect();
    let mut queue: VecDeque<usize> = (0..entries.len())
        .filter(|&index| matters(rules, &entries[index]))
        .collect();
    let teaching = queue.len();
    progress(&format!(
        "reading the members of {teaching} teaching groups (of {} groups)",
        entries.len()
    ));
    let mut done = HashSet::new();
    while let Some(index) = queue.pop_front() {
        if !done.insert(index) {
            continue;
        }
        let Some(id) = entries[index].first("id").map(str::to_owned) else {
            continue;
        };
        let shown = entries[index].first("email").unwrap_or(&id).to_owned();
        let mut member_dns = Vec::new();
        for member in members(client, google, &id, &shown).await? {
            let Some(member_id) = member.id.filter(|id| !id.is_empty()) else {
                continue;
            };
            match member.kind.as_deref() {
                Some("USER") => member_dns.push(user_dn(&member_id)),
                Some("GROUP") => {
                    member_dns.push(group_dn(&member_id));
                    if rules.flatten_nested
                        && let Some(&nested) = by_id.get(&member_id)
                    {
                        queue.push_back(nested);
                    }
                }
                // CUSTOMER (everyone in the domain) and anything else: no one in particular.
                _ => {}
            }
        }
        entries[index].attrs.insert("member".into(), member_dns);
        if done.len() % 50 == 0 {
            progress(&format!("members of {} groups read", done.len()));
        }
    }
    Ok(entries)
}

/// A `members.list` entry.
#[derive(Deserialize)]
struct Member {
    id: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
}

/// Every member of a group (`shown`: its address, for messages).
async fn members(
    client: &mut Client,
    google: &Google,
    group_id: &str,
    shown: &str,
) -> Result<Vec<Member>, Error> {
    let base = endpoint(google, &["groups", group_id, "members"])?;
    let size = google.page_size.clamp(1, 200).to_string();
    let doing = |page| format!("reading the members of {shown} (page {page})");
    let (members, _) = list(
        client,
        &base,
        &[("maxResults", &size)],
        &doing,
        false,
        &|_| {},
    )
    .await?;
    Ok(members)
}

pub fn user_dn(id: &str) -> String {
    format!("id={},ou=users,o=google", ldap3::dn_escape(id))
}

pub fn group_dn(id: &str) -> String {
    format!("id={},ou=groups,o=google", ldap3::dn_escape(id))
}

/// A JSON value as an attribute's text: strings, numbers and booleans.
fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Bool(flag) => Some(flag.to_string()),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

type Attributes = HashMap<String, Vec<String>>;

fn put(attrs: &mut Attributes, name: String, value: &Value) {
    match value {
        Value::Array(values) => {
            for value in values {
                // A multi-valued custom field holds `{"type", "value"}` objects.
                let value = value.get("value").unwrap_or(value);
                put(attrs, name.clone(), value);
            }
        }
        value => {
            if let Some(text) = scalar(value) {
                attrs.entry(name).or_default().push(text);
            }
        }
    }
}

/// A `users.list` user as a directory entry.
pub fn user_entry(user: &Map<String, Value>) -> Entry {
    let mut attrs = Attributes::new();
    for field in [
        "id",
        "primaryEmail",
        "orgUnitPath",
        "suspended",
        "archived",
        "aliases",
    ] {
        if let Some(value) = user.get(field) {
            put(&mut attrs, field.to_owned(), value);
        }
    }
    if let Some(Value::Object(name)) = user.get("name") {
        for part in ["givenName", "familyName", "fullName"] {
            if let Some(value) = name.get(part) {
                put(&mut attrs, format!("name.{part}"), value);
            }
        }
    }
    if let Some(Value::Array(ids)) = user.get("externalIds") {
        for external in ids {
            let kind = match external.get("type").and_then(Value::as_str) {
                Some("custom") | None => external.get("customType").and_then(Value::as_str),
                kind => kind,
            };
            if let (Some(kind), Some(value)) = (kind, external.get("value")) {
                put(&mut attrs, format!("externalIds.{kind}"), value);
            }
        }
    }
    if let Some(Value::Object(schemas)) = user.get("customSchemas") {
        for (schema, fields) in schemas {
            let Value::Object(fields) = fields else {
                continue;
            };
            for (field, value) in fields {
                put(&mut attrs, format!("customSchemas.{schema}.{field}"), value);
            }
        }
    }
    let id = attrs
        .get("id")
        .and_then(|ids| ids.first())
        .cloned()
        .unwrap_or_default();
    Entry {
        dn: user_dn(&id),
        attrs,
        bin_attrs: HashMap::new(),
    }
}

/// A `groups.list` group as a directory entry, without its members.
pub fn group_entry(group: &Map<String, Value>) -> Entry {
    let mut attrs = Attributes::new();
    for field in ["id", "email", "name", "description", "aliases"] {
        if let Some(value) = group.get(field) {
            put(&mut attrs, field.to_owned(), value);
        }
    }
    let id = attrs
        .get("id")
        .and_then(|ids| ids.first())
        .cloned()
        .unwrap_or_default();
    Entry {
        dn: group_dn(&id),
        attrs,
        bin_attrs: HashMap::new(),
    }
}
