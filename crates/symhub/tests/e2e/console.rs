//! The web console in a real browser: Debian's Chromium, headless, driven through
//! chromedriver (WebDriver) by fantoccini, against a running symhub with uploads, a cached
//! file, misses and keys in it. Each page is loaded and read, search → entry → delete and
//! forget-a-miss are clicked through, keys are made and revoked, and a download key is
//! offered no deletion. A screenshot of each page goes to `<target tmp>/console/`.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use reqwest::Method;
use serde_json::json;

use crate::support::*;
use crate::transactions::{api, open, sym, sym_path, upload_v1_in};

const ADMIN: &str = "console-config-key";

struct Driver {
    child: Child,
    url: String,
    /// The browser's profile: also how its processes are found if the test fails before
    /// it closes the session (killing chromedriver leaves Chromium running).
    profile: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = Command::new("pkill")
            .arg("-f")
            .arg(self.profile.path())
            .status();
    }
}

fn tool(name: &str) -> Option<String> {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    if found.is_none() {
        assert!(
            std::env::var("SYMHUB_REQUIRE_TOOLS").is_err(),
            "{name} is not installed; scripts/test installs it"
        );
        eprintln!("SKIPPED: {name} not installed (run ./scripts/test)");
    }
    found
}

fn chromedriver() -> Option<Driver> {
    let bin = tool("chromedriver")?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(bin)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    Some(Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
        profile: tempfile::tempdir().unwrap(),
    })
}

async fn browser(driver: &Driver, chromium: &str) -> Client {
    let caps = json!({
        "goog:chromeOptions": {
            "binary": chromium,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--window-size=1366,900",
                     format!("--user-data-dir={}", driver.profile.path().display())],
        }
    });
    let serde_json::Value::Object(caps) = caps else {
        unreachable!()
    };
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("chromedriver session")
}

/// The text of the first element matching `css` once `pred` holds for it (10 s at most).
async fn wait_text(c: &Client, css: &str, pred: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last = String::new();
    loop {
        if let Ok(e) = c.find(Locator::Css(css)).await {
            if let Ok(t) = e.text().await {
                if pred(&t) {
                    return t;
                }
                last = t;
            }
        }
        assert!(Instant::now() < deadline, "{css}: last text {last:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn count(c: &Client, css: &str) -> usize {
    c.find_all(Locator::Css(css)).await.map_or(0, |v| v.len())
}

async fn click(c: &Client, css: &str) {
    wait_text(c, css, |_| true).await;
    c.find(Locator::Css(css))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

async fn screenshot(c: &Client, name: &str) {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("console");
    std::fs::create_dir_all(&dir).unwrap();
    let png = c.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"), "{name}: not a PNG");
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
}

/// Enters `key` in the header's key box.
async fn use_key(c: &Client, key: &str, expect: &str) {
    let input = c.find(Locator::Css("#key-input")).await.unwrap();
    input.send_keys(key).await.unwrap();
    click(c, "#key-save").await;
    wait_text(c, "#whoami", |t| t.contains(expect)).await;
}

#[tokio::test]
async fn the_console_shows_and_changes_what_symhub_holds() {
    let Some(chromium) = tool("chromium") else {
        return;
    };
    let Some(driver) = chromedriver() else { return };
    let up = FakeUpstream::start().await;
    let cached = "/cached.pdb/0123456789ABCDEF0123456789ABCDEF1/cached.pdb";
    up.serve(cached, data(300_000, 9));
    let s = Symhub::start(&format!(
        "{}{}[missing]\nflush_interval = \"100ms\"\n",
        config_with(
            &[("good", &up.url, ""), ("dead", "http://127.0.0.1:9", "")],
            "[symbolication]\non_demand = false\n"
        ),
        auth_config(ADMIN)
    ));
    // What the pages show: stored symbols (one in a transaction), a cached file, misses.
    let admin = crate::access::new_key(&s, ADMIN, "console-admin", "admin").await;
    let viewer = crate::access::new_key(&s, ADMIN, "viewer", "download").await;
    let tx = open(&s, &admin, "desktop", "7.1").await;
    let doomed = sym("doomed", "0123456789ABCDEF0123456789ABCDEF0", "");
    let other = sym("other", "1123456789ABCDEF0123456789ABCDEF0", "");
    assert_eq!(upload_v1_in(&s, &admin, &doomed, Some(tx)).await, 200);
    assert_eq!(upload_v1_in(&s, &admin, &other, None).await, 200);
    assert_eq!(s.get(cached).await.status(), 200);
    let often = "/often.pdb/2123456789ABCDEF0123456789ABCDEF1/often.pdb";
    let once = "/once.pdb/3123456789ABCDEF0123456789ABCDEF1/once.pdb";
    for p in [often, often, often, once] {
        assert_eq!(s.get_now(p).await.status(), 404);
    }

    let c = browser(&driver, &chromium).await;
    // Status: no key needed; upstreams, chart, cache and store.
    c.goto(&format!("{}/", s.url)).await.unwrap();
    wait_text(&c, "#upstreams tr[data-upstream=\"good\"] td.state", |t| {
        t == "up"
    })
    .await;
    wait_text(&c, "#upstreams tr[data-upstream=\"dead\"]", |t| {
        t.contains("unreachable")
    })
    .await;
    assert_eq!(count(&c, "svg#chart").await, 1);
    wait_text(&c, "#store-size", |t| !t.is_empty()).await;
    wait_text(&c, "#cache-size", |t| {
        t.contains("KiB") || t.contains("MiB")
    })
    .await;
    screenshot(&c, "status").await;

    // Symbols: a page that needs a key says so; with the admin key, search by debug file.
    c.goto(&format!("{}/ui/#/symbols", s.url)).await.unwrap();
    use_key(&c, &admin, "console-admin (admin)").await;
    let search = c.find(Locator::Css("#search-input")).await.unwrap();
    search.send_keys("doomed\u{e007}").await.unwrap(); // Enter submits
    wait_text(&c, "#results a.entry-link", |t| t.contains("doomed.sym")).await;
    screenshot(&c, "symbols").await;
    click(&c, "#results a.entry-link").await;
    wait_text(&c, "dd[data-field=\"uploader\"]", |t| t == "console-admin").await;
    wait_text(&c, "dd[data-field=\"source\"]", |t| t == "transaction").await;
    wait_text(&c, "dd[data-field=\"transactions\"]", |t| {
        t.contains(&tx.to_string())
    })
    .await;
    let href = c
        .find(Locator::Css("#download-link"))
        .await
        .unwrap()
        .attr("href")
        .await
        .unwrap()
        .unwrap();
    assert!(href.ends_with(&sym_path(&doomed)), "{href}");
    screenshot(&c, "entry").await;
    click(&c, "#delete-button").await;
    click(&c, "#confirm-yes").await;
    wait_text(&c, "#notice", |t| t.contains("Deleted")).await;
    assert_eq!(s.get_now(&sym_path(&doomed)).await.status(), 404);

    // Missing: most requested first; forget it, and it is gone from the ledger.
    click(&c, "nav a[data-nav=\"missing\"]").await;
    let first = "#missing tr[data-key]";
    wait_text(&c, first, |t| t.contains("often.pdb") && t.contains('3')).await;
    screenshot(&c, "missing").await;
    click(&c, &format!("{first} button.forget")).await;
    wait_text(&c, "#notice", |t| t.contains("Forgot")).await;
    let (_, ledger) = api(&s, &admin, Method::GET, "/api/missing", None).await;
    let keys: Vec<&str> = ledger["missing"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["key"].as_str().unwrap())
        .collect();
    assert!(!keys.iter().any(|k| k.contains("often.pdb")), "{ledger}");
    assert!(keys.iter().any(|k| k.contains("once.pdb")), "{ledger}");

    // Uploads: the transaction and who ran it.
    click(&c, "nav a[data-nav=\"uploads\"]").await;
    let row = format!("#transactions tr[data-transaction=\"{tx}\"]");
    wait_text(&c, &row, |t| {
        t.contains("desktop") && t.contains("console-admin")
    })
    .await;
    screenshot(&c, "uploads").await;

    // Keys: make one, revoke another.
    click(&c, "nav a[data-nav=\"keys\"]").await;
    wait_text(&c, "#keys tr[data-key-name=\"viewer\"] td.state", |t| {
        t == "active"
    })
    .await;
    c.find(Locator::Css("#new-key-name"))
        .await
        .unwrap()
        .send_keys("from-console")
        .await
        .unwrap();
    c.find(Locator::Css("#new-key-scope option[value=\"download\"]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    click(&c, "#new-key-create").await;
    let key = wait_text(&c, "#new-key-value", |t| t.starts_with("symhub_")).await;
    let (status, who) = api(&s, &key, Method::GET, "/api/whoami", None).await;
    assert_eq!(
        (status, &who),
        (200, &json!({ "name": "from-console", "scope": "download" }))
    );
    click(&c, "#keys tr[data-key-name=\"viewer\"] button.revoke").await;
    click(&c, "#confirm-yes").await;
    wait_text(&c, "#keys tr[data-key-name=\"viewer\"] td.state", |t| {
        t == "revoked"
    })
    .await;
    screenshot(&c, "keys").await;
    let r = client()
        .get(format!("{}/api/whoami", s.url))
        .bearer_auth(&viewer)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    // A download key sees the entry but cannot delete it, and has no Keys page.
    click(&c, "#key-forget").await;
    use_key(&c, &key, "from-console (download)").await;
    let keys_link = c
        .find(Locator::Css("nav a[data-nav=\"keys\"]"))
        .await
        .unwrap();
    assert!(
        !keys_link.is_displayed().await.unwrap(),
        "Keys is for admins"
    );
    c.goto(&format!(
        "{}/ui/#/entry/{}",
        s.url,
        sym_path(&other).trim_start_matches('/').replace('/', "%2F")
    ))
    .await
    .unwrap();
    wait_text(&c, "dd[data-field=\"uploader\"]", |t| t == "console-admin").await;
    assert_eq!(
        count(&c, "#delete-button").await,
        0,
        "no Delete for a download key"
    );
    screenshot(&c, "entry-download-key").await;
    // The Keys page by its address: it says an admin key is needed, and offers no form.
    c.goto(&format!("{}/ui/#/keys", s.url)).await.unwrap();
    wait_text(&c, "#notice", |t| t.contains("admin")).await;
    assert_eq!(count(&c, "#new-key-form").await, 0, "no New key form");
    click(&c, "nav a[data-nav=\"missing\"]").await;
    wait_text(&c, "#missing tr[data-key*=\"once.pdb\"]", |_| true).await;
    assert_eq!(
        count(&c, "button.forget").await,
        0,
        "no Forget for a download key"
    );
    assert_eq!(s.get_now(&sym_path(&other)).await.status(), 200);
    c.close().await.unwrap();
}
