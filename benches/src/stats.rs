//! Order statistics for timings.

/// The median of `values` (mean of the two middle values for an even
/// count); `NaN` when empty.
pub fn median(values: &[f64]) -> f64 {
    let sorted = sorted(values);
    let n = sorted.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => sorted[n / 2],
        _ => f64::midpoint(sorted[n / 2 - 1], sorted[n / 2]),
    }
}

/// The `pct`-th percentile of `values` by the nearest-rank method (the
/// smallest value with at least `pct`% of the values at or below it);
/// `NaN` when empty.
pub fn percentile(values: &[f64], pct: u32) -> f64 {
    let sorted = sorted(values);
    if sorted.is_empty() {
        return f64::NAN;
    }
    let pct = usize::try_from(pct.min(100)).unwrap_or(100);
    // rank = ceil(pct/100 * n), at least 1.
    let rank = (pct * sorted.len()).div_ceil(100).max(1);
    sorted[rank - 1]
}

/// The arithmetic mean; `NaN` when empty.
pub fn mean(values: &[f64]) -> f64 {
    let count = u32::try_from(values.len()).unwrap_or(u32::MAX);
    values.iter().sum::<f64>() / f64::from(count)
}

/// A sorted copy (NaN last).
fn sorted(values: &[f64]) -> Vec<f64> {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert!(median(&[]).is_nan());
        assert!((median(&[3.0, 1.0, 2.0]) - 2.0).abs() < f64::EPSILON);
        assert!((median(&[4.0, 1.0, 3.0, 2.0]) - 2.5).abs() < f64::EPSILON);
    }

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=20).map(f64::from).collect();
        assert!((percentile(&v, 95) - 19.0).abs() < f64::EPSILON);
        assert!((percentile(&v, 50) - 10.0).abs() < f64::EPSILON);
        assert!((percentile(&v, 100) - 20.0).abs() < f64::EPSILON);
        assert!((percentile(&v, 0) - 1.0).abs() < f64::EPSILON);
        assert!((percentile(&[7.0], 95) - 7.0).abs() < f64::EPSILON);
        assert!((mean(&[1.0, 2.0, 6.0]) - 3.0).abs() < f64::EPSILON);
    }
}
