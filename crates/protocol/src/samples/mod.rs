//! Canonical sample payloads: one per event and action Drone sends, plus the examples
//! of Drone's documentation. They are the source of `fixtures/payloads/`, of the command
//! line's `fixture:NAME` inputs and of the conformance matrix, so every part of the
//! project tests against the same bytes.
//!
//! The Drone samples are built from the models and encoded by [`Envelope::encode`],
//! so they are exactly what Drone would send for those objects. The documentation
//! examples are its JSON as written (pretty-printed, without `event`; the event
//! comes from `X-Drone-Event`), with two repairs: the listing's line numbers are
//! removed, and the repository examples, which lack their final `}`, are closed.

use std::collections::BTreeMap;

use crate::{Action, Build, Envelope, Event, Perm, Repo, Stage, Status, Step, System, User};

/// One sample payload.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Sample {
    /// A stable name such as `build_updated`; also the fixture's file stem.
    pub name: &'static str,
    /// What the sample is, in a sentence.
    pub summary: &'static str,
    /// The `X-Drone-Event` header to send with it.
    pub header_event: &'static str,
    /// The exact body bytes.
    pub body: Vec<u8>,
    /// `true` for what Drone itself sends, `false` for an example of Drone's documentation.
    pub drone: bool,
}

/// Every sample, Drone's first, in a stable order.
pub fn all() -> Vec<Sample> {
    let mut out: Vec<Sample> = drone_samples()
        .into_iter()
        .map(|(name, summary, envelope)| Sample {
            name,
            summary,
            header_event: event_name(&envelope.event),
            body: envelope.encode(),
            drone: true,
        })
        .collect();
    out.extend(
        DOCUMENTATION
            .iter()
            .map(|(name, summary, event, body)| Sample {
                name,
                summary,
                header_event: event,
                body: body.to_vec(),
                drone: false,
            }),
    );
    out
}

/// The sample with this name.
pub fn get(name: &str) -> Option<Sample> {
    all().into_iter().find(|s| s.name == name)
}

fn event_name(event: &Event) -> &'static str {
    match event {
        Event::User => "user",
        Event::Repo => "repo",
        Event::Build => "build",
        Event::Other(_) => "",
    }
}

/// The examples of Drone's documentation: name, summary, `X-Drone-Event`, body.
const DOCUMENTATION: &[(&str, &str, &str, &[u8])] = &[
    (
        "docs_user_created",
        "The user created example of Drone's documentation (no `event` field).",
        "user",
        include_bytes!("docs_user_created.json"),
    ),
    (
        "docs_user_deleted",
        "The user deleted example of Drone's documentation (no `event` field).",
        "user",
        include_bytes!("docs_user_deleted.json"),
    ),
    (
        "docs_repo_activated",
        "The repository example of Drone's documentation, with action `activated` (Drone sends `enabled`).",
        "repo",
        include_bytes!("docs_repo_activated.json"),
    ),
    (
        "docs_repo_deactivated",
        "The \"Deactivated\" example of Drone's documentation, which says `activated` by mistake.",
        "repo",
        include_bytes!("docs_repo_deactivated.json"),
    ),
    (
        "docs_build_created",
        "The build created example of Drone's documentation.",
        "build",
        include_bytes!("docs_build_created.json"),
    ),
    (
        "docs_build_updated",
        "The build updated example of Drone's documentation, with status `started`.",
        "build",
        include_bytes!("docs_build_updated.json"),
    ),
    (
        "docs_build_completed",
        "The build example of Drone's documentation, with action `completed` (Drone sends `updated`).",
        "build",
        include_bytes!("docs_build_completed.json"),
    ),
];

/// The time the samples happen at: 2019-07-25 (the documentation examples' era), in Unix seconds.
const T0: i64 = 1_564_085_874;

fn system() -> System {
    System {
        proto: "https".into(),
        host: "drone.example.com".into(),
        link: "https://drone.example.com".into(),
        version: "2.4.0".into(),
        ..System::default()
    }
}

fn user() -> User {
    User {
        id: 1,
        login: "octocat".into(),
        email: "octocat@github.com".into(),
        active: true,
        avatar: "https://avatars.githubusercontent.com/u/583231?v=4".into(),
        synced: 1_564_096_971,
        created: 1_564_096_971,
        updated: 1_564_096_971,
        last_login: 1_564_096_971,
        ..User::default()
    }
}

fn repo(active: bool) -> Repo {
    Repo {
        id: 42,
        uid: "16607898".into(),
        user_id: 1,
        namespace: "octocat".into(),
        name: "hello-world".into(),
        slug: "octocat/hello-world".into(),
        scm: "git".into(),
        git_http_url: "https://github.com/octocat/hello-world.git".into(),
        git_ssh_url: "git@github.com:octocat/hello-world.git".into(),
        link: "https://github.com/octocat/hello-world".into(),
        default_branch: "main".into(),
        visibility: "public".into(),
        active,
        config_path: ".drone.yml".into(),
        timeout: 60,
        counter: 42,
        synced: 1_542_160_374,
        created: 1_542_160_374,
        updated: 1_542_160_374,
        version: 187,
        ..Repo::default()
    }
}

fn step(id: i64, number: i64, name: &str, status: Status, started: i64, stopped: i64) -> Step {
    Step {
        id,
        step_id: 199_937,
        number,
        name: name.into(),
        status,
        started,
        stopped,
        version: 4,
        ..Step::default()
    }
}

/// A build of `octocat/hello-world`, number 42. `finished` set means the build is
/// over: 2m31s after it started, as the command line's example line shows.
fn build(status: &Status, finished: bool) -> Build {
    let mut b = Build {
        id: 100_207,
        repo_id: 42,
        trigger: "@hook".into(),
        number: 42,
        status: status.clone(),
        event: "push".into(),
        link: "https://github.com/octocat/hello-world/compare/e3320539a4c0...9fc1ad6ebf12".into(),
        timestamp: T0 - 30,
        message: "Update README.md: <b>bold</b> & \"quotes\" \u{2028} \u{1F680}\n".into(),
        before: "e3320539a4c03ccfda992641646deb67d8bf98f3".into(),
        after: "9fc1ad6ebf12462f3f9773003e26b4c6f54a772e".into(),
        r#ref: "refs/heads/main".into(),
        source: "main".into(),
        target: "main".into(),
        author_login: "octocat".into(),
        author_name: "The Octocat".into(),
        author_email: "octocat@github.com".into(),
        author_avatar: "https://avatars.githubusercontent.com/u/583231?v=4".into(),
        sender: "octocat".into(),
        ..Build::default()
    };
    b.params = BTreeMap::from([
        ("deploy".into(), "false".into()),
        ("TARGET".into(), "staging".into()),
    ]);
    b.created = T0;
    b.updated = T0;
    b.version = 1;
    if *status == Status::Pending {
        return b;
    }
    b.started = T0;
    b.version = 3;
    let mut stage = Stage {
        id: 199_937,
        repo_id: 42,
        build_id: 100_207,
        number: 1,
        name: "default".into(),
        kind: "pipeline".into(),
        r#type: "docker".into(),
        status: status.clone(),
        machine: "runner-1".into(),
        os: "linux".into(),
        arch: "amd64".into(),
        started: T0,
        created: T0,
        updated: T0,
        version: 4,
        on_success: true,
        labels: BTreeMap::from([("region".into(), "eu".into())]),
        ..Stage::default()
    };
    let mut clone = step(575_525, 1, "clone", Status::Success, T0 + 2, T0 + 27);
    clone.image = "drone/git:latest".into();
    let mut test = step(575_526, 2, "test", status.clone(), T0 + 27, 0);
    test.image = "rust:1".into();
    test.depends_on = vec!["clone".into()];
    if finished {
        b.finished = T0 + 151;
        b.updated = T0 + 151;
        stage.stopped = T0 + 151;
        stage.updated = T0 + 151;
        test.stopped = T0 + 150;
        if *status == Status::Failure {
            test.exit_code = 1;
            stage.exit_code = 1;
        }
    }
    stage.steps = vec![clone, test];
    b.stages = vec![stage];
    b
}

fn envelope(event: Event, action: Action) -> Envelope {
    Envelope {
        event,
        action,
        system: Some(Box::new(system())),
        ..Envelope::default()
    }
}

fn drone_samples() -> Vec<(&'static str, &'static str, Envelope)> {
    let mut user_created = envelope(Event::User, Action::Created);
    user_created.user = Some(Box::new(user()));

    let mut user_deleted = envelope(Event::User, Action::Deleted);
    user_deleted.user = Some(Box::new(user()));

    let mut repo_enabled = envelope(Event::Repo, Action::Enabled);
    repo_enabled.user = Some(Box::new(user()));
    let mut enabled = repo(true);
    let perm = Perm {
        read: true,
        write: true,
        admin: true,
        ..Perm::default()
    };
    enabled.permissions = Some(Box::new(perm));
    repo_enabled.repo = Some(Box::new(enabled));

    let mut repo_disabled = envelope(Event::Repo, Action::Disabled);
    repo_disabled.repo = Some(Box::new(repo(false)));

    let mut repo_deleted = envelope(Event::Repo, Action::Deleted);
    repo_deleted.repo = Some(Box::new(repo(false)));

    let mut build_created = envelope(Event::Build, Action::Created);
    build_created.user = Some(Box::new(user()));
    build_created.repo = Some(Box::new(repo(true)));
    build_created.build = Some(Box::new(build(&Status::Pending, false)));

    let mut build_updated = envelope(Event::Build, Action::Updated);
    build_updated.repo = Some(Box::new(repo(true)));
    build_updated.build = Some(Box::new(build(&Status::Running, false)));

    let mut build_finished = envelope(Event::Build, Action::Updated);
    let mut finished_repo = repo(true);
    finished_repo.build = Some(Box::new(build(&Status::Success, true)));
    build_finished.repo = Some(Box::new(finished_repo));
    build_finished.build = Some(Box::new(build(&Status::Success, true)));

    let mut build_failed = envelope(Event::Build, Action::Updated);
    build_failed.repo = Some(Box::new(repo(true)));
    build_failed.build = Some(Box::new(build(&Status::Failure, true)));

    vec![
        (
            "user_created",
            "A user is created or logs in for the first time.",
            user_created,
        ),
        ("user_deleted", "A user is deleted.", user_deleted),
        ("repo_enabled", "A repository is activated.", repo_enabled),
        (
            "repo_disabled",
            "A repository is deactivated.",
            repo_disabled,
        ),
        (
            "repo_deleted",
            "A repository is deactivated with removal.",
            repo_deleted,
        ),
        (
            "build_created",
            "A build is triggered (status pending).",
            build_created,
        ),
        (
            "build_updated",
            "A build changes state (running).",
            build_updated,
        ),
        (
            "build_finished",
            "A build finishes: `updated` with a terminal status (success), repo.build nested as Drone 2.4 sends it.",
            build_finished,
        ),
        (
            "build_failed",
            "A build finishes with status failure.",
            build_failed,
        ),
    ]
}
