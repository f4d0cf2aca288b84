//! The catalog's table: every case as data, built from a Drone-identical request
//! with one thing changed.

use crate::catalog::{
    Carrier, Case, Connection, Damage, DateSpec, DigestSpec, Framing, Group, Key, NONCE_MARKER,
    Pipelined, Replay, ServerOutcome, Sign, Template, Value, VerifyOutcome,
};
use dronehook_protocol::samples;

/// The default server limit on bodies (`dronehook serve --max-body`, 1 MiB).
const LIMIT: usize = 1024 * 1024;

/// A body forged under a captured header set: another user event.
const FORGED: &[u8] = br#"{"event":"user","action":"deleted","user":{"id":1,"login":"octocat","email":"octocat@github.com","machine":false,"admin":true,"active":true,"avatar":"","syncing":false,"synced":0,"created":0,"updated":0,"last_login":0}}"#;

/// HTTP/2's connection preface for a client with prior knowledge (RFC 9113, 3.4),
/// then an empty SETTINGS frame, as an h2c client opens a connection.
const HTTP2_PREFACE: &[u8] =
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

/// What Drone's reference receiver answers when it accepts.
const REF_ACCEPTS: &str = "204: accepted and delivered";

/// A sample's body with a marker that makes it unique per case and per run: the
/// `system.version` text, which no receiver acts on, carries the case name and the
/// nonce.
fn body_of(sample: &str, case: &str) -> Vec<u8> {
    let body = samples::get(sample).map(|s| s.body).unwrap_or_default();
    let text = String::from_utf8(body).unwrap_or_default();
    let tagged = text.replacen(
        "\"version\":\"2.4.0\"}",
        &format!("\"version\":\"2.4.0+hostile.{case}.{NONCE_MARKER}\"}}"),
        1,
    );
    tagged.into_bytes()
}

/// A Drone-identical request (user created, signed as Drone signs), expected to be
/// accepted; each case changes one thing.
fn base(name: &'static str, group: Group, summary: &'static str) -> Case {
    Case {
        name,
        group,
        summary,
        server: ServerOutcome::new(204, ""),
        verify: VerifyOutcome::Valid,
        reference: REF_ACCEPTS,
        request: Template {
            method: "POST",
            target: "",
            headers: vec![
                ("X-Drone-Event", Value::Text("user".into())),
                ("Content-Type", Value::Text("application/json".into())),
                ("Digest", Value::Digest(DigestSpec::Sha256)),
                ("Date", Value::Date(DateSpec::Offset(0))),
            ],
            body: body_of("user_created", name),
            sign: Some(Sign::drone()),
            damage: Vec::new(),
            framing: Framing::ContentLength,
        },
        replay: None,
        connection: Connection::Single,
    }
}

impl Case {
    /// Expects this status and code from the server, and the same code (or `valid`
    /// for a 2xx) from `dronehook verify`.
    fn expect(mut self, status: u16, code: &'static str) -> Self {
        self.server = ServerOutcome::new(status, code);
        self.verify = if (200..300).contains(&status) {
            VerifyOutcome::Valid
        } else {
            VerifyOutcome::Code(code)
        };
        self
    }

    /// Expects the connection closed without an answer, or a 4xx; `dronehook verify`
    /// does not apply.
    fn closed_or_4xx(mut self) -> Self {
        self.server = ServerOutcome::CLOSED_OR_4XX;
        self.verify = VerifyOutcome::NotApplicable;
        self
    }

    fn connection(mut self, connection: Connection) -> Self {
        self.connection = connection;
        self
    }

    /// Marks the case as about transport only: `dronehook verify` does not apply.
    fn transport(mut self) -> Self {
        self.verify = VerifyOutcome::NotApplicable;
        self
    }

    fn reference(mut self, text: &'static str) -> Self {
        self.reference = text;
        self
    }

    /// Replaces the first header with this name (or removes it with `None`).
    fn header(mut self, name: &'static str, value: Option<Value>) -> Self {
        let headers = &mut self.request.headers;
        let at = headers
            .iter()
            .position(|(n, _)| n.eq_ignore_ascii_case(name));
        match (at, value) {
            (Some(i), Some(v)) => headers[i].1 = v,
            (Some(i), None) => {
                headers.remove(i);
            }
            (None, Some(v)) => headers.push((name, v)),
            (None, None) => {}
        }
        self
    }

    /// Adds a header line after the last one with the same name (or at the end).
    fn also(mut self, name: &'static str, value: Value) -> Self {
        let headers = &mut self.request.headers;
        let at = headers
            .iter()
            .rposition(|(n, _)| n.eq_ignore_ascii_case(name))
            .map_or(headers.len(), |i| i + 1);
        headers.insert(at, (name, value));
        self
    }

    fn text(self, name: &'static str, value: &str) -> Self {
        self.header(name, Some(Value::Text(value.into())))
    }

    fn date(self, spec: DateSpec) -> Self {
        self.header("Date", Some(Value::Date(spec)))
    }

    fn digest(self, spec: DigestSpec) -> Self {
        self.header("Digest", Some(Value::Digest(spec)))
    }

    fn sign(mut self, edit: impl FnOnce(&mut Sign)) -> Self {
        if let Some(sign) = &mut self.request.sign {
            edit(sign);
        }
        self
    }

    fn unsigned(mut self) -> Self {
        self.request.sign = None;
        self
    }

    fn damage(mut self, damage: Damage) -> Self {
        self.request.damage.push(damage);
        self
    }

    fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.request.body = body.into();
        self
    }

    fn method(mut self, method: &'static str) -> Self {
        self.request.method = method;
        self
    }

    fn framing(mut self, framing: Framing) -> Self {
        self.request.framing = framing;
        self
    }

    /// Adds this many `X-Pad: x` header lines after the others.
    fn padded(mut self, lines: usize) -> Self {
        let pad = Value::Text("x".into());
        self.request
            .headers
            .extend(std::iter::repeat_n(("X-Pad", pad), lines));
        self
    }

    fn replay(mut self, replay: Replay) -> Self {
        self.replay = Some(replay);
        self
    }
}

fn group(cases: &mut Vec<Case>, group: Group, list: impl IntoIterator<Item = Case>) {
    for case in list {
        debug_assert_eq!(case.group, group);
        cases.push(case);
    }
}

/// Every case, grouped.
pub(crate) fn all() -> Vec<Case> {
    let mut cases = Vec::with_capacity(80);
    group(&mut cases, Group::Signature, signature());
    group(&mut cases, Group::KeyId, key_id());
    group(&mut cases, Group::Algorithm, algorithm());
    group(&mut cases, Group::Headers, headers());
    group(&mut cases, Group::Date, date());
    group(&mut cases, Group::Digest, digest());
    group(&mut cases, Group::Replay, replay());
    group(&mut cases, Group::Transport, transport());
    group(&mut cases, Group::Body, body());
    cases
}

fn signature() -> Vec<Case> {
    let g = Group::Signature;
    let long_key = format!("keyId=\"hmac-key{}\"", "k".repeat(8 * 1024));
    vec![
        base(
            "signature_valid",
            g,
            "A request exactly as Drone sends it: the baseline every receiver must accept.",
        ),
        base("signature_missing", g, "No Signature and no Authorization header.")
            .unsigned()
            .expect(401, "signature.missing")
            .reference("400 Invalid or Missing Signature"),
        base("signature_empty", g, "A Signature header with an empty value.")
            .unsigned()
            .text("Signature", "")
            .expect(400, "signature.malformed")
            .reference("400 Invalid or Missing Signature"),
        base(
            "signature_wrong_secret",
            g,
            "Signed correctly, but with a secret other than the receiver's.",
        )
        .sign(|s| s.secret = Key::Wrong)
        .expect(401, "signature.invalid")
        .reference("400 Invalid Signature"),
        base(
            "signature_not_base64",
            g,
            "The `signature` parameter is not base64.",
        )
        .damage(Damage::SignatureValue("not*base64!"))
        .expect(400, "signature.malformed")
        .reference("400 Invalid Signature"),
        base(
            "signature_authorization_form",
            g,
            "The parameters in `Authorization: Signature ...` instead of `Signature` (the draft's other form).",
        )
        .sign(|s| s.carrier = Carrier::Authorization),
        base(
            "signature_and_authorization",
            g,
            "Both a Signature header and an `Authorization: Signature` header: which one counts is ambiguous.",
        )
        .damage(Damage::CopyToAuthorization)
        .expect(400, "signature.malformed")
        .reference("204: reads Signature and ignores Authorization"),
        base(
            "signature_docs_authorization",
            g,
            "The example request of Drone's documentation: `Authorization: hmac-key\",algorithm=...` (no `Signature keyId=\"` prefix).",
        )
        .sign(|s| s.carrier = Carrier::Authorization)
        .damage(Damage::ReplaceInSignature("Signature keyId=\"", String::new()))
        .expect(400, "signature.malformed")
        .reference("400 Invalid or Missing Signature (no keyId)"),
        base(
            "signature_twice",
            g,
            "The same Signature header sent twice.",
        )
        .damage(Damage::SignatureTwice)
        .expect(400, "signature.malformed")
        .reference("204: uses the first one"),
        base(
            "signature_duplicate_parameter",
            g,
            "`keyId` given twice in one header.",
        )
        .damage(Damage::AppendToSignature(",keyId=\"attacker\"".into()))
        .expect(400, "signature.malformed")
        .reference("204: the last keyId wins, and keyId is never checked"),
        base(
            "signature_unterminated_quote",
            g,
            "The last parameter's closing quote is missing.",
        )
        .damage(Damage::TruncateSignature(1))
        .expect(400, "signature.malformed")
        .reference("400 Invalid Signature (its regex skips the unterminated `headers`, so `date` is not listed)"),
        base(
            "signature_junk_between_parameters",
            g,
            "A stray token between two parameters (`keyId=\"hmac-key\" junk,algorithm=...`).",
        )
        .damage(Damage::ReplaceInSignature("\",algorithm", "\" junk,algorithm".into()))
        .expect(400, "signature.malformed")
        .reference("204: its regex skips whatever does not match"),
        base(
            "signature_non_ascii",
            g,
            "A non-ASCII byte (UTF-8 `é`) in the keyId.",
        )
        .damage(Damage::ReplaceInSignature("hmac-key", "hmac-k\u{e9}y".into()))
        .expect(400, "signature.malformed")
        .reference("204: keyId is never checked"),
        base(
            "signature_over_8kib",
            g,
            "A Signature header over 8 KiB (a keyId of 8 KiB).",
        )
        .damage(Damage::ReplaceInSignature("keyId=\"hmac-key\"", long_key))
        .expect(400, "signature.malformed")
        .reference("204: no length limit, and keyId is never checked"),
        base(
            "signature_non_canonical_base64",
            g,
            "The right signature, its base64's unused last bits set: the same bytes to a lenient decoder, not the canonical encoding.",
        )
        .damage(Damage::NonCanonicalSignature)
        .expect(400, "signature.malformed")
        .reference("204: Go's base64 decoder ignores the unused bits"),
    ]
}

fn key_id() -> Vec<Case> {
    let g = Group::KeyId;
    vec![
        base("key_id_missing", g, "No `keyId` parameter.")
            .sign(|s| s.key_id = None)
            .expect(400, "signature.malformed")
            .reference("400 Invalid or Missing Signature (Missing keyId)"),
        base(
            "key_id_unknown",
            g,
            "`keyId=\"attacker\"`: a key the receiver does not have, signed with its secret.",
        )
        .sign(|s| s.key_id = Some("attacker"))
        .expect(401, "signature.key_id")
        .reference("204: keyId is never checked"),
    ]
}

fn algorithm() -> Vec<Case> {
    let g = Group::Algorithm;
    let claims = |name, summary, alg, reference| {
        base(name, g, summary)
            .sign(|s| s.algorithm = alg)
            .expect(401, "signature.algorithm")
            .reference(reference)
    };
    vec![
        claims(
            "algorithm_hmac_sha1",
            "Claims `hmac-sha1` (the signature is HMAC-SHA256).",
            Some("hmac-sha1"),
            "400 here, but it verifies a real HMAC-SHA1 signature: the downgrade is open",
        ),
        claims(
            "algorithm_rsa_sha256",
            "Claims `rsa-sha256` with an HMAC signature.",
            Some("rsa-sha256"),
            "depends on the httpsignatures-go version: some compute every algorithm as an HMAC and accept (204)",
        ),
        claims(
            "algorithm_hs2019",
            "Claims `hs2019` (later drafts' \"derive from the key\").",
            Some("hs2019"),
            "400 Invalid or Missing Signature (Unknown Algorithm)",
        ),
        claims(
            "algorithm_none",
            "Claims `none`.",
            Some("none"),
            "400 Invalid or Missing Signature (Unknown Algorithm)",
        ),
        claims(
            "algorithm_empty",
            "`algorithm=\"\"`.",
            Some(""),
            "400 Invalid or Missing Signature (Unknown Algorithm)",
        ),
        base(
            "algorithm_absent",
            g,
            "No `algorithm` parameter (the draft lets the key decide; the receiver pins HMAC-SHA256).",
        )
        .sign(|s| s.algorithm = None)
        .reference("400 Invalid or Missing Signature (Missing algorithm)"),
        base(
            "algorithm_upper_case",
            g,
            "`algorithm=\"HMAC-SHA256\"`: names are case-insensitive.",
        )
        .sign(|s| s.algorithm = Some("HMAC-SHA256"))
        .reference("400 Invalid or Missing Signature (Unknown Algorithm: it compares exactly)"),
    ]
}

fn headers() -> Vec<Case> {
    let g = Group::Headers;
    let list = |name, summary, list: Option<&'static str>| {
        base(name, g, summary).sign(move |s| s.headers = list)
    };
    vec![
        list(
            "headers_absent",
            "No `headers` parameter: the draft's default, `date` alone, is signed.",
            None,
        )
        .expect(401, "digest.unsigned")
        .reference("400 Invalid Signature (an absent list has no `date`)"),
        list(
            "headers_date_only",
            "`headers=\"date\"`: the body is not covered, so any body passes under a captured header set.",
            Some("date"),
        )
        .expect(401, "digest.unsigned")
        .reference(REF_ACCEPTS),
        list(
            "headers_digest_only",
            "`headers=\"digest\"`: the request's age is not covered.",
            Some("digest"),
        )
        .expect(401, "date.unsigned")
        .reference("400 Invalid Signature (no `date`)"),
        list("headers_empty", "`headers=\"\"`.", Some(""))
            .expect(401, "date.unsigned")
            .reference("400 Invalid Signature (no `date`)"),
        list(
            "headers_names_missing_header",
            "The list names `x-request-id`, which the request does not have.",
            Some("date digest x-request-id"),
        )
        .expect(401, "signature.header_missing")
        .reference("400 Invalid Signature (Missing required header)"),
        list(
            "headers_upper_case",
            "`headers=\"Date Digest\"`: header names are case-insensitive.",
            Some("Date Digest"),
        )
        .reference(REF_ACCEPTS),
        list(
            "headers_name_repeated",
            "`headers=\"date digest date\"`: a name listed twice.",
            Some("date digest date"),
        )
        .expect(400, "signature.malformed")
        .reference(REF_ACCEPTS),
        list(
            "headers_created",
            "`(created)` in the list: a later draft's field, meaningless with HMAC.",
            Some("(created) date digest"),
        )
        .expect(400, "signature.malformed")
        .reference("400 Invalid Signature (Missing required header)"),
        list(
            "headers_expires",
            "`(expires)` in the list: a later draft's field, meaningless with HMAC.",
            Some("date digest (expires)"),
        )
        .expect(400, "signature.malformed")
        .reference("400 Invalid Signature (Missing required header)"),
        list(
            "headers_request_target",
            "`headers=\"(request-target) date digest\"`: the path is signed too.",
            Some("(request-target) date digest"),
        )
        .reference(REF_ACCEPTS),
    ]
}

fn date() -> Vec<Case> {
    let g = Group::Date;
    vec![
        base(
            "date_missing",
            g,
            "No Date header (the list still names `date`).",
        )
        .header("Date", None)
        .expect(401, "date.missing")
        .reference("400 Invalid Signature (Missing required header)"),
        base("date_unparseable", g, "`Date: yesterday`, signed.")
            .date(DateSpec::Literal("yesterday"))
            .expect(400, "date.malformed")
            .reference("204: the Date is signed as text and never read"),
        base("date_stale", g, "Signed 10 minutes ago (the skew is 5).")
            .date(DateSpec::Offset(-600))
            .expect(401, "date.stale")
            .reference("204: the Date's age is never checked"),
        base(
            "date_years_old",
            g,
            "`Date: Wed, 01 Jan 2020 00:00:00 GMT`: a capture from years ago.",
        )
        .date(DateSpec::Literal("Wed, 01 Jan 2020 00:00:00 GMT"))
        .expect(401, "date.stale")
        .reference("204: a capture replays forever"),
        base("date_future", g, "Dated 10 minutes ahead.")
            .date(DateSpec::Offset(600))
            .expect(401, "date.future")
            .reference("204: the Date is never checked"),
        base(
            "date_rfc850",
            g,
            "A fresh Date in RFC 850's obsolete form, which RFC 9110 says to accept.",
        )
        .date(DateSpec::Rfc850(0))
        .reference(REF_ACCEPTS),
        base(
            "date_asctime",
            g,
            "A fresh Date in asctime's obsolete form, which RFC 9110 says to accept.",
        )
        .date(DateSpec::Asctime(0))
        .reference(REF_ACCEPTS),
        base(
            "date_twice",
            g,
            "Two Date headers, both signed (joined with `, `, which is no date).",
        )
        .also("Date", Value::Date(DateSpec::Offset(0)))
        .expect(400, "date.malformed")
        .reference("400 Invalid Signature (it signs only the first value)"),
    ]
}

fn digest() -> Vec<Case> {
    let g = Group::Digest;
    let forged = FORGED;
    vec![
        base(
            "digest_missing",
            g,
            "No Digest header (the list still names `digest`).",
        )
        .header("Digest", None)
        .expect(401, "digest.missing")
        .reference("400 Invalid Signature (Missing required header)"),
        base(
            "digest_body_replaced",
            g,
            "A captured header set with a forged body: the signed Digest describes the old body.",
        )
        .damage(Damage::ReplaceBody(forged.to_vec()))
        .expect(401, "digest.mismatch")
        .reference("204: the forged body is delivered (Digest is never compared with the body)"),
        base(
            "digest_lower_case",
            g,
            "`sha-256=...`: algorithm names are case-insensitive.",
        )
        .digest(DigestSpec::Sha256LowerCase)
        .reference(REF_ACCEPTS),
        base("digest_sha512_only", g, "Only a (correct) SHA-512 value.")
            .digest(DigestSpec::Sha512)
            .expect(401, "digest.missing")
            .reference(REF_ACCEPTS),
        base("digest_md5", g, "Only an MD5 value.")
            .digest(DigestSpec::Weak("MD5", 16))
            .expect(401, "digest.weak")
            .reference(REF_ACCEPTS),
        base("digest_sha1", g, "Only a `SHA` (SHA-1) value.")
            .digest(DigestSpec::Weak("SHA", 20))
            .expect(401, "digest.weak")
            .reference(REF_ACCEPTS),
        base(
            "digest_good_and_bad",
            g,
            "The right SHA-256 value and a wrong SHA-512 value in one header.",
        )
        .digest(DigestSpec::Sha256AndWrongSha512)
        .expect(401, "digest.mismatch")
        .reference(REF_ACCEPTS),
        base(
            "digest_hex",
            g,
            "The SHA-256 value in hex instead of base64.",
        )
        .digest(DigestSpec::Sha256Hex)
        .expect(400, "digest.malformed")
        .reference(REF_ACCEPTS),
        base("digest_bad_base64", g, "`SHA-256=not*base64!`.")
            .digest(DigestSpec::Literal("SHA-256=not*base64!"))
            .expect(400, "digest.malformed")
            .reference(REF_ACCEPTS),
        base(
            "digest_twice",
            g,
            "Two Digest headers, both signed: the body's and another body's.",
        )
        .also("Digest", Value::Digest(DigestSpec::Sha256Of(b"{}")))
        .expect(401, "digest.mismatch")
        .reference("400 Invalid Signature (it signs only the first value)"),
        base(
            "digest_bad_and_good",
            g,
            "A wrong SHA-512 value, then the right SHA-256 value, in one header: order does not matter.",
        )
        .digest(DigestSpec::WrongSha512AndSha256)
        .expect(401, "digest.mismatch")
        .reference(REF_ACCEPTS),
    ]
}

fn replay() -> Vec<Case> {
    let g = Group::Replay;
    let ok = ServerOutcome::new(204, "");
    // An unknown event is answered 202 when it is delivered, and a replay 204 without
    // delivery: with such a body, "counted as a replay" is visible over HTTP.
    let respelled = |name: &'static str, summary: &'static str, damage: Damage| {
        base(name, g, summary)
            .text("X-Drone-Event", "deployment")
            .body(
                String::from_utf8(body_of("user_created", name))
                    .unwrap_or_default()
                    .replacen("\"event\":\"user\"", "\"event\":\"deployment\"", 1),
            )
            .expect(202, "")
            .replay(Replay {
                copies: 2,
                concurrent: false,
                retarget: None,
                later_damage: vec![damage],
                later: ok,
                handler_calls: 1,
            })
            .reference("202 twice, delivered twice")
    };
    vec![
        base(
            "replay_exact",
            g,
            "A valid request sent twice, one after the other: both acknowledged, delivered once.",
        )
        .replay(Replay {
            copies: 2,
            concurrent: false,
            retarget: None,
            later_damage: Vec::new(),
            later: ok,
            handler_calls: 1,
        })
        .reference("204 twice, delivered twice"),
        base(
            "replay_50_at_once",
            g,
            "A valid request sent 50 times at once on 50 connections: all acknowledged, delivered once.",
        )
        .replay(Replay {
            copies: 50,
            concurrent: true,
            retarget: None,
            later_damage: Vec::new(),
            later: ok,
            handler_calls: 1,
        })
        .reference("204 fifty times, delivered fifty times"),
        base(
            "replay_other_path",
            g,
            "A valid request, then the same bytes sent to another path below the receiver's.",
        )
        .replay(Replay {
            copies: 2,
            concurrent: false,
            retarget: Some("elsewhere"),
            later_damage: Vec::new(),
            later: ServerOutcome::new(404, "not_found"),
            handler_calls: 1,
        })
        .reference("204 twice if the handler serves every path (the path is not signed)"),
        base(
            "replay_other_query",
            g,
            "A valid request, then the same bytes with `?replayed=1` added to the target.",
        )
        .replay(Replay {
            copies: 2,
            concurrent: false,
            retarget: Some("?replayed=1"),
            later_damage: Vec::new(),
            later: ok,
            handler_calls: 1,
        })
        .reference("204 twice, delivered twice"),
        respelled(
            "replay_parameters_reordered",
            "An unknown event accepted (202), then the same request with its Signature parameters in reverse order: still a replay (204, not delivered).",
            Damage::ReorderParameters,
        ),
        respelled(
            "replay_moved_to_authorization",
            "An unknown event accepted (202), then the same request with its signature in `Authorization: Signature ...`: still a replay (204, not delivered).",
            Damage::MoveToAuthorization,
        ),
    ]
}

/// A gzip member holding `data` in stored (uncompressed) deflate blocks: a real gzip
/// body without a compressor.
fn gzip(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    let mut blocks = data.chunks(0xffff).peekable();
    if blocks.peek().is_none() {
        out.extend_from_slice(&[1, 0, 0, 0xff, 0xff]);
    }
    while let Some(block) = blocks.next() {
        out.push(u8::from(blocks.peek().is_none()));
        let len = block.len() as u16;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(block);
    }
    out.extend_from_slice(&crc32(data).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

/// CRC-32 (IEEE), bit by bit: gzip's trailer, computed once per catalog build.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn transport() -> Vec<Case> {
    let g = Group::Transport;
    let big = |case: &str| {
        let body = body_of("user_created", case);
        let mut out = Vec::with_capacity(LIMIT + body.len() + 16);
        out.extend_from_slice(b"{\"pad\":\"");
        out.resize(out.len() + LIMIT, b'x');
        out.extend_from_slice(b"\",");
        out.extend_from_slice(&body[1..]);
        out
    };
    let plain = samples::get("user_created")
        .map(|s| s.body)
        .unwrap_or_default();
    vec![
        base(
            "transport_wrong_method",
            g,
            "A valid request sent with PUT.",
        )
        .method("PUT")
        .expect(405, "method_not_allowed")
        .transport()
        .reference(REF_ACCEPTS),
        base(
            "transport_content_length_over_limit",
            g,
            "`Content-Length: 1048577` (over the 1 MiB limit) and no body bytes sent: refusable from the head alone.",
        )
        .framing(Framing::DeclaredOnly(LIMIT as u64 + 1))
        .expect(413, "body.too_large")
        .transport()
        .reference("no body limit: it waits for and buffers whatever is declared"),
        base(
            "transport_chunked_over_limit",
            g,
            "A chunked, validly signed body of just over 1 MiB.",
        )
        .body(big("transport_chunked_over_limit"))
        .framing(Framing::Chunked(64 * 1024))
        .expect(413, "body.too_large")
        .transport()
        .reference("204: no body limit"),
        base(
            "transport_chunked_and_content_length",
            g,
            "`Transfer-Encoding: chunked` and `Content-Length` together (request smuggling's shape).",
        )
        .framing(Framing::ChunkedAndLength(256))
        .expect(400, "transport.malformed")
        .transport()
        .reference("204: Go's net/http drops the Content-Length and reads the chunks"),
        base(
            "transport_gzip",
            g,
            "A gzip-compressed body with `Content-Encoding: gzip`, signed over the compressed bytes.",
        )
        .also("Content-Encoding", Value::Text("gzip".into()))
        .body(gzip(&plain))
        .expect(415, "encoding.unsupported")
        .transport()
        .reference("400 Invalid Input (it parses the compressed bytes as JSON)"),
        base(
            "transport_wrong_content_type",
            g,
            "`Content-Type: text/plain`.",
        )
        .text("Content-Type", "text/plain")
        .expect(415, "content_type.unsupported")
        .transport()
        .reference(REF_ACCEPTS),
        base(
            "transport_content_type_charset",
            g,
            "`Content-Type: application/json; charset=utf-8`: parameters are allowed.",
        )
        .text("Content-Type", "application/json; charset=utf-8")
        .reference(REF_ACCEPTS),
        base(
            "transport_chunked",
            g,
            "A valid request with a chunked body (small chunks): framing is not content.",
        )
        .framing(Framing::Chunked(100))
        .reference(REF_ACCEPTS),
        base(
            "transport_chunk_size_overflow",
            g,
            "A chunked body whose first chunk size is 2^64 (`10000000000000000` in hex), which overflows a 64-bit length.",
        )
        .framing(Framing::ChunkSizeOverflow)
        .expect(400, "transport.malformed")
        .transport()
        .reference("400 Invalid Input: the body read fails (`http chunk length too large`)"),
        base(
            "transport_gzip_chunked",
            g,
            "`Transfer-Encoding: gzip, chunked` over a validly signed body that is not compressed: a coding the receiver does not implement.",
        )
        .framing(Framing::Codings(&["gzip, chunked"], 100))
        .expect(501, "transfer_encoding.unsupported")
        .transport()
        .reference("501 Not Implemented: Go's net/http accepts only `chunked`"),
        base(
            "transport_gzip_and_chunked_lines",
            g,
            "`Transfer-Encoding: gzip` and `Transfer-Encoding: chunked` on two header lines (one list, split).",
        )
        .framing(Framing::Codings(&["gzip", "chunked"], 100))
        .expect(501, "transfer_encoding.unsupported")
        .transport()
        .reference("501 Not Implemented: Go's net/http refuses more than one Transfer-Encoding line"),
        base(
            "transport_chunked_twice",
            g,
            "`Transfer-Encoding: chunked, chunked`: the body framed twice, which no sender means.",
        )
        .framing(Framing::Codings(&["chunked, chunked"], 100))
        .expect(400, "transport.malformed")
        .transport()
        .reference("501 Not Implemented: Go's net/http accepts only `chunked` alone"),
        base(
            "transport_two_content_lengths",
            g,
            "Two Content-Length headers that disagree (the body's length and one more).",
        )
        .framing(Framing::TwoLengths)
        .expect(400, "transport.malformed")
        .transport()
        .reference("400 Bad Request: Go's net/http refuses differing lengths"),
        base(
            "transport_content_length_signed",
            g,
            "`Content-Length: +N`: a sign the field's grammar (digits only) does not allow.",
        )
        .framing(Framing::SignedLength)
        .expect(400, "transport.malformed")
        .transport()
        .reference("400 Bad Request: Go's net/http parses digits only"),
        base(
            "transport_obs_fold",
            g,
            "A header value continued on the next line (obsolete line folding), which RFC 9112 says to refuse or replace with spaces.",
        )
        .also("X-Hostile-Fold", Value::Text("first\r\n second".into()))
        .expect(400, "transport.malformed")
        .transport()
        .reference("204: Go's textproto joins the folded line to the value"),
        base(
            "transport_10000_headers",
            g,
            "10,000 header lines (`X-Pad: x`) in front of a valid request.",
        )
        .padded(10_000)
        .expect(431, "headers.too_large")
        .transport()
        .reference("204: Go limits the head's size (1 MB), not the number of lines"),
        pipelined_forgery(g),
        base(
            "transport_http2_preface",
            g,
            "HTTP/2's prior-knowledge preface (`PRI * HTTP/2.0`) and a SETTINGS frame on a plain connection.",
        )
        .connection(Connection::Raw(HTTP2_PREFACE))
        .closed_or_4xx()
        .reference("no 2xx: not an HTTP/1 request to Go's server, the handler never runs"),
    ]
}

/// A valid request, then on the same connection (pipelined, written before any
/// answer) the same signed headers over a forged body: each request is judged on its
/// own, whatever came before it on the connection.
fn pipelined_forgery(g: Group) -> Case {
    let name = "transport_pipelined_forgery";
    let valid = base(name, g, "");
    let forged = valid.clone().damage(Damage::ReplaceBody(FORGED.to_vec()));
    base(
        name,
        g,
        "A valid request, then on the same connection its headers over a forged body: 204, then 401.",
    )
    .connection(Connection::Pipelined(vec![Pipelined::new(
        forged.request,
        ServerOutcome::new(401, "digest.mismatch"),
    )]))
    .transport()
    .reference("204, then 204: the forged body is delivered too (Digest is never compared with the body)")
}

fn body() -> Vec<Case> {
    let g = Group::Body;
    let user = |rest: &str| {
        format!(
            "{{\"event\":\"user\",\"action\":\"created\",\"user\":{{\"id\":1,\"login\":\"octocat\"{rest}}}}}"
        )
        .into_bytes()
    };
    // Under a key the models do not know, so that only the depth can fail.
    let mut nested = b"{\"event\":\"user\",\"action\":\"created\",\"extension\":".to_vec();
    nested.resize(nested.len() + 100_000, b'[');
    nested.resize(nested.len() + 100_000, b']');
    nested.push(b'}');
    let mut bom = b"\xEF\xBB\xBF".to_vec();
    bom.extend_from_slice(&user(""));
    let mut trailing = user("");
    trailing.extend_from_slice(b"{}");
    let without_event = samples::get("docs_user_created")
        .map(|s| s.body)
        .unwrap_or_default();
    let invalid = |name, summary, body: Vec<u8>, reference| {
        base(name, g, summary)
            .body(body)
            .expect(400, "payload.invalid")
            .reference(reference)
    };
    vec![
        invalid(
            "body_invalid_utf8",
            "The byte 0xFF inside a JSON string.",
            {
                let mut b = user(",\"email\":\"?\"");
                let at = b.iter().rposition(|&c| c == b'?').unwrap_or(0);
                b[at] = 0xff;
                b
            },
            "204: Go replaces the byte with U+FFFD and delivers an altered text",
        ),
        invalid(
            "body_lone_surrogate",
            "`\\ud800`, a lone surrogate escape, in a string.",
            user(",\"email\":\"\\ud800\""),
            "204: Go replaces it with U+FFFD",
        ),
        invalid(
            "body_byte_order_mark",
            "A UTF-8 byte-order mark before the JSON.",
            bom,
            "400 Invalid Input",
        ),
        invalid(
            "body_not_json",
            "`event=user&action=created`.",
            b"event=user&action=created".to_vec(),
            "400 Invalid Input",
        ),
        invalid("body_empty", "An empty body, signed.", Vec::new(), "400 Invalid Input"),
        invalid(
            "body_trailing_bytes",
            "A payload followed by `{}`.",
            trailing,
            "400 Invalid Input",
        ),
        invalid(
            "body_nested_arrays",
            "100,000 nested arrays, under a key the receiver does not know.",
            nested,
            "400 Invalid Input (Go's decoder stops at depth 10,000)",
        ),
        invalid(
            "body_number_1e400",
            "`\"synced\":1e400` in an integer field, out of every float's range too.",
            user(",\"synced\":1e400"),
            "400 Invalid Input",
        ),
        invalid(
            "body_integer_2_pow_64",
            "`\"id\":18446744073709551616` (2^64) in an integer field.",
            b"{\"event\":\"user\",\"action\":\"created\",\"user\":{\"id\":18446744073709551616,\"login\":\"octocat\"}}".to_vec(),
            "400 Invalid Input",
        ),
        base(
            "body_duplicate_keys",
            g,
            "`\"action\"` twice: `created`, then `deleted`.",
        )
        .body(b"{\"event\":\"user\",\"action\":\"created\",\"action\":\"deleted\",\"user\":{\"id\":1,\"login\":\"octocat\"}}".to_vec())
        .expect(400, "payload.duplicate_key")
        .reference("204: Go keeps the last value, other parsers the first"),
        base(
            "body_duplicate_key_unknown_object",
            g,
            "A key twice inside an object under a field the receiver does not know (`\"extension\":{\"a\":1,\"a\":2}`).",
        )
        .body(user(",\"extension\":{\"a\":1,\"a\":2}"))
        .expect(400, "payload.duplicate_key")
        .reference("204: Go skips unknown fields without looking inside"),
        base(
            "body_duplicate_key_deep",
            g,
            "A key twice four levels down, in an object inside an array inside unknown fields.",
        )
        .body(user(",\"extension\":{\"list\":[{\"inner\":{\"b\":1,\"b\":2}}]}"))
        .expect(400, "payload.duplicate_key")
        .reference("204: Go skips unknown fields without looking inside"),
        base(
            "body_unknown_event",
            g,
            "`\"event\":\"deployment\"`, an event this receiver does not know: carried, not refused.",
        )
        .text("X-Drone-Event", "deployment")
        .body(
            String::from_utf8(body_of("user_created", "body_unknown_event"))
                .unwrap_or_default()
                .replacen("\"event\":\"user\"", "\"event\":\"deployment\"", 1),
        )
        .expect(202, "")
        .reference(REF_ACCEPTS),
        base(
            "body_unknown_action",
            g,
            "A build event with `\"action\":\"exploded\"`: carried, not refused.",
        )
        .text("X-Drone-Event", "build")
        .body(
            String::from_utf8(body_of("build_updated", "body_unknown_action"))
                .unwrap_or_default()
                .replacen("\"action\":\"updated\"", "\"action\":\"exploded\"", 1),
        )
        .expect(202, "")
        .reference(REF_ACCEPTS),
        base(
            "body_event_header_mismatch",
            g,
            "`X-Drone-Event: repo` with a body that says `user`: the header is not signed.",
        )
        .text("X-Drone-Event", "repo")
        .expect(400, "payload.event_mismatch")
        .reference("204: the header is never read"),
        base(
            "body_event_header_repeated",
            g,
            "Two X-Drone-Event headers, `build` then `user`, on a build body: which one counts is ambiguous.",
        )
        .text("X-Drone-Event", "build")
        .also("X-Drone-Event", Value::Text("user".into()))
        .body(body_of("build_updated", "body_event_header_repeated"))
        .expect(400, "payload.event_repeated")
        .reference("204: the header is never read"),
        base(
            "body_event_header_repeated_reversed",
            g,
            "Two X-Drone-Event headers, `user` then `build`, on a build body: refused whatever the order.",
        )
        .text("X-Drone-Event", "user")
        .also("X-Drone-Event", Value::Text("build".into()))
        .body(body_of("build_updated", "body_event_header_repeated_reversed"))
        .expect(400, "payload.event_repeated")
        .reference("204: the header is never read"),
        base(
            "body_without_event",
            g,
            "No `event` in the body, as in Drone's documentation examples; `X-Drone-Event: user`.",
        )
        .body(without_event.clone())
        .reference("204, delivered with an empty event"),
        base(
            "body_without_event_no_header",
            g,
            "No `event` in the body and no X-Drone-Event header.",
        )
        .header("X-Drone-Event", None)
        .body(without_event)
        .expect(400, "payload.event_missing")
        .reference("204, delivered with an empty event"),
    ]
}
