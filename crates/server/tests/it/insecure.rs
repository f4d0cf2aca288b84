//! Verification turned off on purpose: `Config::insecure_no_verification`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use dronehook_server::{Config, Router, Server};
use http::StatusCode;

use crate::util::{Calls, post, signed, user_event};

/// Collects what a `tracing` subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn json() -> Vec<(String, String)> {
    vec![("content-type".to_owned(), "application/json".to_owned())]
}

#[tokio::test]
async fn unsigned_requests_are_delivered_and_every_other_rule_holds() {
    let config = Config::insecure_no_verification()
        .addr("127.0.0.1:0".parse().unwrap())
        .path("/hooks")
        .shutdown_grace(Duration::from_secs(5))
        .build();
    assert!(config.is_insecure_no_verification());
    assert!(config.policy().is_none());
    assert_eq!(config.secret_count(), 0);
    assert!(format!("{config:?}").contains("DISABLED"));
    let calls = Calls::default();
    let log = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer({
            let log = log.clone();
            move || log.clone()
        })
        .with_ansi(false)
        .finish();
    // This test's runtime runs on this thread, where `bind` logs.
    let guard = tracing::subscriber::set_default(subscriber);
    // No secret, yet it starts: the configuration says so explicitly, and loudly.
    let server = Server::bind(config, Router::new().route("", calls.handler()).unwrap())
        .await
        .expect("starts without secrets");
    drop(guard);
    let log = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    assert!(
        log.contains("WARN dronehook_server::insecure: VERIFICATION DISABLED"),
        "{log}"
    );
    let addr = server.local_addr();

    let body = user_event(7);
    let answer = post(addr, "/hooks", &json(), &body).await;
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (StatusCode::NO_CONTENT, "")
    );
    assert_eq!(calls.len(), 1);
    let delivery = &calls.all()[0];
    assert_eq!(delivery.secret_index, 0);
    assert_eq!(delivery.envelope.event.as_str(), "user");

    // A signature is not checked either: one made with another secret passes too.
    let other = user_event(8);
    let mut headers = signed(&other);
    headers.retain(|(n, _)| !n.eq_ignore_ascii_case("signature"));
    headers.push((
        "signature".to_owned(),
        "keyId=\"x\",signature=\"bad\"".to_owned(),
    ));
    assert_eq!(
        post(addr, "/hooks", &headers, &other).await.status,
        StatusCode::NO_CONTENT
    );

    // The body must still decode, and the transport rules still hold.
    let bad = post(addr, "/hooks", &json(), br#"{"event":"user","user":[]}"#).await;
    assert_eq!(
        (bad.status, bad.body.as_str()),
        (StatusCode::BAD_REQUEST, "payload.invalid\n")
    );
    let form = vec![(
        "content-type".to_owned(),
        "application/x-www-form-urlencoded".to_owned(),
    )];
    let refused = post(addr, "/hooks", &form, &body).await;
    assert_eq!(
        (refused.status, refused.body.as_str()),
        (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "content_type.unsupported\n"
        )
    );
    assert_eq!(
        post(addr, "/", &json(), &body).await.status,
        StatusCode::NOT_FOUND
    );
    // Replay protection is on unless turned off: the same body again is a replay.
    assert_eq!(
        post(addr, "/hooks", &json(), &body).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(calls.len(), 2);
    server.shutdown().await.unwrap();
}
