//! Request validation that collects every bad field before answering, so a
//! caller fixes its request in one round trip.

use qualify_proto::convert::WireEnum;

use crate::error::{ApiError, FieldViolation};

/// Longest free-text field accepted.
pub const MAX_TEXT: usize = 1024;
/// Longest id accepted.
pub const MAX_ID: usize = 128;

/// A field path, rendered only when a violation is recorded (validation of a
/// valid request allocates nothing per field).
pub trait FieldPath {
    /// The path as callers see it, for example `signals[3].type`.
    fn render(&self) -> String;
}

impl FieldPath for &str {
    fn render(&self) -> String {
        (*self).to_string()
    }
}

impl FieldPath for String {
    fn render(&self) -> String {
        self.clone()
    }
}

impl FieldPath for &String {
    fn render(&self) -> String {
        (*self).clone()
    }
}

/// The path of a field of a list item: `Item("signals", 3, "type")` is
/// `signals[3].type`; an empty leaf names the item itself.
#[derive(Debug, Clone, Copy)]
pub struct Item<'a>(pub &'a str, pub usize, pub &'a str);

impl FieldPath for Item<'_> {
    fn render(&self) -> String {
        let Item(list, i, leaf) = *self;
        if leaf.is_empty() { format!("{list}[{i}]") } else { format!("{list}[{i}].{leaf}") }
    }
}

/// Collected field violations of one request.
#[derive(Debug, Default)]
pub struct Violations(Vec<FieldViolation>);

impl Violations {
    /// An empty collection.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a violation.
    pub fn add(&mut self, field: impl Into<String>, description: impl Into<String>) {
        self.0.push(FieldViolation { field: field.into(), description: description.into() });
    }

    /// Records a violation unless `ok`.
    pub fn check(&mut self, ok: bool, field: impl FieldPath, description: &str) {
        if !ok {
            self.add(field.render(), description);
        }
    }

    /// A required resource id: 1 to 128 characters of `[A-Za-z0-9._:-]`.
    pub fn id(&mut self, field: impl FieldPath, value: &str) {
        if value.is_empty() {
            self.add(field.render(), "is required");
        } else if !is_resource_id(value) {
            self.add(field.render(), "must be 1 to 128 characters of [A-Za-z0-9._:-]");
        }
    }

    /// An optional id: empty, or a valid id.
    pub fn optional_id(&mut self, field: impl FieldPath, value: &str) {
        if !value.is_empty() {
            self.id(field, value);
        }
    }

    /// Free text of at most `max` bytes without control characters.
    pub fn text(&mut self, field: impl FieldPath, value: &str, max: usize) {
        if value.len() > max {
            self.add(field.render(), format!("must be at most {max} bytes"));
        } else if value.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
            self.add(field.render(), "must not contain control characters");
        }
    }

    /// A required enum: unspecified and unknown numbers are violations.
    pub fn required_enum<T: WireEnum>(&mut self, field: impl FieldPath, value: i32) -> Option<T> {
        let v = T::from_wire(value);
        if v.is_none() {
            self.add(field.render(), if value == 0 { "is required" } else { "is not a known value" });
        }
        v
    }

    /// An optional enum: unspecified is `None`, an unknown number is a violation.
    pub fn optional_enum<T: WireEnum>(&mut self, field: impl FieldPath, value: i32) -> Option<T> {
        if value == 0 {
            return None;
        }
        self.required_enum(field, value)
    }

    /// The idempotency key of a mutating call: optional, at most 128 bytes of printable ASCII.
    pub fn request_id(&mut self, value: &str) {
        if value.len() > MAX_ID || !value.bytes().all(|b| b.is_ascii_graphic()) {
            self.add("request_id", "must be at most 128 printable ASCII characters");
        }
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// What was recorded (an item's rejections, for a batch where each item is judged alone).
    pub fn into_vec(self) -> Vec<FieldViolation> {
        self.0
    }

    /// `Ok` when nothing was recorded, else INVALID_ARGUMENT with every violation.
    pub fn finish(self) -> Result<(), ApiError> {
        if self.0.is_empty() { Ok(()) } else { Err(ApiError::InvalidArgument(self.0)) }
    }
}

/// A calendar month as `YYYY-MM`.
pub fn is_month(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 7
        && b[4] == b'-'
        && b[..4].iter().chain(&b[5..]).all(u8::is_ascii_digit)
        && matches!(s[5..].parse::<u8>(), Ok(1..=12))
}

/// Checks a range of months given as `start_period` and `end_period`: both
/// `YYYY-MM`, the end not before the start.
pub fn month_range(v: &mut Violations, start: &str, end: &str) {
    let (start_ok, end_ok) = (is_month(start), is_month(end));
    v.check(start_ok, "start_period", "must be a month as YYYY-MM");
    v.check(end_ok, "end_period", "must be a month as YYYY-MM");
    // Only two valid months can be out of order; a malformed one is already named.
    v.check(!(start_ok && end_ok) || start <= end, "end_period", "must not be before start_period");
}

/// Resource ids: 1 to 128 characters of `[A-Za-z0-9._:-]`.
pub fn is_resource_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_ID && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use qualify_domain::Segment;

    #[test]
    fn every_violation_is_collected_with_its_field() {
        let mut v = Violations::new();
        v.id("account.account_id", "");
        v.id("lead.lead_id", "has space");
        v.text("account.display_name", &"x".repeat(2000), MAX_TEXT);
        assert_eq!(v.required_enum::<Segment>("account.segment", 0), None);
        assert_eq!(v.required_enum::<Segment>("lead.segment", 42), None);
        assert_eq!(v.optional_enum::<Segment>("x.segment", 0), None);
        v.request_id("ok-1");
        v.request_id("not ok");
        let Err(ApiError::InvalidArgument(list)) = v.finish() else { panic!("expected violations") };
        let fields: Vec<_> = list.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "account.account_id",
                "lead.lead_id",
                "account.display_name",
                "account.segment",
                "lead.segment",
                "request_id"
            ]
        );
    }

    #[test]
    fn ids_accept_crm_style_keys() {
        assert!(is_resource_id("0015g00000XyZ.abc:1-2_3"));
        assert!(!is_resource_id(&"a".repeat(129)));
        assert!(!is_resource_id("a/b"));
    }

    #[test]
    fn a_month_range_names_only_the_fields_that_are_wrong() {
        let fields = |start: &str, end: &str| {
            let mut v = Violations::new();
            month_range(&mut v, start, end);
            match v.finish() {
                Ok(()) => vec![],
                Err(crate::ApiError::InvalidArgument(vs)) => vs.into_iter().map(|f| f.field).collect(),
                Err(e) => panic!("{e}"),
            }
        };
        assert!(fields("2026-01", "2026-03").is_empty());
        assert_eq!(fields("2026-13", "2026-11"), ["start_period"]);
        assert_eq!(fields("2026-03", "2026-01"), ["end_period"]);
        assert_eq!(fields("2026-01", "26-3"), ["end_period"]);
    }
}
