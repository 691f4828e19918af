//! Identifiers and roles, each parsed once at the boundary and trusted after.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The tenant every credential without a tenant belongs to.
pub const DEFAULT_TENANT: &str = "default";

/// A tenant's id: 1 to 64 characters of `[A-Za-z0-9_.-]`, so it is safe in a header,
/// a path and a log line. Created tenants get a UUID; JWTs may name any valid id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
#[serde(transparent)]
pub struct TenantId(String);

impl TenantId {
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.is_empty() || s.len() > 64 {
            return Err("a tenant id has 1 to 64 characters".into());
        }
        if !s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')) {
            return Err("a tenant id may hold only letters, digits, '_', '-' and '.'".into());
        }
        Ok(Self(s.to_owned()))
    }

    pub fn default_tenant() -> Self {
        Self(DEFAULT_TENANT.to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a credential may do inside its tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything in its tenant.
    Admin,
    /// Read, and create dashboards, reports and queries.
    Analyst,
    /// Read only.
    Viewer,
    /// Write events and metric records only.
    Ingest,
}

/// A capability that an endpoint demands; roles grant sets of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    /// Send events and metric records.
    Ingest,
    /// Read analytics data.
    Read,
    /// Create and change dashboards, reports, saved queries.
    Author,
    /// Manage the tenant: users, keys, settings.
    Manage,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Admin, Role::Analyst, Role::Viewer, Role::Ingest];

    pub fn parse(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "admin" => Ok(Role::Admin),
            "analyst" => Ok(Role::Analyst),
            "viewer" => Ok(Role::Viewer),
            "ingest" => Ok(Role::Ingest),
            other => Err(format!("unknown role '{other}': expected admin, analyst, viewer or ingest")),
        }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Analyst => "analyst",
            Role::Viewer => "viewer",
            Role::Ingest => "ingest",
        }
    }

    pub const fn allows(self, p: Permission) -> bool {
        match self {
            Role::Admin => true,
            Role::Analyst => matches!(p, Permission::Read | Permission::Author),
            Role::Viewer => matches!(p, Permission::Read),
            Role::Ingest => matches!(p, Permission::Ingest),
        }
    }

    /// The most capable of several roles (a JWT may carry a `roles` array).
    pub fn strongest(roles: impl IntoIterator<Item = Role>) -> Option<Role> {
        roles.into_iter().min() // declaration order: Admin first
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_ids_reject_unsafe_text() {
        for bad in ["", "a b", "x;drop", "ü", "a/b", &"x".repeat(65)] {
            assert!(TenantId::parse(bad).is_err(), "{bad:?}");
        }
        for good in ["default", "acme-01", "0190c1a2-7b3c-7def-8000-000000000000", "a.b_c"] {
            assert_eq!(TenantId::parse(good).unwrap().as_str(), good);
        }
    }

    #[test]
    fn roles_grant_what_design_says() {
        use Permission::*;
        let table = [
            (Role::Admin, [true, true, true, true]),
            (Role::Analyst, [false, true, true, false]),
            (Role::Viewer, [false, true, false, false]),
            (Role::Ingest, [true, false, false, false]),
        ];
        for (role, expect) in table {
            let got = [Ingest, Read, Author, Manage].map(|p| role.allows(p));
            assert_eq!(got, expect, "{role}");
        }
        assert_eq!(Role::strongest([Role::Viewer, Role::Admin]), Some(Role::Admin));
        assert_eq!(Role::parse(" Analyst "), Ok(Role::Analyst));
        assert!(Role::parse("root").is_err());
    }
}
