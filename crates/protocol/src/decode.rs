//! Decoding and encoding the envelope: lenient where Drone versions differ, strict
//! where a lenient reading would let two parties see different events.

use std::fmt;

use crate::enums::{Action, Event};
use crate::json::{self, OutlineFields, Record, index_of};
use crate::model::{Build, Envelope, Object, Repo};

/// Where the outline's fields are in the models' tables, for the scanner.
static OUTLINE: OutlineFields = OutlineFields {
    event: index_of(Envelope::FIELDS, "event"),
    action: index_of(Envelope::FIELDS, "action"),
    repo: index_of(Envelope::FIELDS, "repo"),
    build: index_of(Envelope::FIELDS, "build"),
    repo_slug: index_of(Repo::FIELDS, "slug"),
    build_number: index_of(Build::FIELDS, "number"),
    build_status: index_of(Build::FIELDS, "status"),
};

/// Why a body could not be read as a Drone event.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// The body is not a single well-formed JSON object of the expected shape:
    /// a syntax error, invalid UTF-8, a lone surrogate, trailing bytes, nesting too
    /// deep, a number out of range or a value of the wrong type.
    Invalid {
        /// What is wrong.
        message: String,
        /// The 1-based line where it was found (0 when the input ended early).
        line: usize,
        /// The 1-based column where it was found.
        column: usize,
    },
    /// An object of the body, at any depth, has the same key twice (after
    /// unescaping; a field and its alias count as one key). Readers disagree on which
    /// one counts, so such a body means different things to different readers.
    DuplicateKey {
        /// Which key, and where in the model.
        message: String,
        /// The 1-based line where it was found.
        line: usize,
        /// The 1-based column where it was found.
        column: usize,
    },
    /// Neither the body nor the `X-Drone-Event` header names the event.
    EventMissing,
    /// The request has more than one `X-Drone-Event` header: which one names the
    /// event would depend on the reader.
    EventRepeated,
    /// The body's `event` differs from the `X-Drone-Event` header. The header is not
    /// signed and the body is, so a disagreement means someone changed one of them.
    EventMismatch {
        /// The `X-Drone-Event` header.
        header: String,
        /// The body's `event`.
        body: String,
    },
}

impl DecodeError {
    /// A stable short code for logs, responses and scripts.
    pub fn code(&self) -> &'static str {
        match self {
            DecodeError::Invalid { .. } => "payload.invalid",
            DecodeError::DuplicateKey { .. } => "payload.duplicate_key",
            DecodeError::EventMissing => "payload.event_missing",
            DecodeError::EventRepeated => "payload.event_repeated",
            DecodeError::EventMismatch { .. } => "payload.event_mismatch",
        }
    }

    fn from_json(err: &serde_json::Error) -> Self {
        // serde_json's message ends with " at line L column C"; the position is kept
        // in fields of its own, so the message is trimmed to say it once.
        let full = err.to_string();
        let message = match full.rfind(" at line ") {
            Some(i) if err.line() > 0 => full[..i].to_owned(),
            _ => full,
        };
        let (line, column) = (err.line(), err.column());
        // The models' and `json::unique`'s own error for a repeated key; serde_json's
        // messages never start this way.
        if err.is_data() && message.starts_with(json::unique::DUPLICATE) {
            return DecodeError::DuplicateKey {
                message,
                line,
                column,
            };
        }
        DecodeError::Invalid {
            message,
            line,
            column,
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Invalid {
                message,
                line,
                column,
            }
            | DecodeError::DuplicateKey {
                message,
                line,
                column,
            } => {
                write!(
                    f,
                    "the body is not a valid payload: {message} at line {line} column {column}"
                )
            }
            DecodeError::EventMissing => {
                f.write_str("the payload has no `event` and no X-Drone-Event header names one")
            }
            DecodeError::EventRepeated => {
                f.write_str("the request has more than one X-Drone-Event header")
            }
            DecodeError::EventMismatch { header, body } => write!(
                f,
                "the X-Drone-Event header says {header:?} but the signed body says {body:?}"
            ),
        }
    }
}

impl std::error::Error for DecodeError {}

/// What a payload is about: its event and action, and the repository and build it
/// concerns. Enough to route, log and journal a webhook without the whole model.
///
/// [`Envelope::check`] reads it without decoding the payload; [`Outline::of`] reads
/// it off a decoded [`Envelope`]. The two agree on every input.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Outline {
    /// The event: the body's, or the `X-Drone-Event` header's when the body has none.
    pub event: Event,
    /// The action.
    pub action: Action,
    /// The repository's `namespace/name`, when the payload has a repository with one.
    pub repo_slug: Option<String>,
    /// The build number, when the payload has a build.
    pub build_number: Option<i64>,
    /// The build's status as sent (`success`, `failure`, ...), when the payload has a
    /// build.
    pub build_status: Option<String>,
}

impl Outline {
    /// The outline of a decoded envelope.
    pub fn of(envelope: &Envelope) -> Outline {
        Outline {
            event: envelope.event.clone(),
            action: envelope.action.clone(),
            repo_slug: envelope.repo_slug().map(str::to_owned),
            build_number: envelope.build_number(),
            build_status: envelope
                .build
                .as_ref()
                .map(|b| b.status.as_str().to_owned()),
        }
    }

    /// Whether both the event and the action are ones this crate names.
    pub fn is_known(&self) -> bool {
        self.event.is_known() && self.action.is_known()
    }

    /// The name filters match against: `event:action`, or `event` when the action is
    /// empty (Drone's rule).
    pub fn filter_name(&self) -> String {
        crate::filter::filter_name(self.event.as_str(), self.action.as_str())
    }
}

/// The `X-Drone-Event` header of a request: `None` when there is none (or its value is
/// not visible ASCII, as if absent), and [`DecodeError::EventRepeated`] when there are
/// two or more, whatever their values.
///
/// This is the one reading of the header: [`RequestParts::header_event`] and every
/// receiver use it, so that no two of them pick different headers of one request.
///
/// ```
/// use dronehook_protocol::{DecodeError, event_header};
/// use dronehook_protocol::http::{HeaderMap, HeaderValue};
///
/// let mut headers = HeaderMap::new();
/// assert_eq!(event_header(&headers), Ok(None));
/// headers.insert("x-drone-event", HeaderValue::from_static("build"));
/// assert_eq!(event_header(&headers), Ok(Some("build")));
/// headers.append("x-drone-event", HeaderValue::from_static("build"));
/// assert_eq!(event_header(&headers), Err(DecodeError::EventRepeated));
/// ```
///
/// [`RequestParts::header_event`]: crate::RequestParts::header_event
pub fn event_header(headers: &http::HeaderMap) -> Result<Option<&str>, DecodeError> {
    let mut values = headers.get_all("x-drone-event").iter();
    let first = values.next();
    if values.next().is_some() {
        return Err(DecodeError::EventRepeated);
    }
    Ok(first.and_then(|v| v.to_str().ok()))
}

/// The `X-Drone-Event` rule, for the body's `event` (empty when it has none) and the
/// header: `Some` when the header names the event because the body does not, `None`
/// when the body's stands.
///
/// A body without an event needs the header; a body with one must agree with the
/// header when there is one, since the header is not signed and the body is.
fn event_from_header<'h>(
    body_event: &str,
    header: Option<&'h str>,
) -> Result<Option<&'h str>, DecodeError> {
    let header = header.map(str::trim).filter(|h| !h.is_empty());
    match (body_event.is_empty(), header) {
        (true, None) => Err(DecodeError::EventMissing),
        (true, Some(h)) => Ok(Some(h)),
        (false, Some(h)) if h != body_event => Err(DecodeError::EventMismatch {
            header: h.to_owned(),
            body: body_event.to_owned(),
        }),
        (false, _) => Ok(None),
    }
}

impl Envelope {
    /// Checks that a body decodes, without decoding it: see [`Envelope::check_with_header`].
    pub fn check(body: &[u8]) -> Result<Outline, DecodeError> {
        Envelope::check_with_header(body, None)
    }

    /// Checks that a body decodes exactly as [`Envelope::decode_with_header`] would
    /// decode it, and returns its [`Outline`], without building the envelope.
    ///
    /// The same inputs are accepted and rejected, with the same errors: this reads the
    /// body with the models' own rules (types, duplicate keys, `null`, aliases, unknown
    /// fields as JSON values), keeping nothing but the outline: about four times faster
    /// than decoding a Drone build payload. A receiver calls it on the request path and
    /// decodes only when a handler needs the payload.
    ///
    /// ```
    /// use dronehook_protocol::{Envelope, Event};
    ///
    /// let body = br#"{"event":"build","action":"updated","repo":{"slug":"octocat/hello-world"},"build":{"number":42}}"#;
    /// let outline = Envelope::check(body)?;
    /// assert_eq!(outline.event, Event::Build);
    /// assert_eq!(outline.repo_slug.as_deref(), Some("octocat/hello-world"));
    /// assert_eq!(outline.build_number, Some(42));
    /// assert!(Envelope::check(br#"{"event":"build","build":{"number":"42"}}"#).is_err());
    /// # Ok::<(), dronehook_protocol::DecodeError>(())
    /// ```
    pub fn check_with_header(
        body: &[u8],
        header_event: Option<&str>,
    ) -> Result<Outline, DecodeError> {
        // Anything the scanner does not settle (an error, anything unusual, or an
        // escaped string in a field the outline keeps) is decoded in full: the outcome,
        // error message and position included, is then the decoder's by construction.
        let fast = simdutf8::basic::from_utf8(body)
            .ok()
            .and_then(|text| json::scan(text, Envelope::SCHEMA, &OUTLINE));
        let Some(fast) = fast else {
            return Envelope::decode_with_header(body, header_event).map(|e| Outline::of(&e));
        };
        let event = match event_from_header(fast.event, header_event)? {
            Some(header) => Event::parse(header),
            None => Event::parse(fast.event),
        };
        Ok(Outline {
            event,
            action: Action::parse(fast.action),
            repo_slug: (!fast.repo_slug.is_empty()).then(|| fast.repo_slug.to_owned()),
            build_number: fast.build_number,
            // A build object is there exactly when the scanner saw a number for it.
            build_status: fast.build_number.map(|_| fast.build_status.to_owned()),
        })
    }

    /// Decodes a body that names its own event, as every real Drone body does.
    pub fn decode(body: &[u8]) -> Result<Envelope, DecodeError> {
        Envelope::decode_with_header(body, None)
    }

    /// Decodes a body, taking the event from the `X-Drone-Event` header when the body
    /// has none (as in Drone's documentation examples).
    ///
    /// A body whose `event` disagrees with the header is an error: the header is not
    /// covered by Drone's signature and the body is.
    pub fn decode_with_header(
        body: &[u8],
        header_event: Option<&str>,
    ) -> Result<Envelope, DecodeError> {
        Envelope::decode_inner(body, header_event, true)
    }

    /// The decoder, with or without its fast path (`fast: false` is serde alone, for
    /// the tests' comparisons).
    pub(crate) fn decode_inner(
        body: &[u8],
        header_event: Option<&str>,
        fast: bool,
    ) -> Result<Envelope, DecodeError> {
        // Validating the whole body once and parsing it as `&str` is cheaper than
        // letting serde_json validate every string separately (17% of decoding in a
        // profile). Invalid UTF-8 goes through `from_slice` only to get its error,
        // with the position, exactly as before. The SIMD validator is about four times
        // std's on a Drone body; it says only whether the bytes are valid, which is all
        // this needs.
        let parsed = match simdutf8::basic::from_utf8(body) {
            // The schema-directed scanner builds ordinary payloads in about half of
            // serde's time; it declines anything unusual, errors included, which serde
            // then reads.
            Ok(text) => match fast.then(|| json::decode::<Envelope>(text)).flatten() {
                Some(envelope) => Ok(envelope),
                None => serde_json::from_str(text),
            },
            Err(_) => serde_json::from_slice(body),
        };
        let mut envelope: Envelope = parsed.map_err(|e| DecodeError::from_json(&e))?;
        if let Some(header) = event_from_header(envelope.event.as_str(), header_event)? {
            envelope.event = Event::parse(header);
        }
        Ok(envelope)
    }

    /// The exact bytes Drone would send for this envelope: Go `encoding/json` output,
    /// compact, with no trailing newline.
    pub fn encode(&self) -> Vec<u8> {
        // Room for a build payload with a few stages (Drone's are 2 to 4 KB) without
        // growing and copying twice on the way.
        let mut out = Vec::with_capacity(4096);
        self.encode_into(&mut out);
        out
    }

    /// Appends the encoding to a buffer, so a sender can reuse one allocation.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        self.write_object(out);
    }

    /// Whether both the event and the action are ones this crate names.
    pub fn is_known(&self) -> bool {
        self.event.is_known() && self.action.is_known()
    }

    /// The repository's `namespace/name`, when the payload has a repository.
    pub fn repo_slug(&self) -> Option<&str> {
        self.repo
            .as_deref()
            .map(|r| r.slug.as_str())
            .filter(|s| !s.is_empty())
    }

    /// The build number, when the payload has a build.
    pub fn build_number(&self) -> Option<i64> {
        self.build.as_deref().map(|b| b.number)
    }

    /// The name filters match against: `event:action`, or `event` when the action is
    /// empty (Drone's rule).
    pub fn filter_name(&self) -> String {
        crate::filter::filter_name(self.event.as_str(), self.action.as_str())
    }
}

#[cfg(test)]
mod tests {
    //! The scanner against the serde decoder, on the models: it must accept only what
    //! serde accepts, and build what serde builds.

    use super::OUTLINE;
    use crate::json::{self, FastOutline, Record};
    use crate::{DecodeError, Envelope, Outline, samples};

    fn scan(text: &str) -> Option<FastOutline<'_>> {
        json::scan(text, Envelope::SCHEMA, &OUTLINE)
    }

    fn decode(text: &str) -> Option<Envelope> {
        json::decode::<Envelope>(text)
    }

    fn serde(body: &[u8]) -> Result<Envelope, DecodeError> {
        Envelope::decode_inner(body, None, false)
    }

    /// The fast path's outline, checked against the decoder's; panics if it declines.
    fn accepted(name: &str, body: &[u8]) {
        let text = std::str::from_utf8(body).expect("UTF-8");
        let fast = scan(text).unwrap_or_else(|| panic!("{name}: the fast path declined"));
        let decoded = Outline::of(&Envelope::decode(body).expect("decodes"));
        assert_eq!(fast.event, decoded.event.as_str(), "{name}");
        assert_eq!(fast.action, decoded.action.as_str(), "{name}");
        assert_eq!(
            (!fast.repo_slug.is_empty()).then_some(fast.repo_slug),
            decoded.repo_slug.as_deref(),
            "{name}"
        );
        assert_eq!(fast.build_number, decoded.build_number, "{name}");
        assert_eq!(
            fast.build_number.map(|_| fast.build_status),
            decoded.build_status.as_deref(),
            "{name}"
        );
        // The fast decoder takes it too, and builds what serde builds.
        let built = decode(text).unwrap_or_else(|| panic!("{name}: the fast decoder declined"));
        assert_eq!(Ok(built), serde(body), "{name}");
    }

    #[test]
    fn accepts_every_drone_sample() {
        let drone: Vec<_> = samples::all().into_iter().filter(|s| s.drone).collect();
        assert!(drone.len() >= 9, "{} samples", drone.len());
        for sample in drone {
            accepted(sample.name, &sample.body);
        }
    }

    #[test]
    fn accepts_every_corpus_payload_pretty_and_compact() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/corpus");
        let mut count = 0;
        for entry in std::fs::read_dir(dir).expect("fixtures/corpus") {
            let path = entry.expect("entry").path();
            if path.extension().is_none_or(|x| x != "json") {
                continue;
            }
            let name = path.display().to_string();
            let pretty = std::fs::read(&path).expect("read");
            accepted(&name, &pretty);
            // Re-encoded compact, as Drone sends it (the benchmark's body).
            accepted(&name, &Envelope::decode(&pretty).expect("decodes").encode());
            count += 1;
        }
        assert!(count >= 9, "{count} corpus payloads");
    }

    #[test]
    fn reads_the_outline_fields() {
        let body = r#" {"event":"build","action":"updated","user":null,"repo":{"slug":"a/b","build":{"number":9}},"build":{"id":1},"system":{}} "#;
        assert_eq!(
            scan(body),
            Some(FastOutline {
                event: "build",
                action: "updated",
                repo_slug: "a/b",
                build_number: Some(0),
                build_status: "",
            })
        );
        assert_eq!(
            scan(r#"{"build":{"number":-42},"repo":null,"event":null}"#),
            Some(FastOutline {
                build_number: Some(-42),
                ..FastOutline::default()
            })
        );
        assert_eq!(scan(r#"{"build":null}"#), Some(FastOutline::default()));
    }

    #[test]
    fn accepts_what_the_decoder_surely_accepts() {
        let cases = [
            r#"{"event":"user"}"#,
            " \t\r\n{ \t\r\n\"event\" \t\r\n: \t\r\n\"user\" \t\r\n} \t\r\n",
            r#"{ "event" : "build" , "action" : "created" }"#,
            r#"{"event":"build","user":{"avatar_url":"x"}}"#,
            r#"{"event":"build","user":{"id":null,"login":null,"admin":null}}"#,
            r#"{"event":"build","build":{"stages":null,"params":null}}"#,
            r#"{"event":"build","build":{"stages":[],"params":{}}}"#,
            r#"{"event":"build","build":{"params":{"a":"1","b":"2","A":"\n"}}}"#,
            r#"{"event":"build","build":{"params":{"\u0041":"\n"}}}"#,
            r#"{"event":"build","build":{"stages":[{"depends_on":["a","b\"c"],"steps":[{}]}]}}"#,
            r#"{"event":"build","repo":{"link":"\u003c\u003e\u0026\/\b\f\n\r\t\\"}}"#,
            r#"{"event":"build","repo":{"name":"\ud83d\ude00 \uD83D\uDE00"}}"#,
            r#"{"event":"build","repo":{"id":0,"timeout":-1,"counter":999999999999999999}}"#,
            r#"{"event":"build","repo":{"id":-999999999999999999}}"#,
            r#"{"event":"build","x":"s","y":true,"z":false,"n":null,"i":-3,"a":[1,[],{}],"o":{"k":{"k":[null]},"j":1}}"#,
            r#"{"event":"build","x":{"\u0041":"\ud800\udc00"}}"#,
            "{\"event\":\"héllo ü 日本\",\"x\":\"😀\"}",
        ];
        for body in cases {
            accepted(body, body.as_bytes());
        }
    }

    #[test]
    fn declines_the_unusual() {
        let deep = format!(r#"{{"x":{}{}}}"#, "[".repeat(65), "]".repeat(65));
        let many_unknown = format!(
            "{{{}}}",
            (0..9)
                .map(|i| format!(r#""u{i}":1"#))
                .collect::<Vec<_>>()
                .join(",")
        );
        let cases: Vec<String> = [
            // Not one object, or something after it.
            "",
            " ",
            "[]",
            "null",
            "\u{feff}{}",
            r#"{"event":"build"} x"#,
            r#"{"event":"build"}{}"#,
            "{\u{b}}",
            "{\u{a0}}",
            // Structure.
            r#"{"event":"build",}"#,
            r#"{"event":"build""action":"x"}"#,
            r#"{"event" "build"}"#,
            r#"{"event":"build""#,
            r#"{"build":{"stages":[{},]}}"#,
            r#"{"build":{"stages":[null]}}"#,
            r#"{"build":{"stages":{}}}"#,
            r#"{"build":{"params":{"a":null}}}"#,
            r#"{"build":{"params":{"a":1}}}"#,
            r#"{"build":{"params":[]}}"#,
            r#"{"build":{"stages":[{"depends_on":[null]}]}}"#,
            r#"{"build":{"stages":[{"depends_on":["a",]}]}}"#,
            r#"{"build":[]}"#,
            r#"{"build":"x"}"#,
            // Repeated fields, aliases included, and repeated unknown fields.
            r#"{"event":"build","event":"build"}"#,
            r#"{"event":null,"event":"build"}"#,
            r#"{"user":{"avatar":"a","avatar_url":"b"}}"#,
            r#"{"x":1,"x":1}"#,
            // Repeated keys inside unknown objects and string maps, at any depth, and
            // escaped keys that might repeat another.
            r#"{"x":{"a":1,"a":1}}"#,
            r#"{"x":[{"a":1,"b":{"c":[{"d":1,"d":2}]}}]}"#,
            r#"{"x":{"a":1,"\u0061":1}}"#,
            r#"{"x":{"\u0061":1,"b":1}}"#,
            r#"{"build":{"params":{"a":"1","a":"2"}}}"#,
            r#"{"build":{"params":{"a":"1","\u0061":"2"}}}"#,
            r#"{"build":{"stages":[{"labels":{"k":"v","k":"v"}}]}}"#,
            r#"{"x":{"k0":0,"k1":1,"k2":2,"k3":3,"k4":4,"k5":5,"k6":6,"k7":7,"k8":8}}"#,
            // Keys and outline fields with escapes.
            r#"{"\u0065vent":"build"}"#,
            r#"{"x\n":1}"#,
            // Strings.
            "{\"x\":\"a\u{1}b\"}",
            "{\"x\":\"a\tb\"}",
            r#"{"x":"\a"}"#,
            r#"{"x":"\u12"}"#,
            r#"{"x":"\u12g4"}"#,
            r#"{"x":"\ud800"}"#,
            r#"{"x":"\ud800x"}"#,
            r#"{"x":"\ud800\n"}"#,
            r#"{"x":"\ud800\u0041"}"#,
            r#"{"x":"\udc00"}"#,
            r#"{"x":"\udc00\ud800"}"#,
            r#"{"x":"abc"#,
            // Numbers.
            r#"{"repo":{"id":01}}"#,
            r#"{"repo":{"id":00}}"#,
            r#"{"repo":{"id":-0}}"#,
            r#"{"repo":{"id":-}}"#,
            r#"{"repo":{"id":+1}}"#,
            r#"{"repo":{"id":1.0}}"#,
            r#"{"repo":{"id":1e3}}"#,
            r#"{"repo":{"id":1E3}}"#,
            r#"{"repo":{"id":1000000000000000000}}"#,
            r#"{"repo":{"id":9223372036854775807}}"#,
            r#"{"repo":{"id":"1"}}"#,
            r#"{"repo":{"id":true}}"#,
            r#"{"x":1.5}"#,
            r#"{"x":-0}"#,
            r#"{"x":12345678901234567890}"#,
            r#"{"x":[0.1]}"#,
            // Other types.
            r#"{"repo":{"private":"true"}}"#,
            r#"{"repo":{"private":1}}"#,
            r#"{"repo":{"private":tru}}"#,
            r#"{"repo":{"private":nul}}"#,
            r#"{"repo":{"name":1}}"#,
            r#"{"x":undefined}"#,
            r#"{"x":nan}"#,
        ]
        .into_iter()
        .map(str::to_owned)
        .chain([deep, many_unknown])
        .collect();
        for body in &cases {
            assert_eq!(scan(body), None, "{body:?}");
            assert_eq!(decode(body), None, "{body:?}");
        }
        // The outline borrows its fields, so the scan declines them escaped; the
        // decoder unescapes them.
        for body in [
            r#"{"event":"bu\u0069ld"}"#,
            r#"{"event":"build","action":"a\/b"}"#,
            r#"{"event":"repo","repo":{"slug":"a\/b"}}"#,
        ] {
            assert_eq!(scan(body), None, "{body:?}");
            let built = decode(body).expect("the decoder unescapes");
            assert_eq!(Ok(built), serde(body.as_bytes()), "{body:?}");
        }
    }

    #[test]
    fn reads_integers_of_every_length() {
        for len in 1..=18usize {
            for first in 1..=9u8 {
                let digits: String = std::iter::once(char::from(b'0' + first))
                    .chain(
                        (1..len)
                            .map(|i| char::from(b'0' + ((i * 7 + usize::from(first)) % 10) as u8)),
                    )
                    .collect();
                let expected: i64 = digits.parse().expect("digits");
                for sign in ["", "-"] {
                    let body =
                        format!(r#"{{"event":"build","build":{{"number":{sign}{digits}}}}}"#);
                    let number = scan(&body).expect("scans").build_number;
                    let want = if sign.is_empty() { expected } else { -expected };
                    assert_eq!(number, Some(want), "{body}");
                }
            }
        }
    }

    #[test]
    fn decodes_integers_of_every_length() {
        // With 16 bytes and more after the number (the two-load path) and at the end
        // of the body (the general path), both signs, every length the scanner takes.
        let tails = [r#","message":"sixteen bytes and more"}}"#, "}}"];
        for len in 1..=18usize {
            let digits: String = (0..len)
                .map(|i| char::from(b'1' + ((i * 7) % 9) as u8))
                .collect();
            let expected: i64 = digits.parse().expect("digits");
            for sign in ["", "-"] {
                for tail in tails {
                    let body =
                        format!(r#"{{"event":"build","build":{{"number":{sign}{digits}{tail}"#);
                    let built = decode(&body).expect("decodes");
                    let want = if sign.is_empty() { expected } else { -expected };
                    assert_eq!(built.build.as_ref().map(|b| b.number), Some(want), "{body}");
                    assert_eq!(Ok(built), serde(body.as_bytes()), "{body}");
                }
            }
        }
        // What serde_json does not read as an `i64` is declined on both paths.
        for number in [
            "0",
            "-0",
            "01",
            "-01",
            "00",
            "1.5",
            "1e3",
            "1E3",
            "-",
            "--1",
            "1234567890123456789",
        ] {
            for tail in tails {
                let body = format!(r#"{{"event":"build","build":{{"number":{number}{tail}"#);
                let serde = serde(body.as_bytes());
                match decode(&body) {
                    Some(built) => assert_eq!(Ok(built), serde, "{body}"),
                    None => assert!(number != "0", "{body}"),
                }
            }
        }
    }
}
