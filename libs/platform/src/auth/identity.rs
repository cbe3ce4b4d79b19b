//! Who may present tokens, and what their claims mean: the identity file
//! (`QUALIFY_IDENTITY_FILE`, YAML) lists the trusted issuers, each of one kind:
//!
//! - `people`: the company's OIDC provider. The tenant comes from a claim or is
//!   fixed for the issuer; roles come from a claim (a string or a list, a
//!   dotted path for nested claims such as `realm_access.roles`), through an
//!   optional mapping from the provider's group names to Qualify's roles.
//!   Such a token never acts in the platform tenant.
//! - `operator`: a dedicated issuer whose people operate the cluster: their
//!   tokens act in the platform tenant, the only way a person gets there.
//! - `workload`: Kubernetes' service-account issuer. A projected token's
//!   `system:serviceaccount:<namespace>:<name>` subject is mapped to the
//!   tenants it may act for; its only role is `service`.
//!
//! ```yaml
//! issuers:
//!   - name: okta
//!     issuer: https://example.okta.com/oauth2/default
//!     audience: qualify
//!     tenant_claim: qualify_tenant
//!     roles_claim: groups
//!     role_mapping: { sales-development: sdr, account-executives: ae }
//!   - name: cluster
//!     kind: workload
//!     issuer: https://kubernetes.default.svc.cluster.local
//!     audience: qualify
//!     ca_file: /var/run/secrets/kubernetes.io/serviceaccount/ca.crt
//!     token_file: /var/run/secrets/kubernetes.io/serviceaccount/token
//!     service_accounts:
//!       - { service_account: qualify/qualify, tenants: ["*", qualify-system] }
//!       - { service_account: crm/sync, tenants: [acme] }
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail, ensure};
use qualify_domain::permission::SYSTEM_TENANT;
use qualify_domain::{Caller, Role};
use serde::Deserialize;
use serde_json::Value;

use super::is_tenant_id;
use crate::error::ApiError;

/// The identity file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityConfig {
    /// The trusted issuers.
    pub issuers: Vec<IssuerConfig>,
    /// Whether HS256 tokens signed with `QUALIFY_JWT_SECRET` are still accepted
    /// beside the issuers (a migration aid; off by default).
    #[serde(default)]
    pub allow_hs256: bool,
    /// How often every issuer's keys are fetched again, in seconds.
    #[serde(default = "default_refresh_secs")]
    pub refresh_secs: u64,
    /// The shortest time between two fetches that an unknown key id triggers, in seconds.
    #[serde(default = "default_min_refresh_secs")]
    pub min_refresh_secs: u64,
}

fn default_refresh_secs() -> u64 {
    300
}

fn default_min_refresh_secs() -> u64 {
    30
}

/// What an issuer's tokens stand for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IssuerKind {
    /// People of the tenants, signed in through the company's identity provider.
    #[default]
    People,
    /// The platform's operators.
    Operator,
    /// Kubernetes service accounts (projected tokens).
    Workload,
}

/// One trusted issuer.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerConfig {
    /// A short name for health, logs and metrics.
    pub name: String,
    /// The `iss` its tokens carry, and where its discovery document lives.
    pub issuer: String,
    /// The `aud` its tokens must carry.
    pub audience: String,
    /// What its tokens stand for.
    #[serde(default)]
    pub kind: IssuerKind,
    /// The JWKS address; by default read from the discovery document.
    #[serde(default)]
    pub jwks_uri: Option<String>,
    /// PEM bundle of the CA that signs the issuer's HTTPS certificate, when not a public one.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// A bearer token (re-read from this file on each fetch) the key fetch presents:
    /// Kubernetes serves its keys to service accounts only.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// The claim naming the subject.
    #[serde(default = "default_subject_claim")]
    pub subject_claim: String,
    /// The claim carrying the tenant (`people`).
    #[serde(default)]
    pub tenant_claim: Option<String>,
    /// The one tenant of every token of this issuer (`people`), instead of a claim.
    #[serde(default)]
    pub tenant: Option<String>,
    /// With `tenant_claim`: the only tenants this issuer's tokens may name (a customer's own
    /// provider must not speak for another customer); empty: any tenant but the platform's.
    #[serde(default)]
    pub tenants: Vec<String>,
    /// The claim carrying roles or groups (`people`, `operator`).
    #[serde(default = "default_roles_claim")]
    pub roles_claim: String,
    /// Provider role or group names → Qualify roles; without it the claim's values
    /// are Qualify role names. Names that map to nothing are ignored.
    #[serde(default)]
    pub role_mapping: BTreeMap<String, String>,
    /// Service accounts and the tenants they act for (`workload`).
    #[serde(default)]
    pub service_accounts: Vec<ServiceAccount>,
}

fn default_subject_claim() -> String {
    "sub".into()
}

fn default_roles_claim() -> String {
    "roles".into()
}

/// A service account (`namespace/name`) and the tenants it may act for: `*` is
/// any tenant but the platform's, which must be named.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceAccount {
    /// `namespace/name`.
    pub service_account: String,
    /// Tenants, `*`, and `qualify-system` for the platform's own services.
    pub tenants: Vec<String>,
}

impl IdentityConfig {
    /// Reads and checks the identity file.
    pub fn read(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let c: IdentityConfig =
            serde_yaml_ng::from_str(&text).with_context(|| format!("{}: not an identity file", path.display()))?;
        c.check().with_context(|| path.display().to_string())?;
        Ok(c)
    }

    /// Every rule a usable configuration keeps.
    pub fn check(&self) -> anyhow::Result<()> {
        ensure!(!self.issuers.is_empty(), "issuers: at least one issuer is needed");
        ensure!(self.min_refresh_secs <= self.refresh_secs, "min_refresh_secs is longer than refresh_secs");
        let mut seen = std::collections::HashSet::new();
        for i in &self.issuers {
            let at = format!("issuers.{}", i.name);
            ensure!(!i.name.is_empty() && seen.insert(i.name.clone()), "issuers: names must be unique and set");
            ensure!(
                i.issuer.starts_with("https://") || i.issuer.starts_with("http://"),
                "{at}.issuer must be an https:// URL"
            );
            ensure!(!i.audience.is_empty(), "{at}.audience is required");
            for (from, to) in &i.role_mapping {
                ensure!(Role::parse(to).is_some(), "{at}.role_mapping.{from}: {to:?} is not a Qualify role");
            }
            match i.kind {
                IssuerKind::People => {
                    ensure!(
                        i.tenant_claim.is_some() != i.tenant.is_some(),
                        "{at}: set exactly one of tenant_claim and tenant"
                    );
                    for t in i.tenant.iter().chain(&i.tenants) {
                        ensure!(is_tenant_id(t) && t != SYSTEM_TENANT, "{at}: {t:?} is not a tenant");
                    }
                    ensure!(i.tenants.is_empty() || i.tenant_claim.is_some(), "{at}.tenants goes with tenant_claim");
                    ensure!(i.service_accounts.is_empty(), "{at}: service_accounts belong to a workload issuer");
                }
                IssuerKind::Operator => {
                    let none = i.tenant_claim.is_none() && i.tenant.is_none() && i.tenants.is_empty();
                    ensure!(none, "{at}: operators act in {SYSTEM_TENANT}");
                    ensure!(i.service_accounts.is_empty(), "{at}: service_accounts belong to a workload issuer");
                }
                IssuerKind::Workload => {
                    let none = i.tenant_claim.is_none() && i.tenant.is_none() && i.tenants.is_empty();
                    ensure!(none, "{at}: tenants come from service_accounts");
                    ensure!(i.role_mapping.is_empty(), "{at}: service accounts hold the service role only");
                    ensure!(!i.service_accounts.is_empty(), "{at}.service_accounts: map at least one");
                    for sa in &i.service_accounts {
                        let ok =
                            sa.service_account.split_once('/').is_some_and(|(n, s)| !n.is_empty() && !s.is_empty());
                        ensure!(ok, "{at}: {:?} is not namespace/name", sa.service_account);
                        ensure!(!sa.tenants.is_empty(), "{at}.{}: no tenants", sa.service_account);
                        for t in &sa.tenants {
                            if t != "*" && !is_tenant_id(t) {
                                bail!("{at}.{}: {t:?} is not a tenant", sa.service_account);
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// Whom a verified token speaks for, before the request picks its tenant.
#[derive(Debug, Clone)]
pub struct Identity {
    /// Subject.
    pub subject: String,
    /// Roles held.
    pub roles: Vec<Role>,
    /// The tenant(s) it acts in.
    pub tenants: Tenants,
}

/// The tenant(s) an identity acts in.
#[derive(Debug, Clone)]
pub enum Tenants {
    /// Exactly this one.
    One(String),
    /// Any of these (a service account): named tenants, any tenant but the platform's, or both.
    Some { named: Vec<String>, any: bool },
}

/// The metadata a caller acting for several tenants names the one of a call with.
pub const TENANT_HEADER: &str = "qualify-tenant";

impl Identity {
    /// The caller of one request, in the tenant the request names (`qualify-tenant`),
    /// which must be one the identity may act in.
    pub fn caller(&self, requested: Option<&str>) -> Result<Caller, ApiError> {
        let tenant = match (&self.tenants, requested) {
            (Tenants::One(t), None) => t.clone(),
            (Tenants::One(t), Some(r)) if r == t => t.clone(),
            (Tenants::One(_), Some(_)) => {
                return Err(ApiError::forbidden(
                    "TENANT_MISMATCH",
                    "the token acts in another tenant than qualify-tenant names",
                ));
            }
            (Tenants::Some { named, any }, Some(r)) => {
                let allowed = named.iter().any(|t| t == r) || (*any && r != SYSTEM_TENANT && is_tenant_id(r));
                if !allowed {
                    return Err(ApiError::forbidden(
                        "TENANT_NOT_GRANTED",
                        format!("service account {} may not act in tenant {r:?}", self.subject),
                    ));
                }
                r.to_string()
            }
            (Tenants::Some { named, any: false }, None) if named.len() == 1 => named[0].clone(),
            (Tenants::Some { .. }, None) => {
                return Err(ApiError::Unauthenticated(
                    "this service account acts for several tenants: name one in qualify-tenant",
                ));
            }
        };
        Ok(Caller { tenant, subject: self.subject.clone(), roles: self.roles.clone() })
    }
}

/// A claim by dotted path (`realm_access.roles`).
fn claim<'a>(claims: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(claims, |v, k| v.get(k))
}

impl IssuerConfig {
    /// The identity a token of this issuer, already verified, speaks for.
    pub fn identity(&self, claims: &Value) -> Result<Identity, ApiError> {
        let subject = claim(claims, &self.subject_claim)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty() && s.len() <= 128)
            .ok_or(ApiError::Unauthenticated("the token's subject is missing or malformed"))?
            .to_string();
        match self.kind {
            IssuerKind::Workload => self.workload(subject),
            IssuerKind::Operator => {
                Ok(Identity { roles: self.roles(claims)?, subject, tenants: Tenants::One(SYSTEM_TENANT.into()) })
            }
            IssuerKind::People => {
                let tenant = match (&self.tenant, &self.tenant_claim) {
                    (Some(t), _) => t.clone(),
                    (None, Some(c)) => claim(claims, c)
                        .and_then(Value::as_str)
                        .ok_or(ApiError::Unauthenticated("the token carries no tenant"))?
                        .to_string(),
                    (None, None) => return Err(ApiError::Unauthenticated("the issuer names no tenant")),
                };
                if !is_tenant_id(&tenant) {
                    return Err(ApiError::Unauthenticated("the token's tenant is malformed"));
                }
                if tenant == SYSTEM_TENANT {
                    return Err(ApiError::forbidden(
                        "PLATFORM_TENANT_REFUSED",
                        "a tenant's token cannot act in the platform tenant: operators sign in through the operator issuer",
                    ));
                }
                if !self.tenants.is_empty() && !self.tenants.contains(&tenant) {
                    return Err(ApiError::forbidden(
                        "TENANT_NOT_TRUSTED_FROM_ISSUER",
                        format!("issuer {} may not speak for tenant {tenant:?}", self.name),
                    ));
                }
                Ok(Identity { roles: self.roles(claims)?, subject, tenants: Tenants::One(tenant) })
            }
        }
    }

    fn roles(&self, claims: &Value) -> Result<Vec<Role>, ApiError> {
        let names: Vec<&str> = match claim(claims, &self.roles_claim) {
            Some(Value::String(s)) => s.split_whitespace().collect(),
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        let mut roles: Vec<Role> = names
            .into_iter()
            .filter_map(|n| match self.role_mapping.is_empty() {
                true => Role::parse(n),
                false => self.role_mapping.get(n).and_then(|r| Role::parse(r)),
            })
            .collect();
        roles.sort();
        roles.dedup();
        if roles.is_empty() {
            return Err(ApiError::Unauthenticated("the token carries no Qualify role"));
        }
        Ok(roles)
    }

    fn workload(&self, subject: String) -> Result<Identity, ApiError> {
        let account = subject
            .strip_prefix("system:serviceaccount:")
            .and_then(|s| s.split_once(':'))
            .map(|(ns, name)| format!("{ns}/{name}"))
            .ok_or(ApiError::Unauthenticated("the token is not a service account's"))?;
        let sa = self
            .service_accounts
            .iter()
            .find(|s| s.service_account == account)
            .ok_or(ApiError::Unauthenticated("the service account is not mapped to any tenant"))?;
        let named = sa.tenants.iter().filter(|t| *t != "*").cloned().collect();
        let any = sa.tenants.iter().any(|t| t == "*");
        Ok(Identity { subject, roles: vec![Role::Service], tenants: Tenants::Some { named, any } })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn issuer(yaml: &str) -> IssuerConfig {
        let c: IdentityConfig = serde_yaml_ng::from_str(yaml).unwrap();
        c.check().unwrap();
        c.issuers.into_iter().next().unwrap()
    }

    const PEOPLE: &str = "issuers: [{name: idp, issuer: 'https://idp', audience: qualify, tenant_claim: org, \
                          roles_claim: realm.groups, role_mapping: {sellers: ae, bdr: sdr}}]";

    #[test]
    fn people_get_their_tenant_and_mapped_roles_but_never_the_platform_tenant() {
        let i = issuer(PEOPLE);
        let id = i.identity(&json!({"sub": "ada", "org": "acme", "realm": {"groups": ["sellers", "lunch"]}})).unwrap();
        let c = id.caller(None).unwrap();
        assert_eq!((c.tenant.as_str(), c.roles), ("acme", vec![Role::Ae]));
        assert!(id.caller(Some("beta")).is_err(), "a token acts in its own tenant only");
        let e = i.identity(&json!({"sub": "ada", "org": SYSTEM_TENANT, "realm": {"groups": ["sellers"]}}));
        assert!(matches!(e, Err(ApiError::PermissionDenied { .. })));
        assert!(i.identity(&json!({"sub": "ada", "org": "acme", "realm": {"groups": ["lunch"]}})).is_err());
        assert!(i.identity(&json!({"sub": "ada", "realm": {"groups": ["sellers"]}})).is_err());
    }

    #[test]
    fn service_accounts_act_for_their_tenants_with_the_service_role_only() {
        let i = issuer(
            "issuers: [{name: k8s, kind: workload, issuer: 'https://k8s', audience: qualify, service_accounts: [\
             {service_account: crm/sync, tenants: [acme]}, {service_account: qualify/qualify, tenants: ['*', qualify-system]}]}]",
        );
        let sync = i.identity(&json!({"sub": "system:serviceaccount:crm:sync"})).unwrap();
        assert_eq!(sync.caller(None).unwrap().roles, vec![Role::Service]);
        assert_eq!(sync.caller(None).unwrap().tenant, "acme");
        assert!(sync.caller(Some("beta")).is_err());
        let platform = i.identity(&json!({"sub": "system:serviceaccount:qualify:qualify"})).unwrap();
        assert!(platform.caller(None).is_err(), "several tenants: the call names one");
        assert_eq!(platform.caller(Some("beta")).unwrap().tenant, "beta");
        assert_eq!(platform.caller(Some(SYSTEM_TENANT)).unwrap().tenant, SYSTEM_TENANT);
        assert!(i.identity(&json!({"sub": "system:serviceaccount:crm:other"})).is_err());
        let star = issuer(
            "issuers: [{name: k8s, kind: workload, issuer: 'https://k8s', audience: q, \
             service_accounts: [{service_account: a/b, tenants: ['*']}]}]",
        );
        let any = star.identity(&json!({"sub": "system:serviceaccount:a:b"})).unwrap();
        assert!(any.caller(Some(SYSTEM_TENANT)).is_err(), "* never includes the platform tenant");
    }

    #[test]
    fn a_provider_limited_to_its_tenants_cannot_speak_for_another() {
        let i = issuer(
            "issuers: [{name: acme-idp, issuer: 'https://idp', audience: q, tenant_claim: org, tenants: [acme, acme-eu], roles_claim: groups}]",
        );
        let id = |org: &str| i.identity(&json!({"sub": "ada", "org": org, "groups": ["ae"]}));
        assert_eq!(id("acme-eu").unwrap().caller(None).unwrap().tenant, "acme-eu");
        assert!(matches!(id("beta"), Err(ApiError::PermissionDenied { .. })));
    }

    #[test]
    fn operators_act_in_the_platform_tenant() {
        let i = issuer(
            "issuers: [{name: ops, kind: operator, issuer: 'https://ops', audience: q, roles_claim: groups, role_mapping: {sre: revops}}]",
        );
        let c = i.identity(&json!({"sub": "grace", "groups": "sre"})).unwrap().caller(None).unwrap();
        assert_eq!((c.tenant.as_str(), c.roles), (SYSTEM_TENANT, vec![Role::Revops]));
    }

    #[test]
    fn misconfigurations_are_refused_naming_the_issuer() {
        for (yaml, says) in [
            ("issuers: []", "at least one"),
            ("issuers: [{name: a, issuer: 'https://a', audience: q}]", "tenant_claim"),
            ("issuers: [{name: a, issuer: 'https://a', audience: q, tenant: qualify-system}]", "tenant"),
            ("issuers: [{name: a, issuer: 'https://a', audience: q, tenant: t, role_mapping: {x: boss}}]", "boss"),
            (
                "issuers: [{name: a, kind: workload, issuer: 'https://a', audience: q, service_accounts: [{service_account: nons, tenants: [t]}]}]",
                "namespace/name",
            ),
        ] {
            let c: IdentityConfig = serde_yaml_ng::from_str(yaml).unwrap();
            let e = c.check().unwrap_err().to_string();
            assert!(e.contains(says), "{yaml}: {e}");
        }
        assert!(serde_yaml_ng::from_str::<IdentityConfig>("issuers: []\nalow_hs256: true").is_err(), "misspelled key");
    }
}
