//! The sender against the project's own receiver, `dronehook-server`: everything the
//! client signs verifies there, a wrong secret is refused with the server's code, and
//! a server restarted in the middle of a run gets every event with its handler seeing
//! none twice (the journal dedupes on the body digest).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dronehook_client::{Client, Payload};
use dronehook_protocol::{BodyDigest, Envelope, Policy, samples};
use dronehook_server::{Config, Delivery, Router, Server};
use tokio::sync::Notify;

use crate::bulk::events;
use crate::support::{SECRET, wait_until};

/// What the server's handler saw.
#[derive(Default)]
struct Seen {
    envelopes: Mutex<Vec<Envelope>>,
    per_digest: Mutex<HashMap<BodyDigest, usize>>,
    changed: Notify,
}

impl Seen {
    fn total(&self) -> usize {
        self.per_digest.lock().unwrap().values().sum()
    }
}

async fn start(addr: SocketAddr, journal: Option<&Path>, seen: &Arc<Seen>) -> Server {
    let seen = seen.clone();
    let router = Router::new()
        .route("", move |d: Delivery| {
            let seen = seen.clone();
            async move {
                seen.envelopes.lock().unwrap().push((*d.envelope).clone());
                *seen.per_digest.lock().unwrap().entry(d.digest).or_default() += 1;
                seen.changed.notify_waiters();
                Ok::<_, String>(())
            }
        })
        .unwrap();
    let mut config = Config::builder(Policy::new(SECRET)).addr(addr);
    if let Some(journal) = journal {
        config = config.journal(journal);
    }
    Server::bind(config.build(), router).await.unwrap()
}

fn client(server: &Server) -> dronehook_client::ClientBuilder {
    Client::builder()
        .secret(SECRET)
        .endpoint(format!("http://{}/", server.local_addr()))
        .backoff(Duration::from_millis(5), Duration::from_millis(50))
}

#[tokio::test]
async fn every_event_the_client_signs_is_verified_by_the_server() {
    let seen = Arc::new(Seen::default());
    let server = start("127.0.0.1:0".parse().unwrap(), None, &seen).await;
    let client = client(&server).attempts(1).build().unwrap();
    let mut expected = Vec::new();
    for sample in samples::all() {
        let report = if sample.drone {
            let envelope = Envelope::decode(&sample.body).unwrap();
            client.send(&envelope).await
        } else {
            // The documentation examples go out as written, pretty-printed and
            // without `event`: the server takes the event from X-Drone-Event.
            client
                .send(Payload::captured(sample.body.clone(), sample.header_event))
                .await
        };
        let d = &report.endpoints[0];
        assert!(d.is_success(), "{}: {:?}", sample.name, d.error);
        if d.status.map(|s| s.as_u16()) == Some(204) {
            expected.push(
                Envelope::decode_with_header(&sample.body, Some(sample.header_event)).unwrap(),
            );
        } else {
            // Actions Drone never sends (the documentation's `completed`) are acknowledged
            // with 202 and not handed to handlers.
            assert_eq!(d.status.map(|s| s.as_u16()), Some(202), "{}", sample.name);
            assert!(!sample.drone, "{}", sample.name);
        }
    }
    assert!(expected.len() >= 7);
    assert_eq!(*seen.envelopes.lock().unwrap(), expected);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_wrong_secret_is_refused_with_the_servers_code_and_not_retried() {
    let seen = Arc::new(Seen::default());
    let server = start("127.0.0.1:0".parse().unwrap(), None, &seen).await;
    let client = client(&server).secret("not-the-secret").build().unwrap();
    let report = client.send(&events(1)[0]).await;
    let d = &report.endpoints[0];
    assert_eq!(d.attempts, 1);
    assert_eq!(d.status.map(|s| s.as_u16()), Some(401));
    let err = d.error.as_ref().unwrap();
    assert_eq!(err.body(), Some("signature.invalid"));
    assert_eq!(
        err.to_string(),
        "the receiver answered 401 Unauthorized: signature.invalid"
    );
    assert_eq!(seen.total(), 0);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_server_restarted_mid_run_gets_every_event_and_its_handler_sees_none_twice() {
    const N: usize = 60;
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal.db");
    let seen = Arc::new(Seen::default());
    let server = start("127.0.0.1:0".parse().unwrap(), Some(&journal), &seen).await;
    let addr = server.local_addr();
    let client = client(&server).attempts(30).build().unwrap();
    let payloads = events(N);

    let task = tokio::spawn({
        let (client, payloads) = (client.clone(), payloads.clone());
        async move { client.send_all(payloads, 4, |_| {}).await }
    });
    // A third of the way in, the server shuts down and a new one starts on the same
    // port and journal; the client's retries carry the run over the gap.
    wait_until(&seen.changed, || seen.total() >= N / 3).await;
    server.shutdown().await.unwrap();
    let server = start(addr, Some(&journal), &seen).await;
    let bulk = task.await.unwrap();
    assert!(bulk.is_success(), "{:?}", bulk.summary());
    wait_until(&seen.changed, || seen.total() >= N).await;
    {
        let per_digest = seen.per_digest.lock().unwrap();
        assert_eq!(per_digest.len(), N);
        assert!(
            per_digest.values().all(|n| *n == 1),
            "a handler saw an event twice"
        );
        assert!(
            payloads
                .iter()
                .all(|p| per_digest.contains_key(&p.digest()))
        );
    }

    // Sending the same bodies again (a retry whose answer was lost looks exactly like
    // this) is acknowledged and not handed to the handler again.
    let again = client.send_all(payloads[..10].to_vec(), 4, |_| {}).await;
    assert!(again.is_success());
    assert!(
        again
            .reports
            .iter()
            .all(|r| r.endpoints[0].status.map(|s| s.as_u16()) == Some(204))
    );
    // The same event with different bytes is a different delivery: dedupe is by body.
    let respaced = Payload::raw(
        String::from_utf8(payloads[0].body().to_vec())
            .unwrap()
            .replacen(':', ": ", 1),
        "build",
        "updated",
    );
    assert!(client.send(&respaced).await.is_success());
    wait_until(&seen.changed, || seen.total() > N).await;
    assert_eq!(seen.total(), N + 1);
    assert_eq!(
        seen.per_digest.lock().unwrap().get(&respaced.digest()),
        Some(&1)
    );
    server.shutdown().await.unwrap();
}

/// The same signed body sent twice: the receiver answers both 2xx (Drone needs that),
/// and says the second was a duplicate; the report and the summary say so too.
#[tokio::test]
async fn a_body_the_receiver_had_already_is_reported_as_a_duplicate() {
    for journal in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.db");
        let seen = Arc::new(Seen::default());
        let server = start(
            "127.0.0.1:0".parse().unwrap(),
            journal.then_some(path.as_path()),
            &seen,
        )
        .await;
        let client = client(&server).build().unwrap();
        let body = samples::get("build_finished").unwrap().body;
        let payload = || Payload::captured(body.clone(), "build");
        let first = client.send(payload()).await;
        // Each send signs anew (a fresh Date): only the body is the same.
        let second = client.send(payload()).await;
        assert!(first.is_success() && second.is_success(), "{second:?}");
        assert!(!first.endpoints[0].is_duplicate(), "journal {journal}");
        assert!(second.endpoints[0].is_duplicate(), "journal {journal}");
        assert_eq!(second.duplicates().count(), 1);
        let summary = dronehook_client::Summary::of([&first, &second]);
        assert_eq!(
            (
                summary.endpoints[0].delivered,
                summary.endpoints[0].duplicates,
                summary.endpoints[0].failed
            ),
            (1, 1, 0),
            "journal {journal}"
        );
        wait_until(&seen.changed, || seen.total() == 1).await;
        assert_eq!(seen.total(), 1, "the handler ran once");
        server.shutdown().await.unwrap();
    }
}
