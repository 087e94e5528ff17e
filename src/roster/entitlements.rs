//! A person's entitlements as the admin API shows them: the courses their teaching groups give
//! them (see [`crate::courses::entitlements`]), derived when asked, as SCIM shows them.

use serde::Serialize;

use super::{Admin, Error, user_name_of};
use crate::courses::entitlements::Entitlement;
use crate::provider::Provider;
use crate::scim::schema::Kind;
use crate::store;

/// `GET /api/v1/schools/{school}/users/{id}/entitlements`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Entitlements {
    pub user: String,
    pub user_name: String,
    /// Sorted by code; empty for a tutor or a student in no group with courses.
    pub entitlements: Vec<Entitlement>,
}

impl Provider {
    /// The courses an account of the admin's school has now. An id of another school is
    /// unknown here.
    pub async fn entitlements(&self, admin: &Admin, id: &str) -> Result<Entitlements, Error> {
        let record = self
            .store
            .get(&admin.scope, Kind::User, id)
            .await
            .map_err(|e| match e {
                store::Error::NotFound => Error::NotFound("no such account in this school".into()),
                other => Error::store(other),
            })?;
        Ok(Entitlements {
            entitlements: self.entitlements_of(&admin.scope.school_id, &record),
            user_name: user_name_of(&record).to_owned(),
            user: record.id,
        })
    }
}
