//! Monthly range partitions of a time-ordered table on PostgreSQL, and
//! retention by whole partitions: a month older than the retention is dropped
//! in one statement instead of deleted row by row (no dead rows, no vacuum,
//! no index bloat). On SQLite, the embedded default, retention deletes rows.
//!
//! A partitioned table has a partition `{table}_pYYYYMM` per month, contiguous
//! from the oldest month kept through [`AHEAD`] months after the current one,
//! and, unless a retention drops it, `{table}_before_pYYYYMM` holding
//! everything before that month (back-dated rows older than the oldest month).
//! The names carry the bounds, so maintenance never parses catalog text.

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, DbErr, Statement, TransactionTrait};

/// Months created ahead of the current one: a replica that is down for less
/// than this never finds a month without its partition.
pub const AHEAD: u32 = 3;

/// Margin between the retention that refuses old rows and the one that drops
/// partitions: a row admitted just before maintenance runs still has its month.
const DROP_MARGIN_DAYS: i64 = 1;

/// A calendar month, in UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Month {
    year: i32,
    month: u32,
}

impl Month {
    /// The month `t` falls in.
    pub fn of(t: DateTime<Utc>) -> Self {
        Month { year: t.year(), month: t.month() }
    }

    /// Its first instant.
    pub fn start(self) -> DateTime<Utc> {
        NaiveDate::from_ymd_opt(self.year, self.month, 1)
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map_or(DateTime::<Utc>::MIN_UTC, |t| t.and_utc())
    }

    /// The month after.
    pub fn next(self) -> Self {
        if self.month == 12 { Month { year: self.year + 1, month: 1 } } else { Month { month: self.month + 1, ..self } }
    }

    /// `n` months later.
    pub fn plus(self, n: u32) -> Self {
        (0..n).fold(self, |m, _| m.next())
    }

    fn suffix(self) -> String {
        format!("p{:04}{:02}", self.year, self.month)
    }

    fn parse(suffix: &str) -> Option<Self> {
        let digits = suffix.strip_prefix('p').filter(|d| d.len() == 6 && d.bytes().all(|b| b.is_ascii_digit()))?;
        let (year, month) = (digits[..4].parse().ok()?, digits[4..].parse().ok()?);
        (1..=12).contains(&month).then_some(Month { year, month })
    }
}

/// The partitions a table has.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Layout {
    /// The months with a partition, oldest first.
    pub months: Vec<Month>,
    /// The month everything before goes to a partition of its own, if any.
    pub before: Option<Month>,
}

/// What one maintenance pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Maintained {
    /// Partitions created.
    pub created: Vec<String>,
    /// Partitions dropped.
    pub dropped: Vec<String>,
    /// Rows deleted (SQLite).
    pub deleted: u64,
}

/// A table partitioned by month on one timestamp column.
#[derive(Debug, Clone, Copy)]
pub struct Monthly {
    /// The partitioned (parent) table.
    pub table: &'static str,
    /// The timestamp column it is partitioned on.
    pub column: &'static str,
}

impl Monthly {
    fn month_name(&self, m: Month) -> String {
        format!("{}_{}", self.table, m.suffix())
    }

    fn before_name(&self, m: Month) -> String {
        format!("{}_before_{}", self.table, m.suffix())
    }

    /// The partitions the table has now (PostgreSQL).
    pub async fn layout(&self, db: &impl ConnectionTrait) -> Result<Layout, DbErr> {
        let rows = db
            .query_all_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT c.relname::text AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
                 WHERE i.inhparent = to_regclass($1)",
                [self.table.into()],
            ))
            .await?;
        let mut layout = Layout::default();
        let before = format!("{}_before_", self.table);
        let month = format!("{}_", self.table);
        for row in rows {
            let name: String = row.try_get("", "name")?;
            if let Some(m) = name.strip_prefix(&before).and_then(Month::parse) {
                layout.before = Some(m);
            } else if let Some(m) = name.strip_prefix(&month).and_then(Month::parse) {
                layout.months.push(m);
            }
        }
        layout.months.sort();
        Ok(layout)
    }

    /// Creates the partitions missing on PostgreSQL: every month from the
    /// oldest of the oldest held, `from` and now's (never below a partition
    /// for everything before, which cannot be split) through [`AHEAD`] months
    /// after now's, and, when `below` is set and none exists, one for
    /// everything before the oldest month.
    pub async fn cover(
        &self,
        db: &impl ConnectionTrait,
        from: Option<Month>,
        now: DateTime<Utc>,
        below: bool,
    ) -> Result<Vec<String>, DbErr> {
        let layout = self.layout(db).await?;
        let mut first = [layout.months.first().copied(), from, Some(Month::of(now))].into_iter().flatten().min();
        if let Some(b) = layout.before {
            first = first.max(Some(b));
        }
        let first = first.unwrap_or(Month::of(now));
        let last = Month::of(now).plus(AHEAD);
        let mut created = Vec::new();
        let mut m = first;
        while m <= last {
            if !layout.months.contains(&m) {
                let name = self.month_name(m);
                self.create(db, &name, &format!("'{}'", m.start().to_rfc3339()), m.next()).await?;
                created.push(name);
            }
            m = m.next();
        }
        if below && layout.before.is_none() {
            let name = self.before_name(first);
            self.create(db, &name, "MINVALUE", first).await?;
            created.push(name);
        }
        Ok(created)
    }

    async fn create(&self, db: &impl ConnectionTrait, name: &str, from: &str, to: Month) -> Result<(), DbErr> {
        let sql = format!(
            "CREATE TABLE IF NOT EXISTS {name} PARTITION OF {table} FOR VALUES FROM ({from}) TO ('{to}')",
            table = self.table,
            to = to.start().to_rfc3339(),
        );
        db.execute_unprepared(&sql).await.map(drop)
    }

    /// Drops (PostgreSQL) the partitions whose every row is older than `horizon`.
    async fn drop_older(&self, db: &impl ConnectionTrait, horizon: DateTime<Utc>) -> Result<Vec<String>, DbErr> {
        let layout = self.layout(db).await?;
        let mut names = Vec::new();
        if let Some(b) = layout.before.filter(|b| b.start() <= horizon) {
            names.push(self.before_name(b));
        }
        names.extend(layout.months.iter().filter(|m| m.next().start() <= horizon).map(|m| self.month_name(*m)));
        for name in &names {
            db.execute_unprepared(&format!("DROP TABLE IF EXISTS {name}")).await?;
        }
        Ok(names)
    }

    /// One maintenance pass at `now`: on PostgreSQL the months ahead are
    /// created and, with a retention `keep`, the partitions wholly older than
    /// it (less a day's margin) dropped and every month it reaches created;
    /// without one, everything before the oldest month keeps a partition. One replica at a time does it (an
    /// advisory lock; the others return at once), and a drop waits at most a
    /// few seconds for the table's lock, to be tried again on the next pass
    /// rather than hold up writers. On SQLite, rows older than `keep` are deleted.
    pub async fn maintain(
        &self,
        db: &DatabaseConnection,
        now: DateTime<Utc>,
        keep: Option<Duration>,
    ) -> Result<Maintained, DbErr> {
        let horizon = keep.map(|k| now - k - Duration::days(DROP_MARGIN_DAYS));
        if db.get_database_backend() != DbBackend::Postgres {
            let Some(horizon) = horizon else { return Ok(Maintained::default()) };
            let exists = db
                .query_one_raw(Statement::from_sql_and_values(
                    DbBackend::Sqlite,
                    "SELECT count(*) AS n FROM sqlite_master WHERE type = 'table' AND name = ?",
                    [self.table.into()],
                ))
                .await?;
            if exists.map(|r| r.try_get::<i64>("", "n")).transpose()?.unwrap_or(0) == 0 {
                return Ok(Maintained::default());
            }
            let sql = format!("DELETE FROM {} WHERE {} < ?", self.table, self.column);
            let done = db.execute_raw(Statement::from_sql_and_values(DbBackend::Sqlite, sql, [horizon.into()]));
            return Ok(Maintained { deleted: done.await?.rows_affected(), ..Maintained::default() });
        }
        // Not partitioned yet (a replica that does not migrate, started before the migration
        // ran): nothing to maintain; the migration makes the months it needs.
        let partitioned = db
            .query_one_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT EXISTS (SELECT 1 FROM pg_class WHERE oid = to_regclass($1) AND relkind = 'p') AS partitioned",
                [self.table.into()],
            ))
            .await?;
        if !partitioned.map(|r| r.try_get::<bool>("", "partitioned")).transpose()?.unwrap_or(false) {
            return Ok(Maintained::default());
        }
        let txn = db.begin().await?;
        // Advisory locks are database-wide: the key names the schema too, or installs (and
        // tests) in other schemas of the same database would skip each other's passes.
        let lock = format!(
            "SELECT pg_try_advisory_xact_lock(hashtext('qualify.partitions.' || current_schema() || '.{}')) AS held",
            self.table
        );
        let held = txn.query_one_raw(Statement::from_string(DbBackend::Postgres, lock)).await?;
        if !held.map(|r| r.try_get::<bool>("", "held")).transpose()?.unwrap_or(false) {
            return Ok(Maintained::default());
        }
        txn.execute_unprepared("SET LOCAL lock_timeout = '5s'").await?;
        let dropped = match horizon {
            Some(h) => self.drop_older(&txn, h).await?,
            None => Vec::new(),
        };
        let floor = keep.map(|k| Month::of(now - k));
        let created = self.cover(&txn, floor, now, keep.is_none()).await?;
        txn.commit().await?;
        Ok(Maintained { created, dropped, deleted: 0 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_roll_over_the_year_and_name_their_partitions() {
        let m = Month::of("2026-11-30T23:59:59Z".parse().unwrap());
        assert_eq!(m.plus(2), Month { year: 2027, month: 1 });
        assert_eq!(m.next().start(), "2026-12-01T00:00:00Z".parse::<DateTime<Utc>>().unwrap());
        assert_eq!(Month::parse(&m.suffix()), Some(m));
        assert_eq!(Month::parse("p202613"), None);
        assert_eq!(Month::parse("p2026"), None);
        let t = Monthly { table: "signals", column: "occurred_at" };
        assert_eq!(t.month_name(m), "signals_p202611");
        assert_eq!(t.before_name(m), "signals_before_p202611");
    }
}
