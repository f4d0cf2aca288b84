//! Event filters with `DRONE_WEBHOOK_EVENTS` semantics: comma-separated Go
//! `filepath.Match` globs matched against `event:action` (or `event` alone when the
//! action is empty). An empty filter passes everything.
//!
//! The glob matcher is a port of Go's `path/filepath.Match` on Unix, so patterns
//! behave exactly as they do in a Drone server: `*` and `?` never match `/`,
//! `[...]` classes take ranges and `^` negation, `\` escapes. A consequence users
//! trip over, and which this port keeps: `repo` does not match `repo:enabled`.

use std::fmt;

/// The name a filter is matched against: `event:action`, or `event` when the action is empty.
pub fn filter_name(event: &str, action: &str) -> String {
    if action.is_empty() {
        event.to_owned()
    } else {
        format!("{event}:{action}")
    }
}

/// A pattern that Go's `filepath.Match` would reject with `ErrBadPattern`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadPattern {
    pattern: String,
}

impl BadPattern {
    /// The offending pattern.
    pub fn pattern(&self) -> &str {
        &self.pattern
    }
}

impl fmt::Display for BadPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "syntax error in event pattern {:?}", self.pattern)
    }
}

impl std::error::Error for BadPattern {}

/// A parsed `DRONE_WEBHOOK_EVENTS` value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    patterns: Vec<String>,
}

impl EventFilter {
    /// A filter that passes every event.
    pub fn all() -> Self {
        EventFilter::default()
    }

    /// Parses a comma-separated list; blank entries are ignored (Drone splits the
    /// same way). Every pattern is checked, so a typo is reported at start-up rather
    /// than silently matching nothing as it would in Drone.
    pub fn parse(list: &str) -> Result<Self, BadPattern> {
        EventFilter::from_patterns(list.split(','))
    }

    /// Builds a filter from separate patterns.
    pub fn from_patterns<I, S>(patterns: I) -> Result<Self, BadPattern>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut out = Vec::new();
        for p in patterns {
            let p = p.as_ref().trim();
            if p.is_empty() {
                continue;
            }
            validate(p).map_err(|()| BadPattern {
                pattern: p.to_owned(),
            })?;
            out.push(p.to_owned());
        }
        Ok(EventFilter { patterns: out })
    }

    /// The patterns, as given.
    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }

    /// Whether the filter passes everything (no patterns).
    pub fn is_all(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether an event with this event and action passes.
    pub fn matches(&self, event: &str, action: &str) -> bool {
        if self.patterns.is_empty() {
            return true;
        }
        let name = filter_name(event, action);
        self.patterns
            .iter()
            .any(|p| glob_match(p, &name).unwrap_or(false))
    }
}

impl fmt::Display for EventFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.patterns.join(","))
    }
}

/// Go's `filepath.Match(pattern, name)` on Unix.
pub fn glob_match(pattern: &str, name: &str) -> Result<bool, BadPattern> {
    go_match(pattern, name).map_err(|()| BadPattern {
        pattern: pattern.to_owned(),
    })
}

const SEPARATOR: char = '/';

fn go_match(mut pattern: &str, mut name: &str) -> Result<bool, ()> {
    'pattern: while !pattern.is_empty() {
        let (star, chunk, rest) = scan_chunk(pattern);
        pattern = rest;
        if star && chunk.is_empty() {
            // A trailing `*` matches the rest of the name unless it has a separator.
            return Ok(!name.contains(SEPARATOR));
        }
        // Look for a match at the current position. When this is the last chunk, the
        // name must be used up, or the star may still find a later match.
        let (t, ok) = match_chunk(chunk, name)?;
        if ok && (t.is_empty() || !pattern.is_empty()) {
            name = t;
            continue;
        }
        if star {
            // Look for a match skipping i+1 bytes; a star cannot skip a separator.
            for (i, c) in name.char_indices() {
                if c == SEPARATOR {
                    break;
                }
                let (t, ok) = match_chunk(chunk, &name[i + c.len_utf8()..])?;
                if ok {
                    if pattern.is_empty() && !t.is_empty() {
                        continue;
                    }
                    name = t;
                    continue 'pattern;
                }
            }
        }
        // Before answering no, check that the rest of the pattern is well formed.
        validate(pattern)?;
        return Ok(false);
    }
    Ok(name.is_empty())
}

/// Checks a pattern's syntax the way Go does before it answers "no match".
fn validate(mut pattern: &str) -> Result<(), ()> {
    while !pattern.is_empty() {
        let (_, chunk, rest) = scan_chunk(pattern);
        pattern = rest;
        match_chunk(chunk, "")?;
    }
    Ok(())
}

/// Splits off leading stars and the chunk up to the next star outside a class.
fn scan_chunk(pattern: &str) -> (bool, &str, &str) {
    let trimmed = pattern.trim_start_matches('*');
    let star = trimmed.len() != pattern.len();
    let bytes = trimmed.as_bytes();
    let mut in_range = false;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if i + 1 < bytes.len() => i += 1,
            b'[' => in_range = true,
            b']' => in_range = false,
            b'*' if !in_range => break,
            _ => {}
        }
        i += 1;
    }
    // An escape may have stepped onto the first byte of a multi-byte character;
    // move to the end of that character so the split stays on a boundary.
    while !trimmed.is_char_boundary(i) {
        i += 1;
    }
    (star, &trimmed[..i], &trimmed[i..])
}

/// Matches one chunk at the start of `s`: the rest of `s` and whether it matched.
fn match_chunk<'a>(mut chunk: &str, mut s: &'a str) -> Result<(&'a str, bool), ()> {
    // After the match fails, the loop still reads the chunk to check its syntax.
    let mut failed = false;
    while let Some(c0) = chunk.chars().next() {
        if !failed && s.is_empty() {
            failed = true;
        }
        match c0 {
            '[' => {
                let mut r = '\0';
                if !failed {
                    let c = s.chars().next().unwrap_or('\0');
                    r = c;
                    s = &s[c.len_utf8()..];
                }
                chunk = &chunk[1..];
                let negated = chunk.starts_with('^');
                if negated {
                    chunk = &chunk[1..];
                }
                let mut matched = false;
                let mut ranges = 0;
                loop {
                    if chunk.starts_with(']') && ranges > 0 {
                        chunk = &chunk[1..];
                        break;
                    }
                    let (lo, rest) = get_esc(chunk)?;
                    chunk = rest;
                    let mut hi = lo;
                    if let Some(rest) = chunk.strip_prefix('-') {
                        let (h, rest) = get_esc(rest)?;
                        hi = h;
                        chunk = rest;
                    }
                    if lo <= r && r <= hi {
                        matched = true;
                    }
                    ranges += 1;
                }
                if matched == negated {
                    failed = true;
                }
            }
            '?' => {
                if !failed {
                    let c = s.chars().next().unwrap_or('\0');
                    if c == SEPARATOR {
                        failed = true;
                    }
                    s = &s[c.len_utf8()..];
                }
                chunk = &chunk[1..];
            }
            _ => {
                let mut lit = c0;
                if c0 == '\\' {
                    chunk = &chunk[1..];
                    lit = chunk.chars().next().ok_or(())?;
                }
                if !failed {
                    // Go compares bytes here; comparing the first character of each
                    // side is the same on valid UTF-8.
                    let c = s.chars().next().unwrap_or('\0');
                    if c != lit {
                        failed = true;
                    }
                    s = &s[c.len_utf8()..];
                }
                chunk = &chunk[lit.len_utf8()..];
            }
        }
    }
    if failed {
        Ok(("", false))
    } else {
        Ok((s, true))
    }
}

/// Reads one possibly escaped character of a class.
fn get_esc(chunk: &str) -> Result<(char, &str), ()> {
    let mut chunk = chunk;
    if chunk.is_empty() || chunk.starts_with('-') || chunk.starts_with(']') {
        return Err(());
    }
    if let Some(rest) = chunk.strip_prefix('\\') {
        chunk = rest;
    }
    let c = chunk.chars().next().ok_or(())?;
    let rest = &chunk[c.len_utf8()..];
    if rest.is_empty() {
        return Err(());
    }
    Ok((c, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cases from Go's own `filepath` tests plus Drone's filter rules.
    #[test]
    fn go_match_table() {
        let cases: &[(&str, &str, Result<bool, ()>)] = &[
            ("abc", "abc", Ok(true)),
            ("*", "abc", Ok(true)),
            ("*c", "abc", Ok(true)),
            ("a*", "a", Ok(true)),
            ("a*", "abc", Ok(true)),
            ("a*", "ab/c", Ok(false)),
            ("a*/b", "abc/b", Ok(true)),
            ("a*/b", "a/c/b", Ok(false)),
            ("a*b*c*d*e*/f", "axbxcxdxe/f", Ok(true)),
            ("a*b*c*d*e*/f", "axbxcxdxexxx/f", Ok(true)),
            ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", Ok(false)),
            ("a*b*c*d*e*/f", "axbxcxdxexxx/fff", Ok(false)),
            ("a*b?c*x", "abxbbxdbxebxczzx", Ok(true)),
            ("a*b?c*x", "abxbbxdbxebxczzy", Ok(false)),
            ("ab[c]", "abc", Ok(true)),
            ("ab[b-d]", "abc", Ok(true)),
            ("ab[e-g]", "abc", Ok(false)),
            ("ab[^c]", "abc", Ok(false)),
            ("ab[^b-d]", "abc", Ok(false)),
            ("ab[^e-g]", "abc", Ok(true)),
            ("a\\*b", "a*b", Ok(true)),
            ("a\\*b", "ab", Ok(false)),
            ("a?b", "a☺b", Ok(true)),
            ("a[^a]b", "a☺b", Ok(true)),
            ("a???b", "a☺b", Ok(false)),
            ("a[^a][^a][^a]b", "a☺b", Ok(false)),
            ("[a-ζ]*", "α", Ok(true)),
            ("*[a-ζ]", "A", Ok(false)),
            ("a?b", "a/b", Ok(false)),
            ("a*b", "a/b", Ok(false)),
            ("[\\]a]", "]", Ok(true)),
            ("[\\-]", "-", Ok(true)),
            ("[x\\-]", "x", Ok(true)),
            ("[x\\-]", "-", Ok(true)),
            ("[x\\-]", "z", Ok(false)),
            ("[\\-x]", "x", Ok(true)),
            ("[\\-x]", "-", Ok(true)),
            ("[\\-x]", "a", Ok(false)),
            ("[]a]", "]", Err(())),
            ("[-]", "-", Err(())),
            ("[x-]", "x", Err(())),
            ("[x-]", "-", Err(())),
            ("[x-]", "z", Err(())),
            ("[-x]", "x", Err(())),
            ("[-x]", "-", Err(())),
            ("[-x]", "a", Err(())),
            ("\\", "a", Err(())),
            ("[a-b-c]", "a", Err(())),
            ("[", "a", Err(())),
            ("[^", "a", Err(())),
            ("[^bc", "a", Err(())),
            ("a[", "a", Err(())),
            ("a[", "ab", Err(())),
            ("a[", "x", Err(())),
            ("a/b[", "x", Err(())),
            ("*x", "xxx", Ok(true)),
        ];
        for (pattern, name, expected) in cases {
            assert_eq!(
                go_match(pattern, name),
                *expected,
                "Match({pattern:?}, {name:?})"
            );
        }
    }

    #[test]
    fn drone_filter_rules() {
        let f = EventFilter::parse("repo:*, build:updated,user:created").unwrap();
        assert!(f.matches("repo", "enabled"));
        assert!(f.matches("build", "updated"));
        assert!(!f.matches("build", "created"));
        assert!(f.matches("user", "created"));
        let bare = EventFilter::parse("repo").unwrap();
        assert!(
            !bare.matches("repo", "enabled"),
            "`repo` does not match `repo:enabled`"
        );
        assert!(
            bare.matches("repo", ""),
            "`repo` matches an event with no action"
        );
        assert!(
            EventFilter::parse("")
                .unwrap()
                .matches("anything", "at_all")
        );
        assert!(EventFilter::parse(" , ").unwrap().is_all());
        assert_eq!(
            EventFilter::parse("build:[").unwrap_err().pattern(),
            "build:["
        );
    }
}
