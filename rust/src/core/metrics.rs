//! Metrics, protocol-free: how the core, each protocol and the facilities
//! above them describe their counters (families of u64 slots with names)
//! and copy them out in one call (`mgnet_metrics_read`). The Prometheus
//! text is made in TypeScript (`src/core/metrics.ts`) from a description
//! read once (`mgnet_metrics_describe`) and the values.
//!
//! Cost: plain counters are single adds to fields the code touches anyway
//! and are always kept (a branch to skip them would cost as much). What
//! costs is the clock a latency needs; it is read only while metrics are on
//! ([`Core::metrics_on`](super::Core)), once per poll and once per observed
//! event (docs/architecture.md, "Metrics").

use std::fmt::Write as _;

/// A family's Prometheus type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// One metric family: a name, its type and help, and its series. A series
/// is one value slot; a histogram has one per bucket (`le`, `+Inf` last)
/// then its sum and count.
#[derive(Clone, Debug)]
pub struct Family {
    pub name: &'static str,
    pub kind: Kind,
    pub help: &'static str,
    /// Label of the series (`""`: one unlabelled series; `le` for histograms).
    pub label: &'static str,
    /// One label value per series (empty for an unlabelled family).
    pub values: Vec<String>,
    /// Series that are 0 are left out of the text (labels that come and go
    /// with traffic, such as status codes).
    pub sparse: bool,
}

impl Family {
    /// An unlabelled counter or gauge.
    pub fn one(name: &'static str, kind: Kind, help: &'static str) -> Family {
        Family {
            name,
            kind,
            help,
            label: "",
            values: Vec::new(),
            sparse: false,
        }
    }

    /// A histogram over [`BUCKETS_NS`] (values in seconds).
    pub fn histogram(name: &'static str, help: &'static str) -> Family {
        let mut values: Vec<String> = BUCKETS_NS
            .iter()
            .map(|&ns| format!("{}", ns as f64 / 1e9))
            .collect();
        values.push("+Inf".into());
        Family {
            name,
            kind: Kind::Histogram,
            help,
            label: "le",
            values,
            sparse: false,
        }
    }

    /// Value slots this family takes.
    pub fn slots(&self) -> usize {
        match self.kind {
            Kind::Histogram => self.values.len() + 2,
            _ => self.values.len().max(1),
        }
    }

    /// Appends this family's description line: name, type, help, label,
    /// sparse flag and the label values, separated by tabs (values by
    /// commas). Help text has no tabs or newlines.
    pub fn describe(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "{}\t{}\t{}\t{}\t{}\t{}",
            self.name,
            self.kind.name(),
            self.help,
            self.label,
            u8::from(self.sparse),
            self.values.join(",")
        );
    }
}

/// Upper bounds of the latency histogram buckets, in nanoseconds: 10 µs to
/// 10 s, roughly 1-2.5-5 per decade.
pub const BUCKETS_NS: [u64; 19] = [
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
];

/// A fixed-bucket histogram of durations in nanoseconds.
#[derive(Clone, Debug, Default)]
pub struct Histogram {
    /// Observations per bucket (not cumulative); the last is `+Inf`.
    counts: [u64; BUCKETS_NS.len() + 1],
    sum_ns: u64,
}

impl Histogram {
    /// Records one duration.
    pub fn observe(&mut self, ns: u64) {
        // Most observations are short: a forward scan ends early.
        let i = BUCKETS_NS
            .iter()
            .position(|&b| ns <= b)
            .unwrap_or(BUCKETS_NS.len());
        self.counts[i] += 1;
        self.sum_ns = self.sum_ns.wrapping_add(ns);
    }

    /// Appends the cumulative bucket counts, the sum (seconds) and the
    /// count, as [`Family::histogram`] describes them.
    pub fn read(&self, out: &mut Vec<f64>) {
        let mut total = 0u64;
        for c in self.counts {
            total += c;
            out.push(total as f64);
        }
        out.push(self.sum_ns as f64 / 1e9);
        out.push(total as f64);
    }
}

/// The monotonic clock in nanoseconds (`CLOCK_MONOTONIC`, a vDSO call on
/// Linux: measured ~20 ns here, see the architecture notes). Never 0.
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(ts.tv_nsec as u64)
        | 1
}

/// A clock reading taken on first use: callers that may not need the time
/// (nothing to observe) do not pay for it.
#[derive(Default)]
pub struct Stamp(u64);

impl Stamp {
    /// The time ([`now_ns`]), read the first time it is asked for.
    pub fn get(&mut self) -> u64 {
        if self.0 == 0 {
            self.0 = now_ns();
        }
        self.0
    }

    /// The time if it was read, else 0.
    pub fn peek(&self) -> u64 {
        self.0
    }
}

/// The description text of `families` (one line each).
pub fn describe(families: &[Family]) -> String {
    let mut s = String::new();
    for f in families {
        f.describe(&mut s);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_histogram_is_cumulative_with_sum_and_count() {
        let mut h = Histogram::default();
        h.observe(5_000); // <= 10 µs
        h.observe(10_000); // <= 10 µs (bounds are inclusive)
        h.observe(30_000); // <= 50 µs
        h.observe(20_000_000_000); // +Inf
        let mut out = Vec::new();
        h.read(&mut out);
        assert_eq!(out.len(), BUCKETS_NS.len() + 3);
        assert_eq!(&out[..4], &[2.0, 2.0, 3.0, 3.0]);
        assert_eq!(out[BUCKETS_NS.len() - 1], 3.0); // le=10
        assert_eq!(out[BUCKETS_NS.len()], 4.0); // +Inf
        assert!((out[BUCKETS_NS.len() + 1] - 20.000045).abs() < 1e-9);
        assert_eq!(out[BUCKETS_NS.len() + 2], 4.0);
        assert_eq!(Family::histogram("h", "x").slots(), out.len());
    }

    #[test]
    fn descriptions_are_one_tab_separated_line_per_family() {
        let f = Family::one("a_total", Kind::Counter, "A thing.");
        let g = Family {
            name: "b",
            kind: Kind::Gauge,
            help: "B.",
            label: "code",
            values: vec!["1".into(), "2".into()],
            sparse: true,
        };
        assert_eq!(
            describe(&[f.clone(), g.clone()]),
            "a_total\tcounter\tA thing.\t\t0\t\nb\tgauge\tB.\tcode\t1\t1,2\n"
        );
        assert_eq!((f.slots(), g.slots()), (1, 2));
        assert_eq!(
            Family::histogram("h", "x").values.first().map(String::as_str),
            Some("0.00001")
        );
    }

    #[test]
    fn the_clock_moves_forward_and_costs_little() {
        let a = now_ns();
        let n = 1_000_000;
        let mut last = a;
        for _ in 0..n {
            let t = now_ns();
            assert!(t >= last);
            last = t;
        }
        let per = (last - a) / n;
        eprintln!("now_ns: {per} ns per call");
        assert!(per < 2_000, "{per} ns per clock read");
    }
}
