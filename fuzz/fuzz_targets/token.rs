//! Token and signing-secret validation: what may reach an `Authorization`
//! header and an HMAC key.
//! Properties: never panics; `Token::parse` accepts exactly the strings of 16
//! to 256 visible ASCII characters (no space, control character or non-ASCII),
//! and what it accepts is a valid HTTP header value after `Basic `; a signing
//! secret is accepted only as `whsec_` + non-empty base64, and signs.
#![no_main]

use http::HeaderValue;
use libfuzzer_sys::fuzz_target;
use shared::Token;
use shared::signing::SigningSecret;

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };

    let rule = (Token::MIN_LEN..=Token::MAX_LEN).contains(&input.len())
        && input.bytes().all(|b| (0x21..=0x7e).contains(&b));
    match Token::parse(input) {
        Ok(token) => {
            assert!(rule, "accepted a token outside the rule: {input:?}");
            assert_eq!(token.expose(), input, "token changed: {input:?}");
            let header = format!("Basic {}", token.expose());
            assert!(
                HeaderValue::from_str(&header).is_ok(),
                "not a header value: {header:?}"
            );
            let masked = token.masked();
            assert!(
                masked.starts_with("****") && masked.len() == 8,
                "mask of {input:?}: {masked:?}"
            );
            assert!(
                !format!("{token:?}").contains(input),
                "Debug shows the token"
            );
        }
        Err(e) => {
            assert!(!rule, "refused a valid token {input:?}: {e:?}");
            assert_eq!(e.field, "token");
        }
    }

    match SigningSecret::parse(input) {
        Ok(secret) => {
            let key = input
                .strip_prefix("whsec_")
                .unwrap_or_else(|| panic!("accepted a secret without whsec_: {input:?}"));
            assert!(!key.is_empty(), "accepted an empty key: {input:?}");
            assert!(
                HeaderValue::from_str(secret.expose()).is_ok(),
                "secret is not header-safe: {input:?}"
            );
            let sig = secret.sign("msg_fuzz", 1_700_000_000, data);
            // "v1," + base64 of 32 bytes.
            assert!(
                sig.starts_with("v1,") && sig.len() == 3 + 44,
                "signature {sig:?}"
            );
            assert!(
                !format!("{secret:?}").contains(input),
                "Debug shows the secret"
            );
        }
        Err(e) => assert_eq!(e.field, "signing_secret"),
    }
});
