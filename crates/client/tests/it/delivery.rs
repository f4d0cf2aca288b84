//! Delivery to several endpoints, each on its own: a refusing or slow endpoint does
//! not stop or delay another; retries happen on the failures worth repeating only.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use dronehook_client::{Client, EndpointReport, Payload};
use dronehook_protocol::samples;

use crate::support::{PATIENCE, Receiver, Reply, SECRET, gate, refusing_url, wait_until};

fn payload() -> Payload {
    let sample = samples::all().into_iter().find(|s| s.drone).unwrap();
    Payload::raw_detect(sample.body, None).unwrap()
}

fn builder() -> dronehook_client::ClientBuilder {
    // Short waits keep the suite fast; the waits' lengths are not what is tested here.
    Client::builder()
        .secret(SECRET)
        .backoff(Duration::from_millis(5), Duration::from_millis(20))
}

#[tokio::test]
async fn three_endpoints_refusing_slow_and_flaky_each_get_their_own_outcome() {
    let refusing = refusing_url().await;
    let (open_slow, slow_gate) = gate();
    let slow = Receiver::start(move |_, _| Reply::status(200).after(slow_gate.clone())).await;
    let flaky = Receiver::start(|n, _| {
        if n == 0 {
            Reply::status(500)
        } else {
            Reply::status(200)
        }
    })
    .await;
    // The refusing endpoint comes first: Drone would stop there and send nothing more.
    let client = builder()
        .endpoint(&refusing)
        .endpoint(slow.url())
        .endpoint(flaky.url())
        .attempts(3)
        .build()
        .unwrap();

    let done: Arc<Mutex<Vec<usize>>> = Arc::default();
    let changed = Arc::new(tokio::sync::Notify::new());
    let task = {
        let (client, done, changed) = (client.clone(), done.clone(), changed.clone());
        tokio::spawn(async move {
            client
                .send(payload())
                .on_endpoint(move |d: &EndpointReport| {
                    done.lock().unwrap().push(d.endpoint_index);
                    changed.notify_waiters();
                })
                .await
        })
    };

    // While the slow endpoint still holds its request, the two others finish: the
    // refusing one after its three attempts, the flaky one with its second answer.
    wait_until(&changed, || done.lock().unwrap().len() == 2).await;
    slow.wait_for(1).await;
    {
        let finished = done.lock().unwrap().clone();
        assert!(
            finished.contains(&0) && finished.contains(&2),
            "{finished:?}"
        );
    }
    assert_eq!(flaky.count(), 2);
    open_slow.send(true).unwrap();
    let report = tokio::time::timeout(PATIENCE, task).await.unwrap().unwrap();
    assert_eq!(
        *done.lock().unwrap().last().unwrap(),
        1,
        "the slow endpoint finishes last"
    );

    let [r, s, f] = &report.endpoints[..] else {
        panic!("{:?}", report.endpoints)
    };
    assert_eq!(r.endpoint, refusing);
    assert_eq!(r.attempts, 3);
    assert_eq!(r.status, None);
    let err = r.error.as_ref().unwrap();
    assert!(
        err.is_connect() && !err.is_timeout() && !err.is_status(),
        "{err:?}"
    );
    assert_eq!(err.class(), "connect");
    assert!(err.to_string().starts_with("could not connect"), "{err}");

    assert_eq!(s.endpoint, slow.url());
    assert_eq!((s.attempts, s.status.map(|s| s.as_u16())), (1, Some(200)));
    assert!(s.is_success());

    assert_eq!(f.endpoint, flaky.url());
    assert_eq!((f.attempts, f.status.map(|s| s.as_u16())), (2, Some(200)));
    assert!(f.is_success() && f.error.is_none());
    assert!(!report.is_success());
    assert_eq!(report.failures().count(), 1);
    // Both of the flaky endpoint's attempts were signed and verify.
    assert!(flaky.received().iter().all(|r| r.verified.is_ok()));
}

#[tokio::test]
async fn client_errors_are_final_and_their_body_is_kept() {
    for status in [400u16, 401, 403, 404, 409, 413, 422] {
        let receiver =
            Receiver::start(move |_, _| Reply::status(status).body("Invalid Signature\n")).await;
        let client = builder()
            .endpoint(receiver.url())
            .attempts(5)
            .build()
            .unwrap();
        let report = client.send(payload()).await;
        let d = &report.endpoints[0];
        assert_eq!(d.attempts, 1, "{status} is not retried");
        assert_eq!(d.status.map(|s| s.as_u16()), Some(status));
        let err = d.error.as_ref().unwrap();
        assert!(err.is_status() && !err.is_retryable());
        assert_eq!(err.status().map(|s| s.as_u16()), Some(status));
        assert_eq!(err.body(), Some("Invalid Signature"));
        assert_eq!(err.class(), "status");
        assert_eq!(
            err.to_string(),
            format!(
                "the receiver answered {}: Invalid Signature",
                d.status.unwrap()
            )
        );
        assert_eq!(receiver.count(), 1);
    }
}

#[tokio::test]
async fn retryable_statuses_are_retried_until_the_attempts_run_out() {
    for status in [408u16, 429, 500, 502, 503, 504] {
        let receiver = Receiver::start(move |_, _| Reply::status(status)).await;
        let client = builder()
            .endpoint(receiver.url())
            .attempts(3)
            .build()
            .unwrap();
        let report = client.send(payload()).await;
        let d = &report.endpoints[0];
        assert_eq!(d.attempts, 3, "{status}");
        assert_eq!(d.status.map(|s| s.as_u16()), Some(status));
        let err = d.error.as_ref().unwrap();
        assert!(err.is_status() && err.is_retryable(), "{status}");
        assert_eq!(err.body(), Some(""));
        assert_eq!(receiver.count(), 3);
    }
}

#[tokio::test]
async fn one_attempt_is_drones_behaviour() {
    let receiver = Receiver::start(|_, _| Reply::status(503)).await;
    let client = builder()
        .endpoint(receiver.url())
        .attempts(1)
        .build()
        .unwrap();
    let report = client.send(payload()).await;
    assert_eq!(report.endpoints[0].attempts, 1);
    assert_eq!(receiver.count(), 1);
}

#[tokio::test]
async fn other_2xx_answers_are_success_and_redirects_are_not_followed() {
    for (status, ok) in [
        (200u16, true),
        (201, true),
        (202, true),
        (204, true),
        (301, false),
        (307, false),
    ] {
        let receiver = Receiver::start(move |_, _| {
            Reply::status(status).header("location", "http://127.0.0.1:9/")
        })
        .await;
        let client = builder().endpoint(receiver.url()).build().unwrap();
        let d = client.send(payload()).await.endpoints.remove(0);
        assert_eq!(d.is_success(), ok, "{status}");
        assert_eq!(d.status.map(|s| s.as_u16()), Some(status));
        assert_eq!(d.attempts, 1);
        assert_eq!(receiver.count(), 1);
    }
}

#[tokio::test]
async fn a_slow_receiver_times_out_each_attempt() {
    let (_never, closed) = gate();
    let receiver = Receiver::start(move |_, _| Reply::status(200).after(closed.clone())).await;
    let client = builder()
        .endpoint(receiver.url())
        .timeout(Duration::from_millis(300))
        .attempts(2)
        .build()
        .unwrap();
    let d = client.send(payload()).await.endpoints.remove(0);
    assert_eq!(d.attempts, 2);
    assert_eq!(d.status, None);
    let err = d.error.unwrap();
    assert!(err.is_timeout() && err.is_retryable() && !err.is_connect());
    assert_eq!(err.class(), "timeout");
    assert_eq!(err.to_string(), "timed out after 300ms");
    assert!(d.elapsed >= Duration::from_millis(600));
    assert_eq!(receiver.count(), 2);
}

#[tokio::test]
async fn every_attempt_is_signed_afresh() {
    // Retry-After makes the two attempts at least a second apart, so their Date
    // headers (one-second resolution) must differ if each is signed anew.
    let receiver = Receiver::start(|n, _| {
        if n == 0 {
            Reply::status(503).header("retry-after", "1")
        } else {
            Reply::status(204)
        }
    })
    .await;
    let client = builder().endpoint(receiver.url()).build().unwrap();
    let report = client.send(payload()).await;
    assert!(report.is_success());
    let got = receiver.received();
    assert_eq!(got.len(), 2);
    assert_ne!(got[0].header("date"), got[1].header("date"));
    assert_ne!(got[0].header("signature"), got[1].header("signature"));
    assert_eq!(got[0].header("digest"), got[1].header("digest"));
    assert!(got.iter().all(|r| r.verified.is_ok()));
}

#[tokio::test]
async fn keep_alive_reuses_one_connection_for_sequential_sends() {
    let receiver = Receiver::ok().await;
    let client = builder().endpoint(receiver.url()).build().unwrap();
    for _ in 0..20 {
        assert!(client.send(payload()).await.is_success());
    }
    assert_eq!(receiver.count(), 20);
    // One connection, or two when hyper's pool opened a spare because a checkout
    // raced the connection's return to the pool; without keep-alive it would be 20.
    assert!(
        receiver.connections() <= 2,
        "{} connections",
        receiver.connections()
    );
}

#[tokio::test]
async fn a_connection_closed_mid_request_is_an_io_error_and_retried() {
    // A server that reads the request and hangs up without answering.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        use tokio::io::AsyncReadExt as _;
        while let Ok((mut conn, _)) = listener.accept().await {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let mut buf = [0u8; 4096];
            let _ = conn.read(&mut buf).await;
            drop(conn);
        }
    });
    let client = builder().endpoint(&url).attempts(2).build().unwrap();
    let d = client.send(payload()).await.endpoints.remove(0);
    assert_eq!(d.attempts, 2);
    let err = d.error.unwrap();
    assert!(
        err.is_io() && err.is_retryable() && !err.is_connect(),
        "{err:?}"
    );
    assert_eq!(err.class(), "io");
    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_connection_reset_before_the_request_is_read_is_retried_and_reported() {
    // A receiver that accepts and resets at once (SO_LINGER 0 makes the close an RST),
    // as an overloaded proxy or a crashing receiver does.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            #[expect(
                deprecated,
                reason = "set_linger is deprecated only because it blocks on drop when non-zero; zero is what makes the RST"
            )]
            conn.set_linger(Some(Duration::ZERO)).unwrap();
            drop(conn);
        }
    });
    let client = builder().endpoint(&url).attempts(3).build().unwrap();
    let d = client.send(payload()).await.endpoints.remove(0);
    assert_eq!(d.attempts, 3, "every attempt is made");
    assert_eq!(d.status, None, "no answer was ever read");
    let err = d.error.unwrap();
    assert!(err.is_retryable(), "a reset is retryable: {err:?}");
    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_receiver_that_accepts_but_never_reads_times_out_each_attempt() {
    // The listener's backlog completes the handshake; nobody ever reads or answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let held = Arc::new(tokio::sync::Mutex::new(Vec::new()));
    let keep = held.clone();
    tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            keep.lock().await.push(conn);
        }
    });
    let client = builder()
        .endpoint(&url)
        .attempts(2)
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let d = client.send(payload()).await.endpoints.remove(0);
    assert_eq!(d.attempts, 2);
    let err = d.error.unwrap();
    assert!(err.is_timeout() && err.is_retryable(), "{err:?}");
    assert_eq!(
        held.lock().await.len(),
        2,
        "each attempt opened its own connection"
    );
}
