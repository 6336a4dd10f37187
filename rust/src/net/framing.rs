//! Splitting a TCP byte stream into frames, in Rust, so that JS never sees
//! a partial one: lines (`\n`, an `\r` before it is dropped too) or
//! length-prefixed frames (1, 2 or 4 bytes, big-endian, the prefix not
//! part of the frame). Every frame is checked against `max` before a byte
//! of it is buffered beyond what arrived: a prefix claiming 4 GB is refused
//! at once, nothing is allocated for it.

/// How a connection's input is cut into DATA records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// Whatever each read brought, as it came.
    Raw,
    /// One record per line, without its `\n` or `\r\n`.
    Line,
    /// One record per frame after a big-endian length prefix of 1, 2 or 4 bytes.
    Prefix(u8),
}

/// Framing plus the largest frame accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameSpec {
    pub framing: Framing,
    /// Largest frame in bytes (for lines: without the terminator).
    pub max: usize,
}

/// Default `maxFrame`: 64 KiB.
pub const DEFAULT_MAX_FRAME: usize = 64 * 1024;
/// Largest `maxFrame`: a frame and its prefix must stay under Mongoose's
/// `MG_MAX_RECV_SIZE` (4 MiB, rust/build.rs), which closes a connection
/// whose receive buffer reaches it.
pub const MAX_MAX_FRAME: usize = (4 << 20) - 8;

impl Default for FrameSpec {
    fn default() -> FrameSpec {
        FrameSpec {
            framing: Framing::Raw,
            max: DEFAULT_MAX_FRAME,
        }
    }
}

/// What [`split`] did with the input.
#[derive(Debug, PartialEq, Eq)]
pub struct Split {
    /// Bytes consumed (complete frames, with their prefixes or terminators).
    pub consumed: usize,
    /// Bytes the receive buffer must be able to hold for the next frame to
    /// complete (0: unknown, e.g. a line still without its end).
    pub need: usize,
}

impl FrameSpec {
    /// Cuts complete frames off the front of `input`, calling `emit` for
    /// each. A frame over `max` is an error (a message naming the limit);
    /// frames before it were emitted.
    pub fn split(&self, input: &[u8], emit: &mut impl FnMut(&[u8])) -> Result<Split, String> {
        match self.framing {
            Framing::Raw => {
                if !input.is_empty() {
                    emit(input);
                }
                Ok(Split {
                    consumed: input.len(),
                    need: 0,
                })
            }
            Framing::Line => {
                let mut at = 0;
                while let Some(nl) = memchr(b'\n', &input[at..]) {
                    let mut line = &input[at..at + nl];
                    if let [rest @ .., b'\r'] = line {
                        line = rest;
                    }
                    if line.len() > self.max {
                        return Err(self.line_error());
                    }
                    emit(line);
                    at += nl + 1;
                }
                // A line still without its end: over `max` already? (One
                // byte more is allowed: it may be the `\r` of a `\r\n`.)
                if input.len() - at > self.max + 1 {
                    return Err(self.line_error());
                }
                Ok(Split {
                    consumed: at,
                    need: 0,
                })
            }
            Framing::Prefix(n) => {
                let n = n as usize;
                let mut at = 0;
                loop {
                    let rest = &input[at..];
                    if rest.len() < n {
                        return Ok(Split {
                            consumed: at,
                            need: n,
                        });
                    }
                    let len = rest[..n].iter().fold(0u64, |a, &b| a << 8 | b as u64);
                    if len > self.max as u64 {
                        return Err(format!(
                            "a frame of {len} bytes is over maxFrame ({} bytes)",
                            self.max
                        ));
                    }
                    let total = n + len as usize;
                    if rest.len() < total {
                        return Ok(Split {
                            consumed: at,
                            need: total,
                        });
                    }
                    emit(&rest[n..total]);
                    at += total;
                }
            }
        }
    }

    fn line_error(&self) -> String {
        format!("a line over maxFrame ({} bytes)", self.max)
    }

    /// The most bytes a partial frame can occupy in the receive buffer.
    pub fn frame_cap(&self) -> usize {
        match self.framing {
            Framing::Raw => 0,
            Framing::Line => self.max + 2,
            Framing::Prefix(n) => self.max + n as usize,
        }
    }
}

fn memchr(b: u8, s: &[u8]) -> Option<usize> {
    s.iter().position(|&x| x == b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(spec: FrameSpec, input: &[u8]) -> (Result<Split, String>, Vec<Vec<u8>>) {
        let mut out = Vec::new();
        let r = spec.split(input, &mut |f| out.push(f.to_vec()));
        (r, out)
    }

    fn line(max: usize) -> FrameSpec {
        FrameSpec {
            framing: Framing::Line,
            max,
        }
    }

    fn prefix(n: u8, max: usize) -> FrameSpec {
        FrameSpec {
            framing: Framing::Prefix(n),
            max,
        }
    }

    #[test]
    fn lines_are_cut_at_lf_and_crlf_and_a_partial_one_waits() {
        let (r, out) = run(line(100), b"a\r\nbb\n\nccc");
        assert_eq!(r, Ok(Split { consumed: 7, need: 0 }));
        assert_eq!(out, [&b"a"[..], b"bb", b""]);
    }

    #[test]
    fn a_line_over_max_is_refused_complete_or_not() {
        // Exactly max: fine, with either terminator.
        assert_eq!(run(line(3), b"abc\r\n").1, [b"abc"]);
        assert!(run(line(3), b"abcd\n").0.is_err());
        // Partial: max + 1 may still be "abc\r"; max + 2 cannot fit.
        assert_eq!(run(line(3), b"abc\r").0.unwrap().consumed, 0);
        let (r, out) = run(line(3), b"ok\nabcde");
        assert_eq!(r, Err("a line over maxFrame (3 bytes)".to_string()));
        assert_eq!(out, [b"ok"]);
    }

    #[test]
    fn prefixed_frames_of_each_width() {
        assert_eq!(run(prefix(1, 10), b"\x02hi\x00\x01").1, [&b"hi"[..], b""]);
        let (r, out) = run(prefix(2, 10), b"\x00\x03abc\x00\x05ab");
        assert_eq!(out, [b"abc"]);
        assert_eq!(r, Ok(Split { consumed: 5, need: 7 }));
        let (r, out) = run(prefix(4, 10), b"\x00\x00");
        assert!(out.is_empty());
        assert_eq!(r, Ok(Split { consumed: 0, need: 4 }));
    }

    #[test]
    fn a_prefix_over_max_is_refused_before_its_bytes_arrive() {
        let (r, out) = run(prefix(4, 65536), b"\x00\x00\x00\x01x\xff\xff\xff\xff");
        assert_eq!(out, [b"x"]);
        assert_eq!(
            r,
            Err("a frame of 4294967295 bytes is over maxFrame (65536 bytes)".to_string())
        );
        // Exactly max is accepted.
        let mut input = vec![0, 0, 0, 4];
        input.extend_from_slice(b"abcd");
        assert_eq!(run(prefix(4, 4), &input).1, [b"abcd"]);
    }

    #[test]
    fn raw_passes_everything() {
        let (r, out) = run(FrameSpec::default(), b"x\ny");
        assert_eq!(r.unwrap().consumed, 3);
        assert_eq!(out, [b"x\ny"]);
        assert!(run(FrameSpec::default(), b"").1.is_empty());
    }
}
