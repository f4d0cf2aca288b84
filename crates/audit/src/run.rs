//! Running cases against a receiver: every copy of a case sent through an
//! [`Exchange`] (concurrently for a concurrent replay), each answer compared with what
//! the catalog expects for that copy.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use crate::catalog::{Case, ServerOutcome};
use crate::raw;
use crate::render::RenderContext;

/// Sends one rendered request to the receiver on a connection of its own and says
/// what it was answered. [`run_case`] calls it from several threads at once for a
/// concurrent replay.
pub trait Exchange: Sync {
    /// Sends `request` (for a pipelined case, `answers` requests back to back) on a
    /// new connection and reads `answers` answers from it, in order.
    fn exchange(&self, request: &[u8], answers: usize) -> Vec<Answer>;
}

/// A plain-TCP receiver, reached with the blocking [`raw::exchange_pipelined`].
#[derive(Clone, Copy, Debug)]
pub struct Tcp {
    /// The receiver's address.
    pub addr: SocketAddr,
    /// How long one request may take, from connecting to the end of the answer.
    pub timeout: Duration,
}

impl Exchange for Tcp {
    fn exchange(&self, request: &[u8], answers: usize) -> Vec<Answer> {
        raw::exchange_pipelined(self.addr, request, answers, self.timeout)
            .into_iter()
            .map(Answer::from_result)
            .collect()
    }
}

/// What one copy of a request was answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// A response: its status and code (the first line of its body).
    Response {
        /// The HTTP status.
        status: u16,
        /// The code; empty for an empty body.
        code: String,
    },
    /// The connection was closed (or reset) by the receiver before an answer.
    Closed,
    /// No response, and why.
    Error(String),
}

impl Answer {
    /// Whether this is the expected outcome.
    pub fn matches(&self, expected: &ServerOutcome) -> bool {
        match self {
            Answer::Response { status, code } => expected.matches_code(*status, code),
            Answer::Closed => expected.is_closed_or_4xx(),
            Answer::Error(_) => false,
        }
    }

    /// An answer as a reader of the connection saw it: a response, the connection
    /// closed or reset before any answer, or another failure.
    pub fn from_result(result: Result<raw::Response, raw::ExchangeError>) -> Answer {
        use raw::{ExchangeError, ResponseError};
        match result {
            Ok(response) => Answer::Response {
                status: response.status,
                code: response.code().to_owned(),
            },
            Err(ExchangeError::Response(ResponseError::Closed)) => Answer::Closed,
            Err(e) => Answer::Error(e.to_string()),
        }
    }
}

impl fmt::Display for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Answer::Response { status, code } if code.is_empty() => write!(f, "{status}"),
            Answer::Response { status, code } => write!(f, "{status} {code}"),
            Answer::Closed => f.write_str("closed"),
            Answer::Error(e) => write!(f, "error: {e}"),
        }
    }
}

/// One case's result: the answer to each copy sent.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Run {
    /// The case.
    pub case: Case,
    /// What each copy was answered, in the order the copies were rendered.
    pub answers: Vec<Answer>,
}

impl Run {
    /// A result.
    pub fn new(case: Case, answers: Vec<Answer>) -> Self {
        Run { case, answers }
    }

    /// Whether every copy got the answer expected for it.
    pub fn passed(&self) -> bool {
        self.answers
            .iter()
            .enumerate()
            .all(|(i, a)| a.matches(&self.case.expected_for_copy(i)))
    }

    /// The expected outcome in one cell: `401 digest.mismatch`, `204 x50`,
    /// `204, then 404 not_found`.
    pub fn expected(&self) -> String {
        let copies = self.answers.len();
        let first = self.case.expected_for_copy(0);
        if copies <= 1 {
            return first.to_string();
        }
        let later = self.case.expected_for_copy(1);
        if later == first {
            format!("{first} x{copies}")
        } else if copies == 2 {
            format!("{first}, then {later}")
        } else {
            format!("{first}, then {later} x{}", copies - 1)
        }
    }

    /// What was answered, runs of equal answers counted: `204 x49, 500 x1`.
    pub fn got(&self) -> String {
        summarize(&self.answers)
    }
}

fn summarize(answers: &[Answer]) -> String {
    if let [only] = answers {
        return only.to_string();
    }
    let mut runs: Vec<(&Answer, usize)> = Vec::new();
    for a in answers {
        match runs.last_mut() {
            Some((last, n)) if *last == a => *n += 1,
            _ => runs.push((a, 1)),
        }
    }
    if let [(first, n)] = runs.as_slice() {
        return format!("{first} x{n}");
    }
    runs.iter()
        .map(|(a, n)| {
            if *n == 1 {
                a.to_string()
            } else {
                format!("{a} x{n}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Renders every copy of `case` with `ctx` and sends them: one after the other, or
/// all at once (one thread each) for a concurrent replay. A pipelined case is one
/// connection with one answer per request.
pub fn run_case<E: Exchange + ?Sized>(case: Case, ctx: &RenderContext, exchange: &E) -> Run {
    let copies = case.render_copies(ctx);
    let per = case.answers_per_connection();
    let concurrent = case.replay.as_ref().is_some_and(|r| r.concurrent);
    let answers = if concurrent {
        std::thread::scope(|scope| {
            let sent: Vec<_> = copies
                .iter()
                .map(|request| scope.spawn(move || exchange.exchange(request, per)))
                .collect();
            sent.into_iter()
                .flat_map(|h| {
                    h.join().unwrap_or_else(|_| {
                        vec![Answer::Error("the sender thread panicked".into()); per]
                    })
                })
                .collect()
        })
    } else {
        copies
            .iter()
            .flat_map(|r| exchange.exchange(r, per))
            .collect()
    };
    Run { case, answers }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::Mutex;
    use std::time::UNIX_EPOCH;

    use super::*;

    fn ok(status: u16, code: &str) -> Answer {
        Answer::Response {
            status,
            code: code.into(),
        }
    }

    #[test]
    fn answers_are_summarized_in_runs() {
        assert_eq!(
            summarize(&[ok(401, "digest.mismatch")]),
            "401 digest.mismatch"
        );
        assert_eq!(summarize(&[ok(204, ""), ok(204, "")]), "204 x2");
        assert_eq!(
            summarize(&[ok(204, ""), ok(204, ""), ok(500, "handler.failed")]),
            "204 x2, 500 handler.failed"
        );
        assert_eq!(
            summarize(&[Answer::Error("connection reset".into())]),
            "error: connection reset"
        );
    }

    #[test]
    fn expectations_read_as_cells() {
        let run = |name: &str, copies: usize| Run {
            case: crate::get(name).unwrap(),
            answers: vec![ok(204, ""); copies],
        };
        assert_eq!(run("digest_md5", 1).expected(), "401 digest.weak");
        assert_eq!(run("replay_50_at_once", 50).expected(), "204 x50");
        assert_eq!(
            run("replay_other_path", 2).expected(),
            "204, then 404 not_found"
        );
        assert!(run("replay_exact", 2).passed());
        assert!(!run("replay_other_path", 2).passed());
    }

    #[test]
    fn closed_connections_match_only_a_closed_or_4xx_expectation() {
        let preface = crate::get("transport_http2_preface").unwrap();
        assert_eq!(preface.server, ServerOutcome::CLOSED_OR_4XX);
        let run = |answer: Answer| Run::new(preface.clone(), vec![answer]);
        assert!(run(Answer::Closed).passed());
        assert!(run(ok(400, "transport.malformed")).passed());
        assert!(!run(ok(505, "")).passed());
        assert!(!run(ok(204, "")).passed());
        assert!(!run(Answer::Error("no answer within 30s".into())).passed());
        assert_eq!(run(Answer::Closed).expected(), "closed or 4xx");
        assert_eq!(run(Answer::Closed).got(), "closed");
        // Elsewhere a closed connection is a failure.
        let valid = Run::new(crate::get("signature_valid").unwrap(), vec![Answer::Closed]);
        assert!(!valid.passed());
        let closed = raw::ExchangeError::Response(raw::ResponseError::Closed);
        assert_eq!(Answer::from_result(Err(closed)), Answer::Closed);
        let reset = io::Error::from(io::ErrorKind::ConnectionReset);
        assert_eq!(
            Answer::from_result(Err(raw::ExchangeError::Read(reset))),
            Answer::Error("the connection failed before an answer: connection reset".into())
        );
    }

    #[test]
    fn a_pipelined_case_is_one_connection_with_an_answer_per_request() {
        let ctx = RenderContext::new("s", UNIX_EPOCH + Duration::from_secs(1_700_000_000));
        let case = crate::get("transport_pipelined_forgery").unwrap();
        let exchange = FirstOnly(Mutex::new(Vec::new()));
        let run = run_case(case, &ctx, &exchange);
        let sent = exchange.0.lock().unwrap();
        assert_eq!(sent.len(), 1, "one connection");
        let text = String::from_utf8_lossy(&sent[0]);
        assert_eq!(text.matches("POST / HTTP/1.1\r\n").count(), 2, "{text}");
        assert_eq!(text.matches("Connection: close\r\n").count(), 1, "{text}");
        assert_eq!(run.answers.len(), 2);
        assert_eq!(run.expected(), "204, then 401 digest.mismatch");
        assert!(!run.passed(), "{}", run.got());
        assert!(
            Run::new(
                run.case.clone(),
                vec![ok(204, ""), ok(401, "digest.mismatch")]
            )
            .passed()
        );
        assert!(
            !Run::new(
                run.case.clone(),
                vec![ok(401, "digest.mismatch"), ok(204, "")]
            )
            .passed()
        );
    }

    /// Answers 204 to the first request it sees and 409 to every later one.
    struct FirstOnly(Mutex<Vec<Vec<u8>>>);

    impl Exchange for FirstOnly {
        fn exchange(&self, request: &[u8], answers: usize) -> Vec<Answer> {
            let mut seen = self.0.lock().unwrap();
            seen.push(request.to_vec());
            let answer = if seen.len() == 1 {
                ok(204, "")
            } else {
                ok(409, "replay")
            };
            vec![answer; answers]
        }
    }

    #[test]
    fn every_copy_is_sent_and_judged() {
        let ctx = RenderContext::new("s", UNIX_EPOCH + Duration::from_secs(1_700_000_000));
        let exchange = FirstOnly(Mutex::new(Vec::new()));
        let run = run_case(crate::get("replay_50_at_once").unwrap(), &ctx, &exchange);
        assert_eq!(run.answers.len(), 50);
        assert_eq!(exchange.0.lock().unwrap().len(), 50);
        let accepted = run.answers.iter().filter(|a| **a == ok(204, "")).count();
        assert_eq!(accepted, 1, "{}", run.got());
        assert!(!run.passed());

        let exchange = FirstOnly(Mutex::new(Vec::new()));
        let run = run_case(crate::get("signature_valid").unwrap(), &ctx, &exchange);
        assert!(run.passed());
        assert_eq!(run.expected(), "204");
    }
}
