use crate::harness::{ADMIN, Browser, batch, ingest, now_secs, site, start_with_dashboard};
use fantoccini::Locator;
use fantoccini::key::Key;

#[tokio::test(flavor = "multi_thread")]
async fn an_admin_logs_in_once_clears_without_a_token_field_and_logs_out_everywhere() {
    let backend = start_with_dashboard(&[]);
    let site = site(&backend);
    let http = reqwest::Client::new();
    ingest(&http, &backend.url(""), &batch("pc-01", now_secs(), 0.3)).await;
    let browser = Browser::start().await;
    let c = &browser.client;
    c.goto(&format!("{site}/events")).await.unwrap();
    browser.wait_css("table.log tbody tr").await;
    // Reads are open here, but clearing is for admins: a reader is offered the admin login.
    assert!(c.find(Locator::XPath("//button[text()='Clear all events']")).await.is_err());
    c.find(Locator::Css("button.admin-login")).await.unwrap().click().await.unwrap();

    let token = browser.wait_css(r#".login input[type="password"]"#).await;
    token.send_keys("not-the-token").await.unwrap();
    c.find(Locator::Css(r#".login button[type="submit"]"#)).await.unwrap().click().await.unwrap();
    browser
        .until("the wrong token message", || async {
            let alerts = browser.texts(".login [role=alert]").await;
            alerts
                .iter()
                .any(|t| t == "Wrong token: that is not the backend's admin token.")
                .then_some(())
        })
        .await;
    // Erased key by key (WebDriver's clear() fires no input event), then submitted with Enter.
    let backspace = char::from(Key::Backspace).to_string();
    token.send_keys(&backspace.repeat("not-the-token".len())).await.unwrap();
    token.send_keys(&format!("{ADMIN}{}", char::from(Key::Enter))).await.unwrap();

    // Back on the same page, now with what an admin may do.
    let clear = browser.wait_css("button.danger").await;
    assert_eq!(clear.text().await.unwrap(), "Clear all events");
    let stored = c.execute("return JSON.stringify(sessionStorage)", vec![]).await.unwrap();
    let stored = stored.as_str().unwrap();
    assert!(stored.contains(r#"\"role\":\"admin\""#), "{stored}");
    assert!(!stored.contains(ADMIN), "the token itself is never kept: {stored}");
    let session: serde_json::Value = serde_json::from_str(
        c.execute("return sessionStorage.getItem('session')", vec![])
            .await
            .unwrap()
            .as_str()
            .unwrap(),
    )
    .unwrap();
    let session = session["session"].as_str().unwrap().to_owned();

    clear.click().await.unwrap();
    browser.wait_css(".dialog").await;
    assert!(c.find(Locator::Css(".dialog input")).await.is_err(), "no token field");
    c.find(Locator::Css(".dialog button.danger")).await.unwrap().click().await.unwrap();
    browser
        .until("the clear to succeed", || async {
            let done = browser.texts(".dialog .ok").await;
            done.iter().any(|t| t == "Cleared 3 events.").then_some(())
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

    // "Log out everywhere" ends this session on the backend and forgets it here.
    c.find(Locator::Css("button.revoke")).await.unwrap().click().await.unwrap();
    browser.wait_css("button.admin-login").await;
    let left = c.execute("return sessionStorage.length", vec![]).await.unwrap();
    assert_eq!(left, 0, "sessionStorage is empty after logging out");
    let copy = http
        .post(backend.url("/api/events/clear"))
        .bearer_auth(&session)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(copy.status(), reqwest::StatusCode::FORBIDDEN, "the session has ended");

    // The wrong login is the only error the console may show.
    assert_eq!(browser.console_errors(&["401"]).await, Vec::<String>::new());
    browser.close().await;
}
