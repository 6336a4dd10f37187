//! The manager `lib.rs` hands out: a [`Core`] with the protocols
//! registered on it. It sits above the core and the protocols, maps listen
//! URL schemes to protocols and gives typed access to each protocol.
//!
//! Adding a protocol: register it in [`Manager::new`], map its scheme in
//! [`Manager::listen`] (if it listens), add a typed accessor.

use crate::core::metrics::{Family, Kind};
use crate::core::transport::Transport;
use crate::core::{error, Core};
use crate::http::{HttpClient, HttpServer, Limits};
use crate::net::post::Posts;
use crate::net::timer::Timers;
use crate::net::udp::{Bound, Mode, Peer};
use crate::net::Udp;
use crate::net::{FrameSpec, Tcp};
use crate::tls::{ServerTls, Spec as TlsSpec};
use crate::ws::{handshake, Options as WsOptions, WsProtocol};

/// A core plus the indices of its registered protocols.
pub struct Manager {
    /// From `Box::into_raw`: Mongoose's `fn_data` pointers refer to it.
    core: *mut Core,
    http: usize,
    client: usize,
    tcp: usize,
    udp: usize,
    // net: timers and posting (not connection protocols: no registry index)
    timers: Timers,
    posts: Posts,
    ws: usize,
}

impl Manager {
    /// Creates a manager with the HTTP server (request `limits`) and the
    /// HTTP client protocols.
    pub fn new(limits: Limits) -> Result<Box<Manager>, String> {
        let mut core = Core::new()?;
        let http = core.register(Box::new(HttpServer::new(limits)));
        let client = core.register(Box::new(HttpClient::default()));
        let tcp = core.register(Box::new(Tcp::default()));
        let udp = core.register(Box::new(Udp::default()));
        let ws = core.register(Box::new(WsProtocol::default()));
        Ok(Box::new(Manager {
            core: Box::into_raw(core),
            http,
            client,
            tcp,
            udp,
            timers: Timers::default(),
            posts: Posts::default(),
            ws,
        }))
    }

    /// Frees the manager: closes every connection (without events to JS).
    ///
    /// # Safety
    /// `this` comes from `Box::into_raw` of a live manager; nothing else
    /// refers to it afterwards.
    pub unsafe fn destroy(this: *mut Manager) {
        let mut m = Box::from_raw(this);
        // net: before mg_mgr_free, which free()s every timer in its list.
        m.timers.clear(m.core);
        m.posts.close();
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

    /// Runs `f` with the TCP protocol and the core.
    pub fn tcp<R>(&mut self, f: impl FnOnce(&mut Tcp, &mut Core) -> R) -> R {
        let idx = self.tcp;
        self.core().with_protocol(idx, f)
    }

    /// Runs `f` with the UDP protocol and the core.
    pub fn udp<R>(&mut self, f: impl FnOnce(&mut Udp, &mut Core) -> R) -> R {
        let idx = self.udp;
        self.core().with_protocol(idx, f)
    }

    /// Binds a UDP socket (`udp://host:port`) whose datagrams go to JS.
    pub fn bind_udp(&mut self, url: &str, max: usize, flags: u32, rcvbuf: u32) -> Result<Bound, i32> {
        unsafe { Udp::bind(self.core, self.udp, url, max, flags, rcvbuf, Mode::Datagrams) }
    }

    /// Sends DNS queries for `name` (one per type) to `server` from a fresh
    /// socket; its DNS records follow. Returns (slot, id).
    pub fn dns_query(&mut self, server: Peer, name: &str, types: &[u16]) -> Result<(u32, u64), i32> {
        unsafe { Udp::dns_query(self.core, self.udp, server, name, types) }
    }

    /// Sends an SNTP request to `server` from a fresh socket; its SNTP
    /// record follows. Returns (slot, id).
    pub fn sntp_query(&mut self, server: Peer) -> Result<(u32, u64), i32> {
        unsafe { Udp::sntp_query(self.core, self.udp, server) }
    }

    /// Runs `f` with the WebSocket protocol and the core.
    pub fn ws<R>(&mut self, f: impl FnOnce(&mut WsProtocol, &mut Core) -> R) -> R {
        let idx = self.ws;
        self.core().with_protocol(idx, f)
    }

    /// Upgrades HTTP request `seq` of (`slot`, `id`) to a WebSocket: the
    /// connection moves from the HTTP server to the WebSocket protocol,
    /// which answers 101 (with `protocol`, the extensions it agreed to from
    /// `offer`, and the header lines `extra`).
    #[allow(clippy::too_many_arguments)]
    pub fn ws_accept(
        &mut self,
        slot: u32,
        id: u64,
        seq: u32,
        key: &[u8],
        protocol: &[u8],
        offer: &[u8],
        extra: &[u8],
        opts: WsOptions,
    ) -> Result<(), i32> {
        if !handshake::key_valid(key) {
            return Err(error::fail(error::Status::Invalid, "invalid sec-websocket-key"));
        }
        let out = self.http(|h, core| h.take_upgrade(core, slot, id, seq))?;
        let ws = self.ws;
        self.core().set_protocol(slot, ws);
        self.ws(|w, core| w.adopt(core, slot, out, key, protocol, offer, extra, opts))
    }

    /// Opens a WebSocket client connection: `head` is the handshake request
    /// without the key, version and extension lines and the blank line.
    pub fn ws_connect(
        &mut self,
        addr: &str,
        tls: Option<Box<dyn Transport>>,
        opts: WsOptions,
        head: &[u8],
        offered: Vec<String>,
    ) -> Result<(u32, u64), i32> {
        self.ws(|w, _| w.prepare_client(opts, head, offered));
        let r = unsafe { Core::connect(self.core, addr, tls, self.ws) };
        if r.is_err() {
            self.ws(|w, _| w.pending_client_clear());
        }
        r
    }

    /// Listens on a URL whose scheme names the protocol (`http://host:port`,
    /// `tcp://host:port`). Returns (slot, id, port).
    pub fn listen(&mut self, url: &str) -> Result<(u32, u64, u16), i32> {
        let proto = if url.starts_with("http://") {
            self.http
        } else if url.starts_with("tcp://") {
            self.tcp
        } else {
            return Err(error::fail(
                error::Status::Invalid,
                format!("unsupported listen URL {url:?}: expected http://host:port or tcp://host:port"),
            ));
        };
        unsafe { Core::listen(self.core, url, proto) }
    }

    /// Listens with TLS (`https://`, `tls://`): the settings are parsed and
    /// checked first (a bad PEM or a key that does not match fails here,
    /// before anything is bound), into one configuration every accepted
    /// connection shares. `https://` offers ALPN `http/1.1`. Returns (slot,
    /// id, port).
    pub fn listen_tls(&mut self, url: &str, spec: &[u8]) -> Result<(u32, u64, u16), i32> {
        let (proto, alpn): (usize, &[&[u8]]) = if url.starts_with("https://") {
            (self.http, &[b"http/1.1"])
        } else if url.starts_with("tls://") {
            (self.tcp, &[])
        } else {
            return Err(error::fail(
                error::Status::Invalid,
                format!("unsupported TLS listen URL {url:?}: expected https://host:port or tls://host:port"),
            ));
        };
        let t = server_tls(spec, alpn)?;
        let plain = url
            .split_once("://")
            .map_or(url.to_string(), |(_, r)| format!("tcp://{r}"));
        let (slot, id, port) = unsafe { Core::listen(self.core, &plain, proto)? };
        self.core().set_listener_transport(slot, id, Box::new(t))?;
        Ok((slot, id, port))
    }

    /// Replaces a TLS listener's certificates and settings: new handshakes
    /// use them, open connections keep theirs. The old ALPN list is kept
    /// unless `spec` names one.
    pub fn reload_tls(&mut self, slot: u32, id: u64, spec: &[u8]) -> Result<(), i32> {
        let core = self.core();
        let Some(t) = core
            .listener_transport(slot, id)?
            .and_then(|t| t.as_any_mut().downcast_mut::<ServerTls>())
        else {
            return Err(error::fail(
                error::Status::Invalid,
                format!("listener {id} has no TLS"),
            ));
        };
        let alpn: Vec<Vec<u8>> = t.config.alpn_protocols.clone();
        let refs: Vec<&[u8]> = alpn.iter().map(|a| a.as_slice()).collect();
        *t = server_tls(spec, &refs)?;
        Ok(())
    }

    /// Upgrades an open TCP connection to TLS in-band (STARTTLS), as the
    /// client (`client`: server name and settings for verification) or as
    /// the server (`spec`: a listener's settings). See [`Core::start_tls`].
    pub fn start_tls(
        &mut self,
        slot: u32,
        id: u64,
        client: Option<Box<dyn Transport>>,
        spec: &[u8],
    ) -> Result<(), i32> {
        let tcp = self.tcp;
        let core = self.core();
        if core.proto_of(slot, id)? != tcp {
            return Err(error::fail(
                error::Status::State,
                "startTls() is for TCP connections",
            ));
        }
        match client {
            Some(t) => core.start_tls(slot, id, t.as_ref()),
            None => core.start_tls(slot, id, &server_tls(spec, &[])?),
        }
    }

    /// Opens an outbound connection for the HTTP client. Returns (slot, id).
    pub fn connect(&mut self, addr: &str, tls: Option<Box<dyn Transport>>) -> Result<(u32, u64), i32> {
        unsafe { Core::connect(self.core, addr, tls, self.client) }
    }

    /// Opens an outbound TCP connection (`tcp://IP:port`) whose input is cut
    /// by `spec`, over TLS if `tls` is given. Returns (slot, id).
    pub fn connect_tcp(
        &mut self,
        addr: &str,
        spec: FrameSpec,
        tls: Option<Box<dyn Transport>>,
    ) -> Result<(u32, u64), i32> {
        let (slot, id) = unsafe { Core::connect(self.core, addr, tls, self.tcp)? };
        // The connection is at most connecting: no byte has been read yet.
        // (If it already failed, its ERROR and CLOSE records tell JS.)
        let _ = self.tcp(|t, core| t.set_framing(core, slot, id, spec));
        Ok((slot, id))
    }

    /// Flushes, polls once without blocking, flushes; returns the event
    /// bytes ready.
    pub fn poll(&mut self) -> usize {
        unsafe {
            Core::poll(self.core);
            // net: timer fires (in due order), then posted messages, follow the poll's events.
            self.timers.after_poll(self.core);
            self.posts.drain(&mut (*self.core).events);
            (*self.core).events.len()
        }
    }

    /// net: runs `f` with the timers and the core pointer.
    pub fn timers<R>(&mut self, f: impl FnOnce(&mut Timers, *mut Core) -> R) -> R {
        f(&mut self.timers, self.core)
    }

    /// net: the manager's mailbox for posts from other threads.
    pub fn posts(&mut self) -> (&mut Posts, &Core) {
        (&mut self.posts, unsafe { &*self.core })
    }

    /// Turns the metrics' clock readings on or off (counters always count).
    pub fn set_metrics(&mut self, on: bool) {
        self.core().metrics_on = on;
    }

    /// Every metric family: the core's and the protocols' (in registration
    /// order), then the timers' and posts'. Fixed for a manager's life.
    pub fn metric_families(&mut self) -> Vec<Family> {
        let mut f = self.core().metric_families();
        f.push(Family::one(
            "mgnet_timer_fires_total",
            Kind::Counter,
            "Timer fires delivered.",
        ));
        f.push(Family::one(
            "mgnet_posts_total",
            Kind::Counter,
            "Messages posted into the manager and delivered.",
        ));
        f
    }

    /// The values of [`Manager::metric_families`], one per slot.
    pub fn read_metrics(&mut self, out: &mut Vec<f64>) {
        self.core().read_metrics(out);
        out.push(self.timers.fired as f64);
        out.push(self.posts.delivered as f64);
    }

    /// Counters: polls, connections accepted, requests parsed, cache hits.
    pub fn stats(&mut self) -> [u64; 4] {
        let s = self.core().stats;
        let (requests, hits) = self.http(|h, _| (h.requests, h.cache_hits));
        [s.polls, s.accepted, requests, hits]
    }
}

/// A listener's TLS from a settings buffer, with `alpn` unless it names its own.
fn server_tls(spec: &[u8], alpn: &[&[u8]]) -> Result<ServerTls, i32> {
    let invalid = |e: String| error::fail(error::Status::Invalid, e);
    let mut s = TlsSpec::parse(spec).map_err(invalid)?;
    if s.alpn.is_empty() {
        s.alpn = alpn.iter().map(|a| a.to_vec()).collect();
    }
    let config = crate::tls::config::server_config(&s).map_err(invalid)?;
    Ok(ServerTls { config })
}

#[cfg(test)]
mod tests {
    //! The HTTP protocols through the top-level manager, on loopback with
    //! real Mongoose and `std::net` peers, called the way lib.rs calls them.

    use std::io::{ErrorKind, Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::time::{Duration, Instant};

    use super::*;
    use crate::core::error::Status;
    use crate::core::event::{split_records, KIND_CLOSE, KIND_DATA, KIND_OPEN};
    use crate::http::record::KIND_HTTP;
    use crate::http::{REPLY_OWN_DATE, SEQ_OLDEST};

    const CLOSED: Result<(), i32> = Err(Status::Closed as i32);

    /// A manager that gathers the records its polls produce; freed on drop.
    struct T {
        m: *mut Manager,
        events: Vec<u8>,
    }

    impl T {
        fn new() -> T {
            T {
                m: Box::into_raw(Manager::new(Limits::default()).unwrap()),
                events: Vec::new(),
            }
        }

        fn m(&mut self) -> &mut Manager {
            unsafe { &mut *self.m }
        }

        fn listen(&mut self) -> (u32, u64, u16) {
            self.m().listen("http://127.0.0.1:0").unwrap()
        }

        /// Polls once and keeps what it produced.
        fn poll(&mut self) {
            self.m().poll();
            let ev = &mut self.m().core().events;
            let bytes = std::mem::take(&mut ev.bytes);
            self.events.extend_from_slice(&bytes);
        }

        /// Polls until `n` records of `kind` (for connection `id`, or any
        /// when 0) were gathered, failing after 5 s; returns them.
        fn wait(&mut self, kind: u8, id: u64, n: usize) -> Vec<Vec<u8>> {
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                self.poll();
                let found: Vec<Vec<u8>> = split_records(&self.events)
                    .into_iter()
                    .filter(|&(k, i, _)| k == kind && (id == 0 || i == id))
                    .map(|(_, _, r)| r.to_vec())
                    .collect();
                if found.len() >= n {
                    return found;
                }
                assert!(
                    Instant::now() < deadline,
                    "timed out waiting for {n} records of kind {kind}"
                );
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }

    impl Drop for T {
        fn drop(&mut self) {
            unsafe { Manager::destroy(self.m) };
        }
    }

    fn u32_at(b: &[u8], off: usize) -> u32 {
        u32::from_le_bytes(b[off..off + 4].try_into().unwrap())
    }

    fn id_of(r: &[u8]) -> u64 {
        u32_at(r, 8) as u64 | (u32_at(r, 12) as u64) << 32
    }

    /// (slot, id, seq, target) of an HTTP record.
    fn request(r: &[u8]) -> (u32, u64, u32, String) {
        let (off, len) = (u32_at(r, 24) as usize, u32_at(r, 28) as usize);
        let target = String::from_utf8(r[off..off + len].to_vec()).unwrap();
        (u32_at(r, 16), id_of(r), u32_at(r, 20), target)
    }

    fn client(port: u16) -> TcpStream {
        let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s
    }

    fn read_exact(s: &mut TcpStream, n: usize) -> String {
        let mut buf = vec![0; n];
        s.read_exact(&mut buf).unwrap();
        String::from_utf8(buf).unwrap()
    }

    fn ok(status: u16, body: &str) -> String {
        format!(
            "HTTP/1.1 {status} OK\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
    }

    #[test]
    fn a_request_is_answered_with_the_exact_bytes() {
        let mut t = T::new();
        let (_, _, port) = t.listen();
        let mut s = client(port);
        s.write_all(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let r = t.wait(KIND_HTTP, 0, 1).remove(0);
        let (slot, id, seq, target) = request(&r);
        assert_eq!((seq, target.as_str()), (0, "/hello"));
        assert_eq!(t.m().core().awaiting(), 1);
        let res = t
            .m()
            .http(|h, core| h.reply(core, slot, id, seq, 200, REPLY_OWN_DATE, b"x-a: 1\r\n", b"hello"));
        assert_eq!(res, Ok(()));
        assert_eq!(t.m().core().awaiting(), 0);
        t.poll(); // flushes
        let want = "HTTP/1.1 200 OK\r\nx-a: 1\r\ncontent-length: 5\r\n\r\nhello";
        assert_eq!(read_exact(&mut s, want.len()), want);
        let [polls, accepted, requests, hits] = t.m().stats();
        assert!(polls >= 2);
        assert_eq!((accepted, requests, hits), (1, 1, 0));
        // Answering twice is a state error, not a second response.
        let again = t
            .m()
            .http(|h, core| h.reply(core, slot, id, seq, 200, 0, b"", b""));
        assert_eq!(again, Err(Status::State as i32));
    }

    #[test]
    fn pipelined_requests_answered_out_of_order_leave_in_order() {
        let mut t = T::new();
        let (_, _, port) = t.listen();
        let mut s = client(port);
        let get = |p: &str| format!("GET /{p} HTTP/1.1\r\nHost: x\r\n\r\n");
        s.write_all((get("a") + &get("b") + &get("c")).as_bytes())
            .unwrap();
        let reqs: Vec<_> = t.wait(KIND_HTTP, 0, 3).iter().map(|r| request(r)).collect();
        let targets: Vec<&str> = reqs.iter().map(|r| r.3.as_str()).collect();
        assert_eq!(targets, ["/a", "/b", "/c"]);
        assert_eq!(t.m().core().awaiting(), 3);
        let (slot, id) = (reqs[0].0, reqs[0].1);
        let reply = |t: &mut T, seq: u32, body: &str| {
            let r = t
                .m()
                .http(|h, core| h.reply(core, slot, id, seq, 200, REPLY_OWN_DATE, b"", body.as_bytes()));
            assert_eq!(r, Ok(()));
            t.poll();
        };
        reply(&mut t, 2, "c");
        // Nothing may leave before the answer to the first request.
        s.set_nonblocking(true).unwrap();
        let mut one = [0u8; 1];
        assert_eq!(s.read(&mut one).unwrap_err().kind(), ErrorKind::WouldBlock);
        s.set_nonblocking(false).unwrap();
        reply(&mut t, 0, "a");
        reply(&mut t, 1, "b");
        let want = ok(200, "a") + &ok(200, "b") + &ok(200, "c");
        assert_eq!(read_exact(&mut s, want.len()), want);
        assert_eq!(t.m().core().awaiting(), 0);
    }

    #[test]
    fn a_streamed_response_is_chunked_on_the_wire() {
        let mut t = T::new();
        let (_, _, port) = t.listen();
        let mut s = client(port);
        s.write_all(b"GET /s HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let (slot, id, _, _) = request(&t.wait(KIND_HTTP, 0, 1)[0]);
        let r = t.m().http(|h, core| {
            h.start(core, slot, id, SEQ_OLDEST, 200, REPLY_OWN_DATE, b"", None)?;
            h.write(core, slot, id, 0, b"abc")?;
            h.end(core, slot, id, 0, false)
        });
        assert_eq!(r, Ok(()));
        t.poll();
        let want = "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
        assert_eq!(read_exact(&mut s, want.len()), want);
    }

    #[test]
    fn a_closed_connection_is_refused_with_closed() {
        let mut t = T::new();
        let (_, _, port) = t.listen();
        let mut s = client(port);
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let (slot, id, seq, _) = request(&t.wait(KIND_HTTP, 0, 1)[0]);
        drop(s);
        t.wait(KIND_CLOSE, id, 1);
        // Its unanswered request no longer counts.
        assert_eq!(t.m().core().awaiting(), 0);
        let r = t
            .m()
            .http(|h, core| h.reply(core, slot, id, seq, 200, 0, b"", b"late"));
        assert_eq!(r, CLOSED);
        let r = t.m().http(|h, core| h.want_drain(core, slot, id, seq, 0));
        assert_eq!(r, Err(Status::Closed as i32));
        assert_eq!(t.m().core().close(slot, id, true), CLOSED);
    }

    #[test]
    fn listen_refuses_bad_urls_with_invalid() {
        let mut t = T::new();
        for url in [
            "ftp://127.0.0.1:0",
            "http://",
            "http://127.0.0.1:0/path",
            "127.0.0.1:0",
        ] {
            assert_eq!(t.m().listen(url), Err(Status::Invalid as i32), "{url}");
        }
    }

    #[test]
    fn shutdown_closes_an_idle_connection_gracefully() {
        let mut t = T::new();
        let (_, _, port) = t.listen();
        let mut s = client(port);
        let id = id_of(&t.wait(KIND_OPEN, 0, 1)[0]);
        assert_eq!(t.m().core().shutdown(), 1);
        t.poll();
        // Our FIN arrives (lingering close); the peer's close ends it.
        let mut buf = [0u8; 16];
        assert_eq!(s.read(&mut buf).unwrap(), 0);
        drop(s);
        t.wait(KIND_CLOSE, id, 1);
        assert_eq!(t.m().core().shutdown(), 0);
    }

    #[test]
    fn an_outbound_connection_carries_bytes_both_ways() {
        let mut t = T::new();
        let server = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = format!("tcp://{}", server.local_addr().unwrap());
        let (slot, id) = t.m().connect(&addr, None).unwrap();
        let open = t.wait(KIND_OPEN, id, 1).remove(0);
        assert_eq!(u32_at(&open, 16), slot);
        assert_eq!((u32_at(&open, 20), u32_at(&open, 24)), (0, 0)); // no listener
        let (mut peer, _) = server.accept().unwrap();
        peer.set_read_timeout(Some(Duration::from_secs(5))).unwrap();

        let queued = t.m().client(|cl, core| cl.send(core, slot, id, b"ping"));
        assert_eq!(queued, Ok(4));
        t.poll(); // flushes
        assert_eq!(read_exact(&mut peer, 4), "ping");

        peer.write_all(b"pong").unwrap();
        let data = t.wait(KIND_DATA, id, 1).remove(0);
        assert_eq!((u32_at(&data, 16), u32_at(&data, 20)), (slot, 4));
        assert_eq!(&data[24..], b"pong");
        assert_eq!(t.m().client(|cl, core| cl.ack(core, slot, id, 4)), Ok(false));
        assert_eq!(t.m().client(|cl, core| cl.want_drain(core, slot, id, 0)), Ok(0));

        // Each protocol refuses the other's connections.
        let r = t.m().http(|h, core| h.reply(core, slot, id, 0, 200, 0, b"", b""));
        assert_eq!(r, Err(Status::State as i32));

        drop(peer);
        t.wait(KIND_CLOSE, id, 1);
        let r = t.m().client(|cl, core| cl.send(core, slot, id, b"late"));
        assert_eq!(r, Err(Status::Closed as i32));
    }

    #[test]
    fn connect_refuses_a_bad_address_and_reports_a_refused_one() {
        let mut t = T::new();
        assert_eq!(
            t.m().connect("http://x", None).err(),
            Some(Status::Invalid as i32)
        );
        // A port nobody listens on: ERROR says why, then CLOSE.
        let free = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = format!("tcp://{}", free.local_addr().unwrap());
        drop(free);
        let (_, id) = t.m().connect(&addr, None).unwrap();
        t.wait(KIND_CLOSE, id, 1);
        let err = split_records(&t.events)
            .into_iter()
            .find(|&(k, i, _)| k == crate::core::event::KIND_ERROR && i == id)
            .map(|(_, _, r)| String::from_utf8_lossy(&r[24..]).into_owned())
            .expect("an ERROR record");
        assert!(err.contains("connect failed"), "{err}");
    }

    #[test]
    fn metrics_describe_every_value_and_count_a_request() {
        let mut t = T::new();
        t.m().set_metrics(true);
        let (_, _, port) = t.listen();
        let mut s = client(port);
        let req = b"GET /m HTTP/1.1\r\nHost: x\r\n\r\n";
        s.write_all(req).unwrap();
        let (slot, id, seq, _) = request(&t.wait(KIND_HTTP, 0, 1)[0]);
        let r = t
            .m()
            .http(|h, core| h.reply(core, slot, id, seq, 404, REPLY_OWN_DATE, b"", b"no"));
        assert_eq!(r, Ok(()));
        t.poll();
        let want = "HTTP/1.1 404 Not Found\r\ncontent-length: 2\r\n\r\nno";
        assert_eq!(read_exact(&mut s, want.len()), want);
        let families = t.m().metric_families();
        let mut values = Vec::new();
        t.m().read_metrics(&mut values);
        assert_eq!(families.iter().map(Family::slots).sum::<usize>(), values.len());
        let value = |name: &str, label: Option<&str>| {
            let mut at = 0;
            for f in &families {
                if f.name == name {
                    let i = label.map_or(0, |l| f.values.iter().position(|v| v == l).unwrap());
                    return values[at + i];
                }
                at += f.slots();
            }
            panic!("no family {name}");
        };
        assert_eq!(value("mgnet_http_requests_total", None), 1.0);
        assert_eq!(value("mgnet_http_responses_total", Some("404")), 1.0);
        assert_eq!(value("mgnet_http_responses_total", Some("200")), 0.0);
        assert_eq!(value("mgnet_connections_open", None), 1.0);
        assert_eq!(value("mgnet_received_bytes_total", None), req.len() as f64);
        assert_eq!(value("mgnet_sent_bytes_total", None), want.len() as f64);
        assert_eq!(value("mgnet_http_request_duration_seconds", Some("+Inf")), 1.0);
    }

    /// The native cost of metrics per request, measured rather than
    /// asserted (timing varies with the machine): a loopback client writes
    /// 32 pipelined GETs (then 1 per write), the manager parses and answers them, the client
    /// reads every response; blocks of 100 such cycles alternate metrics
    /// off and on, and the thread's CPU time per request is compared.
    /// `cargo test --release metrics_cost -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn metrics_cost_per_request() {
        metrics_cost(32, 100);
        metrics_cost(1, 1000);
    }

    fn metrics_cost(batch: usize, cycles: usize) {
        const BLOCKS: usize = 40;
        fn cpu_ns() -> u64 {
            let mut ts = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
            ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
        }
        let mut t = T::new();
        let (_, _, port) = t.listen();
        let mut s = client(port);
        let requests = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".repeat(batch);
        let resp = ok(200, "hello");
        let mut cycle = |t: &mut T| {
            s.write_all(&requests).unwrap();
            let mut answered = 0;
            while answered < batch {
                t.m().poll();
                let bytes = std::mem::take(&mut t.m().core().events.bytes);
                for (kind, _, r) in split_records(&bytes) {
                    if kind == KIND_HTTP {
                        let (slot, id, seq, _) = request(r);
                        let r = t
                            .m()
                            .http(|h, core| h.reply(core, slot, id, seq, 200, REPLY_OWN_DATE, b"", b"hello"));
                        assert_eq!(r, Ok(()));
                        answered += 1;
                    }
                }
            }
            t.m().poll(); // flushes
            assert_eq!(read_exact(&mut s, resp.len() * batch).len(), resp.len() * batch);
        };
        for _ in 0..cycles {
            cycle(&mut t); // warm-up
        }
        let (mut off, mut on) = (Vec::new(), Vec::new());
        for b in 0..BLOCKS * 2 {
            let metrics = b % 2 == 1;
            t.m().set_metrics(metrics);
            let start = cpu_ns();
            for _ in 0..cycles {
                cycle(&mut t);
            }
            let per = (cpu_ns() - start) as f64 / (cycles * batch) as f64;
            if metrics {
                on.push(per)
            } else {
                off.push(per)
            }
        }
        let med = |v: &mut Vec<f64>| {
            v.sort_by(|a, b| a.partial_cmp(b).unwrap());
            (v[v.len() / 2], v[0])
        };
        let ((off_med, off_min), (on_med, on_min)) = (med(&mut off), med(&mut on));
        eprintln!(
            "{batch} pipelined per write: thread CPU per request (server + loopback client), {BLOCKS} blocks each: metrics off median {off_med:.0} ns (min {off_min:.0}), on median {on_med:.0} ns (min {on_min:.0}): +{:.0} ns median, +{:.0} ns min",
            on_med - off_med,
            on_min - off_min
        );
        let latency = t.m().http(|h, _| h.latency.clone());
        let mut v = Vec::new();
        latency.read(&mut v);
        assert!(
            v[v.len() - 1] >= (BLOCKS * cycles * batch) as f64,
            "every request observed while on"
        );
    }
}
