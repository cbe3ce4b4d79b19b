//! Money across currencies: each tenant reports in one currency, and an
//! amount in another converts at the rate the tenant keeps for its month.
//! Amounts are integers in minor units (ISO 4217); a rate is an exact decimal
//! with nine places; a conversion rounds once, half away from zero.

/// The reporting currency of a tenant that has not chosen one.
pub const DEFAULT_REPORTING: &str = "USD";

/// Whether `code` looks like an ISO 4217 code: three upper-case letters.
pub fn is_code(code: &str) -> bool {
    code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase())
}

/// Digits of a currency's minor unit (ISO 4217): 2 unless listed.
pub fn minor_digits(code: &str) -> u32 {
    match code {
        "BIF" | "CLP" | "DJF" | "GNF" | "ISK" | "JPY" | "KMF" | "KRW" | "PYG" | "RWF" | "UGX" | "UYI" | "VND"
        | "VUV" | "XAF" | "XOF" | "XPF" => 0,
        "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => 3,
        _ => 2,
    }
}

/// An exchange rate: units of the reporting currency one unit of another
/// buys, exact to nine decimal places.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Rate {
    nanos: i64,
}

impl Rate {
    const SCALE: i64 = 1_000_000_000;
    /// The largest rate taken (one unit buys at most a million).
    const MAX_UNITS: i64 = 1_000_000;

    /// A rate of `nanos` billionths, if positive and at most a million.
    pub fn from_nanos(nanos: i64) -> Option<Rate> {
        (nanos > 0 && nanos <= Self::MAX_UNITS * Self::SCALE).then_some(Rate { nanos })
    }

    /// The rate in billionths.
    pub fn nanos(self) -> i64 {
        self.nanos
    }

    /// Parses a plain decimal such as `1.0852`: digits, at most nine after the point.
    pub fn parse(s: &str) -> Option<Rate> {
        let (units, fraction) = s.split_once('.').unwrap_or((s, "0"));
        let digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
        if units.is_empty()
            || units.len() > 7
            || !(1..=9).contains(&fraction.len())
            || !digits(units)
            || !digits(fraction)
        {
            return None;
        }
        let units: i64 = units.parse().ok()?;
        let fraction: i64 = format!("{fraction:0<9}").parse().ok()?;
        Rate::from_nanos(units * Self::SCALE + fraction)
    }

    /// Converts `amount_minor` of `from` into minor units of `to` (the
    /// currency the rate buys), rounded half away from zero.
    pub fn convert(self, amount_minor: i64, from: &str, to: &str) -> i64 {
        let pow = |code: &str| 10i128.pow(minor_digits(code));
        let num = i128::from(amount_minor) * i128::from(self.nanos) * pow(to);
        let den = i128::from(Self::SCALE) * pow(from);
        crate::metrics::div_round(num, den) as i64
    }
}

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (units, fraction) = (self.nanos / Self::SCALE, self.nanos % Self::SCALE);
        if fraction == 0 {
            return write!(f, "{units}");
        }
        let digits = format!("{fraction:09}");
        write!(f, "{units}.{}", digits.trim_end_matches('0'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_exactly_and_print_back() {
        for s in ["1", "1.0852", "0.000000001", "156.25", "1000000"] {
            assert_eq!(Rate::parse(s).unwrap().to_string(), s);
        }
        assert_eq!(Rate::parse("1.10").unwrap().nanos(), 1_100_000_000);
        for bad in ["", "0", "0.0", "-1", "1.", ".5", "1e3", "1,5", "1.0000000001", "1000000.5", " 1"] {
            assert_eq!(Rate::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn conversion_follows_the_minor_units_and_rounds_once() {
        let r = Rate::parse("1.10").unwrap();
        // EUR 12,000.00 at 1.10 is USD 13,200.00.
        assert_eq!(r.convert(1_200_000, "EUR", "USD"), 1_320_000);
        // JPY 1,000 (no minor unit) at 0.0067 is USD 6.70; USD 6.70 at 149.25 is JPY 1,000 (999.975 rounded).
        assert_eq!(Rate::parse("0.0067").unwrap().convert(1_000, "JPY", "USD"), 670);
        assert_eq!(Rate::parse("149.25").unwrap().convert(670, "USD", "JPY"), 1_000);
        // Half a cent rounds away from zero, both ways.
        assert_eq!(Rate::parse("0.5").unwrap().convert(1, "EUR", "USD"), 1);
        assert_eq!(Rate::parse("0.5").unwrap().convert(-1, "EUR", "USD"), -1);
        assert!(is_code("EUR") && !is_code("eur") && !is_code("EURO"));
    }
}
