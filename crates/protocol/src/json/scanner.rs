//! The fast path of checking and of decoding: a schema-directed scan of the body that
//! may decline.
//!
//! [`scan`] walks the bytes once, guided by the models' field tables (see
//! [`schema`](super::schema)), and returns the outline only when it is certain that
//! the serde decoder (the models' `Deserialize`) would accept the body. [`decode`] is
//! the same walk building the model: the decoder's first try, about twice as fast as
//! serde, which it falls back to. Anything it does not settle — an error, but also
//! anything merely unusual: a float, a number of 19 digits or more, an escaped key, a
//! lone surrogate, a repeated field — makes it return `None`, and the caller decodes
//! the body with serde, for the result or for its exact error. Declining is always
//! safe; accepting wrongly is the one bug this file must not have, so every rule below
//! is the strict subset of what serde_json and the models accept:
//!
//! - whitespace is `' '`, `'\t'`, `'\n'` and `'\r'` only, as serde_json skips;
//! - the body is one object, then whitespace to the end;
//! - keys are matched against the schema (the next field in declaration order first,
//!   since Drone sends them in that order), aliases count as their field, and a
//!   repeated field or an escaped key declines;
//! - unknown keys are kept (up to [`MAX_UNKNOWN`] per object) to catch repeats, and
//!   their values are read by a generic skipper that accepts strings, literals,
//!   integers of at most 18 digits, arrays and objects, nested at most
//!   [`MAX_ANY_DEPTH`] deep, so serde_json's recursion limit of 128 is never reached;
//! - a repeated key declines at any depth: in the models' objects, in string maps
//!   and in unknown objects (whose keys are kept the same way, and where an escaped
//!   key declines unless it is the object's only one), since the decoder refuses it;
//! - `null` is accepted for every field (Go's zero value);
//! - integers are `-?(0|[1-9][0-9]*)` with at most 18 digits, so they always fit an
//!   `i64`; `-0` declines, because serde_json reads it as a float;
//! - strings decline on raw control bytes and on escapes other than JSON's; `\uXXXX`
//!   is accepted except for surrogates, which must come as a valid pair.
//!
//! [`scan`] allocates nothing: the outline borrows from the input, and the fields it
//! keeps (`event`, `action`, `repo.slug`) decline when escaped, since their value
//! would need unescaping. [`decode`] unescapes strings itself and has serde_json parse
//! unknown fields' values (after the skipper has accepted them) into the `Value` the
//! models keep; its result is compared with serde's by the tests and the
//! `payload_decode` fuzz target.

#![allow(
    clippy::inline_always,
    reason = "the scan is one hot loop; measured under callgrind, inlining its helpers saves a fifth of the instructions"
)]

use std::borrow::Cow;
use std::collections::BTreeMap;

use super::bytes::{
    POW10, digit_flags, digit_run, eight_digits, eq_short, find_special, hex4, load8, unescape,
};
use super::schema::{FieldSpec, Kind, Record};

/// What the fast path reads: the parts of the outline, borrowed from the body.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct FastOutline<'a> {
    /// The envelope's `event` (empty when absent or `null`).
    pub(crate) event: &'a str,
    /// The envelope's `action` (empty when absent or `null`).
    pub(crate) action: &'a str,
    /// The envelope-level repository's `slug` (empty when there is none).
    pub(crate) repo_slug: &'a str,
    /// The envelope-level build's `number`, when there is a build object.
    pub(crate) build_number: Option<i64>,
    /// The envelope-level build's `status` (empty when absent, `null` or no build).
    pub(crate) build_status: &'a str,
}

/// Where the outline's fields are in the schema: positions in the envelope's table,
/// and in its repository's and build's. The models fill it in (`decode.rs`), so the
/// scanner names no model.
#[derive(Debug)]
pub(crate) struct OutlineFields {
    /// The envelope's `event` (a string).
    pub(crate) event: usize,
    /// The envelope's `action` (a string).
    pub(crate) action: usize,
    /// The envelope's `repo` (an object).
    pub(crate) repo: usize,
    /// The envelope's `build` (an object).
    pub(crate) build: usize,
    /// The repository's `slug` (a string).
    pub(crate) repo_slug: usize,
    /// The build's `number` (an integer).
    pub(crate) build_number: usize,
    /// The build's `status` (a string).
    pub(crate) build_status: usize,
}

/// The plan of a scan that keeps nothing (the decoder's): only [`Role::Other`]
/// objects are read, which never consult it.
const NO_OUTLINE: OutlineFields = OutlineFields {
    event: usize::MAX,
    action: usize::MAX,
    repo: usize::MAX,
    build: usize::MAX,
    repo_slug: usize::MAX,
    build_number: usize::MAX,
    build_status: usize::MAX,
};

/// How many unknown keys one object may have before the fast path declines: each is
/// compared with the earlier ones for the duplicate rule, and they live on the stack.
const MAX_UNKNOWN: usize = 8;

/// How deep an unknown value may nest. The schema itself nests 8 levels at most, so
/// the total stays far below serde_json's recursion limit of 128.
const MAX_ANY_DEPTH: u32 = 64;

/// Which object is being read: the outline's fields are picked out of three of them.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    /// The envelope itself (`event`, `action`).
    Envelope,
    /// The envelope's `repo` (`slug`).
    Repo,
    /// The envelope's `build` (`number`).
    Build,
    /// Any other object: nothing is kept.
    Other,
}

/// Reads `text` as the decoder would read an object of `schema` (the envelope's) and
/// returns its outline, the fields `plan` names, or `None` when the fast path cannot
/// be certain that the decoder accepts it (see the module docs).
pub(crate) fn scan<'a>(
    text: &'a str,
    schema: &'static [FieldSpec],
    plan: &'static OutlineFields,
) -> Option<FastOutline<'a>> {
    whole_object(text, plan, |s| {
        let mut out = FastOutline::default();
        s.object(schema, Role::Envelope, &mut out)?;
        Some(out)
    })
}

/// Decodes `text` into a model when the scan is certain the serde decoder would
/// accept it and build the same value, or returns `None` (see the module docs): the
/// same rules as [`scan`], with every field's value built instead of skipped.
///
/// Unknown fields' values are checked by the same skipper and then parsed by
/// serde_json itself into the `Value` the serde decoder would keep; strings with
/// escapes are unescaped here, after the scanner has checked them.
pub(crate) fn decode<T: Record>(text: &str) -> Option<T> {
    whole_object(text, &NO_OUTLINE, |s| {
        let mut model = T::default();
        s.build(&mut model)?;
        Some(model)
    })
}

/// Runs `read` on the members of the one object `text` holds (the cursor after its
/// `{`), and returns its result if only whitespace follows the object, as serde_json's
/// `end` requires.
fn whole_object<'a, T>(
    text: &'a str,
    plan: &'static OutlineFields,
    read: impl FnOnce(&mut Scanner<'a>) -> Option<T>,
) -> Option<T> {
    let mut s = Scanner {
        text,
        bytes: text.as_bytes(),
        pos: 0,
        plan,
    };
    if s.ws()? != b'{' {
        return None;
    }
    s.pos += 1;
    let out = read(&mut s)?;
    match s.ws() {
        None => Some(out),
        Some(_) => None,
    }
}

/// The keys of an object the models do not describe (an unknown value's, or a map's),
/// kept to decline a repeated one: up to [`MAX_UNKNOWN`] of them, compared as
/// written. A key with escapes could equal another written differently, so an object
/// with one is accepted only when it has a single key.
#[derive(Default)]
struct Keys<'a> {
    seen: [&'a [u8]; MAX_UNKNOWN],
    count: usize,
    escaped: bool,
}

impl<'a> Keys<'a> {
    /// Reads the next key (the cursor before it, maybe on whitespace) and declines it
    /// if it repeats one, or might.
    #[inline(always)]
    fn next(&mut self, s: &mut Scanner<'a>) -> Option<()> {
        s.ws()?;
        let start = s.pos + 1;
        self.escaped |= s.string()?;
        let bytes = s.bytes;
        let key = bytes.get(start..s.pos - 1)?;
        if self.count == MAX_UNKNOWN
            || (self.escaped && self.count > 0)
            || self.seen[..self.count].contains(&key)
        {
            return None;
        }
        self.seen[self.count] = key;
        self.count += 1;
        Some(())
    }
}

/// A cursor over the body.
pub(crate) struct Scanner<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    /// Where the outline's fields are, for a scan that keeps them.
    plan: &'static OutlineFields,
}

impl<'a> Scanner<'a> {
    /// Skips whitespace and returns the next byte without consuming it; `None` at the
    /// end of the input.
    #[inline(always)]
    fn ws(&mut self) -> Option<u8> {
        loop {
            let b = *self.bytes.get(self.pos)?;
            // One comparison for the usual case: every structural byte is above ' '.
            if b > b' ' {
                return Some(b);
            }
            match b {
                b' ' | b'\n' | b'\t' | b'\r' => self.pos += 1,
                _ => return Some(b),
            }
        }
    }

    /// Consumes `lit` (`null`, `true`, `false`) at the cursor. A fixed-size array
    /// compares inline, where a slice comparison would call `memcmp`.
    #[inline(always)]
    fn literal<const N: usize>(&mut self, lit: &[u8; N]) -> Option<()> {
        let hay: &[u8; N] = self.bytes.get(self.pos..self.pos + N)?.try_into().ok()?;
        if hay == lit {
            self.pos += N;
            Some(())
        } else {
            None
        }
    }

    /// Consumes the next non-whitespace byte, which must be `b`.
    #[inline(always)]
    fn expect(&mut self, b: u8) -> Option<()> {
        if self.ws()? == b {
            self.pos += 1;
            Some(())
        } else {
            None
        }
    }

    /// Reads a string whose opening quote is at the cursor; returns whether it had
    /// escapes. The cursor ends after the closing quote.
    #[inline(always)]
    fn string(&mut self) -> Option<bool> {
        if self.bytes.get(self.pos) != Some(&b'"') {
            return None;
        }
        self.pos += 1;
        let mut escaped = false;
        loop {
            self.pos = find_special(self.bytes, self.pos)?;
            match self.bytes[self.pos] {
                b'"' => {
                    self.pos += 1;
                    return Some(escaped);
                }
                b'\\' => {
                    escaped = true;
                    self.escape()?;
                }
                // A raw control byte: serde_json rejects it.
                _ => return None,
            }
        }
    }

    /// Reads a string the outline keeps: without escapes, so it can be borrowed.
    #[inline]
    fn plain_string(&mut self) -> Option<&'a str> {
        let start = self.pos + 1;
        if self.string()? {
            return None;
        }
        self.text.get(start..self.pos - 1)
    }

    /// Reads one escape sequence at the cursor (on the backslash).
    fn escape(&mut self) -> Option<()> {
        match *self.bytes.get(self.pos + 1)? {
            b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => {
                self.pos += 2;
                Some(())
            }
            b'u' => {
                let n = hex4(self.bytes.get(self.pos + 2..)?)?;
                self.pos += 6;
                match n {
                    // A trailing surrogate first is an error in serde_json.
                    0xDC00..=0xDFFF => None,
                    // A leading surrogate must be followed by `\u` and a trailing one;
                    // serde_json rejects anything else when reading into a `str`.
                    0xD800..=0xDBFF => {
                        if self.bytes.get(self.pos..self.pos + 2)? != b"\\u" {
                            return None;
                        }
                        let low = hex4(self.bytes.get(self.pos + 2..)?)?;
                        if !(0xDC00..=0xDFFF).contains(&low) {
                            return None;
                        }
                        self.pos += 6;
                        Some(())
                    }
                    _ => Some(()),
                }
            }
            _ => None,
        }
    }

    /// Reads an integer that surely fits an `i64` and that serde_json reads as one;
    /// returns its start (after any `-`) and whether it is negative. The value itself
    /// is only computed by [`Scanner::int_value`] where the outline needs it.
    #[inline(always)]
    fn int(&mut self) -> Option<(usize, bool)> {
        let negative = self.bytes.get(self.pos) == Some(&b'-');
        let start = self.pos + usize::from(negative);
        let digits = digit_run(self.bytes, start);
        self.pos = start + digits;
        if digits == 0 || digits > 18 {
            return None;
        }
        // A leading zero before more digits is an error; `-0` is a float to serde_json.
        if self.bytes[start] == b'0' && (digits > 1 || negative) {
            return None;
        }
        // A fraction or an exponent makes a float: an error in an `i64` field, and a
        // range check in an unknown one.
        if matches!(self.bytes.get(self.pos), Some(b'.' | b'e' | b'E')) {
            return None;
        }
        Some((start, negative))
    }

    /// The value of the integer [`Scanner::int`] just read from `start`: at most 18
    /// digits, so it fits.
    #[inline(always)]
    fn int_value(&self, start: usize, negative: bool) -> i64 {
        let digits = &self.bytes[start..self.pos];
        // Whole groups of eight digits at a time (Drone's timestamps have ten), the
        // rest one by one: a chain of ten multiplications is most of the time spent
        // on an integer field otherwise.
        let mut value: u64 = 0;
        let mut chunks = digits.chunks_exact(8);
        for chunk in &mut chunks {
            value = value * 100_000_000 + eight_digits(load8(chunk, 0));
        }
        for &d in chunks.remainder() {
            value = value * 10 + u64::from(d - b'0');
        }
        // At most 18 digits: below 10^18, so it fits an `i64` either way.
        let value = value as i64;
        if negative { -value } else { value }
    }

    /// Consumes the key at the cursor (on its opening quote) and the colon after it if
    /// it is the key of field `next` or a later one, written compactly: a comparison
    /// or two instead of a scan and a search, for the usual case.
    ///
    /// Drone leaves some fields out (`omitempty`), so the fields after `next` are
    /// tried too, each for the price of one byte comparison when it does not match.
    #[inline(always)]
    fn predicted_key(&mut self, schema: &[FieldSpec], next: usize) -> Option<usize> {
        let start = self.pos + 1;
        let rest = self.bytes.get(start..)?;
        if rest.len() < 8 {
            // Near the end of the body: the general path reads it.
            return None;
        }
        // One load for every candidate: most patterns fit in it whole.
        let word = load8(rest, 0);
        let mut i = next;
        while i < schema.len() {
            let spec = &schema[i];
            // Schema keys have no quote, backslash or control byte, so a match of the
            // key, `"` and `:` is the whole key, unescaped.
            if word & spec.mask == spec.head {
                let n = spec.pattern.len();
                if n <= 8
                    || rest
                        .get(8..n)
                        .is_some_and(|r| eq_short(r, &spec.pattern[8..]))
                {
                    self.pos = start + n;
                    return Some(i);
                }
            }
            i += 1;
        }
        None
    }

    /// Reads a key the prediction missed (written with spaces, an alias, an unknown
    /// key, or a field out of order) and the colon after it: the field's index, or
    /// the key itself when the model does not name it.
    fn searched_key(&mut self, schema: &[FieldSpec]) -> Option<Result<usize, &'a [u8]>> {
        let start = self.pos + 1;
        if self.string()? {
            // An escaped key would need unescaping to be matched.
            return None;
        }
        let key = &self.bytes[start..self.pos - 1];
        self.expect(b':')?;
        Some(
            schema
                .iter()
                .position(|spec| {
                    eq_short(key, spec.key.as_bytes())
                        || spec.alias.is_some_and(|a| a.as_bytes() == key)
                })
                .ok_or(key),
        )
    }

    /// Reads the members of an object of a model; the cursor is after the `{`.
    fn object(
        &mut self,
        schema: &'static [FieldSpec],
        role: Role,
        out: &mut FastOutline<'a>,
    ) -> Option<()> {
        // The fields whose values the outline keeps; all others are only checked.
        let plan = self.plan;
        let keep: u64 = match role {
            Role::Envelope => 1 << plan.event | 1 << plan.action | 1 << plan.repo | 1 << plan.build,
            Role::Repo => 1 << plan.repo_slug,
            Role::Build => 1 << plan.build_number | 1 << plan.build_status,
            Role::Other => 0,
        };
        let (mut seen, mut next) = (0, 0);
        let mut unknown: [&[u8]; MAX_UNKNOWN] = [&[]; MAX_UNKNOWN];
        let mut unknowns = 0;
        self.sequence(b'}', |s| {
            match s.member_key(schema, &mut seen, &mut next)? {
                Ok(i) if keep & (1 << i) == 0 => s.value(schema[i].kind),
                Ok(i) => s.kept(schema[i].kind, role, i, out),
                Err(key) => {
                    if unknowns == MAX_UNKNOWN || unknown[..unknowns].contains(&key) {
                        return None;
                    }
                    unknown[unknowns] = key;
                    unknowns += 1;
                    s.any(0)
                }
            }
        })
    }

    /// Reads the key of an object's next member and the colon after it: the index of
    /// the model's field (`seen` marks the fields read, and a repeated one declines;
    /// `next` is the field Drone's order puts next), or the key when the model does
    /// not name it.
    #[inline(always)]
    fn member_key(
        &mut self,
        schema: &[FieldSpec],
        seen: &mut u64,
        next: &mut usize,
    ) -> Option<Result<usize, &'a [u8]>> {
        if self.ws()? != b'"' {
            return None;
        }
        let found = match self.predicted_key(schema, *next) {
            Some(i) => Ok(i),
            None => self.searched_key(schema)?,
        };
        if let Ok(i) = found {
            let bit = 1u64 << i;
            if *seen & bit != 0 {
                return None;
            }
            *seen |= bit;
            *next = i + 1;
        }
        Some(found)
    }

    /// Reads the items of an array or the members of an object whose opening bracket
    /// has been consumed, up to `close`: `item` reads each, the commas are checked here.
    #[inline(always)]
    fn sequence(&mut self, close: u8, mut item: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        if self.ws()? == close {
            self.pos += 1;
            return Some(());
        }
        loop {
            item(self)?;
            match self.ws()? {
                b',' => self.pos += 1,
                b if b == close => {
                    self.pos += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// Fills a model (zero-valued) from the members of its object; the cursor is
    /// after the `{`. The same loop as [`Scanner::object`], with each value built by
    /// the model. Filling in place, rather than returning the model, spares a copy of
    /// every object into its box or list.
    pub(crate) fn build<T: Record>(&mut self, out: &mut T) -> Option<()> {
        let schema = T::SCHEMA;
        let (mut seen, mut next) = (0, 0);
        self.sequence(b'}', |s| {
            match s.member_key(schema, &mut seen, &mut next)? {
                Ok(i) => out.read_field(s, i),
                Err(key) => {
                    // The key had no escapes, so it is the input's own text.
                    let key = std::str::from_utf8(key).ok()?;
                    if out.unknown_len() == MAX_UNKNOWN || out.has_unknown(key) {
                        return None;
                    }
                    let value = if s.ws()? == b'"' {
                        // A string is read once, not skipped and parsed again: an unknown
                        // field holding a large string is the usual way a body gets big.
                        serde_json::Value::String(s.string_value()?.into_owned())
                    } else {
                        let start = s.pos;
                        s.any(0)?;
                        // The skipper has bounded the nesting and declined numbers that
                        // need a range check, so this is the `Value` serde would build.
                        serde_json::from_str(s.text.get(start..s.pos)?).ok()?
                    };
                    out.push_unknown(key.to_owned(), value);
                    Some(())
                }
            }
        })
    }

    /// Whether the next value is `null`, consumed if so: every field's zero value.
    #[inline(always)]
    fn null(&mut self) -> Option<bool> {
        if self.ws()? == b'n' {
            self.literal(b"null")?;
            Some(true)
        } else {
            Some(false)
        }
    }

    /// An `i64` field's value.
    pub(crate) fn read_i64(&mut self) -> Option<i64> {
        if self.null()? {
            return Some(0);
        }
        self.integer()
    }

    /// The integer at the cursor, checked as serde_json reads an `i64` (see
    /// [`Scanner::int`]).
    #[inline(always)]
    fn integer(&mut self) -> Option<i64> {
        if let Some(value) = self.short_int() {
            return Some(value);
        }
        let (start, negative) = self.int()?;
        Some(self.int_value(start, negative))
    }

    /// An integer of at most 15 digits with 16 bytes of input after its first digit
    /// (every integer of a Drone payload but the last bytes'), read and checked from
    /// two loads without a loop: no branch depends on how many digits there are. The
    /// cursor is on the number; `None` leaves it there for [`Scanner::int`], which
    /// reads everything else and declines what serde_json would not take as an `i64`.
    #[inline(always)]
    fn short_int(&mut self) -> Option<i64> {
        let negative = self.bytes.get(self.pos) == Some(&b'-');
        let start = self.pos + usize::from(negative);
        let words = self.bytes.get(start..start + 16)?;
        let (w0, w1) = (load8(words, 0), load8(words, 8));
        let (f0, f1) = (digit_flags(w0), digit_flags(w1));
        let (value, digits) = if f0 != 0 {
            let n = (f0.trailing_zeros() / 8) as usize;
            if n == 0 {
                return None;
            }
            // The digits moved to the top of the word, with zero bytes (read as zero
            // digits) below them.
            (eight_digits(w0 << (8 * (8 - n))), n)
        } else if f1 != 0 {
            let n = (f1.trailing_zeros() / 8) as usize;
            let low = if n == 0 {
                0
            } else {
                eight_digits(w1 << (8 * (8 - n)))
            };
            (eight_digits(w0) * POW10[n] + low, 8 + n)
        } else {
            return None;
        };
        // A leading zero before more digits, `-0`, a fraction or an exponent: the
        // general path's cases.
        if (words[0] == b'0' && (digits > 1 || negative))
            || matches!(words.get(digits), Some(b'.' | b'e' | b'E'))
        {
            return None;
        }
        self.pos = start + digits;
        // At most 15 digits: it fits an `i64` either way.
        let value = value as i64;
        Some(if negative { -value } else { value })
    }

    /// A `bool` field's value.
    pub(crate) fn read_bool(&mut self) -> Option<bool> {
        match self.ws()? {
            b'n' => self.literal(b"null").map(|()| false),
            b't' => self.literal(b"true").map(|()| true),
            _ => self.literal(b"false").map(|()| false),
        }
    }

    /// A string field's value, borrowed when it had no escapes.
    pub(crate) fn read_str(&mut self) -> Option<Cow<'a, str>> {
        if self.null()? {
            return Some(Cow::Borrowed(""));
        }
        self.string_value()
    }

    /// The string at the cursor (on its opening quote), unescaped. Inlined into each
    /// reader of strings (callgrind: 0.8k fewer instructions per build payload).
    #[inline(always)]
    fn string_value(&mut self) -> Option<Cow<'a, str>> {
        let start = self.pos + 1;
        let escaped = self.string()?;
        let raw = self.text.get(start..self.pos - 1)?;
        if escaped {
            unescape(raw).map(Cow::Owned)
        } else {
            Some(Cow::Borrowed(raw))
        }
    }

    /// A map of strings to strings; a repeated key (compared unescaped) declines.
    pub(crate) fn read_str_map(&mut self) -> Option<BTreeMap<String, String>> {
        let mut map = BTreeMap::new();
        if !self.null()? {
            self.expect(b'{')?;
            self.sequence(b'}', |s| {
                s.ws()?;
                let key = s.string_value()?.into_owned();
                s.expect(b':')?;
                s.ws()?;
                match map.insert(key, s.string_value()?.into_owned()) {
                    None => Some(()),
                    Some(_) => None,
                }
            })?;
        }
        Some(map)
    }

    /// A list of strings (a `null` element is an error in a `Vec<String>`).
    pub(crate) fn read_str_list(&mut self) -> Option<Vec<String>> {
        let mut list = Vec::new();
        if !self.null()? {
            self.expect(b'[')?;
            self.sequence(b']', |s| {
                s.ws()?;
                list.push(s.string_value()?.into_owned());
                Some(())
            })?;
        }
        Some(list)
    }

    /// An optional object of a model into `slot`: `null` leaves it `None`.
    pub(crate) fn read_obj<T: Record>(&mut self, slot: &mut Option<Box<T>>) -> Option<()> {
        if self.null()? {
            return Some(());
        }
        self.expect(b'{')?;
        let boxed = slot.insert(Box::<T>::default());
        self.build(&mut **boxed)
    }

    /// A list of objects of a model (a `null` element is an error in a `Vec`).
    pub(crate) fn read_obj_list<T: Record>(&mut self) -> Option<Vec<T>> {
        let mut list = Vec::new();
        if !self.null()? {
            self.expect(b'[')?;
            self.sequence(b']', |s| {
                s.expect(b'{')?;
                // Room for one first when four would be more than 1 KB: a build has
                // one stage more often than not, and `Vec`'s first growth (to four) of
                // 440-byte stages is a 1.7 KB request, past glibc's per-thread cache.
                if 4 * size_of::<T>() > 1024 && list.capacity() == 0 {
                    list.reserve_exact(1);
                }
                list.push(T::default());
                s.build(list.last_mut()?)
            })?;
        }
        Some(list)
    }

    /// Reads the value of a field the outline keeps: field `index` of an object in
    /// `role`.
    #[inline(never)]
    fn kept(
        &mut self,
        kind: Kind,
        role: Role,
        index: usize,
        out: &mut FastOutline<'a>,
    ) -> Option<()> {
        if self.ws()? == b'n' {
            // `null` is the zero value, which is what the outline already holds.
            return self.literal(b"null");
        }
        let plan = self.plan;
        match (role, kind) {
            (Role::Build, Kind::Int) if index == plan.build_number => {
                out.build_number = Some(self.integer()?);
            }
            (Role::Envelope, Kind::Str) if index == plan.event => {
                out.event = self.plain_string()?;
            }
            (Role::Envelope, Kind::Str) if index == plan.action => {
                out.action = self.plain_string()?;
            }
            (Role::Build, Kind::Str) if index == plan.build_status => {
                out.build_status = self.plain_string()?;
            }
            (Role::Repo, Kind::Str) if index == plan.repo_slug => {
                out.repo_slug = self.plain_string()?;
            }
            (Role::Envelope, Kind::Obj(fields)) if index == plan.repo => {
                self.expect(b'{')?;
                self.object(fields, Role::Repo, out)?;
            }
            (Role::Envelope, Kind::Obj(fields)) if index == plan.build => {
                self.expect(b'{')?;
                // A build object without a number has build number 0.
                out.build_number = Some(0);
                self.object(fields, Role::Build, out)?;
            }
            // The table and the plan disagree: decline rather than guess.
            _ => return None,
        }
        Some(())
    }

    /// Reads and checks the value of a field of this kind, keeping nothing.
    #[inline(always)]
    fn value(&mut self, kind: Kind) -> Option<()> {
        let first = self.ws()?;
        if first == b'n' {
            // `null` reads as the zero value for every kind.
            return self.literal(b"null");
        }
        match kind {
            Kind::Int => {
                self.integer()?;
            }
            Kind::Bool => {
                if first == b't' {
                    self.literal(b"true")?;
                } else {
                    self.literal(b"false")?;
                }
            }
            Kind::Str => {
                self.string()?;
            }
            Kind::StrMap => self.str_map()?,
            Kind::StrList => self.str_list()?,
            Kind::Obj(fields) => {
                self.expect(b'{')?;
                self.object(fields, Role::Other, &mut FastOutline::default())?;
            }
            Kind::ObjList(fields) => self.object_list(fields)?,
        }
        Some(())
    }

    /// Reads a map of strings to strings; a repeated key declines.
    fn str_map(&mut self) -> Option<()> {
        self.expect(b'{')?;
        let mut keys = Keys::default();
        self.sequence(b'}', |s| {
            keys.next(s)?;
            s.expect(b':')?;
            s.ws()?;
            s.string().map(drop)
        })
    }

    /// Reads a list of strings (a `null` element is an error in a `Vec<String>`).
    fn str_list(&mut self) -> Option<()> {
        self.expect(b'[')?;
        self.sequence(b']', |s| {
            s.ws()?;
            s.string().map(drop)
        })
    }

    /// Reads a list of objects of a model (a `null` element is an error in a `Vec`).
    fn object_list(&mut self, fields: &'static [FieldSpec]) -> Option<()> {
        self.expect(b'[')?;
        self.sequence(b']', |s| {
            s.expect(b'{')?;
            s.object(fields, Role::Other, &mut FastOutline::default())
        })
    }

    /// Reads an unknown field's value as `serde_json::Value` would, declining numbers
    /// that need a range check (floats, 19 digits or more).
    fn any(&mut self, depth: u32) -> Option<()> {
        match self.ws()? {
            b'"' => {
                self.string()?;
            }
            b't' => self.literal(b"true")?,
            b'f' => self.literal(b"false")?,
            b'n' => self.literal(b"null")?,
            b'-' | b'0'..=b'9' => {
                self.integer()?;
            }
            b'[' => {
                if depth >= MAX_ANY_DEPTH {
                    return None;
                }
                self.pos += 1;
                self.sequence(b']', |s| s.any(depth + 1))?;
            }
            b'{' => {
                if depth >= MAX_ANY_DEPTH {
                    return None;
                }
                self.pos += 1;
                let mut keys = Keys::default();
                self.sequence(b'}', |s| {
                    keys.next(s)?;
                    s.expect(b':')?;
                    s.any(depth + 1)
                })?;
            }
            _ => return None,
        }
        Some(())
    }
}
