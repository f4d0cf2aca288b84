//! `serve --insecure-no-verify` without any secret: a bare receiver that decodes and
//! dispatches requests without checking who sent them.
//!
//! dronehook-server refuses to start without a secret (rightly: it would refuse every
//! request), so this mode is a small hyper loop of its own. It keeps the path, method
//! and body-size rules and hands events to the same handlers, and nothing else: no
//! verification, no replay check, no journal.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use dronehook_protocol::{Envelope, EventFilter};
use dronehook_server::{Delivery, Handler};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

use crate::Outcome;
use crate::output::{self, Painter};

/// What the bare receiver needs.
pub(crate) struct Insecure {
    pub(crate) addr: SocketAddr,
    pub(crate) path: String,
    pub(crate) max_body: usize,
    pub(crate) filter: EventFilter,
    pub(crate) handlers: Vec<(&'static str, Arc<dyn Handler>)>,
    pub(crate) paint: Painter,
}

/// Serves until `stop` completes.
pub(crate) async fn run(
    mut insecure: Insecure,
    stop: impl Future<Output = ()>,
) -> anyhow::Result<Outcome> {
    if !insecure.path.starts_with('/') {
        insecure.path.insert(0, '/');
    }
    let listener = tokio::net::TcpListener::bind(insecure.addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", insecure.addr))?;
    let local = listener.local_addr()?;
    let paint = insecure.paint;
    output::err_line(&paint.bad(
        "WARNING: --insecure-no-verify: requests are NOT verified; anyone who can reach this port can send events",
    ));
    output::err_line(&format!(
        "listening on http://{local}{}  (0 secrets, journal off, replay check off)",
        insecure.path
    ));
    let shared = Arc::new(insecure);
    tokio::pin!(stop);
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                // A failed accept (out of file descriptors, a reset) concerns one
                // client; the listener goes on.
                Err(_) => continue,
            },
            () = &mut stop => return Ok(Outcome::Ok),
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| handle(req, shared.clone()));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn answer(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_owned())));
    *response.status_mut() = status;
    response
}

async fn handle(
    req: Request<Incoming>,
    shared: Arc<Insecure>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.uri().path() != shared.path {
        return Ok(answer(StatusCode::NOT_FOUND, "not_found"));
    }
    if req.method() != Method::POST {
        let mut response = answer(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
        response.headers_mut().insert(
            hyper::header::ALLOW,
            hyper::header::HeaderValue::from_static("POST"),
        );
        return Ok(response);
    }
    let (parts, body) = req.into_parts();
    let Ok(collected) = Limited::new(body, shared.max_body).collect().await else {
        return Ok(answer(StatusCode::PAYLOAD_TOO_LARGE, "body.too_large"));
    };
    let body = collected.to_bytes();
    let decoded = dronehook_protocol::event_header(&parts.headers)
        .and_then(|event| Envelope::decode_with_header(&body, event));
    let envelope = match decoded {
        Ok(envelope) => envelope,
        Err(e) => {
            output::err_line(&format!(
                "{}  400 {}",
                shared.paint.bad("rejected"),
                e.code()
            ));
            return Ok(answer(StatusCode::BAD_REQUEST, e.code()));
        }
    };
    if !shared
        .filter
        .matches(envelope.event.as_str(), envelope.action.as_str())
    {
        return Ok(answer(StatusCode::NO_CONTENT, ""));
    }
    let delivery = Delivery::new(envelope, body, parts.headers, SystemTime::now());
    let mut failures = Vec::new();
    for (name, handler) in &shared.handlers {
        if let Err(e) = handler.call(delivery.clone()).await {
            output::err_line(&format!(
                "{}  {name}: {e}",
                shared.paint.bad("handler failed")
            ));
            failures.push(format!("{name}: {e}"));
        }
    }
    if failures.is_empty() {
        Ok(answer(StatusCode::NO_CONTENT, ""))
    } else {
        Ok(answer(
            StatusCode::INTERNAL_SERVER_ERROR,
            &failures.join("; "),
        ))
    }
}
