//! The library path: `dronehook-client` signs and sends each payload byte for byte to a
//! `dronehook-server` on 127.0.0.1, whose handler must receive the same bytes and the
//! same typed event the protocol crate decodes.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context as _, Result};
use dronehook_client::{Client, Payload};
use dronehook_protocol::{Envelope, Policy};
use dronehook_server::{Config, Delivery, Router, Server};
use tokio::sync::mpsc;

use super::{Case, Row, event_action, expected_delivery, paths};
use crate::fixtures::SECRET;

/// Runs every case through one client and one server.
pub(crate) fn client_server(cases: &[Case]) -> Vec<Row> {
    let expected = |c: &Case| format!("204, delivered: {}", expected_delivery(c));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            let why = format!("no tokio runtime: {e}");
            return cases
                .iter()
                .map(|c| Row::unavailable(&c.name, paths::CLIENT_SERVER, expected(c), &why))
                .collect();
        }
    };
    runtime.block_on(async {
        let (tx, mut rx) = mpsc::unbounded_channel::<Delivery>();
        // Replay protection is off so that two fixtures with equal bytes would both be
        // delivered; unknown events reach the handler too, so nothing is held back.
        let config = Config::builder(Policy::new(SECRET))
            .addr(SocketAddr::from(([127, 0, 0, 1], 0)))
            .replay_protection(false)
            .build();
        let router = Router::new()
            .fallback(move |d: Delivery| {
                let tx = tx.clone();
                async move {
                    tx.send(d)
                        .map_err(|_| "the conformance runner stopped listening")
                }
            })
            .unknown_events(true);
        let server = match Server::bind(config, router).await {
            Ok(server) => server,
            Err(e) => {
                let why = format!("the server did not start: {e}");
                return cases
                    .iter()
                    .map(|c| Row::unavailable(&c.name, paths::CLIENT_SERVER, expected(c), &why))
                    .collect();
            }
        };
        let url = format!("http://{}/", server.local_addr());
        let client = match Client::builder()
            .secret(SECRET)
            .endpoint(&url)
            .attempts(1)
            .timeout(Duration::from_secs(60))
            .build()
        {
            Ok(client) => client,
            Err(e) => {
                let why = format!("the client did not build: {e}");
                return cases
                    .iter()
                    .map(|c| Row::unavailable(&c.name, paths::CLIENT_SERVER, expected(c), &why))
                    .collect();
            }
        };
        let mut rows = Vec::new();
        for case in cases {
            let got = one(&client, &mut rx, case)
                .await
                .unwrap_or_else(|e| format!("error: {e:#}"));
            rows.push(Row::ran(
                &case.name,
                paths::CLIENT_SERVER,
                expected(case),
                got,
            ));
        }
        let _ = server.shutdown().await;
        rows
    })
}

async fn one(
    client: &Client,
    rx: &mut mpsc::UnboundedReceiver<Delivery>,
    case: &Case,
) -> Result<String> {
    let report = client
        .send(Payload::captured(
            case.body.clone(),
            case.header_event.clone(),
        ))
        .await;
    let delivery = report
        .endpoints
        .first()
        .context("the client made no delivery")?;
    let status = delivery
        .status
        .map_or_else(|| "no response".to_owned(), |s| s.as_u16().to_string());
    if let Some(err) = &delivery.error {
        return Ok(format!("{status}, not delivered: {} ({err})", err.class()));
    }
    let Ok(Some(delivered)) = tokio::time::timeout(Duration::from_secs(30), rx.recv()).await else {
        return Ok(format!("{status}, but the handler got nothing within 30s"));
    };
    let mut got = format!("{status}, delivered: {}", event_action(&delivered.envelope));
    if delivered.body[..] != case.body[..] {
        got.push_str(", but other bytes");
    }
    match Envelope::decode_with_header(&case.body, Some(&case.header_event)) {
        Ok(want) if want == *delivered.envelope => {}
        _ => got.push_str(", but another envelope than the protocol decodes"),
    }
    Ok(got)
}
