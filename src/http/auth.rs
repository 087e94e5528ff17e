//! Bearer-token authentication: `Authorization: Bearer rct_…` names one school and source (a
//! SCIM client); `rca_…` one school's admin ([`bearer_token`] finds either).

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;

use super::AppState;
use super::scim::ScimReply;
use crate::scim::error::ScimError;
use crate::store::{Actor, Scope, Token};

/// An authenticated SCIM client.
#[derive(Debug, Clone)]
pub struct Client {
    pub scope: Scope,
    pub actor: Actor,
}

/// Why a request's bearer token was not accepted.
pub enum Refused {
    Missing,
    Malformed,
    /// Unknown, revoked, or of a school no longer configured.
    Unknown,
    Store(crate::store::Error),
}

/// The live token named by a request's `Authorization: Bearer …`, of a configured school.
/// SCIM clients and admins alike; each caller checks the kind it needs.
pub async fn bearer_token(headers: &HeaderMap, state: &AppState) -> Result<Token, Refused> {
    let header = headers
        .get(axum::http::header::AUTHORIZATION)
        .ok_or(Refused::Missing)?;
    let token = header
        .to_str()
        .ok()
        .and_then(|value| {
            let (scheme, token) = value.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        })
        .filter(|token| !token.is_empty())
        .ok_or(Refused::Malformed)?;
    state
        .provider
        .store
        .token_by_hash(&crate::token::digest(token))
        .await
        .map_err(Refused::Store)?
        .filter(|token| state.provider.schools.contains_key(&token.school_id))
        .ok_or(Refused::Unknown)
}

impl FromRequestParts<AppState> for Client {
    type Rejection = ScimReply;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Client, ScimReply> {
        let request_id = super::scim::request_id(&parts.headers);
        let unauthorized =
            |detail: &str| ScimReply::error(ScimError::unauthorized(detail), &request_id);
        let token = match bearer_token(&parts.headers, state).await {
            // An admin's token is for /api/v1 only.
            Ok(token) if token.admin.is_none() => token,
            Ok(_) | Err(Refused::Unknown) => {
                return Err(unauthorized(
                    "the token is unknown, revoked, or for a school no longer configured",
                ));
            }
            Err(Refused::Missing) => {
                return Err(unauthorized("an Authorization: Bearer token is required"));
            }
            Err(Refused::Malformed) => {
                return Err(unauthorized(
                    "the Authorization header must be `Bearer <token>`",
                ));
            }
            Err(Refused::Store(error)) => {
                tracing::error!(%error, "token lookup failed");
                return Err(ScimReply::error(
                    ScimError::internal("internal error"),
                    &request_id,
                ));
            }
        };
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
