//! Test schemas on the machine's PostgreSQL: one per service of a test, named
//! `t_<service>_<pid>_<random>`, dropped when the test is done with it, and
//! swept (once per process) when the process that made it is gone.

use std::sync::Arc;
use std::time::Duration;

use qualify_platform::db::connect_url;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};

/// A schema of the test database, dropped (with everything in it) when the
/// guard is: [`crate::TestConfig`] and [`crate::Running`] share it, so it
/// lives as long as the test holds a configuration or a service on it.
#[derive(Debug)]
pub(crate) struct Schema {
    url: String,
    name: String,
}

/// Once per process, before its first schema: [`sweep`].
static SWEPT: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();

impl Schema {
    /// Creates a schema for `service` on the PostgreSQL at `url`, which must answer.
    pub(crate) async fn create(url: &str, service: &str) -> Arc<Schema> {
        SWEPT.get_or_init(|| sweep(url)).await;
        let random = uuid::Uuid::new_v4().simple().to_string();
        let name = format!("t_{service}_{}_{}", std::process::id(), &random[..8]);
        match connect_url(url, Some(&name), 1).await {
            Ok(db) => {
                let _ = db.close().await;
            }
            Err(e) => panic!("PostgreSQL at {url} is required by this test and did not answer: {e:#}"),
        }
        Arc::new(Schema { url: url.to_string(), name })
    }

    /// The schema's name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        // Drop cannot await, and the test's runtime may be the one thread this
        // blocks: a short-lived thread with a runtime of its own does the work.
        let (url, name) = (self.url.clone(), self.name.clone());
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            rt.block_on(drop_schemas(&url, &[name]))
        })
        .join();
        match dropped {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("test schema {} left for the next run to drop: {e:#}", self.name),
            Err(_) => eprintln!("test schema {} left for the next run to drop: the drop panicked", self.name),
        }
    }
}

/// Drops the schemas of earlier test processes that are gone (a test that
/// was killed, or a run that ended before the last guard dropped). Schemas
/// without a pid in their name come from before pids were recorded.
async fn sweep(url: &str) {
    let Ok(db) = connect_url(url, None, 1).await else {
        return; // `create` reports the unreachable server.
    };
    let listed = db
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            r"SELECT nspname FROM pg_namespace WHERE nspname LIKE 't\_%'",
        ))
        .await;
    let _ = db.close().await;
    let names: Vec<String> = match listed {
        Ok(rows) => rows.iter().filter_map(|r| r.try_get::<String>("", "nspname").ok()).collect(),
        Err(e) => return eprintln!("listing old test schemas failed: {e:#}"),
    };
    let stale: Vec<String> = names.into_iter().filter(|n| !owner_alive(n)).collect();
    if let Err(e) = drop_schemas(url, &stale).await {
        // Another process may be sweeping the same schemas; the next run retries.
        eprintln!("dropping old test schemas: {e:#}");
    }
}

/// Whether the process named in `t_<service>_<pid>_<random>` still runs on this machine.
fn owner_alive(schema: &str) -> bool {
    let mut parts = schema.rsplit('_');
    let pid = parts.nth(1).and_then(|p| p.parse::<u32>().ok());
    pid.is_some_and(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists())
}

/// Drops `names`, ending first the sessions that still hold locks in them (a
/// service of a finished test may be mid-transaction as its task is dropped).
async fn drop_schemas(url: &str, names: &[String]) -> anyhow::Result<()> {
    if names.is_empty() {
        return Ok(());
    }
    let db = connect_url(url, None, 1).await?;
    db.execute_unprepared("SET lock_timeout = '5s'").await?;
    let mut result = Ok(());
    for name in names {
        if let Err(e) = drop_one(&db, name).await {
            result = Err(e);
        }
    }
    let _ = db.close().await;
    result
}

async fn drop_one(db: &DatabaseConnection, name: &str) -> anyhow::Result<()> {
    let holders = "SELECT pg_terminate_backend(l.pid) FROM pg_locks l \
                   JOIN pg_class c ON c.oid = l.relation JOIN pg_namespace n ON n.oid = c.relnamespace \
                   WHERE n.nspname = $1 AND l.pid <> pg_backend_pid()";
    let mut attempts = 1;
    loop {
        db.execute_raw(Statement::from_sql_and_values(DbBackend::Postgres, holders, [name.into()])).await?;
        match db.execute_unprepared(&format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE")).await {
            Ok(_) => return Ok(()),
            Err(e) if attempts == 3 => return Err(e.into()),
            Err(_) => attempts += 1,
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
