//! `dronehook encode`: the exact bytes Drone would send for a payload written by hand,
//! pretty-printed, or without `event` as in Drone's documentation examples.

use dronehook_protocol::{Action, DecodeError, Envelope};

use crate::args::EncodeArgs;
use crate::{Outcome, input, output, usage};

/// Decodes the payload and prints its Go encoding. The bytes are exact: a newline is
/// added only when standard output is a terminal, for the prompt's sake.
pub(crate) fn run(args: &EncodeArgs) -> anyhow::Result<Outcome> {
    let payload = input::read_one(&args.input)?;
    let header_event = args.event.as_deref().or(payload.header_event.as_deref());
    let mut envelope = decode(&payload.label, &payload.body, header_event)?;
    if !args.keep_action {
        drone_action(&mut envelope);
    }
    let mut bytes = envelope.encode();
    if output::stdout_is_terminal() {
        bytes.push(b'\n');
    }
    output::out_bytes(&bytes)?;
    Ok(Outcome::Ok)
}

/// Decodes a payload, naming the input in the error.
pub(crate) fn decode(
    label: &str,
    body: &[u8],
    header_event: Option<&str>,
) -> anyhow::Result<Envelope> {
    Envelope::decode_with_header(body, header_event).map_err(|e| match e {
        DecodeError::EventMissing => {
            usage(format!("{label}: the payload has no `event`; give --event"))
        }
        other => usage(format!("{label}: {other}")),
    })
}

/// Replaces the action names of Drone's documentation examples, which Drone never
/// sends, by Drone's,
/// and says so on standard error.
pub(crate) fn drone_action(envelope: &mut Envelope) {
    let replacement = match envelope.action {
        Action::Activated => Action::Enabled,
        Action::Deactivated => Action::Disabled,
        Action::Completed => Action::Updated,
        _ => return,
    };
    output::err_line(&format!(
        "note: action {:?} is a name from Drone's documentation examples; Drone sends {:?} (--keep-action keeps it)",
        envelope.action.as_str(),
        replacement.as_str()
    ));
    envelope.action = replacement;
}
