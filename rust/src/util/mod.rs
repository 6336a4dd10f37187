//! Mongoose's small parsers, exposed where the platform lacks them or is
//! measurably slower: JSON value lookup by path without a full parse
//! (`mg_json_get`) and glob matching with captures (`mg_match`). Which of
//! them mgnet's TypeScript exports is decided by `bench/util_bench.ts`
//! (docs/architecture.md, "Native utilities"). Both are pure functions of
//! their arguments: any thread may call them.

use std::ffi::c_char;

use crate::core::error::{fail, Status};
use crate::sys;

/// Longest JSON path accepted (it is copied to a NUL-terminated buffer).
pub const MAX_PATH: usize = 1024;

fn mg_str(b: &[u8]) -> sys::mg_str {
    sys::mg_str {
        buf: b.as_ptr() as *mut c_char,
        len: b.len(),
    }
}

/// Finds the token at `path` (`$.a.b[1]`) in `json`: `Ok(Some((offset,
/// length)))`, `Ok(None)` when absent, an `Invalid` status when the path
/// is malformed or the document is not JSON up to the point searched.
pub fn json_get(json: &[u8], path: &[u8]) -> Result<Option<(usize, usize)>, i32> {
    if path.len() >= MAX_PATH || path.first() != Some(&b'$') || path.contains(&0) {
        return Err(fail(
            Status::Invalid,
            "a JSON path starts with $ and has at most 1023 bytes",
        ));
    }
    if json.len() > i32::MAX as usize {
        return Err(fail(Status::Invalid, "a JSON document over 2 GiB"));
    }
    let mut p = [0u8; MAX_PATH];
    p[..path.len()].copy_from_slice(path);
    let mut toklen: i32 = 0;
    let off = unsafe { sys::mg_json_get(mg_str(json), p.as_ptr() as *const c_char, &mut toklen) };
    match off {
        o if o >= 0 => Ok(Some((o as usize, toklen as usize))),
        sys::MG_JSON_NOT_FOUND => Ok(None),
        sys::MG_JSON_TOO_DEEP => Err(fail(Status::Invalid, "JSON nested too deep for the path")),
        _ => Err(fail(Status::Invalid, "not valid JSON")),
    }
}

/// Matches `s` against a glob `pattern` (`?` one byte, `*` any run without
/// `/`, `#` any run). On a match writes each wildcard's capture as (offset,
/// length) pairs into `caps` (as many as fit) and returns true.
pub fn glob_match(s: &[u8], pattern: &[u8], caps: &mut [(u32, u32)]) -> bool {
    let wild = pattern
        .iter()
        .filter(|&&b| matches!(b, b'?' | b'*' | b'#'))
        .count();
    // mg_match writes one capture past the last wildcard.
    let mut out = vec![
        sys::mg_str {
            buf: std::ptr::null_mut(),
            len: 0
        };
        wild + 2
    ];
    let ok = unsafe { sys::mg_match(mg_str(s), mg_str(pattern), out.as_mut_ptr()) };
    if ok {
        for (dst, src) in caps.iter_mut().zip(&out[..wild]) {
            *dst = if src.buf.is_null() {
                (0, 0)
            } else {
                ((src.buf as usize - s.as_ptr() as usize) as u32, src.len as u32)
            };
        }
    }
    ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_get_finds_tokens_by_path() {
        let doc = br#"{"a":{"b":[1,"two",{"c":null}]},"d":true}"#;
        let tok = |p: &str| json_get(doc, p.as_bytes()).map(|r| r.map(|(o, l)| &doc[o..o + l]));
        assert_eq!(tok("$.a.b[1]"), Ok(Some(&br#""two""#[..])));
        assert_eq!(tok("$.a.b[2].c"), Ok(Some(&b"null"[..])));
        assert_eq!(tok("$.d"), Ok(Some(&b"true"[..])));
        assert_eq!(tok("$.a.x"), Ok(None));
        assert_eq!(tok("a.b"), Err(Status::Invalid as i32));
        for bad in [&b"{\"a\" 1}"[..], b"{]", b"x"] {
            assert_eq!(json_get(bad, b"$.a"), Err(Status::Invalid as i32), "{bad:?}");
        }
        // Mongoose stops at the end of the input: a cut document is "not found".
        assert_eq!(json_get(b"{\"a\":", b"$.a"), Ok(None));
    }

    #[test]
    fn glob_match_captures_wildcards() {
        let mut caps = [(0, 0); 2];
        assert!(glob_match(b"/api/users/42", b"/api/*/*", &mut caps));
        assert_eq!(caps, [(5, 5), (11, 2)]);
        assert!(!glob_match(b"/api/users/42/x", b"/api/*/*", &mut caps));
        assert!(glob_match(b"/a/b/c", b"/a/#", &mut caps[..1]));
        assert_eq!(caps[0], (3, 3));
    }
}
