//! One-line summaries of events (`build updated  octocat/hello-world #42`), their JSON
//! form, and the `DRONE_*` environment handed to `--exec` commands.

use dronehook_protocol::Envelope;
use serde_json::{Map, Value, json};

use crate::output::Painter;

/// What the event is about: `octocat/hello-world #42`, `octocat/hello-world` or
/// `octocat`, by what the payload carries.
pub(crate) fn subject(env: &Envelope) -> String {
    let slug = env.repo_slug();
    match (slug, env.build_number()) {
        (Some(slug), Some(n)) => format!("{slug} #{n}"),
        (None, Some(n)) => format!("#{n}"),
        (Some(slug), None) => slug.to_owned(),
        (None, None) => env
            .user
            .as_deref()
            .map(|u| u.login.to_string())
            .unwrap_or_default(),
    }
}

/// `build updated  octocat/hello-world #42`.
pub(crate) fn headline(env: &Envelope) -> String {
    let kind = format!("{} {}", env.event, env.action);
    let subject = subject(env);
    if subject.is_empty() {
        kind
    } else {
        format!("{kind}  {subject}")
    }
}

/// A build's run time, when it has both started and finished.
pub(crate) fn build_seconds(env: &Envelope) -> Option<i64> {
    let build = env.build.as_deref()?;
    (build.started > 0 && build.finished >= build.started).then(|| build.finished - build.started)
}

/// Formats seconds the short way: `45s`, `2m31s`, `1h02m03s`.
pub(crate) fn short_duration(seconds: i64) -> String {
    let (h, m, s) = (seconds / 3600, seconds % 3600 / 60, seconds % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m{s:02}s"),
        _ => format!("{h}h{m:02}m{s:02}s"),
    }
}

/// `build updated  octocat/hello-world #42  success  2m31s`: the headline, and for
/// builds the status and the run time when known.
pub(crate) fn line(env: &Envelope, paint: Painter) -> String {
    let mut out = format!("{} {}", paint.bold(env.event.as_str()), env.action);
    let subject = subject(env);
    if !subject.is_empty() {
        out.push_str("  ");
        out.push_str(&subject);
    }
    if let Some(build) = env
        .build
        .as_deref()
        .filter(|b| !b.status.as_str().is_empty())
    {
        out.push_str("  ");
        out.push_str(&paint.status(build.status.as_str()));
    }
    if let Some(seconds) = build_seconds(env) {
        out.push_str("  ");
        out.push_str(&paint.dim(&short_duration(seconds)));
    }
    out
}

/// The summary fields as JSON: event, action, repo, build, status, duration.
pub(crate) fn json_fields(env: &Envelope) -> Map<String, Value> {
    let mut map = Map::new();
    map.insert("event".into(), json!(env.event.as_str()));
    map.insert("action".into(), json!(env.action.as_str()));
    if let Some(slug) = env.repo_slug() {
        map.insert("repo".into(), json!(slug));
    }
    if let Some(build) = env.build.as_deref() {
        map.insert("build".into(), json!(build.number));
        map.insert("status".into(), json!(build.status.as_str()));
    }
    if let Some(seconds) = build_seconds(env) {
        map.insert("duration_s".into(), json!(seconds));
    }
    if let Some(user) = env.user.as_deref() {
        map.insert("user".into(), json!(user.login));
    }
    map
}

/// The environment a `--exec` command gets. Names follow Drone's pipeline variables
/// where one exists (`DRONE_BUILD_LINK` is the build's page on the Drone server,
/// `DRONE_COMMIT_LINK` the commit's at the host).
pub(crate) fn exec_env(env: &Envelope) -> Vec<(&'static str, String)> {
    let mut vars = vec![
        ("DRONE_EVENT", env.event.as_str().to_owned()),
        ("DRONE_ACTION", env.action.as_str().to_owned()),
    ];
    if let Some(repo) = env.repo.as_deref() {
        vars.push(("DRONE_REPO", repo.slug.to_string()));
        vars.push(("DRONE_REPO_NAMESPACE", repo.namespace.to_string()));
        vars.push(("DRONE_REPO_NAME", repo.name.to_string()));
        vars.push(("DRONE_REPO_LINK", repo.link.to_string()));
        vars.push(("DRONE_REPO_BRANCH", repo.default_branch.to_string()));
    }
    if let Some(build) = env.build.as_deref() {
        vars.push(("DRONE_BUILD_NUMBER", build.number.to_string()));
        vars.push(("DRONE_BUILD_STATUS", build.status.as_str().to_owned()));
        vars.push(("DRONE_BUILD_EVENT", build.event.to_string()));
        vars.push(("DRONE_BUILD_TRIGGER", build.trigger.to_string()));
        vars.push(("DRONE_BUILD_CREATED", build.created.to_string()));
        vars.push(("DRONE_BUILD_STARTED", build.started.to_string()));
        vars.push(("DRONE_BUILD_FINISHED", build.finished.to_string()));
        let system_link = env.system.as_deref().map(|s| s.link.trim_end_matches('/'));
        let link = match (system_link, env.repo_slug()) {
            (Some(base), Some(slug)) if !base.is_empty() => {
                format!("{base}/{slug}/{}", build.number)
            }
            _ => build.link.to_string(),
        };
        vars.push(("DRONE_BUILD_LINK", link));
        vars.push(("DRONE_COMMIT", build.after.to_string()));
        vars.push(("DRONE_COMMIT_SHA", build.after.to_string()));
        vars.push(("DRONE_COMMIT_BEFORE", build.before.to_string()));
        vars.push(("DRONE_COMMIT_REF", build.r#ref.to_string()));
        vars.push(("DRONE_COMMIT_LINK", build.link.to_string()));
        vars.push(("DRONE_COMMIT_MESSAGE", build.message.to_string()));
        vars.push(("DRONE_COMMIT_AUTHOR", build.author_login.to_string()));
        vars.push(("DRONE_COMMIT_AUTHOR_NAME", build.author_name.to_string()));
        vars.push(("DRONE_COMMIT_AUTHOR_EMAIL", build.author_email.to_string()));
        let branch = if build.target.is_empty() {
            &build.source
        } else {
            &build.target
        };
        vars.push(("DRONE_BRANCH", branch.to_string()));
        vars.push(("DRONE_SOURCE_BRANCH", build.source.to_string()));
        vars.push(("DRONE_TARGET_BRANCH", build.target.to_string()));
    }
    if let Some(user) = env.user.as_deref() {
        vars.push(("DRONE_USER_LOGIN", user.login.to_string()));
        vars.push(("DRONE_USER_EMAIL", user.email.to_string()));
    }
    if let Some(system) = env.system.as_deref() {
        vars.push(("DRONE_SYSTEM_HOST", system.host.to_string()));
        vars.push(("DRONE_SYSTEM_PROTO", system.proto.to_string()));
        vars.push(("DRONE_SYSTEM_VERSION", system.version.to_string()));
    }
    for (_, value) in &mut vars {
        fit_for_env(value);
    }
    vars
}

/// The longest value a `DRONE_*` variable gets, in bytes. Linux refuses to start a
/// command with one string over 128 KiB (and all of them over about 2 MiB): a
/// payload with a huge commit message must not make every run fail. The payload
/// itself, on stdin, is never cut.
const MAX_ENV_VALUE: usize = 32 * 1024;

/// Cuts a value to [`MAX_ENV_VALUE`] (at a character boundary) and drops NUL bytes,
/// which no environment can hold.
fn fit_for_env(value: &mut String) {
    if value.contains('\0') {
        value.retain(|c| c != '\0');
    }
    if value.len() > MAX_ENV_VALUE {
        let mut end = MAX_ENV_VALUE;
        while !value.is_char_boundary(end) {
            end -= 1;
        }
        value.truncate(end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_values_fit_an_environment() {
        let mut long = "é".repeat(MAX_ENV_VALUE);
        fit_for_env(&mut long);
        assert!(long.len() <= MAX_ENV_VALUE && long.len() > MAX_ENV_VALUE - 2);
        let mut nul = "a\0b".to_owned();
        fit_for_env(&mut nul);
        assert_eq!(nul, "ab");
    }

    #[test]
    fn durations() {
        assert_eq!(short_duration(0), "0s");
        assert_eq!(short_duration(45), "45s");
        assert_eq!(short_duration(151), "2m31s");
        assert_eq!(short_duration(3723), "1h02m03s");
    }
}
