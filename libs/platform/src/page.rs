//! Opaque page tokens (AIP-158). A token carries the last key of the page and
//! a fingerprint of the query, so a token used with other filters is refused.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use crate::error::ApiError;

/// Page size when the caller sends 0.
pub const DEFAULT_PAGE_SIZE: u64 = 100;
/// Largest page; larger requests are coerced down.
pub const MAX_PAGE_SIZE: u64 = 1000;

/// A decoded page request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    /// Rows to return.
    pub size: u64,
    /// Return rows strictly after this key.
    pub after: Option<String>,
}

fn fingerprint(query: &str) -> String {
    hex::encode(&Sha256::digest(query.as_bytes())[..8])
}

/// Decodes `page_size` and `page_token` for a query identified by `query`
/// (the tenant and filters). Violations name their field.
pub fn decode(page_size: i32, page_token: &str, query: &str) -> Result<PageRequest, ApiError> {
    if page_size < 0 {
        return Err(ApiError::field("page_size", "must not be negative"));
    }
    let size = match page_size as u64 {
        0 => DEFAULT_PAGE_SIZE,
        n => n.min(MAX_PAGE_SIZE),
    };
    if page_token.is_empty() {
        return Ok(PageRequest { size, after: None });
    }
    let bad = || ApiError::field("page_token", "is not a token from this query");
    let raw = URL_SAFE_NO_PAD.decode(page_token).map_err(|_| bad())?;
    let text = String::from_utf8(raw).map_err(|_| bad())?;
    let (fp, key) = text.split_once('\n').ok_or_else(bad)?;
    if fp != fingerprint(query) {
        return Err(bad());
    }
    Ok(PageRequest { size, after: Some(key.to_string()) })
}

/// The token for the page after `last_key`, or empty when `fetched` shows this was the last page.
pub fn next_token(query: &str, last_key: Option<&str>, fetched: usize, size: u64) -> String {
    match last_key {
        Some(k) if fetched as u64 > size => URL_SAFE_NO_PAD.encode(format!("{}\n{k}", fingerprint(query))),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_for_the_same_query_only() {
        let t = next_token("acme|accounts", Some("acc-42"), 101, 100);
        let p = decode(10, &t, "acme|accounts").unwrap();
        assert_eq!(p, PageRequest { size: 10, after: Some("acc-42".into()) });
        assert!(decode(10, &t, "globex|accounts").is_err());
        assert!(decode(10, "garbage!!", "acme|accounts").is_err());
    }

    #[test]
    fn sizes_default_and_clamp_and_the_last_page_has_no_token() {
        assert_eq!(decode(0, "", "q").unwrap().size, DEFAULT_PAGE_SIZE);
        assert_eq!(decode(5000, "", "q").unwrap().size, MAX_PAGE_SIZE);
        assert!(decode(-1, "", "q").is_err());
        assert_eq!(next_token("q", Some("k"), 100, 100), "");
    }
}
