//! [`Text`], the models' string type.

use std::borrow::{Borrow, Cow};
use std::fmt;
use std::ops::Deref;
use std::str::FromStr;

use compact_str::CompactString;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The models' string type: an immutable string that dereferences to `str`.
///
/// A string of up to 24 bytes is stored inline, which saves most of a payload's heap
/// allocations (most of Drone's strings are short: logins, statuses, branch names,
/// step names). Build one with `.into()` from a `&str` or a `String`; read it with
/// `.as_str()` or through `Deref`, and turn it into a `String` with `.to_string()` or
/// `String::from`. It compares with `str`, `&str` and `String`.
///
/// ```
/// use dronehook_protocol::Text;
///
/// let login: Text = "octocat".into();
/// assert_eq!(login, "octocat");
/// assert_eq!(login.len(), 7);
/// assert!(login.starts_with("octo"));
/// assert_eq!(String::from(login), "octocat");
/// ```
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Text(CompactString);

impl Text {
    /// The empty string.
    pub const fn new() -> Text {
        Text(CompactString::const_new(""))
    }

    /// The string.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl Deref for Text {
    type Target = str;

    fn deref(&self) -> &str {
        self.0.as_str()
    }
}

impl AsRef<str> for Text {
    fn as_ref(&self) -> &str {
        self.0.as_str()
    }
}

impl AsRef<[u8]> for Text {
    fn as_ref(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl Borrow<str> for Text {
    fn borrow(&self) -> &str {
        self.0.as_str()
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.0.as_str(), f)
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.0.as_str(), f)
    }
}

impl From<&str> for Text {
    fn from(s: &str) -> Text {
        Text(CompactString::from(s))
    }
}

impl From<String> for Text {
    fn from(s: String) -> Text {
        Text(CompactString::from(s))
    }
}

impl From<&String> for Text {
    fn from(s: &String) -> Text {
        Text(CompactString::from(s.as_str()))
    }
}

impl From<Box<str>> for Text {
    fn from(s: Box<str>) -> Text {
        Text(CompactString::from(s))
    }
}

impl<'a> From<Cow<'a, str>> for Text {
    fn from(s: Cow<'a, str>) -> Text {
        Text(CompactString::from(s))
    }
}

impl From<char> for Text {
    fn from(c: char) -> Text {
        Text(CompactString::from(&*c.encode_utf8(&mut [0; 4])))
    }
}

impl From<Text> for String {
    fn from(t: Text) -> String {
        t.0.into_string()
    }
}

impl FromStr for Text {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Text, Self::Err> {
        Ok(Text::from(s))
    }
}

impl FromIterator<char> for Text {
    fn from_iter<I: IntoIterator<Item = char>>(iter: I) -> Text {
        Text(iter.into_iter().collect())
    }
}

impl<'a> FromIterator<&'a str> for Text {
    fn from_iter<I: IntoIterator<Item = &'a str>>(iter: I) -> Text {
        Text(iter.into_iter().collect())
    }
}

impl PartialEq<str> for Text {
    fn eq(&self, other: &str) -> bool {
        self.0.as_str() == other
    }
}

impl PartialEq<&str> for Text {
    fn eq(&self, other: &&str) -> bool {
        self.0.as_str() == *other
    }
}

impl PartialEq<String> for Text {
    fn eq(&self, other: &String) -> bool {
        self.0.as_str() == other.as_str()
    }
}

impl PartialEq<Text> for str {
    fn eq(&self, other: &Text) -> bool {
        self == other.as_str()
    }
}

impl PartialEq<Text> for &str {
    fn eq(&self, other: &Text) -> bool {
        *self == other.as_str()
    }
}

impl PartialEq<Text> for String {
    fn eq(&self, other: &Text) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Serialize for Text {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0.as_str())
    }
}

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Text, D::Error> {
        CompactString::deserialize(d).map(Text)
    }
}

#[cfg(test)]
mod tests {
    use super::Text;

    #[test]
    fn behaves_as_a_string() {
        let short = Text::from("octocat");
        let long = Text::from("a string longer than twenty-four bytes".to_owned());
        assert_eq!(short, "octocat");
        assert_eq!("octocat", short);
        assert_eq!(short, *"octocat");
        assert_eq!(short, "octocat".to_owned());
        assert_eq!(long.len(), 38);
        assert_eq!(format!("{short} {short:?}"), r#"octocat "octocat""#);
        assert!(long < short, "ordered as strings are");
        assert_eq!(Text::new(), Text::default());
        assert!(Text::new().is_empty());
        assert_eq!(String::from(long.clone()), long.as_str());
        assert_eq!(serde_json::to_string(&short).unwrap(), r#""octocat""#);
        assert_eq!(serde_json::from_str::<Text>(r#""a\nb""#).unwrap(), "a\nb");
        let set: std::collections::HashSet<Text> = [short.clone()].into();
        assert!(set.contains("octocat"));
    }
}
