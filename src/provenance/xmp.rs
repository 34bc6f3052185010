//! XMP packets that say an image is AI-generated (IPTC digital source type
//! `trainedAlgorithmicMedia`), written into the encoded file where each format keeps them:
//! PNG `iTXt` chunk `XML:com.adobe.xmp`, JPEG APP1 `http://ns.adobe.com/xap/1.0/`, WebP
//! `XMP ` chunk (with the VP8X extended header that announces it).
//!
//! Writing is done here on the encoder's bytes because the `image` encoders take EXIF and
//! ICC but not XMP; reading goes through the `image` decoders, which do read XMP.

use std::io::Cursor;

use serde::Serialize;
use uuid::Uuid;

use crate::media::OutputFormat;

/// IPTC NewsCodes digital source type for media made by a trained model.
pub const TRAINED_ALGORITHMIC_MEDIA: &str = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia";
const IPTC_EXT_NS: &str = "http://iptc.org/std/Iptc4xmpExt/2008-02-29/";
/// Our own properties (generation id, model version).
const STYLECAST_NS: &str = "urn:stylecast:xmp:provenance:1.0#";
const JPEG_XMP_NAMESPACE: &[u8] = b"http://ns.adobe.com/xap/1.0/\0";
const PNG_XMP_KEYWORD: &[u8] = b"XML:com.adobe.xmp";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum XmpError {
    #[error("the encoder's {0} output does not have the expected header")]
    UnexpectedLayout(&'static str),
    #[error("the XMP packet is {0} bytes; a JPEG segment holds at most 65,502")]
    TooLong(usize),
}

/// The provenance properties of a packet we wrote (or a look-alike someone else wrote).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct XmpFields {
    pub digital_source_type: Option<String>,
    pub generation_id: Option<String>,
    pub model_version: Option<String>,
}

/// The XMP packet for one generated image.
pub fn packet(generation_id: Uuid, model_version: &str) -> String {
    format!(
        concat!(
            "<?xpacket begin=\"\u{feff}\" id=\"W5M0MpCehiHzreSzNTczkc9d\"?>\n",
            "<x:xmpmeta xmlns:x=\"adobe:ns:meta/\">\n",
            " <rdf:RDF xmlns:rdf=\"http://www.w3.org/1999/02/22-rdf-syntax-ns#\">\n",
            "  <rdf:Description rdf:about=\"\"\n",
            "    xmlns:Iptc4xmpExt=\"{iptc}\"\n",
            "    xmlns:stylecast=\"{ours}\"\n",
            "    Iptc4xmpExt:DigitalSourceType=\"{source}\"\n",
            "    stylecast:GenerationId=\"{id}\"\n",
            "    stylecast:ModelVersion=\"{model}\"/>\n",
            " </rdf:RDF>\n",
            "</x:xmpmeta>\n",
            "<?xpacket end=\"r\"?>"
        ),
        iptc = IPTC_EXT_NS,
        ours = STYLECAST_NS,
        source = TRAINED_ALGORITHMIC_MEDIA,
        id = generation_id,
        model = escape(model_version),
    )
}

/// Reads the provenance properties out of a packet (attribute or element form).
pub fn fields(packet: &str) -> XmpFields {
    XmpFields {
        digital_source_type: property(packet, "Iptc4xmpExt:DigitalSourceType"),
        generation_id: property(packet, "stylecast:GenerationId"),
        model_version: property(packet, "stylecast:ModelVersion"),
    }
}

/// `bytes` (as the encoder wrote them for a `width`×`height` image) with `packet` added.
pub fn insert(
    bytes: Vec<u8>,
    format: OutputFormat,
    (width, height): (u32, u32),
    packet: &str,
) -> Result<Vec<u8>, XmpError> {
    match format {
        OutputFormat::Png => insert_png(bytes, packet),
        OutputFormat::Jpeg => insert_jpeg(bytes, packet),
        OutputFormat::Webp => insert_webp(bytes, (width, height), packet),
    }
}

/// The XMP packet of an encoded image, if it has one (any format `image` reads).
pub fn read(bytes: &[u8]) -> Option<String> {
    use image::ImageDecoder;
    let mut decoder = image::ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .ok()?
        .into_decoder()
        .ok()?;
    let raw = decoder.xmp_metadata().ok()??;
    String::from_utf8(raw).ok()
}

/// After the IHDR chunk, so readers meet it before the pixels.
fn insert_png(bytes: Vec<u8>, packet: &str) -> Result<Vec<u8>, XmpError> {
    const IHDR_END: usize = 8 + 4 + 4 + 13 + 4;
    if bytes.len() < IHDR_END || bytes.get(12..16) != Some(b"IHDR".as_slice()) {
        return Err(XmpError::UnexpectedLayout("PNG"));
    }
    // keyword NUL, compression flag 0, method 0, empty language NUL, empty translation NUL.
    let mut data = Vec::with_capacity(PNG_XMP_KEYWORD.len() + 5 + packet.len());
    data.extend_from_slice(PNG_XMP_KEYWORD);
    data.extend_from_slice(&[0, 0, 0, 0, 0]);
    data.extend_from_slice(packet.as_bytes());
    let mut crc = crc32fast::Hasher::new();
    crc.update(b"iTXt");
    crc.update(&data);
    let mut out = Vec::with_capacity(bytes.len() + data.len() + 12);
    out.extend_from_slice(&bytes[..IHDR_END]);
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(b"iTXt");
    out.extend_from_slice(&data);
    out.extend_from_slice(&crc.finalize().to_be_bytes());
    out.extend_from_slice(&bytes[IHDR_END..]);
    Ok(out)
}

/// An APP1 segment after SOI and the JFIF APP0 segment (which must come first).
fn insert_jpeg(bytes: Vec<u8>, packet: &str) -> Result<Vec<u8>, XmpError> {
    if bytes.get(..2) != Some([0xFF, 0xD8].as_slice()) {
        return Err(XmpError::UnexpectedLayout("JPEG"));
    }
    let length = 2 + JPEG_XMP_NAMESPACE.len() + packet.len();
    let length = u16::try_from(length).map_err(|_| XmpError::TooLong(packet.len()))?;
    let mut at = 2;
    if bytes.get(2..4) == Some([0xFF, 0xE0].as_slice()) {
        let app0 = bytes
            .get(4..6)
            .map(|l| usize::from(u16::from_be_bytes([l[0], l[1]])))
            .ok_or(XmpError::UnexpectedLayout("JPEG"))?;
        at = 4 + app0;
    }
    if at > bytes.len() {
        return Err(XmpError::UnexpectedLayout("JPEG"));
    }
    let mut out = Vec::with_capacity(bytes.len() + usize::from(length) + 2);
    out.extend_from_slice(&bytes[..at]);
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&length.to_be_bytes());
    out.extend_from_slice(JPEG_XMP_NAMESPACE);
    out.extend_from_slice(packet.as_bytes());
    out.extend_from_slice(&bytes[at..]);
    Ok(out)
}

/// A simple WebP (one VP8/VP8L chunk) becomes an extended one: a VP8X header with the XMP
/// flag, the image chunk, then the `XMP ` chunk, which the format puts last.
fn insert_webp(bytes: Vec<u8>, (width, height): (u32, u32), packet: &str) -> Result<Vec<u8>, XmpError> {
    const XMP_FLAG: u8 = 0x04;
    if bytes.len() < 20 || &bytes[..4] != b"RIFF" || &bytes[8..12] != b"WEBP" {
        return Err(XmpError::UnexpectedLayout("WebP"));
    }
    let mut body: Vec<u8> = Vec::with_capacity(bytes.len() + packet.len() + 32);
    body.extend_from_slice(b"WEBP");
    match &bytes[12..16] {
        b"VP8X" => {
            let mut chunks = bytes[12..].to_vec();
            chunks[8] |= XMP_FLAG;
            body.extend_from_slice(&chunks);
        }
        b"VP8 " | b"VP8L" => {
            let (w, h) = (
                width.saturating_sub(1).to_le_bytes(),
                height.saturating_sub(1).to_le_bytes(),
            );
            body.extend_from_slice(b"VP8X");
            body.extend_from_slice(&10u32.to_le_bytes());
            body.extend_from_slice(&[XMP_FLAG, 0, 0, 0]);
            body.extend_from_slice(&w[..3]);
            body.extend_from_slice(&h[..3]);
            body.extend_from_slice(&bytes[12..]);
        }
        _ => return Err(XmpError::UnexpectedLayout("WebP")),
    }
    body.extend_from_slice(b"XMP ");
    body.extend_from_slice(&(packet.len() as u32).to_le_bytes());
    body.extend_from_slice(packet.as_bytes());
    if packet.len() % 2 == 1 {
        body.push(0);
    }
    let mut out = Vec::with_capacity(body.len() + 8);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn unescape(text: &str) -> String {
    text.replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// `name="value"` or `<name>value</name>`: the two ways XMP writes a simple property.
fn property(packet: &str, name: &str) -> Option<String> {
    let attribute = format!("{name}=\"");
    if let Some(start) = packet.find(&attribute).map(|i| i + attribute.len()) {
        let end = packet[start..].find('"')?;
        return Some(unescape(&packet[start..start + end]));
    }
    let open = format!("<{name}>");
    let start = packet.find(&open)? + open.len();
    let end = packet[start..].find(&format!("</{name}>"))?;
    Some(unescape(packet[start..start + end].trim()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media;
    use image::RgbImage;

    fn picture() -> RgbImage {
        RgbImage::from_fn(48, 40, |x, y| image::Rgb([(x * 5) as u8, (y * 6) as u8, 90]))
    }

    #[test]
    fn every_output_format_carries_a_readable_packet_and_still_decodes() {
        let id = Uuid::new_v4();
        let packet = packet(id, "gen-abc+enc-def&<x>");
        for format in [OutputFormat::Png, OutputFormat::Jpeg, OutputFormat::Webp] {
            let image = picture();
            let plain = media::encode(&image, format).expect("encode");
            assert_eq!(read(&plain), None, "{format:?} has no XMP before");
            let tagged = insert(plain, format, image.dimensions(), &packet).expect("insert");
            let back = read(&tagged).unwrap_or_else(|| panic!("{format:?}: no XMP read back"));
            assert_eq!(
                fields(&back),
                XmpFields {
                    digital_source_type: Some(TRAINED_ALGORITHMIC_MEDIA.into()),
                    generation_id: Some(id.to_string()),
                    model_version: Some("gen-abc+enc-def&<x>".into()),
                },
                "{format:?}"
            );
            let decoded = media::decode(&tagged, &media::MediaLimits::default()).expect("decodes");
            if format != OutputFormat::Jpeg {
                assert_eq!(decoded, image, "{format:?} pixels unchanged");
            }
        }
    }

    #[test]
    fn element_form_properties_are_read_too() {
        let packet = "<rdf:Description><Iptc4xmpExt:DigitalSourceType> http://x </Iptc4xmpExt:DigitalSourceType></rdf:Description>";
        assert_eq!(fields(packet).digital_source_type.as_deref(), Some("http://x"));
        assert_eq!(fields(packet).generation_id, None);
    }

    #[test]
    fn foreign_bytes_are_refused() {
        for format in [OutputFormat::Png, OutputFormat::Jpeg, OutputFormat::Webp] {
            assert!(insert(b"not an image".to_vec(), format, (1, 1), "x").is_err());
        }
    }
}
