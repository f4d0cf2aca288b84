//! The web inspector (`serve --ui`) in a real browser: a headless Chromium driven
//! through ChromeDriver (dronehook-testkit's `browser`), against the real `dronehook`
//! binary. Events are sent with `dronehook send`, refused requests with a wrong secret
//! or a skewed `Date`; the pages are read through the DOM hooks docs/inspector.md names.
//! Covered: the live list, refusals and board updating without a reload, the detail
//! (headers, verification, payload, raw bytes), redeliver running `--exec` again, the
//! token off loopback, a `<script>` in a payload staying inert, the screenshots.
//!
//! Without Chromium and ChromeDriver these tests fail with one line naming the Debian
//! packages (`cargo xtask test` installs them when it runs as root).
//!
//! `DRONEHOOK_SCREENSHOTS=1 cargo test -p dronehook-cli --test it browser::screenshots`
//! rewrites docs/inspector-{list,detail,board}.png.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use dronehook_testkit::browser::fantoccini::Locator;
use dronehook_testkit::browser::{Browser, browser};
use serde_json::Value;

use crate::support::{PATIENCE, Served, dronehook, run, serve_cmd, stderr, stdout};

const SECRET: &str = "s3cr3t";

/// One Chromium at a time: each is several processes, and the machine running the
/// suite may have two cores.
fn one_at_a_time() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(PoisonError::into_inner)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A `dronehook serve` with a SQLite store and the inspector on a free loopback port.
struct Inspected {
    served: Served,
    /// The inspector's base URL, ending in `/`.
    ui: String,
    dir: tempfile::TempDir,
}

impl Inspected {
    /// Starts `serve --store DIR/events.db --ui 127.0.0.1:0` with `extra` arguments;
    /// `$OUT` is the temporary directory for an `--exec` to write to.
    fn start(extra: &[&str]) -> Inspected {
        let dir = tempfile::tempdir().unwrap();
        let mut serve = serve_cmd();
        // Started in the directory, so the pages name the store `events.db`.
        serve
            .current_dir(dir.path())
            .env("OUT", dir.path())
            .args([
                "--secret",
                SECRET,
                "--output",
                "none",
                "--store",
                "events.db",
            ])
            .args(["--ui", "127.0.0.1:0"])
            .args(extra);
        Inspected::with(serve, dir)
    }

    fn with(serve: Command, dir: tempfile::TempDir) -> Inspected {
        let served = Served::start(serve);
        let ui = ui_url(&served);
        Inspected { served, ui, dir }
    }

    fn page(&self, path: &str) -> String {
        format!("{}{}", self.ui, path.trim_start_matches('/'))
    }

    /// Writes `body` to a file and sends it with `dronehook send --raw` (these exact
    /// bytes), signed with `secret`.
    fn send(&self, body: &[u8], secret: &str) -> std::process::Output {
        let file = self.dir.path().join(format!("payload-{}.json", unique()));
        std::fs::write(&file, body).unwrap();
        run(dronehook()
            .args([
                "send",
                "--raw",
                "--retries",
                "0",
                "--endpoint",
                &self.served.url,
            ])
            .args(["--secret", secret])
            .arg(&file))
    }

    /// Sends `body` with the receiver's secret; the delivery must succeed.
    fn deliver(&self, body: &[u8]) {
        let out = self.send(body, SECRET);
        assert_eq!(
            out.status.code(),
            Some(0),
            "send: {}{}",
            stdout(&out),
            stderr(&out)
        );
    }
}

/// The inspector's URL from the `inspector on http://ADDR/` line, with a wildcard
/// address replaced by loopback (where the browser reaches it).
fn ui_url(served: &Served) -> String {
    let line = served
        .wait_stderr("inspector on ")
        .expect("serve says where the inspector listens");
    let url = line
        .split("inspector on ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("a URL after `inspector on`")
        .replace("://0.0.0.0:", "://127.0.0.1:");
    assert!(url.starts_with("http://") && url.ends_with('/'), "{line}");
    url
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A `build` event from the protocol's sample (fixtures/payloads/build_finished.json)
/// with this repository, number, status and commit message: each body differs, so no
/// two are replays of each other.
fn build_event(slug: &str, number: i64, status: &str, message: &str) -> Vec<u8> {
    build_event_by(slug, number, status, message, "main", "octocat")
}

/// [`build_event`] on `branch`, by `author`.
fn build_event_by(
    slug: &str,
    number: i64,
    status: &str,
    message: &str,
    branch: &str,
    author: &str,
) -> Vec<u8> {
    let sample = workspace().join("fixtures/payloads/build_finished.json");
    let mut v: Value = serde_json::from_slice(&std::fs::read(sample).unwrap()).unwrap();
    let (namespace, name) = slug.split_once('/').unwrap_or(("", slug));
    v["repo"]["slug"] = slug.into();
    v["repo"]["namespace"] = namespace.into();
    v["repo"]["name"] = name.into();
    v["repo"]["link"] = format!("https://git.example.com/{slug}").into();
    let build = &mut v["build"];
    build["number"] = number.into();
    build["status"] = status.into();
    build["message"] = message.into();
    build["link"] = format!("https://drone.example.com/{slug}/{number}").into();
    build["target"] = branch.into();
    build["source"] = branch.into();
    build["ref"] = format!("refs/heads/{branch}").into();
    build["author_login"] = author.into();
    if status == "running" {
        build["finished"] = 0.into();
    }
    serde_json::to_vec(&v).unwrap()
}

/// Polls `f` until it gives a value (every 100 ms, for [`PATIENCE`]); fails naming
/// `what` and the last thing `f` saw.
async fn eventually<T>(what: &str, mut f: impl AsyncFnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        match f().await {
            Ok(value) => return value,
            Err(seen) if Instant::now() > deadline => panic!("{what}: never happened ({seen})"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// The text of the first element matching `css`.
async fn text(b: &Browser, css: &str) -> Result<String, String> {
    let el = b
        .find(Locator::Css(css))
        .await
        .map_err(|e| format!("no {css}: {e}"))?;
    el.text().await.map_err(|e| format!("{css}: {e}"))
}

/// The texts of every element matching `css`.
async fn texts(b: &Browser, css: &str) -> Vec<String> {
    let mut out = Vec::new();
    for el in b.find_all(Locator::Css(css)).await.unwrap_or_default() {
        out.push(el.text().await.unwrap_or_default());
    }
    out
}

async fn path(b: &Browser) -> String {
    b.current_url().await.unwrap().path().to_owned()
}

/// The value of a JavaScript expression in the page.
async fn js(b: &Browser, expr: &str) -> Value {
    b.execute(&format!("return {expr};"), vec![]).await.unwrap()
}

/// Waits until the page's live stream (`/stream`) is connected: what is sent after
/// this is pushed to the page.
async fn wait_live(b: &Browser) {
    eventually("the live stream to open", async || {
        b.find(Locator::Css("html[data-live=open]"))
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    })
    .await;
}

/// Marks the page's window; the mark survives everything but a reload or navigation.
async fn mark_page(b: &Browser) {
    b.execute("window.__dronehookSamePage = true;", vec![])
        .await
        .unwrap();
}

async fn assert_same_page(b: &Browser) {
    assert_eq!(
        js(b, "window.__dronehookSamePage === true").await,
        Value::Bool(true),
        "the page was reloaded"
    );
}

#[test]
fn a_sent_event_appears_in_the_open_list_without_a_reload() {
    let _one = one_at_a_time();
    runtime().block_on(async {
        let ui = Inspected::start(&[]);
        let b = browser().await;
        b.goto(&ui.ui).await.unwrap();
        b.find(Locator::Css("table#events")).await.unwrap();
        assert!(
            texts(&b, "tr.event").await.is_empty(),
            "a new store is empty"
        );
        mark_page(&b).await;
        wait_live(&b).await;

        ui.deliver(&build_event("octocat/live", 7, "success", "first"));
        let repo = eventually("the first row", async || text(&b, "tr.event .repo").await).await;
        assert_eq!(repo, "octocat/live");
        assert_eq!(text(&b, "tr.event .build").await.unwrap(), "7");
        assert_eq!(text(&b, "tr.event .status").await.unwrap(), "success");
        assert!(
            text(&b, "tr.event .event").await.unwrap().contains("build"),
            "{:?}",
            text(&b, "tr.event .event").await
        );

        // A second event goes on top, still without a reload.
        ui.deliver(&build_event("octocat/live", 8, "failure", "second"));
        let builds = eventually("the second row", async || {
            let builds = texts(&b, "tr.event .build").await;
            if builds.len() == 2 {
                Ok(builds)
            } else {
                Err(format!("{builds:?}"))
            }
        })
        .await;
        assert_eq!(builds, ["8", "7"], "newest first");
        assert_same_page(&b).await;

        // Each row links to its detail.
        let first = b.find(Locator::Css("tr.event")).await.unwrap();
        let id = first.attr("data-id").await.unwrap().expect("data-id");
        first
            .find(Locator::Css("a"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        eventually("the detail page", async || {
            let p = path(&b).await;
            if p == format!("/events/{id}") {
                Ok(())
            } else {
                Err(p)
            }
        })
        .await;
        b.quit().await;
    });
}

/// An HTTP date `secs` seconds from now (negative: in the past).
fn http_date_from_now(secs: i64) -> String {
    let now = SystemTime::now();
    let at = if secs < 0 {
        now - Duration::from_secs(secs.unsigned_abs())
    } else {
        now + Duration::from_secs(secs.unsigned_abs())
    };
    httpdate::fmt_http_date(at)
}

#[test]
fn a_refused_request_shows_its_reason() {
    let _one = one_at_a_time();
    runtime().block_on(async {
        let ui = Inspected::start(&[]);
        let b = browser().await;
        b.goto(&ui.page("/refusals")).await.unwrap();
        b.find(Locator::Css("table#refusals")).await.unwrap();
        mark_page(&b).await;
        wait_live(&b).await;

        // A wrong secret: `send` reports the refusal, the page says why.
        let out = ui.send(&build_event("octocat/refused", 1, "success", "x"), "not-it");
        assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
        let reason = eventually("the wrong secret's row", async || {
            text(&b, "tr.refusal .reason").await
        })
        .await;
        assert_eq!(
            reason,
            "signed with a different secret (or a signed header changed on the way)"
        );
        assert_eq!(
            text(&b, "tr.refusal .code").await.unwrap(),
            "signature.invalid"
        );
        assert_eq!(text(&b, "tr.refusal .status").await.unwrap(), "401");
        assert_eq!(text(&b, "tr.refusal .event").await.unwrap(), "build");
        assert_eq!(text(&b, "tr.refusal .key-id").await.unwrap(), "hmac-key");
        assert!(
            text(&b, "tr.refusal .peer")
                .await
                .unwrap()
                .starts_with("127.0.0.1"),
            "{:?}",
            text(&b, "tr.refusal .peer").await
        );

        // The right secret, but a Date 11 minutes old: signed by `dronehook sign`,
        // sent by curl.
        let file = ui.dir.path().join("stale.json");
        std::fs::write(&file, build_event("octocat/refused", 2, "success", "y")).unwrap();
        let signed = run(dronehook()
            .arg("sign")
            .arg(&file)
            .args([
                "--secret",
                SECRET,
                "--format",
                "curl",
                "--url",
                &ui.served.url,
            ])
            .args(["--date", &http_date_from_now(-660)]));
        assert_eq!(signed.status.code(), Some(0), "{}", stderr(&signed));
        let curl = run(Command::new("sh").args(["-c", &stdout(&signed)]));
        // The command `sign` prints fails (--fail) on the refusal.
        assert_eq!(curl.status.code(), Some(22), "{}", stderr(&curl));
        assert!(stderr(&curl).contains("401"), "{}", stderr(&curl));
        let reasons = eventually("the stale Date's row", async || {
            let reasons = texts(&b, "tr.refusal .reason").await;
            if reasons.len() == 2 {
                Ok(reasons)
            } else {
                Err(format!("{reasons:?}"))
            }
        })
        .await;
        assert_eq!(reasons[0], "Date 11 min behind this server");
        assert_eq!(text(&b, "tr.refusal .code").await.unwrap(), "date.stale");
        assert!(
            text(&b, "tr.refusal .skew")
                .await
                .unwrap()
                .contains("11 min"),
            "{:?}",
            text(&b, "tr.refusal .skew").await
        );
        assert_same_page(&b).await;

        // Kept (in memory) for the next visit; never the body or a secret.
        b.refresh().await.unwrap();
        assert_eq!(texts(&b, "tr.refusal .reason").await, reasons);
        let source = b.source().await.unwrap();
        for secret_or_body in [SECRET, "not-it", "octocat/refused"] {
            assert!(
                !source.contains(secret_or_body),
                "{secret_or_body} is on the page"
            );
        }
        b.quit().await;
    });
}

#[test]
fn the_detail_shows_the_headers_the_verification_and_the_payload() {
    let _one = one_at_a_time();
    runtime().block_on(async {
        let ui = Inspected::start(&[]);
        let body = build_event("octocat/detail", 42, "success", "Fix the flaky test");
        ui.deliver(&body);
        let b = browser().await;
        b.goto(&ui.ui).await.unwrap();
        let id = b
            .find(Locator::Css("tr.event"))
            .await
            .unwrap()
            .attr("data-id")
            .await
            .unwrap()
            .expect("data-id");
        b.goto(&ui.page(&format!("/events/{id}"))).await.unwrap();

        let headers = text(&b, "#headers").await.unwrap();
        for name in ["X-Drone-Event", "Digest", "Signature", "Date"] {
            assert!(
                headers
                    .to_ascii_lowercase()
                    .contains(&name.to_ascii_lowercase()),
                "{name} not in {headers}"
            );
        }
        let verification = text(&b, "#verification").await.unwrap();
        assert!(
            verification.contains("Verified") && verification.contains("secret #1"),
            "{verification}"
        );
        let payload = text(&b, "#payload").await.unwrap();
        for part in ["octocat/detail", "Fix the flaky test", "success"] {
            assert!(
                payload.contains(part),
                "{part} not in the payload:\n{payload}"
            );
        }
        // Collapsible: nested <details> sections.
        let sections = b
            .find_all(Locator::Css("#payload details"))
            .await
            .unwrap()
            .len();
        assert!(sections >= 2, "{sections} <details> in #payload");

        // The raw bytes, exactly as received.
        let raw = b
            .find(Locator::Css("a#raw"))
            .await
            .unwrap()
            .attr("href")
            .await
            .unwrap()
            .expect("href");
        assert_eq!(raw, format!("/events/{id}/raw"));
        let fetched = b
            .execute_async(
                "const done = arguments[arguments.length - 1];
                 fetch(arguments[0]).then(async r => done([r.status,
                     r.headers.get('content-type'), await r.text()]));",
                vec![Value::String(raw)],
            )
            .await
            .unwrap();
        assert_eq!(fetched[0], 200);
        assert_eq!(fetched[1], "application/octet-stream");
        assert!(
            fetched[2].as_str().unwrap().as_bytes() == &body[..],
            "the raw bytes differ from those sent"
        );
        b.quit().await;
    });
}

#[test]
fn the_builds_board_follows_new_builds_without_a_reload() {
    let _one = one_at_a_time();
    runtime().block_on(async {
        let ui = Inspected::start(&[]);
        ui.deliver(&build_event("acme/api", 10, "success", "first"));
        let b = browser().await;
        b.goto(&ui.page("/builds")).await.unwrap();
        let api = "tr.build[data-repo=\"acme/api\"]";
        assert_eq!(
            text(&b, &format!("{api} .number"))
                .await
                .unwrap()
                .trim_start_matches('#'),
            "10"
        );
        mark_page(&b).await;
        wait_live(&b).await;

        // A newer build of the same repository replaces its row; another
        // repository gets a row of its own.
        ui.deliver(&build_event("acme/api", 11, "failure", "second"));
        ui.deliver(&build_event("acme/web", 3, "running", "third"));
        let (number, class) = eventually("the board to follow", async || {
            let repos = texts(&b, "tr.build").await.len();
            let number = text(&b, &format!("{api} .number")).await?;
            let class = b
                .find(Locator::Css(&format!("{api} .status")))
                .await
                .map_err(|e| e.to_string())?
                .attr("class")
                .await
                .map_err(|e| e.to_string())?
                .unwrap_or_default();
            if repos == 2 && number.ends_with("11") {
                Ok((number, class))
            } else {
                Err(format!("{repos} rows, acme/api #{number}"))
            }
        })
        .await;
        assert_eq!(number.trim_start_matches('#'), "11");
        assert!(class.contains("status-failure"), "{class}");
        assert_eq!(
            text(&b, "tr.build[data-repo=\"acme/web\"] .status")
                .await
                .unwrap(),
            "running"
        );
        assert_same_page(&b).await;
        b.quit().await;
    });
}

/// Lines the `--exec` handler wrote: `DELIVERY_ID ATTEMPT` each.
fn runs(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("runs"))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn redeliver_runs_the_handler_again() {
    let _one = one_at_a_time();
    runtime().block_on(async {
        let ui = Inspected::start(&[
            "--exec",
            r#"echo "$DRONE_DELIVERY_ID $DRONE_DELIVERY_ATTEMPT" >> "$OUT/runs""#,
        ]);
        ui.deliver(&build_event("octocat/again", 3, "success", "z"));
        let first = eventually("the first run", async || match runs(ui.dir.path()) {
            r if r.len() == 1 => Ok(r),
            r => Err(format!("{r:?}")),
        })
        .await;
        let id = first[0].split(' ').next().unwrap().to_owned();
        assert_eq!(first, [format!("{id} 1")]);

        let b = browser().await;
        let detail = ui.page(&format!("/events/{id}"));
        b.goto(&detail).await.unwrap();
        eventually("the run shown as ok", async || {
            let status = text(&b, "#runs tr.run .status").await?;
            if status.contains("ok") {
                Ok(())
            } else {
                b.refresh().await.map_err(|e| e.to_string())?;
                Err(status)
            }
        })
        .await;
        b.find(Locator::Css("form#redeliver button[type=submit]"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();

        let again = eventually("the second run", async || match runs(ui.dir.path()) {
            r if r.len() == 2 => Ok(r),
            r => Err(format!("{r:?}")),
        })
        .await;
        assert_eq!(again, [format!("{id} 1"), format!("{id} 2")]);
        // The page shows the new attempt once the run is done.
        eventually("two attempts on the detail", async || {
            b.goto(&detail).await.map_err(|e| e.to_string())?;
            let attempts = text(&b, "#runs tr.run .attempts").await?;
            let status = text(&b, "#runs tr.run .status").await?;
            if attempts.contains('2') && status.contains("ok") {
                Ok(())
            } else {
                Err(format!("{attempts} {status}"))
            }
        })
        .await;
        b.quit().await;
    });
}

#[test]
fn a_runs_state_follows_on_the_open_list_and_detail_without_a_reload() {
    let _one = one_at_a_time();
    runtime().block_on(async {
        // Each build's run waits for its own gate file.
        let ui = Inspected::start(&[
            "--exec",
            r#"while [ ! -e "$OUT/go-$DRONE_BUILD_NUMBER" ]; do sleep 0.05; done"#,
        ]);
        let open = |build: u32| std::fs::write(ui.dir.path().join(format!("go-{build}")), "").unwrap();
        let b = browser().await;

        // The open list: the row arrives pending, then says ok where it stands.
        b.goto(&ui.page("/")).await.unwrap();
        wait_live(&b).await;
        mark_page(&b).await;
        ui.deliver(&build_event("octocat/live-runs", 1, "success", "a"));
        let row = "#events tr.event td.runs";
        eventually("the row, pending", async || match text(&b, row).await? {
            t if t == "exec pending" => Ok(()),
            t => Err(t),
        })
        .await;
        open(1);
        eventually("the row, ok", async || match text(&b, row).await? {
            t if t == "exec ok" => Ok(()),
            t => Err(t),
        })
        .await;
        assert_same_page(&b).await;

        // The open detail of a run still going: its runs table follows.
        ui.deliver(&build_event("octocat/live-runs", 2, "success", "b"));
        let id = eventually("the second event's id", async || {
            let ids = js(&b, "Array.from(document.querySelectorAll('#events tr.event')).map(function (r) { return r.getAttribute('data-id'); })").await;
            match ids.as_array().map(Vec::len) {
                Some(2) => Ok(ids[0].as_str().unwrap_or_default().to_owned()),
                _ => Err(ids.to_string()),
            }
        })
        .await;
        b.goto(&ui.page(&format!("/events/{id}"))).await.unwrap();
        wait_live(&b).await;
        mark_page(&b).await;
        assert_eq!(text(&b, "#runs tr.run .status").await.unwrap(), "pending");
        open(2);
        eventually("the detail's run, ok", async || {
            let status = text(&b, "#runs tr.run .status").await?;
            let attempts = text(&b, "#runs tr.run .attempts").await?;
            if status == "ok" && attempts == "1" {
                Ok(())
            } else {
                Err(format!("{status} {attempts}"))
            }
        })
        .await;
        assert_same_page(&b).await;
        b.quit().await;
    });
}

#[test]
fn a_ui_beyond_loopback_needs_the_token() {
    let out = run(dronehook().args([
        "serve",
        "--bind",
        "127.0.0.1:0",
        "--secret",
        SECRET,
        "--ui",
        "0.0.0.0:0",
    ]));
    assert_eq!(
        (out.status.code(), stderr(&out)),
        (
            Some(2),
            "error: --ui on a non-loopback address needs --ui-token (or DRONEHOOK_UI_TOKEN)\n"
                .to_owned()
        )
    );
}

#[test]
fn with_a_token_every_page_needs_a_login() {
    let _one = one_at_a_time();
    runtime().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let mut serve = serve_cmd();
        serve
            .env("DRONEHOOK_UI_TOKEN", "open-sesame-open-sesame")
            .args(["--secret", SECRET, "--output", "none", "--store"])
            .arg(dir.path().join("events.db"))
            .args(["--ui", "0.0.0.0:0"]);
        let ui = Inspected::with(serve, dir);
        assert!(
            !ui.served
                .preamble
                .join("\n")
                .contains("open-sesame-open-sesame"),
            "the token is not printed"
        );
        let b = browser().await;
        for page in [
            "/",
            "/refusals",
            "/builds",
            "/failed",
            "/health",
            "/events/1",
        ] {
            b.goto(&ui.page(page)).await.unwrap();
            assert_eq!(path(&b).await, "/login", "{page} without a login");
        }

        let login = async |token: &str| {
            let field = b.find(Locator::Css("input[name=token]")).await.unwrap();
            field.clear().await.unwrap();
            field.send_keys(token).await.unwrap();
            b.find(Locator::Css("form [type=submit]"))
                .await
                .unwrap()
                .click()
                .await
                .unwrap();
        };
        login("not-the-token").await;
        eventually("the login page again", async || {
            let p = path(&b).await;
            if p == "/login" && b.find(Locator::Css("input[name=token]")).await.is_ok() {
                Ok(())
            } else {
                Err(p)
            }
        })
        .await;
        b.goto(&ui.ui).await.unwrap();
        assert_eq!(path(&b).await, "/login", "a wrong token buys nothing");

        login("open-sesame-open-sesame").await;
        eventually("the list after the login", async || {
            b.find(Locator::Css("table#events"))
                .await
                .map_err(|e| e.to_string())
        })
        .await;
        // The session cookie is out of the page's reach.
        assert_eq!(
            js(&b, "document.cookie").await,
            Value::String(String::new())
        );
        b.goto(&ui.page("/builds")).await.unwrap();
        b.find(Locator::Css("table#builds")).await.unwrap();
        b.quit().await;
    });
}

#[test]
fn a_script_in_a_commit_message_stays_inert() {
    let _one = one_at_a_time();
    runtime().block_on(async {
        let ui = Inspected::start(&[]);
        let b = browser().await;
        // Live first: the row arrives through the stream and the page's own script.
        b.goto(&ui.ui).await.unwrap();
        b.find(Locator::Css("table#events")).await.unwrap();
        wait_live(&b).await;
        let message = "<script>window.__dronehookXss = 1</script><img src=x onerror=\"window.__dronehookXss = 2\">";
        let slug = "evil/<img src=x onerror=window.__dronehookXss=3>";
        ui.deliver(&build_event(slug, 666, "success", message));
        let repo = eventually("the live row", async || text(&b, "tr.event .repo").await).await;
        assert_eq!(repo, slug, "shown as text");
        let id = b
            .find(Locator::Css("tr.event"))
            .await
            .unwrap()
            .attr("data-id")
            .await
            .unwrap()
            .expect("data-id");
        let inert = "typeof window.__dronehookXss === 'undefined'";
        assert_eq!(js(&b, inert).await, Value::Bool(true), "live list");
        // The page's own script is the only one; the payload made no elements.
        let injected = "script:not([src]), img[src=x]";
        assert!(
            b.find_all(Locator::Css(injected)).await.unwrap().is_empty(),
            "the live row holds the payload's elements"
        );

        // Then each page that shows it, rendered by the server.
        for page in ["/".to_owned(), format!("/events/{id}"), "/builds".to_owned()] {
            b.goto(&ui.page(&page)).await.unwrap();
            // An onerror would fire once the image failed to load: give it that time.
            tokio::time::sleep(Duration::from_millis(300)).await;
            assert_eq!(js(&b, inert).await, Value::Bool(true), "{page}");
            let found = b.find_all(Locator::Css(injected)).await.unwrap();
            assert!(found.is_empty(), "{page} holds the payload's elements");
        }
        b.goto(&ui.page(&format!("/events/{id}"))).await.unwrap();
        let payload = text(&b, "#payload").await.unwrap();
        assert!(payload.contains(message), "the message is shown as text:\n{payload}");
        b.goto(&ui.page("/builds")).await.unwrap();
        assert_eq!(
            b.find(Locator::Css("tr.build"))
                .await
                .unwrap()
                .attr("data-repo")
                .await
                .unwrap()
                .as_deref(),
            Some(slug)
        );
        b.quit().await;
    });
}

/// The PNG's width and height, from its header.
fn png_size(png: &[u8]) -> (u32, u32) {
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "a PNG");
    let be = |at: usize| u32::from_be_bytes(png[at..at + 4].try_into().unwrap());
    (be(16), be(20))
}

/// The screenshots in docs/: written there with `DRONEHOOK_SCREENSHOTS=1`, else to a
/// temporary directory. Either way the pages they show are checked first.
#[test]
fn screenshots_of_the_list_a_detail_and_the_board() {
    let _one = one_at_a_time();
    runtime().block_on(async {
        let ui = Inspected::start(&["--exec", "echo handled"]);
        let builds = [
            (
                "octocat/hello-world",
                41,
                "success",
                "Update README.md",
                "main",
                "octocat",
            ),
            (
                "acme/api",
                128,
                "failure",
                "Retry the payment webhook on 502",
                "fix/retries",
                "mlee",
            ),
            (
                "acme/web",
                77,
                "running",
                "Dark mode for the settings page",
                "dark-mode",
                "asato",
            ),
            (
                "drone/drone-runner",
                310,
                "success",
                "Bump the Docker client to 28.0",
                "master",
                "bradrydzewski",
            ),
            (
                "octocat/hello-world",
                42,
                "success",
                "Merge pull request #7 from octocat/docs",
                "main",
                "octocat",
            ),
        ];
        for (slug, number, status, message, branch, author) in builds {
            ui.deliver(&build_event_by(
                slug, number, status, message, branch, author,
            ));
        }

        let b = browser().await;
        let out = match std::env::var_os("DRONEHOOK_SCREENSHOTS") {
            Some(v) if v == "1" => None,
            _ => Some(tempfile::tempdir().unwrap()),
        };
        let dir = out
            .as_ref()
            .map_or_else(|| workspace().join("docs"), |d| d.path().to_owned());

        b.goto(&ui.ui).await.unwrap();
        let rows = eventually("five rows", async || {
            match texts(&b, "tr.event .repo").await {
                r if r.len() == 5 => Ok(r),
                r => Err(format!("{r:?}")),
            }
        })
        .await;
        assert_eq!(rows[0], "octocat/hello-world");
        let shot = async |name: &str| {
            let path = dir.join(name);
            b.save_screenshot(&path).await.unwrap();
            let (w, h) = png_size(&std::fs::read(&path).unwrap());
            assert!(w >= 1000 && h >= 600, "{name} is {w}x{h}");
        };
        shot("inspector-list.png").await;

        let id = b
            .find(Locator::Css("tr.event"))
            .await
            .unwrap()
            .attr("data-id")
            .await
            .unwrap()
            .expect("data-id");
        // Tall enough for the payload and the runs below the headers.
        b.set_window_size(1280, 1500).await.unwrap();
        b.goto(&ui.page(&format!("/events/{id}"))).await.unwrap();
        eventually("the handler's run", async || {
            let status = text(&b, "#runs tr.run .status").await?;
            if status.contains("ok") {
                Ok(())
            } else {
                b.refresh().await.map_err(|e| e.to_string())?;
                Err(status)
            }
        })
        .await;
        assert!(
            text(&b, "#payload")
                .await
                .unwrap()
                .contains("Merge pull request #7")
        );
        shot("inspector-detail.png").await;
        b.set_window_size(1280, 800).await.unwrap();

        b.goto(&ui.page("/builds")).await.unwrap();
        let board = texts(&b, "tr.build").await;
        assert_eq!(board.len(), 4, "one row per repository: {board:?}");
        let row = |slug: &str| format!("tr.build[data-repo=\"{slug}\"]");
        assert_eq!(
            text(&b, &format!("{} .number", row("octocat/hello-world")))
                .await
                .unwrap()
                .trim_start_matches('#'),
            "42",
            "the latest build"
        );
        let failed = b
            .find(Locator::Css(&format!("{} .status", row("acme/api"))))
            .await
            .unwrap()
            .attr("class")
            .await
            .unwrap()
            .unwrap_or_default();
        assert!(failed.contains("status-failure"), "{failed}");
        assert_eq!(
            text(&b, &format!("{} .branch", row("acme/api")))
                .await
                .unwrap(),
            "fix/retries"
        );
        assert_eq!(
            text(&b, &format!("{} .author", row("acme/api")))
                .await
                .unwrap(),
            "mlee"
        );
        shot("inspector-board.png").await;
        b.quit().await;
    });
}
