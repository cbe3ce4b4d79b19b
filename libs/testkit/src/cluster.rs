//! The whole cluster in the test's process, wired as it is deployed.

use qualify_acceptance::Acceptance;
use qualify_metrics::Metrics;
use qualify_platform::ServiceConfig;
use qualify_proto::acceptance::{
    self as acc, opportunity_acceptance_service_client::OpportunityAcceptanceServiceClient,
};
use qualify_proto::metrics::metrics_service_client::MetricsServiceClient;
use qualify_proto::scoring::lead_scoring_service_client::LeadScoringServiceClient;
use qualify_scoring::Scoring;
use tonic::transport::Channel;

use crate::{
    Backend, Running, TestConfig, Tokens, authed, config, durable_config, fixtures, loopback, spawn, spawn_on,
    with_redis,
};

/// Lead scoring, opportunity acceptance and metrics on `127.0.0.1:0`, each on
/// a database of its own: acceptance calls lead scoring, lead scoring follows
/// acceptance's event stream, metrics follows both. Dropping it stops the services and drops their schemas.
pub struct Cluster {
    /// Lead scoring.
    pub scoring: Running,
    /// Opportunity acceptance.
    pub acceptance: Running,
    /// Metrics.
    pub metrics: Running,
    /// Clients connected to each service.
    pub clients: Clients,
    /// Tokens of tenant `acme`, the tenant of the [`fixtures`].
    pub acme: Tokens,
    /// What lead scoring and acceptance were started with, to start them again.
    configs: (TestConfig, TestConfig),
}

/// Clients of the three services (cheap to clone: they share a connection).
#[derive(Clone)]
pub struct Clients {
    /// Lead scoring.
    pub scoring: LeadScoringServiceClient<Channel>,
    /// Opportunity acceptance.
    pub acceptance: OpportunityAcceptanceServiceClient<Channel>,
    /// Metrics.
    pub metrics: MetricsServiceClient<Channel>,
}

impl Cluster {
    /// Starts the three services on `backend`, lead scoring with its in-process cache.
    pub async fn start(backend: Backend) -> Cluster {
        Cluster::launch(backend, false, false).await
    }

    /// Like [`Cluster::start`], with lead scoring and acceptance on databases
    /// that outlive a restart (a file on SQLite), for
    /// [`Cluster::stop_scoring`] and the like.
    pub async fn start_durable(backend: Backend) -> Cluster {
        Cluster::launch(backend, false, true).await
    }

    /// Starts the three services on `backend`, lead scoring caching in the
    /// machine's Redis, which must answer.
    pub async fn start_with_redis(backend: Backend) -> Cluster {
        Cluster::launch(backend, true, false).await
    }

    /// Starts the three services on `backend` with [`fixtures::sql_lead`]
    /// done for `acme`: account `acc-1`, its verified economic buyer and
    /// champion, and `lead-1` at SQL, ready for [`fixtures::opportunity`].
    pub async fn with_sql_lead(backend: Backend) -> Cluster {
        let mut cluster = Cluster::start(backend).await;
        fixtures::sql_lead(&mut cluster.clients.scoring, &cluster.acme).await;
        cluster
    }

    /// Like [`Cluster::start`], with `configure` applied to each service's
    /// configuration (`scoring`, `acceptance`, `metrics`: identity, TLS) before it starts;
    /// the services call each other at `https://` where the callee serves TLS.
    pub async fn start_configured(backend: Backend, configure: impl Fn(&str, &mut ServiceConfig)) -> Cluster {
        Cluster::launch_with(backend, false, false, configure).await
    }

    async fn launch(backend: Backend, redis: bool, durable: bool) -> Cluster {
        Cluster::launch_with(backend, redis, durable, |_, _| {}).await
    }

    async fn launch_with(
        backend: Backend,
        redis: bool,
        durable: bool,
        configure: impl Fn(&str, &mut ServiceConfig),
    ) -> Cluster {
        let db = |service: &'static str| {
            let configure = &configure;
            async move {
                let mut c =
                    if durable { durable_config(service, backend).await } else { config(service, backend).await };
                configure(service, &mut c);
                c
            }
        };
        let mut scoring = db("scoring").await;
        if redis {
            scoring = with_redis(scoring).await;
        }
        // Each calls the other: lead scoring follows acceptance's stream.
        let acceptance_listener = loopback().await;
        let acceptance = db("acceptance").await;
        let scheme = if acceptance.tls.is_some() { "https" } else { "http" };
        let at = acceptance_listener.local_addr().expect("local addr");
        scoring.acceptance_url = Some(format!("{scheme}://{at}"));
        let configs = (scoring.clone(), acceptance);
        let scoring = spawn::<Scoring>(scoring).await;
        let mut acceptance = configs.1.clone();
        acceptance.scoring_url = Some(scoring.url());
        let configs = (configs.0, acceptance.clone());
        let acceptance = spawn_on::<Acceptance>(acceptance, acceptance_listener).await;
        let mut metrics = config("metrics", backend).await;
        configure("metrics", &mut metrics);
        metrics.scoring_url = Some(scoring.url());
        metrics.acceptance_url = Some(acceptance.url());
        let metrics = spawn::<Metrics>(metrics).await;
        let clients = Clients {
            scoring: LeadScoringServiceClient::new(scoring.channel().await),
            acceptance: OpportunityAcceptanceServiceClient::new(acceptance.channel().await),
            metrics: MetricsServiceClient::new(metrics.channel().await),
        };
        Cluster { scoring, acceptance, metrics, clients, acme: Tokens::new("acme"), configs }
    }

    /// Stops lead scoring gracefully (acceptance and metrics keep running).
    pub async fn stop_scoring(&mut self) {
        self.scoring.halt().await.expect("lead scoring stops cleanly");
    }

    /// Starts lead scoring again on its address and database (see [`Cluster::start_durable`]).
    pub async fn start_scoring(&mut self) {
        self.scoring.resume::<Scoring>(self.configs.0.clone()).await;
        self.clients.scoring = LeadScoringServiceClient::new(self.scoring.channel().await);
    }

    /// Stops opportunity acceptance gracefully (lead scoring and metrics keep running).
    pub async fn stop_acceptance(&mut self) {
        self.acceptance.halt().await.expect("acceptance stops cleanly");
    }

    /// Starts opportunity acceptance again on its address and database (see [`Cluster::start_durable`]).
    pub async fn start_acceptance(&mut self) {
        self.acceptance.resume::<Acceptance>(self.configs.1.clone()).await;
        self.clients.acceptance = OpportunityAcceptanceServiceClient::new(self.acceptance.channel().await);
    }

    /// `acme`'s SDR submits `o` ([`fixtures::submit`]).
    pub async fn submit(&mut self, o: acc::Opportunity) -> acc::SubmitOpportunityResponse {
        fixtures::submit(&mut self.clients.acceptance, &self.acme, o).await
    }

    /// Accepts opportunity `id` as the holder of `token`, with an override
    /// `justification` (empty for none); the refusal is returned.
    pub async fn accept(
        &mut self,
        id: &str,
        token: &str,
        justification: &str,
    ) -> Result<acc::AcceptOpportunityResponse, tonic::Status> {
        let req = acc::AcceptOpportunityRequest {
            opportunity_id: id.into(),
            override_justification: justification.into(),
            ..Default::default()
        };
        self.clients.acceptance.accept_opportunity(authed(req, token)).await.map(|r| r.into_inner())
    }

    /// The audited decisions on opportunity `id`, as `acme`'s AE reads them.
    pub async fn decisions(&mut self, id: &str) -> Vec<acc::Decision> {
        let req = acc::ListDecisionsRequest { opportunity_id: id.into() };
        let listed = self.clients.acceptance.list_decisions(authed(req, &self.acme.ae)).await;
        listed.expect("the AE lists the decisions").into_inner().decisions
    }
}
