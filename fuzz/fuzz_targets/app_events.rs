//! The application's decision under arbitrary events (packet-ins, port status, flow removed,
//! time, API calls): nothing may panic. The interpreter is shared with tests/app_events.rs.
#![no_main]

#[path = "../../tests/common/app_events.rs"]
mod app_events;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    app_events::Harness::new().run(data);
});
