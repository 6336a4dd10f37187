//! TLS settings, parsed once: a listener's server configuration (built
//! when it starts listening and shared by every connection it accepts,
//! replaced whole by a reload) and client configurations shared per set of
//! (CA, client certificate, insecure, ALPN). Errors name what was wrong
//! (which PEM, which key format, a key that does not match).

use std::any::Any;
use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{
    ClientConfig, ClientConnection, Connection, DigitallySignedStruct, RootCertStore, ServerConfig,
};
use rustls::{ServerConnection, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

use super::conn::attach;
use crate::core::transport::Transport;
use crate::sys;

/// Field tags of a settings buffer (`src/core/abi.ts`'s `TlsField`): each
/// field is `[u32 tag][u32 len][len bytes]`, little-endian.
pub mod tag {
    /// Our certificate chain (PEM, or one DER certificate).
    pub const CERT: u32 = 1;
    /// Our private key (PEM: PKCS#8, PKCS#1 or SEC1; or DER).
    pub const KEY: u32 = 2;
    /// Trusted CA certificates (PEM bundle or one DER).
    pub const CA: u32 = 3;
    /// Server: ask for and verify a client certificate (needs CA).
    pub const REQUEST_CERT: u32 = 4;
    /// Server: starts a host name entry; the CERT and KEY after it are its.
    pub const SNI: u32 = 5;
    /// An ALPN protocol to offer or accept (repeatable, in order).
    pub const ALPN: u32 = 6;
    /// Client: the server name (SNI and verification).
    pub const NAME: u32 = 7;
    /// Client: skip certificate and host name verification.
    pub const INSECURE: u32 = 8;
}

/// TLS settings as they came from JS.
#[derive(Default)]
pub struct Spec {
    pub cert: Vec<u8>,
    pub key: Vec<u8>,
    pub ca: Vec<u8>,
    pub request_cert: bool,
    /// (host name, cert, key)
    pub sni: Vec<(String, Vec<u8>, Vec<u8>)>,
    pub alpn: Vec<Vec<u8>>,
    pub name: String,
    pub insecure: bool,
}

impl Spec {
    /// Parses a settings buffer (see [`tag`]).
    pub fn parse(mut b: &[u8]) -> Result<Spec, String> {
        let mut s = Spec::default();
        while !b.is_empty() {
            if b.len() < 8 {
                return Err("TLS settings: truncated field".into());
            }
            let t = u32::from_le_bytes(b[0..4].try_into().unwrap());
            let n = u32::from_le_bytes(b[4..8].try_into().unwrap()) as usize;
            let v = b.get(8..8 + n).ok_or("TLS settings: truncated field")?.to_vec();
            b = &b[8 + n..];
            match (t, s.sni.last_mut()) {
                (tag::CERT, Some(e)) => e.1 = v,
                (tag::KEY, Some(e)) => e.2 = v,
                (tag::CERT, None) => s.cert = v,
                (tag::KEY, None) => s.key = v,
                (tag::CA, _) => s.ca = v,
                (tag::REQUEST_CERT, _) => s.request_cert = true,
                (tag::SNI, _) => {
                    let name = String::from_utf8(v).map_err(|_| "TLS settings: host name is not UTF-8")?;
                    s.sni.push((name.to_ascii_lowercase(), Vec::new(), Vec::new()));
                }
                (tag::ALPN, _) => s.alpn.push(v),
                (tag::NAME, _) => {
                    s.name = String::from_utf8(v).map_err(|_| "TLS settings: name is not UTF-8")?
                }
                (tag::INSECURE, _) => s.insecure = true,
                _ => return Err(format!("TLS settings: unknown field {t}")),
            }
        }
        Ok(s)
    }
}

/// The crypto provider (ring), made once per process.
fn provider() -> Arc<CryptoProvider> {
    static P: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    P.get_or_init(|| {
        // AES-128-GCM with SHA-256 first (servers pick it over the client's
        // preference, see `server_config`): clients such as OpenSSL's list
        // AES-256-GCM-SHA384 first, and SHA-384 over the handshake
        // transcript cost ~10% of a full handshake (perf, bench:https).
        let mut p = rustls::crypto::ring::default_provider();
        p.cipher_suites.sort_by_key(|s| match s.suite() {
            rustls::CipherSuite::TLS13_AES_128_GCM_SHA256 => 0,
            rustls::CipherSuite::TLS13_CHACHA20_POLY1305_SHA256 => 1,
            rustls::CipherSuite::TLS13_AES_256_GCM_SHA384 => 2,
            _ => 3,
        });
        Arc::new(p)
    })
    .clone()
}

fn is_der(b: &[u8]) -> bool {
    b.first() == Some(&0x30)
}

/// A certificate chain from PEM (or one DER certificate). `what` names it
/// in errors.
pub fn certs(b: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    if b.is_empty() {
        return Err(format!("{what}: empty"));
    }
    if is_der(b) {
        return Ok(vec![CertificateDer::from(b.to_vec())]);
    }
    let mut out = Vec::new();
    for c in CertificateDer::pem_slice_iter(b) {
        out.push(c.map_err(|e| format!("{what}: bad PEM ({e})"))?);
    }
    if out.is_empty() {
        return Err(format!("{what}: no CERTIFICATE block in the PEM"));
    }
    Ok(out)
}

/// A private key from PEM (PKCS#8, PKCS#1 RSA or SEC1 EC) or DER.
pub fn private_key(b: &[u8]) -> Result<PrivateKeyDer<'static>, String> {
    if b.is_empty() {
        return Err("key: empty".into());
    }
    if is_der(b) {
        return PrivateKeyDer::try_from(b.to_vec()).map_err(|e| format!("key: {e}"));
    }
    let text = String::from_utf8_lossy(b);
    if text.contains("ENCRYPTED PRIVATE KEY") || text.contains("Proc-Type: 4,ENCRYPTED") {
        return Err(
            "key: encrypted PEM keys are not supported (decrypt it first, e.g. `openssl pkey`)".into(),
        );
    }
    PrivateKeyDer::from_pem_slice(b).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => {
            "key: no PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY block in the PEM".to_string()
        }
        e => format!("key: bad PEM ({e})"),
    })
}

/// A certificate chain with its key, checked to match.
fn certified(cert: &[u8], key: &[u8], what: &str) -> Result<Arc<CertifiedKey>, String> {
    let chain = certs(cert, &format!("{what}cert"))?;
    let key = private_key(key).map_err(|e| format!("{what}{e}"))?;
    let signing = provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| format!("{what}key: unsupported ({e})"))?;
    let ck = CertifiedKey::new(chain, signing);
    match ck.keys_match() {
        Ok(()) => Ok(Arc::new(ck)),
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => Ok(Arc::new(ck)),
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            Err(format!("{what}key does not match the certificate"))
        }
        Err(e) => Err(format!("{what}cert: {e}")),
    }
}

fn roots(ca: &[u8]) -> Result<RootCertStore, String> {
    let mut store = RootCertStore::empty();
    let (added, _) = store.add_parsable_certificates(certs(ca, "ca")?);
    if added == 0 {
        return Err("ca: no usable CA certificate".into());
    }
    Ok(store)
}

/// Picks the certificate by the name the client asked for (SNI): exact
/// match, then a `*.` wildcard entry, then the default.
#[derive(Debug)]
struct Sni {
    default: Option<Arc<CertifiedKey>>,
    names: HashMap<String, Arc<CertifiedKey>>,
}

impl ResolvesServerCert for Sni {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        if let Some(name) = hello.server_name() {
            let name = name.to_ascii_lowercase();
            if let Some(k) = self.names.get(&name) {
                return Some(k.clone());
            }
            if let Some((_, rest)) = name.split_once('.') {
                if let Some(k) = self.names.get(&format!("*.{rest}")) {
                    return Some(k.clone());
                }
            }
        }
        self.default.clone()
    }
}

/// Builds a listener's server configuration (parsed and checked here, once).
pub fn server_config(s: &Spec) -> Result<Arc<ServerConfig>, String> {
    let default = if s.cert.is_empty() && s.key.is_empty() && !s.sni.is_empty() {
        None
    } else {
        Some(certified(&s.cert, &s.key, "")?)
    };
    let mut names = HashMap::new();
    for (name, cert, key) in &s.sni {
        names.insert(name.clone(), certified(cert, key, &format!("sni[{name:?}] "))?);
    }
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = if s.request_cert {
        if s.ca.is_empty() {
            return Err("requestCert needs ca (the CAs client certificates must chain to)".into());
        }
        let v = WebPkiClientVerifier::builder_with_provider(Arc::new(roots(&s.ca)?), provider())
            .build()
            .map_err(|e| format!("ca: {e}"))?;
        builder.with_client_cert_verifier(v)
    } else {
        builder.with_no_client_auth()
    };
    let mut cfg = builder.with_cert_resolver(Arc::new(Sni { default, names }));
    cfg.alpn_protocols = s.alpn.clone();
    cfg.ignore_client_order = true;
    // Resumption: stateless tickets (TLS 1.3 and 1.2) plus rustls' default
    // in-memory session cache (256 sessions) for session ids.
    cfg.ticketer = rustls::crypto::ring::Ticketer::new().map_err(|e| e.to_string())?;
    cfg.send_tls13_tickets = 1;
    Ok(Arc::new(cfg))
}

/// A listener's TLS: one shared configuration; [`Transport::start`] makes
/// a rustls connection from it for each accepted connection.
pub struct ServerTls {
    pub config: Arc<ServerConfig>,
}

impl Transport for ServerTls {
    unsafe fn start(&self, c: *mut sys::mg_connection) -> Result<(), String> {
        let conn = ServerConnection::new(self.config.clone()).map_err(|e| e.to_string())?;
        attach(c, Connection::Server(conn));
        Ok(())
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

/// Accepts any server certificate (`insecure: true`), still checking the
/// handshake signatures with the provider's algorithms.
#[derive(Debug)]
struct NoVerify(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Most client configurations kept (each holds a parsed CA set).
const CLIENT_CONFIGS: usize = 16;

thread_local! {
    /// Client configurations by a hash of their settings, most recent last.
    static CLIENTS: RefCell<Vec<(u64, Arc<ClientConfig>)>> = const { RefCell::new(Vec::new()) };
}

/// The client configuration for these settings, shared by every connection
/// made with the same ones (rustls' session cache in it gives resumption).
pub fn client_config(s: &Spec) -> Result<Arc<ClientConfig>, String> {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (&s.ca, &s.cert, &s.key, s.insecure, &s.alpn).hash(&mut h);
    let key = h.finish();
    if let Some(c) = CLIENTS.with(|m| m.borrow().iter().find(|e| e.0 == key).map(|e| e.1.clone())) {
        return Ok(c);
    }
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = if s.insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(provider())))
    } else {
        if s.ca.is_empty() {
            return Err("no CA certificates to verify the server with".into());
        }
        builder.with_root_certificates(roots(&s.ca)?)
    };
    let mut cfg = if s.cert.is_empty() && s.key.is_empty() {
        builder.with_no_client_auth()
    } else {
        let ck = certified(&s.cert, &s.key, "client ")?;
        builder
            .with_client_auth_cert(ck.cert.clone(), private_key(&s.key)?)
            .map_err(|e| format!("client cert: {e}"))?
    };
    cfg.alpn_protocols = s.alpn.clone();
    let cfg = Arc::new(cfg);
    CLIENTS.with(|m| {
        let mut m = m.borrow_mut();
        if m.len() >= CLIENT_CONFIGS {
            m.remove(0);
        }
        m.push((key, cfg.clone()));
    });
    Ok(cfg)
}

/// An outbound connection's TLS: the shared configuration and the server
/// name (always sent as SNI when it is a host name; verified unless
/// insecure).
pub struct ClientTls {
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
}

impl ClientTls {
    /// Settings for one outbound connection.
    pub fn new(s: &Spec) -> Result<ClientTls, String> {
        let name = if s.name.is_empty() {
            "localhost"
        } else {
            s.name.as_str()
        };
        let name = ServerName::try_from(name.trim_start_matches('[').trim_end_matches(']').to_string())
            .map_err(|_| format!("invalid server name {:?}", s.name))?;
        Ok(ClientTls {
            config: client_config(s)?,
            name,
        })
    }
}

impl Transport for ClientTls {
    unsafe fn start(&self, c: *mut sys::mg_connection) -> Result<(), String> {
        let conn =
            ClientConnection::new(self.config.clone(), self.name.clone()).map_err(|e| e.to_string())?;
        attach(c, Connection::Client(conn));
        Ok(())
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

/// A self-signed certificate and its key (PEM) for `names`, generated in
/// process (P-256). For examples and development only.
pub fn self_signed(names: Vec<String>) -> Result<(String, String), String> {
    let ck = rcgen::generate_simple_self_signed(names).map_err(|e| e.to_string())?;
    Ok((ck.cert.pem(), ck.key_pair.serialize_pem()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(out: &mut Vec<u8>, t: u32, v: &[u8]) {
        out.extend_from_slice(&t.to_le_bytes());
        out.extend_from_slice(&(v.len() as u32).to_le_bytes());
        out.extend_from_slice(v);
    }

    #[test]
    fn spec_parses_fields_and_sni_entries() {
        let mut b = Vec::new();
        field(&mut b, tag::CERT, b"c");
        field(&mut b, tag::KEY, b"k");
        field(&mut b, tag::REQUEST_CERT, b"");
        field(&mut b, tag::SNI, b"Api.Example");
        field(&mut b, tag::CERT, b"c2");
        field(&mut b, tag::KEY, b"k2");
        field(&mut b, tag::ALPN, b"http/1.1");
        let s = Spec::parse(&b).unwrap();
        assert_eq!((s.cert.as_slice(), s.key.as_slice()), (&b"c"[..], &b"k"[..]));
        assert!(s.request_cert);
        assert_eq!(
            s.sni,
            vec![("api.example".to_string(), b"c2".to_vec(), b"k2".to_vec())]
        );
        assert_eq!(s.alpn, vec![b"http/1.1".to_vec()]);
        assert!(Spec::parse(&b[..b.len() - 1])
            .err()
            .unwrap()
            .contains("truncated"));
        let mut bad = Vec::new();
        field(&mut bad, 99, b"");
        assert_eq!(Spec::parse(&bad).err().unwrap(), "TLS settings: unknown field 99");
    }

    #[test]
    fn server_config_checks_pem_and_key_match() {
        let (cert, key) = self_signed(vec!["localhost".into()]).unwrap();
        let (_, other_key) = self_signed(vec!["other".into()]).unwrap();
        let spec = |c: &str, k: &str| Spec {
            cert: c.as_bytes().to_vec(),
            key: k.as_bytes().to_vec(),
            ..Default::default()
        };
        assert!(server_config(&spec(&cert, &key)).is_ok());
        assert_eq!(
            server_config(&spec(&cert, &other_key)).err().unwrap(),
            "key does not match the certificate"
        );
        assert!(server_config(&spec("junk", &key))
            .err()
            .unwrap()
            .starts_with("cert: no CERTIFICATE"));
        assert!(server_config(&spec(&cert, "junk"))
            .err()
            .unwrap()
            .starts_with("key: no PRIVATE KEY"));
        let enc = "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n";
        assert!(server_config(&spec(&cert, enc))
            .err()
            .unwrap()
            .contains("encrypted PEM keys are not supported"));
        let mut s = spec(&cert, &key);
        s.request_cert = true;
        assert!(server_config(&s)
            .err()
            .unwrap()
            .starts_with("requestCert needs ca"));
    }

    #[test]
    fn client_configs_are_shared_per_settings() {
        let (cert, _) = self_signed(vec!["localhost".into()]).unwrap();
        let s = Spec {
            ca: cert.into_bytes(),
            ..Default::default()
        };
        let a = client_config(&s).unwrap();
        let b = client_config(&s).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        let insecure = Spec {
            insecure: true,
            ..Default::default()
        };
        assert!(!Arc::ptr_eq(&a, &client_config(&insecure).unwrap()));
        assert!(client_config(&Spec::default())
            .err()
            .unwrap()
            .starts_with("no CA certificates"));
    }
}
