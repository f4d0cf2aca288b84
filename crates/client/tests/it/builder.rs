//! The builder refuses unusable settings with a clear message.

use std::time::Duration;

use dronehook_client::{Client, Roots};

use crate::support::SECRET;

fn message(builder: dronehook_client::ClientBuilder) -> String {
    let err = builder.build().unwrap_err();
    assert!(err.is_builder() && !err.is_connect() && !err.is_retryable());
    assert_eq!(err.class(), "builder");
    err.to_string()
}

#[test]
fn bad_settings_are_refused() {
    let ok = || {
        Client::builder()
            .secret(SECRET)
            .endpoint("http://127.0.0.1:9/")
    };
    assert_eq!(
        message(Client::builder().endpoint("http://127.0.0.1:9/")),
        "invalid client settings: no secret given"
    );
    assert_eq!(
        message(Client::builder().secret(SECRET)),
        "invalid client settings: no endpoint given"
    );
    assert_eq!(
        message(ok().endpoint("ftp://example.com/")),
        r#"invalid client settings: endpoint "ftp://example.com/" must start with http:// or https://"#
    );
    assert_eq!(
        message(ok().endpoint("/relative")),
        r#"invalid client settings: endpoint "/relative" must start with http:// or https://"#
    );
    assert!(
        message(ok().endpoint("http://exa mple.com/")).starts_with(
            r#"invalid client settings: endpoint "http://exa mple.com/" is not a URL"#
        )
    );
    assert_eq!(
        message(ok().attempts(0)),
        "invalid client settings: attempts must be at least 1"
    );
    assert_eq!(
        message(ok().timeout(Duration::ZERO)),
        "invalid client settings: the timeout must be longer than zero"
    );
    assert_eq!(
        message(ok().add_root_certificate("not a certificate")),
        "invalid client settings: no certificate found in the PEM text"
    );
    assert_eq!(
        message(ok().roots(Roots::None)),
        "invalid client settings: no trusted root certificate (Roots::None and none added)"
    );
    assert_eq!(
        message(ok().user_agent("bad\nagent")),
        "invalid client settings: the user agent is not a valid header value"
    );
}

#[test]
fn endpoint_lists_split_like_drone() {
    let client = Client::builder()
        .secret(SECRET)
        .endpoint_list(" http://a.example/hook, ,https://b.example/ ,")
        .build()
        .unwrap();
    assert_eq!(
        client.endpoints().collect::<Vec<_>>(),
        ["http://a.example/hook", "https://b.example/"]
    );
    // Clones share one pool and the same settings.
    let clone = client.clone();
    assert_eq!(clone.endpoints().len(), 2);
    assert!(clone.events().is_all());
}

#[test]
fn skip_verify_needs_no_roots() {
    let client = Client::builder()
        .secret(SECRET)
        .endpoint("https://127.0.0.1:9/")
        .roots(Roots::None)
        .skip_verify(true)
        .build();
    assert!(client.is_ok());
}
