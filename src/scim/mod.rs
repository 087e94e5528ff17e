//! SCIM 2.0 (RFC 7643/7644) as plain data: schemas, filters, PATCH, resource documents and
//! errors. No IO here, and no dependency on axum or sqlx.

pub mod error;
pub mod filter;
pub mod patch;
pub mod resource;
pub mod schema;
