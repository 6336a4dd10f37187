//! The WebSocket protocol's event records (`src/ws/abi.ts` mirrors them),
//! written with the core's record header. Every record has the slot at 16.

use crate::core::event::{EventBuf, HEADER_LEN};

/// The socket is open (server: the 101 is queued; client: the server's 101
/// was valid). Protocol length u32 @20, extensions length u32 @24, both
/// strings from @28.
pub const KIND_WS_OPEN: u8 = 15;
/// A complete message. Flags: [`MSG_BINARY`]. Length u32 @20, bytes @24.
pub const KIND_WS_MESSAGE: u8 = 16;
/// A ping or pong. Flags: [`CTRL_PING`] or [`CTRL_PONG`]. Length u32 @20,
/// payload @24.
pub const KIND_WS_CONTROL: u8 = 17;
/// The WebSocket closed: code in aux, flags [`CLOSE_CLEAN`], reason length
/// u32 @20, reason @24. Comes before the core's CLOSE of the connection.
pub const KIND_WS_CLOSE: u8 = 18;

pub const MSG_BINARY: u8 = 1;
pub const CTRL_PING: u8 = 1;
pub const CTRL_PONG: u8 = 2;
pub const CLOSE_CLEAN: u8 = 1;

/// OPEN of a WebSocket.
pub fn open(ev: &mut EventBuf, id: u64, slot: u32, protocol: &[u8], extensions: &[u8]) {
    ev.header(
        KIND_WS_OPEN,
        0,
        0,
        HEADER_LEN + 12 + protocol.len() + extensions.len(),
        id,
    );
    ev.u32(slot);
    ev.u32(protocol.len() as u32);
    ev.u32(extensions.len() as u32);
    ev.put(protocol);
    ev.put(extensions);
}

/// A record of `kind` with a payload (message, ping, pong, close reason).
pub fn payload(ev: &mut EventBuf, kind: u8, flags: u8, aux: u16, id: u64, slot: u32, bytes: &[u8]) {
    ev.reserve(HEADER_LEN + 8 + bytes.len());
    ev.header(kind, flags, aux, HEADER_LEN + 8 + bytes.len(), id);
    ev.u32(slot);
    ev.u32(bytes.len() as u32);
    ev.put(bytes);
}
