use crate::harness::{Browser, batch, ingest, now_secs, site, start_with_dashboard};
use fantoccini::Locator;

#[tokio::test(flavor = "multi_thread")]
async fn older_pages_neither_skip_nor_repeat_while_rows_arrive() {
    let backend = start_with_dashboard(&[]);
    let site = site(&backend);
    let http = reqwest::Client::new();
    let now = now_secs();
    // 20 batches of 3 rows: one page of 50 and then 10 more.
    for i in 0..20 {
        ingest(&http, &backend.url(""), &batch("pc-01", now - 100 + i, 0.2)).await;
    }
    let browser = Browser::start().await;
    let c = &browser.client;
    c.goto(&format!("{site}/events")).await.unwrap();
    browser.wait_css(".conn.live").await;
    let ids = || async {
        let texts = browser.texts("table.log tbody tr td:first-child").await;
        // A row re-rendered while read comes back empty; the next poll reads it.
        texts.iter().filter_map(|t| t.parse::<i64>().ok()).collect::<Vec<_>>()
    };
    browser.until("the first page", || async { (ids().await.len() == 50).then_some(()) }).await;

    // New rows arrive on top while the first page is shown; then the older page is fetched.
    ingest(&http, &backend.url(""), &batch("pc-01", now, 0.9)).await;
    browser.until("the live rows", || async { (ids().await.len() == 53).then_some(()) }).await;
    c.find(Locator::XPath("//button[text()='Older events']")).await.unwrap().click().await.unwrap();
    let all =
        browser.until("every row", || async { Some(ids().await).filter(|v| v.len() == 63) }).await;
    assert_eq!(all, (1..=63).rev().collect::<Vec<i64>>(), "every id once, newest first");
    // The last page was short: nothing older to ask for.
    browser
        .until("no more pages", || async {
            c.find(Locator::XPath("//button[text()='Older events']")).await.is_err().then_some(())
        })
        .await;
    assert_eq!(browser.console_errors(&[]).await, Vec::<String>::new());
    browser.close().await;
}
