//! The QR code of the sign-in address, as the page shows it: an SVG image in a `data:` URI
//! (the page's Content-Security-Policy allows `img-src data:`, and an image cannot run script).

use base64::Engine as _;
use qrcode::QrCode;
use qrcode::render::svg;

/// `text` as a QR code image, or `None` if it is too long for one (the address is shown as
/// text anyway).
pub(crate) fn svg_data_uri(text: &str) -> Option<String> {
    let code = QrCode::with_error_correction_level(text.as_bytes(), qrcode::EcLevel::M).ok()?;
    let image = code
        .render::<svg::Color>()
        .min_dimensions(240, 240)
        .quiet_zone(true)
        .dark_color(svg::Color("#000000"))
        .light_color(svg::Color("#ffffff"))
        .build();
    let b64 = base64::engine::general_purpose::STANDARD.encode(image);
    Some(format!("data:image/svg+xml;base64,{b64}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_becomes_an_svg_data_uri_and_a_huge_text_does_not() {
        let uri = svg_data_uri("https://microsoft.com/devicelogin").unwrap();
        let b64 = uri.strip_prefix("data:image/svg+xml;base64,").unwrap();
        let svg = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap();
        let svg = String::from_utf8(svg).unwrap();
        assert!(svg.starts_with("<?xml") && svg.contains("<svg"), "{svg}");
        assert!(!svg.contains("<script"), "{svg}");
        assert!(svg_data_uri(&"x".repeat(5000)).is_none());
    }
}
