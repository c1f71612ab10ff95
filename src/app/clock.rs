//! Where the application reads the time. Every decision that depends on time (the hold queue,
//! redirect limits, the grace after a move, a released care-of address's afterlife, the
//! drain before stale consumers go, the detached grace) is given it: the driver
//! ([`crate::app::driver::Driver`]) reads the router's [`Clock`] once per event and hands the
//! time to the handler, which passes it on to the state's methods; the router's own tasks and
//! API calls read the same clock, never `Instant::now()` itself. Tests move time by hand
//! ([`ManualClock`]), and every timer is tested without waiting. Measurements of elapsed work
//! (a migration's report) and the runtime's sleeps keep the system clock.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A source of the current time.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    fn now(&self) -> Instant;
    /// The time of an event the runtime read from a switch at `read` (its one clock
    /// reading per batch of messages): the system clock takes it as it is, which spares a
    /// clock read per message; any other clock gives its own time.
    fn event_time(&self, read: Instant) -> Instant {
        let _ = read;
        self.now()
    }
}

/// The system's monotonic clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
    fn event_time(&self, read: Instant) -> Instant {
        read
    }
}

/// A clock that moves only when told to.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<Instant>,
}

impl ManualClock {
    /// A clock standing at the system's present.
    pub fn new() -> Arc<ManualClock> {
        Arc::new(ManualClock {
            now: Mutex::new(Instant::now()),
        })
    }

    /// Moves the clock forward by `d`.
    pub fn advance(&self, d: Duration) {
        let mut now = self.now.lock().unwrap_or_else(|e| e.into_inner());
        *now += d;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        *self.now.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let c = ManualClock::new();
        let t0 = c.now();
        std::thread::sleep(Duration::from_millis(2));
        assert_eq!(c.now(), t0);
        c.advance(Duration::from_secs(3));
        assert_eq!(c.now(), t0 + Duration::from_secs(3));
        // An event's time is the manual clock's, whatever the runtime read.
        assert_eq!(c.event_time(Instant::now()), t0 + Duration::from_secs(3));
    }

    #[test]
    fn the_system_clock_takes_the_runtime_s_reading_of_an_event() {
        let read = Instant::now() - Duration::from_millis(5);
        assert_eq!(SystemClock.event_time(read), read);
    }
}
