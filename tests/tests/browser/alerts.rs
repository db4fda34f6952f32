use crate::harness::{
    ADMIN, Browser, TestBackend, batch, ingest, now_secs, site, start_with_dashboard,
};
use fantoccini::Locator;
use fantoccini::key::Key;
use serde_json::{Value, json};

/// The rules the backend holds, by name.
async fn rule_names(http: &reqwest::Client, backend: &TestBackend) -> Vec<String> {
    let rules: Value =
        http.get(backend.url("/api/alerts/rules")).send().await.unwrap().json().await.unwrap();
    rules.as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_firing_alert_shows_on_the_fleet_and_the_alerts_page_and_rules_are_edited_there() {
    let backend = start_with_dashboard(&[("ALERT_EVAL_SECONDS", "1")]);
    let site = site(&backend);
    let http = reqwest::Client::new();
    let created = http
        .post(backend.url("/api/alerts/rules"))
        .header("x-api-token", ADMIN)
        .json(&json!({"name": "hot", "metric": "cpu", "threshold": 50, "window_s": 60,
                      "severity": "critical"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), reqwest::StatusCode::CREATED);
    ingest(&http, &backend.url(""), &batch("pc-cool", now_secs(), 0.1)).await;
    let browser = Browser::start().await;
    let c = &browser.client;
    c.goto(&site).await.unwrap();
    browser.wait_css(r#"article[aria-label^="pc-cool"]"#).await;

    // The page is open before the alert fires: it arrives over the WebSocket.
    for _ in 0..3 {
        ingest(&http, &backend.url(""), &batch("pc-hot", now_secs(), 0.95)).await;
    }
    let badge = browser.wait_css(r#"article[aria-label^="pc-hot"] .badge.firing"#).await;
    assert_eq!(badge.text().await.unwrap(), "1 firing");
    let strip = browser.texts(".alert-strip li").await;
    assert_eq!(strip.len(), 1, "{strip:?}");
    assert!(strip[0].starts_with("critical pc-hot hot: cpu average"), "{strip:?}");
    assert!(browser.texts(r#"article[aria-label^="pc-cool"] .badge.firing"#).await.is_empty());
    browser.screenshot("fleet-alerts").await;

    c.find(Locator::Css(r#"nav a[href="/alerts"]"#)).await.unwrap().click().await.unwrap();
    let row = browser.wait_css("table.alerts tr.firing").await;
    let cells = browser.texts("table.alerts tr.firing td").await;
    assert_eq!(&cells[..4], ["critical", "firing", "hot", "pc-hot"], "{cells:?}");
    assert!(row.text().await.unwrap().contains("pc-hot"));

    // A reader sees the rules, a calm note where changes and channels are, and no token field.
    browser.wait_css(".rules table").await;
    let notes = browser.texts(".settings .note").await;
    assert!(notes.iter().any(|n| n.starts_with("Channels are listed to admins only")), "{notes:?}");
    assert!(browser.texts(".settings .api-error").await.is_empty(), "nothing shows red");
    assert!(c.find(Locator::XPath("//button[text()='New rule']")).await.is_err());

    // An admin logs in once, from the settings, and stays on the page.
    c.find(Locator::Css(".settings .note button.link")).await.unwrap().click().await.unwrap();
    let token = browser.wait_css(r#".login input[type="password"]"#).await;
    token.send_keys(&format!("{ADMIN}{}", char::from(Key::Enter))).await.unwrap();
    browser.wait_css(".channels .actions").await;
    let stored = c.execute("return JSON.stringify(sessionStorage)", vec![]).await.unwrap();
    let stored = stored.as_str().unwrap();
    assert!(stored.contains(r#"\"role\":\"admin\""#), "{stored}");
    assert!(!stored.contains(ADMIN), "the token itself is never kept: {stored}");

    // A rule through the editor, with no token field anywhere: the backend's reason for a bad
    // form shows, then it is saved.
    c.find(Locator::XPath("//button[text()='New rule']")).await.unwrap().click().await.unwrap();
    let field = |label: &str| {
        format!("//form[@aria-label='New rule']//label[starts-with(., '{label}')]/input")
    };
    c.find(Locator::XPath(&field("Name"))).await.unwrap().send_keys("busy").await.unwrap();
    assert!(c.find(Locator::Css(r#"input[type="password"]"#)).await.is_err(), "no token field");
    let save = c.find(Locator::XPath("//button[text()='Save rule']")).await.unwrap();
    save.click().await.unwrap();
    browser
        .until("the backend's reason", || async {
            let alerts = browser.texts(".rules [role=alert]").await;
            alerts.iter().any(|t| t.contains("needs a `threshold`")).then_some(())
        })
        .await;
    c.find(Locator::XPath(&field("Threshold"))).await.unwrap().send_keys("80").await.unwrap();
    save.click().await.unwrap();
    browser
        .until("the rule saved", || async {
            let ok = browser.texts(".rules .ok").await;
            ok.iter().any(|t| t == "Saved rule “busy”.").then_some(())
        })
        .await;
    browser
        .until("the new rule listed", || async {
            let names = browser.texts(".rules tbody td:first-child").await;
            (names == ["hot", "busy"]).then_some(())
        })
        .await;
    assert_eq!(rule_names(&http, &backend).await, ["hot", "busy"]);
    browser.screenshot("alerts-page").await;

    // The refused form is the only error the console may show.
    assert_eq!(browser.console_errors(&["422"]).await, Vec::<String>::new());
    browser.close().await;
}
