//! Writing to the terminal: colour only when it is wanted, and a closed pipe ends the
//! command quietly instead of panicking as `println!` would.

use std::io::{self, IsTerminal as _, Write as _};

use anstyle::{AnsiColor, Style};

/// Whether an error comes from writing to a closed pipe (`dronehook ... | head -1`).
pub(crate) fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    })
}

/// Whether colour is wanted on a stream: only on a terminal, and never with `NO_COLOR`
/// set to a non-empty value (<https://no-color.org>).
fn colour_wanted(is_terminal: bool) -> bool {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    is_terminal && !no_color
}

/// Paints text for one stream, or leaves it plain.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Painter {
    enabled: bool,
}

impl Painter {
    /// A painter for standard output.
    pub(crate) fn stdout() -> Self {
        Painter {
            enabled: colour_wanted(io::stdout().is_terminal()),
        }
    }

    /// A painter for standard error.
    pub(crate) fn stderr() -> Self {
        Painter {
            enabled: colour_wanted(io::stderr().is_terminal()),
        }
    }

    /// Whether this painter colours anything.
    pub(crate) fn enabled(self) -> bool {
        self.enabled
    }

    fn paint(self, style: Style, text: &str) -> String {
        if self.enabled {
            format!("{style}{text}{style:#}")
        } else {
            text.to_owned()
        }
    }

    /// Good news.
    pub(crate) fn good(self, text: &str) -> String {
        self.paint(AnsiColor::Green.on_default().bold(), text)
    }

    /// Bad news.
    pub(crate) fn bad(self, text: &str) -> String {
        self.paint(AnsiColor::Red.on_default().bold(), text)
    }

    /// Something to notice.
    pub(crate) fn warn(self, text: &str) -> String {
        self.paint(AnsiColor::Yellow.on_default().bold(), text)
    }

    /// Something less important.
    pub(crate) fn dim(self, text: &str) -> String {
        self.paint(Style::new().dimmed(), text)
    }

    /// A name to pick out.
    pub(crate) fn bold(self, text: &str) -> String {
        self.paint(Style::new().bold(), text)
    }

    /// A status word coloured by what it means.
    pub(crate) fn status(self, status: &str) -> String {
        match status {
            "success" => self.good(status),
            "failure" | "error" | "killed" | "declined" => self.bad(status),
            "running" | "pending" | "blocked" | "waiting_on_dependencies" => self.warn(status),
            _ => status.to_owned(),
        }
    }
}

/// Writes bytes to standard output and flushes them.
pub(crate) fn out_bytes(bytes: &[u8]) -> io::Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(bytes)?;
    out.flush()
}

/// Writes a line to standard output.
pub(crate) fn out_line(line: &str) -> io::Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(line.as_bytes())?;
    out.write_all(b"\n")?;
    out.flush()
}

/// Writes a line to standard error; a failure to do so is not worth reporting.
pub(crate) fn err_line(line: &str) {
    let mut err = io::stderr().lock();
    let _ = err.write_all(line.as_bytes());
    let _ = err.write_all(b"\n");
}

/// Whether standard output is a terminal.
pub(crate) fn stdout_is_terminal() -> bool {
    io::stdout().is_terminal()
}
