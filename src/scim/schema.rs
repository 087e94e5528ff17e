//! The SCIM schemas rollcall serves, read from the JSON files in `schemas/` (compiled into the
//! binary), and attribute lookup over them.
//!
//! Everything that depends on an attribute's characteristics (type, case sensitivity,
//! mutability, `returned`) asks this registry, so the served schemas are the rules applied.

use serde::Deserialize;
use serde_json::Value;

use super::filter::AttrPath;

pub const CORE_USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const CORE_GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub const ENTERPRISE_USER: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
pub const SCHOOL_USER: &str = "urn:rollcall:params:scim:schemas:extension:school:2.0:User";
pub const SCHOOL_GROUP: &str = "urn:rollcall:params:scim:schemas:extension:school:2.0:Group";

/// The files, as committed in `schemas/`.
pub const FILES: [(&str, &str); 7] = [
    ("User.json", include_str!("../../schemas/User.json")),
    ("Group.json", include_str!("../../schemas/Group.json")),
    (
        "EnterpriseUser.json",
        include_str!("../../schemas/EnterpriseUser.json"),
    ),
    (
        "SchoolUser.json",
        include_str!("../../schemas/SchoolUser.json"),
    ),
    (
        "SchoolGroup.json",
        include_str!("../../schemas/SchoolGroup.json"),
    ),
    (
        "ResourceTypes.json",
        include_str!("../../schemas/ResourceTypes.json"),
    ),
    (
        "ServiceProviderConfig.json",
        include_str!("../../schemas/ServiceProviderConfig.json"),
    ),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum AttrType {
    String,
    Boolean,
    Decimal,
    Integer,
    DateTime,
    Binary,
    Reference,
    Complex,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Mutability {
    ReadOnly,
    ReadWrite,
    Immutable,
    WriteOnly,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Returned {
    Always,
    Never,
    Default,
    Request,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attribute {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: AttrType,
    #[serde(default)]
    pub multi_valued: bool,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub case_exact: bool,
    #[serde(default = "read_write")]
    pub mutability: Mutability,
    #[serde(default = "default_returned")]
    pub returned: Returned,
    #[serde(default)]
    pub sub_attributes: Vec<Attribute>,
}

fn read_write() -> Mutability {
    Mutability::ReadWrite
}
fn default_returned() -> Returned {
    Returned::Default
}

impl Attribute {
    fn simple(name: &str, kind: AttrType, mutability: Mutability, case_exact: bool) -> Attribute {
        Attribute {
            name: name.into(),
            kind,
            multi_valued: false,
            required: false,
            case_exact,
            mutability,
            returned: Returned::Default,
            sub_attributes: Vec::new(),
        }
    }

    /// The sub-attribute with this name, compared case-insensitively.
    pub fn sub(&self, name: &str) -> Option<&Attribute> {
        self.sub_attributes
            .iter()
            .find(|attr| attr.name.eq_ignore_ascii_case(name))
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Schema {
    pub id: String,
    pub name: String,
    pub attributes: Vec<Attribute>,
}

impl Schema {
    pub fn attribute(&self, name: &str) -> Option<&Attribute> {
        self.attributes
            .iter()
            .find(|attr| attr.name.eq_ignore_ascii_case(name))
    }
}

/// The two resource types rollcall serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    User,
    Group,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::User => "User",
            Kind::Group => "Group",
        }
    }
    pub fn endpoint(self) -> &'static str {
        match self {
            Kind::User => "Users",
            Kind::Group => "Groups",
        }
    }
    pub fn core_urn(self) -> &'static str {
        match self {
            Kind::User => CORE_USER,
            Kind::Group => CORE_GROUP,
        }
    }
}

/// Where a resolved attribute lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner<'a> {
    /// `id`, `externalId`, `meta`: common to every resource (RFC 7643 §3.1).
    Common,
    Core,
    /// An extension schema, keyed by its URN in the resource's JSON.
    Extension(&'a str),
}

/// An attribute path resolved against a resource type's schemas.
#[derive(Debug, Clone, Copy)]
pub struct Resolved<'a> {
    pub owner: Owner<'a>,
    pub attr: &'a Attribute,
    pub sub: Option<&'a Attribute>,
}

impl Resolved<'_> {
    /// The attribute the path ends at.
    pub fn leaf(&self) -> &Attribute {
        self.sub.unwrap_or(self.attr)
    }

    /// The canonical member names leading to the value in a resource's JSON.
    pub fn json_path(&self) -> Vec<&str> {
        let mut path = Vec::with_capacity(3);
        if let Owner::Extension(urn) = self.owner {
            path.push(urn);
        }
        path.push(self.attr.name.as_str());
        if let Some(sub) = self.sub {
            path.push(sub.name.as_str());
        }
        path
    }

    /// A path for messages: `name.givenName`, or URN-qualified for an extension.
    pub fn display(&self) -> String {
        let mut text = match self.owner {
            Owner::Extension(urn) => format!("{urn}:{}", self.attr.name),
            _ => self.attr.name.clone(),
        };
        if let Some(sub) = self.sub {
            text.push('.');
            text.push_str(&sub.name);
        }
        text
    }
}

#[derive(Debug, Clone)]
struct ResourceType {
    kind: Kind,
    extensions: Vec<String>,
}

/// The served schemas, resource types and service provider configuration.
#[derive(Debug)]
pub struct Registry {
    pub schemas: Vec<Schema>,
    /// The files' JSON, served as they are (plus `meta`).
    pub schema_documents: Vec<Value>,
    pub resource_type_documents: Vec<Value>,
    pub service_provider_config: Value,
    pub bulk_max_operations: usize,
    pub bulk_max_payload_size: usize,
    pub filter_max_results: usize,
    common: Schema,
    resource_types: Vec<ResourceType>,
}

#[derive(Debug, thiserror::Error)]
#[error("schemas/{file}: {message}")]
pub struct LoadError {
    file: &'static str,
    message: String,
}

impl Registry {
    /// Reads the embedded files. They are part of the binary, so an error here is a build defect,
    /// caught by the unit tests.
    pub fn load() -> Result<Registry, LoadError> {
        let mut schemas = Vec::new();
        let mut schema_documents = Vec::new();
        let mut resource_type_documents: Vec<Value> = Vec::new();
        let mut service_provider_config = Value::Null;
        for (file, text) in FILES {
            let error = |message: String| LoadError { file, message };
            let value: Value = serde_json::from_str(text).map_err(|e| error(e.to_string()))?;
            match file {
                "ResourceTypes.json" => {
                    resource_type_documents = serde_json::from_value(value)
                        .map_err(|e| error(format!("expected an array: {e}")))?
                }
                "ServiceProviderConfig.json" => service_provider_config = value,
                _ => {
                    let schema: Schema =
                        serde_json::from_value(value.clone()).map_err(|e| error(e.to_string()))?;
                    schemas.push(schema);
                    schema_documents.push(value);
                }
            }
        }
        let mut resource_types = Vec::new();
        for document in &resource_type_documents {
            let error = |message: String| LoadError {
                file: "ResourceTypes.json",
                message,
            };
            let kind = match document.get("id").and_then(Value::as_str) {
                Some("User") => Kind::User,
                Some("Group") => Kind::Group,
                other => return Err(error(format!("unknown resource type {other:?}"))),
            };
            let extensions = document
                .get("schemaExtensions")
                .and_then(Value::as_array)
                .map(|list| {
                    list.iter()
                        .filter_map(|ext| ext.get("schema").and_then(Value::as_str))
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default();
            resource_types.push(ResourceType { kind, extensions });
        }
        let number = |pointer: &str| {
            service_provider_config
                .pointer(pointer)
                .and_then(Value::as_u64)
                .map(|n| n as usize)
                .ok_or_else(|| LoadError {
                    file: "ServiceProviderConfig.json",
                    message: format!("{pointer} must be a number"),
                })
        };
        let bulk_max_operations = number("/bulk/maxOperations")?;
        let bulk_max_payload_size = number("/bulk/maxPayloadSize")?;
        let filter_max_results = number("/filter/maxResults")?;
        let registry = Registry {
            schemas,
            schema_documents,
            resource_type_documents,
            service_provider_config,
            bulk_max_operations,
            bulk_max_payload_size,
            filter_max_results,
            common: common_schema(),
            resource_types,
        };
        for kind in [Kind::User, Kind::Group] {
            for urn in std::iter::once(kind.core_urn()).chain(registry.extension_urns(kind)) {
                if registry.schema(urn).is_none() {
                    return Err(LoadError {
                        file: "ResourceTypes.json",
                        message: format!(
                            "{} names schema {urn}, which no file defines",
                            kind.name()
                        ),
                    });
                }
            }
        }
        Ok(registry)
    }

    pub fn schema(&self, urn: &str) -> Option<&Schema> {
        self.schemas.iter().find(|s| s.id.eq_ignore_ascii_case(urn))
    }

    fn core(&self, kind: Kind) -> &Schema {
        // `load` checked that every resource type's schemas exist.
        self.schema(kind.core_urn()).unwrap_or(&self.common)
    }

    pub fn extension_urns(&self, kind: Kind) -> impl Iterator<Item = &str> {
        self.resource_types
            .iter()
            .filter(move |rt| rt.kind == kind)
            .flat_map(|rt| rt.extensions.iter().map(String::as_str))
    }

    /// The extension schema whose URN this is (case-insensitive), for this resource type.
    pub fn extension(&self, kind: Kind, urn: &str) -> Option<&Schema> {
        self.extension_urns(kind)
            .find(|ext| ext.eq_ignore_ascii_case(urn))
            .and_then(|ext| self.schema(ext))
    }

    /// A top-level member of a resource document: a common or core attribute.
    pub fn top_level(&self, kind: Kind, name: &str) -> Option<(Owner<'_>, &Attribute)> {
        if let Some(attr) = self.common.attribute(name) {
            return Some((Owner::Common, attr));
        }
        if let Some(attr) = self.core(kind).attribute(name) {
            return Some((Owner::Core, attr));
        }
        None
    }

    /// Resolves a filter, PATCH or projection path. Names compare case-insensitively.
    pub fn resolve(&self, kind: Kind, path: &AttrPath) -> Result<Resolved<'_>, String> {
        let (owner, attr) = match &path.urn {
            // RFC 7644 §3.10: an unqualified name is the core schema's, else an extension's.
            None => self.top_level(kind, &path.name).or_else(|| {
                self.extension_urns(kind).find_map(|urn| {
                    let schema = self.schema(urn)?;
                    let attr = schema.attribute(&path.name)?;
                    Some((Owner::Extension(schema.id.as_str()), attr))
                })
            }),
            Some(urn) if urn.eq_ignore_ascii_case(kind.core_urn()) => self
                .core(kind)
                .attribute(&path.name)
                .map(|attr| (Owner::Core, attr))
                .or_else(|| {
                    self.common
                        .attribute(&path.name)
                        .map(|attr| (Owner::Common, attr))
                }),
            Some(urn) => match self.extension(kind, urn) {
                Some(schema) => schema
                    .attribute(&path.name)
                    .map(|attr| (Owner::Extension(schema.id.as_str()), attr)),
                None => return Err(format!("unknown schema {urn}")),
            },
        }
        .ok_or_else(|| format!("unknown attribute {path}"))?;
        let sub = match &path.sub {
            None => None,
            Some(name) => Some(
                attr.sub(name)
                    .ok_or_else(|| format!("unknown attribute {path}"))?,
            ),
        };
        Ok(Resolved { owner, attr, sub })
    }
}

/// `id`, `externalId` and `meta` (RFC 7643 §3.1), which the files do not list.
fn common_schema() -> Schema {
    use AttrType::*;
    use Mutability::*;
    let mut id = Attribute::simple("id", String, ReadOnly, true);
    id.returned = Returned::Always;
    let mut meta = Attribute::simple("meta", Complex, ReadOnly, false);
    meta.sub_attributes = vec![
        Attribute::simple("resourceType", String, ReadOnly, true),
        Attribute::simple("created", DateTime, ReadOnly, false),
        Attribute::simple("lastModified", DateTime, ReadOnly, false),
        Attribute::simple("location", Reference, ReadOnly, true),
        Attribute::simple("version", String, ReadOnly, true),
    ];
    let mut schemas = Attribute::simple("schemas", Reference, ReadOnly, true);
    schemas.multi_valued = true;
    schemas.returned = Returned::Always;
    Schema {
        id: "common".into(),
        name: "Common".into(),
        attributes: vec![
            id,
            Attribute::simple("externalId", String, ReadWrite, true),
            meta,
            schemas,
        ],
    }
}

#[cfg(test)]
mod tests;
