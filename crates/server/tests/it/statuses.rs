//! Every status the webhook path answers, with its exact code and headers.

use std::time::{Duration, SystemTime};

use dronehook_server::Router;
use dronehook_server::protocol::{Action, Event};
use http::StatusCode;

use crate::util::{
    CORPUS, Calls, config, corpus, deliver, post, raw, raw_body, raw_request, request, signed,
    signed_at, start, status_line,
};

const WWW: &str = "Signature headers=\"date digest\"";

/// Request headers as the helpers take them.
type Headers = Vec<(String, String)>;

#[tokio::test]
async fn each_drone_event_is_delivered_once_with_its_typed_data() {
    let calls = Calls::default();
    let server = start(config(), Router::new().route("", calls.handler()).unwrap()).await;
    for (name, body) in CORPUS {
        let answer = deliver(server.local_addr(), body).await;
        assert_eq!(answer.status, StatusCode::NO_CONTENT, "{name}");
        assert_eq!(answer.body, "", "{name}: 204 has no body");
    }
    let seen = calls.all();
    assert_eq!(seen.len(), CORPUS.len(), "one call per event");
    for ((name, body), d) in CORPUS.iter().zip(&seen) {
        let (event, action) = name.split_once('_').unwrap();
        assert_eq!(d.envelope.event.as_str(), event, "{name}");
        assert!(d.envelope.event.is_known());
        let expected_action = match action {
            "failure" | "killed" | "success" => "updated",
            other => other,
        };
        assert_eq!(d.envelope.action.as_str(), expected_action, "{name}");
        assert_eq!(&d.body[..], *body, "{name}: the exact bytes");
        assert_eq!(d.id, None, "no journal, no id");
        assert_eq!(d.attempt, 1);
        assert_eq!(d.digest, dronehook_server::protocol::BodyDigest::of(body));
        assert!(d.headers.contains_key("signature"));
        assert!(d.received_at <= SystemTime::now());
        match d.envelope.event {
            Event::Build => {
                assert_eq!(d.envelope.repo_slug(), Some("Diesel-Net/plex"), "{name}");
                assert!(d.envelope.build_number().is_some(), "{name}");
            }
            Event::Repo => assert!(d.envelope.repo_slug().is_some(), "{name}"),
            Event::User => assert!(d.envelope.user.is_some(), "{name}"),
            _ => panic!("unexpected event in {name}"),
        }
    }
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn routes_pick_handlers_by_glob_and_the_fallback_takes_the_rest() {
    let builds = Calls::default();
    let enabled = Calls::default();
    let rest = Calls::default();
    let router = Router::new()
        .route("build:*", builds.handler())
        .unwrap()
        .route("repo:enabled", enabled.handler())
        .unwrap()
        .fallback(rest.handler());
    assert_eq!(router.names(), ["build:*", "repo:enabled", "fallback"]);
    let server = start(config(), router).await;
    for (_, body) in CORPUS {
        assert_eq!(
            deliver(server.local_addr(), body).await.status,
            StatusCode::NO_CONTENT
        );
    }
    assert_eq!(builds.len(), 5);
    assert_eq!(enabled.len(), 1);
    assert_eq!(enabled.all()[0].envelope.action, Action::Enabled);
    assert_eq!(rest.len(), 3, "repo:disabled, user:created, user:deleted");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn bad_patterns_are_refused_when_routing() {
    let err = Router::new()
        .route("build:[", Calls::default().handler())
        .unwrap_err();
    assert_eq!(err.pattern(), "build:[");
}

#[tokio::test]
async fn tampered_body_is_401_digest_mismatch() {
    let calls = Calls::default();
    let server = start(config(), Router::new().route("", calls.handler()).unwrap()).await;
    let body = corpus("build_created");
    let headers = signed(body);
    let mut forged = body.to_vec();
    let at = forged.iter().position(|b| *b == b'1').unwrap();
    forged[at] = b'2';
    let answer = post(server.local_addr(), "/", &headers, &forged).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer.body, "digest.mismatch\n");
    assert_eq!(answer.headers["www-authenticate"], WWW);
    assert_eq!(answer.headers["content-type"], "text/plain; charset=utf-8");
    assert_eq!(calls.len(), 0);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn authentication_failures_are_401_with_their_code() {
    let calls = Calls::default();
    let server = start(config(), Router::new().route("", calls.handler()).unwrap()).await;
    let addr = server.local_addr();
    let body = corpus("user_created");

    let old = SystemTime::now() - Duration::from_secs(6 * 60);
    let answer = post(addr, "/", &signed_at(body, old), body).await;
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (StatusCode::UNAUTHORIZED, "date.stale\n")
    );
    assert_eq!(answer.headers["www-authenticate"], WWW);

    let future = SystemTime::now() + Duration::from_secs(6 * 60);
    let answer = post(addr, "/", &signed_at(body, future), body).await;
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (StatusCode::UNAUTHORIZED, "date.future\n")
    );

    let unsigned = vec![("Content-Type".to_owned(), "application/json".to_owned())];
    let answer = post(addr, "/", &unsigned, body).await;
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (StatusCode::UNAUTHORIZED, "signature.missing\n")
    );
    assert_eq!(answer.headers["www-authenticate"], WWW);

    let other_secret = {
        use dronehook_server::protocol::{SignInput, Signer};
        let s = Signer::new("another-secret")
            .sign(&SignInput::new(body, SystemTime::now()))
            .unwrap();
        s.headers("user")
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect::<Vec<_>>()
    };
    let answer = post(addr, "/", &other_secret, body).await;
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (StatusCode::UNAUTHORIZED, "signature.invalid\n")
    );
    assert!(
        !answer.body.contains("correct-horse"),
        "never echo the secret"
    );
    assert_eq!(calls.len(), 0);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn malformed_requests_are_400_with_their_code() {
    let calls = Calls::default();
    let server = start(config(), Router::new().route("", calls.handler()).unwrap()).await;
    let addr = server.local_addr();
    let body = corpus("user_created");

    let mut headers = signed(body);
    for (n, v) in &mut headers {
        if n == "Signature" {
            *v = "keyId=\"hmac-key\",signature=".to_owned();
        }
    }
    let answer = post(addr, "/", &headers, body).await;
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (StatusCode::BAD_REQUEST, "signature.malformed\n")
    );
    assert!(!answer.headers.contains_key("www-authenticate"));

    let not_json = b"{\"event\":\"user\",".as_slice();
    let answer = post(addr, "/", &signed(not_json), not_json).await;
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (StatusCode::BAD_REQUEST, "payload.invalid\n")
    );
    assert_eq!(calls.len(), 0);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn unknown_events_are_202_and_reach_only_handlers_that_opted_in() {
    let body = br#"{"event":"pipeline","action":"exploded"}"#;
    let calls = Calls::default();
    let server = start(config(), Router::new().route("", calls.handler()).unwrap()).await;
    let answer = post(server.local_addr(), "/", &signed(body), body).await;
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (StatusCode::ACCEPTED, "")
    );
    let known_event_unknown_action = br#"{"event":"build","action":"exploded"}"#;
    let answer = post(
        server.local_addr(),
        "/",
        &signed(known_event_unknown_action),
        known_event_unknown_action,
    )
    .await;
    assert_eq!(answer.status, StatusCode::ACCEPTED);
    assert_eq!(calls.len(), 0, "not opted in");
    server.shutdown().await.unwrap();

    let calls = Calls::default();
    let router = Router::new()
        .route("pipeline:*", calls.handler())
        .unwrap()
        .unknown_events(true);
    let server = start(config(), router).await;
    let answer = post(server.local_addr(), "/", &signed(body), body).await;
    assert_eq!(answer.status, StatusCode::ACCEPTED);
    assert_eq!(calls.len(), 1, "opted in");
    assert_eq!(calls.all()[0].envelope.event.as_str(), "pipeline");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn other_paths_and_methods() {
    let server = start(config().path("/hook"), Router::new()).await;
    let addr = server.local_addr();
    let body = corpus("user_created");

    let answer = post(addr, "/", &signed(body), body).await;
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (StatusCode::NOT_FOUND, "not_found\n")
    );

    for method in ["GET", "PUT", "DELETE", "PATCH"] {
        let answer = request(addr, method, "/hook", &[], Vec::new()).await;
        assert_eq!(
            (answer.status, answer.body.as_str()),
            (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed\n"),
            "{method}"
        );
        assert_eq!(answer.headers["allow"], "POST", "{method}");
    }

    let answer = post(addr, "/hook?x=1", &signed(body), body).await;
    assert_eq!(
        answer.status,
        StatusCode::NO_CONTENT,
        "the query is not part of the path"
    );
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn bodies_over_the_limit_are_413() {
    let calls = Calls::default();
    let server = start(config(), Router::new().route("", calls.handler()).unwrap()).await;
    let addr = server.local_addr();
    let mut big = corpus("user_created").to_vec();
    big.resize(1024 * 1024 + 1, b' ');
    let answer = post(addr, "/", &signed(&big), &big).await;
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, "body.too_large\n")
    );

    // Exactly the limit passes (trailing spaces are valid JSON whitespace).
    big.truncate(1024 * 1024);
    let answer = post(addr, "/", &signed(&big), &big).await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT);

    // Chunked, so there is no Content-Length to check first: caught while streaming.
    let chunk = vec![b' '; 600 * 1024];
    let mut bytes = raw_request(
        &[
            "POST / HTTP/1.1",
            "Host: x",
            "Transfer-Encoding: chunked",
            "Content-Type: application/json",
        ],
        b"",
    );
    for _ in 0..2 {
        bytes.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        bytes.extend_from_slice(&chunk);
        bytes.extend_from_slice(b"\r\n");
    }
    bytes.extend_from_slice(b"0\r\n\r\n");
    let response = raw(addr, &bytes).await;
    assert_eq!(status_line(&response), "HTTP/1.1 413 Payload Too Large");
    assert_eq!(raw_body(&response), "body.too_large\n");
    assert_eq!(calls.len(), 1);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn encodings_and_content_types() {
    let calls = Calls::default();
    let server = start(config(), Router::new().route("", calls.handler()).unwrap()).await;
    let addr = server.local_addr();
    let body = corpus("user_created");

    let mut headers = signed(body);
    headers.push(("Content-Encoding".into(), "gzip".into()));
    let answer = post(addr, "/", &headers, body).await;
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (StatusCode::UNSUPPORTED_MEDIA_TYPE, "encoding.unsupported\n")
    );

    let mut headers = signed(body);
    headers.push(("Content-Encoding".into(), "Identity".into()));
    assert_eq!(
        post(addr, "/", &headers, body).await.status,
        StatusCode::NO_CONTENT
    );

    let other = corpus("user_deleted");
    let mut headers = signed(other);
    headers.retain(|(n, _)| n != "Content-Type");
    headers.push(("Content-Type".into(), "text/plain".into()));
    let answer = post(addr, "/", &headers, other).await;
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "content_type.unsupported\n"
        )
    );

    headers.retain(|(n, _)| n != "Content-Type");
    headers.push((
        "Content-Type".into(),
        "Application/JSON; charset=utf-8".into(),
    ));
    assert_eq!(
        post(addr, "/", &headers, other).await.status,
        StatusCode::NO_CONTENT
    );

    let third = corpus("repo_enabled");
    let mut headers = signed(third);
    headers.retain(|(n, _)| n != "Content-Type");
    assert_eq!(
        post(addr, "/", &headers, third).await.status,
        StatusCode::NO_CONTENT,
        "absent is fine"
    );
    assert_eq!(calls.len(), 3);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn transfer_encoding_with_content_length_is_refused() {
    let calls = Calls::default();
    let server = start(config(), Router::new().route("", calls.handler()).unwrap()).await;
    let body = corpus("user_created");
    let headers = signed(body);
    let mut lines = vec!["POST / HTTP/1.1".to_owned(), "Host: x".to_owned()];
    lines.extend(headers.iter().map(|(n, v)| format!("{n}: {v}")));
    lines.push(format!("Content-Length: {}", body.len()));
    lines.push("Transfer-Encoding: chunked".to_owned());
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    let mut chunked = format!("{:x}\r\n", body.len()).into_bytes();
    chunked.extend_from_slice(body);
    chunked.extend_from_slice(b"\r\n0\r\n\r\n");
    let response = raw(server.local_addr(), &raw_request(&lines, &chunked)).await;
    // hyper 1.x accepts the request (chunked wins) and keeps both headers, so the
    // receiver's own check answers, and closes the connection.
    assert_eq!(status_line(&response), "HTTP/1.1 400 Bad Request");
    assert_eq!(raw_body(&response), "transport.malformed\n");
    assert!(response.to_ascii_lowercase().contains("connection: close"));
    assert_eq!(calls.len(), 0);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_handler_error_without_a_journal_is_500_with_its_message() {
    let router = Router::new()
        .route("user:*", |_d: dronehook_server::Delivery| async {
            Err::<(), _>("ticket system down")
        })
        .unwrap();
    let server = start(config(), router).await;
    let body = corpus("user_created");
    let answer = deliver(server.local_addr(), body).await;
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (StatusCode::INTERNAL_SERVER_ERROR, "ticket system down\n")
    );
    // A failed delivery is not remembered as accepted: Drone's retry gets through.
    let answer = deliver(server.local_addr(), body).await;
    assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_panicking_handler_is_a_500_and_the_server_lives_on() {
    let router = Router::new()
        .route("user:created", |_d: dronehook_server::Delivery| async {
            assert!(d_never(), "boom");
            Ok::<(), String>(())
        })
        .unwrap();
    let server = start(config(), router).await;
    let answer = deliver(server.local_addr(), corpus("user_created")).await;
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (StatusCode::INTERNAL_SERVER_ERROR, "the handler panicked\n")
    );
    assert!(
        !answer.body.contains("boom"),
        "no panic text reaches the client"
    );
    assert_eq!(
        deliver(server.local_addr(), corpus("user_deleted"))
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    server.shutdown().await.unwrap();
}

/// False, in a way the compiler cannot see through, so the handler above panics.
fn d_never() -> bool {
    std::hint::black_box(false)
}

#[tokio::test]
async fn each_verification_code_maps_to_its_status() {
    use dronehook_server::protocol::{SignInput, Signer};
    let calls = Calls::default();
    let server = start(config(), Router::new().route("", calls.handler()).unwrap()).await;
    let addr = server.local_addr();
    let body = corpus("repo_disabled");
    let headers_of = |signed: &dronehook_server::protocol::Signed| -> Vec<(String, String)> {
        signed
            .headers("repo")
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect()
    };
    let now = SystemTime::now();

    let without = |name: &str| {
        let mut h = signed(body);
        h.retain(|(n, _)| n != name);
        h
    };
    let odd_date = Signer::new(crate::util::SECRET)
        .sign(&SignInput::new(body, now).date("yesterday"))
        .unwrap();
    let other_key = Signer::new(crate::util::SECRET)
        .key_id("someone")
        .sign(&SignInput::new(body, now))
        .unwrap();
    let date_only = Signer::new(crate::util::SECRET)
        .headers(["date"])
        .sign(&SignInput::new(body, now))
        .unwrap();
    let authorization: Vec<(String, String)> = signed(body)
        .into_iter()
        .map(|(n, v)| {
            if n == "Signature" {
                ("Authorization".to_owned(), format!("Signature {v}"))
            } else {
                (n, v)
            }
        })
        .collect();

    let cases: Vec<(&str, Headers, StatusCode, &str)> = vec![
        (
            "no Digest header",
            without("Digest"),
            StatusCode::UNAUTHORIZED,
            "digest.missing\n",
        ),
        (
            "no Date header",
            without("Date"),
            StatusCode::UNAUTHORIZED,
            "date.missing\n",
        ),
        (
            "a Date that is not a date",
            headers_of(&odd_date),
            StatusCode::BAD_REQUEST,
            "date.malformed\n",
        ),
        (
            "an unknown keyId",
            headers_of(&other_key),
            StatusCode::UNAUTHORIZED,
            "signature.key_id\n",
        ),
        (
            "a signature without digest",
            headers_of(&date_only),
            StatusCode::UNAUTHORIZED,
            "digest.unsigned\n",
        ),
        (
            "the Authorization form",
            authorization,
            StatusCode::NO_CONTENT,
            "",
        ),
    ];
    for (what, headers, status, code) in cases {
        let answer = post(addr, "/", &headers, body).await;
        assert_eq!(
            (answer.status, answer.body.as_str()),
            (status, code),
            "{what}"
        );
        if status == StatusCode::UNAUTHORIZED {
            assert_eq!(answer.headers["www-authenticate"], WWW, "{what}");
        }
    }
    assert_eq!(calls.len(), 1, "only the good request is delivered");
    server.shutdown().await.unwrap();
}
