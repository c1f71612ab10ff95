//! Waiting for the controller's state in tests on the emulated fabric (`#[path]`-included by
//! the tests that use it).

use std::time::Duration;

/// Waits until `cond` holds, checking every 5 ms (the controller's state changes without any
/// switch traffic to wake [`servswitch::emu::fabric::EmuFabric::wait_until`]).
pub async fn until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
