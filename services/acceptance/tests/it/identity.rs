#![allow(clippy::unwrap_used)]
//! Company identity, end to end: people sign in through an OIDC provider the
//! test runs (its JWKS over HTTPS with keys generated here), operators through
//! an issuer of their own, and the services call each other with a projected
//! service-account token from a third issuer, with HS256 tokens refused.

use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use qualify_platform::auth::identity::IdentityConfig;
use qualify_proto::acceptance as pb;
use qualify_proto::metrics as mpb;
use qualify_proto::scoring as sc;
use qualify_testkit::oidc::{KeyType, Provider, now};

use crate::crossing::a_deal_crosses_every_service;
use qualify_testkit::{Backend, Cluster, Role, authed, eventually, fixtures, token};
use serde_json::json;
use tonic::Code;
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient};

/// The three issuers of the company, and the pod token file.
struct Company {
    idp: Provider,
    ops: Provider,
    k8s: Provider,
    pod_token: std::path::PathBuf,
}

impl Drop for Company {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.pod_token);
    }
}

impl Company {
    async fn new() -> Company {
        let (idp, ops, k8s) = (Provider::https().await, Provider::http().await, Provider::https().await);
        idp.add_key(KeyType::Rs256, "rsa-1");
        idp.add_key(KeyType::Es256, "ec-1");
        ops.add_key(KeyType::EdDsa, "ops-1");
        k8s.add_key(KeyType::Es256, "sa-1");
        let pod_token = std::env::temp_dir().join(format!("qualify-pod-token-{}", uuid::Uuid::new_v4().simple()));
        std::fs::write(&pod_token, k8s.token("sa-1", "system:serviceaccount:qualify:qualify", "qualify", json!({})))
            .unwrap();
        Company { idp, ops, k8s, pod_token }
    }

    fn identity(&self, min_refresh_secs: u64) -> IdentityConfig {
        let ca = |p: &Provider| p.ca_file().map(|f| f.display().to_string()).unwrap_or_default();
        let yaml = format!(
            "min_refresh_secs: {min_refresh_secs}
issuers:
  - name: idp
    issuer: {idp}
    audience: qualify
    ca_file: {idp_ca}
    tenant_claim: org
    roles_claim: groups
  - name: ops
    kind: operator
    issuer: {ops}
    audience: qualify-operators
    roles_claim: groups
    role_mapping: {{ platform-sre: revops }}
  - name: cluster
    kind: workload
    issuer: {k8s}
    audience: qualify
    ca_file: {k8s_ca}
    service_accounts:
      - {{ service_account: qualify/qualify, tenants: ['*', qualify-system] }}
      - {{ service_account: crm/sync, tenants: [acme] }}
",
            idp = self.idp.issuer(),
            idp_ca = ca(&self.idp),
            ops = self.ops.issuer(),
            k8s = self.k8s.issuer(),
            k8s_ca = ca(&self.k8s),
        );
        let c: IdentityConfig = serde_yaml_ng::from_str(&yaml).unwrap();
        c.check().unwrap();
        c
    }

    async fn cluster(&self, min_refresh_secs: u64) -> Cluster {
        let identity = self.identity(min_refresh_secs);
        let pod_token = self.pod_token.clone();
        let mut w = Cluster::start_configured(Backend::Sqlite, move |_, c| {
            c.identity = Some(identity.clone());
            c.service_token_file = Some(pod_token.clone());
        })
        .await;
        w.acme = self.idp.tenant_tokens("rsa-1", "acme");
        w
    }
}

async fn list_leads(w: &Cluster, token: &str) -> Result<(), tonic::Status> {
    let req = sc::ListLeadsRequest { page_size: 1, ..Default::default() };
    w.clients.scoring.clone().list_leads(authed(req, token)).await.map(|_| ())
}

fn code(r: Result<(), tonic::Status>) -> Code {
    r.err().map_or(Code::Ok, |s| s.code())
}

async fn identity_health(w: &Cluster) -> ServingStatus {
    health(w, "qualify.identity").await
}

async fn health(w: &Cluster, service: &str) -> ServingStatus {
    let req = HealthCheckRequest { service: service.into() };
    let r = HealthClient::new(w.scoring.channel().await).check(req).await.unwrap();
    r.into_inner().status()
}

#[tokio::test]
async fn tokens_of_the_company_issuers_are_verified_and_everything_else_is_refused() {
    let co = Company::new().await;
    let w = co.cluster(30).await;
    let claims = |extra: serde_json::Value| {
        let mut c = json!({"iss": co.idp.issuer(), "sub": "ada", "aud": "qualify", "org": "acme",
                           "groups": ["ae"], "iat": now(), "exp": now() + 600});
        c.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        c
    };

    // RS256 and ES256 tokens of the company's provider are accepted.
    assert_eq!(code(list_leads(&w, &co.idp.sign("rsa-1", &claims(json!({})))).await), Code::Ok);
    assert_eq!(code(list_leads(&w, &co.idp.sign("ec-1", &claims(json!({})))).await), Code::Ok);

    let refused = [
        ("wrong issuer", co.idp.sign("rsa-1", &claims(json!({"iss": "https://evil.example"}))), Code::Unauthenticated),
        ("wrong audience", co.idp.sign("rsa-1", &claims(json!({"aud": "other-app"}))), Code::Unauthenticated),
        ("expired", co.idp.sign("rsa-1", &claims(json!({"exp": now() - 3600}))), Code::Unauthenticated),
        ("not valid yet", co.idp.sign("rsa-1", &claims(json!({"nbf": now() + 3600}))), Code::Unauthenticated),
        ("no role Qualify knows", co.idp.sign("rsa-1", &claims(json!({"groups": ["lunch"]}))), Code::Unauthenticated),
        (
            "a tenant token in the platform tenant",
            co.idp.sign("rsa-1", &claims(json!({"org": "qualify-system"}))),
            Code::PermissionDenied,
        ),
        ("an HS256 development token", token("acme", "ada", &[Role::Ae]), Code::Unauthenticated),
        (
            "a token of the Kubernetes issuer for an unmapped account",
            co.k8s.token("sa-1", "system:serviceaccount:default:default", "qualify", json!({})),
            Code::Unauthenticated,
        ),
    ];
    for (what, t, want) in refused {
        assert_eq!(code(list_leads(&w, &t).await), want, "{what}");
    }

    // A key the provider never published: a token signed with a key of another provider under a known kid.
    let stranger = Provider::http().await;
    stranger.add_key(KeyType::Rs256, "rsa-1");
    assert_eq!(code(list_leads(&w, &stranger.sign("rsa-1", &claims(json!({})))).await), Code::Unauthenticated);
    // An unknown kid.
    stranger.add_key(KeyType::Es256, "ec-unknown");
    let fetches = co.idp.jwks_fetches();
    assert_eq!(code(list_leads(&w, &stranger.sign("ec-unknown", &claims(json!({})))).await), Code::Unauthenticated);
    for _ in 0..5 {
        list_leads(&w, &stranger.sign("ec-unknown", &claims(json!({"sub": "x"})))).await.unwrap_err();
    }
    assert!(co.idp.jwks_fetches() <= fetches + 1, "unknown key ids fetch the JWKS at most once per interval");

    // alg: none, and HS256 signed with the provider's public RSA key as the secret.
    let b64 = |v: &serde_json::Value| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let none = format!("{}.{}.", b64(&json!({"alg": "none", "typ": "JWT", "kid": "rsa-1"})), b64(&claims(json!({}))));
    assert_eq!(code(list_leads(&w, &none).await), Code::Unauthenticated, "alg none");
    let public = co.idp.jwk("rsa-1").to_string();
    let mut h = Header::new(Algorithm::HS256);
    h.kid = Some("rsa-1".into());
    let forged = jsonwebtoken::encode(&h, &claims(json!({})), &EncodingKey::from_secret(public.as_bytes())).unwrap();
    assert_eq!(code(list_leads(&w, &forged).await), Code::Unauthenticated, "HS256 with the public key");

    // Operators come from their own issuer only.
    let mut m = w.clients.metrics.clone();
    let operator = co.ops.token("ops-1", "grace", "qualify-operators", json!({"groups": ["platform-sre"]}));
    m.get_ingestion_status(authed(mpb::GetIngestionStatusRequest {}, &operator)).await.unwrap();
    let tenant_revops = co.idp.sign("rsa-1", &claims(json!({"groups": ["revops"]})));
    let e = m.get_ingestion_status(authed(mpb::GetIngestionStatusRequest {}, &tenant_revops)).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "a tenant's RevOps is no operator");
    let claims_sre = co.idp.sign("rsa-1", &claims(json!({"groups": ["platform-sre"], "org": "qualify-system"})));
    let e = m.get_ingestion_status(authed(mpb::GetIngestionStatusRequest {}, &claims_sre)).await.unwrap_err();
    assert!(matches!(e.code(), Code::PermissionDenied | Code::Unauthenticated), "{e:?}");
    let wrong_aud = co.ops.token("ops-1", "grace", "qualify", json!({"groups": ["platform-sre"]}));
    let e = m.get_ingestion_status(authed(mpb::GetIngestionStatusRequest {}, &wrong_aud)).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "an operator token is for the operator audience");
}

#[tokio::test]
async fn a_key_rotation_needs_no_restart_and_an_outage_keeps_the_known_keys() {
    let co = Company::new().await;
    let w = co.cluster(1).await;
    let person = |kid: &str| co.idp.token(kid, "ada", "qualify", json!({"org": "acme", "groups": ["sdr"]}));
    let before = person("rsa-1");
    assert_eq!(code(list_leads(&w, &before).await), Code::Ok);
    assert_eq!(identity_health(&w).await, ServingStatus::Serving);

    // The provider rotates: a new key is published and the old one withdrawn.
    co.idp.add_key(KeyType::Rs256, "rsa-2");
    co.idp.unpublish("rsa-1");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(code(list_leads(&w, &person("rsa-2")).await), Code::Ok, "the new key is fetched on first sight");
    assert_eq!(code(list_leads(&w, &person("rsa-1")).await), Code::Unauthenticated, "the withdrawn key is gone");

    // The provider goes away: the keys already fetched keep working; health says the keys are stale.
    co.idp.set_answering(false);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    co.idp.add_key(KeyType::Es256, "ec-2");
    assert_eq!(code(list_leads(&w, &person("ec-2")).await), Code::Unauthenticated, "a new key cannot be fetched");
    assert_eq!(
        code(list_leads(&w, &co.idp.token("rsa-2", "bob", "qualify", json!({"org": "acme", "groups": ["ae"]}))).await),
        Code::Ok
    );
    let stale = eventually(Duration::from_secs(10), || async {
        (identity_health(&w).await == ServingStatus::NotServing).then_some(())
    })
    .await;
    assert!(stale.is_some(), "health shows the failed key fetch");
    assert_eq!(health(&w, "qualify.identity/idp").await, ServingStatus::NotServing, "which issuer failed");
    assert_eq!(health(&w, "qualify.identity/ops").await, ServingStatus::Serving);
    co.idp.set_answering(true);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(code(list_leads(&w, &person("ec-2")).await), Code::Ok, "back: the new key is fetched");
    let fresh = eventually(Duration::from_secs(10), || async {
        (identity_health(&w).await == ServingStatus::Serving).then_some(())
    })
    .await;
    assert!(fresh.is_some());
}

#[tokio::test]
async fn service_account_tokens_drive_the_calls_between_services() {
    let co = Company::new().await;
    let mut w = co.cluster(30).await;
    // People of acme, signed in through the provider, walk a lead to SQL and submit it;
    // acceptance reads the lead with the pod's token, lead scoring follows the acceptance
    // and metrics reads both streams with it.
    let operator = co.ops.token("ops-1", "grace", "qualify-operators", json!({"groups": ["platform-sre"]}));
    a_deal_crosses_every_service(&mut w, &operator, "with the service-account token").await;
    let mut s = w.clients.scoring.clone();

    // A service account mapped to one tenant acts in it and nowhere else, with the service role only.
    let sync = co.k8s.token("sa-1", "system:serviceaccount:crm:sync", "qualify", json!({}));
    assert_eq!(code(list_leads(&w, &sync).await), Code::Ok);
    let mut other = authed(sc::ListLeadsRequest { page_size: 1, ..Default::default() }, &sync);
    other.metadata_mut().insert("qualify-tenant", "beta".parse().unwrap());
    assert_eq!(s.list_leads(other).await.unwrap_err().code(), Code::PermissionDenied);
    let mut acc = w.clients.acceptance.clone();
    let req = pb::AcceptOpportunityRequest { opportunity_id: "opp-1".into(), ..Default::default() };
    let e = acc.accept_opportunity(authed(req, &sync)).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "automation never accepts an opportunity");
}

#[tokio::test]
async fn calls_between_services_carry_the_pods_token_not_the_callers() {
    let co = Company::new().await;
    // The pod runs as a service account no issuer mapping knows.
    let unmapped = co.k8s.token("sa-1", "system:serviceaccount:qualify:impostor", "qualify", json!({}));
    std::fs::write(&co.pod_token, unmapped).unwrap();
    let mut w = co.cluster(30).await;
    fixtures::sql_lead(&mut w.clients.scoring, &w.acme).await;
    let req =
        pb::SubmitOpportunityRequest { opportunity: Some(fixtures::opportunity("opp-1")), request_id: String::new() };
    let e = w.clients.acceptance.submit_opportunity(authed(req, &w.acme.sdr)).await.unwrap_err();
    // The SDR's own token is valid; what acceptance presents, the pod's, is refused.
    assert_eq!(e.code(), Code::Unavailable, "{e:?}");
    assert!(e.message().contains("lead scoring"), "{e:?}");
}
