//! The exports as `src/ffi.ts` calls them: handles, statuses, buffers.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use super::*;
use crate::core::event::split_records;
use crate::http::record::KIND_HTTP;

const BAD: i32 = Status::BadHandle as i32;

fn last_error() -> String {
    let mut buf = [0u8; 256];
    let n = unsafe { mgnet_last_error(buf.as_mut_ptr(), buf.len() as u32) } as usize;
    String::from_utf8_lossy(&buf[..n.min(256)]).into_owned()
}

fn new_manager() -> u32 {
    let h = mgnet_manager_new(0, 0, 0, 0.0, -1.0);
    assert!(h > 0, "{}", last_error());
    h as u32
}

fn listen(h: u32, url: &str) -> (i32, [u8; 16]) {
    let mut out = [0u8; 16];
    let r = unsafe { mgnet_listen(h, url.as_ptr(), url.len() as u32, out.as_mut_ptr()) };
    (r, out)
}

#[test]
fn every_export_refuses_a_bad_handle() {
    let h = 0xdead;
    let mut buf = [0u8; 64];
    let p = buf.as_mut_ptr();
    unsafe {
        assert_eq!(mgnet_poll(h, p, 0, 64), BAD);
        assert_eq!(mgnet_take(h, p, 64), BAD);
        assert_eq!(mgnet_listen(h, b"http://127.0.0.1:0".as_ptr(), 18, p), BAD);
        assert_eq!(mgnet_http_reply(h, 0, 1.0, 0, 200, 0, p, 0, p, 0, 0), BAD);
        assert_eq!(mgnet_http_start(h, 0, 1.0, 0, 200, 0, p, 0, -1.0), BAD);
        assert_eq!(mgnet_http_write(h, 0, 1.0, 0, p, 0, 1), BAD);
        assert_eq!(mgnet_send(h, 0, 1.0, p, 0, 1), BAD);
        assert_eq!(mgnet_cache_set(h, p, 1, 200, p, 0, p, 0, p, 0, 0.0, p, 0), BAD);
        assert_eq!(mgnet_cache_delete(h, p, 1), BAD);
        assert_eq!(mgnet_cache_invalidate(h, p, 0), BAD);
        assert_eq!(mgnet_stats(h, p), BAD);
    }
    assert_eq!(mgnet_http_end(h, 0, 1.0, 0, 0), BAD);
    assert_eq!(mgnet_want_drain(h, 0, 1.0, 0, 0), BAD);
    assert_eq!(mgnet_body_ack(h, 0, 1.0, 0), BAD);
    assert_eq!(mgnet_client_ack(h, 0, 1.0, 0), BAD);
    assert_eq!(mgnet_client_want_drain(h, 0, 1.0, 0), BAD);
    assert_eq!(mgnet_close(h, 0, 1.0, 0), BAD);
    assert_eq!(mgnet_shutdown(h), BAD);
    assert_eq!(mgnet_flush(h), BAD);
    assert_eq!(mgnet_wake(h), BAD);
    assert_eq!(mgnet_wait_fd(h), BAD);
    assert_eq!(mgnet_next_timeout(h), BAD);
    assert_eq!(mgnet_awaiting(h), BAD);
    assert_eq!(mgnet_manager_free(0), BAD);
    assert_eq!(last_error(), "manager 0 is closed");
}

#[test]
fn a_freed_handle_stays_bad() {
    let h = new_manager();
    assert_eq!(mgnet_manager_free(h), 0);
    assert_eq!(mgnet_manager_free(h), BAD);
    assert_eq!(mgnet_awaiting(h), BAD);
    // Handles are not reused.
    let h2 = new_manager();
    assert_ne!(h2, h);
    assert_eq!(mgnet_manager_free(h2), 0);
}

#[test]
fn a_panic_inside_boundary_becomes_status_panic() {
    let r = boundary(|| panic!("deliberate test panic"));
    assert_eq!(r, Status::Panic as i32);
    assert_eq!(last_error(), "internal error (panic) in mgnet");
    // A manager's calls go through the same boundary.
    let h = new_manager();
    assert_eq!(
        with_manager(h, |_| panic!("deliberate test panic")),
        Status::Panic as i32
    );
    assert_eq!(mgnet_awaiting(h), 0);
    assert_eq!(mgnet_manager_free(h), 0);
}

#[test]
fn arguments_are_validated() {
    assert_eq!(
        mgnet_manager_new(0, 100_000, 0, 0.0, -1.0),
        Status::Invalid as i32
    );
    assert!(last_error().starts_with("maxHeaders is at most"));
    let h = new_manager();
    assert_eq!(listen(h, "ftp://127.0.0.1:0").0, Status::Invalid as i32);
    assert_eq!(listen(h, "http://127.0.0.1:0/x").0, Status::Invalid as i32);
    let bad_utf8 = [b'h', 0xff];
    let mut out = [0u8; 16];
    let r = unsafe { mgnet_listen(h, bad_utf8.as_ptr(), 2, out.as_mut_ptr()) };
    assert_eq!(r, Status::Invalid as i32);
    assert_eq!(mgnet_close(h, 0, 1.0, 0), Status::Closed as i32);
    unsafe {
        assert_eq!(mgnet_stats(h, std::ptr::null_mut()), Status::Invalid as i32);
        let t = b"/x";
        assert_eq!(
            mgnet_cache_set(
                h,
                t.as_ptr(),
                2,
                99,
                t.as_ptr(),
                0,
                t.as_ptr(),
                0,
                t.as_ptr(),
                0,
                0.0,
                t.as_ptr(),
                0
            ),
            Status::Invalid as i32
        );
    }
    assert_eq!(mgnet_manager_free(h), 0);
}

#[test]
fn a_request_round_trip_through_the_exports() {
    let h = new_manager();
    let (slot, out) = listen(h, "http://127.0.0.1:0");
    assert!(slot >= 0, "{}", last_error());
    let port = u16::from_le_bytes([out[8], out[9]]);
    assert!(f64::from_le_bytes(out[..8].try_into().unwrap()) > 0.0);
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc")
        .unwrap();

    // Poll with no room first: the length is reported, nothing copied;
    // mgnet_take then copies the same batch.
    let mut buf = vec![0u8; 1 << 16];
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut records = Vec::new();
    while !records
        .iter()
        .any(|&(k, _, _): &(u8, u64, Vec<u8>)| k == KIND_HTTP)
    {
        assert!(Instant::now() < deadline, "timed out waiting for the request");
        let n = unsafe { mgnet_poll(h, buf.as_mut_ptr(), 0, 0) };
        assert!(n >= 0);
        if n > 0 {
            let taken = unsafe { mgnet_take(h, buf.as_mut_ptr(), buf.len() as u32) };
            assert_eq!(taken, n);
            records.extend(
                split_records(&buf[..n as usize])
                    .into_iter()
                    .map(|(k, id, r)| (k, id, r.to_vec())),
            );
        } else {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    let (_, id, r) = records.iter().find(|r| r.0 == KIND_HTTP).unwrap();
    let (slot, seq) = (
        u32::from_le_bytes(r[16..20].try_into().unwrap()),
        u32::from_le_bytes(r[20..24].try_into().unwrap()),
    );
    assert_eq!(mgnet_awaiting(h), 1);
    let head = b"x-a: 1\r\n";
    let body = b"..abc..";
    let rc = unsafe {
        mgnet_http_reply(
            h,
            slot,
            *id as f64,
            seq,
            201,
            http::REPLY_OWN_DATE,
            head.as_ptr(),
            head.len() as u32,
            body.as_ptr(),
            2,
            3,
        )
    };
    assert_eq!(rc, 0, "{}", last_error());
    assert_eq!(mgnet_flush(h), 0);
    let want = "HTTP/1.1 201 Created\r\nx-a: 1\r\ncontent-length: 3\r\n\r\nabc";
    let mut got = vec![0u8; want.len()];
    s.read_exact(&mut got).unwrap();
    assert_eq!(String::from_utf8(got).unwrap(), want);

    let mut stats = [0u8; 32];
    assert_eq!(unsafe { mgnet_stats(h, stats.as_mut_ptr()) }, 0);
    let stat = |i: usize| f64::from_le_bytes(stats[i * 8..i * 8 + 8].try_into().unwrap());
    assert_eq!((stat(1), stat(2), stat(3)), (1.0, 1.0, 0.0));
    assert!(mgnet_wait_fd(h) >= 0);
    assert_eq!(mgnet_wake(h), 0);
    assert_eq!(mgnet_wait(mgnet_wait_fd(h), 1000), 1);
    assert_eq!(mgnet_manager_free(h), 0);
}

#[test]
fn metrics_exports_describe_then_read_every_value_and_refuse_a_bad_handle() {
    let h = new_manager();
    assert_eq!(mgnet_metrics_enable(h, 1), 0);
    // A zero-capacity call tells the length; nothing is written.
    let len = unsafe { mgnet_metrics_describe(h, std::ptr::null_mut(), 0) };
    assert!(len > 100, "{len}");
    let mut text = vec![0u8; len as usize];
    assert_eq!(
        unsafe { mgnet_metrics_describe(h, text.as_mut_ptr(), len as u32) },
        len
    );
    let text = String::from_utf8(text).unwrap();
    let families = text.lines().count();
    assert!(text.lines().all(|l| l.split('\t').count() == 6), "{text}");
    assert!(text.starts_with("mgnet_connections_open\tgauge\t"), "{text}");
    // Values: one per slot; a short buffer gets what fits and the full count.
    let n = unsafe { mgnet_metrics_read(h, std::ptr::null_mut(), 0) };
    assert!(n as usize > families, "{n} values for {families} families");
    let mut one = [0xffu8; 16];
    assert_eq!(unsafe { mgnet_metrics_read(h, one.as_mut_ptr(), 1) }, n);
    assert_eq!(f64::from_le_bytes(one[..8].try_into().unwrap()), 0.0); // no connection open
    assert_eq!(one[8..], [0xff; 8]); // nothing past the capacity
    assert_eq!(mgnet_metrics_enable(h, 0), 0);
    assert_eq!(mgnet_manager_free(h), 0);
    assert_eq!(mgnet_metrics_enable(h, 1), BAD);
    assert_eq!(unsafe { mgnet_metrics_describe(h, one.as_mut_ptr(), 16) }, BAD);
    assert_eq!(unsafe { mgnet_metrics_read(h, one.as_mut_ptr(), 2) }, BAD);
}
