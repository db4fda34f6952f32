use crate::harness::{ADMIN, Browser, batch, ingest, now_secs, site, start_with_dashboard};
use fantoccini::Locator;
use fantoccini::key::Key;

#[tokio::test(flavor = "multi_thread")]
async fn clearing_asks_for_the_admin_token_and_refuses_a_wrong_one() {
    let backend = start_with_dashboard(&[]);
    let site = site(&backend);
    let http = reqwest::Client::new();
    ingest(&http, &backend.url(""), &batch("pc-01", now_secs(), 0.3)).await;
    let browser = Browser::start().await;
    let c = &browser.client;
    c.goto(&format!("{site}/events")).await.unwrap();
    browser.wait_css("table.log tbody tr").await;

    c.find(Locator::XPath("//button[text()='Clear all events']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let token = browser.wait_css(r#".dialog input[type="password"]"#).await;
    token.send_keys("not-the-token").await.unwrap();
    let confirm = c.find(Locator::Css(".dialog button.danger")).await.unwrap();
    confirm.click().await.unwrap();
    browser
        .until("not the admin token", || async {
            browser
                .texts(".dialog [role=alert]")
                .await
                .iter()
                .any(|t| t == "not the admin token")
                .then_some(())
        })
        .await;
    let rows: serde_json::Value = http
        .get(format!("{}/api/events", backend.url("")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 3, "nothing was cleared");

    // Erased key by key, as a person would: WebDriver's clear() fires no input event, so the
    // app's state kept the old token and its next render put it back into the field.
    let backspace = char::from(Key::Backspace).to_string();
    token.send_keys(&backspace.repeat("not-the-token".len())).await.unwrap();
    token.send_keys(ADMIN).await.unwrap();
    browser
        .until("the token in the field", || async {
            (token.prop("value").await.ok().flatten().as_deref() == Some(ADMIN)).then_some(())
        })
        .await;
    confirm.click().await.unwrap();
    browser
        .until("the clear to succeed", || async {
            browser
                .texts(".dialog .ok")
                .await
                .iter()
                .any(|t| t == "Cleared 3 events.")
                .then_some(())
        })
        .await;
    browser.screenshot("clear-dialog").await;
    c.find(Locator::XPath("//div[@class='actions']/button[text()='Close']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser
        .until("an empty log", || async {
            browser.texts("p.empty").await.first().filter(|t| *t == "No events match.").cloned()
        })
        .await;

    // The refused attempt is the only error the console may show.
    assert_eq!(browser.console_errors(&["403"]).await, Vec::<String>::new());
    browser.close().await;
}
