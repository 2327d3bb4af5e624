//! Exact Kubernetes quantities (`100m`, `0.1`, `1Ki`, `1e3`, `1.5Gi`) as an integer count of
//! nano-units, so `100m` and `0.1` are the same value and arithmetic never drifts the way `f64`
//! does (`0.1 + 0.2`). The grammar is `k8s.io/apimachinery/pkg/api/resource`'s; precision finer
//! than 1n is rounded up (away from zero), as there.

use std::fmt;

/// Nano-units in one unit.
pub const NANOS: i128 = 1_000_000_000;

/// Why a quantity cannot be read or computed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    /// Not in the quantity grammar.
    #[error("invalid quantity {0:?}: want a number with an optional suffix (m, k, Mi, Gi, e3, …)")]
    Invalid(String),
    /// Outside the range kruise-rs computes with (about ±1.7e29).
    #[error("quantity out of range")]
    OutOfRange,
    /// Division by zero.
    #[error("division by zero")]
    DivisionByZero,
}

/// An exact quantity: `nanos` × 10⁻⁹.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Quantity {
    nanos: i128,
}

/// `num / den`, rounded half away from zero (`den` > 0).
fn div_round(num: i128, den: i128) -> i128 {
    let (q, r) = (num / den, num % den);
    if r.abs() * 2 >= den {
        q + num.signum()
    } else {
        q
    }
}

impl Quantity {
    /// The value of `nanos` nano-units.
    pub const fn from_nanos(nanos: i128) -> Self {
        Self { nanos }
    }

    /// A whole number of units.
    pub const fn from_units(n: i64) -> Self {
        Self {
            nanos: n as i128 * NANOS,
        }
    }

    /// Its value in nano-units.
    pub const fn nanos(self) -> i128 {
        self.nanos
    }

    /// Parses the Kubernetes quantity grammar: an optional sign, digits with an optional
    /// fraction, then nothing, a decimal SI suffix (`n u m k M G T P E`), a binary one
    /// (`Ki Mi Gi Ti Pi Ei`) or a decimal exponent (`e3`, `E-2`).
    pub fn parse(s: &str) -> Result<Self, QuantityError> {
        let bad = || QuantityError::Invalid(s.to_string());
        let (neg, rest) = match s.as_bytes().first() {
            Some(b'-') => (true, &s[1..]),
            Some(b'+') => (false, &s[1..]),
            _ => (false, s),
        };
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, suffix) = rest.split_at(num_len);
        let (int, frac) = num.split_once('.').unwrap_or((num, ""));
        if (int.is_empty() && frac.is_empty()) || frac.contains('.') {
            return Err(bad());
        }
        // digits beyond what i128 holds are refused rather than silently rounded
        let digits = format!("{int}{frac}");
        let digits = digits.trim_start_matches('0');
        if digits.len() > 36 {
            return Err(QuantityError::OutOfRange);
        }
        let mantissa: i128 = if digits.is_empty() {
            0
        } else {
            digits.parse().map_err(|_| bad())?
        };
        // value = mantissa × 10^(exp10 - frac.len()) × 1024^binary
        let (exp10, binary): (i32, u32) = match suffix {
            "" => (0, 0),
            "n" => (-9, 0),
            "u" => (-6, 0),
            "m" => (-3, 0),
            "k" => (3, 0),
            "M" => (6, 0),
            "G" => (9, 0),
            "T" => (12, 0),
            "P" => (15, 0),
            "E" => (18, 0),
            "Ki" => (0, 1),
            "Mi" => (0, 2),
            "Gi" => (0, 3),
            "Ti" => (0, 4),
            "Pi" => (0, 5),
            "Ei" => (0, 6),
            e if e.len() > 1 && e.starts_with(['e', 'E']) => {
                let exp = &e[1..];
                let digits = exp.trim_start_matches(['+', '-']);
                if digits.is_empty()
                    || digits.len() > 4
                    || exp.len() - digits.len() > 1
                    || !digits.bytes().all(|b| b.is_ascii_digit())
                {
                    return Err(bad());
                }
                (exp.parse().map_err(|_| bad())?, 0)
            }
            _ => return Err(bad()),
        };
        let scale = exp10 + 9 - frac.len() as i32;
        let mut nanos = mantissa;
        if mantissa != 0 {
            nanos = nanos
                .checked_mul(1024i128.pow(binary))
                .ok_or(QuantityError::OutOfRange)?;
            if scale >= 0 {
                let f = 10i128
                    .checked_pow(scale as u32)
                    .ok_or(QuantityError::OutOfRange)?;
                nanos = nanos.checked_mul(f).ok_or(QuantityError::OutOfRange)?;
            } else {
                // finer than 1n: rounded up, away from zero, as Kubernetes does
                nanos = match 10i128.checked_pow(scale.unsigned_abs()) {
                    Some(f) => nanos.checked_add(f - 1).ok_or(QuantityError::OutOfRange)? / f,
                    None => 1,
                };
            }
        }
        Ok(Self {
            nanos: if neg { -nanos } else { nanos },
        })
    }

    /// `self + o`.
    pub fn checked_add(self, o: Self) -> Result<Self, QuantityError> {
        self.nanos
            .checked_add(o.nanos)
            .map(Self::from_nanos)
            .ok_or(QuantityError::OutOfRange)
    }

    /// `self - o`.
    pub fn checked_sub(self, o: Self) -> Result<Self, QuantityError> {
        self.nanos
            .checked_sub(o.nanos)
            .map(Self::from_nanos)
            .ok_or(QuantityError::OutOfRange)
    }

    /// `self × o`, rounded to the nano-unit (half away from zero).
    pub fn checked_mul(self, o: Self) -> Result<Self, QuantityError> {
        let p = self
            .nanos
            .checked_mul(o.nanos)
            .ok_or(QuantityError::OutOfRange)?;
        Ok(Self::from_nanos(div_round(p, NANOS)))
    }

    /// `self ÷ o`, rounded to the nano-unit (half away from zero).
    pub fn checked_div(self, o: Self) -> Result<Self, QuantityError> {
        if o.nanos == 0 {
            return Err(QuantityError::DivisionByZero);
        }
        let n = self
            .nanos
            .checked_mul(NANOS)
            .ok_or(QuantityError::OutOfRange)?;
        let (n, d) = if o.nanos < 0 {
            // n is a multiple of 10^9, never i128::MIN
            let d = o.nanos.checked_neg().ok_or(QuantityError::OutOfRange)?;
            (-n, d)
        } else {
            (n, o.nanos)
        };
        Ok(Self::from_nanos(div_round(n, d)))
    }

    /// `-self`.
    pub fn checked_neg(self) -> Result<Self, QuantityError> {
        self.nanos
            .checked_neg()
            .map(Self::from_nanos)
            .ok_or(QuantityError::OutOfRange)
    }

    /// The value in units of 10^-`decimals` (0: units, 3: milli-units), rounded half away
    /// from zero.
    pub fn round_to(self, decimals: u32) -> i128 {
        let d = 10i128.pow(9u32.saturating_sub(decimals));
        div_round(self.nanos, d)
    }
}

impl std::str::FromStr for Quantity {
    type Err = QuantityError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// A plain decimal number (`0.1`, `1024`, `-2.5`): exact, without suffix.
impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.nanos < 0 { "-" } else { "" };
        let abs = self.nanos.unsigned_abs();
        let (int, frac) = (abs / NANOS as u128, abs % NANOS as u128);
        if frac == 0 {
            write!(f, "{sign}{int}")
        } else {
            let frac = format!("{frac:09}");
            write!(f, "{sign}{int}.{}", frac.trim_end_matches('0'))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Quantity {
        Quantity::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn equal_spellings_are_equal_values() {
        assert_eq!(q("100m"), q("0.1"));
        assert_eq!(q("0.1").nanos(), 100_000_000);
        assert_eq!(q("1Ki"), q("1024"));
        assert_eq!(q("1e3"), q("1k"));
        assert_eq!(q("1E3"), q("1000"));
        assert_eq!(q("1.5Gi"), Quantity::from_units(1_610_612_736));
        assert_eq!(q("1e-3"), q("1m"));
        assert_eq!(q("+5"), q("5"));
        assert_eq!(q("-.5"), q("-500m"));
        assert_eq!(q("5."), q("5"));
        assert_eq!(q("0"), Quantity::default());
        assert_eq!(q("1n").nanos(), 1);
        assert_eq!(q("3u").nanos(), 3_000);
        assert_eq!(q("2E"), Quantity::from_units(2_000_000_000_000_000_000));
        assert_eq!(q("1Ei"), Quantity::from_units(1 << 60));
    }

    #[test]
    fn decimal_text_round_trips_exactly() {
        for s in [
            "0.1",
            "1024",
            "1000",
            "-2.5",
            "0.000000001",
            "123456789.123456789",
        ] {
            assert_eq!(q(s).to_string(), s);
        }
        assert_eq!(q("100m").to_string(), "0.1");
        assert_eq!(q("1e3").to_string(), "1000");
        assert_eq!(q("1Ki").to_string(), "1024");
        // what f64 gets wrong
        assert_eq!(q("0.1").checked_add(q("0.2")).unwrap(), q("0.3"));
    }

    #[test]
    fn finer_than_a_nano_rounds_up_as_kubernetes_does() {
        assert_eq!(q("0.0000000001").nanos(), 1);
        assert_eq!(q("1.0000000001").nanos(), NANOS + 1);
        assert_eq!(q("-0.0000000001").nanos(), -1);
        assert_eq!(q("1e-12").nanos(), 1);
        assert_eq!(q("0e-40").nanos(), 0);
    }

    #[test]
    fn malformed_and_huge_are_refused() {
        for bad in [
            "", "m", ".", "-", "1.2.3", "1x", "1KI", "1e", "1e+", "1e1.5", "1 ", " 1", "1mm",
            "--1", "1e99999", "0x10", "1ki",
        ] {
            assert!(Quantity::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(Quantity::parse("1e40"), Err(QuantityError::OutOfRange));
        assert_eq!(
            Quantity::parse(&"9".repeat(40)),
            Err(QuantityError::OutOfRange)
        );
    }

    #[test]
    fn arithmetic_is_exact_to_the_nano_and_checked() {
        assert_eq!(q("200m").checked_mul(q("0.5")).unwrap(), q("100m"));
        assert_eq!(q("100Mi").checked_mul(q("0.5")).unwrap(), q("50Mi"));
        assert_eq!(q("1").checked_div(q("3")).unwrap().nanos(), 333_333_333);
        assert_eq!(q("2").checked_div(q("3")).unwrap().nanos(), 666_666_667);
        assert_eq!(q("-2").checked_div(q("3")).unwrap().nanos(), -666_666_667);
        assert_eq!(q("2").checked_div(q("-3")).unwrap().nanos(), -666_666_667);
        assert_eq!(
            q("1").checked_div(q("0")),
            Err(QuantityError::DivisionByZero)
        );
        let min = Quantity::from_nanos(i128::MIN);
        assert_eq!(q("1").checked_div(min), Err(QuantityError::OutOfRange));
        assert_eq!(min.checked_neg(), Err(QuantityError::OutOfRange));
        assert_eq!(
            q("1Ei").checked_mul(q("1Ei")),
            Err(QuantityError::OutOfRange)
        );
        assert_eq!(q("1500m").round_to(0), 2);
        assert_eq!(q("-1500m").round_to(0), -2);
        assert_eq!(q("0.0005").round_to(3), 1);
        assert_eq!(q("0.0004").round_to(3), 0);
        assert!(q("50m") < q("0.1") && q("-1") < q("0"));
    }
}
