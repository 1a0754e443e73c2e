//! URL and address validation: `WebhookUrl::parse` under the strict
//! (production) and permissive policies, and the SSRF address rule.
//! Properties: never panics; a URL accepted under the strict policy never
//! names `localhost` or an address `ssrf::is_forbidden` refuses (in whatever
//! spelling the URL parser normalized); strict acceptance implies permissive
//! acceptance; the stored form re-parses to the same URL; the address rule
//! covers what the standard library calls loopback, private, link-local and so
//! on, and judges IPv4-mapped IPv6 by its IPv4 address.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use libfuzzer_sys::fuzz_target;
use shared::{UrlPolicy, WebhookUrl, ssrf};
use url::Host;

const STRICT: UrlPolicy = UrlPolicy {
    allow_private_targets: false,
};
const PERMISSIVE: UrlPolicy = UrlPolicy {
    allow_private_targets: true,
};

fuzz_target!(|data: &[u8]| {
    check_addresses(data);
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };

    let strict = WebhookUrl::parse(input, STRICT);
    let permissive = WebhookUrl::parse(input, PERMISSIVE);

    if let Ok(url) = &strict {
        match url.as_url().host() {
            Some(Host::Ipv4(ip)) => assert!(
                !ssrf::is_forbidden(IpAddr::V4(ip)),
                "strict policy accepted forbidden {ip} from {input:?}"
            ),
            Some(Host::Ipv6(ip)) => assert!(
                !ssrf::is_forbidden(IpAddr::V6(ip)),
                "strict policy accepted forbidden {ip} from {input:?}"
            ),
            Some(Host::Domain(name)) => {
                let bare = name.trim_end_matches('.').to_ascii_lowercase();
                assert!(
                    bare != "localhost" && !bare.ends_with(".localhost"),
                    "strict policy accepted {name:?} from {input:?}"
                );
                // A name that is really an address literal must be judged as one.
                if let Ok(ip) = bare
                    .trim_matches(|c| c == '[' || c == ']')
                    .parse::<IpAddr>()
                {
                    assert!(
                        !ssrf::is_forbidden(ip),
                        "strict policy accepted {name:?} (= {ip}) from {input:?}"
                    );
                }
            }
            None => panic!("strict policy accepted a URL without a host: {input:?}"),
        }
        assert!(
            matches!(url.as_url().scheme(), "http" | "https"),
            "scheme of {input:?}"
        );
        assert!(
            url.as_str().len() <= WebhookUrl::MAX_LEN,
            "length of {input:?}"
        );
        match &permissive {
            Ok(p) => assert_eq!(p, url, "policies disagree on {input:?}"),
            Err(e) => panic!("strict accepted but permissive refused {input:?}: {e:?}"),
        }
    }

    if let Ok(url) = &permissive {
        // Stored webhooks are read back from their stored form.
        match WebhookUrl::parse(url.as_str(), PERMISSIVE) {
            Ok(again) => assert_eq!(&again, url, "stored form of {input:?} changes"),
            Err(e) => panic!(
                "stored form {:?} of {input:?} is refused: {e:?}",
                url.as_str()
            ),
        }
        // The only thing the strict policy adds is the SSRF rule.
        let blocked = shared::webhook_url::check_target(url.as_url()).is_err();
        assert_eq!(
            strict.is_ok(),
            !blocked,
            "strict verdict on {input:?} is not the SSRF rule's"
        );
        let again = WebhookUrl::parse(url.as_str(), STRICT);
        assert_eq!(
            again.is_ok(),
            strict.is_ok(),
            "strict verdict on stored form of {input:?}"
        );
    } else {
        assert!(
            strict.is_err(),
            "permissive refused what strict accepted: {input:?}"
        );
    }
});

/// The address rule on the first bytes read as an IPv4 and an IPv6 address.
fn check_addresses(data: &[u8]) {
    if let Some(b) = data.first_chunk::<4>() {
        let v4 = Ipv4Addr::from(*b);
        let std_says_local = v4.is_loopback()
            || v4.is_private()
            || v4.is_link_local()
            || v4.is_unspecified()
            || v4.is_multicast()
            || v4.is_broadcast()
            || v4.is_documentation();
        let forbidden = ssrf::is_forbidden(IpAddr::V4(v4));
        assert!(!std_says_local || forbidden, "{v4} is not forbidden");
        // Every IPv4 form embedded in IPv6 gets the IPv4 verdict.
        assert_eq!(
            ssrf::is_forbidden(IpAddr::V6(v4.to_ipv6_mapped())),
            forbidden,
            "{v4} mapped"
        );
        assert_eq!(
            ssrf::check_ip(IpAddr::V4(v4)).is_err(),
            forbidden,
            "{v4} check_ip"
        );
    }
    if let Some(b) = data.first_chunk::<16>() {
        let v6 = Ipv6Addr::from(*b);
        let std_says_local = v6.is_loopback()
            || v6.is_unspecified()
            || v6.is_multicast()
            || v6.is_unique_local()
            || v6.is_unicast_link_local();
        let forbidden = ssrf::is_forbidden(IpAddr::V6(v6));
        assert!(!std_says_local || forbidden, "{v6} is not forbidden");
        if let Some(v4) = v6.to_ipv4_mapped() {
            assert_eq!(
                forbidden,
                ssrf::is_forbidden(IpAddr::V4(v4)),
                "{v6} vs {v4}"
            );
        }
    }
}
