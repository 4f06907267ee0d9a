//! Where a webhook may go. The URL is read once, its host resolved once, and
//! every address it resolves to is checked; the request then goes only to
//! those addresses, so a second DNS answer (rebinding) cannot redirect it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use http::uri::{Authority, PathAndQuery, Uri};

use super::WebhookError;

/// A webhook URL that passed the scheme check.
#[derive(Debug, Clone)]
pub struct WebhookUrl {
    pub https: bool,
    /// The host without IPv6 brackets: what is resolved, and the TLS server name.
    pub host: String,
    pub port: u16,
    authority: Authority,
    path_and_query: PathAndQuery,
}

impl WebhookUrl {
    /// Only `https://` URLs, unless private targets are allowed (local
    /// development), which also allows `http://`.
    pub fn parse(raw: &str, allow_private: bool) -> Result<Self, WebhookError> {
        let uri: Uri = raw.trim().parse().map_err(WebhookError::Unparsable)?;
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") if allow_private => false,
            _ => return Err(WebhookError::NotHttps),
        };
        let authority = uri.authority().cloned().ok_or(WebhookError::NoHost)?;
        if authority.as_str().contains('@') {
            return Err(WebhookError::Credentials);
        }
        let host = authority.host().trim_start_matches('[').trim_end_matches(']').to_owned();
        if host.is_empty() {
            return Err(WebhookError::NoHost);
        }
        let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
        let path_and_query = uri.path_and_query().cloned().unwrap_or_else(|| PathAndQuery::from_static("/"));
        Ok(Self { https, host, port, authority, path_and_query })
    }

    /// The `Host` header: host and port as the URL wrote them.
    pub fn authority(&self) -> &str {
        self.authority.as_str()
    }

    /// The request target (path and query). Personal data may ride in the
    /// query, so it is never logged or recorded.
    pub fn path_and_query(&self) -> &str {
        self.path_and_query.as_str()
    }

    /// Every address the host resolves to, refused if any of them is not a
    /// public address (unless private targets are allowed).
    pub async fn resolve(&self, allow_private: bool) -> Result<Vec<SocketAddr>, WebhookError> {
        let addrs: Vec<SocketAddr> = match self.host.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, self.port)],
            Err(_) => tokio::net::lookup_host((self.host.as_str(), self.port))
                .await
                .map_err(|source| WebhookError::Resolve { host: self.host.clone(), source })?
                .collect(),
        };
        if addrs.is_empty() {
            return Err(WebhookError::Resolve {
                host: self.host.clone(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no addresses"),
            });
        }
        if !allow_private && let Some(addr) = addrs.iter().find(|addr| !is_public(addr.ip())) {
            return Err(WebhookError::Refused { host: self.host.clone(), address: addr.ip() });
        }
        Ok(addrs)
    }
}

/// Whether an address is on the public internet: not loopback, private,
/// shared (CGNAT), link-local (which holds the instance metadata service),
/// unspecified, multicast, broadcast, documentation or otherwise reserved,
/// nor an IPv6 address that carries one of those.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(ip) => is_public_v4(ip),
        IpAddr::V6(ip) => is_public_v6(ip),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    let reserved = a == 0 // "this network", including 0.0.0.0
        || ip.is_loopback() // 127/8
        || ip.is_private() // 10/8, 172.16/12, 192.168/16
        || (a == 100 && b & 0xc0 == 64) // 100.64/10, carrier-grade NAT
        || ip.is_link_local() // 169.254/16, including 169.254.169.254
        || (a == 192 && b == 0 && c == 0) // 192.0.0/24, protocol assignments
        || ip.is_documentation() // 192.0.2/24, 198.51.100/24, 203.0.113/24
        || (a == 198 && b & 0xfe == 18) // 198.18/15, benchmarking
        || ip.is_multicast() // 224/4
        || a >= 240; // 240/4 reserved, including 255.255.255.255
    !reserved
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = embedded_v4(ip) {
        return is_public_v4(v4);
    }
    let segments = ip.segments();
    let reserved = ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || ip.is_unique_local() // fc00::/7
        || ip.is_unicast_link_local() // fe80::/10
        || segments[0] & 0xffc0 == 0xfec0 // fec0::/10, the old site-local
        || (segments[0] == 0x2001 && segments[1] == 0x0db8) // 2001:db8::/32, documentation
        || segments[..4] == [0x0100, 0, 0, 0]; // 100::/64, discard-only
    !reserved
}

/// The IPv4 address an IPv6 one stands for: mapped (`::ffff:a.b.c.d`), the
/// old compatible form (`::a.b.c.d`), NAT64 (`64:ff9b::/96`) or 6to4 (`2002::/16`).
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    let o = ip.octets();
    match ip.segments() {
        [0, 0, 0, 0, 0, 0, _, _] | [0x64, 0xff9b, 0, 0, 0, 0, _, _] => {
            Some(Ipv4Addr::new(o[12], o[13], o[14], o[15]))
        }
        [0x2002, ..] => Some(Ipv4Addr::new(o[2], o[3], o[4], o[5])),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use domain::failure::Permanence;

    use super::*;

    const REFUSED: &[&str] = &[
        "127.0.0.1",
        "127.255.0.9",
        "10.0.0.1",
        "10.255.255.255",
        "172.16.0.1",
        "172.31.255.254",
        "192.168.1.1",
        "100.64.0.1",
        "100.127.255.254",
        "169.254.169.254",
        "169.254.0.1",
        "0.0.0.0",
        "0.1.2.3",
        "224.0.0.1",
        "239.255.255.250",
        "255.255.255.255",
        "240.0.0.1",
        "192.0.2.10",
        "198.51.100.7",
        "203.0.113.200",
        "198.18.0.1",
        "192.0.0.8",
        "::",
        "::1",
        "fc00::1",
        "fd12:3456::1",
        "fe80::1",
        "febf::1",
        "fec0::1",
        "ff02::1",
        "2001:db8::1",
        "::ffff:127.0.0.1",
        "::ffff:10.1.2.3",
        "::ffff:169.254.169.254",
        "::127.0.0.1",
        "64:ff9b::a9fe:a9fe",
        "2002:c0a8:0101::1",
    ];

    const PUBLIC: &[&str] = &[
        "93.184.216.34",
        "8.8.8.8",
        "172.15.255.255",
        "172.32.0.1",
        "100.63.255.255",
        "100.128.0.1",
        "1.1.1.1",
        "2606:4700:4700::1111",
        "::ffff:8.8.8.8",
        "2002:0808:0808::1",
    ];

    #[test]
    fn loopback_private_cgnat_link_local_and_reserved_addresses_are_not_public() {
        for raw in REFUSED {
            assert!(!is_public(raw.parse().unwrap()), "{raw} should be refused");
        }
    }

    #[test]
    fn public_addresses_next_to_the_refused_ranges_are_public() {
        for raw in PUBLIC {
            assert!(is_public(raw.parse().unwrap()), "{raw} should be allowed");
        }
    }

    #[tokio::test]
    async fn a_url_whose_address_is_private_is_refused_naming_the_address() {
        for raw in
            ["https://10.0.0.1/hook", "https://169.254.169.254/latest/meta-data", "https://[::1]:8443/x"]
        {
            let url = WebhookUrl::parse(raw, false).unwrap();
            let err = url.resolve(false).await.unwrap_err();
            assert!(matches!(err, WebhookError::Refused { .. }), "{raw}: {err}");
            assert!(err.is_permanent(), "{raw}");
        }
    }

    #[tokio::test]
    async fn a_name_that_resolves_to_loopback_is_refused() {
        let url = WebhookUrl::parse("https://localhost/hook", false).unwrap();
        let err = url.resolve(false).await.unwrap_err();
        assert!(matches!(err, WebhookError::Refused { ref host, .. } if host == "localhost"), "{err}");
    }

    #[tokio::test]
    async fn a_public_address_is_allowed_and_pinned() {
        let url = WebhookUrl::parse("https://93.184.216.34/hooks/intake?token=t", false).unwrap();
        assert_eq!(url.resolve(false).await.unwrap(), ["93.184.216.34:443".parse().unwrap()]);
        assert_eq!((url.authority(), url.path_and_query()), ("93.184.216.34", "/hooks/intake?token=t"));
    }

    #[test]
    fn a_url_that_is_not_https_is_refused() {
        for raw in ["http://93.184.216.34/hook", "ftp://example.org/x", "example.org/hook", "//example.org/x"]
        {
            let err = WebhookUrl::parse(raw, false).unwrap_err();
            assert!(err.is_permanent(), "{raw}: {err}");
            assert!(!matches!(err, WebhookError::Refused { .. }), "{raw}: {err}");
        }
        assert!(matches!(WebhookUrl::parse("http://93.184.216.34/", false), Err(WebhookError::NotHttps)));
    }

    #[test]
    fn credentials_in_the_url_are_refused() {
        let err = WebhookUrl::parse("https://user:secret@example.org/hook", false).unwrap_err();
        assert!(matches!(err, WebhookError::Credentials));
        assert!(!err.to_string().contains("secret"));
    }

    #[tokio::test]
    async fn allow_private_lets_plain_http_to_loopback_through() {
        let url = WebhookUrl::parse("http://127.0.0.1:8080/hook", true).unwrap();
        assert!(!url.https);
        assert_eq!(url.resolve(true).await.unwrap(), ["127.0.0.1:8080".parse().unwrap()]);
        assert_eq!(url.authority(), "127.0.0.1:8080");
    }

    #[test]
    fn the_default_port_follows_the_scheme() {
        assert_eq!(WebhookUrl::parse("https://example.org", false).unwrap().port, 443);
        assert_eq!(WebhookUrl::parse("http://example.org", true).unwrap().port, 80);
        assert_eq!(WebhookUrl::parse("https://example.org", false).unwrap().path_and_query(), "/");
    }
}
