//! Responses answered inside Rust, without a trip to JS: static routes and
//! cached handler output, keyed by request target, with a time to live,
//! tags for invalidation and ETag / `If-None-Match` (304) handling.

use std::collections::HashMap;
use std::rc::Rc;

/// One cached response.
pub struct Entry {
    pub status: u16,
    /// Header lines (`name: value\r\n`), the `etag` line included.
    pub head: Vec<u8>,
    pub body: Vec<u8>,
    /// The quoted entity tag, e.g. `"1f2e3d4c5b6a7988"`.
    pub etag: Vec<u8>,
    /// The `etag` header line alone, for 304 responses.
    pub etag_line: Vec<u8>,
    /// Milliseconds (Mongoose's clock) after which the entry is gone.
    expires: Option<u64>,
    tags: Vec<String>,
}

/// The cache of one manager.
#[derive(Default)]
pub struct Cache {
    map: HashMap<Vec<u8>, Rc<Entry>>,
}

/// A strong entity tag from the body: FNV-1a 64 of its bytes, quoted.
pub fn body_etag(body: &[u8]) -> Vec<u8> {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in body {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("\"{h:016x}\"").into_bytes()
}

/// `If-None-Match` against an entity tag, by the weak comparison RFC 9110
/// 13.1.2 prescribes for GET and HEAD: `*` or any listed tag equal to ours
/// once `W/` prefixes are ignored.
pub fn etag_matches(if_none_match: &[u8], etag: &[u8]) -> bool {
    let ours = etag.strip_prefix(b"W/").unwrap_or(etag);
    if_none_match.split(|&b| b == b',').any(|t| {
        let t = t.trim_ascii();
        t == b"*" || t.strip_prefix(b"W/").unwrap_or(t) == ours
    })
}

impl Cache {
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Stores a response for `target`. `etag`: the handler's own (quoted)
    /// tag, else one is computed from the body. `ttl_ms` 0: no expiry.
    #[allow(clippy::too_many_arguments)]
    pub fn set(
        &mut self,
        target: &[u8],
        status: u16,
        head: &[u8],
        body: &[u8],
        etag: Option<&[u8]>,
        ttl_ms: u64,
        tags: Vec<String>,
        now: u64,
    ) {
        let etag = etag.map(<[u8]>::to_vec).unwrap_or_else(|| body_etag(body));
        let mut etag_line = b"etag: ".to_vec();
        etag_line.extend_from_slice(&etag);
        etag_line.extend_from_slice(b"\r\n");
        let mut full = head.to_vec();
        full.extend_from_slice(&etag_line);
        let entry = Entry {
            status,
            head: full,
            body: body.to_vec(),
            etag,
            etag_line,
            expires: (ttl_ms > 0).then(|| now + ttl_ms),
            tags,
        };
        self.map.insert(target.to_vec(), Rc::new(entry));
    }

    /// The live entry for `target` (an expired one is dropped).
    pub fn get(&mut self, target: &[u8], now: u64) -> Option<Rc<Entry>> {
        let e = self.map.get(target)?;
        if e.expires.is_some_and(|t| now >= t) {
            self.map.remove(target);
            return None;
        }
        Some(e.clone())
    }

    pub fn remove(&mut self, target: &[u8]) -> bool {
        self.map.remove(target).is_some()
    }

    /// Drops every entry carrying `tag`; returns how many.
    pub fn invalidate(&mut self, tag: &str) -> usize {
        let before = self.map.len();
        self.map.retain(|_, e| !e.tags.iter().any(|t| t == tag));
        before - self.map.len()
    }

    pub fn clear(&mut self) {
        self.map.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_after_their_ttl() {
        let mut c = Cache::default();
        c.set(b"/a", 200, b"", b"x", None, 100, vec![], 1000);
        c.set(b"/b", 200, b"", b"y", None, 0, vec![], 1000);
        assert!(c.get(b"/a", 1099).is_some());
        assert!(c.get(b"/a", 1100).is_none());
        assert!(c.get(b"/a", 1000).is_none(), "an expired entry is gone for good");
        assert!(c.get(b"/b", u64::MAX - 1).is_some(), "ttl 0 never expires");
    }

    #[test]
    fn tags_invalidate_groups_of_entries() {
        let mut c = Cache::default();
        c.set(b"/u/1", 200, b"", b"1", None, 0, vec!["users".into()], 0);
        c.set(
            b"/u/2",
            200,
            b"",
            b"2",
            None,
            0,
            vec!["users".into(), "two".into()],
            0,
        );
        c.set(b"/p", 200, b"", b"p", None, 0, vec!["posts".into()], 0);
        assert_eq!(c.invalidate("users"), 2);
        assert!(c.get(b"/u/1", 0).is_none() && c.get(b"/u/2", 0).is_none());
        assert!(c.get(b"/p", 0).is_some());
        assert!(c.remove(b"/p") && !c.remove(b"/p"));
    }

    #[test]
    fn etags_are_stable_and_compared_weakly() {
        let e = body_etag(b"hello");
        assert_eq!(e, body_etag(b"hello"));
        assert_ne!(e, body_etag(b"hellp"));
        assert_eq!(e.len(), 18);
        assert!(etag_matches(&e, &e));
        let mut weak = b"W/".to_vec();
        weak.extend_from_slice(&e);
        assert!(etag_matches(&weak, &e));
        let mut list = b"\"other\", ".to_vec();
        list.extend_from_slice(&e);
        assert!(etag_matches(&list, &e));
        assert!(etag_matches(b"*", &e));
        assert!(!etag_matches(b"\"nope\"", &e));
    }

    #[test]
    fn the_etag_line_is_part_of_the_head() {
        let mut c = Cache::default();
        c.set(
            b"/",
            200,
            b"content-type: text/plain\r\n",
            b"hi",
            Some(b"\"v1\""),
            0,
            vec![],
            0,
        );
        let e = c.get(b"/", 0).unwrap();
        assert_eq!(e.head, b"content-type: text/plain\r\netag: \"v1\"\r\n");
        assert_eq!(e.etag_line, b"etag: \"v1\"\r\n");
    }
}
