//! Compiles the pinned Mongoose sources with the flags in `MONGOOSE_DEFINES`
//! and generates Rust bindings for its `mg_*` API into OUT_DIR.
//!
//! The sources come from `../vendor/mongoose/` (fetched and checksummed by
//! `vendor/mongoose/fetch.ts`, run by `deno task build`) or from the folder
//! named by `MGNET_MONGOOSE_DIR`.

use std::env;
use std::path::{Path, PathBuf};

/// Every compile-time setting of Mongoose, in one place. The same table feeds
/// the C compiler and bindgen, so struct layouts always agree.
const MONGOOSE_DEFINES: &[(&str, &str)] = &[
    // Logging is compiled out: the hot path must not format log lines, and
    // mgnet reports errors through its own events.
    ("MG_ENABLE_LOG", "0"),
    // TLS through mgnet's own backend (rustls, rust/src/tls/): Mongoose's
    // mg_tls_* calls land in Rust (docs/architecture.md, TLS section).
    ("MG_TLS", "MG_TLS_CUSTOM"),
    // Granularity of receive/send buffer growth. 16 KiB (the Linux default)
    // makes every idle keep-alive connection hold ~32 KiB; mgnet grows the
    // receive buffer itself while a large body arrives (see http/server.rs).
    ("MG_IO_SIZE", "2048"),
    // Hard cap of one connection's receive buffer. mgnet moves request
    // bodies out of it as they arrive and bounds heads itself, so this only
    // stops a peer that pipelines megabytes without reading replies.
    ("MG_MAX_RECV_SIZE", "(4UL * 1024UL * 1024UL)"),
    // Deno.serve uses 511; 128 drops connections in bursts (DESIGN 2).
    ("MG_SOCK_LISTEN_BACKLOG_SIZE", "1024"),
    // Used only by the HTTP client side parser; the server parser is mgnet's.
    ("MG_MAX_HTTP_HEADERS", "100"),
    ("MG_ENABLE_IPV6", "1"),
];

/// Function-like defines for the C compiler only (Mongoose's sources stay
/// unmodified): its socket reads and epoll waits go through mgnet's raw
/// system-call wrappers (`mgnet_sys_recv`, `mgnet_sys_epoll_wait` in
/// core/sys_io.rs; see docs/architecture.md section 5).
const MONGOOSE_CALL_DEFINES: &[(&str, &str)] = &[
    ("recv(a,b,c,d)", "mgnet_sys_recv(a,b,c,d)"),
    ("epoll_wait(a,b,c,d)", "mgnet_sys_epoll_wait(a,b,c,d)"),
];

fn main() {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let dir = match env::var("MGNET_MONGOOSE_DIR") {
        Ok(d) if !d.is_empty() => PathBuf::from(d),
        _ => manifest.join("..").join("vendor").join("mongoose"),
    };
    println!("cargo:rerun-if-env-changed=MGNET_MONGOOSE_DIR");
    println!("cargo:rerun-if-env-changed=MGNET_SANITIZE");
    let source = dir.join("mongoose.c");
    let header = dir.join("mongoose.h");
    for f in [&source, &header] {
        println!("cargo:rerun-if-changed={}", f.display());
        if !f.exists() {
            eprintln!(
                "error: {} is missing: run `deno task build` (it fetches the pinned Mongoose) \
                 or set MGNET_MONGOOSE_DIR to a folder with mongoose.c and mongoose.h",
                f.display()
            );
            std::process::exit(1);
        }
    }
    let version = mongoose_version(&header);
    println!("cargo:rustc-env=MGNET_MONGOOSE_VERSION={version}");
    println!(
        "cargo:warning=compiling Mongoose {version} from {}",
        dir.display()
    );

    let mut cc = cc::Build::new();
    cc.file(&source)
        .include(&dir)
        .opt_level(2)
        .warnings(false)
        .flag_if_supported("-fno-strict-aliasing");
    if env::var("MGNET_SANITIZE").as_deref() == Ok("address") {
        cc.flag("-fsanitize=address").flag("-fno-omit-frame-pointer");
    }
    for (k, v) in MONGOOSE_DEFINES.iter().chain(MONGOOSE_CALL_DEFINES) {
        cc.define(k, Some(*v));
    }
    cc.compile("mongoose");

    let mut bg = bindgen::Builder::default()
        .header(header.to_string_lossy())
        .allowlist_function("mg_.*")
        .allowlist_type("mg_.*")
        .allowlist_var("MG_.*")
        .allowlist_var("mg_boot_timestamp_ms")
        .default_enum_style(bindgen::EnumVariation::Consts)
        .prepend_enum_name(false)
        .layout_tests(false)
        .derive_default(true)
        .generate_comments(false);
    for (k, v) in MONGOOSE_DEFINES {
        bg = bg.clang_arg(format!("-D{k}={v}"));
    }
    let bindings = bg.generate().unwrap_or_else(|e| {
        eprintln!("error: bindgen could not read {}: {e}", header.display());
        std::process::exit(1);
    });
    let out = PathBuf::from(env::var("OUT_DIR").unwrap()).join("mongoose_sys.rs");
    bindings
        .write_to_file(&out)
        .expect("writing Mongoose bindings to OUT_DIR");
}

/// Reads `#define MG_VERSION "x.y"` from mongoose.h.
fn mongoose_version(header: &Path) -> String {
    let text = std::fs::read_to_string(header).unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("#define MG_VERSION "))
        .map(|v| v.trim().trim_matches('"').to_string())
        .unwrap_or_else(|| "unknown".to_string())
}
