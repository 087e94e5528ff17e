//! The SCIM service provider: each SCIM operation, from a request document to a stored change
//! and the response document. HTTP-free, so `/Bulk` runs the very same operations.
//!
//! Store errors become SCIM errors here, in [`store_error`], and nowhere else.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Map, Value, json};

use crate::clock::Clock;
use crate::config::School;
use crate::courses::Catalogue;
use crate::courses::entitlements::{self, Entitlement, GroupCourses};
use crate::credentials::{self, Vault};
use crate::password::Hasher;
use crate::scim::error::ScimError;
use crate::scim::filter;
use crate::scim::patch;
use crate::scim::resource::{self, Projection};
use crate::scim::schema::{AttrType, Kind, Owner, Registry, SCHOOL_USER};
use crate::store::{self, Actor, NewRecord, Query, Record, Scope, Stamp, Store};

pub const LIST_URN: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
pub const BULK_REQUEST_URN: &str = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";
pub const BULK_RESPONSE_URN: &str = "urn:ietf:params:scim:api:messages:2.0:BulkResponse";

/// Everything an operation on a school's accounts needs: the store, the served schemas, each
/// school's policies, the password hasher and the vault for pending slips.
#[derive(Clone, Debug)]
pub struct Provider {
    pub store: Store,
    pub registry: Arc<Registry>,
    pub clock: Clock,
    pub schools: Arc<BTreeMap<String, School>>,
    pub hasher: Hasher,
    pub vault: Vault,
    /// The webhooks the daemon delivers to (the store writes their events by itself).
    pub webhooks: Arc<[crate::config::Webhook]>,
}

/// Who is asking: the token's school and source, the audit actor, and the base URL that
/// resource locations are built from.
#[derive(Debug, Clone)]
pub struct Caller {
    pub scope: Scope,
    pub actor: Actor,
    pub base: String,
}

/// A resource in a response, with its version for the `ETag` header.
#[derive(Debug)]
pub struct Rendered {
    pub body: Value,
    pub version: i64,
    pub location: String,
}

/// The query parameters of a list request (RFC 7644 §3.4.2).
#[derive(Debug, Default, Clone)]
pub struct ListParams {
    pub filter: Option<String>,
    pub start_index: Option<i64>,
    pub count: Option<i64>,
    pub sort_by: Option<String>,
    pub sort_order: Option<String>,
    pub attributes: Option<String>,
    pub excluded_attributes: Option<String>,
}

/// The strong-or-weak version an `If-Match` header names; `None` for `*`.
pub fn parse_if_match(header: &str) -> Result<Option<i64>, ScimError> {
    let header = header.trim();
    if header == "*" {
        return Ok(None);
    }
    let text = header.trim_start_matches("W/").trim_matches('"');
    text.parse().map(Some).map_err(|_| {
        ScimError::precondition_failed(format!(
            "If-Match {header} names no version of this resource"
        ))
    })
}

pub fn etag(version: i64) -> String {
    format!("W/\"{version}\"")
}

impl Provider {
    fn render(
        &self,
        kind: Kind,
        record: Record,
        caller: &Caller,
        projection: &Projection,
    ) -> Rendered {
        let base = caller.base.as_str();
        let location = format!("{base}/{}/{}", kind.endpoint(), record.id);
        // Derived from the groups read with the user, before the document is moved out.
        let courses = match kind {
            Kind::User => self.entitlements_of(&caller.scope.school_id, &record),
            Kind::Group => Vec::new(),
        };
        let mut body = Map::new();
        body.insert(
            "schemas".into(),
            resource::schemas_of(&self.registry, kind, &record.data),
        );
        body.insert("id".into(), record.id.clone().into());
        let mut data = record.data;
        if let Some(external) = data.remove("externalId") {
            body.insert("externalId".into(), external);
        }
        body.extend(data);
        if !courses.is_empty() {
            let extension = body
                .entry(SCHOOL_USER)
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(extension) = extension {
                extension.insert(
                    "courses".into(),
                    courses.iter().map(Entitlement::to_scim).collect(),
                );
            }
        }
        if !record.links.is_empty() {
            let links: Vec<Value> = record
                .links
                .iter()
                .map(|link| {
                    let mut item = json!({
                        "value": link.id,
                        "$ref": format!("{base}/{}/{}", link.kind.endpoint(), link.id),
                    });
                    if let Some(display) = &link.display {
                        item["display"] = display.clone().into();
                    }
                    item["type"] = match kind {
                        Kind::Group => link.kind.name().into(),
                        Kind::User => "direct".into(),
                    };
                    item
                })
                .collect();
            let key = match kind {
                Kind::Group => "members",
                Kind::User => "groups",
            };
            body.insert(key.into(), Value::Array(links));
        }
        body.insert(
            "meta".into(),
            json!({
                "resourceType": kind.name(),
                "created": store::format_time(record.created),
                "lastModified": store::format_time(record.last_modified),
                "location": location,
                "version": etag(record.version),
            }),
        );
        projection.apply(&self.registry, kind, &mut body);
        // List only the extensions the projected document still carries.
        let schemas = resource::schemas_of(&self.registry, kind, &body);
        body.insert("schemas".into(), schemas);
        Rendered {
            body: Value::Object(body),
            version: record.version,
            location,
        }
    }

    /// A user's courses (see [`crate::courses::entitlements`]), from the groups read with the
    /// record (its links) and the school's catalogue. A tutor has none; so has a record read
    /// without its groups.
    pub fn entitlements_of(&self, school_id: &str, record: &Record) -> Vec<Entitlement> {
        if !entitlements::takes_courses(entitlements::role_of(&record.data)) {
            return Vec::new();
        }
        let groups: Vec<GroupCourses> = record
            .links
            .iter()
            .filter(|link| link.kind == Kind::Group)
            .map(|link| GroupCourses {
                id: link.id.clone(),
                name: link.display.clone().unwrap_or_default(),
                courses: link.courses.clone(),
            })
            .collect();
        if groups.is_empty() {
            return Vec::new();
        }
        let empty = Catalogue::default();
        let catalogue = self
            .schools
            .get(school_id)
            .map_or(&empty, |school| &school.courses);
        entitlements::derive(catalogue, &groups)
    }

    /// Refuses a filter on an attribute the server computes when reading (the school
    /// extension's `courses`): the store cannot select by it.
    fn refuse_computed(&self, kind: Kind, filter: &filter::Filter) -> Result<(), ScimError> {
        use filter::Filter;
        match filter {
            Filter::And(a, b) | Filter::Or(a, b) => {
                self.refuse_computed(kind, a)?;
                self.refuse_computed(kind, b)
            }
            Filter::Not(inner) => self.refuse_computed(kind, inner),
            Filter::Present(path) | Filter::Compare { path, .. } => {
                self.refuse_computed_path(kind, path, ScimError::invalid_filter)
            }
            Filter::ValuePath { attr, .. } => {
                self.refuse_computed_path(kind, attr, ScimError::invalid_filter)
            }
        }
    }

    fn refuse_computed_path(
        &self,
        kind: Kind,
        path: &filter::AttrPath,
        error: fn(String) -> ScimError,
    ) -> Result<(), ScimError> {
        let computed = self.registry.resolve(kind, path).is_ok_and(|resolved| {
            matches!(resolved.owner, Owner::Extension(urn) if urn == SCHOOL_USER)
                && resolved.attr.name == "courses"
        });
        if computed {
            return Err(error(format!(
                "{path} is computed from the user's teaching groups when read; \
                 it cannot be filtered or sorted by"
            )));
        }
        Ok(())
    }

    pub fn projection(
        &self,
        kind: Kind,
        attributes: Option<&str>,
        excluded: Option<&str>,
    ) -> Result<Projection, ScimError> {
        Projection::parse(&self.registry, kind, attributes, excluded)
    }

    pub async fn get(
        &self,
        caller: &Caller,
        kind: Kind,
        id: &str,
        projection: &Projection,
    ) -> Result<Rendered, ScimError> {
        let record = self
            .store
            .get(&caller.scope, kind, id)
            .await
            .map_err(|e| store_error(e, kind, id))?;
        Ok(self.render(kind, record, caller, projection))
    }

    pub async fn list(
        &self,
        caller: &Caller,
        kind: Kind,
        params: &ListParams,
    ) -> Result<Value, ScimError> {
        let projection = self.projection(
            kind,
            params.attributes.as_deref(),
            params.excluded_attributes.as_deref(),
        )?;
        let page = self.page(params)?;
        let filter = parse_filter(params)?;
        if let Some(filter) = &filter {
            self.refuse_computed(kind, filter)?;
        }
        let query = Query {
            filter,
            sort_by: self.sort_by(kind, params)?,
            descending: page.descending,
            offset: page.start_index - 1,
            limit: page.count,
        };
        let (total, resources) = self.list_kind(caller, kind, &query, &projection).await?;
        Ok(list_response(total, page.start_index, resources))
    }

    /// `POST /.search` at the service root (RFC 7644 §3.4.3): users, then groups, as one list.
    /// A filter or attribute that only one resource type has simply matches nothing of the other.
    pub async fn search_all(
        &self,
        caller: &Caller,
        params: &ListParams,
    ) -> Result<Value, ScimError> {
        let page = self.page(params)?;
        let filter = parse_filter(params)?;
        let mut offset = page.start_index - 1;
        let mut remaining = page.count;
        let mut total = 0;
        let mut resources = Vec::new();
        let mut understood = false;
        for kind in [Kind::User, Kind::Group] {
            if let Some(filter) = &filter
                && crate::scim::resource::check_filter(&self.registry, kind, filter).is_err()
            {
                continue;
            }
            if let Some(filter) = &filter {
                self.refuse_computed(kind, filter)?;
            }
            understood = true;
            let projection = Projection::lenient(
                &self.registry,
                kind,
                params.attributes.as_deref(),
                params.excluded_attributes.as_deref(),
            );
            let sort_by = self.sort_by(kind, params).ok().flatten();
            let query = Query {
                filter: filter.clone(),
                sort_by,
                descending: page.descending,
                offset,
                limit: remaining,
            };
            let (kind_total, mut found) = self.list_kind(caller, kind, &query, &projection).await?;
            total += kind_total;
            offset = (offset - kind_total).max(0);
            remaining -= found.len() as i64;
            resources.append(&mut found);
        }
        if !understood {
            return Err(ScimError::invalid_filter(
                "the filter names attributes that no resource type has",
            ));
        }
        Ok(list_response(total, page.start_index, resources))
    }

    async fn list_kind(
        &self,
        caller: &Caller,
        kind: Kind,
        query: &Query,
        projection: &Projection,
    ) -> Result<(i64, Vec<Value>), ScimError> {
        let with_links = match kind {
            // A user's courses are derived from the groups read with it.
            Kind::User => {
                projection.wants(kind, "groups")
                    || projection.wants_extension(&self.registry, kind, SCHOOL_USER, "courses")
            }
            Kind::Group => projection.wants(kind, "members"),
        };
        let (total, records) = self
            .store
            .list(&caller.scope, kind, &self.registry, query, with_links)
            .await
            .map_err(|e| store_error(e, kind, ""))?;
        let resources = records
            .into_iter()
            .map(|record| self.render(kind, record, caller, projection).body)
            .collect();
        Ok((total, resources))
    }

    fn stamp<'a>(&self, caller: &'a Caller) -> Stamp<'a> {
        Stamp {
            actor: &caller.actor,
            at: self.clock.now(),
        }
    }

    fn sort_by(
        &self,
        kind: Kind,
        params: &ListParams,
    ) -> Result<Option<filter::AttrPath>, ScimError> {
        let Some(text) = params
            .sort_by
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
        else {
            return Ok(None);
        };
        let path = resource::attribute_path(text).ok_or_else(|| {
            ScimError::invalid_value(format!("sortBy `{text}` is not an attribute path"))
        })?;
        self.refuse_computed_path(kind, &path, ScimError::invalid_value)?;
        let resolved = self
            .registry
            .resolve(kind, &path)
            .map_err(|e| ScimError::invalid_value(format!("sortBy: {e}")))?;
        // RFC 7644 §3.4.2.3: a complex attribute sorts by one of its sub-attributes (a
        // multi-valued one by its primary value); `name` alone has no order.
        if resolved.leaf().kind == AttrType::Complex && !resolved.attr.multi_valued {
            return Err(ScimError::invalid_value(format!(
                "sortBy `{text}` is complex: name one of its sub-attributes"
            )));
        }
        Ok(Some(path))
    }

    fn page(&self, params: &ListParams) -> Result<Page, ScimError> {
        let descending = match params
            .sort_order
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("") | Some("ascending") => false,
            Some("descending") => true,
            Some(other) => {
                return Err(ScimError::invalid_value(format!(
                    "sortOrder must be ascending or descending, not `{other}`"
                )));
            }
        };
        let max = self.registry.filter_max_results as i64;
        // RFC 7644 §3.4.2.4: startIndex below 1 means 1; a negative count means 0.
        Ok(Page {
            start_index: params.start_index.unwrap_or(1).max(1),
            count: params.count.unwrap_or(max).clamp(0, max),
            descending,
        })
    }

    /// The caller's school. Tokens are only accepted for configured schools, so a miss is a
    /// server fault.
    pub fn school(&self, school_id: &str) -> Result<&School, ScimError> {
        self.schools.get(school_id).ok_or_else(|| {
            tracing::error!(
                school = school_id,
                "no configuration for an authenticated school"
            );
            ScimError::internal("internal error")
        })
    }

    /// Validates a document and prepares what the store writes, hashing any password. A
    /// group's courses are checked against the school's catalogue and their implied modules
    /// added.
    async fn prepare(
        &self,
        school: &School,
        kind: Kind,
        mut body: Value,
    ) -> Result<NewRecord, ScimError> {
        if kind == Kind::Group {
            // Implied modules are rollcall's to add: drop any a client sends back.
            crate::courses::strip_implied(&mut body);
        }
        let mut checked = resource::check(&self.registry, kind, body)?;
        if kind == Kind::Group {
            crate::courses::expand_in(&school.courses, &mut checked.data)
                .map_err(ScimError::invalid_value)?;
        }
        let password_hash = match checked.password {
            Some(plaintext) => Some(self.hasher.hash(&plaintext).await.map_err(|e| {
                tracing::error!(error = %e, "password hashing failed");
                ScimError::internal("internal error while hashing the password")
            })?),
            None => None,
        };
        Ok(NewRecord {
            index: resource::index(kind, &checked.data),
            data: checked.data,
            members: checked.members,
            password_hash,
            must_change: false,
            slip: None,
            user_name: Default::default(),
        })
    }

    pub async fn create(
        &self,
        caller: &Caller,
        kind: Kind,
        body: Value,
    ) -> Result<Rendered, ScimError> {
        let school = self.school(&caller.scope.school_id)?;
        let mut new = self.prepare(school, kind, body).await?;
        let id = uuid::Uuid::now_v7().to_string();
        if kind == Kind::User && new.password_hash.is_none() && school.passwords.generate_for_scim {
            // A first password for the person, held sealed until an admin collects the slip.
            let issued = credentials::issue(&school.passwords.policy, &self.hasher)
                .await
                .and_then(|issued| {
                    let slip =
                        self.vault
                            .seal(&school.id, &id, &issued.password, self.clock.now())?;
                    Ok((issued.hash, slip))
                })
                .map_err(|e| {
                    tracing::error!(error = %e, "issuing a first password failed");
                    ScimError::internal("internal error while issuing a first password")
                })?;
            new.password_hash = Some(issued.0);
            new.must_change = true;
            new.slip = Some(issued.1);
        }
        let record = self
            .store
            .insert(&caller.scope, kind, &id, &new, self.stamp(caller))
            .await
            .map_err(|e| store_error(e, kind, &id))?;
        Ok(self.render(kind, record, caller, &Projection::default()))
    }

    pub async fn replace(
        &self,
        caller: &Caller,
        kind: Kind,
        id: &str,
        body: Value,
        if_match: Option<i64>,
    ) -> Result<Rendered, ScimError> {
        let school = self.school(&caller.scope.school_id)?;
        let mut new = self.prepare(school, kind, body).await?;
        if kind == Kind::Group && new.members.is_none() {
            // PUT replaces the whole resource: a group sent without members has none.
            new.members = Some(Vec::new());
        }
        // A PUT's document does not depend on what it replaces, so only the client's
        // `If-Match` (checked under the write lock) makes it conditional.
        let record = self
            .store
            .replace(&caller.scope, kind, id, if_match, &new, self.stamp(caller))
            .await
            .map_err(|e| store_error(e, kind, id))?;
        Ok(self.render(kind, record, caller, &Projection::default()))
    }

    pub async fn patch(
        &self,
        caller: &Caller,
        kind: Kind,
        id: &str,
        body: Value,
        if_match: Option<i64>,
    ) -> Result<Rendered, ScimError> {
        let operations = patch::parse(body)?;
        let school = self.school(&caller.scope.school_id)?;
        // A PATCH without `If-Match` retries until its write lands on the version it read: the
        // client asked for no precondition, so losing a race must not lose its update (a fixed
        // number of attempts answered 412 once enough writers raced). Each lost race means
        // another write committed, so the writers as a whole progress; the request timeout
        // bounds any one of them.
        loop {
            let current = self
                .store
                .get(&caller.scope, kind, id)
                .await
                .map_err(|e| store_error(e, kind, id))?;
            check_version(if_match, current.version)?;
            let mut doc = current.data.clone();
            if kind == Kind::Group && !current.links.is_empty() {
                let members = current
                    .links
                    .iter()
                    .map(|l| json!({ "value": l.id }))
                    .collect();
                doc.insert("members".into(), Value::Array(members));
            }
            patch::apply(&self.registry, kind, &mut doc, &operations)?;
            let mut new = self.prepare(school, kind, Value::Object(doc)).await?;
            if kind == Kind::Group && new.members.is_none() {
                new.members = Some(Vec::new());
            }
            match self
                .store
                .replace(
                    &caller.scope,
                    kind,
                    id,
                    Some(current.version),
                    &new,
                    self.stamp(caller),
                )
                .await
            {
                Ok(record) => {
                    return Ok(self.render(kind, record, caller, &Projection::default()));
                }
                Err(store::Error::VersionMismatch { .. }) if if_match.is_none() => continue,
                Err(e) => return Err(store_error(e, kind, id)),
            }
        }
    }

    pub async fn delete(
        &self,
        caller: &Caller,
        kind: Kind,
        id: &str,
        if_match: Option<i64>,
    ) -> Result<(), ScimError> {
        self.store
            .delete(&caller.scope, kind, id, if_match, self.stamp(caller))
            .await
            .map_err(|e| store_error(e, kind, id))
    }
}

struct Page {
    start_index: i64,
    count: i64,
    descending: bool,
}

fn parse_filter(params: &ListParams) -> Result<Option<filter::Filter>, ScimError> {
    match params
        .filter
        .as_deref()
        .map(str::trim)
        .filter(|f| !f.is_empty())
    {
        Some(text) => filter::parse(text)
            .map(Some)
            .map_err(|e| ScimError::invalid_filter(format!("`{text}`: {e}"))),
        None => Ok(None),
    }
}

fn list_response(total: i64, start_index: i64, resources: Vec<Value>) -> Value {
    json!({
        "schemas": [LIST_URN],
        "totalResults": total,
        "startIndex": start_index,
        "itemsPerPage": resources.len(),
        "Resources": resources,
    })
}

fn check_version(if_match: Option<i64>, version: i64) -> Result<(), ScimError> {
    match if_match {
        Some(expected) if expected != version => Err(ScimError::precondition_failed(format!(
            "version {} is not the current version {}",
            etag(expected),
            etag(version)
        ))),
        _ => Ok(()),
    }
}

/// The one mapping from store errors to SCIM errors.
pub fn store_error(error: store::Error, kind: Kind, id: &str) -> ScimError {
    use store::Error::*;
    match error {
        NotFound => ScimError::not_found(format!("{} {id} not found", kind.name())),
        Conflict { field, value } => {
            ScimError::uniqueness(format!("{field} `{value}` is already taken in this school"))
        }
        VersionMismatch { expected } => ScimError::precondition_failed(format!(
            "{} {id} has changed since version {}",
            kind.name(),
            etag(expected)
        )),
        OwnedBy(source) => ScimError::forbidden(format!(
            "{} {id} belongs to source `{source}`; only that source may change it",
            kind.name()
        )),
        UnknownMember(member) => {
            ScimError::invalid_value(format!("members: no user or group {member} in this school"))
        }
        Retired { value, retired } => ScimError::uniqueness(format!(
            "userName `{value}` belonged to an account deleted on {retired}; it cannot be reused yet"
        )),
        NamesExhausted(base) => {
            ScimError::uniqueness(format!("every username made from `{base}` is taken"))
        }
        InvalidFilter(message) => ScimError::invalid_filter(message),
        other => {
            tracing::error!(error = %other, "store failure");
            ScimError::internal("internal error")
        }
    }
}
mod bulk;
