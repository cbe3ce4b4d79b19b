//! Following another service's event stream for as long as a service runs:
//! resume after the position the follower stored, apply what arrives in
//! batches (a batch closes at a size or when the stream pauses), and
//! reconnect with backoff after any failure. The follower stores its position
//! in the transaction that applies a batch, so a restart of either side
//! loses nothing and applies nothing twice.

use std::future::Future;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ConnectionTrait, DbErr, EntityTrait, Set};
use sea_orm_migration::prelude::*;

use crate::ApiError;

/// Where each followed stream was applied up to.
pub mod entity {
    use sea_orm::entity::prelude::*;

    /// One followed stream.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "followed_streams")]
    pub struct Model {
        /// The stream's name.
        #[sea_orm(primary_key, auto_increment = false)]
        pub stream: String,
        /// The position of the last event applied.
        pub position: i64,
    }

    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// The migration creating the positions table; services that follow a stream include it.
pub struct Migration;

#[derive(DeriveIden)]
enum FollowedStreams {
    #[sea_orm(iden = "followed_streams")]
    Table,
    Stream,
    Position,
}

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261203_000001_followed_streams"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        use FollowedStreams as F;
        m.create_table(
            Table::create()
                .table(F::Table)
                .if_not_exists()
                .col(ColumnDef::new(F::Stream).string().not_null().primary_key())
                .col(ColumnDef::new(F::Position).big_integer().not_null())
                .to_owned(),
        )
        .await
    }
}

/// The position `stream` was applied up to (0: nothing yet).
pub async fn position(db: &impl ConnectionTrait, stream: &str) -> Result<i64, ApiError> {
    Ok(entity::Entity::find_by_id(stream.to_string()).one(db).await?.map_or(0, |m| m.position))
}

/// Records that `stream` is applied up to `position`, in the caller's transaction.
pub async fn advance(db: &impl ConnectionTrait, stream: &str, position: i64) -> Result<(), ApiError> {
    let row = entity::ActiveModel { stream: Set(stream.to_string()), position: Set(position) };
    entity::Entity::insert(row)
        .on_conflict(OnConflict::column(entity::Column::Stream).update_column(entity::Column::Position).to_owned())
        .exec_without_returning(db)
        .await?;
    Ok(())
}

/// One stream's events, decoded; an error ends it.
pub type Events<E> = BoxStream<'static, Result<E, ApiError>>;

/// A consumer of one upstream event stream.
pub trait Follower: Clone + Send + Sync + 'static {
    /// An event as the follower decodes it.
    type Event: Send + 'static;

    /// The stream's name, for logs.
    fn name(&self) -> &'static str;

    /// The position after which to resume: the last one applied.
    fn position(&self) -> impl Future<Output = Result<i64, ApiError>> + Send;

    /// Opens the stream after `after`, kept open for new events.
    fn open(&self, after: i64) -> impl Future<Output = Result<Events<Self::Event>, ApiError>> + Send;

    /// Applies a batch, in stream order, and stores the position of its last
    /// event in the same transaction.
    fn apply(&self, batch: Vec<Self::Event>) -> impl Future<Output = Result<(), ApiError>> + Send;
}

/// Reads `stream` in batches of at most `max` events (fewer when the stream
/// pauses for a few milliseconds) and applies each. Returns when it ends.
async fn drain<F: Follower>(f: &F, mut stream: Events<F::Event>, max: usize) -> Result<(), ApiError> {
    loop {
        let Some(first) = stream.next().await else { return Ok(()) };
        let mut batch = vec![first?];
        let mut ended = false;
        while batch.len() < max {
            match tokio::time::timeout(Duration::from_millis(5), stream.next()).await {
                Ok(Some(e)) => batch.push(e?),
                Ok(None) => {
                    ended = true;
                    break;
                }
                Err(_) => break,
            }
        }
        f.apply(batch).await?;
        if ended {
            return Ok(());
        }
    }
}

/// Follows `f`'s stream for ever from its stored position, in batches of at
/// most `max`, reconnecting with backoff (100 ms doubling to 5 s) after any failure.
pub async fn follow<F: Follower>(f: F, max: usize) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let run = async {
            let after = f.position().await?;
            let stream = f.open(after).await?;
            drain(&f, stream, max).await
        };
        match run.await {
            Ok(()) => backoff = Duration::from_millis(100),
            Err(e) => {
                tracing::debug!(stream = f.name(), error = %e, "event stream interrupted; resuming");
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
        tokio::time::sleep(backoff).await;
    }
}

/// A running follower; dropping it stops it.
pub struct Following(tokio::task::JoinHandle<()>);

impl Following {
    /// Starts following `f` in batches of at most `max`.
    pub fn spawn<F: Follower>(f: F, max: usize) -> Self {
        Following(tokio::spawn(follow(f, max)))
    }
}

impl Drop for Following {
    fn drop(&mut self) {
        self.0.abort();
    }
}
