//! Where a request comes from, as browsers tell it: used to refuse changes asked by another
//! site's page, which a browser sends with the Basic credentials it has saved.

/// Whether a request comes from a page of another site, by what browsers say of it:
/// `Sec-Fetch-Site` (`cross-site`, `same-site`), or else an `Origin` whose host is not the
/// one asked (`Host`, or `X-Forwarded-Host` behind a proxy). A browser sends Basic
/// credentials it has saved with such a request (a form posted as `text/plain` needs no
/// CORS preflight), so requests that change something are refused when this holds.
/// Non-browser clients (sym_upload, curl, symhub's own) send neither header.
pub fn cross_site(headers: &http::HeaderMap) -> bool {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = header("sec-fetch-site") {
        return matches!(site, "cross-site" | "same-site");
    }
    let Some(origin) = header("origin") else {
        return false;
    };
    let origin_host = origin
        .split_once("://")
        .map(|(_, rest)| rest.trim_end_matches('/'));
    let Some(origin_host) = origin_host else {
        return true; // `null` and anything else that names no host
    };
    ![header("host"), header("x-forwarded-host")]
        .into_iter()
        .flatten()
        .any(|h| h.trim().eq_ignore_ascii_case(origin_host))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_from_another_sites_pages_are_told_apart() {
        let h = |pairs: &[(&'static str, &'static str)]| {
            let mut h = http::HeaderMap::new();
            for (k, v) in pairs {
                h.insert(*k, v.parse().unwrap());
            }
            cross_site(&h)
        };
        assert!(!h(&[]), "sym_upload, curl: no browser headers");
        assert!(!h(&[("sec-fetch-site", "same-origin")]));
        assert!(!h(&[("sec-fetch-site", "none")]));
        assert!(h(&[("sec-fetch-site", "cross-site")]));
        assert!(h(&[("sec-fetch-site", "same-site")]));
        assert!(!h(&[
            ("origin", "http://symhub:8080"),
            ("host", "symhub:8080")
        ]));
        assert!(h(&[
            ("origin", "http://evil.example"),
            ("host", "symhub:8080")
        ]));
        assert!(h(&[("origin", "null"), ("host", "symhub:8080")]));
        assert!(!h(&[
            ("origin", "https://symbols.corp"),
            ("host", "127.0.0.1:8080"),
            ("x-forwarded-host", "symbols.corp")
        ]));
    }
}
