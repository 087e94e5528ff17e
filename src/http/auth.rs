//! SCIM bearer-token authentication: `Authorization: Bearer rct_…` names one school and source.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use super::AppState;
use super::scim::ScimReply;
use crate::scim::error::ScimError;
use crate::store::{Actor, Scope};

/// An authenticated SCIM client.
#[derive(Debug, Clone)]
pub struct Client {
    pub scope: Scope,
    pub actor: Actor,
}

impl FromRequestParts<AppState> for Client {
    type Rejection = ScimReply;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Client, ScimReply> {
        let request_id = super::scim::request_id(&parts.headers);
        let unauthorized =
            |detail: &str| ScimReply::error(ScimError::unauthorized(detail), &request_id);
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .ok_or_else(|| unauthorized("an Authorization: Bearer token is required"))?;
        let token = header
            .to_str()
            .ok()
            .and_then(|value| {
                let (scheme, token) = value.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .filter(|token| !token.is_empty())
            .ok_or_else(|| unauthorized("the Authorization header must be `Bearer <token>`"))?;
        let found = state
            .provider
            .store
            .token_by_hash(&crate::token::digest(token))
            .await
            .map_err(|error| {
                tracing::error!(%error, "token lookup failed");
                ScimReply::error(ScimError::internal("internal error"), &request_id)
            })?;
        let token = found
            .filter(|token| state.provider.schools.contains_key(&token.school_id))
            // An admin's token is for /api/v1 only.
            .filter(|token| token.admin.is_none())
            .ok_or_else(|| {
                unauthorized("the token is unknown, revoked, or for a school no longer configured")
            })?;
        tracing::debug!(token = %token.id, school = %token.school_id, source = %token.source, "authenticated");
        Ok(Client {
            scope: Scope {
                school_id: token.school_id,
                source: token.source,
            },
            actor: Actor {
                name: format!("token:{}", token.id),
                request_id: Some(request_id),
            },
        })
    }
}
