//! Criterion benchmarks of the protocol's hot paths: what a receiver does per request
//! (verify + decode), what a sender does per request (encode + sign), header parsing,
//! and how verify + decode grows with the body (1 KB, 64 KB, 1 MB).

// criterion's `criterion_group!` generates a public function with no doc comment.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::{Duration, UNIX_EPOCH};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use dronehook_protocol::http::{HeaderMap, HeaderValue};
use dronehook_protocol::{
    BodyDigest, Envelope, Extra, Policy, RequestParts, SignInput, SignatureParams, Signer,
};

/// The corpus `build_success.json` capture, re-encoded compact as Drone sends it.
fn corpus_body() -> Vec<u8> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fixtures/corpus/build_success.json"
    );
    let pretty = std::fs::read(path).expect("fixtures/corpus/build_success.json");
    Envelope::decode(&pretty)
        .expect("the capture decodes")
        .encode()
}

fn signed_headers(body: &[u8], secret: &str) -> HeaderMap {
    let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let signed = Signer::new(secret)
        .sign(&SignInput::new(body, now))
        .expect("sign");
    let mut headers = HeaderMap::new();
    let event = Envelope::decode(body).expect("decode").event;
    for (name, value) in signed.headers(event.as_str()) {
        headers.insert(name, HeaderValue::from_str(value).expect("header"));
    }
    headers
}

/// A body of about `size` bytes: the corpus payload with an unknown field padding it out.
fn body_of_size(size: usize) -> Vec<u8> {
    let mut e = Envelope::decode(&corpus_body()).expect("decode");
    let base = e.encode().len();
    let pad = size.saturating_sub(base + 12);
    let mut extra = Extra::default();
    extra.insert("padding", serde_json::Value::String("x".repeat(pad)));
    e.extra = extra;
    e.encode()
}

fn benches(c: &mut Criterion) {
    let secret = "bench-secret";
    let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let body = corpus_body();
    let headers = signed_headers(&body, secret);
    let policy = Policy::new(secret);
    let envelope = Envelope::decode(&body).expect("decode");
    let signer = Signer::new(secret);

    let mut g = c.benchmark_group("protocol");
    g.throughput(Throughput::Bytes(body.len() as u64));
    g.bench_function("verify_decode", |b| {
        b.iter(|| {
            let req = RequestParts::new("POST", "/", &headers, black_box(&body));
            black_box(policy.verify_and_decode(&req, now).expect("valid"))
        });
    });
    // The receiver's request path: the signature verified and the body checked to
    // decode (same acceptance as decoding), the outline read, no model built.
    g.bench_function("verify_check", |b| {
        b.iter(|| {
            let req = RequestParts::new("POST", "/", &headers, black_box(&body));
            black_box(policy.verify_and_check(&req, now).expect("valid"))
        });
    });
    g.bench_function("verify", |b| {
        b.iter(|| {
            let req = RequestParts::new("POST", "/", &headers, black_box(&body));
            black_box(policy.verify(&req, now).expect("valid"))
        });
    });
    g.bench_function("check", |b| {
        b.iter(|| black_box(Envelope::check(black_box(&body)).expect("check")));
    });
    g.bench_function("encode_sign", |b| {
        let mut buf = Vec::with_capacity(body.len());
        b.iter(|| {
            buf.clear();
            black_box(&envelope).encode_into(&mut buf);
            black_box(signer.sign(&SignInput::new(&buf, now)).expect("sign"))
        });
    });
    g.bench_function("decode", |b| {
        b.iter(|| black_box(Envelope::decode(black_box(&body)).expect("decode")));
    });
    // Baselines in the same run, so the numbers can be read as ratios on a noisy
    // machine: serde_json parsing the same bytes into its own `Value`, and skipping them.
    g.bench_function("baseline_serde_json_value", |b| {
        b.iter(|| {
            black_box(serde_json::from_slice::<serde_json::Value>(black_box(&body)).expect("json"))
        });
    });
    g.bench_function("baseline_serde_json_ignored", |b| {
        b.iter(|| {
            black_box(
                serde_json::from_slice::<serde::de::IgnoredAny>(black_box(&body)).expect("json"),
            )
        });
    });
    // The SHA-256 of the body, which both verifying and signing compute: the part of
    // the targets that is the hardware's (SHA-NI), and a gauge of how fast the machine
    // runs in this period.
    g.bench_function("baseline_sha256", |b| {
        b.iter(|| black_box(BodyDigest::of(black_box(&body))));
    });
    g.bench_function("encode", |b| {
        b.iter(|| black_box(black_box(&envelope).encode()));
    });
    let header = headers["signature"].to_str().expect("ascii").to_owned();
    g.bench_function("parse_signature_header", |b| {
        b.iter(|| black_box(SignatureParams::parse(black_box(&header)).expect("parse")));
    });
    g.finish();

    let mut g = c.benchmark_group("verify_decode_by_size");
    for size in [1 << 10, 64 << 10, 1 << 20] {
        let body = if size < body.len() {
            small_body()
        } else {
            body_of_size(size)
        };
        let headers = signed_headers(&body, secret);
        g.throughput(Throughput::Bytes(body.len() as u64));
        g.bench_with_input(BenchmarkId::from_parameter(body.len()), &body, |b, body| {
            b.iter(|| {
                let req = RequestParts::new("POST", "/", &headers, black_box(body));
                black_box(policy.verify_and_decode(&req, now).expect("valid"))
            });
        });
    }
    g.finish();
}

/// A 1 KB body: a repository event padded to size.
fn small_body() -> Vec<u8> {
    let mut e = Envelope::decode(
        &std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../fixtures/corpus/repo_disabled.json"
        ))
        .expect("fixtures/corpus/repo_disabled.json"),
    )
    .expect("decode");
    let base = e.encode().len();
    let mut extra = Extra::default();
    extra.insert(
        "padding",
        serde_json::Value::String("x".repeat(1024usize.saturating_sub(base + 12))),
    );
    e.extra = extra;
    e.encode()
}

criterion_group! {
    name = protocol;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = benches
}
criterion_main!(protocol);
