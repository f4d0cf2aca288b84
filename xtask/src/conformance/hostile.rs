//! The hostile catalog against `dronehook serve` and `dronehook verify`. Cases come
//! from `dronehook_audit`, the source `fixtures/hostile/` is generated from, and are
//! rendered live (signed at send time, so `Date` is fresh; wrong-secret
//! cases and replays as the catalog defines them).
//!
//! The tests also carry an independent renderer of the `fixtures/hostile/*.http`
//! template language (placeholders `{{date}}`, `{{digest}}`, `{{signature}}`, ...;
//! see `fixtures/hostile/README.md`) and check that every generated template renders
//! to the same bytes as the catalog, so the fixture files are usable on their own.

use std::fs;
use std::time::{Duration, SystemTime};

use anyhow::Result;
use dronehook_audit::{Answer, Case, Connection, RenderContext, Tcp, VerifyOutcome, run_case};

use super::cli::{Binary, Serve, run};
use super::{Row, paths};
use crate::fixtures::SECRET;

// The template renderer below reads `fixtures/hostile/*.http` as a consumer of the
// fixture files would; the tests use it to prove that every generated template
// renders to the same request as the catalog itself.
#[cfg(test)]
use {
    anyhow::Context as _,
    base64::Engine as _,
    base64::engine::general_purpose::STANDARD,
    dronehook_protocol::{BodyDigest, http_date},
    hmac::{Hmac, Mac as _},
    sha2::Sha256,
};

#[cfg(test)]
/// Fills a template's placeholders for a request sent at `now`.
///
/// `{{date}}`, `{{date:-360}}` (seconds from now), the obsolete forms
/// `{{date-rfc850:N}}` and `{{date-asctime:N}}`, `{{digest}}` and `{{content-length}}`
/// are replaced first. Then `{{signature}}` (or
/// `{{signature:LIST}}`, a space-separated header list) becomes a whole `Signature`
/// value and `{{signature-b64}}` (or `{{signature-b64:LIST}}`) only its base64
/// (`{{signature-b64-noncanonical:LIST}}` with the unused bits of its last character
/// set), all
/// computed with the fixture secret over the headers as they now stand in the
/// request, so a case can sign a `Digest` that does not match its body. A header
/// listed but absent is signed as empty.
///
/// A pipelined template (requests separated by `\r\n{{pipelined}}\r\n`) renders
/// each request on its own, back to back; a template whose first line is not an
/// HTTP/1.1 request line (HTTP/2's preface) is sent as it is.
pub(crate) fn render(template: &[u8], now: SystemTime) -> Result<Vec<u8>> {
    const SEPARATOR: &[u8] = b"\r\n{{pipelined}}\r\n";
    let first_line = template.split(|&b| b == b'\n').next().unwrap_or_default();
    if !first_line.ends_with(b" HTTP/1.1\r") {
        return Ok(template.to_vec());
    }
    if let Some(at) = template
        .windows(SEPARATOR.len())
        .position(|w| w == SEPARATOR)
    {
        let mut out = render_one(&template[..at], now)?;
        out.extend_from_slice(&render(&template[at + SEPARATOR.len()..], now)?);
        return Ok(out);
    }
    render_one(template, now)
}

#[cfg(test)]
/// One request of a template.
fn render_one(template: &[u8], now: SystemTime) -> Result<Vec<u8>> {
    let at = template
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("the template has no blank line after its head")?;
    let (head, body) = (&template[..at + 4], &template[at + 4..]);
    let mut head = String::from_utf8_lossy(head)
        .replace("{{digest}}", &BodyDigest::of(body).header_value())
        .replace("{{content-length}}", &body.len().to_string());
    for form in ["date", "date-rfc850", "date-asctime"] {
        while let Some((start, end, arg)) = placeholder(&head, form) {
            let offset: i64 = match arg {
                None => 0,
                Some(a) => a
                    .trim_start_matches('+')
                    .parse()
                    .with_context(|| format!("bad date offset {a:?}"))?,
            };
            let delta = Duration::from_secs(offset.unsigned_abs());
            let at = if offset < 0 { now - delta } else { now + delta };
            head.replace_range(start..end, &date_in_form(form, at));
        }
    }
    // Signatures are computed over the head with dates and digests in place, and
    // with the signature placeholders still in it (they are never signed).
    let signed_head = head.clone();
    for (name, whole) in [
        ("signature", true),
        ("signature-b64", false),
        ("signature-b64-noncanonical", false),
    ] {
        while let Some((start, end, arg)) = placeholder(&head, name) {
            let list = arg.unwrap_or("date digest").to_owned();
            let mut b64 = sign(&signed_head, &list);
            if name == "signature-b64-noncanonical" {
                b64 = set_unused_bits(&b64);
            }
            let value = if whole {
                format!(
                    "keyId=\"hmac-key\",algorithm=\"hmac-sha256\",signature=\"{b64}\",headers=\"{list}\""
                )
            } else {
                b64
            };
            head.replace_range(start..end, &value);
        }
    }
    let mut out = head.into_bytes();
    out.extend_from_slice(body);
    Ok(out)
}

#[cfg(test)]
/// Sets the lowest unused bit of a padded base64 text's last character (`...c=` of
/// 32 bytes has two): the same bytes to a lenient decoder, not canonical base64.
fn set_unused_bits(b64: &str) -> String {
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let data = b64.trim_end_matches('=');
    let Some(last) = data.bytes().last() else {
        return b64.to_owned();
    };
    let Some(i) = alphabet.iter().position(|&c| c == last) else {
        return b64.to_owned();
    };
    if data.len() == b64.len() {
        return b64.to_owned();
    }
    format!(
        "{}{}{}",
        &data[..data.len() - 1],
        char::from(alphabet[i | 1]),
        &b64[data.len()..]
    )
}

#[cfg(test)]
/// A date in one of the three forms HTTP has used: IMF-fixdate (`date`, what Drone
/// sends), RFC 850 (`Sunday, 06-Nov-94 08:49:37 GMT`) and asctime
/// (`Sun Nov  6 08:49:37 1994`). The obsolete forms are rearranged from the
/// IMF-fixdate's fields, which `httpdate` computes.
fn date_in_form(form: &str, at: SystemTime) -> String {
    let imf = http_date(at);
    // `Sun, 06 Nov 1994 08:49:37 GMT`
    let fields: Vec<&str> = imf.split([',', ' ']).filter(|f| !f.is_empty()).collect();
    let [weekday, day, month, year, time, _gmt] = fields[..] else {
        return imf;
    };
    match form {
        "date-rfc850" => {
            let long = match weekday {
                "Mon" => "Monday",
                "Tue" => "Tuesday",
                "Wed" => "Wednesday",
                "Thu" => "Thursday",
                "Fri" => "Friday",
                "Sat" => "Saturday",
                _ => "Sunday",
            };
            format!(
                "{long}, {day}-{month}-{} {time} GMT",
                &year[year.len() - 2..]
            )
        }
        "date-asctime" => format!(
            "{weekday} {month} {:>2} {time} {year}",
            day.trim_start_matches('0')
        ),
        _ => imf,
    }
}

#[cfg(test)]
/// Finds `{{name}}` or `{{name:arg}}`: its byte range and argument.
fn placeholder<'a>(text: &'a str, name: &str) -> Option<(usize, usize, Option<&'a str>)> {
    let mut from = 0;
    while let Some(i) = text[from..].find("{{").map(|i| i + from) {
        let end = text[i..].find("}}")? + i;
        let inner = &text[i + 2..end];
        let (n, arg) = match inner.split_once(':') {
            Some((n, a)) => (n, Some(a)),
            None => (inner, None),
        };
        if n == name {
            return Some((i, end + 2, arg));
        }
        from = end + 2;
    }
    None
}

#[cfg(test)]
/// The base64 HMAC-SHA256, keyed with the fixture secret, of the signing string for
/// `list` over `head` (draft-cavage-http-signatures-10: `name: value` lines, values of
/// a repeated header joined with `, `, `(request-target)` from the request line).
fn sign(head: &str, list: &str) -> String {
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let headers: Vec<(String, &str)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim()))
        .collect();
    let mut signing = Vec::new();
    for name in list.split_whitespace() {
        let name = name.to_ascii_lowercase();
        let value = if name == "(request-target)" {
            let mut parts = request_line.split(' ');
            let method = parts.next().unwrap_or_default().to_ascii_lowercase();
            format!("{method} {}", parts.next().unwrap_or_default())
        } else {
            headers
                .iter()
                .filter(|(n, _)| *n == name)
                .map(|(_, v)| *v)
                .collect::<Vec<_>>()
                .join(", ")
        };
        signing.push(format!("{name}: {value}"));
    }
    let mut mac =
        Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap_or_else(|_| unreachable!());
    mac.update(signing.join("\n").as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

/// Runs every case of the catalog (`dronehook_audit`, the
/// source `fixtures/hostile/` is generated from) against one `dronehook serve` and
/// against `dronehook verify`. Cases are rendered live with the fixture secret, so
/// wrong-secret cases and replays (several copies, some sent at once) run as the
/// catalog defines them.
pub(crate) fn run_all(binary: Result<&Binary, &String>, catalog: &[Case]) -> Vec<Row> {
    let mut rows = Vec::new();
    let serve = binary
        .map_err(String::clone)
        .and_then(|b| b.require(&["serve"]).map(|()| b))
        .and_then(|b| Serve::start(b, &[]).map_err(|e| format!("{e:#}")));
    // A nonce unique to this run keeps replay cases of an earlier run from colliding.
    let run_id = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    for (i, case) in catalog.iter().enumerate() {
        let name = format!("hostile/{}", case.name);
        let expected = expected_server(case);
        rows.push(match &serve {
            Err(why) => Row::unavailable(&name, paths::HOSTILE_SERVER, expected, why),
            Ok(serve) => {
                let mut ctx = RenderContext::new(SECRET, SystemTime::now());
                ctx.host = serve.addr.to_string();
                ctx.nonce = format!("{run_id}-{i}");
                let got = send_copies(serve.addr, case, &ctx);
                Row::ran(&name, paths::HOSTILE_SERVER, expected, got)
            }
        });
    }
    drop(serve);
    let verifier = binary
        .map_err(String::clone)
        .and_then(|b| b.require(&["verify"]).map(|()| b));
    for (i, case) in catalog.iter().enumerate() {
        if case.verify == VerifyOutcome::NotApplicable {
            continue;
        }
        let name = format!("hostile/{}", case.name);
        let expected = case.verify.to_string();
        rows.push(match verifier {
            Err(ref why) => Row::unavailable(&name, paths::HOSTILE_VERIFY, expected, why),
            Ok(binary) => {
                let got = verify(binary, case, i).unwrap_or_else(|e| format!("error: {e:#}"));
                Row::ran(&name, paths::HOSTILE_VERIFY, expected, got)
            }
        });
    }
    rows
}

fn outcome_text(status: u16, code: &str) -> String {
    if status == 0 {
        // The catalog's "closed without an answer, or any 4xx".
        return "closed or 4xx".to_owned();
    }
    format!("{status} {}", if code.is_empty() { "-" } else { code })
}

/// The expected answers: one outcome, for a pipelined case the answer to each
/// request on its connection, or for a replay the first and the later copies.
fn expected_server(case: &Case) -> String {
    let first = outcome_text(case.server.status, case.server.code);
    if let Connection::Pipelined(more) = &case.connection {
        let mut all = vec![first];
        all.extend(
            more.iter()
                .map(|p| outcome_text(p.server.status, p.server.code)),
        );
        return all.join(", then ");
    }
    match &case.replay {
        None => first,
        Some(r) if r.concurrent => format!("{first} x{}", r.copies),
        Some(r) => format!(
            "{first}, then {} x{}",
            outcome_text(r.later.status, r.later.code),
            r.copies - 1
        ),
    }
}

/// Sends every copy of a case (concurrently for a concurrent replay) and describes the
/// answers in the form of [`expected_server`] when each matched its expectation, or
/// names the first copy that did not.
fn send_copies(addr: std::net::SocketAddr, case: &Case, ctx: &RenderContext) -> String {
    let tcp = Tcp {
        addr,
        timeout: Duration::from_secs(30),
    };
    let run = run_case(case.clone(), ctx, &tcp);
    for (index, answer) in run.answers.iter().enumerate() {
        let want = case.expected_for_copy(index);
        match answer {
            _ if answer.matches(&want) => {}
            Answer::Error(e) => return format!("copy {}: error: {e}", index + 1),
            Answer::Closed => {
                return if run.answers.len() == 1 {
                    "closed".to_owned()
                } else {
                    format!("copy {}: closed", index + 1)
                };
            }
            Answer::Response { status, code } => {
                let got = outcome_text(*status, code);
                return if run.answers.len() == 1 {
                    got
                } else {
                    format!("copy {}: {got}", index + 1)
                };
            }
        }
    }
    expected_server(case)
}

/// What `dronehook verify` says: `valid`, or the code before the first `:` of its
/// first line (`digest.mismatch: the body is not the one that was signed`).
fn verify(binary: &Binary, case: &Case, i: usize) -> Result<String> {
    let request = case.render(&RenderContext::new(SECRET, SystemTime::now()));
    let file = binary.scratch.path().join(format!("hostile-{i}.http"));
    fs::write(&file, request)?;
    let out = run(
        &binary.path,
        &[
            "verify",
            "--request",
            &file.to_string_lossy(),
            "--secret",
            SECRET,
        ],
        None,
    )?;
    let line = out.first_line();
    Ok(match out.code {
        Some(0) => "valid".to_owned(),
        Some(1) => {
            let line = line.strip_prefix("error: ").unwrap_or(&line);
            line.split([':', ' ']).next().unwrap_or_default().to_owned()
        }
        code => format!("exit {code:?}: {line}"),
    })
}

#[cfg(test)]
mod tests {
    use dronehook_protocol::{SignInput, Signer};

    use super::*;

    #[test]
    fn a_template_is_signed_at_the_given_time() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_577_836_800);
        let template = b"POST / HTTP/1.1\r\nDate: {{date}}\r\nDigest: {{digest}}\r\nSignature: {{signature}}\r\nContent-Length: {{content-length}}\r\n\r\n{}";
        let text = String::from_utf8(render(template, now).unwrap()).unwrap();
        let signed = Signer::new(SECRET)
            .sign(&SignInput::new(b"{}", now))
            .unwrap();
        assert_eq!(
            text,
            format!(
                "POST / HTTP/1.1\r\nDate: Wed, 01 Jan 2020 00:00:00 GMT\r\nDigest: {}\r\nSignature: {}\r\nContent-Length: 2\r\n\r\n{{}}",
                signed.digest, signed.signature
            )
        );
    }

    #[test]
    fn signatures_cover_the_headers_as_written() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_577_836_800);
        // A Digest that does not match the body, signed anyway: the verifier must find
        // a valid signature and then the mismatch.
        let template = b"POST /x HTTP/1.1\r\nDate: {{date:-360}}\r\nDigest: SHA-256=AAAA\r\nSignature: {{signature}}\r\nAuthorization: Signature keyId=\"k\",signature=\"{{signature-b64:(request-target) date}}\"\r\n\r\n{}";
        let text = String::from_utf8(render(template, now).unwrap()).unwrap();
        let date = "Tue, 31 Dec 2019 23:54:00 GMT";
        let mac = |s: &str| {
            let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
            mac.update(s.as_bytes());
            STANDARD.encode(mac.finalize().into_bytes())
        };
        let both = mac(&format!("date: {date}\ndigest: SHA-256=AAAA"));
        let target = mac(&format!("(request-target): post /x\ndate: {date}"));
        assert_eq!(
            text,
            format!(
                "POST /x HTTP/1.1\r\nDate: {date}\r\nDigest: SHA-256=AAAA\r\nSignature: keyId=\"hmac-key\",algorithm=\"hmac-sha256\",signature=\"{both}\",headers=\"date digest\"\r\nAuthorization: Signature keyId=\"k\",signature=\"{target}\"\r\n\r\n{{}}"
            )
        );
        assert_eq!(
            render(b"POST / HTTP/1.1\r\nDate: {{date:soon}}\r\n\r\n", now)
                .unwrap_err()
                .to_string(),
            "bad date offset \"soon\""
        );
    }

    #[test]
    fn obsolete_date_forms_are_written_as_http_defines_them() {
        // 1994-11-06T08:49:37Z, the example date of RFC 9110.
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(date_in_form("date", t), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(
            date_in_form("date-rfc850", t),
            "Sunday, 06-Nov-94 08:49:37 GMT"
        );
        assert_eq!(date_in_form("date-asctime", t), "Sun Nov  6 08:49:37 1994");
        let text = render(
            b"POST / HTTP/1.1\r\nDate: {{date-asctime:-60}}\r\n\r\n",
            t + Duration::from_secs(60),
        )
        .unwrap();
        assert_eq!(
            text,
            b"POST / HTTP/1.1\r\nDate: Sun Nov  6 08:49:37 1994\r\n\r\n"
        );
    }

    /// The audit crate's catalog writes `fixtures/hostile/` in this runner's
    /// placeholder language: each template must render to the bytes the catalog
    /// itself renders (cases signed with a wrong secret excepted: their template holds
    /// a fixed signature, as the catalog documents).
    #[test]
    fn the_protocol_catalog_templates_render_as_the_catalog_renders() {
        use dronehook_audit::{Key, RenderContext};
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let ctx = RenderContext::new(SECRET, now);
        let mut checked = 0;
        for case in dronehook_audit::all() {
            if case
                .request
                .sign
                .as_ref()
                .is_some_and(|s| matches!(s.secret, Key::Wrong))
            {
                continue;
            }
            let ours = render(&case.template_text(), now)
                .unwrap_or_else(|e| panic!("{}: {e:#}", case.name));
            let theirs = case.render(&ctx);
            assert_eq!(
                String::from_utf8_lossy(&ours),
                String::from_utf8_lossy(&theirs),
                "{}",
                case.name
            );
            checked += 1;
        }
        assert!(checked >= 40, "only {checked} cases compared");
    }

    #[test]
    fn without_a_binary_every_case_is_reported_not_run() {
        let catalog = dronehook_audit::all();
        let why = "no binary".to_owned();
        let rows = run_all(Err(&why), &catalog);
        let verify_rows = catalog
            .iter()
            .filter(|c| c.verify != VerifyOutcome::NotApplicable)
            .count();
        assert_eq!(rows.len(), catalog.len() + verify_rows);
        assert!(
            rows.iter()
                .all(|r| r.verdict == crate::conformance::Verdict::NotAvailable)
        );
    }
}
