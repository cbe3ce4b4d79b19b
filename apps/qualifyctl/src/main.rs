//! `qualifyctl`: the command line for the people who run Qualify. Upsert and
//! score leads, publish scorecards from YAML or JSON files, drive opportunities
//! through the SQO gate, read the funnel and its health, ingest signal files,
//! rebuild roll-ups, and load a realistic demo funnel into a running cluster.

mod commands;
mod crm;
mod demo;
mod import;
mod login;
mod protojson;
mod rpc;
mod table;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use qualify_domain::Role;
use qualify_platform::TokenIssuer;
use qualify_platform::config::{ProcessEnv, dev_signing_key};

#[derive(Parser)]
#[command(
    name = "qualifyctl",
    about = "Run Qualify from the command line: leads, scorecards, the SQO gate, the funnel"
)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

/// Options every command takes.
#[derive(Args, Clone)]
pub struct Global {
    /// Lead scoring endpoint.
    #[arg(long, global = true, env = "QUALIFYCTL_SCORING_URL", default_value = "http://127.0.0.1:50051")]
    pub scoring: String,
    /// Opportunity acceptance endpoint.
    #[arg(long, global = true, env = "QUALIFYCTL_ACCEPTANCE_URL", default_value = "http://127.0.0.1:50052")]
    pub acceptance: String,
    /// Metrics endpoint.
    #[arg(long, global = true, env = "QUALIFYCTL_METRICS_URL", default_value = "http://127.0.0.1:50053")]
    pub metrics: String,
    /// Bearer token (mint a development one with `qualifyctl token`).
    #[arg(long, global = true, env = "QUALIFY_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// A file holding the bearer token, read on each run (a token another tool keeps fresh).
    #[arg(long, global = true, env = "QUALIFY_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// A credential helper (run with `sh -c`, once per run) printing the token or a Kubernetes
    /// ExecCredential JSON, as kubectl's exec plugins do.
    #[arg(long, global = true, env = "QUALIFY_TOKEN_EXEC")]
    pub token_exec: Option<String>,
    /// CA bundle that https:// endpoints' certificates must chain to (default: public roots).
    #[arg(long, global = true, env = "QUALIFYCTL_TLS_CA_FILE")]
    pub tls_ca: Option<PathBuf>,
    /// Client certificate (PEM) for endpoints that require one; with --tls-key.
    #[arg(long, global = true, env = "QUALIFYCTL_TLS_CERT_FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The client certificate's key (PEM).
    #[arg(long, global = true, env = "QUALIFYCTL_TLS_KEY_FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Output: a table for people, or JSON (canonical proto JSON for responses) for scripts.
    #[arg(long, global = true, value_enum, default_value = "table")]
    pub output: Output,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Table,
    Json,
}

impl Global {
    fn endpoints(&self) -> rpc::Endpoints {
        rpc::Endpoints {
            scoring: self.scoring.clone(),
            acceptance: self.acceptance.clone(),
            metrics: self.metrics.clone(),
            tls: qualify_platform::tls::ClientTls {
                ca: self.tls_ca.clone(),
                identity: self.tls_cert.clone().zip(self.tls_key.clone()),
            },
        }
    }

    /// The token given with --token, --token-file or --token-exec ([`login`]); without one, a
    /// development token (QUALIFY_JWT_SECRET or the development key) for `tenant` as `subject`
    /// with `role`, said on stderr: a development cluster then answers with no setup, any other
    /// refuses it.
    pub fn token_or_dev(&self, tenant: &str, subject: &str, role: Role) -> anyhow::Result<String> {
        if let Some(t) = login::token(self)? {
            return Ok(t);
        }
        let (key, dev) = dev_signing_key(&ProcessEnv);
        eprintln!(
            "note: no --token, --token-file or --token-exec: acting as {subject} ({}) in tenant {tenant} with a token signed by {}",
            role.as_str(),
            if dev { "the development key" } else { "QUALIFY_JWT_SECRET" }
        );
        TokenIssuer::hs256(key.as_bytes()).issue(tenant, subject, &[role], Duration::from_secs(3600))
    }

    pub fn json(&self) -> bool {
        self.output == Output::Json
    }
}

#[derive(Subcommand)]
enum Command {
    /// Print a development bearer token signed with QUALIFY_JWT_SECRET or the development key.
    Token {
        /// Tenant the token acts in.
        #[arg(long, default_value = "demo")]
        tenant: String,
        /// Subject (user or service id).
        #[arg(long, default_value = "dev")]
        subject: String,
        /// Roles: sdr, ae, manager, revops, service (repeat or comma-separate).
        #[arg(long = "role", value_delimiter = ',', default_value = "revops")]
        roles: Vec<String>,
        /// Lifetime in hours.
        #[arg(long, default_value_t = 8)]
        ttl_hours: u64,
    },
    /// Leads: create or check, and explain a score.
    #[command(subcommand)]
    Lead(commands::LeadCommand),
    /// Scorecards: publish a new version from a file.
    #[command(subcommand)]
    Scorecard(commands::ScorecardCommand),
    /// Opportunities and the SQO gate.
    #[command(subcommand)]
    Opp(commands::OppCommand),
    /// The funnel for a range of months, optionally grouped.
    Funnel(commands::FunnelArgs),
    /// Funnel health findings with their evidence.
    Health(commands::PeriodArgs),
    /// Bulk ingestion.
    #[command(subcommand)]
    Ingest(commands::IngestCommand),
    /// Rebuild the metrics roll-ups from the event streams (a platform operator's token:
    /// tenant qualify-system).
    Rebuild,
    /// Load a realistic synthetic funnel into a running cluster.
    Demo(demo::DemoArgs),
    /// Import a CRM's history (accounts, leads with their stage changes, opportunities with
    /// their decisions, activities and closes) from a JSONL file or a Salesforce or HubSpot
    /// export (an importer's token).
    Import(import::ImportArgs),
}

/// Request handling is allocation-heavy (protobuf, HTTP/2 frames): mimalloc.
#[global_allocator]
static ALLOCATOR: qualify_platform::Allocator = qualify_platform::Allocator;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            match e.downcast_ref::<tonic::Status>() {
                Some(status) => eprintln!("error: {}", rpc::describe_status(status)),
                None => eprintln!("error: {e:#}"),
            }
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let g = cli.global;
    if let Command::Token { tenant, subject, roles, ttl_hours } = &cli.command {
        let (key, _) = dev_signing_key(&ProcessEnv);
        let token = TokenIssuer::hs256(key.as_bytes()).issue_named(
            tenant,
            subject,
            roles,
            Duration::from_secs(ttl_hours * 3600),
        )?;
        println!("{token}");
        return Ok(());
    }
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let c = rpc::Clients::new(&g.endpoints())?;
        match cli.command {
            Command::Token { .. } => Ok(()),
            Command::Lead(cmd) => commands::lead(&g, c, cmd).await,
            Command::Scorecard(cmd) => commands::scorecard(&g, c, cmd).await,
            Command::Opp(cmd) => commands::opp(&g, c, cmd).await,
            Command::Funnel(args) => commands::funnel(&g, c, args).await,
            Command::Health(args) => commands::health(&g, c, args).await,
            Command::Ingest(cmd) => commands::ingest(&g, c, cmd).await,
            Command::Rebuild => commands::rebuild(&g, c).await,
            Command::Demo(args) => demo::run(&g, c, args).await,
            Command::Import(args) => import::run(&g, c, args).await,
        }
    })
}

/// A fresh idempotency key for one mutating call.
pub fn request_id() -> String {
    format!("qualifyctl-{}", uuid::Uuid::new_v4().simple())
}

/// A file argument.
pub type FileArg = PathBuf;
