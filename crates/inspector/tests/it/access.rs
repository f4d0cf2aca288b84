//! Who gets in: the token rule, the login and its cookie, Bearer tokens, the Host
//! check, CSRF, and the headers every answer carries.

use std::net::SocketAddr;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use dronehook_inspector::{Error, Inspector, MIN_TOKEN_CHARS, NEEDS_TOKEN};
use dronehook_protocol::Secret;

use crate::support::{get, request, start};

#[test]
fn beyond_loopback_a_token_is_required() {
    let err = Inspector::builder(None)
        .addr(SocketAddr::from(([0, 0, 0, 0], 8081)))
        .build()
        .expect_err("no token beyond loopback");
    assert!(matches!(err, Error::NeedsToken));
    assert!(err.is_usage());
    assert_eq!(
        err.to_string(),
        "--ui on a non-loopback address needs --ui-token (or DRONEHOOK_UI_TOKEN)"
    );
    assert_eq!(err.to_string(), NEEDS_TOKEN);

    let err = Inspector::builder(None)
        .addr(SocketAddr::from(([0, 0, 0, 0], 8081)))
        .token(Some(Secret::from("")))
        .build()
        .expect_err("an empty token");
    assert_eq!(err.to_string(), "--ui-token is empty");

    // At least 16 characters, counted as characters (15 two-byte letters are short),
    // on loopback too; the refusal never shows the token.
    for short in ["0123456789abcde", "ééééééééééééééé"] {
        for addr in [[0, 0, 0, 0], [127, 0, 0, 1]] {
            let err = Inspector::builder(None)
                .addr(SocketAddr::from((addr, 8081)))
                .token(Some(Secret::from(short)))
                .build()
                .expect_err("a short token");
            assert!(matches!(err, Error::ShortToken));
            assert!(err.is_usage());
            assert_eq!(
                err.to_string(),
                "--ui-token is too short: give at least 16 characters"
            );
        }
    }
    assert_eq!(MIN_TOKEN_CHARS, 16);
    Inspector::builder(None)
        .addr(SocketAddr::from(([0, 0, 0, 0], 8081)))
        .token(Some(Secret::from("0123456789abcdef")))
        .build()
        .expect("16 characters are enough");

    // With a token it may listen anywhere; on loopback it needs none.
    Inspector::builder(None)
        .addr(SocketAddr::from(([0, 0, 0, 0], 8081)))
        .token(Some(Secret::from("t0ken-of-16-chars")))
        .build()
        .expect("a token beyond loopback");
    Inspector::builder(None)
        .addr(SocketAddr::from(([127, 0, 0, 1], 8081)))
        .build()
        .expect("loopback without a token");
    Inspector::builder(None)
        .addr("[::1]:8081".parse().expect("addr"))
        .build()
        .expect("IPv6 loopback without a token");
}

#[tokio::test]
async fn the_token_buys_a_cookie_and_pages_need_it() {
    let run = start(None, |b| b.token(Some(Secret::from("let-me-in-let-me-in")))).await;

    // Not signed in: every page sends to /login; the assets and /login itself are open.
    for path in [
        "/",
        "/refusals",
        "/events/1",
        "/builds",
        "/failed",
        "/health",
        "/stream",
    ] {
        let a = get(run.ui, path).await;
        assert_eq!(
            (a.status, a.header("location")),
            (303, Some("/login")),
            "{path}"
        );
    }
    assert_eq!(get(run.ui, "/assets/style.css").await.status, 200);
    assert_eq!(get(run.ui, "/assets/live.js").await.status, 200);
    let login = get(run.ui, "/login").await;
    assert_eq!(login.status, 200);
    assert!(
        login
            .body
            .contains(r#"<form id="login" method="post" action="/login">"#)
    );

    // A wrong token: 401 and the form again, no cookie.
    let wrong = request(run.ui, "POST", "/login", &[], "token=nope").await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.header("set-cookie").is_none());
    assert!(wrong.body.contains("That is not the token."));

    // The right one: a cookie that holds no token, then the pages open with it.
    let ok = request(run.ui, "POST", "/login", &[], "token=let-me-in-let-me-in").await;
    assert_eq!((ok.status, ok.header("location")), (303, Some("/")));
    let cookie = ok.header("set-cookie").expect("a cookie").to_owned();
    assert!(cookie.starts_with("dronehook_ui="), "{cookie}");
    assert!(
        cookie.contains("; HttpOnly") && cookie.contains("; SameSite=Strict"),
        "{cookie}"
    );
    assert!(!cookie.contains("let-me-in-let-me-in"), "{cookie}");
    let pair = cookie.split(';').next().expect("name=value");
    let page = request(run.ui, "GET", "/", &[("Cookie", pair)], "").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains(r#"<table id="events">"#));

    // A Bearer token does the same; a wrong one does not.
    let bearer = request(
        run.ui,
        "GET",
        "/refusals",
        &[("Authorization", "Bearer let-me-in-let-me-in")],
        "",
    )
    .await;
    assert_eq!(bearer.status, 200);
    assert!(bearer.body.contains(r#"<table id="refusals">"#));
    // The scheme's name in any case (RFC 9110): the same.
    for scheme in ["bearer", "BEARER", "bEaReR"] {
        let a = request(
            run.ui,
            "GET",
            "/refusals",
            &[("Authorization", &format!("{scheme} let-me-in-let-me-in"))],
            "",
        )
        .await;
        assert_eq!(a.status, 200, "{scheme}");
        assert!(a.body.contains(r#"<table id="refusals">"#), "{scheme}");
    }
    // Another scheme with the right token is not a Bearer token.
    let basic = request(
        run.ui,
        "GET",
        "/refusals",
        &[("Authorization", "Basic let-me-in-let-me-in")],
        "",
    )
    .await;
    assert_eq!(
        (basic.status, basic.header("location")),
        (303, Some("/login"))
    );
    let bad = request(
        run.ui,
        "GET",
        "/refusals",
        &[("Authorization", "Bearer let-me-in-let-me-i")],
        "",
    )
    .await;
    assert_eq!((bad.status, bad.header("location")), (303, Some("/login")));
    // A forged cookie does not.
    let forged = request(
        run.ui,
        "GET",
        "/",
        &[("Cookie", "dronehook_ui=let-me-in-let-me-in")],
        "",
    )
    .await;
    assert_eq!(forged.status, 303);
}

#[tokio::test]
async fn every_answer_carries_the_csp_and_without_a_token_only_loopback_hosts_are_answered() {
    let run = start(None, |b| b).await;
    let page = get(run.ui, "/").await;
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-security-policy"),
        Some("default-src 'self'")
    );
    assert_eq!(page.header("x-frame-options"), Some("DENY"));
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
    // No inline script or style anywhere in a page.
    assert!(!page.body.contains("<script>"), "{}", page.body);
    assert!(!page.body.contains("style="), "{}", page.body);
    assert!(!page.body.contains(" onclick"), "{}", page.body);

    // A page of another site whose name resolves to 127.0.0.1 (DNS rebinding).
    let mut s = tokio::net::TcpStream::connect(run.ui)
        .await
        .expect("connects");
    s.write_all(b"GET / HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n")
        .await
        .expect("writes");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.expect("reads");
    let a = crate::support::parse(&raw);
    assert_eq!(a.status, 421);
    assert_eq!(
        a.body,
        "this inspector answers to a loopback Host only (give it --ui-token to serve other names)\n"
    );
    for host in ["localhost:1", "127.0.0.1", "[::1]:8081"] {
        let mut s = tokio::net::TcpStream::connect(run.ui)
            .await
            .expect("connects");
        s.write_all(
            format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .expect("writes");
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).await.expect("reads");
        assert_eq!(crate::support::parse(&raw).status, 200, "{host}");
    }
}

#[tokio::test]
async fn a_post_without_the_right_csrf_token_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = dronehook_server::StoreUrl::Sqlite(dir.path().join("store.db"));
    let run = start(Some(url), |b| b).await;
    assert!(run.actions);
    for body in ["", "csrf=", "csrf=0000", "endpoint=x"] {
        for path in ["/events/1/redeliver", "/events/1/replay", "/failed/redrive"] {
            let a = request(run.ui, "POST", path, &[], body).await;
            assert_eq!(a.status, 403, "{path} {body:?}");
            assert_eq!(a.body, "csrf token missing or wrong\n", "{path} {body:?}");
        }
    }
    // Without a store there is nothing to act on.
    let bare = start(None, |b| b).await;
    let a = request(bare.ui, "POST", "/events/1/redeliver", &[], "csrf=x").await;
    assert_eq!(
        (a.status, a.body.as_str()),
        (409, "no store: actions are off\n")
    );
    // Methods a route does not take.
    let a = request(run.ui, "POST", "/", &[], "").await;
    assert_eq!((a.status, a.header("allow")), (405, Some("GET, HEAD")));
    assert_eq!(get(run.ui, "/nope").await.status, 404);
    assert_eq!(get(run.ui, "/events/abc").await.status, 404);
}
