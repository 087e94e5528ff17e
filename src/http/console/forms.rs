//! Posted forms: `application/x-www-form-urlencoded` fields, checked for their CSRF token and
//! origin before anything reads them.

use axum::http::{HeaderMap, header};

use super::session::csrf_token;

/// The largest form the console takes (a pasted class list of 20,000 rows fits).
pub const FORM_LIMIT: usize = 8 * 1024 * 1024;

/// A form's fields, in order; a name may repeat (checkboxes).
#[derive(Debug, Default)]
pub struct Fields(Vec<(String, String)>);

/// Why a post was refused: it did not come from one of this server's forms.
#[derive(Debug)]
pub struct Forged(pub &'static str);

impl Fields {
    pub fn parse(body: &[u8]) -> Fields {
        Fields(
            form_urlencoded::parse(body)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// A posted form, if it carries the CSRF token of `secret` and no foreign `Origin`.
    pub fn checked(headers: &HeaderMap, body: &[u8], secret: &str) -> Result<Fields, Forged> {
        same_origin(headers)?;
        let fields = Fields::parse(body);
        let expected = csrf_token(secret);
        match fields.0.iter().find(|(name, _)| name == "csrf") {
            Some((_, token)) if equal(token.as_bytes(), expected.as_bytes()) => Ok(fields),
            Some(_) => Err(Forged("the form's security token is wrong or stale")),
            None => Err(Forged("the form has no security token")),
        }
    }

    /// [`Fields::checked`] for a form on a page that sends no referrer (`Referrer-Policy:
    /// no-referrer`, as where a secret is in the address): browsers post such a form with
    /// `Origin: null`, which is taken as no `Origin`. Any other foreign `Origin` is refused, and
    /// the CSRF token decides as ever.
    pub fn checked_without_referrer(
        headers: &HeaderMap,
        body: &[u8],
        secret: &str,
    ) -> Result<Fields, Forged> {
        if headers
            .get(header::ORIGIN)
            .is_some_and(|origin| origin.as_bytes() == b"null")
        {
            let mut headers = headers.clone();
            headers.remove(header::ORIGIN);
            return Fields::checked(&headers, body, secret);
        }
        Fields::checked(headers, body, secret)
    }

    /// The first value of a field, trimmed; "" when absent.
    pub fn get(&self, name: &str) -> &str {
        self.raw(name).trim()
    }

    /// The first value of a field as sent (a password, a pasted list).
    pub fn raw(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(key, _)| key == name)
            .map_or("", |(_, value)| value.as_str())
    }

    /// Every non-empty value of a repeated field.
    pub fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(key, value)| key == name && !value.trim().is_empty())
            .map(|(_, value)| value.trim().to_owned())
            .collect()
    }
}

/// Browsers send `Origin` with every post; when present it must name the host the request was
/// sent to.
fn same_origin(headers: &HeaderMap) -> Result<(), Forged> {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let origin_host = origin
        .to_str()
        .ok()
        .and_then(|o| o.split_once("://"))
        .map(|(_, rest)| rest.trim_end_matches('/'));
    match (origin_host, host) {
        (Some(origin), Some(host)) if origin.eq_ignore_ascii_case(host) => Ok(()),
        _ => Err(Forged("the form was posted from another site")),
    }
}

/// Compares without stopping at the first difference.
fn equal(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(origin: Option<&'static str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8080"));
        if let Some(origin) = origin {
            headers.insert(header::ORIGIN, HeaderValue::from_static(origin));
        }
        headers
    }

    #[test]
    fn a_form_needs_its_sessions_token() {
        let token = csrf_token("secret");
        let body = format!("name=12A%2FMa1&csrf={token}&course=a&course=b&course=");
        let fields = Fields::checked(&headers(None), body.as_bytes(), "secret").unwrap();
        assert_eq!(fields.get("name"), "12A/Ma1");
        assert_eq!(fields.all("course"), ["a", "b"]);
        assert_eq!(fields.get("missing"), "");
        assert!(Fields::checked(&headers(None), body.as_bytes(), "other").is_err());
        assert!(Fields::checked(&headers(None), b"name=x", "secret").is_err());
        assert!(Fields::checked(&headers(None), b"name=x&csrf=", "secret").is_err());
    }

    #[test]
    fn a_post_from_another_origin_is_refused() {
        let body = format!("csrf={}", csrf_token("s"));
        let ok = Some("http://127.0.0.1:8080");
        assert!(Fields::checked(&headers(ok), body.as_bytes(), "s").is_ok());
        let foreign = Some("https://evil.example");
        assert!(Fields::checked(&headers(foreign), body.as_bytes(), "s").is_err());
        assert!(Fields::checked(&headers(Some("null")), body.as_bytes(), "s").is_err());
        // Only a page that sends no referrer takes `null`, and still needs the token.
        let null = headers(Some("null"));
        assert!(Fields::checked_without_referrer(&null, body.as_bytes(), "s").is_ok());
        assert!(Fields::checked_without_referrer(&null, b"csrf=x", "s").is_err());
        assert!(Fields::checked_without_referrer(&headers(foreign), body.as_bytes(), "s").is_err());
    }
}
