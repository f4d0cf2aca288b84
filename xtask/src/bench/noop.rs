//! The ceiling: a hyper 1.x HTTP/1.1 server that reads each body whole and answers
//! 204, with nothing else. It runs as its own process (`cargo xtask bench
//! noop-server`) so its memory is measured the same way as `dronehook serve`'s, and
//! with the same runtime shape (two tokio workers, `TCP_NODELAY`, keep-alive).
//!
//! With `--work`, it also runs the protocol's verification (and decoding) on each
//! request and nothing else: the difference between that and `dronehook serve` is
//! what the server crate itself costs.

use std::convert::Infallible;
use std::net::SocketAddr;

use std::sync::Arc;
use std::time::SystemTime;

use anyhow::Context as _;
use bytes::Bytes;
use dronehook_protocol::{Policy, RequestParts};
use http_body_util::{BodyExt as _, Empty};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// What the no-op server does with each request besides reading it.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Work {
    /// Nothing.
    None,
    /// `Policy::verify`.
    Verify,
    /// `Policy::verify_and_check`: what `dronehook serve` does per request.
    VerifyCheck,
    /// `Policy::verify_and_decode`.
    VerifyDecode,
}

/// Serves until the process is killed, printing `listening on http://ADDR/` on
/// stderr once bound.
pub(crate) fn run(bind: &str, work: Work) -> anyhow::Result<()> {
    let addr: SocketAddr = bind
        .parse()
        .with_context(|| format!("invalid --bind {bind:?}"))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding {addr}"))?;
        eprintln!("listening on http://{}/", listener.local_addr()?);
        let policy = Arc::new(Policy::new(super::load::SECRET));
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let policy = policy.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| answer(req, work, policy.clone()));
                let _ = http1::Builder::new()
                    .keep_alive(true)
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    })
}

/// Reads the whole body, does the `work`, then answers 204 No Content (or 401 when
/// verification fails).
async fn answer(
    req: Request<Incoming>,
    work: Work,
    policy: Arc<Policy>,
) -> Result<Response<Empty<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let status = match body.collect().await {
        Ok(body) if work == Work::None => {
            drop(body);
            StatusCode::NO_CONTENT
        }
        Ok(body) => {
            let body = body.to_bytes();
            let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
            let request = RequestParts::new(parts.method.as_str(), target, &parts.headers, &body);
            let now = SystemTime::now();
            let ok = match work {
                Work::None | Work::Verify => policy.verify(&request, now).is_ok(),
                Work::VerifyCheck => policy.verify_and_check(&request, now).is_ok(),
                Work::VerifyDecode => policy.verify_and_decode(&request, now).is_ok(),
            };
            if ok {
                StatusCode::NO_CONTENT
            } else {
                StatusCode::UNAUTHORIZED
            }
        }
        Err(_) => StatusCode::BAD_REQUEST,
    };
    let mut resp = Response::new(Empty::new());
    *resp.status_mut() = status;
    Ok(resp)
}
