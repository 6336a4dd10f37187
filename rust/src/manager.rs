//! The manager `lib.rs` hands out: a [`Core`] with the protocols
//! registered on it. It sits above the core and the protocols, maps listen
//! URL schemes to protocols and gives typed access to each protocol.
//!
//! Adding a protocol: register it in [`Manager::new`], map its scheme in
//! [`Manager::listen`] (if it listens), add a typed accessor.

use crate::core::outbound::ClientTls;
use crate::core::{error, Core};
use crate::http::{HttpClient, HttpServer, Limits};

/// A core plus the indices of its registered protocols.
pub struct Manager {
    /// From `Box::into_raw`: Mongoose's `fn_data` pointers refer to it.
    core: *mut Core,
    http: usize,
    client: usize,
}

impl Manager {
    /// Creates a manager with the HTTP server (request `limits`) and the
    /// HTTP client protocols.
    pub fn new(limits: Limits) -> Result<Box<Manager>, String> {
        let mut core = Core::new()?;
        let http = core.register(Box::new(HttpServer::new(limits)));
        let client = core.register(Box::new(HttpClient::default()));
        Ok(Box::new(Manager {
            core: Box::into_raw(core),
            http,
            client,
        }))
    }

    /// Frees the manager: closes every connection (without events to JS).
    ///
    /// # Safety
    /// `this` comes from `Box::into_raw` of a live manager; nothing else
    /// refers to it afterwards.
    pub unsafe fn destroy(this: *mut Manager) {
        let m = Box::from_raw(this);
        Core::destroy(m.core);
    }

    /// The core (events, flush, close, timeouts).
    pub fn core(&mut self) -> &mut Core {
        unsafe { &mut *self.core }
    }

    /// Runs `f` with the HTTP server protocol and the core.
    pub fn http<R>(&mut self, f: impl FnOnce(&mut HttpServer, &mut Core) -> R) -> R {
        let idx = self.http;
        self.core().with_protocol(idx, f)
    }

    /// Runs `f` with the HTTP client protocol and the core.
    pub fn client<R>(&mut self, f: impl FnOnce(&mut HttpClient, &mut Core) -> R) -> R {
        let idx = self.client;
        self.core().with_protocol(idx, f)
    }

    /// Listens on a URL whose scheme names the protocol (`http://host:port`).
    /// Returns (slot, id, port).
    pub fn listen(&mut self, url: &str) -> Result<(u32, u64, u16), i32> {
        let proto = if url.starts_with("http://") {
            self.http
        } else {
            return Err(error::fail(
                error::Status::Invalid,
                format!("unsupported listen URL {url:?}: expected http://host:port"),
            ));
        };
        unsafe { Core::listen(self.core, url, proto) }
    }

    /// Opens an outbound connection for the HTTP client. Returns (slot, id).
    pub fn connect(&mut self, addr: &str, tls: Option<ClientTls>) -> Result<(u32, u64), i32> {
        unsafe { Core::connect(self.core, addr, tls, self.client) }
    }

    /// Flushes, polls once without blocking, flushes; returns the event
    /// bytes ready.
    pub fn poll(&mut self) -> usize {
        unsafe { Core::poll(self.core) }
    }

    /// Counters: polls, connections accepted, requests parsed, cache hits.
    pub fn stats(&mut self) -> [u64; 4] {
        let s = self.core().stats;
        let (requests, hits) = self.http(|h, _| (h.requests, h.cache_hits));
        [s.polls, s.accepted, requests, hits]
    }
}
