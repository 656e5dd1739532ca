//! The mux's own counts: each timed request marked at both ends (reads, from the
//! cache or the stub, deferred or not), resumes never; cache hits and misses.

use super::*;

/// Feeds `steps` and returns the request marks they produced.
fn marks(mux: &mut Mux, steps: Vec<Step>) -> Vec<String> {
    actions_of(mux, steps, |action| {
        matches!(
            action,
            Action::RequestStarted { .. } | Action::RequestAnswered { .. }
        )
    })
}

#[test]
fn reads_are_timed_from_packet_to_answer_and_resumes_are_not() {
    let mut mux = probed(MuxConfig::default());
    let before = mux.status();
    // From the cache: both marks at once.
    let mut seen = marks(&mut mux, vec![Step::Client(1, "$m20000fe4,4")]);
    let hit = mux.status();
    assert_eq!(hit.cache_hits, before.cache_hits + 1);
    assert_eq!(hit.cache_misses, before.cache_misses);
    // From the stub: the answer comes with the stub's reply.
    seen.extend(marks(
        &mut mux,
        vec![Step::Client(1, "$m0,4"), Step::Stub("$00100020")],
    ));
    let missed = mux.status();
    assert_eq!(missed.cache_hits, hit.cache_hits);
    assert_eq!(missed.cache_misses, hit.cache_misses + 1);
    seen.extend(marks(
        &mut mux,
        vec![
            // A continue is not timed, nor is the stop that answers it.
            Step::Client(1, "$c"),
            Step::Stub("$T05thread:p01.01;"),
            // A second client's read is its own.
            Step::Connect(2),
            Step::Client(2, "+$qAttached"),
        ],
    ));
    assert_eq!(
        seen,
        [
            "started c1",
            "answered c1",
            "started c1",
            "answered c1",
            "started c2",
            "answered c2",
        ]
    );
}
