//! A real browser for the inspector's tests: a headless Chromium driven through
//! ChromeDriver (WebDriver), with a fresh profile each time.
//!
//! Both programs are found on `PATH`, then in `/usr/bin` and `/usr/lib/chromium`
//! (Debian's `chromium` and `chromium-driver` packages). ChromeDriver is started on a
//! free port of 127.0.0.1 and Chromium is started by it, both in a process group of
//! their own that is killed when the [`Browser`] is dropped, or when the test process
//! ends however it ends (the group's leader kills it when its standard input closes,
//! as the PostgreSQL cluster's wrapper does).
//!
//! Where the programs are missing, [`browser`] panics with one line naming the
//! packages ([`HOW_TO_GET_THEM`]): a browser test fails, it is never skipped.

use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

/// The WebDriver client the tests drive the browser with (its `Locator`, `Element`).
pub use fantoccini;

/// What to do when the browser is missing, said as the whole failure.
pub const HOW_TO_GET_THEM: &str =
    "the browser tests need Chromium and ChromeDriver: apt-get install chromium chromium-driver";

/// The packages that bring both programs, for installers (`cargo xtask test`).
pub const PACKAGES: [&str; 2] = ["chromium", "chromium-driver"];

/// Names the browser goes by: Debian's `chromium`, Ubuntu's and others'
/// `chromium-browser`.
const CHROMIUM_NAMES: [&str; 2] = ["chromium", "chromium-browser"];
const CHROMEDRIVER_NAMES: [&str; 1] = ["chromedriver"];

/// Chromium's command line. Headless, and quiet: nothing is fetched from the network
/// behind the test's back (component updates, safe-browsing lists, first-run pages),
/// which also keeps the tests working on a machine without internet access.
/// `--no-sandbox`: the tests run as root in CI, where Chromium refuses its sandbox.
/// The window size makes screenshots the same size everywhere.
const CHROMIUM_ARGS: [&str; 7] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--window-size=1280,800",
];

/// How long ChromeDriver and a new session may take on a loaded 2-core machine.
const START_PATIENCE: Duration = Duration::from_secs(60);

/// Where Chromium and ChromeDriver are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Programs {
    /// The browser.
    pub chromium: PathBuf,
    /// The WebDriver server that drives it.
    pub chromedriver: PathBuf,
}

/// The directories searched, in order: `PATH`, then where Debian installs them.
pub fn search_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.push("/usr/bin".into());
    dirs.push("/usr/lib/chromium".into());
    dirs
}

/// Both programs from [`search_dirs`], when both are there.
pub fn find_programs() -> Option<Programs> {
    find_programs_in(&search_dirs())
}

/// Both programs from `dirs` (the first directory holding each wins), when both are
/// there as executable files.
pub fn find_programs_in(dirs: &[PathBuf]) -> Option<Programs> {
    Some(Programs {
        chromium: find_executable(dirs, &CHROMIUM_NAMES)?,
        chromedriver: find_executable(dirs, &CHROMEDRIVER_NAMES)?,
    })
}

fn find_executable(dirs: &[PathBuf], names: &[&str]) -> Option<PathBuf> {
    dirs.iter()
        .flat_map(|dir| names.iter().map(move |name| dir.join(name)))
        .find(|path| is_executable(path))
}

fn is_executable(path: &Path) -> bool {
    // `metadata` follows symbolic links: Debian's /usr/bin/chromedriver is one.
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// A headless Chromium with a WebDriver session open on it. Dereferences to the
/// session's [`fantoccini::Client`]. Dropping it kills ChromeDriver and Chromium;
/// [`Browser::quit`] ends the session first, which lets Chromium exit on its own.
pub struct Browser {
    client: Option<fantoccini::Client>,
    driver: Driver,
}

impl std::fmt::Debug for Browser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Browser")
            .field("chromedriver_port", &self.driver.port)
            .finish_non_exhaustive()
    }
}

/// A headless Chromium for a test.
///
/// # Panics
///
/// When Chromium or ChromeDriver is missing, with the one line [`HOW_TO_GET_THEM`];
/// when they are there but do not start, with one line saying why.
pub async fn browser() -> Browser {
    match Browser::start().await {
        Ok(browser) => browser,
        Err(reason) => panic!("{reason}"),
    }
}

impl Browser {
    /// Finds the programs, starts ChromeDriver and opens a session on a fresh
    /// Chromium. Errors are one line; a missing program is [`HOW_TO_GET_THEM`].
    pub async fn start() -> Result<Browser, String> {
        Browser::start_with(find_programs()).await
    }

    async fn start_with(programs: Option<Programs>) -> Result<Browser, String> {
        let programs = programs.ok_or(HOW_TO_GET_THEM)?;
        let driver = Driver::start(&programs.chromedriver)?;
        let capabilities = capabilities(&programs.chromium, &driver.profile_path());
        let url = format!("http://127.0.0.1:{}", driver.port);
        let mut builder = fantoccini::ClientBuilder::new(
            hyper_util::client::legacy::connect::HttpConnector::new(),
        );
        builder.capabilities(capabilities);
        let client = tokio::time::timeout(START_PATIENCE, builder.connect(&url))
            .await
            .map_err(|_| {
                format!(
                    "Chromium did not start within {}s: {}",
                    START_PATIENCE.as_secs(),
                    driver.last_log_line()
                )
            })?
            .map_err(|e| {
                format!(
                    "Chromium did not start ({}): {}",
                    one_line(&e.to_string()),
                    driver.last_log_line()
                )
            })?;
        Ok(Browser {
            client: Some(client),
            driver,
        })
    }

    /// Ends the session (Chromium exits), then stops ChromeDriver.
    pub async fn quit(mut self) {
        if let Some(client) = self.client.take() {
            // A session already gone is as good as one ended.
            let _ = tokio::time::timeout(Duration::from_secs(10), client.close()).await;
        }
        // Drop stops ChromeDriver's process group.
    }

    /// The process id of ChromeDriver's process group (its wrapper's id).
    pub fn process_group(&self) -> u32 {
        self.driver.child.id()
    }

    /// The profile directory Chromium was given (fresh and empty at the start).
    pub fn profile_dir(&self) -> PathBuf {
        self.driver.profile_path()
    }

    /// The PNG screenshot of the visible page, written to `path`.
    pub async fn save_screenshot(&self, path: &Path) -> Result<(), String> {
        let png = self
            .screenshot()
            .await
            .map_err(|e| format!("cannot take a screenshot: {}", one_line(&e.to_string())))?;
        std::fs::write(path, png).map_err(|e| format!("cannot write {}: {e}", path.display()))
    }
}

impl std::ops::Deref for Browser {
    type Target = fantoccini::Client;

    fn deref(&self) -> &fantoccini::Client {
        // Only `quit` takes the client, and it consumes the Browser.
        self.client
            .as_ref()
            .expect("the session is open until quit")
    }
}

/// The WebDriver capabilities of a headless Chromium at `chromium`, with `profile` as
/// its fresh user data directory.
fn capabilities(chromium: &Path, profile: &Path) -> serde_json::Map<String, serde_json::Value> {
    let mut args: Vec<String> = CHROMIUM_ARGS.iter().map(|&a| a.to_owned()).collect();
    args.push(format!("--user-data-dir={}", profile.display()));
    let caps = serde_json::json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": chromium.display().to_string(),
            "args": args,
        },
    });
    match caps {
        serde_json::Value::Object(map) => map,
        _ => unreachable!("a JSON object literal"),
    }
}

/// ChromeDriver in a process group of its own, led by a shell that kills the whole
/// group (ChromeDriver and every Chromium process it started) when its standard input
/// closes.
struct Driver {
    child: Child,
    stdin: Option<ChildStdin>,
    port: u16,
    /// Holds Chromium's profile and ChromeDriver's log; removed after the group is
    /// killed.
    dir: tempfile::TempDir,
}

impl Driver {
    fn start(chromedriver: &Path) -> Result<Driver, String> {
        let dir = tempfile::Builder::new()
            .prefix("dronehook-browser-")
            .tempdir()
            .map_err(|e| format!("cannot make a temporary directory: {e}"))?;
        std::fs::create_dir(dir.path().join("profile"))
            .map_err(|e| format!("cannot make Chromium's profile directory: {e}"))?;
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("cannot find a free port: {e}"))?
            .port();
        // `kill 0` signals the shell's own process group, which `process_group(0)`
        // made a new one: ChromeDriver and Chromium's processes inherit it.
        // ChromeDriver's exit is noted in a file, since the shell itself stays to wait
        // for its input to close.
        let script = r#"
("$1" --port="$2" --allowed-ips=127.0.0.1 >"$3/chromedriver.log" 2>&1; echo $? >"$3/exited") &
read _unused
kill -KILL 0
"#;
        let mut child = Command::new("/bin/sh")
            .arg("-c")
            .arg(script)
            .arg("sh")
            .arg(chromedriver)
            .arg(port.to_string())
            .arg(dir.path())
            .process_group(0)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", chromedriver.display()))?;
        let stdin = child.stdin.take();
        let mut driver = Driver {
            child,
            stdin,
            port,
            dir,
        };
        let deadline = Instant::now() + START_PATIENCE;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        loop {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(driver);
            }
            let exited = driver.dir.path().join("exited").exists()
                || driver.child.try_wait().ok().flatten().is_some();
            if exited || Instant::now() > deadline {
                return Err(format!(
                    "ChromeDriver did not start: {}",
                    driver.last_log_line()
                ));
            }
            // Still starting: the connection was refused.
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn profile_path(&self) -> PathBuf {
        self.dir.path().join("profile")
    }

    /// The last line ChromeDriver logged, to say why it failed.
    fn last_log_line(&self) -> String {
        let log =
            std::fs::read_to_string(self.dir.path().join("chromedriver.log")).unwrap_or_default();
        log.lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .map_or_else(|| "it logged nothing".to_owned(), one_line)
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.flush();
        }
        let _ = self.child.wait();
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use fantoccini::Locator;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    fn touch(path: &Path, mode: u32) {
        std::fs::write(path, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn both_programs_are_needed_and_found_in_order() {
        let first = tempfile::tempdir().unwrap();
        let second = tempfile::tempdir().unwrap();
        let dirs = [first.path().to_owned(), second.path().to_owned()];
        assert_eq!(find_programs_in(&dirs), None, "empty directories");

        touch(&second.path().join("chromium"), 0o755);
        assert_eq!(find_programs_in(&dirs), None, "no chromedriver");

        touch(&first.path().join("chromedriver"), 0o755);
        assert_eq!(
            find_programs_in(&dirs),
            Some(Programs {
                chromium: second.path().join("chromium"),
                chromedriver: first.path().join("chromedriver"),
            })
        );

        // An earlier directory wins, under either of Chromium's names.
        touch(&first.path().join("chromium-browser"), 0o755);
        assert_eq!(
            find_programs_in(&dirs).unwrap().chromium,
            first.path().join("chromium-browser")
        );
    }

    #[test]
    fn a_file_that_is_not_executable_or_a_directory_is_not_a_program() {
        let dir = tempfile::tempdir().unwrap();
        let dirs = [dir.path().to_owned()];
        touch(&dir.path().join("chromium"), 0o644);
        std::fs::create_dir(dir.path().join("chromedriver")).unwrap();
        assert_eq!(find_programs_in(&dirs), None);

        touch(&dir.path().join("chromium"), 0o755);
        std::fs::remove_dir(dir.path().join("chromedriver")).unwrap();
        // Debian links /usr/bin/chromedriver to /usr/lib/chromium/chromedriver.
        touch(&dir.path().join("real-driver"), 0o755);
        std::os::unix::fs::symlink(
            dir.path().join("real-driver"),
            dir.path().join("chromedriver"),
        )
        .unwrap();
        assert_eq!(
            find_programs_in(&dirs).unwrap().chromedriver,
            dir.path().join("chromedriver")
        );
    }

    #[test]
    fn debian_locations_are_searched_after_path() {
        let dirs = search_dirs();
        let n = dirs.len();
        assert_eq!(dirs[n - 2], Path::new("/usr/bin"));
        assert_eq!(dirs[n - 1], Path::new("/usr/lib/chromium"));
    }

    #[tokio::test]
    async fn missing_programs_fail_with_the_one_line_naming_the_packages() {
        let err = Browser::start_with(None).await.unwrap_err();
        assert_eq!(
            err,
            "the browser tests need Chromium and ChromeDriver: apt-get install chromium chromium-driver"
        );
        assert!(PACKAGES.iter().all(|p| err.contains(p)));
    }

    #[tokio::test]
    async fn a_chromedriver_that_does_not_start_fails_with_its_last_log_line() {
        let dir = tempfile::tempdir().unwrap();
        let driver = dir.path().join("chromedriver");
        std::fs::write(
            &driver,
            "#!/bin/sh\necho 'cannot bind the port' >&2\nexit 1\n",
        )
        .unwrap();
        std::fs::set_permissions(&driver, std::fs::Permissions::from_mode(0o755)).unwrap();
        let err = Browser::start_with(Some(Programs {
            chromium: dir.path().join("chromium"),
            chromedriver: driver,
        }))
        .await
        .unwrap_err();
        assert_eq!(err, "ChromeDriver did not start: cannot bind the port");
    }

    #[test]
    fn the_capabilities_ask_for_a_headless_chromium_with_its_own_profile() {
        let caps = capabilities(Path::new("/usr/bin/chromium"), Path::new("/tmp/p"));
        let value = serde_json::Value::Object(caps);
        assert_eq!(value["browserName"], "chrome");
        assert_eq!(value["goog:chromeOptions"]["binary"], "/usr/bin/chromium");
        let args: Vec<&str> = value["goog:chromeOptions"]["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        for flag in [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run",
            "--user-data-dir=/tmp/p",
        ] {
            assert!(args.contains(&flag), "{flag} missing from {args:?}");
        }
    }

    /// Serves `page` as text/html to every request, on a free port; returns its URL.
    async fn serve_page(page: &'static str) -> String {
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    // One request per connection; its head is read and ignored.
                    let mut buf = [0u8; 4096];
                    let _ = stream.read(&mut buf).await;
                    let response = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: text/html; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{page}",
                        page.len()
                    );
                    let _ = stream.write_all(response.as_bytes()).await;
                });
            }
        });
        format!("http://{addr}/")
    }

    fn is_alive(pid: u32) -> bool {
        // A zombie has given up everything but its entry; it counts as gone.
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
            !stat
                .rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
    }

    /// The processes in process group `pgid`, from /proc.
    fn group_members(pgid: u32) -> Vec<u32> {
        std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| {
                std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
                    // Fields after the command's closing parenthesis: state ppid pgrp.
                    let rest: Vec<&str> = stat
                        .rsplit(')')
                        .next()
                        .unwrap_or("")
                        .split_whitespace()
                        .collect();
                    rest.get(2).and_then(|g| g.parse::<u32>().ok()) == Some(pgid)
                        && rest.first() != Some(&"Z")
                })
            })
            .collect()
    }

    #[tokio::test]
    async fn a_page_is_loaded_read_scripted_and_shot_and_everything_stops_on_drop() {
        let url = serve_page(
            "<!doctype html><title>harness</title><p id=\"greeting\">hello &lt;b&gt;</p>\
             <script>window.ranScript = 41 + 1;</script>",
        )
        .await;
        let browser = browser().await;
        let pgid = browser.process_group();
        let profile = browser.profile_dir();
        browser.goto(&url).await.unwrap();
        assert_eq!(browser.title().await.unwrap(), "harness");
        let text = browser
            .find(Locator::Css("#greeting"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(text, "hello <b>");
        let ran = browser
            .execute("return window.ranScript;", vec![])
            .await
            .unwrap();
        assert_eq!(ran, serde_json::json!(42));
        let shot = tempfile::tempdir().unwrap();
        let png = shot.path().join("page.png");
        browser.save_screenshot(&png).await.unwrap();
        let bytes = std::fs::read(&png).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        // The profile is the fresh one given, and Chromium uses it.
        assert!(profile.join("Default").exists() || profile.join("Local State").exists());

        let members = group_members(pgid);
        assert!(
            members.len() >= 3,
            "the wrapper, ChromeDriver and Chromium share the group: {members:?}"
        );
        drop(browser);
        // SIGKILL is delivered at once, but the kernel reaps asynchronously.
        let deadline = Instant::now() + Duration::from_secs(10);
        while members.iter().any(|&p| is_alive(p)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let left: Vec<u32> = members.into_iter().filter(|&p| is_alive(p)).collect();
        assert!(left.is_empty(), "still running after drop: {left:?}");
        assert!(!profile.exists(), "the profile is removed");
    }

    #[tokio::test]
    async fn quit_ends_the_session_and_stops_everything() {
        let browser = browser().await;
        let pgid = browser.process_group();
        let members = group_members(pgid);
        browser.quit().await;
        let deadline = Instant::now() + Duration::from_secs(10);
        while members.iter().any(|&p| is_alive(p)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(members.iter().all(|&p| !is_alive(p)));
    }
}
