//! Percentiles and rounding for the report.

use serde::Serialize;

/// The nearest-rank percentile `q` (0 to 1) of `values`; None when empty.
pub fn percentile(values: &[f64], q: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

/// Rounds to one decimal (milliseconds and seconds in the JSON).
pub fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// Rounds to two decimals (ratios).
pub fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// p50, p99 and max of a set of latencies, in milliseconds.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Latency {
    pub n: usize,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub max_ms: Option<f64>,
}

impl Latency {
    pub fn of(ms: &[f64]) -> Self {
        Self {
            n: ms.len(),
            p50_ms: percentile(ms, 0.50).map(round1),
            p99_ms: percentile(ms, 0.99).map(round1),
            max_ms: percentile(ms, 1.0).map(round1),
        }
    }
}

/// `1234.5` ms → "1,235 ms", `12.34` → "12.3 ms", None → "–".
pub fn fmt_ms(ms: Option<f64>) -> String {
    match ms {
        None => "–".into(),
        Some(v) if v >= 100.0 => format!("{} ms", thousands(v.round() as u64)),
        Some(v) => format!("{v:.1} ms"),
    }
}

/// 12345 → "12,345".
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), Some(50.0));
        assert_eq!(percentile(&v, 0.99), Some(99.0));
        assert_eq!(percentile(&v, 1.0), Some(100.0));
        assert_eq!(percentile(&[7.0], 0.99), Some(7.0));
        assert_eq!(percentile(&[], 0.5), None);
    }

    #[test]
    fn formats() {
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(thousands(12), "12");
        assert_eq!(fmt_ms(Some(5321.4)), "5,321 ms");
        assert_eq!(fmt_ms(Some(12.34)), "12.3 ms");
    }
}
