//! The payload models: [`Envelope`] and the objects it carries.
//!
//! Every struct is declared once through the `model!` macro, which generates the
//! struct, a lenient-but-strict `Deserialize` (missing fields default, `null` reads as
//! the zero value, unknown fields are kept, duplicate keys are errors) and a Go
//! `encoding/json`-identical encoder (field order, `omitempty`). One declaration per
//! struct keeps the three from drifting apart.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::Value;

use crate::enums::{Action, Event, Status};
use crate::gojson;
use crate::json::unique::{UniqueStrMap, UniqueValue};
use crate::json::{FieldSpec, Kind, Record, Scanner, fits_mask, index_of};
use crate::text::Text;

/// A value that can be a field of a model: written the Go way, with Go's notion of zero.
pub(crate) trait Field: Default {
    /// What the scanner expects in its place (see `json/schema.rs`).
    const KIND: Kind;
    /// Reads the value at the scanner's cursor on the fast decoding path (see
    /// `json/scanner.rs`); `None` declines.
    fn fast_read(s: &mut Scanner<'_>) -> Option<Self>;
    /// [`Field::fast_read`] into a model's field, out of line: one copy per type
    /// rather than one per field keeps each model's dispatch small enough that the
    /// decoder's code stays in the instruction cache.
    #[inline(never)]
    fn fast_read_into(&mut self, s: &mut Scanner<'_>) -> Option<()> {
        *self = Self::fast_read(s)?;
        Some(())
    }
    /// Reads the value of a member with serde: `null` reads as the zero value, as Go's
    /// decoder leaves it.
    fn read_value<'de, A: MapAccess<'de>>(map: &mut A) -> Result<Self, A::Error>
    where
        Self: Deserialize<'de>,
    {
        Ok(map.next_value::<Option<Self>>()?.unwrap_or_default())
    }
    /// Appends the value's Go JSON encoding.
    fn write(&self, out: &mut Vec<u8>);
    /// Whether `omitempty` leaves the field out.
    fn is_zero(&self) -> bool;
}

impl Field for i64 {
    const KIND: Kind = Kind::Int;
    fn fast_read(s: &mut Scanner<'_>) -> Option<Self> {
        s.read_i64()
    }
    fn write(&self, out: &mut Vec<u8>) {
        gojson::write_i64(out, *self);
    }
    fn is_zero(&self) -> bool {
        *self == 0
    }
}

impl Field for bool {
    const KIND: Kind = Kind::Bool;
    fn fast_read(s: &mut Scanner<'_>) -> Option<Self> {
        s.read_bool()
    }
    fn write(&self, out: &mut Vec<u8>) {
        gojson::write_bool(out, *self);
    }
    fn is_zero(&self) -> bool {
        !*self
    }
}

impl Field for Text {
    const KIND: Kind = Kind::Str;
    fn write(&self, out: &mut Vec<u8>) {
        gojson::write_str(out, self);
    }
    fn fast_read(s: &mut Scanner<'_>) -> Option<Self> {
        // Strings of up to 24 bytes, most of a Drone payload's, are stored inline;
        // an unescaped copy made for a longer one is kept without another copy.
        s.read_str().map(Text::from)
    }
    fn is_zero(&self) -> bool {
        self.is_empty()
    }
}

macro_rules! enum_field {
    ($($t:ty),*) => {$(
        impl Field for $t {
            const KIND: Kind = Kind::Str;
            fn fast_read(s: &mut Scanner<'_>) -> Option<Self> {
                s.read_str().map(|v| <$t>::parse(&v))
            }
            fn write(&self, out: &mut Vec<u8>) {
                gojson::write_str(out, self.as_str());
            }
            fn is_zero(&self) -> bool {
                self.as_str().is_empty()
            }
        }
    )*};
}
enum_field!(Event, Action, Status);

impl Field for BTreeMap<String, String> {
    const KIND: Kind = Kind::StrMap;
    fn fast_read(s: &mut Scanner<'_>) -> Option<Self> {
        s.read_str_map()
    }
    fn read_value<'de, A: MapAccess<'de>>(map: &mut A) -> Result<Self, A::Error> {
        // A repeated key is an error, where a `BTreeMap` would keep the last value.
        Ok(map
            .next_value::<Option<UniqueStrMap>>()?
            .map(|m| m.0)
            .unwrap_or_default())
    }
    fn write(&self, out: &mut Vec<u8>) {
        gojson::write_string_map(out, self);
    }
    fn is_zero(&self) -> bool {
        self.is_empty()
    }
}

impl Field for Vec<String> {
    const KIND: Kind = Kind::StrList;
    fn fast_read(s: &mut Scanner<'_>) -> Option<Self> {
        s.read_str_list()
    }
    fn write(&self, out: &mut Vec<u8>) {
        out.push(b'[');
        for (i, s) in self.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            gojson::write_str(out, s);
        }
        out.push(b']');
    }
    fn is_zero(&self) -> bool {
        self.is_empty()
    }
}

/// A model struct: read by the scanner through its [`Record`] table, and encodes
/// itself as a Go JSON object.
pub(crate) trait Object: Record {
    fn write_object(&self, out: &mut Vec<u8>);
}

impl<T: Object> Field for Vec<T> {
    const KIND: Kind = Kind::ObjList(T::SCHEMA);
    fn fast_read(s: &mut Scanner<'_>) -> Option<Self> {
        s.read_obj_list()
    }
    fn write(&self, out: &mut Vec<u8>) {
        out.push(b'[');
        for (i, item) in self.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            item.write_object(out);
        }
        out.push(b']');
    }
    fn is_zero(&self) -> bool {
        self.is_empty()
    }
}

impl<T: Object> Field for Option<Box<T>> {
    const KIND: Kind = Kind::Obj(T::SCHEMA);
    fn fast_read(s: &mut Scanner<'_>) -> Option<Self> {
        let mut slot = None;
        s.read_obj(&mut slot)?;
        Some(slot)
    }
    fn write(&self, out: &mut Vec<u8>) {
        match self {
            Some(v) => v.write_object(out),
            None => out.extend_from_slice(b"null"),
        }
    }
    fn is_zero(&self) -> bool {
        self.is_none()
    }
}

/// Fields a payload carried that the models do not name, in the order they came.
///
/// They are written back after the named fields, so that decoding and encoding a
/// payload from a newer Drone loses nothing.
#[derive(Clone, Default, PartialEq, Debug)]
pub struct Extra(Vec<(String, Value)>);

impl Extra {
    /// The value of an unknown field, if the payload had it.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Adds or replaces a field.
    pub fn insert(&mut self, key: impl Into<String>, value: Value) {
        let key = key.into();
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.0.push((key, value)),
        }
    }

    /// The fields in the order they were received.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// How many unknown fields there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(crate) fn contains(&self, key: &str) -> bool {
        self.0.iter().any(|(k, _)| k == key)
    }

    /// Appends a field the decoders have already checked is not there.
    pub(crate) fn push(&mut self, key: String, value: Value) {
        self.0.push((key, value));
    }

    fn write_fields(&self, out: &mut Vec<u8>, first: &mut bool) {
        for (k, v) in &self.0 {
            if !std::mem::take(first) {
                out.push(b',');
            }
            gojson::write_str(out, k);
            out.push(b':');
            gojson::write_value(out, v);
        }
    }
}

/// An object key, borrowed from the input when it has no escapes.
enum Key<'de> {
    Borrowed(&'de str),
    Owned(String),
}

impl Key<'_> {
    fn as_str(&self) -> &str {
        match self {
            Key::Borrowed(s) => s,
            Key::Owned(s) => s,
        }
    }
}

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Key<'de>, E> {
                Ok(Key::Borrowed(s))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Key<'de>, E> {
                Ok(Key::Owned(s.to_owned()))
            }
        }
        d.deserialize_str(V)
    }
}

macro_rules! omit {
    (keep) => {
        false
    };
    (omit) => {
        true
    };
}

/// A field's alias for the schema table, if the declaration names one.
macro_rules! alias {
    () => {
        None
    };
    ($alias:literal) => {
        Some($alias)
    };
}

macro_rules! model {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $(
                $(#[doc = $doc:literal])*
                $omit:ident $field:ident : $ty:ty = $key:literal $(| $alias:literal)? ;
            )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Default, PartialEq, Debug)]
        #[non_exhaustive]
        pub struct $name {
            $( $(#[doc = $doc])* pub $field: $ty, )*
            /// Fields this version of dronehook does not know, kept and written back.
            pub extra: Extra,
        }

        impl $name {
            /// The wire names of the fields, in Drone's order.
            pub const FIELDS: &'static [&'static str] = &[$($key),*];

            /// The object's Go `encoding/json` bytes.
            pub fn to_go_json(&self) -> Vec<u8> {
                let mut out = Vec::with_capacity(256);
                Object::write_object(self, &mut out);
                out
            }
        }

        impl Record for $name {
            const SCHEMA: &'static [FieldSpec] = &[$(
                FieldSpec::new($key, concat!($key, "\":"), alias!($($alias)?), <$ty as Field>::KIND),
            )*];

            fn read_field(&mut self, s: &mut Scanner<'_>, index: usize) -> Option<()> {
                // A chain of comparisons with constants, which the compiler turns into
                // one jump.
                $(
                    if index == { const I: usize = index_of($name::FIELDS, $key); I } {
                        return Field::fast_read_into(&mut self.$field, s);
                    }
                )*
                None
            }

            fn unknown_len(&self) -> usize {
                self.extra.len()
            }

            fn has_unknown(&self, key: &str) -> bool {
                self.extra.contains(key)
            }

            fn push_unknown(&mut self, key: String, value: Value) {
                self.extra.push(key, value);
            }
        }

        impl Object for $name {

            fn write_object(&self, out: &mut Vec<u8>) {
                out.push(b'{');
                let mut first = true;
                $(
                    if !(omit!($omit) && Field::is_zero(&self.$field)) {
                        // One literal with the comma, another without for the first
                        // field: a copy of a constant length per field, which the
                        // compiler writes inline, instead of a push and a copy.
                        if std::mem::take(&mut first) {
                            out.extend_from_slice(concat!("\"", $key, "\":").as_bytes());
                        } else {
                            out.extend_from_slice(concat!(",\"", $key, "\":").as_bytes());
                        }
                        Field::write(&self.$field, out);
                    }
                )*
                self.extra.write_fields(out, &mut first);
                out.push(b'}');
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> Visitor<'de> for V {
                    type Value = $name;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str(concat!("a JSON object (", stringify!($name), ")"))
                    }
                    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<$name, A::Error> {
                        let mut out = $name::default();
                        let mut seen = [false; $name::FIELDS.len()];
                        while let Some(key) = map.next_key::<Key<'de>>()? {
                            match key.as_str() {
                                $(
                                    $key $(| $alias)? => {
                                        const I: usize = index_of($name::FIELDS, $key);
                                        if std::mem::replace(&mut seen[I], true) {
                                            return Err(de::Error::custom(format_args!(
                                                "duplicate field `{}` in {}", key.as_str(), stringify!($name)
                                            )));
                                        }
                                        out.$field = <$ty as Field>::read_value(&mut map)?;
                                    }
                                )*
                                other => {
                                    if out.extra.contains(other) {
                                        return Err(de::Error::custom(format_args!(
                                            "duplicate field `{}` in {}", other, stringify!($name)
                                        )));
                                    }
                                    let UniqueValue(value) = map.next_value()?;
                                    out.extra.push(other.to_owned(), value);
                                }
                            }
                        }
                        Ok(out)
                    }
                }
                d.deserialize_map(V)
            }
        }
    };
}

model! {
    /// The envelope Drone POSTs: what happened (`event`, `action`) and the objects involved.
    pub struct Envelope {
        /// The kind of object: `user`, `repo` or `build`.
        keep event: Event = "event";
        /// What happened: `created`, `updated`, `deleted`, `enabled` or `disabled`.
        keep action: Action = "action";
        /// The user: present for `user` events, repository enabling and most build creations.
        omit user: Option<Box<User>> = "user";
        /// The repository: present for `repo` and `build` events.
        omit repo: Option<Box<Repo>> = "repo";
        /// The build: present for `build` events.
        omit build: Option<Box<Build>> = "build";
        /// The Drone server, when it knows its own address.
        omit system: Option<Box<System>> = "system";
    }
}

model! {
    /// A Drone user account.
    pub struct User {
        /// Drone's id of the user.
        keep id: i64 = "id";
        /// The login name at the source-code host.
        keep login: Text = "login";
        /// The e-mail address.
        keep email: Text = "email";
        /// Whether this is a machine (robot) account.
        keep machine: bool = "machine";
        /// Whether the user is a Drone administrator.
        keep admin: bool = "admin";
        /// Whether the account is active.
        keep active: bool = "active";
        /// The avatar URL; drone-go's client copy names it `avatar_url`, accepted on input.
        keep avatar: Text = "avatar" | "avatar_url";
        /// Whether the user's repository list is being synchronised.
        keep syncing: bool = "syncing";
        /// When the repository list was last synchronised (Unix seconds).
        keep synced: i64 = "synced";
        /// When the account was created (Unix seconds).
        keep created: i64 = "created";
        /// When the account was last updated (Unix seconds).
        keep updated: i64 = "updated";
        /// When the user last logged in (Unix seconds).
        keep last_login: i64 = "last_login";
    }
}

model! {
    /// A repository known to Drone.
    pub struct Repo {
        /// Drone's id of the repository.
        keep id: i64 = "id";
        /// The source-code host's id of the repository.
        keep uid: Text = "uid";
        /// The id of the user who activated it.
        keep user_id: i64 = "user_id";
        /// The owner or organisation.
        keep namespace: Text = "namespace";
        /// The repository name.
        keep name: Text = "name";
        /// `namespace/name`.
        keep slug: Text = "slug";
        /// The version-control system (`git`, often empty).
        keep scm: Text = "scm";
        /// The HTTP clone URL.
        keep git_http_url: Text = "git_http_url";
        /// The SSH clone URL.
        keep git_ssh_url: Text = "git_ssh_url";
        /// The repository's web page.
        keep link: Text = "link";
        /// The default branch.
        keep default_branch: Text = "default_branch";
        /// Whether the repository is private at the host.
        keep private: bool = "private";
        /// `public`, `private` or `internal`.
        keep visibility: Text = "visibility";
        /// Whether Drone builds it.
        keep active: bool = "active";
        /// The path of the pipeline file.
        keep config_path: Text = "config_path";
        /// Whether pipelines may run privileged containers.
        keep trusted: bool = "trusted";
        /// Whether builds need approval.
        keep protected: bool = "protected";
        /// Whether builds from forks are ignored.
        keep ignore_forks: bool = "ignore_forks";
        /// Whether pull-request builds are ignored.
        keep ignore_pull_requests: bool = "ignore_pull_requests";
        /// Whether newer pull-request builds cancel older ones.
        keep auto_cancel_pull_requests: bool = "auto_cancel_pull_requests";
        /// Whether newer push builds cancel older ones.
        keep auto_cancel_pushes: bool = "auto_cancel_pushes";
        /// Whether running builds are cancelled too (newer servers).
        keep auto_cancel_running: bool = "auto_cancel_running";
        /// The build timeout in minutes.
        keep timeout: i64 = "timeout";
        /// The maximum number of concurrent builds; omitted when zero.
        omit throttle: i64 = "throttle";
        /// The last build number.
        keep counter: i64 = "counter";
        /// When it was last synchronised (Unix seconds).
        keep synced: i64 = "synced";
        /// When it was added (Unix seconds).
        keep created: i64 = "created";
        /// When it was last updated (Unix seconds).
        keep updated: i64 = "updated";
        /// The row version, for optimistic locking.
        keep version: i64 = "version";
        /// The build nested in the repository in build events.
        omit build: Option<Box<Build>> = "build";
        /// The sending user's permissions on the repository.
        omit permissions: Option<Box<Perm>> = "permissions";
    }
}

model! {
    /// A user's permissions on a repository.
    pub struct Perm {
        /// May read.
        keep read: bool = "read";
        /// May write.
        keep write: bool = "write";
        /// May administer.
        keep admin: bool = "admin";
    }
}

model! {
    /// A build.
    pub struct Build {
        /// Drone's id of the build.
        keep id: i64 = "id";
        /// The repository's id.
        keep repo_id: i64 = "repo_id";
        /// Who or what triggered it (a login, `@cron`, `@hook`).
        keep trigger: Text = "trigger";
        /// The build number within the repository.
        keep number: i64 = "number";
        /// The build this one was promoted or rolled back from.
        omit parent: i64 = "parent";
        /// The state.
        keep status: Status = "status";
        /// Why it could not run.
        omit error: Text = "error";
        /// The triggering event: `push`, `pull_request`, `tag`, `promote`, `rollback`, `cron`, `custom`.
        keep event: Text = "event";
        /// The host's action for the event (`sync`, `opened`), often empty.
        keep action: Text = "action";
        /// The commit or compare page.
        keep link: Text = "link";
        /// The commit time (Unix seconds).
        keep timestamp: i64 = "timestamp";
        /// The pull-request title.
        omit title: Text = "title";
        /// The commit message.
        keep message: Text = "message";
        /// The commit before the change.
        keep before: Text = "before";
        /// The commit built.
        keep after: Text = "after";
        /// The git reference.
        keep r#ref: Text = "ref";
        /// The fork a pull request comes from.
        keep source_repo: Text = "source_repo";
        /// The source branch.
        keep source: Text = "source";
        /// The target branch.
        keep target: Text = "target";
        /// The commit author's login.
        keep author_login: Text = "author_login";
        /// The commit author's name.
        keep author_name: Text = "author_name";
        /// The commit author's e-mail.
        keep author_email: Text = "author_email";
        /// The commit author's avatar URL.
        keep author_avatar: Text = "author_avatar";
        /// Who sent the hook.
        keep sender: Text = "sender";
        /// Custom build parameters.
        omit params: BTreeMap<String, String> = "params";
        /// The cron job's name.
        omit cron: Text = "cron";
        /// The deployment target.
        omit deploy_to: Text = "deploy_to";
        /// The deployment id.
        omit deploy_id: i64 = "deploy_id";
        /// Whether debug mode is on.
        omit debug: bool = "debug";
        /// When it started (Unix seconds).
        keep started: i64 = "started";
        /// When it finished (Unix seconds).
        keep finished: i64 = "finished";
        /// When it was created (Unix seconds).
        keep created: i64 = "created";
        /// When it was last updated (Unix seconds).
        keep updated: i64 = "updated";
        /// The row version.
        keep version: i64 = "version";
        /// The pipelines of the build.
        omit stages: Vec<Stage> = "stages";
    }
}

model! {
    /// A stage: one pipeline of a build.
    pub struct Stage {
        /// Drone's id of the stage.
        keep id: i64 = "id";
        /// The repository's id.
        keep repo_id: i64 = "repo_id";
        /// The build's id.
        keep build_id: i64 = "build_id";
        /// The stage number within the build.
        keep number: i64 = "number";
        /// The pipeline name.
        keep name: Text = "name";
        /// The resource kind (`pipeline`).
        omit kind: Text = "kind";
        /// The runner type (`docker`, `exec`, `kubernetes`).
        omit r#type: Text = "type";
        /// The state.
        keep status: Status = "status";
        /// Why it could not run.
        omit error: Text = "error";
        /// Whether failures are ignored.
        keep errignore: bool = "errignore";
        /// The exit code.
        keep exit_code: i64 = "exit_code";
        /// The runner's machine name.
        omit machine: Text = "machine";
        /// The operating system.
        keep os: Text = "os";
        /// The architecture.
        keep arch: Text = "arch";
        /// The architecture variant.
        omit variant: Text = "variant";
        /// The kernel version.
        omit kernel: Text = "kernel";
        /// The concurrency limit.
        omit limit: i64 = "limit";
        /// The throttle.
        omit throttle: i64 = "throttle";
        /// When it started (Unix seconds).
        keep started: i64 = "started";
        /// When it stopped (Unix seconds).
        keep stopped: i64 = "stopped";
        /// When it was created (Unix seconds).
        keep created: i64 = "created";
        /// When it was last updated (Unix seconds).
        keep updated: i64 = "updated";
        /// The row version.
        keep version: i64 = "version";
        /// Whether it runs when earlier stages succeed.
        keep on_success: bool = "on_success";
        /// Whether it runs when earlier stages fail.
        keep on_failure: bool = "on_failure";
        /// The stages it waits for.
        omit depends_on: Vec<String> = "depends_on";
        /// The runner labels.
        omit labels: BTreeMap<String, String> = "labels";
        /// The steps.
        omit steps: Vec<Step> = "steps";
    }
}

model! {
    /// A step of a stage.
    pub struct Step {
        /// Drone's id of the step.
        keep id: i64 = "id";
        /// The stage's id (Drone names it `step_id`).
        keep step_id: i64 = "step_id";
        /// The step number within the stage.
        keep number: i64 = "number";
        /// The step name.
        keep name: Text = "name";
        /// The state.
        keep status: Status = "status";
        /// Why it could not run.
        omit error: Text = "error";
        /// Whether failures are ignored.
        omit errignore: bool = "errignore";
        /// The exit code.
        keep exit_code: i64 = "exit_code";
        /// When it started (Unix seconds); omitted until it has.
        omit started: i64 = "started";
        /// When it stopped (Unix seconds); omitted until it has.
        omit stopped: i64 = "stopped";
        /// The row version.
        keep version: i64 = "version";
        /// The steps it waits for.
        omit depends_on: Vec<String> = "depends_on";
        /// The container image.
        omit image: Text = "image";
        /// Whether it runs detached.
        omit detached: bool = "detached";
    }
}

model! {
    /// The Drone server that sent the event.
    pub struct System {
        /// `http` or `https`.
        omit proto: Text = "proto";
        /// The server's host name.
        omit host: Text = "host";
        /// The server's URL.
        omit link: Text = "link";
        /// The server's version.
        omit version: Text = "version";
    }
}

const _: () = assert!(fits_mask(&[
    Envelope::SCHEMA,
    User::SCHEMA,
    Repo::SCHEMA,
    Perm::SCHEMA,
    Build::SCHEMA,
    Stage::SCHEMA,
    Step::SCHEMA,
    System::SCHEMA,
]));
