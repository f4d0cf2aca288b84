//! Bulk sends: bounded concurrency, progress, input order, per-endpoint summaries,
//! and a receiver restarted in the middle of a run.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dronehook_client::{Client, Payload};
use dronehook_protocol::BodyDigest;

use crate::support::{Receiver, Reply, SECRET, gate, refusing_url, wait_until};

/// `n` distinct events (distinct bodies, so distinct digests).
pub(crate) fn events(n: usize) -> Vec<Payload> {
    (0..n)
        .map(|i| {
            let body = format!(
                r#"{{"event":"build","action":"updated","build":{{"id":{i},"number":{i}}}}}"#
            );
            Payload::raw(body, "build", "updated")
        })
        .collect()
}

fn builder() -> dronehook_client::ClientBuilder {
    Client::builder()
        .secret(SECRET)
        .backoff(Duration::from_millis(5), Duration::from_millis(50))
}

#[tokio::test]
async fn many_events_arrive_once_each_with_progress_in_input_order() {
    let receiver = Receiver::ok().await;
    let client = builder().endpoint(receiver.url()).build().unwrap();
    let payloads = events(200);
    let mut seen = Vec::new();
    let bulk = client
        .send_all(payloads.clone(), 8, |p| {
            assert_eq!(p.total, Some(200));
            seen.push((p.index, p.completed, p.report.is_success()));
        })
        .await;
    assert!(bulk.is_success());
    assert_eq!(bulk.reports.len(), 200);
    for (report, payload) in bulk.reports.iter().zip(&payloads) {
        assert_eq!(
            report.digest,
            payload.digest(),
            "reports are in input order"
        );
    }
    // The callback ran once per event, counting up.
    assert_eq!(seen.len(), 200);
    assert!(
        seen.iter()
            .enumerate()
            .all(|(i, (_, completed, ok))| *completed == i + 1 && *ok)
    );
    let mut indices: Vec<usize> = seen.iter().map(|s| s.0).collect();
    indices.sort_unstable();
    assert_eq!(indices, (0..200).collect::<Vec<_>>());
    // Every event once, every one verified, over a handful of kept-alive connections.
    let got = receiver.received();
    assert_eq!(got.len(), 200);
    assert!(got.iter().all(|r| r.verified.is_ok()));
    let digests: std::collections::HashSet<_> =
        got.iter().map(|r| BodyDigest::of(&r.body)).collect();
    assert_eq!(digests.len(), 200);
    // hyper's pool may open a spare connection when a request's checkout races a
    // connection on its way back to the pool, so the bound has slack; without
    // keep-alive it would be 200.
    assert!(
        receiver.connections() <= 16,
        "{} connections",
        receiver.connections()
    );
    let summary = bulk.summary();
    assert_eq!(summary.filtered, 0);
    assert_eq!(summary.endpoints.len(), 1);
    let row = &summary.endpoints[0];
    assert_eq!((row.delivered, row.failed, row.attempts), (200, 0, 200));
    assert_eq!(row.endpoint, receiver.url());
    assert!(row.last_error.is_none());
}

#[tokio::test]
async fn in_flight_deliveries_stay_within_the_concurrency() {
    let (open, held) = gate();
    let receiver = Receiver::start(move |_, _| Reply::status(204).after(held.clone())).await;
    let client = builder().endpoint(receiver.url()).build().unwrap();
    let task = tokio::spawn({
        let client = client.clone();
        async move { client.send_all(events(30), 3, |_| {}).await }
    });
    // Three requests arrive and are held. That no fourth comes can only be seen by
    // waiting a while; a fourth would need a moment, not a second.
    receiver.wait_for(3).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.count(), 3);
    assert_eq!(receiver.connections(), 3);
    open.send(true).unwrap();
    let bulk = task.await.unwrap();
    assert!(bulk.is_success());
    assert_eq!(receiver.count(), 30);
}

#[tokio::test]
async fn filtered_events_and_failing_endpoints_show_in_the_summary() {
    let good = Receiver::ok().await;
    let refusing = refusing_url().await;
    let client = builder()
        .endpoint(good.url())
        .endpoint(&refusing)
        .attempts(2)
        .events(dronehook_protocol::EventFilter::parse("build:updated").unwrap())
        .build()
        .unwrap();
    let mut payloads = events(5);
    payloads.push(Payload::raw(
        &br#"{"event":"user","action":"created"}"#[..],
        "user",
        "created",
    ));
    let bulk = client.send_all(payloads, 4, |_| {}).await;
    assert!(!bulk.is_success());
    let summary = bulk.summary();
    assert_eq!(summary.filtered, 1);
    assert_eq!(summary.endpoints[0].delivered, 5);
    assert_eq!(summary.endpoints[0].attempts, 5);
    let bad = &summary.endpoints[1];
    assert_eq!(bad.endpoint, refusing);
    assert_eq!((bad.delivered, bad.failed, bad.attempts), (0, 5, 10));
    assert_eq!(bad.failures_by_class, vec![("connect", 5)]);
    assert!(
        bad.last_error
            .as_deref()
            .unwrap()
            .starts_with("could not connect")
    );
    assert_eq!(good.count(), 5);
}

#[tokio::test]
async fn a_slow_endpoint_does_not_hold_back_a_healthy_one_in_bulk() {
    let (open, held) = gate();
    let slow = Receiver::start(move |_, _| Reply::status(204).after(held.clone())).await;
    let healthy = Receiver::ok().await;
    let client = builder()
        .endpoint(slow.url())
        .endpoint(healthy.url())
        .build()
        .unwrap();
    let task = tokio::spawn({
        let client = client.clone();
        async move { client.send_all(events(20), 2, |_| {}).await }
    });
    // The healthy endpoint gets all twenty while the slow one holds its first two.
    healthy.wait_for(20).await;
    assert_eq!(slow.count(), 2);
    open.send(true).unwrap();
    let bulk = task.await.unwrap();
    assert!(bulk.is_success());
    assert_eq!(slow.count(), 20);
}

#[tokio::test]
async fn a_receiver_restarted_mid_run_still_gets_every_event() {
    const N: usize = 60;
    let receiver = Arc::new(tokio::sync::Mutex::new(Receiver::ok().await));
    let url = receiver.lock().await.url();
    let client = builder().endpoint(&url).attempts(20).build().unwrap();
    let progress = Arc::new(Mutex::new(0usize));
    let changed = Arc::new(tokio::sync::Notify::new());
    let task = tokio::spawn({
        let (client, progress, changed) = (client.clone(), progress.clone(), changed.clone());
        async move {
            client
                .send_all(events(N), 4, move |p| {
                    *progress.lock().unwrap() = p.completed;
                    changed.notify_waiters();
                })
                .await
        }
    });
    // A third of the way in, the receiver goes down, closing its connections (and
    // any request in flight on them), and comes back on the same port.
    wait_until(&changed, || *progress.lock().unwrap() >= N / 3).await;
    receiver.lock().await.restart().await;
    let bulk = task.await.unwrap();
    assert!(bulk.is_success(), "{:?}", bulk.summary());
    let got = receiver.lock().await.received();
    let mut per_digest: HashMap<BodyDigest, usize> = HashMap::new();
    for r in &got {
        assert!(r.verified.is_ok());
        *per_digest.entry(BodyDigest::of(&r.body)).or_default() += 1;
    }
    // Every event arrived; one that was in flight when the connection closed may
    // have arrived twice (a bare receiver does not dedupe; dronehook-server does).
    assert_eq!(per_digest.len(), N);
    let duplicates = got.len() - N;
    assert!(
        duplicates <= 4,
        "{duplicates} duplicates, more than were in flight"
    );
}

#[tokio::test]
async fn empty_input_and_inputs_of_unknown_length() {
    let receiver = Receiver::ok().await;
    let client = builder().endpoint(receiver.url()).build().unwrap();
    let mut calls = 0;
    let bulk = client.send_all(Vec::new(), 4, |_| calls += 1).await;
    assert!(bulk.reports.is_empty() && bulk.is_success());
    assert_eq!(calls, 0);
    // A filtered iterator does not know its length: progress says so.
    let unknown = events(10).into_iter().filter(|_| true);
    let mut totals = Vec::new();
    let bulk = client.send_all(unknown, 0, |p| totals.push(p.total)).await;
    assert_eq!(bulk.reports.len(), 10);
    assert_eq!(totals, vec![None; 10]);
    assert_eq!(receiver.count(), 10);
    // Concurrency 0 counts as 1: one request at a time, over one kept-alive
    // connection (and at most one spare, see above).
    assert!(
        receiver.connections() <= 2,
        "{} connections",
        receiver.connections()
    );
}
