//! Caller roles and the verified identity every rule is checked against.

/// A role held inside a tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// Sales development rep.
    Sdr,
    /// Account executive.
    Ae,
    /// Sales manager.
    Manager,
    /// Revenue operations.
    Revops,
    /// Automated caller.
    Service,
    /// A contact-data verifier (an enrichment integration, a data-ops service):
    /// the only caller whose "verified" the SQO gate trusts.
    Verifier,
    /// A history importer (a CRM migration job): the only caller that may
    /// write past times, and only through the import RPCs.
    Importer,
}

impl Role {
    /// Every role, in order.
    pub const ALL: [Role; 7] =
        [Role::Sdr, Role::Ae, Role::Manager, Role::Revops, Role::Service, Role::Verifier, Role::Importer];

    /// Name used in tokens.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Sdr => "sdr",
            Role::Ae => "ae",
            Role::Manager => "manager",
            Role::Revops => "revops",
            Role::Service => "service",
            Role::Verifier => "verifier",
            Role::Importer => "importer",
        }
    }

    /// Parses a token role name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// A verified caller: tenant, subject and roles from its token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// Tenant every read and write is scoped to.
    pub tenant: String,
    /// Stable subject id.
    pub subject: String,
    /// Roles held.
    pub roles: Vec<Role>,
}

impl Caller {
    /// Whether the caller holds `role`. Crate-private: role rules are
    /// written once, in [`crate::permission`] and the state machines.
    pub(crate) fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    /// Whether the caller holds any of `roles`.
    pub(crate) fn has_any(&self, roles: &[Role]) -> bool {
        roles.iter().any(|r| self.has(*r))
    }

    /// A human can make sales decisions; a token that carries the service role
    /// is automation, whatever other roles it also claims.
    pub(crate) fn is_automation(&self) -> bool {
        self.has(Role::Service)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_names_round_trip_and_unknown_names_are_refused() {
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        assert_eq!(Role::parse("admin"), None);
        assert_eq!(Role::parse("AE"), None);
    }

    #[test]
    fn a_service_token_is_automation_even_with_human_roles() {
        let c = Caller { tenant: "t".into(), subject: "bot".into(), roles: vec![Role::Ae, Role::Service] };
        assert!(c.is_automation());
        assert!(c.has(Role::Ae));
    }
}
