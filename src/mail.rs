//! Outgoing mail through the SMTP relay of `[mail]`: messages rendered from templates (plain
//! text and HTML, sent as multipart/alternative) and sent by a transport built once at start.
//!
//! The default templates are the files in `config/mail/`, compiled in; `[mail] templates`
//! names a folder whose files of the same names replace them. Every template is parsed when
//! the [`Mailer`] is built, so a mistake stops the daemon at start-up rather than a message.

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, CertificateStore, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use minijinja::{Environment, UndefinedBehavior};
use serde::Serialize;

use crate::config::{self, Security};

/// The built-in templates, `(file name, source)`: one message's subject, text and HTML.
const TEMPLATES: [(&str, &str); 3] = [
    (
        "password_reset.subject",
        include_str!("../config/mail/password_reset.subject"),
    ),
    (
        "password_reset.txt",
        include_str!("../config/mail/password_reset.txt"),
    ),
    (
        "password_reset.html",
        include_str!("../config/mail/password_reset.html"),
    ),
];

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The relay's password could not be read, or the relay's settings were refused.
    #[error("mail: {0}")]
    Config(String),
    #[error("mail template {name}: {source}")]
    Template {
        name: String,
        source: minijinja::Error,
    },
    #[error("mail template folder: cannot read {path}: {source}")]
    TemplateFile {
        path: String,
        source: std::io::Error,
    },
    /// A recipient that is no email address.
    #[error("`{0}` is not an email address")]
    Address(String),
    #[error("mail could not be built: {0}")]
    Build(String),
    /// The relay refused the message or could not be reached.
    #[error("the mail relay: {0}")]
    Send(String),
}

/// A message ready to send.
#[derive(Debug)]
pub struct Message(lettre::Message);

/// The relay connection and the templates, built once at start.
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    templates: Environment<'static>,
    /// Every link in a message starts with this (`[mail] public_url`).
    pub public_url: String,
    /// `host:port (security)`, for logs and `check-config`.
    pub relay: String,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer")
            .field("relay", &self.relay)
            .field("from", &self.from.to_string())
            .finish_non_exhaustive()
    }
}

impl Mailer {
    /// Reads the relay's password (if any) and the templates, and builds the transport; nothing
    /// is connected yet.
    pub fn new(config: &config::Mail) -> Result<Mailer, Error> {
        let from: Mailbox = config
            .from
            .parse()
            .map_err(|e| Error::Config(format!("`from`: {e}")))?;
        let tls = || tls_parameters(&config.host, config.ca_file.as_deref());
        let builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.host);
        let builder = match config.security {
            Security::Starttls => builder.tls(Tls::Required(tls()?)),
            Security::Tls => builder.tls(Tls::Wrapper(tls()?)),
            // Validation allows it only to a relay on this machine.
            Security::None => builder,
        };
        let mut builder = builder.port(config.port).timeout(Some(config.timeout));
        if let Some((user, secret)) = &config.credentials {
            let password = secret
                .read()
                .map_err(|e| Error::Config(format!("the relay's password: {e}")))?;
            builder = builder.credentials(Credentials::new(user.clone(), password.to_string()));
        }
        Ok(Mailer {
            transport: builder.build(),
            from,
            templates: templates(config.templates.as_deref())?,
            public_url: config.public_url.clone(),
            relay: format!(
                "{}:{} ({})",
                config.host,
                config.port,
                config.security.as_str()
            ),
        })
    }

    /// Renders message `name` (its `.subject`, `.txt` and `.html` templates) for `to`.
    pub fn render(&self, name: &str, to: &str, context: impl Serialize) -> Result<Message, Error> {
        let to: Mailbox = to.parse().map_err(|_| Error::Address(to.to_owned()))?;
        let render = |part: &str| {
            let name = format!("{name}.{part}");
            self.templates
                .get_template(&name)
                .and_then(|template| template.render(minijinja::value::Serde(&context)))
                .map_err(|source| Error::Template { name, source })
        };
        // One line, whatever the template holds: a header cannot take a line break.
        let subject = render("subject")?
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        // A Message-ID in the sender's domain: relays and spam filters expect one.
        let message_id = format!(
            "<{}@{}>",
            uuid::Uuid::new_v4().simple(),
            self.from.email.domain()
        );
        let message = lettre::Message::builder()
            .message_id(Some(message_id))
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .multipart(MultiPart::alternative_plain_html(
                render("txt")?,
                render("html")?,
            ))
            .map_err(|e| Error::Build(e.to_string()))?;
        Ok(Message(message))
    }

    /// Sends a message through the relay.
    pub async fn send(&self, message: Message) -> Result<(), Error> {
        self.transport
            .send(message.0)
            .await
            .map(|_| ())
            .map_err(|e| Error::Send(e.to_string()))
    }

    /// Connects to the relay (with TLS and the account, as configured) and says hello.
    pub async fn check_connection(&self) -> Result<(), Error> {
        match self.transport.test_connection().await {
            Ok(true) => Ok(()),
            Ok(false) => Err(Error::Send("the relay did not answer NOOP".into())),
            Err(e) => Err(Error::Send(e.to_string())),
        }
    }
}

/// TLS to `host`, trusting the certificates of `ca_file` (PEM, one or more) instead of the
/// system's when it is given.
fn tls_parameters(host: &str, ca_file: Option<&std::path::Path>) -> Result<TlsParameters, Error> {
    let mut builder = TlsParameters::builder(host.to_owned());
    if let Some(path) = ca_file {
        let unusable = |why: String| Error::Config(format!("`ca_file` {}: {why}", path.display()));
        let pem = std::fs::read(path).map_err(|e| unusable(e.to_string()))?;
        const BEGIN: &[u8] = b"-----BEGIN CERTIFICATE-----";
        if !pem.windows(BEGIN.len()).any(|window| window == BEGIN) {
            return Err(unusable("holds no PEM certificate".into()));
        }
        let certificates = Certificate::from_pem(&pem)
            .map_err(|e| unusable(format!("its certificates cannot be read: {e}")))?;
        builder = builder
            .certificate_store(CertificateStore::None)
            .add_root_certificate(certificates);
    }
    builder
        .build_rustls()
        .map_err(|e| Error::Config(e.to_string()))
}

/// The built-in templates, each replaced by the file of the same name in `folder` if there
/// is one. Strict: a variable the message does not have is an error, not an empty string.
fn templates(folder: Option<&std::path::Path>) -> Result<Environment<'static>, Error> {
    let mut templates = Environment::new();
    templates.set_undefined_behavior(UndefinedBehavior::Strict);
    for (name, built_in) in TEMPLATES {
        let source = match folder.map(|folder| folder.join(name)) {
            Some(path) if path.exists() => {
                std::fs::read_to_string(&path).map_err(|source| Error::TemplateFile {
                    path: path.display().to_string(),
                    source,
                })?
            }
            _ => built_in.to_owned(),
        };
        templates
            .add_template_owned(name, source)
            .map_err(|source| Error::Template {
                name: name.to_owned(),
                source,
            })?;
    }
    Ok(templates)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> config::Mail {
        config::Mail {
            host: "127.0.0.1".into(),
            port: 2525,
            security: Security::None,
            ca_file: None,
            credentials: None,
            from: "North Academy <noreply@north.example>".into(),
            public_url: "http://127.0.0.1:8080".into(),
            templates: None,
            timeout: std::time::Duration::from_secs(5),
        }
    }

    #[test]
    fn a_ca_file_that_cannot_be_used_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let not_pem = dir.path().join("ca.txt");
        std::fs::write(&not_pem, "not a certificate").unwrap();
        let broken = dir.path().join("broken.pem");
        std::fs::write(
            &broken,
            "-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        for (path, why) in [
            (dir.path().join("missing.pem"), "No such file"),
            (not_pem, "holds no PEM certificate"),
            (broken, "its certificates cannot be read"),
        ] {
            let config = config::Mail {
                security: Security::Starttls,
                ca_file: Some(path.clone()),
                ..config()
            };
            let Err(error) = Mailer::new(&config) else {
                panic!("{} was accepted", path.display());
            };
            let message = error.to_string();
            assert!(
                message.contains(&format!("`ca_file` {}", path.display())) && message.contains(why),
                "{message}"
            );
        }
    }

    fn context(link: &str) -> serde_json::Value {
        serde_json::json!({
            "school": "North Academy",
            "school_id": "north",
            "user_name": "smithj",
            "display_name": "Jo <Smith>",
            "link": link,
            "expires_minutes": 30,
        })
    }

    #[test]
    fn a_reset_message_has_text_and_escaped_html() {
        let mailer = Mailer::new(&config()).unwrap();
        let link = "http://127.0.0.1:8080/login/north/reset/abc";
        let message = mailer
            .render("password_reset", "jo@north.example", context(link))
            .unwrap();
        let text = String::from_utf8(message.0.formatted()).unwrap();
        assert!(
            text.contains("Subject: Reset your North Academy password"),
            "{text}"
        );
        assert!(text.contains("multipart/alternative"), "{text}");
        assert!(text.contains("text/plain"), "{text}");
        assert!(text.contains("text/html"), "{text}");
        assert!(text.contains(link), "{text}");
        assert!(text.contains("30 minutes"), "{text}");
        // The HTML part escapes values; the text part does not.
        assert!(text.contains("Jo &lt;Smith&gt;"), "{text}");
        assert!(text.contains("Hello Jo <Smith>,"), "{text}");
    }

    #[test]
    fn a_folder_replaces_only_the_templates_it_holds() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("password_reset.subject"),
            "New password\nfor {{ user_name }}",
        )
        .unwrap();
        let mailer = Mailer::new(&config::Mail {
            templates: Some(dir.path().to_owned()),
            ..config()
        })
        .unwrap();
        let message = mailer
            .render("password_reset", "jo@north.example", context("http://x/y"))
            .unwrap();
        let text = String::from_utf8(message.0.formatted()).unwrap();
        // A line break in a subject becomes a space: no header can be injected.
        assert!(text.contains("Subject: New password for smithj"), "{text}");
        assert!(text.contains("open this link within 30 minutes"), "{text}");
    }

    #[test]
    fn a_broken_or_unknown_variable_template_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("password_reset.txt"), "{% if %}").unwrap();
        let error = Mailer::new(&config::Mail {
            templates: Some(dir.path().to_owned()),
            ..config()
        })
        .unwrap_err();
        assert!(error.to_string().contains("password_reset.txt"), "{error}");

        std::fs::write(dir.path().join("password_reset.txt"), "{{ password }}").unwrap();
        let mailer = Mailer::new(&config::Mail {
            templates: Some(dir.path().to_owned()),
            ..config()
        })
        .unwrap();
        assert!(
            mailer
                .render("password_reset", "jo@north.example", context("x"))
                .is_err()
        );
    }

    #[test]
    fn a_recipient_must_be_an_address() {
        let mailer = Mailer::new(&config()).unwrap();
        assert!(matches!(
            mailer.render("password_reset", "not an address", context("x")),
            Err(Error::Address(_))
        ));
    }
}
