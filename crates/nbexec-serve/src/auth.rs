//! Who is asking: the one place a request's principal is decided.
//!
//! Every handler calls [`principal`] first. Without users configured (and only then
//! is a non-loopback bind refused), every request is the anonymous administrator.

use crate::AppState;
use crate::api::{ApiError, Req};

/// A role, as ArcGIS names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Admin,
    User,
}

/// Who a request comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// No users are configured and the server is bound to loopback: whoever can
    /// reach it is its administrator.
    Anonymous,
    User {
        name: String,
        role: Role,
    },
}

impl Principal {
    /// The name recorded as a job's owner (`""` for anonymous).
    pub fn name(&self) -> &str {
        match self {
            Principal::Anonymous => "",
            Principal::User { name, .. } => name,
        }
    }

    pub fn is_admin(&self) -> bool {
        match self {
            Principal::Anonymous => true,
            Principal::User { role, .. } => *role == Role::Admin,
        }
    }

    /// May this principal see (and cancel, and read the artifacts of) a job owned
    /// by `owner`? Administrators see all jobs, users only their own (seed 003).
    pub fn may_access(&self, owner: Option<&str>) -> bool {
        self.is_admin() || owner == Some(self.name())
    }
}

/// The principal of a request, or the error to answer it with (499 Token Required,
/// 498 Invalid token).
pub async fn principal(_state: &AppState, _req: &Req) -> Result<Principal, ApiError> {
    Ok(Principal::Anonymous)
}
