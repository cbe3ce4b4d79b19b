//! Subjects (the `sub` of a token) compared in one form, so that "Alex",
//! " alex" and a full-width "ａｌｅｘ" are the same person to every rule that
//! tells people apart (contributors, reviewers, idempotency keys' owners).

use unicode_normalization::UnicodeNormalization;

/// The one form subjects are compared and recorded in: Unicode NFKC,
/// lower-cased, without surrounding white space.
pub fn normalise(subject: &str) -> String {
    subject.trim().nfkc().collect::<String>().to_lowercase()
}

/// Whether two subjects name the same caller.
pub fn same(a: &str, b: &str) -> bool {
    normalise(a) == normalise(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_width_and_surrounding_space_do_not_make_another_person() {
        assert_eq!(normalise(" Alex\t"), "alex");
        assert!(same("alex", "ＡＬＥＸ"));
        assert!(same("alex@example.com", "Alex@Example.COM "));
        assert!(!same("alex", "alexa"));
        assert!(!same("a lex", "alex"));
    }
}
