//! Requests are Drone's: the protocol crate's bytes, Drone's headers in Drone's order,
//! signatures a strict verifier accepts; raw bodies go out byte for byte.

use dronehook_client::{Client, Payload};
use dronehook_protocol::samples;

use crate::support::{Receiver, SECRET};

fn client(url: &str) -> Client {
    Client::builder()
        .secret(SECRET)
        .endpoint(url)
        .attempts(1)
        .build()
        .unwrap()
}

#[tokio::test]
async fn every_sample_is_sent_as_encoded_and_verifies() {
    let receiver = Receiver::ok().await;
    let client = client(&receiver.url());
    let drone: Vec<_> = samples::all().into_iter().filter(|s| s.drone).collect();
    assert!(
        drone.len() >= 7,
        "the protocol crate has a sample per Drone event"
    );
    for sample in &drone {
        let envelope = dronehook_protocol::Envelope::decode(&sample.body).unwrap();
        let report = client.send(&envelope).await;
        assert!(
            report.is_success(),
            "{}: {:?}",
            sample.name,
            report.endpoints
        );
        assert_eq!(report.endpoints[0].status.map(|s| s.as_u16()), Some(204));
        assert_eq!(report.endpoints[0].attempts, 1);
    }
    let received = receiver.received();
    assert_eq!(received.len(), drone.len());
    for (sample, got) in drone.iter().zip(&received) {
        // The body is exactly what the protocol crate encodes, byte for byte.
        assert_eq!(got.body.as_ref(), sample.body.as_slice(), "{}", sample.name);
        let (verified, envelope) = got.verified.as_ref().expect(sample.name);
        assert_eq!(verified.key_id, "hmac-key");
        assert_eq!(envelope.encode(), sample.body);
        assert_eq!(got.header("x-drone-event"), sample.header_event);
        assert_eq!(got.header("content-type"), "application/json");
        assert!(got.header("digest").starts_with("SHA-256="));
        assert!(got.header("date").ends_with(" GMT"));
        assert!(
            got.header("signature")
                .starts_with(r#"keyId="hmac-key",algorithm="hmac-sha256",signature=""#),
            "{}",
            got.header("signature")
        );
        assert!(
            got.header("signature")
                .ends_with(r#"",headers="date digest""#)
        );
    }
}

#[tokio::test]
async fn headers_come_in_drones_order() {
    let receiver = Receiver::ok().await;
    let client = client(&receiver.url());
    let sample = samples::all().into_iter().find(|s| s.drone).unwrap();
    client
        .send(Payload::raw(sample.body.clone(), sample.header_event, ""))
        .await;
    let got = &receiver.received()[0];
    let drone = [
        "x-drone-event",
        "content-type",
        "digest",
        "date",
        "signature",
    ];
    let order: Vec<&str> = got
        .header_order
        .iter()
        .map(String::as_str)
        .filter(|h| drone.contains(h))
        .collect();
    assert_eq!(order, drone);
    // Host leads, as in Go's requests; the user agent says who sent it.
    assert_eq!(got.header_order[0], "host");
    assert_eq!(got.header("host"), receiver.addr.to_string());
    assert_eq!(
        got.header("user-agent"),
        dronehook_client::DEFAULT_USER_AGENT
    );
}

#[tokio::test]
async fn user_agent_can_be_drones() {
    let receiver = Receiver::ok().await;
    let client = Client::builder()
        .secret(SECRET)
        .endpoint(receiver.url())
        .user_agent("Go-http-client/1.1")
        .build()
        .unwrap();
    let sample = samples::all().into_iter().find(|s| s.drone).unwrap();
    assert!(
        client
            .send(Payload::captured(sample.body, sample.header_event))
            .await
            .is_success()
    );
    assert_eq!(
        receiver.received()[0].header("user-agent"),
        "Go-http-client/1.1"
    );
}

#[tokio::test]
async fn raw_bodies_go_out_byte_for_byte_and_freshly_signed() {
    let receiver = Receiver::ok().await;
    let client = client(&receiver.url());
    // A capture as stored: pretty-printed, so re-encoding would change it.
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fixtures/corpus/build_success.json"
    );
    let capture = std::fs::read(path).unwrap();
    assert!(capture.contains(&b'\n'));
    let report = client
        .send(Payload::captured(capture.clone(), "build"))
        .await;
    assert!(report.is_success(), "{:?}", report.endpoints);
    // The action for the event filter was read from the body.
    assert_eq!(
        (report.event.as_str(), report.action.as_str()),
        ("build", "updated")
    );
    let got = &receiver.received()[0];
    assert_eq!(got.body.as_ref(), capture.as_slice());
    assert_eq!(got.header("x-drone-event"), "build");
    assert!(got.verified.is_ok(), "{:?}", got.verified);
    assert_eq!(report.digest, dronehook_protocol::BodyDigest::of(&capture));
}

#[tokio::test]
async fn raw_bytes_that_are_not_json_are_still_sent_untouched() {
    let receiver = Receiver::ok().await;
    let client = client(&receiver.url());
    let report = client
        .send(Payload::captured(&b"not json at all"[..], "custom"))
        .await;
    assert!(report.sent);
    assert_eq!(report.action, "");
    let got = &receiver.received()[0];
    assert_eq!(got.body.as_ref(), b"not json at all");
    assert_eq!(got.header("x-drone-event"), "custom");
    // The signature and digest verify; only the body's decoding fails, as it should.
    let err = got.verified.as_ref().unwrap_err();
    assert_eq!(
        err,
        "payload.invalid: the body is not a valid payload: expected ident at line 1 column 2"
    );
}

#[tokio::test]
async fn secrets_stay_out_of_debug_output() {
    let builder = Client::builder()
        .secret(SECRET)
        .endpoint("http://127.0.0.1:9/");
    assert!(!format!("{builder:?}").contains(SECRET));
    let client = builder.build().unwrap();
    let debug = format!("{client:?}");
    assert!(!debug.contains(SECRET));
    assert!(debug.contains("http://127.0.0.1:9/"));
}

#[tokio::test]
async fn credentials_in_the_url_become_basic_auth_and_stay_out_of_reports() {
    let receiver = Receiver::ok().await;
    let url = format!("http://drone:p%40ss%3Aword@{}/hook?x=1", receiver.addr);
    let builder = Client::builder().secret(SECRET).endpoint(&url);
    assert!(!format!("{builder:?}").contains("p%40ss"));
    let client = builder.build().unwrap();
    assert!(!format!("{client:?}").contains("p%40ss"));
    let shown = format!("http://drone:***@{}/hook?x=1", receiver.addr);
    assert_eq!(client.endpoints().collect::<Vec<_>>(), [shown.as_str()]);
    let report = client.send(Payload::captured(&b"{}"[..], "user")).await;
    assert_eq!(report.endpoints[0].endpoint, shown);
    let got = &receiver.received()[0];
    // Go's client turns URL credentials into Basic auth: "drone:p@ss:word".
    assert_eq!(got.header("authorization"), "Basic ZHJvbmU6cEBzczp3b3Jk");
    assert_eq!(got.header("host"), receiver.addr.to_string());
    assert!(got.verified.is_ok(), "{:?}", got.verified);
}

#[tokio::test]
async fn an_event_name_that_cannot_be_a_header_fails_without_sending() {
    let receiver = Receiver::ok().await;
    let client = client(&receiver.url());
    let report = client
        .send(Payload::raw(&b"{}"[..], "user\r\nX-Evil: 1", ""))
        .await;
    let d = &report.endpoints[0];
    assert_eq!((d.attempts, d.status), (1, None));
    let err = d.error.as_ref().unwrap();
    assert_eq!(err.class(), "sign");
    assert!(!err.is_retryable() && !err.is_connect() && !err.is_status());
    assert_eq!(
        err.to_string(),
        "could not sign the request: failed to parse header value"
    );
    assert_eq!(receiver.count(), 0);
}
