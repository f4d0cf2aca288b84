//! `Retry-After` is honoured in both forms and capped.

use std::time::{Duration, SystemTime};

use dronehook_client::{Client, Payload};

use crate::support::{Receiver, Reply, SECRET};

fn payload() -> Payload {
    Payload::raw(
        &br#"{"event":"user","action":"created"}"#[..],
        "user",
        "created",
    )
}

fn client(url: &str) -> Client {
    // A backoff of a millisecond: any wait longer than that comes from Retry-After.
    Client::builder()
        .secret(SECRET)
        .endpoint(url)
        .backoff(Duration::from_millis(1), Duration::from_millis(1))
        .build()
        .unwrap()
}

async fn gap_between_attempts(first: Reply) -> (Duration, dronehook_client::Report) {
    let first = std::sync::Mutex::new(Some(first));
    let receiver =
        Receiver::start(move |_, _| first.lock().unwrap().take().unwrap_or(Reply::status(204)))
            .await;
    let report = client(&receiver.url()).send(payload()).await;
    let got = receiver.received();
    assert_eq!(got.len(), 2);
    (got[1].at - got[0].at, report)
}

#[tokio::test]
async fn delay_seconds_are_waited() {
    let (gap, report) = gap_between_attempts(Reply::status(429).header("retry-after", "1")).await;
    assert!(gap >= Duration::from_secs(1), "{gap:?}");
    let d = &report.endpoints[0];
    assert_eq!((d.attempts, d.status.map(|s| s.as_u16())), (2, Some(204)));
}

#[tokio::test]
async fn an_http_date_is_waited_for() {
    // Two seconds ahead at one-second resolution: at least a second away.
    let at = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(2));
    let (gap, report) = gap_between_attempts(Reply::status(503).header("retry-after", at)).await;
    assert!(gap >= Duration::from_millis(900), "{gap:?}");
    assert!(report.is_success());
}

#[tokio::test]
async fn a_long_ask_is_cut_to_the_cap() {
    let first = std::sync::Mutex::new(true);
    let receiver = Receiver::start(move |_, _| {
        if std::mem::take(&mut *first.lock().unwrap()) {
            Reply::status(503).header("retry-after", "86400")
        } else {
            Reply::status(204)
        }
    })
    .await;
    let client = Client::builder()
        .secret(SECRET)
        .endpoint(receiver.url())
        .max_retry_after(Duration::from_millis(50))
        .build()
        .unwrap();
    // The suite would hang for a day if the cap were ignored.
    let report = tokio::time::timeout(crate::support::PATIENCE, client.send(payload()))
        .await
        .expect("the cap applies");
    assert!(report.is_success());
    let got = receiver.received();
    assert!(got[1].at - got[0].at >= Duration::from_millis(50));
}

#[tokio::test]
async fn a_date_in_the_past_or_garbage_means_the_normal_backoff() {
    for value in ["Wed, 01 Jan 2020 00:00:00 GMT", "soon", "-5", ""] {
        let (_, report) =
            gap_between_attempts(Reply::status(503).header("retry-after", value)).await;
        assert!(report.is_success(), "{value:?}");
        assert_eq!(report.endpoints[0].attempts, 2);
    }
}

#[tokio::test]
async fn retry_after_on_a_final_status_does_not_cause_a_retry() {
    let receiver = Receiver::start(|_, _| Reply::status(400).header("retry-after", "1")).await;
    let report = client(&receiver.url()).send(payload()).await;
    assert_eq!(report.endpoints[0].attempts, 1);
    assert_eq!(receiver.count(), 1);
}
