//! The canonical form of an article address: one string for all the ways the same page is
//! commonly written, so that (source, canonical address) identifies an article.
//!
//! For an absolute `http`/`https` URL, [`canonical_uri`] applies, in this order:
//!
//! - **Scheme and host**: the scheme is lowercased (`http` and `https` stay distinct); the host
//!   is lowercased, its trailing dot dropped, its punycode labels (`xn--`) decoded, and its
//!   leading `www.` (also `www1.`..`www9.`), `m.`, `mobile.` and `amp.` labels dropped as long as
//!   two labels remain. The port is dropped when it is the scheme's default (80, 443) or empty.
//! - **One encoding form**: an IRI and its percent-encoded URI are the same address. Escapes of
//!   unreserved ASCII characters and of UTF-8 encoded non-ASCII characters are decoded, other
//!   escapes keep their meaning and are written with uppercase hex digits, and characters not
//!   allowed as they are (spaces, bidi formatting marks) are escaped. Decoded text is put in NFC.
//! - **Path**: `.` and `..` segments are resolved and empty segments (`//`) dropped; a trailing
//!   `/` is dropped (the root path stays `/`); a last segment `index.html` (`.htm`, `.php`,
//!   `.asp`, `.aspx`, `.shtml`, `.jsp`) or `default.asp(x)` is dropped; AMP variants lose their
//!   marker: a last or first segment `amp` and a `.amp` before the extension or at the end.
//! - **Query**: tracking parameters are dropped (see [`is_tracking_parameter`]), as are the AMP
//!   switches `amp`, `amp_*`, `outputType=amp` (and `output`, `mode`, `format` set to `amp`);
//!   keys written with an HTML-escaped ampersand (`&amp;key=`) are repaired; empty and repeated
//!   parameters are dropped and the rest sorted by key, then value.
//! - **Fragment**: dropped, unless it is a client-side route (`#!/...` or `#/...`), which
//!   single-page sites use to address articles.
//!
//! A URN keeps its specific part as sent: RFC 8141 makes only the `urn` prefix and the
//! namespace identifier case-insensitive, and the hex digits of escapes; its r-, q- and
//! f-components (`?+`, `?=`, `#`) do not take part in URN equivalence and are dropped.
//!
//! Decoding rather than encoding non-ASCII characters is deliberate: the articles are mostly
//! Arabic, an Arabic slug is three times shorter decoded (two bytes a letter instead of six),
//! the decoded form is what a reader recognizes in a listing or a log, and validation already
//! accepts IRIs as sent, so most addresses are stored in that form to begin with.

use std::borrow::Cow;

use unicode_normalization::{UnicodeNormalization, char::canonical_combining_class, is_nfc};

/// The canonical form of `uri` (see the module documentation). Anything that is neither an
/// `http`/`https` URL with a host nor a URN is returned trimmed and otherwise as it came.
/// Applying it twice gives the same result as applying it once.
pub fn canonical_uri(uri: &str) -> String {
    let uri = uri.trim();
    if uri
        .get(..4)
        .is_some_and(|head| head.eq_ignore_ascii_case("urn:"))
    {
        return canonical_urn(uri);
    }
    canonical_http_url(uri).unwrap_or_else(|| uri.to_owned())
}

/// Whether a query parameter named `key` with `value` only tracks how a reader arrived (campaign
/// tags, click identifiers, share sources, session identifiers) and never selects content.
pub fn is_tracking_parameter(key: &str, value: &str) -> bool {
    let key = key.to_ascii_lowercase();
    const EXACT: &[&str] = &[
        // Click identifiers of ad and social platforms.
        "fbclid",
        "gclid",
        "dclid",
        "gbraid",
        "wbraid",
        "msclkid",
        "twclid",
        "yclid",
        "ttclid",
        "igshid",
        "igsh",
        "li_fat_id",
        "rb_clickid",
        "wickedid",
        "_ga",
        "_gl",
        // Newsletter and marketing automation.
        "mc_cid",
        "mc_eid",
        "mkt_tok",
        "_hsenc",
        "_hsmi",
        "hsctatracking",
        "oly_anon_id",
        "oly_enc_id",
        "vero_id",
        "vero_conv",
        "mbid",
        "s_cid",
        "cmpid",
        "ncid",
        "ocid",
        "xtor",
        "echobox",
        "sr_share",
        "smid",
        // Share and referral markers.
        "ref_src",
        "ref_url",
        "__twitter_impression",
        "fb_action_ids",
        "fb_action_types",
        "fb_ref",
        "fb_source",
        "action_object_map",
        "action_type_map",
        "action_ref_map",
        "__tn__",
        "_ft_",
        // Matomo (Piwik) campaign parameters.
        "pk_campaign",
        "pk_kwd",
        "pk_keyword",
        "pk_source",
        "pk_medium",
        "pk_content",
        "pk_cid",
        // Session identifiers.
        "phpsessid",
        "jsessionid",
        "sessionid",
        "aspsessionid",
        "cfid",
        "cftoken",
    ];
    if key.starts_with("utm_") || key.starts_with("mtm_") || EXACT.contains(&key.as_str()) {
        return true;
    }
    // Keys that select content on some sites and only name the referrer on others: dropped for
    // the values that name a social network or a distribution channel.
    const REFERRER_KEYS: &[&str] = &["ref", "src", "source", "from", "fromref", "spref", "via"];
    const REFERRER_VALUES: &[&str] = &[
        "twitter",
        "tw",
        "tw_i",
        "x",
        "fb",
        "fb_i",
        "facebook",
        "instagram",
        "ig",
        "telegram",
        "tg",
        "whatsapp",
        "wa",
        "rss",
        "feed",
        "newsletter",
        "push",
        "share",
        "social",
        "bookmark",
        "bookmarks",
        "shortener",
    ];
    if REFERRER_KEYS.contains(&key.as_str()) {
        let value = value.to_ascii_lowercase();
        return REFERRER_VALUES.contains(&value.as_str());
    }
    // Blogger and others switch to the mobile layout with `m=1`.
    key == "m" && (value == "0" || value == "1")
}

/// Whether a query parameter only asks for the AMP rendering of the page.
fn is_amp_parameter(key: &str, value: &str) -> bool {
    let key = key.to_ascii_lowercase();
    key == "amp"
        || key.starts_with("amp_")
        || (matches!(key.as_str(), "outputtype" | "output" | "mode" | "format")
            && value.eq_ignore_ascii_case("amp"))
}

fn canonical_http_url(uri: &str) -> Option<String> {
    let (scheme, rest) = uri.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return None;
    }
    let (rest, fragment) = match rest.split_once('#') {
        Some((rest, fragment)) => (rest, Some(fragment)),
        None => (rest, None),
    };
    let (rest, query) = match rest.split_once('?') {
        Some((rest, query)) => (rest, Some(query)),
        None => (rest, None),
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let (userinfo, host_port) = match authority.rsplit_once('@') {
        Some((userinfo, host_port)) => (Some(userinfo), host_port),
        None => (None, authority),
    };
    let (host, port) = split_host_port(host_port);
    let host = canonical_host(host);
    if host.is_empty() {
        return None;
    }

    let mut out = String::with_capacity(uri.len());
    out.push_str(&scheme);
    out.push_str("://");
    if let Some(userinfo) = userinfo {
        out.push_str(&normalize_encoding(userinfo, Part::Userinfo));
        out.push('@');
    }
    out.push_str(&host);
    if let Some(port) = canonical_port(&scheme, port) {
        out.push(':');
        out.push_str(&port);
    }
    out.push_str(&canonical_path(path));
    if let Some(query) = query.map(canonical_query).filter(|q| !q.is_empty()) {
        out.push('?');
        out.push_str(&query);
    }
    if let Some(fragment) = fragment.filter(|f| is_route_fragment(f)) {
        out.push('#');
        out.push_str(&normalize_encoding(fragment, Part::Fragment));
    }
    Some(out)
}

fn split_host_port(host_port: &str) -> (&str, Option<&str>) {
    if host_port.starts_with('[') {
        return match host_port.find(']') {
            Some(close) => {
                let (host, after) = host_port.split_at(close + 1);
                (host, after.strip_prefix(':'))
            }
            None => (host_port, None),
        };
    }
    match host_port.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (host_port, None),
    }
}

/// Labels that only select a rendering of the same site (desktop, mobile, AMP).
fn is_rendering_label(label: &str) -> bool {
    matches!(label, "www" | "m" | "mobile" | "amp")
        || (label.len() == 4 && label.starts_with("www") && label.as_bytes()[3].is_ascii_digit())
}

fn canonical_host(host: &str) -> String {
    if host.starts_with('[') {
        return host.to_ascii_lowercase();
    }
    let lowered = lowercase_outside_escapes(&normalize_encoding(host, Part::Host));
    let trimmed = lowered.trim_end_matches('.');
    let mut labels: Vec<Cow<'_, str>> = trimmed
        .split('.')
        .map(|label| match label.strip_prefix("xn--") {
            Some(encoded) => match decode_punycode(encoded) {
                Some(decoded) => Cow::Owned(lowercase_outside_escapes(&decoded)),
                None => Cow::Borrowed(label),
            },
            None => Cow::Borrowed(label),
        })
        .collect();
    let rendering = labels
        .iter()
        .take_while(|label| is_rendering_label(label))
        .count()
        .min(labels.len().saturating_sub(2));
    labels.drain(..rendering);
    labels.join(".")
}

fn canonical_port(scheme: &str, port: Option<&str>) -> Option<String> {
    let port = port.filter(|p| !p.is_empty())?;
    match port.parse::<u16>() {
        Ok(80) if scheme == "http" => None,
        Ok(443) if scheme == "https" => None,
        Ok(number) => Some(number.to_string()),
        Err(_) => Some(port.to_owned()),
    }
}

/// Last segments that name a directory's default document.
fn is_index_document(segment: &str) -> bool {
    let Some((stem, extension)) = segment.rsplit_once('.') else {
        return false;
    };
    let extension = extension.to_ascii_lowercase();
    match stem.to_ascii_lowercase().as_str() {
        "index" => matches!(
            extension.as_str(),
            "html" | "htm" | "php" | "asp" | "aspx" | "shtml" | "jsp"
        ),
        "default" => matches!(extension.as_str(), "asp" | "aspx"),
        _ => false,
    }
}

/// `story.amp.html` is `story.html`, and `story.amp` is `story`.
fn strip_amp_extension(segment: &str) -> Option<String> {
    let lower = segment.to_ascii_lowercase();
    for (marker, keep) in [(".amp.html", ".html"), (".amp.htm", ".htm")] {
        if lower.ends_with(marker) && lower.len() > marker.len() {
            return Some(format!(
                "{}{keep}",
                &segment[..segment.len() - marker.len()]
            ));
        }
    }
    (lower.ends_with(".amp") && lower.len() > 4).then(|| segment[..segment.len() - 4].to_owned())
}

fn canonical_path(path: &str) -> String {
    let normalized = normalize_encoding(path, Part::Path);
    let mut segments: Vec<String> = Vec::new();
    for segment in normalized.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            _ => segments.push(segment.to_owned()),
        }
    }
    // Each rule can expose another (`/a/amp/index.html`), so they repeat until none applies;
    // every round shortens the path, which bounds the loop.
    while let Some(last) = segments.last() {
        if last.eq_ignore_ascii_case("amp") || is_index_document(last) {
            segments.pop();
        } else if let Some(stripped) = strip_amp_extension(last) {
            *segments.last_mut().expect("checked above") = stripped;
        } else if segments.len() > 1 && segments[0].eq_ignore_ascii_case("amp") {
            segments.remove(0);
        } else {
            break;
        }
    }
    let mut out = String::with_capacity(normalized.len() + 1);
    if segments.is_empty() {
        out.push('/');
    }
    for segment in &segments {
        out.push('/');
        out.push_str(segment);
    }
    out
}

fn canonical_query(query: &str) -> String {
    let mut params: Vec<(String, Option<String>)> = Vec::new();
    for item in query.split('&') {
        let item = normalize_encoding(item, Part::Query);
        let (key, value) = match item.split_once('=') {
            Some((key, value)) => (key.to_owned(), Some(value.to_owned())),
            None => (item.clone(), None),
        };
        // `a=1&amp;b=2` is `a=1&b=2` escaped for HTML and copied from a page's source.
        let key = match key.get(..4) {
            Some(head) if head.eq_ignore_ascii_case("amp;") && key.len() > 4 => key[4..].to_owned(),
            _ => key,
        };
        if key.is_empty() && value.as_deref().is_none_or(str::is_empty) {
            continue;
        }
        let plain_value = value.as_deref().unwrap_or("");
        if is_tracking_parameter(&key, plain_value) || is_amp_parameter(&key, plain_value) {
            continue;
        }
        params.push((key, value));
    }
    params.sort();
    params.dedup();
    let mut out = String::with_capacity(query.len());
    for (key, value) in params {
        if !out.is_empty() {
            out.push('&');
        }
        out.push_str(&key);
        if let Some(value) = value {
            out.push('=');
            out.push_str(&value);
        }
    }
    out
}

/// Fragments that address content in single-page sites rather than a place in a page.
fn is_route_fragment(fragment: &str) -> bool {
    (fragment.starts_with('!') || fragment.starts_with('/'))
        && !matches!(fragment, "!" | "/" | "!/")
}

fn canonical_urn(urn: &str) -> String {
    let rest = &urn[4..];
    let end = [rest.find("?+"), rest.find("?="), rest.find('#')]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(rest.len());
    let Some((nid, nss)) = rest[..end].split_once(':') else {
        return urn.to_owned();
    };
    let mut out = String::with_capacity(urn.len());
    out.push_str("urn:");
    out.push_str(&nid.to_ascii_lowercase());
    out.push(':');
    out.push_str(&uppercase_escapes(nss));
    out.truncate(out.trim_end().len());
    out
}

fn uppercase_escapes(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < bytes.len() {
        match escaped_byte(bytes, i) {
            Some(byte) => {
                push_escape(&mut out, byte);
                i += 3;
            }
            None => {
                let c = s[i..].chars().next().expect("i is on a character boundary");
                out.push(c);
                i += c.len_utf8();
            }
        }
    }
    out
}

/// The URL component being normalized: each allows a different set of ASCII characters as they
/// are.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Part {
    Userinfo,
    Host,
    Path,
    Query,
    Fragment,
}

fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// ASCII characters written as they are in `part` (RFC 3986); others are escaped.
fn allowed_as_is(b: u8, part: Part) -> bool {
    let sub_delim = b"!$&'()*+,;=".contains(&b);
    unreserved(b)
        || sub_delim
        || match part {
            Part::Userinfo => b == b':',
            Part::Host => false,
            Part::Path => matches!(b, b':' | b'@' | b'/'),
            Part::Query | Part::Fragment => matches!(b, b':' | b'@' | b'/' | b'?'),
        }
}

/// Non-ASCII characters written as they are (RFC 3987 `ucschar`, and `iprivate` in queries),
/// except white space and the bidi formatting characters RFC 3987 section 4.1 rules out.
fn literal_ok(c: char, part: Part) -> bool {
    let code = c as u32;
    let ucschar = matches!(
        code,
        0xA0..=0xD7FF | 0xF900..=0xFDCF | 0xFDF0..=0xFFEF
    ) || (0x10000..=0xEFFFD).contains(&code) && code & 0xFFFF <= 0xFFFD;
    let iprivate = matches!(code, 0xE000..=0xF8FF | 0xF0000..=0xFFFFD | 0x100000..=0x10FFFD);
    let bidi_format = matches!(
        code,
        0x061C | 0x200E | 0x200F | 0x202A..=0x202E | 0x2066..=0x2069 | 0xFEFF
    );
    (ucschar || (iprivate && part == Part::Query)) && !bidi_format && !c.is_whitespace()
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The byte escaped at `bytes[i..i + 3]`, if a valid `%XX` starts there.
fn escaped_byte(bytes: &[u8], i: usize) -> Option<u8> {
    if bytes.get(i) != Some(&b'%') {
        return None;
    }
    let high = hex_value(*bytes.get(i + 1)?)?;
    let low = hex_value(*bytes.get(i + 2)?)?;
    Some(high << 4 | low)
}

fn push_escape(out: &mut String, byte: u8) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.push('%');
    out.push(HEX[usize::from(byte >> 4)] as char);
    out.push(HEX[usize::from(byte & 0xF)] as char);
}

/// The one encoding form of `raw` as a `part` (see the module documentation).
fn normalize_encoding(raw: &str, part: Part) -> String {
    let bytes = raw.as_bytes();
    let mut out = Encoded {
        text: String::with_capacity(raw.len()),
        after_escape: false,
    };
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            match escaped_byte(bytes, i) {
                Some(byte) if byte.is_ascii() => {
                    if unreserved(byte) {
                        out.literal(byte as char);
                    } else {
                        out.escape(byte);
                    }
                    i += 3;
                }
                Some(lead) => {
                    // A run of escapes that spells one UTF-8 character is that character.
                    let width = match lead {
                        0xC2..=0xDF => 2,
                        0xE0..=0xEF => 3,
                        0xF0..=0xF4 => 4,
                        _ => 0,
                    };
                    let mut buf = [0u8; 4];
                    let mut complete = width > 0;
                    for (k, slot) in buf.iter_mut().enumerate().take(width) {
                        match escaped_byte(bytes, i + 3 * k) {
                            Some(byte) => *slot = byte,
                            None => complete = false,
                        }
                    }
                    let decoded = complete
                        .then(|| std::str::from_utf8(&buf[..width]).ok())
                        .flatten()
                        .and_then(|s| s.chars().next())
                        .filter(|c| out.may_write(*c, part));
                    match decoded {
                        Some(c) => {
                            out.literal(c);
                            i += 3 * width;
                        }
                        None => {
                            out.escape(lead);
                            i += 3;
                        }
                    }
                }
                // A '%' that starts no escape stands for itself.
                None => {
                    out.escape(b'%');
                    i += 1;
                }
            }
        } else if b.is_ascii() {
            if allowed_as_is(b, part) {
                out.literal(b as char);
            } else {
                out.escape(b);
            }
            i += 1;
        } else {
            let c = raw[i..]
                .chars()
                .next()
                .expect("i is on a character boundary");
            if out.may_write(c, part) {
                out.literal(c);
            } else {
                let mut buf = [0u8; 4];
                for byte in c.encode_utf8(&mut buf).bytes() {
                    out.escape(byte);
                }
            }
            i += c.len_utf8();
        }
    }
    let text = out.text;
    if text.is_ascii() || is_nfc(&text) {
        text
    } else {
        text.nfc().collect()
    }
}

/// Text being written in the one encoding form.
struct Encoded {
    text: String,
    /// Whether the text ends with an escape.
    after_escape: bool,
}

impl Encoded {
    fn literal(&mut self, c: char) {
        self.text.push(c);
        self.after_escape = false;
    }

    fn escape(&mut self, byte: u8) {
        push_escape(&mut self.text, byte);
        self.after_escape = true;
    }

    /// Whether the non-ASCII `c` is written as it is here. A combining mark right after an
    /// escape stays escaped: NFC would otherwise compose it with the escape's last hex digit.
    fn may_write(&self, c: char, part: Part) -> bool {
        literal_ok(c, part) && !(self.after_escape && canonical_combining_class(c) != 0)
    }
}

/// Lowercases everything but the hex digits of escapes, which stay uppercase.
fn lowercase_outside_escapes(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '%' {
            out.push(c);
            out.extend(chars.by_ref().take(2));
        } else {
            out.extend(c.to_lowercase());
        }
    }
    if out.is_ascii() || is_nfc(&out) {
        out
    } else {
        out.nfc().collect()
    }
}

/// Decodes the part of a punycode label after `xn--` (RFC 3492); `None` when it is not valid.
fn decode_punycode(encoded: &str) -> Option<String> {
    const BASE: u32 = 36;
    const T_MIN: u32 = 1;
    const T_MAX: u32 = 26;
    // Host labels are at most 63 bytes; a longer one is not a label to decode.
    if encoded.is_empty() || encoded.len() > 63 || !encoded.is_ascii() {
        return None;
    }
    let (basic, deltas) = match encoded.rfind('-') {
        Some(at) => (&encoded[..at], &encoded[at + 1..]),
        None => ("", encoded),
    };
    let mut output: Vec<char> = basic.chars().collect();
    let (mut code, mut index, mut bias) = (128u32, 0u32, 72u32);
    let mut digits = deltas.bytes();
    let mut remaining = deltas.len();
    while remaining > 0 {
        let old_index = index;
        let mut weight = 1u32;
        let mut k = BASE;
        loop {
            let byte = digits.next()?;
            remaining -= 1;
            let digit = match byte {
                b'a'..=b'z' => u32::from(byte - b'a'),
                b'A'..=b'Z' => u32::from(byte - b'A'),
                b'0'..=b'9' => u32::from(byte - b'0') + 26,
                _ => return None,
            };
            index = index.checked_add(digit.checked_mul(weight)?)?;
            let threshold = if k <= bias {
                T_MIN
            } else {
                (k - bias).min(T_MAX)
            };
            if digit < threshold {
                break;
            }
            weight = weight.checked_mul(BASE - threshold)?;
            k += BASE;
        }
        let length = u32::try_from(output.len()).ok()? + 1;
        bias = adapt_bias(index - old_index, length, old_index == 0);
        code = code.checked_add(index / length)?;
        index %= length;
        let c = char::from_u32(code).filter(|c| !c.is_ascii())?;
        output.insert(usize::try_from(index).ok()?, c);
        index += 1;
    }
    // A label of basic code points only is not encoded, so it cannot be an encoded label.
    (!output.iter().all(char::is_ascii)).then(|| output.into_iter().collect())
}

fn adapt_bias(delta: u32, points: u32, first: bool) -> u32 {
    let mut delta = if first { delta / 700 } else { delta / 2 };
    delta += delta / points;
    let mut k = 0;
    while delta > ((36 - 1) * 26) / 2 {
        delta /= 36 - 1;
        k += 36;
    }
    k + (36 * delta) / (delta + 38)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each group: the rule it exercises, the canonical form, and addresses that must all map to
    /// it (the canonical form itself included, so the table also checks it is a fixed point).
    const EQUIVALENT: &[(&str, &str, &[&str])] = &[
        (
            "scheme and host case",
            "https://alkhabar.example/news/bukamal",
            &[
                "HTTPS://ALKHABAR.EXAMPLE/news/bukamal",
                "Https://AlKhabar.Example/news/bukamal",
                "https://alkhabar.example./news/bukamal",
            ],
        ),
        (
            "default ports",
            "https://alkhabar.example/news/bukamal",
            &[
                "https://alkhabar.example:443/news/bukamal",
                "https://alkhabar.example:/news/bukamal",
                "https://alkhabar.example:0443/news/bukamal",
            ],
        ),
        (
            "default http port",
            "http://alkhabar.example/news/bukamal",
            &[
                "http://alkhabar.example:80/news/bukamal",
                "HTTP://www.alkhabar.example:80/news/bukamal/",
            ],
        ),
        (
            "other ports are kept",
            "https://alkhabar.example:8443/news/bukamal",
            &[
                "https://alkhabar.example:8443/news/bukamal",
                "https://www.alkhabar.example:08443/news/bukamal/",
            ],
        ),
        (
            "fragments",
            "https://alkhabar.example/news/bukamal",
            &[
                "https://alkhabar.example/news/bukamal#comments",
                "https://alkhabar.example/news/bukamal#",
                "https://alkhabar.example/news/bukamal#%D8%AA%D8%B9%D9%84%D9%8A%D9%82%D8%A7%D8%AA",
                "https://alkhabar.example/news/bukamal#!",
            ],
        ),
        (
            "client-side routes are kept",
            "https://app.alkhabar.example/#!/news/182",
            &[
                "https://app.alkhabar.example/#!/news/182",
                "https://app.alkhabar.example#!/news/182",
                "https://APP.alkhabar.example/index.html#!/news/182",
            ],
        ),
        (
            "utm parameters",
            "https://alkhabar.example/news/bukamal",
            &[
                "https://alkhabar.example/news/bukamal?utm_source=twitter",
                "https://alkhabar.example/news/bukamal?utm_source=x&utm_medium=social&utm_campaign=syria",
                "https://alkhabar.example/news/bukamal?UTM_Source=Newsletter&utm_content=top&utm_term=a",
                "https://alkhabar.example/news/bukamal?utm_id=7&utm_source_platform=ads",
            ],
        ),
        (
            "click identifiers",
            "https://alkhabar.example/news/bukamal",
            &[
                "https://alkhabar.example/news/bukamal?fbclid=IwAR0abc",
                "https://alkhabar.example/news/bukamal?gclid=Cj0KCQ",
                "https://alkhabar.example/news/bukamal?igshid=MzRlODBiNWFlZA==",
                "https://alkhabar.example/news/bukamal?msclkid=1a2b&dclid=3&twclid=4&yclid=5",
                "https://alkhabar.example/news/bukamal?ttclid=9&gbraid=0&wbraid=1&_gl=1*abc&_ga=2.1",
            ],
        ),
        (
            "newsletter and share markers",
            "https://alkhabar.example/news/bukamal",
            &[
                "https://alkhabar.example/news/bukamal?mc_cid=abc123&mc_eid=def456",
                "https://alkhabar.example/news/bukamal?ref_src=twsrc%5Etfw",
                "https://alkhabar.example/news/bukamal?ref=twitter",
                "https://alkhabar.example/news/bukamal?source=rss&xtor=RSS-1",
                "https://alkhabar.example/news/bukamal?mtm_campaign=syria&pk_kwd=news&mkt_tok=eyJp",
                "https://alkhabar.example/news/bukamal?__twitter_impression=true&fb_action_ids=1",
                "https://alkhabar.example/news/bukamal?PHPSESSID=0123456789abcdef",
            ],
        ),
        (
            "content parameters are kept and sorted",
            "https://alkhabar.example/news?id=182&page=2",
            &[
                "https://alkhabar.example/news?page=2&id=182",
                "https://alkhabar.example/news?id=182&utm_source=fb&page=2",
                "https://alkhabar.example/news?&id=182&&page=2&",
                "https://alkhabar.example/news?page=2&id=182&page=2",
                "https://alkhabar.example/news?id=182&amp;page=2",
                "https://alkhabar.example/news/?page=2&id=182#top",
            ],
        ),
        (
            "empty query",
            "https://alkhabar.example/news/bukamal",
            &[
                "https://alkhabar.example/news/bukamal?",
                "https://alkhabar.example/news/bukamal?&",
                "https://alkhabar.example/news/bukamal?utm_source=a&fbclid=b#c",
            ],
        ),
        (
            "www and mobile hosts",
            "https://alkhabar.example/news/bukamal",
            &[
                "https://www.alkhabar.example/news/bukamal",
                "https://WWW.alkhabar.example/news/bukamal",
                "https://www2.alkhabar.example/news/bukamal",
                "https://m.alkhabar.example/news/bukamal",
                "https://mobile.alkhabar.example/news/bukamal",
                "https://amp.alkhabar.example/news/bukamal",
                "https://www.m.alkhabar.example/news/bukamal",
            ],
        ),
        (
            "AMP variants",
            "https://alkhabar.example/news/bukamal",
            &[
                "https://alkhabar.example/news/bukamal/amp",
                "https://alkhabar.example/news/bukamal/amp/",
                "https://alkhabar.example/amp/news/bukamal",
                "https://alkhabar.example/news/bukamal.amp",
                "https://alkhabar.example/news/bukamal?amp",
                "https://alkhabar.example/news/bukamal?amp=1",
                "https://alkhabar.example/news/bukamal?outputType=amp",
                "https://alkhabar.example/news/bukamal?output=amp&amp_js_v=0.1",
                "https://amp.alkhabar.example/amp/news/bukamal/amp/?outputType=AMP",
            ],
        ),
        (
            "AMP document names",
            "https://alkhabar.example/news/bukamal.html",
            &[
                "https://alkhabar.example/news/bukamal.amp.html",
                "https://www.alkhabar.example/news/bukamal.html?amp=1",
                "https://alkhabar.example/news/bukamal.html/amp",
            ],
        ),
        (
            "trailing slash",
            "https://alkhabar.example/news/bukamal",
            &[
                "https://alkhabar.example/news/bukamal/",
                "https://alkhabar.example/news/bukamal//",
                "https://alkhabar.example/news//bukamal",
            ],
        ),
        (
            "index documents",
            "https://alkhabar.example/news",
            &[
                "https://alkhabar.example/news/index.html",
                "https://alkhabar.example/news/index.htm",
                "https://alkhabar.example/news/INDEX.HTML",
                "https://alkhabar.example/news/index.php",
                "https://alkhabar.example/news/default.aspx",
                "https://alkhabar.example/news/amp/index.html",
            ],
        ),
        (
            "root",
            "https://alkhabar.example/",
            &[
                "https://alkhabar.example",
                "https://www.alkhabar.example/",
                "https://alkhabar.example/index.html",
                "https://alkhabar.example/?utm_source=x",
                "https://alkhabar.example/amp",
                "https://alkhabar.example//",
            ],
        ),
        (
            "dot segments",
            "https://alkhabar.example/news/bukamal",
            &[
                "https://alkhabar.example/news/./bukamal",
                "https://alkhabar.example/news/world/../bukamal",
                "https://alkhabar.example/../news/bukamal",
                "https://alkhabar.example/news/%2E/bukamal",
                "https://alkhabar.example/news/x/%2e%2E/bukamal",
            ],
        ),
        (
            "unreserved escapes",
            "https://alkhabar.example/news/bukamal-2016_07.~x",
            &[
                "https://alkhabar.example/%6Eews/bukamal-2016_07.~x",
                "https://alkhabar.example/news/bukamal%2D2016%5F07%2E%7Ex",
                "https://alkhabar.example/news/%62%75%6b%61%6d%61%6c-2016_07.~x",
            ],
        ),
        (
            "reserved escapes keep their meaning, in uppercase",
            "https://alkhabar.example/news/a%2Fb?q=x%26y%3Dz",
            &[
                "https://alkhabar.example/news/a%2fb?q=x%26y%3dz",
                "https://alkhabar.example/news/a%2Fb?q=x%26y%3Dz&utm_medium=email",
            ],
        ),
        (
            "Arabic path: IRI and percent-encoded URI",
            "https://alkhabar.example/أخبار/سوريا/البوكمال",
            &[
                "https://alkhabar.example/%D8%A3%D8%AE%D8%A8%D8%A7%D8%B1/%D8%B3%D9%88%D8%B1%D9%8A%D8%A7/%D8%A7%D9%84%D8%A8%D9%88%D9%83%D9%85%D8%A7%D9%84",
                "https://alkhabar.example/%d8%a3%d8%ae%d8%a8%d8%a7%d8%b1/%d8%b3%d9%88%d8%b1%d9%8a%d8%a7/%d8%a7%d9%84%d8%a8%d9%88%d9%83%d9%85%d8%a7%d9%84",
                "https://alkhabar.example/أخبار/%D8%B3%D9%88%D8%B1%D9%8A%D8%A7/البوكمال/",
                "https://www.alkhabar.example/أخبار/سوريا/البوكمال/amp?utm_source=telegram",
            ],
        ),
        (
            "Arabic query: IRI and percent-encoded URI",
            "https://alkhabar.example/search?q=داعش&tag=سوريا",
            &[
                "https://alkhabar.example/search?tag=%D8%B3%D9%88%D8%B1%D9%8A%D8%A7&q=%D8%AF%D8%A7%D8%B9%D8%B4",
                "https://alkhabar.example/search?q=%D8%AF%D8%A7%D8%B9%D8%B4&tag=سوريا&fbclid=1",
            ],
        ),
        (
            "decoded text is NFC",
            "https://alkhabar.example/café/أمريكا",
            &[
                "https://alkhabar.example/cafe%CC%81/%D8%A7%D9%94%D9%85%D8%B1%D9%8A%D9%83%D8%A7",
                "https://alkhabar.example/caf%C3%A9/%D8%A3%D9%85%D8%B1%D9%8A%D9%83%D8%A7",
            ],
        ),
        (
            "characters that are not written as they are",
            "https://alkhabar.example/news/a%20b/%E2%80%8Fx",
            &[
                "https://alkhabar.example/news/a%20b/\u{200F}x",
                "https://alkhabar.example/news/a%20b/%e2%80%8fx",
            ],
        ),
        (
            "invalid escapes and bytes stay escaped",
            "https://alkhabar.example/news/%FF%D8/100%25",
            &[
                "https://alkhabar.example/news/%ff%d8/100%25",
                "https://alkhabar.example/news/%FF%D8/100%",
            ],
        ),
        (
            "internationalized host",
            "https://مثال.إختبار/أخبار",
            &[
                "https://xn--mgbh0fb.xn--kgbechtv/أخبار",
                "https://XN--MGBH0FB.xn--kgbechtv/%D8%A3%D8%AE%D8%A8%D8%A7%D8%B1",
                "https://www.xn--mgbh0fb.xn--kgbechtv/أخبار/",
                "https://%D9%85%D8%AB%D8%A7%D9%84.إختبار/أخبار",
            ],
        ),
        (
            "IPv6 hosts",
            "http://[2001:db8::1]:8080/news",
            &[
                "http://[2001:DB8::1]:8080/news/",
                "HTTP://[2001:db8::1]:8080/news/index.html#x",
            ],
        ),
        (
            "user information is kept",
            "https://editor@alkhabar.example/news",
            &[
                "https://editor@WWW.alkhabar.example:443/news/",
                "https://%65ditor@alkhabar.example/news",
            ],
        ),
        (
            "referrer keys with content values are kept",
            "https://alkhabar.example/news?ref=section-syria&source=reuters",
            &[
                "https://alkhabar.example/news?source=reuters&ref=section-syria&ref=twitter",
                "https://alkhabar.example/news?ref=section-syria&source=reuters&m=1",
            ],
        ),
        (
            "URN case",
            "urn:newsml:alkhabar.example:20160701:Bukamal%2A",
            &[
                "URN:NewsML:alkhabar.example:20160701:Bukamal%2a",
                "urn:NEWSML:alkhabar.example:20160701:Bukamal%2A",
                "  urn:newsml:alkhabar.example:20160701:Bukamal%2A  ",
            ],
        ),
        (
            "URN components outside equivalence",
            "urn:isbn:0451450523",
            &[
                "urn:isbn:0451450523?+resolver=x",
                "urn:ISBN:0451450523?=lang=ar",
                "URN:isbn:0451450523#chapter-2",
            ],
        ),
    ];

    /// Pairs that must stay distinct: each rule above has a limit.
    const DISTINCT: &[(&str, &str)] = &[
        ("http://alkhabar.example/a", "https://alkhabar.example/a"),
        (
            "https://alkhabar.example/News",
            "https://alkhabar.example/news",
        ),
        (
            "https://alkhabar.example/a?id=1",
            "https://alkhabar.example/a?id=2",
        ),
        (
            "https://alkhabar.example/a?id=1",
            "https://alkhabar.example/a?ID=1",
        ),
        (
            "https://alkhabar.example/a%2Fb",
            "https://alkhabar.example/a/b",
        ),
        (
            "https://alkhabar.example/a?q=x%26y",
            "https://alkhabar.example/a?q=x&y",
        ),
        (
            "https://alkhabar.example/a?q=a+b",
            "https://alkhabar.example/a?q=a%2Bb",
        ),
        (
            "https://news.alkhabar.example/a",
            "https://alkhabar.example/a",
        ),
        ("https://www.example/a", "https://example/a"),
        ("https://m.example/a", "https://example/a"),
        (
            "https://alkhabar.example:8080/a",
            "https://alkhabar.example/a",
        ),
        (
            "https://alkhabar.example/amplifiers",
            "https://alkhabar.example/",
        ),
        (
            "https://alkhabar.example/a/index2.html",
            "https://alkhabar.example/a",
        ),
        (
            "https://alkhabar.example/a?ref=syria",
            "https://alkhabar.example/a",
        ),
        (
            "https://alkhabar.example/a?m=2",
            "https://alkhabar.example/a",
        ),
        (
            "https://alkhabar.example/#!/a",
            "https://alkhabar.example/#!/b",
        ),
        ("urn:isbn:0451450523", "urn:isbn:0451450524"),
        ("urn:newsml:a:Bukamal", "urn:newsml:a:bukamal"),
    ];

    #[test]
    fn equivalent_addresses_share_one_canonical_form() {
        let mut failures = Vec::new();
        let mut variants = 0;
        for (rule, canonical, inputs) in EQUIVALENT {
            for input in inputs.iter().chain(std::iter::once(canonical)) {
                variants += 1;
                let got = canonical_uri(input);
                if got != *canonical {
                    failures.push(format!(
                        "{rule}: {input}\n    got      {got}\n    expected {canonical}"
                    ));
                }
            }
        }
        assert!(variants >= 60, "only {variants} variants");
        assert!(
            failures.is_empty(),
            "{} of {variants} failed:\n{}",
            failures.len(),
            failures.join("\n")
        );
    }

    #[test]
    fn distinct_addresses_stay_distinct() {
        for (a, b) in DISTINCT {
            assert_ne!(canonical_uri(a), canonical_uri(b), "{a} and {b}");
        }
    }

    #[test]
    fn canonical_forms_are_fixed_points() {
        let all = EQUIVALENT
            .iter()
            .flat_map(|(_, canonical, inputs)| inputs.iter().chain(std::iter::once(canonical)))
            .chain(DISTINCT.iter().flat_map(|(a, b)| [a, b]));
        for input in all {
            let once = canonical_uri(input);
            assert_eq!(canonical_uri(&once), once, "{input}");
            if !once.starts_with("urn:") {
                assert_eq!(super::super::uri::check_url_or_urn(&once), Ok(()), "{once}");
            }
        }
    }

    #[test]
    fn what_is_not_an_http_url_or_urn_comes_back_as_it_was() {
        for other in [
            "ftp://alkhabar.example/A",
            "not a uri",
            "",
            "https://",
            "mailto:x@y",
        ] {
            assert_eq!(canonical_uri(other), other.trim());
        }
    }

    #[test]
    fn odd_input_never_panics_and_is_stable() {
        // Fragments of addresses glued together: escapes cut short, lone brackets, stray
        // separators, non-ASCII in every part.
        let pieces = [
            "https://",
            "http://",
            "urn:",
            "x:",
            "a",
            "WWW.",
            "m.",
            "xn--",
            "xn--mgbh0fb",
            ".",
            "..",
            "/",
            "//",
            "?",
            "&",
            "=",
            "#",
            "#!",
            "%",
            "%D8",
            "%A3",
            "%e2%80%8f",
            "%2F",
            "%7e",
            "[",
            "]",
            ":",
            "@",
            "443",
            "amp",
            "index.html",
            "utm_source=x",
            "سوريا",
            "\u{200F}",
            " ",
            "é",
            "\u{0301}",
            "ﷲ",
        ];
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..20_000 {
            let mut input = String::new();
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let mut bits = state;
            for _ in 0..(bits % 9) {
                bits /= 9;
                input.push_str(pieces[(bits % pieces.len() as u64) as usize]);
                bits /= pieces.len() as u64;
            }
            let once = canonical_uri(&input);
            assert_eq!(canonical_uri(&once), once, "{input:?}");
        }
    }

    #[test]
    fn punycode_decodes_rfc_3492_samples() {
        assert_eq!(decode_punycode("mgbh0fb").as_deref(), Some("مثال"));
        assert_eq!(decode_punycode("bcher-kva").as_deref(), Some("bücher"));
        // "(A) Arabic (Egyptian)" from RFC 3492 section 7.1.
        assert_eq!(
            decode_punycode("egbpdaj6bu4bxfgehfvwxn").as_deref(),
            Some("ليهمابتكلموشعربي؟")
        );
        assert_eq!(decode_punycode("abc-"), None, "only basic code points");
        assert_eq!(decode_punycode("99999999999"), None, "overflow");
        assert_eq!(decode_punycode("a!b"), None);
    }
}
