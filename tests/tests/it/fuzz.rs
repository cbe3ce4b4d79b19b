//! Random and malformed requests to every unary RPC of the three services,
//! built from the contract itself (the descriptor set, through
//! prost-reflect): fields set at random to empty, huge, unicode, negative,
//! out-of-range, unknown-enum and nested values, by callers of every role.
//! Nothing panics or fails internally: each call succeeds or is refused with a
//! caller-facing code, and every INVALID_ARGUMENT names the fields at fault.
//! Bytes that are not protobuf at all are refused (INTERNAL, as gRPC specifies
//! for a request that does not parse), and a message over the size limit is
//! refused at the limit (OUT_OF_RANGE, tonic's code for it) with nothing
//! stored; the services keep answering throughout.
//! Against the machine's PostgreSQL. `QUALIFY_FUZZ_SEED` replays a run.

#![allow(clippy::unwrap_used)] // Tests panic on purpose when an expectation fails.

use std::collections::BTreeMap;

use bytes::{Buf, BufMut};
use prost_reflect::{DescriptorPool, DynamicMessage, Kind, MessageDescriptor, ReflectMessage, Value};
use qualify_testkit::{Backend, Cluster, Role, Tokens, authed, fixtures, token};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tonic::Code;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic_types::StatusExt;

/// Raw protobuf bytes in, raw bytes out: the request is whatever the test encoded.
#[derive(Clone, Copy, Default)]
struct Raw;

impl Codec for Raw {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = Raw;
    type Decoder = Raw;
    fn encoder(&mut self) -> Raw {
        Raw
    }
    fn decoder(&mut self) -> Raw {
        Raw
    }
}

impl Encoder for Raw {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for Raw {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, tonic::Status> {
        let mut v = vec![0; src.remaining()];
        src.copy_to_slice(&mut v);
        Ok(Some(v))
    }
}

const STRINGS: &[&str] = &[
    "",
    " ",
    "a",
    "lead-1",
    "acc-1",
    "opp-1",
    "2026-11",
    "2026-13",
    "USD",
    "usd",
    "../../etc/passwd",
    "'; DROP TABLE leads; --",
    "\u{0}",
    "ÿ€漢字🙂",
    "https://example.com/x",
    "qualify-system",
];

fn string(rng: &mut StdRng) -> String {
    match rng.random_range(0..10) {
        0 => "x".repeat(rng.random_range(129..20_000)),
        1 => (0..rng.random_range(1..40)).map(|_| rng.random_range(' '..='~')).collect(),
        _ => STRINGS[rng.random_range(0..STRINGS.len())].to_string(),
    }
}

fn value(kind: &Kind, rng: &mut StdRng, depth: u32) -> Value {
    const I64: &[i64] = &[0, 1, -1, 2, 15, 100, 1000, 2_400_000, i64::MAX, i64::MIN, i32::MAX as i64];
    match kind {
        Kind::String => Value::String(string(rng)),
        Kind::Bytes => {
            Value::Bytes((0..rng.random_range(0..64)).map(|_| rng.random::<u8>()).collect::<Vec<_>>().into())
        }
        Kind::Bool => Value::Bool(rng.random()),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => Value::I32(I64[rng.random_range(0..I64.len())] as i32),
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => Value::I64(I64[rng.random_range(0..I64.len())]),
        Kind::Uint32 | Kind::Fixed32 => Value::U32(I64[rng.random_range(0..I64.len())] as u32),
        Kind::Uint64 | Kind::Fixed64 => Value::U64(I64[rng.random_range(0..I64.len())] as u64),
        Kind::Float => Value::F32([0.0, -1.0, 0.5, f32::NAN, f32::INFINITY, 1e30][rng.random_range(0..6)]),
        Kind::Double => Value::F64([0.0, -1.0, 0.5, 7.0, f64::NAN, f64::INFINITY, 1e300][rng.random_range(0..7)]),
        Kind::Enum(e) => {
            let known: Vec<i32> = e.values().map(|v| v.number()).collect();
            Value::EnumNumber(if rng.random_bool(0.8) { known[rng.random_range(0..known.len())] } else { 99 })
        }
        Kind::Message(m) => Value::Message(message(m, rng, depth + 1)),
    }
}

/// A message with each field left unset or set to a random value (lists of 0–3 items).
fn message(desc: &MessageDescriptor, rng: &mut StdRng, depth: u32) -> DynamicMessage {
    let mut m = DynamicMessage::new(desc.clone());
    if depth > 4 {
        return m;
    }
    for field in desc.fields() {
        if field.is_map() || rng.random_bool(0.3) {
            continue;
        }
        let kind = field.kind();
        let v = if field.is_list() {
            Value::List((0..rng.random_range(0..4)).map(|_| value(&kind, rng, depth)).collect())
        } else {
            value(&kind, rng, depth)
        };
        m.set_field(&field, v);
    }
    m
}

/// Codes a caller can act on. INTERNAL, UNKNOWN, DATA_LOSS, UNIMPLEMENTED and friends mean
/// the server failed on input it should have judged.
fn caller_facing(code: Code) -> bool {
    matches!(
        code,
        Code::InvalidArgument
            | Code::NotFound
            | Code::AlreadyExists
            | Code::PermissionDenied
            | Code::FailedPrecondition
            | Code::Aborted
            | Code::OutOfRange
            | Code::ResourceExhausted
            | Code::Unauthenticated
    )
}

/// Words that would betray internals (storage, code, secrets) in a caller-facing message.
fn leaks(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    ["sqlx", "sea_orm", "postgres", "select ", "insert ", "panicked", "stack backtrace", "src/", ".rs:"]
        .iter()
        .any(|w| m.contains(w))
        || message.contains(qualify_testkit::TEST_SECRET)
}

async fn call(ch: tonic::transport::Channel, path: &str, body: Vec<u8>, token: &str) -> Result<Vec<u8>, tonic::Status> {
    let mut grpc = tonic::client::Grpc::new(ch);
    grpc.ready().await.map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let path: http::uri::PathAndQuery = path.parse().unwrap();
    grpc.unary(authed(body, token), path, Raw).await.map(|r| r.into_inner())
}

/// A channel to each service of `cluster`, by the full name of its gRPC service.
async fn channels(cluster: &Cluster) -> BTreeMap<&'static str, tonic::transport::Channel> {
    BTreeMap::from([
        ("qualify.scoring.v1.LeadScoringService", cluster.scoring.channel().await),
        ("qualify.acceptance.v1.OpportunityAcceptanceService", cluster.acceptance.channel().await),
        ("qualify.metrics.v1.MetricsService", cluster.metrics.channel().await),
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_requests_to_every_rpc_are_judged_never_crash() {
    let seed: u64 = std::env::var("QUALIFY_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random);
    println!("QUALIFY_FUZZ_SEED={seed}");
    let mut rng = StdRng::seed_from_u64(seed);

    let cluster = Cluster::start(Backend::Postgres).await;
    let channels = channels(&cluster).await;
    let roles = Role::ALL;
    let tokens: Vec<String> = roles.iter().map(|r| token("acme", "fuzz", &[*r])).collect();

    let pool = DescriptorPool::decode(qualify_proto::FILE_DESCRIPTOR_SET).unwrap();
    let (mut calls, mut refused, mut fields_named) = (0, 0, 0);
    let mut failures = Vec::new();
    for service in pool.services().filter(|s| channels.contains_key(s.full_name())) {
        let ch = channels[service.full_name()].clone();
        for method in service.methods().filter(|m| !m.is_client_streaming() && !m.is_server_streaming()) {
            let path = format!("/{}/{}", service.full_name(), method.name());
            for i in 0..30 {
                let body = prost::Message::encode_to_vec(&message(&method.input(), &mut rng, 0));
                let t = &tokens[i % tokens.len()];
                calls += 1;
                match call(ch.clone(), &path, body, t).await {
                    Ok(_) => {}
                    Err(s) if !caller_facing(s.code()) => {
                        failures.push(format!("{path}: {:?} {}", s.code(), s.message()))
                    }
                    Err(s) if leaks(s.message()) => failures.push(format!("{path}: internals leak: {}", s.message())),
                    Err(s) if s.code() == Code::InvalidArgument => {
                        refused += 1;
                        let named = s.get_error_details().bad_request().is_some_and(|b| {
                            !b.field_violations.is_empty() && b.field_violations.iter().all(|v| !v.field.is_empty())
                        });
                        if named {
                            fields_named += 1;
                        } else {
                            failures
                                .push(format!("{path}: INVALID_ARGUMENT without field violations: {}", s.message()));
                        }
                    }
                    Err(_) => refused += 1,
                }
            }
            // Bytes that are not a protobuf message at all.
            let garbage: Vec<u8> = (0..rng.random_range(1..64)).map(|_| rng.random::<u8>() | 0x80).collect();
            match call(ch.clone(), &path, garbage, &tokens[3]).await {
                Err(s) if matches!(s.code(), Code::Internal | Code::InvalidArgument) => {}
                other => failures.push(format!("{path}: garbage bytes answered {other:?}")),
            }
        }
    }
    // A message over the 4 MiB limit is refused at the limit, and nothing is stored.
    let huge = qualify_proto::scoring::CreateAccountRequest {
        account: Some(qualify_proto::scoring::Account {
            account_id: "huge".into(),
            display_name: "x".repeat(5 * 1024 * 1024),
            ..Default::default()
        }),
        request_id: String::new(),
    };
    let ch = channels["qualify.scoring.v1.LeadScoringService"].clone();
    let path = "/qualify.scoring.v1.LeadScoringService/CreateAccount";
    let e = call(ch.clone(), path, prost::Message::encode_to_vec(&huge), &tokens[4]).await.unwrap_err();
    // tonic refuses it while decoding, before any handler runs.
    assert!(matches!(e.code(), Code::OutOfRange | Code::ResourceExhausted), "{e:?}");
    let get = qualify_proto::scoring::GetAccountRequest { account_id: "huge".into() };
    let e =
        call(ch, "/qualify.scoring.v1.LeadScoringService/GetAccount", prost::Message::encode_to_vec(&get), &tokens[4])
            .await
            .unwrap_err();
    assert_eq!(e.code(), Code::NotFound, "the oversized create stored nothing");

    println!("{calls} random calls: {refused} refused, {fields_named} INVALID_ARGUMENT naming their fields");
    assert!(failures.is_empty(), "QUALIFY_FUZZ_SEED={seed}: {} failures:\n{}", failures.len(), failures.join("\n"));
    // Every service still answers.
    for (name, ch) in channels {
        let mut h = tonic_health::pb::health_client::HealthClient::new(ch);
        let r = h.check(tonic_health::pb::HealthCheckRequest { service: name.into() }).await;
        assert!(r.is_ok(), "{name} stopped answering: {r:?}");
    }
}

/// Every RPC of every service, streaming ones included, refuses a caller without a valid token:
/// none, malformed, signed with another key, expired, for another audience. Health and
/// reflection are the only calls that answer without one.
#[tokio::test]
async fn every_rpc_refuses_missing_forged_and_expired_tokens() {
    use jsonwebtoken::{EncodingKey, Header};
    use qualify_platform::auth::Claims;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let claims = |exp: u64, aud: &str| Claims {
        sub: "mallory".into(),
        tenant: "acme".into(),
        roles: vec!["revops".into(), "ae".into()],
        iss: "qualify".into(),
        aud: aud.into(),
        exp,
        iat: now - 7200,
    };
    let sign = |c: &Claims, key: &str| {
        jsonwebtoken::encode(&Header::default(), c, &EncodingKey::from_secret(key.as_bytes())).unwrap()
    };
    let secret = qualify_testkit::TEST_SECRET;
    let bad_tokens = [
        ("malformed", "not-a-jwt".to_string()),
        ("another key", sign(&claims(now + 3600, "qualify"), "another-key-another-key-another-key!")),
        ("expired", sign(&claims(now - 3600, "qualify"), secret)),
        ("another audience", sign(&claims(now + 3600, "elsewhere"), secret)),
    ];

    let cluster = Cluster::start(Backend::Sqlite).await;
    let channels = channels(&cluster).await;
    let pool = DescriptorPool::decode(qualify_proto::FILE_DESCRIPTOR_SET).unwrap();
    let mut checked = 0;
    for service in pool.services().filter(|s| channels.contains_key(s.full_name())) {
        for method in service.methods() {
            let path: http::uri::PathAndQuery = format!("/{}/{}", service.full_name(), method.name()).parse().unwrap();
            let body = prost::Message::encode_to_vec(&DynamicMessage::new(method.input()));
            for (what, t) in bad_tokens.iter().map(|(w, t)| (*w, Some(t.as_str()))).chain([("no", None)]) {
                let mut grpc = tonic::client::Grpc::new(channels[service.full_name()].clone());
                grpc.ready().await.unwrap();
                let mut req = tonic::Request::new(body.clone());
                if let Some(t) = t {
                    req.metadata_mut().insert("authorization", format!("Bearer {t}").parse().unwrap());
                }
                // Streaming calls are refused before the stream starts, so a unary call of the
                // same path sees the same refusal.
                let e = grpc.unary(req, path.clone(), Raw).await.unwrap_err();
                assert_eq!(e.code(), Code::Unauthenticated, "{path} with a {what} token: {e:?}");
                assert!(!leaks(e.message()), "{path}: {}", e.message());
                checked += 1;
            }
        }
    }
    assert!(checked >= 5 * 40, "{checked} calls checked");
}

/// Tenant isolation under fuzz: tenant A's data carries a secret word in its free-text fields;
/// tenant B, with every role, sends random requests to every unary RPC with id fields pointing at
/// A's resources. No answer or error B gets contains A's secret, and A's resources are unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_tenant_reads_or_changes_another_tenants_data() {
    use qualify_proto::acceptance as acc;
    use qualify_proto::common::{Money, Segment};
    use qualify_proto::metrics as mt;
    use qualify_proto::scoring as sc;
    const SECRET: &str = "zq7secret";
    let seed: u64 = std::env::var("QUALIFY_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random);
    println!("QUALIFY_FUZZ_SEED={seed}");
    let mut rng = StdRng::seed_from_u64(seed);

    let cluster = Cluster::start(Backend::Postgres).await;
    let (s_ch, a_ch, m_ch) =
        (cluster.scoring.channel().await, cluster.acceptance.channel().await, cluster.metrics.channel().await);

    // Tenant A: an account, a contact, a lead at SQL, a pending opportunity and a quota.
    let tenant_a = Tokens::new("tenant-a");
    let (bot, sdr, revops) = (tenant_a.sync.clone(), tenant_a.sdr.clone(), tenant_a.revops.clone());
    let mut s = sc::lead_scoring_service_client::LeadScoringServiceClient::new(s_ch.clone());
    let account = sc::Account {
        account_id: "acc-1".into(),
        display_name: format!("Acme {SECRET}"),
        segment: Segment::Smb as i32,
        ..Default::default()
    };
    s.create_account(authed(sc::CreateAccountRequest { account: Some(account), ..Default::default() }, &bot))
        .await
        .unwrap();
    let contact = sc::Contact {
        contact_id: "c-1".into(),
        account_id: "acc-1".into(),
        full_name: format!("Ada {SECRET}"),
        ..Default::default()
    };
    s.create_contact(authed(sc::CreateContactRequest { contact: Some(contact), ..Default::default() }, &bot))
        .await
        .unwrap();
    let lead = sc::Lead {
        lead_id: "lead-1".into(),
        account_id: "acc-1".into(),
        source: qualify_proto::common::LeadSource::Inbound as i32,
        campaign: format!("{SECRET}-campaign"),
        contact_id: "c-1".into(),
        ..Default::default()
    };
    s.create_lead(authed(sc::CreateLeadRequest { lead: Some(lead), ..Default::default() }, &bot)).await.unwrap();
    fixtures::walk_to_sql(&mut s, &tenant_a, "lead-1", &format!("{SECRET} pain")).await;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let o = acc::Opportunity {
        opportunity_id: "opp-1".into(),
        lead_id: "lead-1".into(),
        amount: Some(Money { amount_minor: 1_000_000, currency_code: "USD".into() }),
        expected_close_time: Some(prost_types_ts(now + 60 * 86_400)),
        segment: Segment::Smb as i32,
        team: format!("{SECRET}-team"),
        competitors: vec![format!("{SECRET}-rival")],
        ..Default::default()
    };
    let mut a = acc::opportunity_acceptance_service_client::OpportunityAcceptanceServiceClient::new(a_ch.clone());
    a.submit_opportunity(authed(acc::SubmitOpportunityRequest { opportunity: Some(o), ..Default::default() }, &sdr))
        .await
        .unwrap();
    let mut m = mt::metrics_service_client::MetricsServiceClient::new(m_ch.clone());
    let quota = mt::Quota {
        owner_kind: mt::QuotaOwnerKind::Team as i32,
        owner_id: format!("{SECRET}-team"),
        period: "2026-01".into(),
        amount: Some(Money { amount_minor: 5_000_000, currency_code: "USD".into() }),
        update_time: None,
    };
    m.update_quota(authed(mt::UpdateQuotaRequest { quota: Some(quota), request_id: String::new() }, &revops))
        .await
        .unwrap();
    let snapshot = || {
        let (mut s, mut a, t) = (s.clone(), a.clone(), revops.clone());
        async move {
            let get = |id: &str| id.to_string();
            (
                s.get_account(authed(sc::GetAccountRequest { account_id: get("acc-1") }, &t))
                    .await
                    .unwrap()
                    .into_inner(),
                s.get_contact(authed(sc::GetContactRequest { contact_id: get("c-1") }, &t)).await.unwrap().into_inner(),
                s.get_lead(authed(sc::GetLeadRequest { lead_id: get("lead-1") }, &t)).await.unwrap().into_inner(),
                a.get_opportunity(authed(acc::GetOpportunityRequest { opportunity_id: get("opp-1") }, &t))
                    .await
                    .unwrap()
                    .into_inner(),
            )
        }
    };
    let before = snapshot().await;
    // The detector works: A's own reads carry the secret, in the encoded bytes B would get.
    assert!(String::from_utf8_lossy(&prost::Message::encode_to_vec(&before.0)).contains(SECRET));
    assert!(String::from_utf8_lossy(&prost::Message::encode_to_vec(&before.3)).contains(SECRET));

    // Tenant B, every role, random requests aimed at A's ids.
    let ids = ["acc-1", "c-1", "lead-1", "opp-1", "tenant-a", "2026-01"];
    let roles = Role::ALL;
    let tokens: Vec<String> = roles.iter().map(|r| token("tenant-b", "eve", &[*r])).collect();
    let channels = BTreeMap::from([
        ("qualify.scoring.v1.LeadScoringService", s_ch),
        ("qualify.acceptance.v1.OpportunityAcceptanceService", a_ch),
        ("qualify.metrics.v1.MetricsService", m_ch),
    ]);
    let pool = DescriptorPool::decode(qualify_proto::FILE_DESCRIPTOR_SET).unwrap();
    let (mut calls, mut leaked) = (0, Vec::new());
    for service in pool.services().filter(|s| channels.contains_key(s.full_name())) {
        for method in service.methods().filter(|m| !m.is_client_streaming() && !m.is_server_streaming()) {
            let path = format!("/{}/{}", service.full_name(), method.name());
            // Every role, four random requests each: the matrix RPC × role × tenant.
            for i in 0..20 {
                let mut msg = message(&method.input(), &mut rng, 0);
                aim_at(&mut msg, &ids, &mut rng);
                let body = prost::Message::encode_to_vec(&msg);
                let t = &tokens[i % tokens.len()];
                calls += 1;
                let seen = match call(channels[service.full_name()].clone(), &path, body, t).await {
                    Ok(bytes) => String::from_utf8_lossy(&bytes).to_string(),
                    Err(s) => format!("{} {:?}", s.message(), s.details()),
                };
                if seen.contains(SECRET) {
                    leaked.push(format!("{path}: {seen}"));
                }
            }
        }
    }
    println!("{calls} calls by tenant B aimed at tenant A's ids");
    // The event streams are per tenant too: tenant B's service account replays its own (empty)
    // history, never A's events.
    let b_service = token("tenant-b", "metrics", &[Role::Service]);
    let mut s_b = sc::lead_scoring_service_client::LeadScoringServiceClient::new(
        channels["qualify.scoring.v1.LeadScoringService"].clone(),
    );
    let mut events = s_b
        .stream_events(authed(sc::StreamEventsRequest { after_sequence: 0, follow: false }, &b_service))
        .await
        .unwrap()
        .into_inner();
    while let Some(e) = events.message().await.unwrap() {
        assert_eq!(e.event.unwrap().tenant, "tenant-b", "tenant B's stream carried another tenant's event");
    }
    let mut a_b = acc::opportunity_acceptance_service_client::OpportunityAcceptanceServiceClient::new(
        channels["qualify.acceptance.v1.OpportunityAcceptanceService"].clone(),
    );
    let mut events = a_b
        .stream_events(authed(acc::StreamEventsRequest { after_sequence: 0, follow: false }, &b_service))
        .await
        .unwrap()
        .into_inner();
    while let Some(e) = events.message().await.unwrap() {
        assert_eq!(e.event.unwrap().tenant, "tenant-b", "tenant B's stream carried another tenant's event");
    }
    assert!(leaked.is_empty(), "QUALIFY_FUZZ_SEED={seed}: tenant B saw tenant A's data:\n{}", leaked.join("\n"));
    assert_eq!(snapshot().await, before, "tenant B changed tenant A's resources");
}

fn prost_types_ts(seconds: i64) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds, nanos: 0 }
}

/// Sets string fields that hold ids (`*_id`, `owner_id`, `period`) to one of `ids`, most of the
/// time, all the way down.
fn aim_at(msg: &mut DynamicMessage, ids: &[&str], rng: &mut StdRng) {
    let fields: Vec<_> = msg.descriptor().fields().collect();
    for f in fields {
        let is_id = f.name().ends_with("_id") || f.name() == "period";
        match f.kind() {
            Kind::String if is_id && !f.is_list() && rng.random_bool(0.8) => {
                msg.set_field(&f, Value::String(ids[rng.random_range(0..ids.len())].to_string()));
            }
            Kind::Message(_) if !f.is_list() && !f.is_map() && msg.has_field(&f) => {
                if let Some(Value::Message(mut inner)) = msg.get_field(&f).into_owned().into() {
                    aim_at(&mut inner, ids, rng);
                    msg.set_field(&f, Value::Message(inner));
                }
            }
            _ => {}
        }
    }
}
