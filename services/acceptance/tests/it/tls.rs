#![allow(clippy::unwrap_used)]
//! TLS between the services and on every gRPC port: certificates from a CA
//! made here; lead scoring's port requires a client certificate; a renewed
//! certificate is served without a restart.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::crossing::a_deal_crosses_every_service;
use qualify_platform::tls::{ClientTls, TlsFiles};
use qualify_proto::scoring::{self as sc, lead_scoring_service_client::LeadScoringServiceClient};
use qualify_testkit::tls::TestCa;
use qualify_testkit::{Backend, Cluster, Role, authed, eventually, token};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient};

struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The DER of the certificate the server at `addr` presents to a client trusting `ca`.
async fn served_certificate(addr: std::net::SocketAddr, tls: &ClientTls) -> Vec<u8> {
    let connector = tokio_rustls::TlsConnector::from(tls.config().unwrap());
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let s = connector.connect(ServerName::try_from("127.0.0.1").unwrap(), tcp).await.unwrap();
    s.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

fn der(pem: &str) -> Vec<u8> {
    CertificateDer::from_pem_slice(pem.as_bytes()).unwrap().to_vec()
}

async fn list_leads(url: &str, tls: &ClientTls) -> Result<(), tonic::Status> {
    let ch = qualify_platform::client::channel(url, Some(Duration::from_secs(5)), tls).unwrap();
    let req = sc::ListLeadsRequest { page_size: 1, ..Default::default() };
    LeadScoringServiceClient::new(ch).list_leads(authed(req, &token("acme", "ada", &[Role::Sdr]))).await.map(|_| ())
}

#[tokio::test]
async fn the_services_talk_over_tls_and_lead_scoring_requires_client_certificates() {
    let dir = Dir(std::env::temp_dir().join(format!("qualify-tls-{}", uuid::Uuid::new_v4().simple())));
    std::fs::create_dir_all(&dir.0).unwrap();
    let ca = TestCa::new("qualify test CA");
    let ca_file = dir.0.join("ca.crt");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let shared = ca.service().write(&dir.0, "service");
    let scoring_files = ca.service().write(&dir.0, "scoring");
    // Lead scoring's client CA is a file of its own, rotated at the end.
    let clients_ca = dir.0.join("scoring-clients.crt");
    std::fs::write(&clients_ca, ca.pem()).unwrap();
    let (ca2, shared2, scoring2, clients2) =
        (ca_file.clone(), shared.clone(), scoring_files.clone(), clients_ca.clone());
    // Lead scoring also answers probes in plaintext on a port of their own.
    let probe_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let mut w = Cluster::start_configured(Backend::Sqlite, move |service, c| {
        let (cert, key) = if service == "scoring" { scoring2.clone() } else { shared2.clone() };
        let client_ca = (service == "scoring").then(|| clients2.clone());
        c.tls = Some(TlsFiles { cert, key, client_ca });
        c.tls_ca_file = Some(ca2.clone());
        if service == "scoring" {
            c.health_addr = Some(probe_port);
        }
    })
    .await;
    assert!(w.scoring.url().starts_with("https://"));

    // Every call between the services crosses TLS: acceptance presents its certificate to lead
    // scoring, lead scoring follows acceptance, metrics reads both.
    let operator = token("qualify-system", "grace", &[Role::Revops]);
    a_deal_crosses_every_service(&mut w, &operator, "over TLS").await;

    // Lead scoring's port wants a client certificate from its CA; acceptance's does not.
    let no_cert = ClientTls { ca: Some(ca_file.clone()), identity: None };
    let with_cert =
        ClientTls { ca: Some(ca_file.clone()), identity: Some(ca.client("crm-sync").write(&dir.0, "sync")) };
    assert!(list_leads(&w.scoring.url(), &no_cert).await.is_err(), "no client certificate, no call");
    let stranger = TestCa::new("another CA");
    let foreign = ClientTls { ca: Some(ca_file.clone()), identity: Some(stranger.client("x").write(&dir.0, "x")) };
    assert!(list_leads(&w.scoring.url(), &foreign).await.is_err(), "a certificate of another CA is refused");
    list_leads(&w.scoring.url(), &with_cert).await.unwrap();
    assert!(list_leads(&format!("http://{}", w.scoring.addr), &no_cert).await.is_err(), "no plaintext on a TLS port");
    let mut a =
        qualify_proto::acceptance::opportunity_acceptance_service_client::OpportunityAcceptanceServiceClient::new(
            qualify_platform::client::channel(&w.acceptance.url(), None, &no_cert).unwrap(),
        );
    let req = qualify_proto::acceptance::GetOpportunityRequest { opportunity_id: "opp-1".into() };
    a.get_opportunity(authed(req, &w.acme.sdr)).await.unwrap();
    // A client that does not trust the CA refuses the server.
    assert!(list_leads(&w.scoring.url(), &ClientTls { ca: None, identity: with_cert.identity.clone() }).await.is_err());

    // The probe port answers health in plaintext, and nothing else.
    let probe = tonic::transport::Channel::from_shared(format!("http://{probe_port}")).unwrap().connect_lazy();
    let req = HealthCheckRequest { service: "qualify.scoring.v1.LeadScoringService".into() };
    let got = HealthClient::new(probe.clone()).check(req).await.unwrap().into_inner();
    assert_eq!(got.status(), ServingStatus::Serving);
    let req = sc::ListLeadsRequest { page_size: 1, ..Default::default() };
    let e = LeadScoringServiceClient::new(probe).list_leads(authed(req, &w.acme.sdr)).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unimplemented, "no business call on the probe port");

    // A renewal rewrites the files; new connections get the new certificate, no restart.
    assert_eq!(
        served_certificate(w.scoring.addr, &with_cert).await,
        der(&std::fs::read_to_string(&scoring_files.0).unwrap())
    );
    let renewed = ca.service();
    replace(&scoring_files.0, &renewed.cert_pem);
    replace(&scoring_files.1, &renewed.key_pem);
    let served = eventually(Duration::from_secs(10), || {
        let (tls, want) = (with_cert.clone(), der(&renewed.cert_pem));
        let addr = w.scoring.addr;
        async move { (served_certificate(addr, &tls).await == want).then_some(()) }
    })
    .await;
    assert!(served.is_some(), "the renewed certificate is served without a restart");
    list_leads(&w.scoring.url(), &with_cert).await.unwrap();

    // The client CA rotates: certificates of the new CA get in, the old CA's no longer, no restart.
    let next = TestCa::new("next client CA");
    let next_client =
        ClientTls { ca: Some(ca_file.clone()), identity: Some(next.client("crm-sync").write(&dir.0, "next")) };
    assert!(list_leads(&w.scoring.url(), &next_client).await.is_err(), "not yet trusted");
    replace(&clients_ca, next.pem());
    let rotated = eventually(Duration::from_secs(10), || {
        let (url, next_client) = (w.scoring.url(), next_client.clone());
        async move { list_leads(&url, &next_client).await.ok() }
    })
    .await;
    assert!(rotated.is_some(), "the new client CA is trusted without a restart");
    assert!(list_leads(&w.scoring.url(), &with_cert).await.is_err(), "the old CA's certificates are not");
}

/// Replaces a file the way a Secret volume does: a new file renamed over the old.
fn replace(path: &Path, content: &str) {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, content).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}
