//! The one source of the current time. Every use case is handed a [`Clock`]
//! instead of reading the system time, so tests (and later history imports)
//! decide what "now" is.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, SubsecRound, Utc};

/// Where "now" comes from; cheap to clone.
#[derive(Clone)]
pub struct Clock(Source);

#[derive(Clone)]
enum Source {
    System,
    Manual(Arc<Mutex<DateTime<Utc>>>),
}

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Clock(Source::System)
    }

    /// A clock that stands at `at` until moved with [`Clock::set`] or [`Clock::advance`].
    pub fn manual(at: DateTime<Utc>) -> Self {
        Clock(Source::Manual(Arc::new(Mutex::new(at.trunc_subsecs(6)))))
    }

    /// The current time at the precision the databases keep (microseconds),
    /// so a time in a response equals the one a later read returns.
    pub fn now(&self) -> DateTime<Utc> {
        match &self.0 {
            #[allow(clippy::disallowed_methods)] // the one place that reads the system time
            Source::System => Utc::now().trunc_subsecs(6),
            Source::Manual(at) => *at.lock().unwrap_or_else(|e| e.into_inner()),
        }
    }

    /// Moves a manual clock to `at`; the system clock cannot be moved.
    pub fn set(&self, at: DateTime<Utc>) {
        if let Source::Manual(t) = &self.0 {
            *t.lock().unwrap_or_else(|e| e.into_inner()) = at.trunc_subsecs(6);
        }
    }

    /// Moves a manual clock forward by `by`.
    pub fn advance(&self, by: chrono::Duration) {
        if let Source::Manual(t) = &self.0 {
            let mut t = t.lock().unwrap_or_else(|e| e.into_inner());
            *t += by;
        }
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::system()
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Source::System => f.write_str("Clock(system)"),
            Source::Manual(_) => write!(f, "Clock(manual at {})", self.now()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_stands_still_until_moved_and_keeps_microseconds() {
        let start = DateTime::parse_from_rfc3339("2026-01-05T09:00:00.123456789Z").unwrap().with_timezone(&Utc);
        let c = Clock::manual(start);
        assert_eq!(c.now(), c.now());
        assert_eq!(c.now().timestamp_subsec_nanos(), 123_456_000);
        c.advance(chrono::Duration::days(2));
        assert_eq!(c.now() - start.trunc_subsecs(6), chrono::Duration::days(2));
        let clone = c.clone();
        clone.set(start);
        assert_eq!(c.now(), start.trunc_subsecs(6), "clones share one time");
        let sys = Clock::system();
        assert_eq!(sys.now().timestamp_subsec_nanos() % 1000, 0);
    }
}
