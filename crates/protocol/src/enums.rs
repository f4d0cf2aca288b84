//! The string enums of the payload: [`Event`], [`Action`] and [`Status`].
//!
//! Each has a fallback variant that carries any other value through unchanged:
//! Drone adds values over time and a receiver must not reject them.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, Visitor};

macro_rules! string_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[doc = $doc:literal])* $variant:ident => $text:literal, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum $name {
            $( $(#[doc = $doc])* $variant, )*
            /// Any other value, carried through exactly as it was received.
            Other(String),
        }

        impl $name {
            /// Every named variant, in the order the reference lists them.
            pub const KNOWN: &'static [$name] = &[$($name::$variant),*];

            /// The value as it appears on the wire.
            pub fn as_str(&self) -> &str {
                match self {
                    $( $name::$variant => $text, )*
                    $name::Other(s) => s,
                }
            }

            /// Parses a wire value; anything unknown becomes `Other`.
            pub fn parse(s: &str) -> Self {
                match s {
                    $( $text => $name::$variant, )*
                    other => $name::Other(other.to_owned()),
                }
            }

            /// Whether this is one of the named values rather than `Other`.
            pub fn is_known(&self) -> bool {
                !matches!(self, $name::Other(_))
            }
        }

        impl Default for $name {
            /// The empty value, as Go's zero value for a string.
            fn default() -> Self {
                $name::Other(String::new())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.as_str())
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                $name::parse(s)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl Visitor<'_> for V {
                    type Value = $name;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str("a string")
                    }
                    fn visit_str<E: de::Error>(self, s: &str) -> Result<$name, E> {
                        Ok($name::parse(s))
                    }
                }
                d.deserialize_str(V)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
    };
}

string_enum! {
    /// The kind of object an event is about: the envelope's `event` and the
    /// `X-Drone-Event` header.
    pub enum Event {
        /// A user account.
        User => "user",
        /// A repository.
        Repo => "repo",
        /// A build.
        Build => "build",
    }
}

string_enum! {
    /// What happened to the object: the envelope's `action`.
    ///
    /// Drone sends `created`, `updated`, `deleted`, `enabled` and `disabled`. Drone's
    /// documentation examples also name `activated`, `deactivated` and `completed`, which
    /// Drone never sends; they are accepted on input so that payloads written from the
    /// documentation work.
    pub enum Action {
        /// An object was created (`user`, `build`).
        Created => "created",
        /// An object changed (`build`: a build or stage changed state, or finished).
        Updated => "updated",
        /// An object was deleted (`user`, `repo`).
        Deleted => "deleted",
        /// A repository was activated.
        Enabled => "enabled",
        /// A repository was deactivated.
        Disabled => "disabled",
        /// The documentation examples' name for `enabled`; never sent by Drone.
        Activated => "activated",
        /// The documentation examples' name for `disabled`; never sent by Drone.
        Deactivated => "deactivated",
        /// The documentation examples' name for a finished build; Drone sends `updated` with a terminal status.
        Completed => "completed",
    }
}

string_enum! {
    /// The state of a build, stage or step.
    pub enum Status {
        /// Skipped by a condition; terminal.
        Skipped => "skipped",
        /// Waiting for approval.
        Blocked => "blocked",
        /// Approval was declined; terminal.
        Declined => "declined",
        /// Waiting for the stages it depends on.
        WaitingOnDependencies => "waiting_on_dependencies",
        /// Queued.
        Pending => "pending",
        /// Running.
        Running => "running",
        /// Finished successfully; terminal.
        Success => "success",
        /// Finished with a failure; terminal.
        Failure => "failure",
        /// Cancelled; terminal.
        Killed => "killed",
        /// Could not run; terminal.
        Error => "error",
    }
}

impl Status {
    /// Whether the state is final: `success`, `failure`, `killed`, `error`, `skipped`
    /// or `declined`. Unknown values are not terminal.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            Status::Success
                | Status::Failure
                | Status::Killed
                | Status::Error
                | Status::Skipped
                | Status::Declined
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_values_are_carried_through() {
        assert_eq!(
            Event::parse("deployment"),
            Event::Other("deployment".into())
        );
        assert_eq!(Event::parse("deployment").as_str(), "deployment");
        assert_eq!(Action::parse("completed"), Action::Completed);
        assert!(!Action::parse("archived").is_known());
        assert_eq!(Status::parse("started").as_str(), "started");
    }

    #[test]
    fn terminal_statuses() {
        let terminal: Vec<_> = Status::KNOWN
            .iter()
            .filter(|s| s.is_terminal())
            .map(Status::as_str)
            .collect();
        assert_eq!(
            terminal,
            [
                "skipped", "declined", "success", "failure", "killed", "error"
            ]
        );
        assert!(!Status::parse("started").is_terminal());
    }
}
