//! Kubernetes resource quantities ("500m", "2Gi", "1e3"), compared by value.

use std::fmt;

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("parse quantity {0:?}")]
pub struct QuantityError(String);

/// A quantity in base units (cores, bytes, counts).
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct Quantity(pub f64);

const SUFFIXES: [(&str, f64); 14] = [
    ("Ki", 1024.0),
    ("Mi", 1_048_576.0),
    ("Gi", 1_073_741_824.0),
    ("Ti", 1_099_511_627_776.0),
    ("Pi", 1_125_899_906_842_624.0),
    ("Ei", 1_152_921_504_606_846_976.0),
    ("n", 1e-9),
    ("u", 1e-6),
    ("m", 1e-3),
    ("k", 1e3),
    ("M", 1e6),
    ("G", 1e9),
    ("T", 1e12),
    ("P", 1e15),
];

impl Quantity {
    pub fn parse(text: &str) -> Result<Self, QuantityError> {
        let err = || QuantityError(text.to_owned());
        let trimmed = text.trim();
        let (number, factor) = SUFFIXES
            .iter()
            .find_map(|(suffix, factor)| trimmed.strip_suffix(suffix).map(|n| (n, *factor)))
            .or_else(|| trimmed.strip_suffix('E').map(|n| (n, 1e18)))
            .unwrap_or((trimmed, 1.0));
        if number.is_empty() || number.starts_with(['+', '-']) && number.len() == 1 {
            return Err(err());
        }
        let value: f64 = number.parse().map_err(|_| err())?;
        if !value.is_finite() || value < 0.0 {
            return Err(err());
        }
        Ok(Quantity(value * factor))
    }

    pub fn scaled(self, by: f64) -> Self {
        Quantity(self.0 * by)
    }

    /// Equal within a rounding error far below any real resource step.
    pub fn same(self, other: Quantity) -> bool {
        (self.0 - other.0).abs() <= 1e-9 * self.0.abs().max(other.0.abs()).max(1.0)
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const GI: f64 = 1_073_741_824.0;
        const MI: f64 = 1_048_576.0;
        let v = self.0;
        if v >= GI && (v / GI).fract() == 0.0 {
            write!(f, "{}Gi", v / GI)
        } else if v >= MI && (v / MI).fract() == 0.0 {
            write!(f, "{}Mi", v / MI)
        } else if v.fract() == 0.0 {
            write!(f, "{v}")
        } else {
            write!(f, "{}m", (v * 1000.0).round())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("1", 1.0)]
    #[case("1000m", 1.0)]
    #[case("100m", 0.1)]
    #[case("2Gi", 2.0 * 1_073_741_824.0)]
    #[case("500Gi", 500.0 * 1_073_741_824.0)]
    #[case("1G", 1e9)]
    #[case("1.5", 1.5)]
    #[case("1e3", 1000.0)]
    fn parses(#[case] text: &str, #[case] expected: f64) {
        let q = Quantity::parse(text).expect("valid quantity");
        assert!(q.same(Quantity(expected)), "{text} -> {q:?}");
    }

    #[rstest]
    #[case("")]
    #[case("Gi")]
    #[case("abc")]
    #[case("-1")]
    #[case("1Qi")]
    fn rejects(#[case] text: &str) {
        assert!(Quantity::parse(text).is_err(), "{text} should not parse");
    }

    #[rstest]
    #[case("2Gi", "2Gi")]
    #[case("2", "2")]
    #[case("100m", "100m")]
    #[case("512Mi", "512Mi")]
    fn displays(#[case] text: &str, #[case] shown: &str) {
        let q = Quantity::parse(text).expect("valid quantity");
        assert_eq!(q.to_string(), shown);
    }
}
