//! `DRONE_WEBHOOK_EVENTS` semantics: filtered events are reported and not sent.

use dronehook_client::{Client, Payload};
use dronehook_protocol::EventFilter;

use crate::support::{Receiver, SECRET};

async fn sent(filter: &str, event: &str, action: &str) -> bool {
    let receiver = Receiver::ok().await;
    let client = Client::builder()
        .secret(SECRET)
        .endpoint(receiver.url())
        .events(EventFilter::parse(filter).unwrap())
        .build()
        .unwrap();
    let body = format!(r#"{{"event":"{event}","action":"{action}"}}"#);
    let report = client.send(Payload::raw(body, event, action)).await;
    assert_eq!(report.sent, receiver.count() == 1);
    assert_eq!(report.is_filtered(), report.endpoints.is_empty());
    assert!(report.is_success(), "a filtered event is not a failure");
    report.sent
}

#[tokio::test]
async fn the_references_examples_hold() {
    let cases = [
        ("", "user", "created", true),
        ("repo:*", "repo", "enabled", true),
        ("repo:*", "build", "created", false),
        ("build:updated", "build", "updated", true),
        ("build:updated", "build", "created", false),
        ("user:created", "user", "created", true),
        // A bare event name does not match an event with an action.
        ("repo", "repo", "enabled", false),
        ("repo", "repo", "", true),
        ("repo:*,build:updated", "build", "updated", true),
        ("*:created", "user", "created", true),
        ("*", "user", "created", true),
        ("*", "user", "", true),
        ("build:[cu]*", "build", "updated", true),
        // Go negates a class with `^`; `!` is an ordinary member.
        ("build:[^cu]*", "build", "updated", false),
        ("build:[!cu]*", "build", "updated", true),
        ("build:?pdated", "build", "updated", true),
    ];
    for (filter, event, action, expected) in cases {
        assert_eq!(
            sent(filter, event, action).await,
            expected,
            "{filter:?} on {event}:{action}"
        );
    }
}

#[tokio::test]
async fn captured_payloads_filter_on_the_action_in_the_body() {
    let receiver = Receiver::ok().await;
    let client = Client::builder()
        .secret(SECRET)
        .endpoint(receiver.url())
        .events(EventFilter::parse("build:created").unwrap())
        .build()
        .unwrap();
    let updated = client
        .send(Payload::captured(
            &br#"{"event":"build","action":"updated"}"#[..],
            "build",
        ))
        .await;
    assert!(updated.is_filtered());
    let created = client
        .send(Payload::captured(
            &br#"{"event":"build","action":"created"}"#[..],
            "build",
        ))
        .await;
    assert!(created.sent);
    assert_eq!(receiver.count(), 1);
}
