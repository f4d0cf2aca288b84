//! The ceiling: a hyper 1.x HTTP/1.1 server that reads each body whole and answers
//! 204, with nothing else. It runs as its own process (`cargo xtask bench
//! noop-server`) so its memory is measured the same way as `dronehook serve`'s, and
//! with the same runtime shape (two tokio workers, `TCP_NODELAY`, keep-alive).

use std::convert::Infallible;
use std::net::SocketAddr;

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// Serves until the process is killed, printing `listening on http://ADDR/` on
/// stderr once bound.
pub(crate) fn run(bind: &str) -> anyhow::Result<()> {
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
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let _ = http1::Builder::new()
                    .keep_alive(true)
                    .serve_connection(TokioIo::new(stream), service_fn(answer))
                    .await;
            });
        }
    })
}

/// Reads the whole body, then answers 204 No Content.
async fn answer(req: Request<Incoming>) -> Result<Response<Empty<Bytes>>, Infallible> {
    let status = match req.into_body().collect().await {
        Ok(_) => StatusCode::NO_CONTENT,
        Err(_) => StatusCode::BAD_REQUEST,
    };
    let mut resp = Response::new(Empty::new());
    *resp.status_mut() = status;
    Ok(resp)
}
