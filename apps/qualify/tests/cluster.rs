//! The README's run command, as a user runs it: the `qualify` binary starts
//! all three services on the embedded default, each answers health and
//! reflection, a minted development token works, and Ctrl-C stops it cleanly.

#![allow(clippy::unwrap_used)] // Tests panic on purpose when an expectation fails.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use qualify_proto::scoring::{ListAccountsRequest, lead_scoring_service_client::LeadScoringServiceClient};
use tokio_stream::StreamExt;
use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

const SERVICES: [&str; 3] = [
    "qualify.scoring.v1.LeadScoringService",
    "qualify.acceptance.v1.OpportunityAcceptanceService",
    "qualify.metrics.v1.MetricsService",
];

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct Cluster {
    child: Child,
    ports: [u16; 3],
    prometheus: u16,
    dir: std::path::PathBuf,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn start() -> Cluster {
    start_with("plain", &[])
}

/// The binary on free ports, in a directory of its own named after `name`, with `extra` arguments.
fn start_with(name: &str, extra: &[String]) -> Cluster {
    let dir = std::env::temp_dir().join(format!("qualify-cluster-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ports = [free_port(), free_port(), free_port()];
    let prometheus = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_qualify"))
        .current_dir(&dir)
        .env_remove("QUALIFY_JWT_SECRET")
        .env_remove("QUALIFY_DATABASE_URL")
        .args(["--scoring-addr", &format!("127.0.0.1:{}", ports[0])])
        .args(["--acceptance-addr", &format!("127.0.0.1:{}", ports[1])])
        .args(["--metrics-addr", &format!("127.0.0.1:{}", ports[2])])
        .args(["--prometheus-addr", &format!("127.0.0.1:{prometheus}")])
        .args(["--cors-origins", "http://app.example"])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("qualify binary starts");
    Cluster { child, ports, prometheus, dir }
}

async fn channel(port: u16) -> Channel {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match Channel::from_shared(format!("http://127.0.0.1:{port}")).unwrap().connect().await {
            Ok(c) => return c,
            Err(e) if Instant::now() > deadline => panic!("port {port} never answered: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

async fn status(ch: Channel, service: &str) -> i32 {
    HealthClient::new(ch)
        .check(HealthCheckRequest { service: service.into() })
        .await
        .map(|r| r.into_inner().status)
        .unwrap_or(-1)
}

async fn list_v1(ch: Channel) -> Vec<String> {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream =
        ServerReflectionClient::new(ch).server_reflection_info(tokio_stream::iter([req])).await.unwrap().into_inner();
    match stream.next().await.unwrap().unwrap().message_response {
        Some(MessageResponse::ListServicesResponse(l)) => l.service.into_iter().map(|s| s.name).collect(),
        other => panic!("unexpected reflection answer {other:?}"),
    }
}

async fn list_v1alpha(ch: Channel) -> Vec<String> {
    use tonic_reflection::pb::v1alpha::ServerReflectionRequest;
    use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse;
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream =
        ServerReflectionClient::new(ch).server_reflection_info(tokio_stream::iter([req])).await.unwrap().into_inner();
    match stream.next().await.unwrap().unwrap().message_response {
        Some(MessageResponse::ListServicesResponse(l)) => l.service.into_iter().map(|s| s.name).collect(),
        other => panic!("unexpected reflection answer {other:?}"),
    }
}

/// `GET /metrics` over plain HTTP/1.0.
async fn scrape(port: u16) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n").await.unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).await.unwrap();
    body
}

/// A gRPC-Web call over plain HTTP/1.1, as a browser or `curl` makes it: the
/// response body holds the message frame and then the trailers frame.
async fn grpc_web(port: u16, path: &str, message: &[u8], token: Option<&str>) -> (String, Vec<u8>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut body = vec![0u8];
    body.extend_from_slice(&(message.len() as u32).to_be_bytes());
    body.extend_from_slice(message);
    let auth = token.map(|t| format!("authorization: Bearer {t}\r\n")).unwrap_or_default();
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/grpc-web+proto\r\n\
         x-grpc-web: 1\r\n{auth}content-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(&body).await.unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut rest = &raw[split..];
    if !head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        return (head, rest.to_vec());
    }
    // Undo HTTP/1.1 chunking: `<hex size>\r\n<bytes>\r\n`, until a chunk of 0.
    let mut body = Vec::new();
    loop {
        let eol = rest.windows(2).position(|w| w == b"\r\n").unwrap();
        let size = usize::from_str_radix(std::str::from_utf8(&rest[..eol]).unwrap().trim(), 16).unwrap();
        if size == 0 {
            return (head, body);
        }
        body.extend_from_slice(&rest[eol + 2..eol + 2 + size]);
        rest = &rest[eol + 2 + size + 2..];
    }
}

/// The response head of a CORS preflight from `origin`.
async fn preflight(port: u16, origin: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let req = format!(
        "OPTIONS /qualify.scoring.v1.LeadScoringService/ListAccounts HTTP/1.1\r\nhost: localhost\r\n\
         origin: {origin}\r\naccess-control-request-method: POST\r\n\
         access-control-request-headers: content-type,x-grpc-web,authorization\r\nconnection: close\r\n\r\n"
    );
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.unwrap();
    String::from_utf8_lossy(&raw).to_ascii_lowercase()
}

#[tokio::test]
async fn the_run_command_serves_all_three_and_stops_on_ctrl_c() {
    let mut cluster = start();
    for (port, service) in cluster.ports.into_iter().zip(SERVICES) {
        let ch = channel(port).await;
        // Liveness answers at once; readiness once the database answers.
        assert_eq!(status(ch.clone(), "").await, ServingStatus::Serving as i32);
        let deadline = Instant::now() + Duration::from_secs(20);
        while status(ch.clone(), service).await != ServingStatus::Serving as i32 {
            assert!(Instant::now() < deadline, "{service} never became ready");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        for listed in [list_v1(ch.clone()).await, list_v1alpha(ch.clone()).await] {
            assert!(listed.contains(&service.to_string()), "{service}: {listed:?}");
            assert!(listed.contains(&"grpc.health.v1.Health".to_string()), "{listed:?}");
            assert!(!SERVICES.iter().any(|s| *s != service && listed.contains(&s.to_string())), "{listed:?}");
        }
    }

    // `qualify token` mints a development token the cluster accepts.
    let out = Command::new(env!("CARGO_BIN_EXE_qualify"))
        .env_remove("QUALIFY_JWT_SECRET")
        .args(["token", "--tenant", "demo", "--subject", "ada", "--role", "revops"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let mut scoring = LeadScoringServiceClient::new(channel(cluster.ports[0]).await);
    let e = scoring.list_accounts(ListAccountsRequest::default()).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unauthenticated);
    let mut req = tonic::Request::new(ListAccountsRequest::default());
    req.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    scoring.list_accounts(req).await.unwrap();

    // Prometheus sees both calls: latency per service, method and status code.
    let page = scrape(cluster.prometheus).await;
    for code in ["0", "16"] {
        let series = format!(
            "rpc_server_duration_seconds_count{{rpc_service=\"qualify.scoring.v1.LeadScoringService\",\
             rpc_method=\"ListAccounts\",rpc_grpc_status_code=\"{code}\"}} 1"
        );
        assert!(page.contains(&series), "no {series} in:\n{page}");
    }
    assert!(page.contains("rpc_server_duration_seconds_bucket{"), "latency is a histogram");

    // gRPC-Web over HTTP/1.1: health answers SERVING (message 08 01), a business call without a
    // token is refused in the trailers, and with one it answers.
    let (head, body) = grpc_web(cluster.ports[0], "/grpc.health.v1.Health/Check", &[], None).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("application/grpc-web"), "{head}");
    assert_eq!(&body[..7], &[0, 0, 0, 0, 2, 0x08, 0x01], "one message frame: SERVING");
    assert!(String::from_utf8_lossy(&body).contains("grpc-status:0"), "{body:?}");
    let list = "/qualify.scoring.v1.LeadScoringService/ListAccounts";
    // The status travels in the trailers frame, or in the headers of a trailers-only answer.
    let status = |(head, body): (String, Vec<u8>)| {
        let all = format!("{head}{}", String::from_utf8_lossy(&body)).to_ascii_lowercase().replace(' ', "");
        all.split("grpc-status:").nth(1).map(|s| s.chars().take_while(char::is_ascii_digit).collect::<String>())
    };
    assert_eq!(status(grpc_web(cluster.ports[0], list, &[], None).await).as_deref(), Some("16"));
    assert_eq!(status(grpc_web(cluster.ports[0], list, &[], Some(&token)).await).as_deref(), Some("0"));
    // A page on the allowed origin may call (preflight answered); another origin gets no grant.
    let allowed = preflight(cluster.ports[0], "http://app.example").await;
    assert!(allowed.contains("access-control-allow-origin: http://app.example"), "{allowed}");
    assert!(allowed.contains("authorization"), "the bearer header may be sent: {allowed}");
    let other = preflight(cluster.ports[0], "http://evil.example").await;
    assert!(!other.contains("access-control-allow-origin"), "{other}");

    // Ctrl-C: the process drains and exits successfully.
    let kill = Command::new("kill").args(["-INT", &cluster.child.id().to_string()]).status().unwrap();
    assert!(kill.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = cluster.child.try_wait().unwrap() {
            assert!(status.success(), "exit status {status:?}");
            break;
        }
        assert!(Instant::now() < deadline, "qualify did not stop after SIGINT");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(cluster.dir.join("data/scoring.db").exists(), "the embedded default keeps its data on disk");
}

/// `message` with a bearer token.
fn authed<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut r = tonic::Request::new(message);
    r.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    r
}

/// A TLS channel to `port` trusting `tls.ca` and presenting `tls.identity`.
fn tls_channel(port: u16, tls: &qualify_platform::tls::ClientTls) -> Channel {
    qualify_platform::client::channel(&format!("https://127.0.0.1:{port}"), Some(Duration::from_secs(5)), tls).unwrap()
}

#[tokio::test]
async fn with_tls_every_port_is_encrypted_and_the_services_present_client_certificates_to_each_other() {
    use qualify_platform::tls::ClientTls;
    use qualify_proto::metrics::{GetIngestionStatusRequest, metrics_service_client::MetricsServiceClient};
    use qualify_proto::scoring::{self as sc, Account, CreateAccountRequest, CreateLeadRequest};

    let certs = std::env::temp_dir().join(format!("qualify-cluster-certs-{}", std::process::id()));
    std::fs::create_dir_all(&certs).unwrap();
    let ca = qualify_testkit::tls::TestCa::new("qualify binary test CA");
    let ca_file = certs.join("ca.crt");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let (cert, key) = ca.service().write(&certs, "qualify");
    let path = |p: &std::path::Path| p.display().to_string();
    let cluster = start_with(
        "tls",
        &[
            "--tls-cert".into(),
            path(&cert),
            "--tls-key".into(),
            path(&key),
            "--tls-client-ca".into(),
            path(&ca_file),
            "--tls-ca".into(),
            path(&ca_file),
        ],
    );
    let client = ClientTls { ca: Some(ca_file.clone()), identity: Some(ca.client("ops").write(&certs, "ops")) };
    let bare = ClientTls { ca: Some(ca_file.clone()), identity: None };

    // Every gRPC port: ready over TLS with a client certificate; nothing without one or in plaintext.
    for (port, service) in cluster.ports.into_iter().zip(SERVICES) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while status(tls_channel(port, &client), service).await != ServingStatus::Serving as i32 {
            assert!(Instant::now() < deadline, "{service} never became ready over TLS");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert_eq!(status(tls_channel(port, &bare), "").await, -1, "{service}: a client certificate is required");
        let plain = Channel::from_shared(format!("http://127.0.0.1:{port}")).unwrap().connect_lazy();
        assert_eq!(status(plain, "").await, -1, "{service}: no plaintext on a TLS port");
    }

    // Metrics reads lead scoring's stream over TLS, presenting the services' certificate.
    let token = |tenant: &str, role: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_qualify"))
            .env_remove("QUALIFY_JWT_SECRET")
            .args(["token", "--tenant", tenant, "--subject", "ada", "--role", role])
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let mut s = LeadScoringServiceClient::new(tls_channel(cluster.ports[0], &client));
    let sync = token("demo", "service");
    let account = Account { account_id: "acc-1".into(), display_name: "Acme".into(), segment: 1, ..Default::default() };
    s.create_account(authed(CreateAccountRequest { account: Some(account), request_id: "r-1".into() }, &sync))
        .await
        .unwrap();
    let lead = sc::Lead { contact_id: String::new(), ..qualify_testkit::fixtures::lead("lead-1", "webinar") };
    s.create_lead(authed(CreateLeadRequest { lead: Some(lead), request_id: "r-2".into() }, &sync)).await.unwrap();
    let mut m = MetricsServiceClient::new(tls_channel(cluster.ports[2], &client));
    let operator = token("qualify-system", "revops");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let st = m.get_ingestion_status(authed(GetIngestionStatusRequest {}, &operator)).await.unwrap().into_inner();
        if st.streams.iter().any(|s| s.applied_sequence > 0) {
            break;
        }
        assert!(Instant::now() < deadline, "metrics never read a stream over TLS: {st:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Prometheus is scraped over TLS too (no client certificate asked).
    let connector = tokio_rustls::TlsConnector::from(bare.config().unwrap());
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", cluster.prometheus)).await.unwrap();
    let mut tls = connector.connect(rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap(), tcp).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    tls.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n").await.unwrap();
    let mut body = String::new();
    let _ = tls.read_to_string(&mut body).await;
    assert!(
        body.starts_with("HTTP/1.1 200") && body.contains("rpc_server_duration_seconds"),
        "{}",
        &body[..body.len().min(300)]
    );
    drop(cluster);
    let _ = std::fs::remove_dir_all(&certs);
}
