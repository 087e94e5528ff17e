//! The only code that reads the system clock or the operating system's random numbers, so
//! tests can fix both.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use time::OffsetDateTime;

/// Wall-clock time: the system's, or a fixed instant that tests can move.
#[derive(Clone, Debug, Default)]
pub struct Clock {
    fixed: Option<Arc<AtomicI64>>,
}

impl Clock {
    pub fn system() -> Clock {
        Clock { fixed: None }
    }

    /// A clock standing at `at` (microsecond precision) until [`Clock::advance`] moves it.
    pub fn fixed(at: OffsetDateTime) -> Clock {
        let micros = (at.unix_timestamp_nanos() / 1000) as i64;
        Clock {
            fixed: Some(Arc::new(AtomicI64::new(micros))),
        }
    }

    pub fn advance(&self, by: time::Duration) {
        if let Some(fixed) = &self.fixed {
            fixed.fetch_add(by.whole_microseconds() as i64, Ordering::SeqCst);
        }
    }

    pub fn now(&self) -> OffsetDateTime {
        match &self.fixed {
            Some(fixed) => {
                let micros = i128::from(fixed.load(Ordering::SeqCst));
                OffsetDateTime::from_unix_timestamp_nanos(micros * 1000)
                    .unwrap_or(OffsetDateTime::UNIX_EPOCH)
            }
            None => OffsetDateTime::now_utc(),
        }
    }
}

/// Fills `buf` from the operating system's CSPRNG.
pub fn random_bytes(buf: &mut [u8]) -> Result<(), getrandom::Error> {
    getrandom::fill(buf)
}
