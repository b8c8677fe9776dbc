//! QR codes on a text console: two modules per character cell with Unicode half blocks, dark on light with
//! a quiet zone, which phone cameras read off a terminal or a serial console's window.

use qrcode::render::unicode::Dense1x2;
use qrcode::QrCode;

/// The QR code of `text` as lines of half blocks, or None when it does not fit a QR code.
pub fn render(text: &str) -> Option<String> {
    let code = QrCode::new(text.as_bytes()).ok()?;
    Some(
        code.render::<Dense1x2>()
            .dark_color(Dense1x2::Light)
            .light_color(Dense1x2::Dark)
            .quiet_zone(true)
            .build(),
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_otpauth_uri_fits_in_80_columns() {
        let qr = super::render("otpauth://totp/Rampart:alice%40box?secret=ABCDEFGHIJKLMNOPQRSTUVWXYZ234567&issuer=Rampart").unwrap();
        let widest = qr.lines().map(|l| l.chars().count()).max().unwrap();
        assert!(widest <= 80, "{widest} columns");
        assert!(qr.lines().count() <= 40);
    }
}
