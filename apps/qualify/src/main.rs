//! `qualify`: the whole cluster in one process on the embedded default
//! (SQLite files, in-process cache), the services still calling each other
//! over gRPC; and `qualify token` to mint a development token.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use futures::future::BoxFuture;
use qualify_acceptance::Acceptance;
use qualify_metrics::Metrics;
use qualify_platform::config::{LogFormat, ProcessEnv, dev_signing_key};
use qualify_platform::{QualifyService, ServiceConfig, TokenIssuer, telemetry};
use qualify_scoring::Scoring;
use tokio::sync::watch;

#[derive(Parser)]
#[command(name = "qualify", about = "Qualify: lead scoring, the SQO gate and funnel metrics")]
#[command(args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    up: UpArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Start lead scoring, opportunity acceptance and metrics (the default).
    Up(Box<UpArgs>),
    /// Print a bearer token signed with the configured key (QUALIFY_JWT_SECRET or the development key).
    Token {
        /// Tenant the token acts in.
        #[arg(long, default_value = "demo")]
        tenant: String,
        /// Subject (user or service id).
        #[arg(long, default_value = "dev")]
        subject: String,
        /// Roles: sdr, ae, manager, revops, service, verifier (repeat or comma-separate).
        #[arg(long = "role", value_delimiter = ',', default_value = "revops")]
        roles: Vec<String>,
        /// Lifetime in hours.
        #[arg(long, default_value_t = 8)]
        ttl_hours: u64,
    },
}

#[derive(clap::Args, Clone)]
struct UpArgs {
    /// Directory holding the SQLite databases.
    #[arg(long, env = "QUALIFY_DATA_DIR", default_value = "data")]
    data_dir: PathBuf,
    /// PostgreSQL URL instead of SQLite: each service gets a schema of its own.
    #[arg(long, env = "QUALIFY_DATABASE_URL")]
    database_url: Option<String>,
    /// Lead scoring listen address.
    #[arg(long, default_value = "127.0.0.1:50051")]
    scoring_addr: SocketAddr,
    /// Opportunity acceptance listen address.
    #[arg(long, default_value = "127.0.0.1:50052")]
    acceptance_addr: SocketAddr,
    /// Metrics listen address.
    #[arg(long, default_value = "127.0.0.1:50053")]
    metrics_addr: SocketAddr,
    /// Where Prometheus scrapes `/metrics` for all three services ("off" to disable).
    #[arg(long, env = "QUALIFY_METRICS_ADDR", default_value = "127.0.0.1:9464")]
    prometheus_addr: String,
    /// Log format: text or json (one object per line, with trace ids).
    #[arg(long, env = "QUALIFY_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    /// Web origins allowed to call with gRPC-Web from a browser (comma-separated, or *).
    #[arg(long, env = "QUALIFY_CORS_ORIGINS", default_value = "")]
    cors_origins: String,
    /// OTLP/gRPC collector for traces; unset keeps traces off.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    otlp_endpoint: Option<String>,
    /// TLS certificate (PEM chain) every port serves and the services present to each other;
    /// with --tls-key. Re-read when the file changes.
    #[arg(long, env = "QUALIFY_TLS_CERT_FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The TLS certificate's key (PEM).
    #[arg(long, env = "QUALIFY_TLS_KEY_FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Require client certificates signed by this CA on the gRPC ports.
    #[arg(long, env = "QUALIFY_TLS_CLIENT_CA_FILE", requires = "tls_cert")]
    tls_client_ca: Option<PathBuf>,
    /// CA bundle the services trust when calling each other over TLS (default: public roots).
    #[arg(long, env = "QUALIFY_TLS_CA_FILE")]
    tls_ca: Option<PathBuf>,
}

fn signing_key() -> (String, bool) {
    dev_signing_key(&ProcessEnv)
}

/// Request handling is allocation-heavy (protobuf, HTTP/2 frames): mimalloc.
#[global_allocator]
static ALLOCATOR: qualify_platform::Allocator = qualify_platform::Allocator;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Token { tenant, subject, roles, ttl_hours }) => {
            let (key, _) = signing_key();
            let token = TokenIssuer::hs256(key.as_bytes()).issue_named(
                &tenant,
                &subject,
                &roles,
                Duration::from_secs(ttl_hours * 3600),
            )?;
            println!("{token}");
            Ok(())
        }
        Some(Command::Up(args)) => up(*args),
        None => up(cli.up),
    }
}

fn up(args: UpArgs) -> anyhow::Result<()> {
    let prometheus: Option<SocketAddr> = match args.prometheus_addr.as_str() {
        "off" => None,
        a => Some(a.parse().map_err(|_| anyhow::anyhow!("--prometheus-addr {a:?} is not host:port or off"))?),
    };
    let log_format = if args.log_format == "json" { LogFormat::Json } else { LogFormat::Text };
    let cors_origins = qualify_platform::config::cors_origins(&args.cors_origins)?;
    let runtime = tokio::runtime::Runtime::new()?;
    let _telemetry = runtime.block_on(async { telemetry::init(log_format, "all", args.otlp_endpoint.as_deref()) });
    let (key, dev) = signing_key();
    if dev {
        tracing::warn!("************************************************************");
        tracing::warn!("USING THE DEVELOPMENT SIGNING KEY: anyone can mint tokens.");
        tracing::warn!("Set QUALIFY_JWT_SECRET (32+ bytes) for anything but a laptop.");
        tracing::warn!("************************************************************");
    }
    let tls = args.tls_cert.clone().zip(args.tls_key.clone()).map(|(cert, key)| qualify_platform::tls::TlsFiles {
        cert,
        key,
        client_ca: args.tls_client_ca.clone(),
    });
    let scheme = if tls.is_some() { "https" } else { "http" };
    let config = |name: &str, addr: SocketAddr| {
        let mut c = ServiceConfig::embedded(name, addr);
        match &args.database_url {
            Some(url) => {
                c.database_url = url.clone();
                c.database_schema = Some(name.to_string());
            }
            None => c.database_url = format!("sqlite://{}/{name}.db?mode=rwc", args.data_dir.display()),
        }
        c.jwt_secret = key.clone();
        c.dev_key = dev;
        c.scoring_url = Some(format!("{scheme}://{}", args.scoring_addr));
        c.acceptance_url = Some(format!("{scheme}://{}", args.acceptance_addr));
        c.tls = tls.clone();
        c.tls_ca_file = args.tls_ca.clone();
        c.cors_origins = cors_origins.clone();
        c
    };
    runtime.block_on(async {
        if let Some(addr) = prometheus {
            telemetry::serve_prometheus(addr, tls.as_ref())?;
        }
        let (stop_tx, stop_rx) = watch::channel(false);
        let stop = |mut rx: watch::Receiver<bool>| -> BoxFuture<'static, ()> {
            Box::pin(async move {
                let _ = rx.wait_for(|s| *s).await;
            })
        };
        let scoring = start::<Scoring>(config("scoring", args.scoring_addr), stop(stop_rx.clone())).await?;
        let acceptance = start::<Acceptance>(config("acceptance", args.acceptance_addr), stop(stop_rx.clone())).await?;
        let metrics = start::<Metrics>(config("metrics", args.metrics_addr), stop(stop_rx)).await?;
        println!();
        println!("Qualify is up:");
        let g = if tls.is_some() { "grpcs" } else { "grpc" };
        println!("  lead scoring            {g}://{}  (qualify.scoring.v1.LeadScoringService)", args.scoring_addr);
        println!(
            "  opportunity acceptance  {g}://{}  (qualify.acceptance.v1.OpportunityAcceptanceService)",
            args.acceptance_addr
        );
        println!("  metrics                 {g}://{}  (qualify.metrics.v1.MetricsService)", args.metrics_addr);
        if let Some(addr) = prometheus {
            println!("  Prometheus              {scheme}://{addr}/metrics");
        }
        println!();
        println!("Get a development token:  qualify token --tenant demo --subject ada --role revops");
        println!("Health and reflection answer without a token; press Ctrl-C to stop.");
        println!();
        qualify_platform::serve::shutdown_signal().await;
        let _ = stop_tx.send(true);
        let (a, b, c) = tokio::join!(scoring, acceptance, metrics);
        for r in [a, b, c] {
            r??;
        }
        println!("Qualify stopped.");
        anyhow::Ok(())
    })
}

async fn start<S: QualifyService>(
    config: ServiceConfig,
    shutdown: BoxFuture<'static, ()>,
) -> anyhow::Result<tokio::task::JoinHandle<anyhow::Result<()>>> {
    let listener = tokio::net::TcpListener::bind(config.listen_addr)
        .await
        .map_err(|e| anyhow::anyhow!("{} cannot listen on {}: {e}", S::NAME, config.listen_addr))?;
    Ok(tokio::spawn(S::run(config, listener, shutdown)))
}
