//! Pure statistics: percentiles of latency samples and medians of repeated measurements.
//!
//! Latencies are kept as raw microsecond samples (a 10-second run at 50,000 requests/s is
//! 500,000 `u32`s, 2 MB), sorted once, and read with the nearest-rank method: the p-th
//! percentile is the smallest sample such that at least p% of the samples are not larger.
//! That is what wrk's `--latency` reports too, without its histogram bucketing.

/// The p-th percentile (0–100) of samples that are already sorted ascending, nearest-rank.
///
/// `None` when there are no samples.
pub fn percentile_sorted<T: Copy>(sorted: &[T], percent: f64) -> Option<T> {
    if sorted.is_empty() {
        return None;
    }
    let percent = percent.clamp(0.0, 100.0);
    let rank = ((percent / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// The median of unsorted values (the mean of the two middle values for an even count).
///
/// `None` when there are no values.
pub fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let middle = sorted.len() / 2;
    if !sorted.len().is_multiple_of(2) {
        Some(sorted[middle])
    } else {
        Some((sorted[middle - 1] + sorted[middle]) / 2.0)
    }
}

/// Latency summary of one run, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Latencies {
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Largest sample.
    pub max_ms: f64,
}

impl Latencies {
    /// Sorts the microsecond samples in place and summarises them; `None` when empty.
    pub fn from_micros(samples: &mut [u32]) -> Option<Latencies> {
        samples.sort_unstable();
        let ms = |value: u32| f64::from(value) / 1000.0;
        Some(Latencies {
            p50_ms: ms(percentile_sorted(samples, 50.0)?),
            p90_ms: ms(percentile_sorted(samples, 90.0)?),
            p99_ms: ms(percentile_sorted(samples, 99.0)?),
            max_ms: ms(*samples.last()?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let samples: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile_sorted(&samples, 50.0), Some(50));
        assert_eq!(percentile_sorted(&samples, 99.0), Some(99));
        assert_eq!(percentile_sorted(&samples, 99.5), Some(100));
        assert_eq!(percentile_sorted(&samples, 100.0), Some(100));
        assert_eq!(percentile_sorted(&samples, 0.0), Some(1));
        assert_eq!(percentile_sorted(&[7u32], 99.0), Some(7));
        assert_eq!(percentile_sorted::<u32>(&[], 50.0), None);
        // Ten samples: p90 is the 9th, p99 the 10th.
        let ten: Vec<u32> = (1..=10).collect();
        assert_eq!(percentile_sorted(&ten, 90.0), Some(9));
        assert_eq!(percentile_sorted(&ten, 99.0), Some(10));
    }

    #[test]
    fn medians() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn latency_summary_sorts_and_converts() {
        let mut samples = vec![5000, 1000, 3000, 2000, 4000];
        let latencies = Latencies::from_micros(&mut samples);
        assert_eq!(
            latencies,
            Some(Latencies {
                p50_ms: 3.0,
                p90_ms: 5.0,
                p99_ms: 5.0,
                max_ms: 5.0
            })
        );
        assert_eq!(Latencies::from_micros(&mut []), None);
    }
}
