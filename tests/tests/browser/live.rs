use crate::harness::{Browser, batch, ingest, now_secs, site, start_with_dashboard};
use fantoccini::Locator;
use protocol::{IngestBatch, Notice, NoticeKind, NoticeLevel, Service, ServiceState, StartMode};

/// A batch that also carries cores, two services (one stopped) and an Event Log error.
fn machine_batch(agent: &str, at: i64, cpu: f64) -> IngestBatch {
    let mut b = batch(agent, at, cpu);
    b.host = Some(protocol::Host { cores: vec![0.9, 0.1, 0.5, 0.2], ..protocol::Host::default() });
    let service = |name: &str, display: &str, state| Service {
        name: name.into(),
        display_name: Some(display.into()),
        state,
        start: Some(StartMode::Auto),
    };
    b.services = Some(vec![
        service("W32Time", "Windows Time", ServiceState::Running),
        service("Spooler", "Print Spooler", ServiceState::Stopped),
    ]);
    b.notices = Some(vec![Notice {
        ts: b.ts.clone(),
        kind: NoticeKind::Log,
        level: NoticeLevel::Error,
        source: "System/Service Control Manager".into(),
        code: Some(7034),
        message: "The Print Spooler service terminated unexpectedly.".into(),
    }]);
    b
}

#[tokio::test(flavor = "multi_thread")]
async fn views_update_live_and_charts_follow_the_range() {
    let backend = start_with_dashboard(&[]);
    let site = site(&backend);
    let http = reqwest::Client::new();
    let now = now_secs();
    for (i, cpu) in [0.20, 0.35, 0.30].into_iter().enumerate() {
        ingest(&http, &backend.url(""), &batch("pc-01", now - 10 + 5 * i as i64, cpu)).await;
    }
    let browser = Browser::start().await;
    let c = &browser.client;
    c.goto(&site).await.unwrap();
    browser.wait_css(r#"article[aria-label^="pc-01"]"#).await;
    assert_eq!(c.title().await.unwrap(), "Fleet telemetry dashboard");

    // A new agent appears without a reload.
    ingest(&http, &backend.url(""), &batch("pc-new", now_secs(), 0.8)).await;
    browser.wait_css(r#"article[aria-label="pc-new, online"]"#).await;
    browser
        .until("two online", || async {
            browser.texts(".counts .online").await.first().filter(|t| *t == "2 online").cloned()
        })
        .await;
    let cpu = browser.texts(r#"article[aria-label^="pc-new"] dd.cpu"#).await;
    assert_eq!(cpu, ["80.0 %"]);
    browser.screenshot("fleet").await;

    // The agent view draws its charts and appends live readings.
    c.find(Locator::Css(r#"a[href="/agents/pc-01"]"#)).await.unwrap().click().await.unwrap();
    let cpu_line = browser.wait_css(r#"path.line.cpu[d*="L"]"#).await;
    let before = cpu_line.attr("d").await.unwrap().unwrap();
    ingest(&http, &backend.url(""), &machine_batch("pc-01", now_secs() + 1, 0.9)).await;
    browser
        .until("a live reading in the chart", || async {
            let d = c.find(Locator::Css("path.line.cpu")).await.ok()?.attr("d").await.ok()??;
            (d.matches('L').count() > before.matches('L').count()).then_some(())
        })
        .await;
    for path in ["mem", "disk", "rx"] {
        browser.wait_css(&format!(r#"path.line.{path}[d*="L"]"#)).await;
    }
    // That batch's cores, services and notice show without a reload.
    browser
        .until("four cores, the stopped service and its notice", || async {
            let cores = browser.texts(".cores li").await.len();
            let services = browser.texts(".services tbody td:first-child").await;
            let notices = browser.texts(".notices td.message").await;
            (cores == 4 && services == ["Print Spooler", "Windows Time"] && notices.len() == 1)
                .then_some(())
        })
        .await;

    // Ranges: the axis changes from clock times to dates, and the line is still drawn.
    for (label, pattern) in [("24 h", 5), ("7 days", 11)] {
        let button = c.find(Locator::XPath(&format!("//button[text()='{label}']"))).await.unwrap();
        button.click().await.unwrap();
        browser
            .until(&format!("the {label} axis"), || async {
                let pressed = button.attr("aria-pressed").await.ok()?? == "true";
                let first = browser.texts(".chart .x-axis span").await.into_iter().next()?;
                (pressed && first.len() == pattern).then_some(())
            })
            .await;
        browser.wait_css(r#"path.line.cpu[d^="M"]"#).await;
    }
    browser.screenshot("agent-7-days").await;

    // Processes: the live table, and a chosen process's history.
    c.find(Locator::XPath("//button[text()='Live']")).await.unwrap().click().await.unwrap();
    let names = browser.texts(".processes tbody td:first-child").await;
    assert_eq!(names, ["sqlservr.exe", "chrome.exe"]);
    c.find(Locator::XPath("//button[text()='sqlservr.exe']")).await.unwrap().click().await.unwrap();
    browser
        .until("the process chart", || async {
            let titles = browser.texts(".chart .title").await;
            titles.iter().any(|t| t == "sqlservr.exe CPU").then_some(())
        })
        .await;
    browser.wait_css(r#"figure.chart path.line.mem[d^="M"]"#).await;
    browser.screenshot("agent").await;

    // The event log: newest first, and a new row arrives on top.
    c.find(Locator::Css(r#"nav a[href="/events"]"#)).await.unwrap().click().await.unwrap();
    browser.wait_css("table.log tbody tr").await;
    let answer = ingest(&http, &backend.url(""), &batch("pc-02", now_secs(), 0.1)).await;
    assert_eq!(answer["stored"], 3);
    browser
        .until("the new rows on top", || async {
            let agents = browser.texts("table.log tbody tr td:nth-child(3)").await;
            (agents.len() == 18 && agents[..3].iter().all(|a| a == "pc-02")).then_some(())
        })
        .await;
    let ids: Vec<i64> = browser
        .texts("table.log tbody tr td:first-child")
        .await
        .iter()
        .map(|t| t.parse().unwrap())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first, each once: {ids:?}");
    browser.screenshot("events").await;

    // The light theme switches.
    c.find(Locator::Css("button.theme")).await.unwrap().click().await.unwrap();
    browser.wait_css(r#".app[data-theme="light"]"#).await;

    assert_eq!(browser.console_errors(&[]).await, Vec::<String>::new());
    browser.close().await;
}
