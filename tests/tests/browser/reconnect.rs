use crate::harness::{Browser, batch, ingest, now_secs, site, start_with_dashboard};

#[tokio::test(flavor = "multi_thread")]
async fn after_a_backend_restart_the_page_shows_what_arrived_meanwhile() {
    let mut backend = start_with_dashboard(&[]);
    let site = site(&backend);
    let http = reqwest::Client::new();
    ingest(&http, &backend.url(""), &batch("pc-01", now_secs(), 0.3)).await;
    let browser = Browser::start().await;
    browser.client.goto(&format!("{site}/events")).await.unwrap();
    browser.wait_css(".conn.live").await;
    browser.wait_css("table.log tbody tr").await;

    backend.cut_off();
    browser.wait_css(".conn.down").await;
    backend.restart();
    // Stored while the page is still waiting to retry: only the gap fill can bring it.
    ingest(&http, &backend.url(""), &batch("pc-late", now_secs(), 0.6)).await;
    assert!(browser.client.find(fantoccini::Locator::Css(".conn.down")).await.is_ok());
    browser.wait_css(".conn.live").await;
    let ids = browser
        .until("the missed rows", || async {
            let ids = browser.texts("table.log tbody tr td:first-child").await;
            (ids.len() >= 6).then_some(ids)
        })
        .await;
    let mut unique = ids.clone();
    unique.dedup();
    assert_eq!(ids, unique, "no row twice");
    assert_eq!(ids.len(), 6);
    browser.wait_css(r#"a[href="/"]"#).await.click().await.unwrap();
    browser.wait_css(r#"article[aria-label="pc-late, online"]"#).await;
    browser.screenshot("after-restart").await;

    // Failed reconnect attempts are expected while the backend is down.
    let errors = browser.console_errors(&["WebSocket connection", "502"]).await;
    assert_eq!(errors, Vec::<String>::new());
    browser.close().await;
}
