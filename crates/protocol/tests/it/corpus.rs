//! The real Drone 2.4 captures: every one decodes, and re-encodes to the compact form
//! of itself with Drone's field order (the expected bytes in `corpus/` beside this file
//! were made from the captures by an order-preserving JSON tool, independently of
//! this crate's encoder).

use dronehook_protocol::{Envelope, Event, Status};

use crate::repo_root;

const NAMES: &[&str] = &[
    "build_created",
    "build_failure",
    "build_killed",
    "build_success",
    "build_updated",
    "repo_disabled",
    "repo_enabled",
    "user_created",
    "user_deleted",
];

fn capture(name: &str) -> Vec<u8> {
    let path = repo_root()
        .join("fixtures/corpus")
        .join(format!("{name}.json"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn every_capture_decodes_and_reencodes_in_drone_order() {
    for name in NAMES {
        let envelope = Envelope::decode(&capture(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(envelope.is_known(), "{name}");
        let expected = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join(format!("tests/it/corpus/{name}.json")),
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(envelope.encode()).unwrap(),
            expected,
            "{name}"
        );
    }
}

#[test]
fn capture_details_survive() {
    let e = Envelope::decode(&capture("build_success")).unwrap();
    assert_eq!(e.event, Event::Build);
    assert_eq!(e.repo_slug(), Some("Diesel-Net/plex"));
    assert_eq!(e.build_number(), Some(189));
    let build = e.build.as_deref().unwrap();
    assert_eq!(build.trigger, "@cron");
    assert!(build.status.is_terminal());
    assert_eq!(build.stages[0].steps[1].status, Status::Pending);
    assert_eq!(
        build.stages[0].steps[1].started, 0,
        "steps without `started` default to 0"
    );
    let nested = e.repo.as_deref().unwrap().build.as_deref().unwrap();
    assert_eq!(nested.trigger, "anon");
    assert_eq!(e.system.as_deref().unwrap().version, "2.4.0");
}
