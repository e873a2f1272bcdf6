//! From samples to figures: the timer-read cost taken off, then minimum, median, 99th
//! percentile and mean, per operation; and the `BENCH {json}` line the host parses.

use core::fmt;

/// The figures of one measured run, in TSC units per sample (read cost subtracted).
#[derive(Clone, Copy, Debug)]
pub struct Stats {
    pub iterations: usize,
    /// Operations in one sample: the figures printed are per operation.
    pub ops: u64,
    pub min: u64,
    pub median: u64,
    pub p99: u64,
    pub sum: u64,
    /// Timer ticks (interrupts) that fell within the measured run, counted by the kernel's
    /// tick counter before and after it: an upper bound on the samples they disturbed.
    pub timer_ticks: u64,
}

impl Stats {
    /// Sorts `samples` in place and summarises them.
    pub fn of(samples: &mut [u64], overhead: u64, ops: u64, timer_ticks: u64) -> Stats {
        for sample in samples.iter_mut() {
            *sample = sample.saturating_sub(overhead);
        }
        samples.sort_unstable();
        Stats {
            iterations: samples.len(),
            ops,
            min: samples.first().copied().unwrap_or(0),
            median: percentile(samples, 50),
            p99: percentile(samples, 99),
            sum: samples.iter().sum(),
            timer_ticks,
        }
    }

    /// The result line: `BENCH {"name":..,"iterations":..,"min":..,..}`.
    pub fn line<'a>(&'a self, name: &'a str) -> impl fmt::Display + 'a {
        BenchLine { name, stats: self }
    }
}

/// The nearest-rank percentile of sorted samples: the smallest sample with at least
/// `percent`% of all samples at or below it.
fn percentile(sorted: &[u64], percent: usize) -> u64 {
    let rank = (sorted.len() * percent).div_ceil(100).max(1);
    sorted.get(rank - 1).copied().unwrap_or(0)
}

struct BenchLine<'a> {
    name: &'a str,
    stats: &'a Stats,
}

impl fmt::Display for BenchLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.stats;
        let per_op = |value: u64| Fixed::ratio(value, s.ops);
        write!(
            f,
            "BENCH {{\"name\":\"{}\",\"iterations\":{},\"ops_per_sample\":{},\"min\":{},\
             \"median\":{},\"p99\":{},\"mean\":{},\"timer_ticks_inside\":{}}}",
            self.name,
            s.iterations,
            s.ops,
            per_op(s.min),
            per_op(s.median),
            per_op(s.p99),
            Fixed::ratio(s.sum, s.ops * s.iterations.max(1) as u64),
            s.timer_ticks,
        )
    }
}

/// A non-negative ratio printed with at most two decimals (the guest has no floating point).
struct Fixed {
    hundredths: u128,
}

impl Fixed {
    fn ratio(numerator: u64, denominator: u64) -> Fixed {
        let denominator = u128::from(denominator.max(1));
        Fixed {
            hundredths: (u128::from(numerator) * 100 + denominator / 2) / denominator,
        }
    }
}

impl fmt::Display for Fixed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (whole, fraction) = (self.hundredths / 100, self.hundredths % 100);
        match fraction {
            0 => write!(f, "{whole}"),
            _ if fraction % 10 == 0 => write!(f, "{whole}.{}", fraction / 10),
            _ => write!(f, "{whole}.{fraction:02}"),
        }
    }
}
