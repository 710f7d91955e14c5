//! Syntax checks for article addresses: absolute http(s) URLs (IRIs: non-ASCII characters such
//! as Arabic slugs are allowed as sent) and URNs (RFC 8141).

/// Why a string is not an acceptable address.
pub type UriProblem = &'static str;

/// Accepts an absolute `http://` or `https://` URL with a host, or a `urn:NID:NSS`.
pub fn check_url_or_urn(s: &str) -> Result<(), UriProblem> {
    if has_prefix_ignore_case(s, "urn:") {
        check_urn(s)
    } else {
        check_http_url(s)
    }
}

/// Accepts an absolute `http://` or `https://` URL with a host.
pub fn check_http_url(s: &str) -> Result<(), UriProblem> {
    let Some((scheme, rest)) = s.split_once("://") else {
        return Err("has no http:// or https:// scheme");
    };
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return Err("must use the http or https scheme");
    }
    check_characters(rest)?;
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    let (host, port) = split_host_port(host_port)?;
    if host.is_empty() {
        return Err("must have a host");
    }
    if let Some(ip6) = host.strip_prefix('[') {
        let ip6 = ip6.strip_suffix(']').ok_or("has a malformed IPv6 host")?;
        if ip6.is_empty()
            || !ip6
                .chars()
                .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
        {
            return Err("has a malformed IPv6 host");
        }
    } else if host.contains([':', '[', ']', '/', '?', '#']) {
        return Err("has a malformed host");
    }
    if let Some(port) = port
        && !port.is_empty()
        && port.parse::<u16>().is_err()
    {
        return Err("has a port that is not a number from 0 to 65535");
    }
    Ok(())
}

fn split_host_port(host_port: &str) -> Result<(&str, Option<&str>), UriProblem> {
    if host_port.starts_with('[') {
        let close = host_port.find(']').ok_or("has a malformed IPv6 host")?;
        let (host, after) = host_port.split_at(close + 1);
        match after {
            "" => Ok((host, None)),
            _ => after
                .strip_prefix(':')
                .map(|port| (host, Some(port)))
                .ok_or("has a malformed host"),
        }
    } else {
        Ok(match host_port.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        })
    }
}

fn check_urn(s: &str) -> Result<(), UriProblem> {
    const BAD_URN: &str = "must be a URN of the form urn:<namespace>:<specific part>";
    let rest = &s[4..];
    let (nid, nss) = rest.split_once(':').ok_or(BAD_URN)?;
    let nid_ok = (2..=32).contains(&nid.len())
        && nid.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !nid.starts_with('-')
        && !nid.ends_with('-');
    if !nid_ok || nss.is_empty() {
        return Err(BAD_URN);
    }
    check_characters(nss)
}

/// RFC 3986 characters plus any non-ASCII character (RFC 3987), with valid percent escapes.
fn check_characters(s: &str) -> Result<(), UriProblem> {
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let escape_ok = bytes
                .get(i + 1..i + 3)
                .is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit));
            if !escape_ok {
                return Err("has a '%' that does not start a %XX escape");
            }
            i += 3;
            continue;
        }
        let allowed =
            !b.is_ascii() || b.is_ascii_alphanumeric() || b"-._~:/?#[]@!$&'()*+,;=".contains(&b);
        if !allowed {
            return Err(if b.is_ascii_whitespace() {
                "must not contain white space"
            } else {
                "contains a character not allowed in a URI"
            });
        }
        i += 1;
    }
    if s.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err("must not contain white space or control characters");
    }
    Ok(())
}

fn has_prefix_ignore_case(s: &str, prefix: &str) -> bool {
    s.get(..prefix.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_usual_article_addresses() {
        for ok in [
            "https://alkhabar.example/news/us-abandons-allies-syria-bukamal",
            "http://example.com",
            "HTTPS://Example.COM:8443/a/b?c=d&e=f#g",
            "https://user:pw@[2001:db8::1]:443/x",
            "https://127.0.0.1/x",
            "https://ar.example/أخبار/سوريا?ق=١",
            "https://ar.example/%D8%B3%D9%88%D8%B1%D9%8A%D8%A7",
            "urn:newsml:alkhabar.example:20160701:bukamal",
            "URN:ISBN:0451450523",
        ] {
            assert_eq!(check_url_or_urn(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn rejects_what_is_not_an_absolute_http_url_or_urn() {
        for bad in [
            "not a uri",
            "",
            "/relative/path",
            "alkhabar.example/news",
            "ftp://example.com/file",
            "javascript://alert(1)",
            "https://",
            "https:///path-only",
            "https://exa mple.com/",
            "https://example.com/a b",
            "https://example.com/%zz",
            "https://example.com/%4",
            "https://example.com:99999/",
            "https://example.com:port/",
            "https://[::1/",
            "https://example.com/<script>",
            "https://example.com/\u{0000}",
            "urn:x:foo",
            "urn:-bad:foo",
            "urn:isbn:",
            "urn:isbn",
        ] {
            assert!(check_url_or_urn(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn http_only_check_rejects_urns() {
        assert!(check_http_url("urn:isbn:0451450523").is_err());
        assert_eq!(check_http_url("https://alkhabar.example/"), Ok(()));
    }
}
