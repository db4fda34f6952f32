use crate::harness::{Browser, READER, batch, ingest, now_secs, site, start_with_dashboard};
use fantoccini::Locator;
use fantoccini::key::Key;
use serde_json::Value;

const WRONG: &str = "not-the-read-token";

#[tokio::test(flavor = "multi_thread")]
async fn reads_behind_a_token_ask_for_a_login_that_lasts_the_tab_session() {
    let backend = start_with_dashboard(&[("READ_TOKEN", READER)]);
    let site = site(&backend);
    let http = reqwest::Client::new();
    ingest(&http, &backend.url(""), &batch("pc-01", now_secs(), 0.3)).await;
    let browser = Browser::start().await;
    let c = &browser.client;
    c.goto(&site).await.unwrap();

    let token = browser.wait_css(r#".login input[type="password"]"#).await;
    assert!(c.find(Locator::Css("article")).await.is_err(), "no fleet before the login");
    token.send_keys(WRONG).await.unwrap();
    c.find(Locator::Css(r#".login button[type="submit"]"#)).await.unwrap().click().await.unwrap();
    browser
        .until("the wrong token message", || async {
            let alerts = browser.texts(".login [role=alert]").await;
            alerts
                .iter()
                .any(|t| {
                    t == "Wrong token: that is neither the backend's read token nor its admin token."
                })
                .then_some(())
        })
        .await;
    browser.screenshot("login-wrong-token").await;

    // Erased key by key (WebDriver's clear() fires no input event), then submitted with Enter.
    let backspace = char::from(Key::Backspace).to_string();
    token.send_keys(&backspace.repeat(WRONG.len())).await.unwrap();
    token.send_keys(&format!("{READER}{}", char::from(Key::Enter))).await.unwrap();
    browser.wait_css(r#"article[aria-label="pc-01, online"]"#).await;
    browser.wait_css(".conn.live").await;

    // Live: a new agent's batch reaches the page over the WebSocket opened with the session.
    ingest(&http, &backend.url(""), &batch("pc-new", now_secs(), 0.8)).await;
    browser.wait_css(r#"article[aria-label="pc-new, online"]"#).await;
    browser.screenshot("login-fleet").await;

    let stored = c
        .execute("return [sessionStorage.getItem('session'), localStorage.length]", vec![])
        .await
        .unwrap();
    let session: Value =
        serde_json::from_str(stored[0].as_str().expect("a stored session")).unwrap();
    let held = session["session"].as_str().unwrap().to_owned();
    assert!(held.starts_with("s2.r."), "{session}");
    assert_eq!(session["role"], "read");
    assert_eq!(stored[1], 0, "nothing in localStorage");
    let all = c.execute("return JSON.stringify(sessionStorage)", vec![]).await.unwrap();
    assert!(!all.as_str().unwrap().contains(READER), "the token itself is never kept: {all}");

    // A reload in the same tab keeps the session: no form, and live again.
    c.refresh().await.unwrap();
    browser.wait_css(r#"article[aria-label="pc-new, online"]"#).await;
    assert!(c.find(Locator::Css(".login")).await.is_err(), "still logged in after a reload");
    ingest(&http, &backend.url(""), &batch("pc-03", now_secs(), 0.5)).await;
    browser.wait_css(r#"article[aria-label="pc-03, online"]"#).await;

    // Logging out ends the session on the backend too, forgets it and asks again.
    c.find(Locator::Css("button.logout")).await.unwrap().click().await.unwrap();
    browser.wait_css(r#".login input[type="password"]"#).await;
    let left = c.execute("return sessionStorage.length", vec![]).await.unwrap();
    assert_eq!(left, 0, "sessionStorage is empty after logging out");
    let copy = http.get(backend.url("/api/agents")).bearer_auth(&held).send().await.unwrap();
    assert_eq!(copy.status(), reqwest::StatusCode::UNAUTHORIZED, "a copy no longer works");

    // Refused reads and the refused upgrade are the only errors the console may show.
    let errors = browser.console_errors(&["401", "/ws"]).await;
    assert_eq!(errors, Vec::<String>::new());
    browser.close().await;
}
