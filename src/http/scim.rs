//! The `/scim/v2` routes: request parsing, response headers, and SCIM error bodies.
//!
//! Handlers are thin: they extract, call the [`Provider`](crate::provider::Provider), and
//! turn the outcome into a response. Every client mistake, including a malformed body, an
//! oversized body or an unknown route, answers with an RFC 7644 §3.12 error body.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, RawQuery, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::AppState;
use super::auth::Client;
use crate::provider::{Caller, LIST_URN, ListParams, etag, parse_if_match};
use crate::scim::error::ScimError;
use crate::scim::schema::Kind;

pub const CONTENT_TYPE: &str = "application/scim+json";

pub fn router(state: &AppState) -> Router<AppState> {
    let limit = state.provider.registry.bulk_max_payload_size;
    Router::new()
        .route("/ServiceProviderConfig", get(service_provider_config))
        .route("/ResourceTypes", get(resource_types))
        .route("/ResourceTypes/{id}", get(resource_type))
        .route("/Schemas", get(schemas))
        .route("/Schemas/{id}", get(schema))
        .route("/Users", get(list_users).post(create_user))
        .route("/Users/.search", post(search_users))
        .route(
            "/Users/{id}",
            get(get_user)
                .put(replace_user)
                .patch(patch_user)
                .delete(delete_user),
        )
        .route("/Groups", get(list_groups).post(create_group))
        .route("/Groups/.search", post(search_groups))
        .route(
            "/Groups/{id}",
            get(get_group)
                .put(replace_group)
                .patch(patch_group)
                .delete(delete_group),
        )
        .route("/Bulk", post(bulk))
        .route("/.search", post(search_all))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::extract::DefaultBodyLimit::max(limit))
}

/// A SCIM response: status, JSON body, and the `ETag` / `Location` headers.
#[derive(Debug)]
pub struct ScimReply {
    status: StatusCode,
    body: Option<Value>,
    version: Option<i64>,
    location: Option<String>,
}

impl ScimReply {
    fn json(status: StatusCode, body: Value) -> ScimReply {
        ScimReply {
            status,
            body: Some(body),
            version: None,
            location: None,
        }
    }

    fn resource(status: StatusCode, rendered: crate::provider::Rendered) -> ScimReply {
        ScimReply {
            status,
            body: Some(rendered.body),
            version: Some(rendered.version),
            location: Some(rendered.location),
        }
    }

    /// An error body. A 5xx says only "internal error" and the request id; the cause was logged.
    pub fn error(mut error: ScimError, request_id: &str) -> ScimReply {
        if error.status >= 500 {
            tracing::error!(detail = %error.detail, "request failed");
            error.detail = format!("internal error, request {request_id}");
        } else {
            tracing::info!(status = error.status, detail = %error.detail, "client error");
        }
        let status =
            StatusCode::from_u16(error.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        ScimReply::json(status, error.to_json())
    }
}

impl IntoResponse for ScimReply {
    fn into_response(self) -> Response {
        let mut response = match self.body {
            Some(body) => (self.status, body.to_string()).into_response(),
            None => self.status.into_response(),
        };
        let headers = response.headers_mut();
        if response_has_body(self.status) {
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
        }
        if let Some(version) = self.version
            && let Ok(value) = HeaderValue::from_str(&etag(version))
        {
            headers.insert(header::ETAG, value);
        }
        if let Some(location) = self.location
            && let Ok(value) = HeaderValue::from_str(&location)
        {
            headers.insert(header::LOCATION, value);
        }
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"rollcall\""),
            );
        }
        response
    }
}

fn response_has_body(status: StatusCode) -> bool {
    status != StatusCode::NO_CONTENT
}

pub fn request_id(headers: &HeaderMap) -> String {
    headers
        .get(super::REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_owned()
}

/// The base URL of this SCIM service as the client addressed it, for `meta.location`.
fn base_url(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("localhost");
    let scheme = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .filter(|p| *p == "https" || *p == "http")
        .unwrap_or("http");
    format!("{scheme}://{host}/scim/v2")
}

/// Request context for the authenticated routes.
pub struct Ctx {
    caller: Caller,
    request_id: String,
    if_match: Option<String>,
}

impl Ctx {
    fn fail(&self, error: ScimError) -> ScimReply {
        ScimReply::error(error, &self.request_id)
    }
    fn if_match(&self) -> Result<Option<i64>, ScimReply> {
        match &self.if_match {
            Some(header) => parse_if_match(header).map_err(|e| self.fail(e)),
            None => Ok(None),
        }
    }
}

impl FromRequestParts<AppState> for Ctx {
    type Rejection = ScimReply;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Ctx, ScimReply> {
        let client = Client::from_request_parts(parts, state).await?;
        Ok(Ctx {
            request_id: request_id(&parts.headers),
            caller: Caller {
                scope: client.scope,
                actor: client.actor,
                base: base_url(&parts.headers),
            },
            if_match: parts
                .headers
                .get(header::IF_MATCH)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        })
    }
}

/// A JSON request body; any failure is a SCIM error (413 when too large, else invalidSyntax).
pub struct ScimBody(pub Value);

impl FromRequest<AppState> for ScimBody {
    type Rejection = ScimReply;

    async fn from_request(request: Request, state: &AppState) -> Result<ScimBody, ScimReply> {
        let id = request_id(request.headers());
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                let error = if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ScimError::payload_too_large(format!(
                        "the request body exceeds maxPayloadSize ({} bytes)",
                        state.provider.registry.bulk_max_payload_size
                    ))
                } else {
                    ScimError::invalid_syntax(format!("cannot read the request body: {rejection}"))
                };
                ScimReply::error(error, &id)
            })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(ScimReply::error(
                ScimError::invalid_syntax("the request body is empty"),
                &id,
            ));
        }
        serde_json::from_slice(&bytes).map(ScimBody).map_err(|e| {
            ScimReply::error(
                ScimError::invalid_syntax(format!("the request body is not valid JSON: {e}")),
                &id,
            )
        })
    }
}

fn list_params(query: Option<&str>) -> Result<ListParams, ScimError> {
    let mut params = ListParams::default();
    let number = |name: &str, value: &str| {
        value.trim().parse::<i64>().map_err(|_| {
            ScimError::invalid_value(format!("{name} must be an integer, not `{value}`"))
        })
    };
    for (key, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match key.to_ascii_lowercase().as_str() {
            "filter" => params.filter = Some(value.into_owned()),
            "startindex" => params.start_index = Some(number("startIndex", &value)?),
            "count" => params.count = Some(number("count", &value)?),
            "sortby" => params.sort_by = Some(value.into_owned()),
            "sortorder" => params.sort_order = Some(value.into_owned()),
            "attributes" => params.attributes = Some(value.into_owned()),
            "excludedattributes" => params.excluded_attributes = Some(value.into_owned()),
            _ => {}
        }
    }
    Ok(params)
}

/// The body of `POST /.search` (RFC 7644 §3.4.3).
fn search_params(body: Value) -> Result<ListParams, ScimError> {
    let Value::Object(body) = body else {
        return Err(ScimError::invalid_syntax(
            "the request body must be a JSON object",
        ));
    };
    let mut params = ListParams::default();
    let text = |key: &str, v: &Value| {
        v.as_str()
            .map(str::to_owned)
            .ok_or_else(|| ScimError::invalid_value(format!("{key} must be a string")))
    };
    let list = |key: &str, v: &Value| match v {
        Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .map(|l| l.join(","))
            .ok_or_else(|| ScimError::invalid_value(format!("{key} must be a list of strings"))),
        Value::String(s) => Ok(s.clone()),
        _ => Err(ScimError::invalid_value(format!(
            "{key} must be a list of strings"
        ))),
    };
    let number = |key: &str, v: &Value| {
        v.as_i64()
            .ok_or_else(|| ScimError::invalid_value(format!("{key} must be an integer")))
    };
    for (key, value) in &body {
        match key.to_ascii_lowercase().as_str() {
            "schemas" => {}
            "filter" => params.filter = Some(text(key, value)?),
            "startindex" => params.start_index = Some(number(key, value)?),
            "count" => params.count = Some(number(key, value)?),
            "sortby" => params.sort_by = Some(text(key, value)?),
            "sortorder" => params.sort_order = Some(text(key, value)?),
            "attributes" => params.attributes = Some(list(key, value)?),
            "excludedattributes" => params.excluded_attributes = Some(list(key, value)?),
            _ => {
                return Err(ScimError::invalid_syntax(format!(
                    "unknown member {key} in a SearchRequest"
                )));
            }
        }
    }
    Ok(params)
}

type Reply = Result<ScimReply, ScimReply>;

async fn list(
    state: AppState,
    ctx: Ctx,
    kind: Kind,
    params: Result<ListParams, ScimError>,
) -> Reply {
    let params = params.map_err(|e| ctx.fail(e))?;
    let body = state
        .provider
        .list(&ctx.caller, kind, &params)
        .await
        .map_err(|e| ctx.fail(e))?;
    Ok(ScimReply::json(StatusCode::OK, body))
}

async fn get_one(
    state: AppState,
    ctx: Ctx,
    kind: Kind,
    id: String,
    query: Option<String>,
) -> Reply {
    let params = list_params(query.as_deref()).map_err(|e| ctx.fail(e))?;
    let provider = &state.provider;
    let projection = provider
        .projection(
            kind,
            params.attributes.as_deref(),
            params.excluded_attributes.as_deref(),
        )
        .map_err(|e| ctx.fail(e))?;
    let rendered = provider
        .get(&ctx.caller, kind, &id, &projection)
        .await
        .map_err(|e| ctx.fail(e))?;
    Ok(ScimReply::resource(StatusCode::OK, rendered))
}

async fn create(state: AppState, ctx: Ctx, kind: Kind, body: Value) -> Reply {
    let rendered = state
        .provider
        .create(&ctx.caller, kind, body)
        .await
        .map_err(|e| ctx.fail(e))?;
    Ok(ScimReply::resource(StatusCode::CREATED, rendered))
}

async fn replace(state: AppState, ctx: Ctx, kind: Kind, id: String, body: Value) -> Reply {
    let if_match = ctx.if_match()?;
    let rendered = state
        .provider
        .replace(&ctx.caller, kind, &id, body, if_match)
        .await
        .map_err(|e| ctx.fail(e))?;
    Ok(ScimReply::resource(StatusCode::OK, rendered))
}

async fn patch(state: AppState, ctx: Ctx, kind: Kind, id: String, body: Value) -> Reply {
    let if_match = ctx.if_match()?;
    let rendered = state
        .provider
        .patch(&ctx.caller, kind, &id, body, if_match)
        .await
        .map_err(|e| ctx.fail(e))?;
    Ok(ScimReply::resource(StatusCode::OK, rendered))
}

async fn delete(state: AppState, ctx: Ctx, kind: Kind, id: String) -> Reply {
    let if_match = ctx.if_match()?;
    state
        .provider
        .delete(&ctx.caller, kind, &id, if_match)
        .await
        .map_err(|e| ctx.fail(e))?;
    Ok(ScimReply {
        status: StatusCode::NO_CONTENT,
        body: None,
        version: None,
        location: None,
    })
}

async fn list_users(State(s): State<AppState>, ctx: Ctx, RawQuery(q): RawQuery) -> Reply {
    list(s, ctx, Kind::User, list_params(q.as_deref())).await
}
async fn list_groups(State(s): State<AppState>, ctx: Ctx, RawQuery(q): RawQuery) -> Reply {
    list(s, ctx, Kind::Group, list_params(q.as_deref())).await
}
async fn search_users(State(s): State<AppState>, ctx: Ctx, ScimBody(body): ScimBody) -> Reply {
    list(s, ctx, Kind::User, search_params(body)).await
}
async fn search_groups(State(s): State<AppState>, ctx: Ctx, ScimBody(body): ScimBody) -> Reply {
    list(s, ctx, Kind::Group, search_params(body)).await
}
async fn get_user(
    State(s): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Reply {
    get_one(s, ctx, Kind::User, id, q).await
}
async fn get_group(
    State(s): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Reply {
    get_one(s, ctx, Kind::Group, id, q).await
}
async fn create_user(State(s): State<AppState>, ctx: Ctx, ScimBody(body): ScimBody) -> Reply {
    create(s, ctx, Kind::User, body).await
}
async fn create_group(State(s): State<AppState>, ctx: Ctx, ScimBody(body): ScimBody) -> Reply {
    create(s, ctx, Kind::Group, body).await
}
async fn replace_user(
    State(s): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    ScimBody(body): ScimBody,
) -> Reply {
    replace(s, ctx, Kind::User, id, body).await
}
async fn replace_group(
    State(s): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    ScimBody(body): ScimBody,
) -> Reply {
    replace(s, ctx, Kind::Group, id, body).await
}
async fn patch_user(
    State(s): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    ScimBody(body): ScimBody,
) -> Reply {
    patch(s, ctx, Kind::User, id, body).await
}
async fn patch_group(
    State(s): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    ScimBody(body): ScimBody,
) -> Reply {
    patch(s, ctx, Kind::Group, id, body).await
}
async fn delete_user(State(s): State<AppState>, ctx: Ctx, Path(id): Path<String>) -> Reply {
    delete(s, ctx, Kind::User, id).await
}
async fn delete_group(State(s): State<AppState>, ctx: Ctx, Path(id): Path<String>) -> Reply {
    delete(s, ctx, Kind::Group, id).await
}

async fn search_all(State(state): State<AppState>, ctx: Ctx, ScimBody(body): ScimBody) -> Reply {
    let params = search_params(body).map_err(|e| ctx.fail(e))?;
    let body = state
        .provider
        .search_all(&ctx.caller, &params)
        .await
        .map_err(|e| ctx.fail(e))?;
    Ok(ScimReply::json(StatusCode::OK, body))
}

async fn bulk(State(state): State<AppState>, ctx: Ctx, ScimBody(body): ScimBody) -> Reply {
    let body = state
        .provider
        .bulk(&ctx.caller, body)
        .await
        .map_err(|e| ctx.fail(e))?;
    Ok(ScimReply::json(StatusCode::OK, body))
}

// --- discovery: static documents from `schemas/`, served without authentication ---

fn with_meta(document: &Value, resource_type: &str, location: String) -> Value {
    let mut document = document.clone();
    if let Value::Object(map) = &mut document {
        map.insert(
            "meta".into(),
            json!({ "resourceType": resource_type, "location": location }),
        );
    }
    document
}

fn list_of(resources: Vec<Value>) -> ScimReply {
    ScimReply::json(
        StatusCode::OK,
        json!({
            "schemas": [LIST_URN],
            "totalResults": resources.len(),
            "startIndex": 1,
            "itemsPerPage": resources.len(),
            "Resources": resources,
        }),
    )
}

/// A discovery document with its `meta`; `endpoint` is `Schemas` or `ResourceTypes`.
fn discovery_document(document: &Value, endpoint: &str, base: &str) -> Value {
    let id = document
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let resource_type = match endpoint {
        "Schemas" => "Schema",
        _ => "ResourceType",
    };
    with_meta(document, resource_type, format!("{base}/{endpoint}/{id}"))
}

fn discovery_list(documents: &[Value], endpoint: &str, headers: &HeaderMap) -> ScimReply {
    let base = base_url(headers);
    list_of(
        documents
            .iter()
            .map(|d| discovery_document(d, endpoint, &base))
            .collect(),
    )
}

fn discovery_one(documents: &[Value], endpoint: &str, id: &str, headers: &HeaderMap) -> ScimReply {
    let base = base_url(headers);
    documents
        .iter()
        .find(|d| {
            d.get("id")
                .and_then(Value::as_str)
                .is_some_and(|i| i.eq_ignore_ascii_case(id))
        })
        .map(|d| ScimReply::json(StatusCode::OK, discovery_document(d, endpoint, &base)))
        .unwrap_or_else(|| {
            ScimReply::error(
                ScimError::not_found(format!("no {endpoint}/{id}")),
                &request_id(headers),
            )
        })
}

async fn service_provider_config(State(state): State<AppState>, headers: HeaderMap) -> ScimReply {
    let base = base_url(&headers);
    let document = &state.provider.registry.service_provider_config;
    ScimReply::json(
        StatusCode::OK,
        with_meta(
            document,
            "ServiceProviderConfig",
            format!("{base}/ServiceProviderConfig"),
        ),
    )
}

async fn schemas(State(state): State<AppState>, headers: HeaderMap) -> ScimReply {
    discovery_list(
        &state.provider.registry.schema_documents,
        "Schemas",
        &headers,
    )
}

async fn schema(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ScimReply {
    discovery_one(
        &state.provider.registry.schema_documents,
        "Schemas",
        &id,
        &headers,
    )
}

async fn resource_types(State(state): State<AppState>, headers: HeaderMap) -> ScimReply {
    discovery_list(
        &state.provider.registry.resource_type_documents,
        "ResourceTypes",
        &headers,
    )
}

async fn resource_type(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ScimReply {
    discovery_one(
        &state.provider.registry.resource_type_documents,
        "ResourceTypes",
        &id,
        &headers,
    )
}

async fn not_found(headers: HeaderMap, uri: axum::http::Uri) -> ScimReply {
    ScimReply::error(
        ScimError::not_found(format!("no SCIM endpoint at {}", uri.path())),
        &request_id(&headers),
    )
}

async fn method_not_allowed(
    headers: HeaderMap,
    method: axum::http::Method,
    uri: axum::http::Uri,
) -> ScimReply {
    ScimReply::error(
        ScimError::new(
            405,
            None,
            format!("{method} is not supported on {}", uri.path()),
        ),
        &request_id(&headers),
    )
}
