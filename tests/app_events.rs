//! The application's decision under arbitrary events, on every test run: random inputs read
//! by the same interpreter as the cargo-fuzz target `fuzz/fuzz_targets/app_events.rs` (see
//! docs/fuzzing.md), and every input the fuzzer ever found a crash with
//! (`tests/fuzz-regressions/app_events/`). Nothing may panic.

#[path = "common/app_events.rs"]
mod app_events;

use app_events::Harness;
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_events_never_panic(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
        Harness::new().run(&data);
    }
}

#[test]
fn every_regression_input_runs() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-regressions/app_events");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "bin") {
            Harness::new().run(&std::fs::read(&path).unwrap());
            n += 1;
        }
    }
    assert!(n > 0, "no regression inputs in {}", dir.display());
}

/// One long session: the state the events build up carries over (a harness per input would
/// only ever see a fresh router); the DHCP and IPv6 paths are reached in it.
#[test]
fn one_router_through_many_inputs() {
    let mut h = Harness::new();
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut data = vec![0u8; 512];
    for _ in 0..2000 {
        for b in &mut data {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            *b = rng as u8;
        }
        h.run(&data);
    }
    // The deep paths were reached: DHCP answered, IPv6 handled, hosts learned from it.
    let m = h.router.metrics_text();
    let count = |prefix: &str| -> u64 {
        m.lines()
            .filter(|l| l.starts_with(prefix))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    };
    // (The input is the same on every run: these hold or fail every time.)
    for reached in [
        "servswitch_dhcp_total{reply=\"offer\"}",
        "servswitch_dhcp_total{reply=\"ack\"}",
        "servswitch_packet_ins_total{kind=\"ipv6\"}",
    ] {
        assert!(count(reached) > 0, "{reached} never happened:\n{m}");
    }
}
