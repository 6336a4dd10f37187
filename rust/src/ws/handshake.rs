//! The opening handshake (RFC 6455 section 4): the server's 101 response
//! and, for the client, its request and the checks of the server's answer.

use crate::sys;

const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key`: base64(SHA-1(key + GUID)).
pub fn accept_key(key: &[u8]) -> String {
    let mut digest = [0u8; 20];
    let mut out = [0u8; 32];
    unsafe {
        let mut ctx = sys::mg_sha1_ctx::default();
        sys::mg_sha1_init(&mut ctx);
        sys::mg_sha1_update(&mut ctx, key.as_ptr(), key.len());
        sys::mg_sha1_update(&mut ctx, GUID.as_ptr(), GUID.len());
        sys::mg_sha1_final(digest.as_mut_ptr(), &mut ctx);
        let n = sys::mg_base64_encode(
            digest.as_ptr(),
            20,
            out.as_mut_ptr() as *mut libc::c_char,
            out.len(),
        );
        String::from_utf8_lossy(&out[..n]).into_owned()
    }
}

/// Whether `key` is a valid `Sec-WebSocket-Key`: base64 of 16 bytes.
pub fn key_valid(key: &[u8]) -> bool {
    key.len() == 24
        && key.ends_with(b"==")
        && key[..22]
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

/// A fresh random key for a client handshake.
pub fn new_key() -> String {
    let mut raw = [0u8; 16];
    let mut out = [0u8; 32];
    unsafe {
        sys::mg_random(raw.as_mut_ptr() as *mut libc::c_void, raw.len());
        let n = sys::mg_base64_encode(raw.as_ptr(), 16, out.as_mut_ptr() as *mut libc::c_char, out.len());
        String::from_utf8_lossy(&out[..n]).into_owned()
    }
}

/// The server's `101 Switching Protocols` response. `extra` holds header
/// lines (`name: value\r\n`) from the application.
pub fn server_response(key: &[u8], protocol: &[u8], extensions: &[u8], extra: &[u8]) -> Vec<u8> {
    let mut r = Vec::with_capacity(160 + extra.len());
    r.extend_from_slice(
        b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-accept: ",
    );
    r.extend_from_slice(accept_key(key).as_bytes());
    r.extend_from_slice(b"\r\n");
    if !protocol.is_empty() {
        r.extend_from_slice(b"sec-websocket-protocol: ");
        r.extend_from_slice(protocol);
        r.extend_from_slice(b"\r\n");
    }
    if !extensions.is_empty() {
        r.extend_from_slice(b"sec-websocket-extensions: ");
        r.extend_from_slice(extensions);
        r.extend_from_slice(b"\r\n");
    }
    r.extend_from_slice(extra);
    r.extend_from_slice(b"\r\n");
    r
}

/// What the client learnt from a valid 101 response.
#[derive(Debug, PartialEq)]
pub struct Accepted {
    /// Bytes of the response head (the frames after it are the server's).
    pub head_len: usize,
    pub protocol: String,
    pub extensions: String,
}

/// Checks a server's answer to the client's handshake. `Ok(None)`: the head
/// is incomplete. `Err`: why the handshake failed (the status is named for
/// a refusal).
pub fn check_response(buf: &[u8], key: &str, offered: &[String]) -> Result<Option<Accepted>, String> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut res = httparse::Response::new(&mut headers);
    let head_len = match res.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() > 64 * 1024 => {
            return Err("handshake response head over 64 KiB".into())
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(format!("invalid handshake response: {e}")),
    };
    let code = res.code.unwrap_or(0);
    if code != 101 {
        return Err(format!(
            "the server refused the WebSocket upgrade: {code} {}",
            res.reason.unwrap_or("")
        ));
    }
    let get = |name: &str| -> Vec<&[u8]> {
        res.headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
            .collect()
    };
    let has_token = |name: &str, token: &str| {
        get(name).iter().any(|v| {
            String::from_utf8_lossy(v)
                .split(',')
                .any(|t| t.trim().eq_ignore_ascii_case(token))
        })
    };
    if !has_token("upgrade", "websocket") {
        return Err("handshake response without `upgrade: websocket`".into());
    }
    if !has_token("connection", "upgrade") {
        return Err("handshake response without `connection: upgrade`".into());
    }
    let accept = get("sec-websocket-accept");
    if accept.len() != 1 || accept[0] != accept_key(key.as_bytes()).as_bytes() {
        return Err("handshake response with a wrong sec-websocket-accept".into());
    }
    let protocols = get("sec-websocket-protocol");
    let protocol = match protocols.as_slice() {
        [] => String::new(),
        [p] => {
            let p = String::from_utf8_lossy(p).trim().to_string();
            if !offered.contains(&p) {
                return Err(format!(
                    "the server chose subprotocol {p:?}, which was not offered"
                ));
            }
            p
        }
        _ => return Err("handshake response with several subprotocols".into()),
    };
    let extensions = get("sec-websocket-extensions")
        .iter()
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect::<Vec<_>>()
        .join(", ");
    Ok(Some(Accepted {
        head_len,
        protocol,
        extensions,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rfc_example_key_gives_the_rfc_accept() {
        // RFC 6455 section 1.3.
        assert_eq!(
            accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        assert!(key_valid(b"dGhlIHNhbXBsZSBub25jZQ=="));
        assert!(!key_valid(b"dGhlIHNhbXBsZSBub25jZQ"));
        assert!(key_valid(new_key().as_bytes()));
    }

    #[test]
    fn a_response_is_checked_field_by_field() {
        let key = "dGhlIHNhbXBsZSBub25jZQ==";
        let ok = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                  Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol: chat\r\n\r\n";
        let offered = vec!["chat".to_string()];
        let a = check_response(ok.as_bytes(), key, &offered).unwrap().unwrap();
        assert_eq!((a.head_len, a.protocol.as_str()), (ok.len(), "chat"));
        assert_eq!(check_response(&ok.as_bytes()[..40], key, &offered), Ok(None));
        assert!(check_response(ok.as_bytes(), key, &[])
            .unwrap_err()
            .contains("not offered"));
        let wrong = ok.replace("s3pP", "xxxx");
        assert!(check_response(wrong.as_bytes(), key, &offered)
            .unwrap_err()
            .contains("accept"));
        let refused = "HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n";
        assert!(check_response(refused.as_bytes(), key, &offered)
            .unwrap_err()
            .contains("403"));
    }
}
