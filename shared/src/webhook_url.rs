use serde::{Deserialize, Deserializer, Serialize};
use url::{Host, Url};

use crate::{ValidationError, ssrf};

/// Whether private and reserved targets are allowed (local development and
/// tests only: `ALLOW_PRIVATE_TARGETS=true`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UrlPolicy {
    pub allow_private_targets: bool,
}

/// A webhook's target: absolute http(s), a host, no user-info, no fragment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct WebhookUrl(Url);

pub const HTTP_WARNING: &str = "url uses http: deliveries and their Authorization token travel unencrypted; https is recommended";

impl WebhookUrl {
    pub const MAX_LEN: usize = 2048;

    pub fn parse(input: &str, policy: UrlPolicy) -> Result<Self, ValidationError> {
        let url = Self::parse_syntax(input)?;
        if !policy.allow_private_targets {
            check_target(&url).map_err(|e| ValidationError::new("url", e.to_string()))?;
        }
        Ok(Self(url))
    }

    fn parse_syntax(input: &str) -> Result<Url, ValidationError> {
        let err = |msg: &str| ValidationError::new("url", msg.to_owned());
        if input.len() > Self::MAX_LEN {
            return Err(ValidationError::new(
                "url",
                format!(
                    "must be at most {} characters (got {})",
                    Self::MAX_LEN,
                    input.len()
                ),
            ));
        }
        let url = Url::parse(input).map_err(|e| {
            ValidationError::new(
                "url",
                format!("must be an absolute http or https URL ({e})"),
            )
        })?;
        if url.scheme() != "https" && url.scheme() != "http" {
            return Err(err("must use the https or http scheme"));
        }
        if url.host().is_none() {
            return Err(err("must have a host"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(err("must not contain user information (user:password@)"));
        }
        if url.fragment().is_some() {
            return Err(err("must not contain a fragment (#...)"));
        }
        // Non-ASCII is percent-encoded by parsing: the stored form counts too.
        if url.as_str().len() > Self::MAX_LEN {
            return Err(ValidationError::new(
                "url",
                format!(
                    "must be at most {} characters once encoded (got {})",
                    Self::MAX_LEN,
                    url.as_str().len()
                ),
            ));
        }
        Ok(url)
    }

    pub fn as_url(&self) -> &Url {
        &self.0
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    pub fn is_https(&self) -> bool {
        self.0.scheme() == "https"
    }

    /// The warnings a caller sees when registering this URL.
    pub fn warnings(&self) -> Vec<&'static str> {
        if self.is_https() {
            Vec::new()
        } else {
            vec![HTTP_WARNING]
        }
    }
}

/// The SSRF rule applied to a parsed URL's host and port. IPv4 spellings
/// such as `2130706433`, `0x7f.1` and `127.1` are already normalized by the
/// URL parser.
pub fn check_target(url: &Url) -> Result<(), ssrf::Blocked> {
    if let Some(port) = url.port_or_known_default() {
        ssrf::check_port(port)?;
    }
    match url.host() {
        Some(Host::Ipv4(ip)) => ssrf::check_ip(ip.into()),
        Some(Host::Ipv6(ip)) => ssrf::check_ip(ip.into()),
        Some(Host::Domain(name)) => ssrf::check_name(name),
        None => Ok(()),
    }
}

impl<'de> Deserialize<'de> for WebhookUrl {
    /// Used for stored webhooks, which passed the full check when written.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::parse_syntax(&s)
            .map(Self)
            .map_err(|e| serde::de::Error::custom(e.message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STRICT: UrlPolicy = UrlPolicy {
        allow_private_targets: false,
    };
    const LAX: UrlPolicy = UrlPolicy {
        allow_private_targets: true,
    };

    fn rejected(input: &str) -> String {
        let err = WebhookUrl::parse(input, STRICT).unwrap_err();
        assert_eq!(err.field, "url");
        err.message
    }

    #[test]
    fn accepts_public_http_and_https() {
        let u = WebhookUrl::parse("https://hooks.example.com/ekyc?x=1", STRICT).unwrap();
        assert!(u.warnings().is_empty());
        let u = WebhookUrl::parse("http://hooks.example.com/ekyc", STRICT).unwrap();
        assert_eq!(u.warnings(), vec![HTTP_WARNING]);
        assert!(WebhookUrl::parse("https://8.8.8.8:8443/x", STRICT).is_ok());
        assert!(WebhookUrl::parse("https://[2606:4700::1111]/x", STRICT).is_ok());
    }

    /// Production accepts web ports only: 80, 443 and 1024-65535 except
    /// well-known service ports. Others, such as 22 (SSH), 25 (SMTP) or 5432
    /// (PostgreSQL), are refused with a message naming the port, so that
    /// neither a delivery nor a test event reaches such a server. Local
    /// development (the lax policy) accepts any port.
    #[test]
    fn only_web_ports() {
        for ok in [
            "https://example.com/",
            "http://example.com/",
            "https://example.com:8443/",
            "http://example.com:8080/",
            "https://example.com:1024/",
            "https://example.com:65535/",
        ] {
            assert!(WebhookUrl::parse(ok, STRICT).is_ok(), "{ok}");
        }
        for port in [22, 25, 21, 110, 1023, 3306, 5432, 6379, 11211, 27017] {
            let message = rejected(&format!("https://example.com:{port}/"));
            assert!(message.contains(&format!("port {port}")), "{message}");
        }
        assert!(WebhookUrl::parse("http://example.com:443/", STRICT).is_ok());
        // Local development (ALLOW_PRIVATE_TARGETS) may use any port.
        assert!(WebhookUrl::parse("http://127.0.0.1:5432/", LAX).is_ok());
    }

    #[test]
    fn syntax_rules() {
        assert!(rejected("hooks.example.com/x").contains("absolute"));
        assert!(rejected("/relative").contains("absolute"));
        assert!(rejected("ftp://example.com/").contains("scheme"));
        assert!(rejected("https://user:pw@example.com/").contains("user information"));
        assert!(rejected("https://user@example.com/").contains("user information"));
        assert!(rejected("https://example.com/#frag").contains("fragment"));
        assert!(rejected("").contains("absolute"));
    }

    #[test]
    fn length_bound() {
        let base = "https://example.com/";
        let ok = format!("{base}{}", "a".repeat(2048 - base.len()));
        assert!(WebhookUrl::parse(&ok, STRICT).is_ok());
        let long = format!("{ok}a");
        assert!(rejected(&long).contains("2048"));
        // 1000 characters that encode to 6000.
        let encoded = format!("https://example.com/{}", "é".repeat(1000));
        assert!(rejected(&encoded).contains("encoded"));
    }

    #[test]
    fn private_targets_refused_including_odd_spellings() {
        for input in [
            "http://127.0.0.1/",
            "http://2130706433/",
            "http://0x7f.1/",
            "http://127.1/",
            "http://0177.0.0.1/",
            "http://localhost/",
            "http://LocalHost./",
            "http://a.b.localhost/",
            "http://169.254.169.254/latest/meta-data",
            "http://10.1.2.3/",
            "http://172.20.0.1/",
            "http://192.168.0.1/",
            "http://100.64.1.1/",
            "http://0.0.0.0/",
            "http://224.0.0.1/",
            "http://255.255.255.255/",
            "http://192.0.2.1/",
            "http://[::1]/",
            "http://[fc00::1]/",
            "http://[fe80::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::ffff:a9fe:a9fe]/",
            "http://[::127.0.0.1]/",
            "http://[::]/",
            "http:/0.7.1.0..",
            "http://10.0.0.1../",
        ] {
            let msg = rejected(input);
            assert!(
                msg.contains("not allowed") || msg.contains("range") || msg.contains("empty label"),
                "{input}: {msg}"
            );
        }
    }

    #[test]
    fn allow_private_targets_lifts_only_the_ssrf_rule() {
        assert!(WebhookUrl::parse("http://127.0.0.1:8080/hook", LAX).is_ok());
        assert!(WebhookUrl::parse("http://localhost/", LAX).is_ok());
        assert!(WebhookUrl::parse("ftp://127.0.0.1/", LAX).is_err());
        assert!(WebhookUrl::parse("http://u@127.0.0.1/", LAX).is_err());
    }
}
