//! One attempt at one notification, by the channel's kind: HTTP for webhooks, chat and ntfy,
//! SMTP for e-mail.

use super::markup;
use protocol::alerts::{
    ChannelKind, ChannelSpec, EmailSpec, Notification, NotificationKind, Severity, SmtpSecurity,
};
use std::time::Duration;

/// Each attempt's limit: a receiver that hangs must not hold a sender for long.
const TIMEOUT: Duration = Duration::from_secs(10);
/// Header carrying the notification's idempotency key.
pub(crate) const HEADER_IDEMPOTENCY: &str = "idempotency-key";

/// Why an attempt failed, and whether another could succeed.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub(crate) struct SendError {
    pub(crate) message: String,
    /// The receiver refused the notification itself (a 4xx other than 408 and 429, or an SMTP
    /// 5xx): sending it again cannot help.
    pub(crate) permanent: bool,
}

impl SendError {
    fn retry(message: impl Into<String>) -> Self {
        Self { message: message.into(), permanent: false }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Sender {
    http: reqwest::Client,
}

impl Sender {
    pub(crate) fn new() -> Self {
        let http = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .connect_timeout(TIMEOUT)
            // A receiver answers where it was configured; following a redirect would send the
            // alert (and a signature) somewhere nobody chose.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("telemetry-backend/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        Self { http }
    }

    pub(crate) async fn send(&self, c: &ChannelSpec, n: &Notification) -> Result<(), SendError> {
        let url = c.url.as_deref().unwrap_or_default();
        let request = match c.kind {
            ChannelKind::Email => {
                let email = c.email.as_ref().ok_or_else(|| SendError {
                    message: "the channel has no email settings".into(),
                    permanent: true,
                })?;
                return send_email(email, c.secret.as_deref(), n).await;
            }
            ChannelKind::Webhook => {
                let body = serde_json::to_vec(n).unwrap_or_default();
                let mut r = self.http.post(url).header("content-type", "application/json");
                if let Some(secret) = &c.secret {
                    // The same scheme our agents sign ingest with, so a receiver can reuse it.
                    let ts = (crate::clock::now_ms() / 1000).to_string();
                    let sig = protocol::sign(secret.as_bytes(), &ts, &body);
                    r = r
                        .header(protocol::HEADER_SIGNATURE_TS, ts)
                        .header(protocol::HEADER_SIGNATURE, sig);
                }
                r.body(body)
            }
            ChannelKind::Slack => {
                self.http.post(url).json(&serde_json::json!({ "text": markup::slack(&n.text) }))
            }
            ChannelKind::Teams => {
                self.http.post(url).json(&serde_json::json!({ "text": markup::markdown(&n.text) }))
            }
            ChannelKind::Discord => self.http.post(url).json(&serde_json::json!({
                "content": markup::markdown(&n.text),
                // Whatever the text holds, the bot pings nobody.
                "allowed_mentions": { "parse": [] },
            })),
            // Without a `Markdown` header ntfy shows the body as plain text.
            ChannelKind::Ntfy => {
                let mut r = self
                    .http
                    .post(url)
                    .header("title", title(n))
                    .header("priority", ntfy_priority(n))
                    .header("tags", ntfy_tag(n.kind))
                    .body(n.text.clone());
                if let Some(token) = &c.secret {
                    r = r.bearer_auth(token);
                }
                r
            }
        };
        let response = request
            .header(HEADER_IDEMPOTENCY, &n.idempotency_key)
            .send()
            .await
            .map_err(no_answer)?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let permanent = status.is_client_error()
            && status != reqwest::StatusCode::REQUEST_TIMEOUT
            && status != reqwest::StatusCode::TOO_MANY_REQUESTS;
        Err(SendError { message: format!("the receiver answered {status}"), permanent })
    }
}

/// Why a request got no answer, without its URL: a chat webhook's URL is its credential, and
/// this text is stored, served to the read role and logged. (Every request error passes here.)
fn no_answer(e: reqwest::Error) -> SendError {
    SendError::retry(format!("cannot reach the receiver: {}", chain(&e.without_url())))
}

fn chain(e: &dyn std::error::Error) -> String {
    crate::telemetry::chain(e).to_string()
}

fn title(n: &Notification) -> String {
    let head = match n.kind {
        NotificationKind::Firing => "Alert",
        NotificationKind::Repeat => "Still firing",
        NotificationKind::Resolved => "Resolved",
    };
    markup::one_line(&format!("{head}: {} on {}", n.alert.rule_name, n.alert.agent_id))
}

fn ntfy_priority(n: &Notification) -> &'static str {
    match (n.kind, n.alert.severity) {
        (NotificationKind::Resolved, _) | (_, Severity::Info) => "3",
        (_, Severity::Warning) => "4",
        (_, Severity::Critical) => "5",
    }
}

fn ntfy_tag(kind: NotificationKind) -> &'static str {
    match kind {
        NotificationKind::Resolved => "white_check_mark",
        _ => "rotating_light",
    }
}

async fn send_email(
    e: &EmailSpec,
    password: Option<&str>,
    n: &Notification,
) -> Result<(), SendError> {
    use lettre::message::{Mailbox, header::ContentType};
    use lettre::transport::smtp::authentication::Credentials;
    use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
    use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
    let bad = |what: &str| SendError { message: what.to_owned(), permanent: true };
    let mailbox = |a: &str| a.parse::<Mailbox>().map_err(|_| bad("an address does not parse"));
    let mut message = Message::builder()
        .from(mailbox(&e.from)?)
        .subject(title(n))
        // The key in the Message-ID lets a mail system drop a repeat after a lost answer.
        .message_id(Some(format!("<{}@telemetry-backend>", n.idempotency_key)));
    for to in &e.to {
        message = message.to(mailbox(to)?);
    }
    let body = format!(
        "{}\n\nagent: {}\nrule: {}\nstate: {:?}\nvalue: {}\n",
        n.text,
        n.alert.agent_id,
        n.alert.rule_name,
        n.alert.state,
        n.alert.value.map_or_else(|| "-".to_owned(), |v| format!("{v:.2}")),
    );
    let message = message
        .header(ContentType::TEXT_PLAIN)
        .body(body)
        .map_err(|err| bad(&format!("cannot build the message: {err}")))?;
    let tls = |wrap: fn(TlsParameters) -> Tls| -> Result<Tls, SendError> {
        let mut params = TlsParameters::builder(e.host.clone());
        if let Some(pem) = &e.ca_pem {
            let ca = Certificate::from_pem(pem.as_bytes())
                .map_err(|err| bad(&format!("ca_pem is not a PEM certificate: {err}")))?;
            params = params.add_root_certificate(ca);
        }
        let params = params.build().map_err(|err| bad(&format!("TLS settings: {err}")))?;
        Ok(wrap(params))
    };
    let tls = match e.security {
        // Required: a server that offers no STARTTLS gets neither the password nor the alert.
        SmtpSecurity::Starttls => tls(Tls::Required)?,
        SmtpSecurity::Tls => tls(Tls::Wrapper)?,
        SmtpSecurity::None => Tls::None,
    };
    let builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&e.host).tls(tls);
    let port = e.port.unwrap_or(match e.security {
        SmtpSecurity::Starttls => 587,
        SmtpSecurity::Tls => 465,
        SmtpSecurity::None => 25,
    });
    let mut builder = builder.port(port).timeout(Some(TIMEOUT));
    if let (Some(user), Some(password)) = (&e.username, password) {
        builder = builder.credentials(Credentials::new(user.clone(), password.to_owned()));
    }
    builder.build().send(message).await.map(drop).map_err(|err| SendError {
        permanent: err.is_permanent(),
        message: format!("SMTP: {}", chain(&err)),
    })
}
