//! Redaction of personal data in logs.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};

/// Whether [`Pii`] values print their contents. Off by default.
static PII_VISIBLE: AtomicBool = AtomicBool::new(false);

/// Redacts personal data (phone numbers, URIs, display names) in logs unless
/// enabled process-wide.
///
/// `Display` and `Debug` print `<redacted>` until
/// `Pii::<()>::set_visible(true)` (or [`set_pii_visible`]) is called; then
/// they print the inner value with its own formatting.
///
/// ```
/// use confgate_call::Pii;
/// let number = Pii("+74951234567");
/// assert_eq!(format!("{number}"), "<redacted>");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Pii<T>(pub T);

impl<T> Pii<T> {
    /// Makes every `Pii` value in the process print (`true`) or redact
    /// (`false`) its contents.
    pub fn set_visible(visible: bool) {
        PII_VISIBLE.store(visible, Ordering::Relaxed);
    }

    /// Whether `Pii` values currently print their contents.
    pub fn is_visible() -> bool {
        PII_VISIBLE.load(Ordering::Relaxed)
    }

    /// The wrapped value.
    pub fn into_inner(self) -> T {
        self.0
    }
}

/// Makes every [`Pii`] value in the process print (`true`) or redact
/// (`false`) its contents. Same as `Pii::<()>::set_visible`.
pub fn set_pii_visible(visible: bool) {
    Pii::<()>::set_visible(visible);
}

const REDACTED: &str = "<redacted>";

impl<T: fmt::Display> fmt::Display for Pii<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if Pii::<()>::is_visible() {
            fmt::Display::fmt(&self.0, f)
        } else {
            f.write_str(REDACTED)
        }
    }
}

impl<T: fmt::Debug> fmt::Debug for Pii<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if Pii::<()>::is_visible() {
            fmt::Debug::fmt(&self.0, f)
        } else {
            f.write_str(REDACTED)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The only test in the crate that touches the process-wide switch (tests
    /// run in parallel); it leaves the switch off.
    #[test]
    fn redaction_follows_the_switch() {
        let name = Pii("Alice Smith");
        let uri = Pii(String::from("sip:alice@example.com"));
        set_pii_visible(false);
        assert!(!Pii::<()>::is_visible());
        assert_eq!(name.to_string(), "<redacted>");
        assert_eq!(format!("{uri:?}"), "<redacted>");
        assert_eq!(format!("{:?}", Some(Pii(5))), "Some(<redacted>)");

        Pii::<()>::set_visible(true);
        assert!(Pii::<u8>::is_visible());
        assert_eq!(name.to_string(), "Alice Smith");
        assert_eq!(format!("{uri:?}"), "\"sip:alice@example.com\"");
        assert_eq!(format!("{:>5}", Pii(42)), "   42");

        set_pii_visible(false);
        assert_eq!(name.to_string(), "<redacted>");
        assert_eq!(uri.clone().into_inner(), "sip:alice@example.com");
    }
}
