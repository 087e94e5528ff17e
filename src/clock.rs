//! The only code that reads the system clock or the operating system's random numbers.

use time::OffsetDateTime;

/// Wall-clock time, handed to the code that stamps changes, so that time is a parameter.
#[derive(Clone, Debug, Default)]
pub struct Clock;

impl Clock {
    pub fn system() -> Clock {
        Clock
    }

    pub fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// Fills `buf` from the operating system's CSPRNG.
pub fn random_bytes(buf: &mut [u8]) -> Result<(), getrandom::Error> {
    getrandom::fill(buf)
}
