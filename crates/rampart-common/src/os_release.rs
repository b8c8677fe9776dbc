//! The image's own version, as image/build records it in `/usr/lib/os-release` (`IMAGE_VERSION=`, see
//! os-release(5)). The running system is whatever slot was booted, so its version is a property of the root
//! filesystem, not of whichever binary asks: an image is released (and updated to) by this field.

use std::path::Path;

/// Where os-release(5) says to look, in order.
pub const PATHS: [&str; 2] = ["/etc/os-release", "/usr/lib/os-release"];

/// `IMAGE_VERSION` of the running image; `fallback` (the caller's `CARGO_PKG_VERSION`) when the file or the
/// field is missing, e.g. a binary run outside a Rampart image.
pub fn image_version(fallback: &str) -> String {
    image_version_if_any().unwrap_or_else(|| fallback.to_owned())
}

/// `IMAGE_VERSION` of the running image; None outside a Rampart image (no file or no field).
pub fn image_version_if_any() -> Option<String> {
    PATHS
        .iter()
        .find_map(|p| std::fs::read_to_string(Path::new(p)).ok())
        .and_then(|text| field(&text, "IMAGE_VERSION"))
}

/// One `KEY=value` of an os-release text, with shell-style quotes removed; None when absent or empty.
pub fn field(text: &str, key: &str) -> Option<String> {
    text.lines().rev().find_map(|line| {
        let value = line.trim().strip_prefix(key)?.strip_prefix('=')?;
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
            .unwrap_or(value);
        (!value.is_empty()).then(|| value.to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::field;

    #[test]
    fn fields_are_read_with_or_without_quotes_and_the_last_wins() {
        let text = "PRETTY_NAME=\"Debian GNU/Linux 12\"\nIMAGE_ID=rampart\nIMAGE_VERSION=0.1.0\n\
                    IMAGE_VERSION_X=9\nIMAGE_VERSION='0.2.0'\nEMPTY=\"\"\n";
        assert_eq!(field(text, "IMAGE_VERSION").as_deref(), Some("0.2.0"));
        assert_eq!(field(text, "IMAGE_ID").as_deref(), Some("rampart"));
        assert_eq!(
            field(text, "PRETTY_NAME").as_deref(),
            Some("Debian GNU/Linux 12")
        );
        assert_eq!(field(text, "EMPTY"), None);
        assert_eq!(field(text, "VERSION"), None);
    }
}
