//! PostgreSQL's binary COPY format (the "Binary Format" section of the COPY reference), for
//! ingest's event rows, and the two bulk paths of a model build: millions of affinity triples
//! out and millions of float vectors in. Text COPY spends most of that time printing and
//! parsing floats on both sides of the socket; binary moves the IEEE bytes as they are. sqlx
//! streams COPY data but leaves its encoding to the caller, and no maintained crate encodes it
//! for sqlx (pgcopy is a 0.0.2 sketch; postgres-binary-copy needs the `postgres` driver), so
//! this writes and reads PostgreSQL's documented framing for the types used: a signature and
//! two header words, then per tuple a 16-bit field count and per field a 32-bit length (-1:
//! NULL) and the value's big-endian binary form, then a -1 trailer.

/// "PGCOPY\n\377\r\n\0": the signature every binary COPY stream starts with.
const SIGNATURE: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";
/// Signature, flags (no OIDs) and header-extension length.
const HEADER_LEN: usize = SIGNATURE.len() + 4 + 4;
/// The type OID of `real` (float4), which an array's header names.
const FLOAT4_OID: i32 = 700;

fn malformed(what: &str) -> sqlx::Error {
    sqlx::Error::Protocol(format!("binary COPY stream: {what}"))
}

/// Rows in COPY's binary format for `COPY … FROM STDIN (FORMAT binary)`: a signature and
/// header, then per row a field count and each field as a length-prefixed big-endian value
/// (-1 for NULL), then a -1 trailer. Large streams go out in chunks (`take_chunk`).
pub struct BinaryCopy(Vec<u8>);

impl BinaryCopy {
    /// Microseconds from the Unix epoch to PostgreSQL's, 2000-01-01 UTC.
    const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

    pub fn with_capacity(bytes: usize) -> Self {
        let mut data = Vec::with_capacity(bytes + HEADER_LEN + 2);
        data.extend_from_slice(SIGNATURE);
        data.extend_from_slice(&0i32.to_be_bytes()); // flags: no OIDs
        data.extend_from_slice(&0i32.to_be_bytes()); // no header extension
        Self(data)
    }

    pub fn row(&mut self, fields: i16) {
        self.0.extend_from_slice(&fields.to_be_bytes());
    }

    fn field(&mut self, value: &[u8]) {
        self.0.extend_from_slice(&(value.len() as i32).to_be_bytes());
        self.0.extend_from_slice(value);
    }

    fn null(&mut self) {
        self.0.extend_from_slice(&(-1i32).to_be_bytes());
    }

    /// Text, and enum labels (an enum's binary form is its label).
    pub fn text(&mut self, value: Option<&str>) {
        match value {
            Some(text) => self.field(text.as_bytes()),
            None => self.null(),
        }
    }

    pub fn int8(&mut self, value: i64) {
        self.field(&value.to_be_bytes());
    }

    pub fn uuid(&mut self, value: Option<uuid::Uuid>) {
        match value {
            Some(id) => self.field(id.as_bytes()),
            None => self.null(),
        }
    }

    pub fn float4(&mut self, value: f32) {
        self.field(&value.to_be_bytes());
    }

    pub fn timestamptz(&mut self, value: chrono::DateTime<chrono::Utc>) {
        self.int8(value.timestamp_micros() - Self::PG_EPOCH_MICROS);
    }

    /// A one-dimensional `real[]` without NULLs, lower bound 1.
    pub fn float4_array(&mut self, values: impl ExactSizeIterator<Item = f32>) {
        let n = values.len();
        // ndim, has-null flag, element type, then (length, lower bound) of the dimension.
        let header = 5 * 4;
        self.0.extend_from_slice(&((header + n * 8) as i32).to_be_bytes());
        for word in [1, 0, FLOAT4_OID, n as i32, 1] {
            self.0.extend_from_slice(&word.to_be_bytes());
        }
        for value in values {
            self.float4(value);
        }
    }

    /// Bytes written since the last chunk was taken.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The bytes written so far, leaving the writer empty for the next chunk.
    pub fn take_chunk(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.0)
    }

    /// The rest with the trailer; the stream is complete once this is sent.
    pub fn finish(mut self) -> Vec<u8> {
        self.0.extend_from_slice(&(-1i16).to_be_bytes());
        self.0
    }
}

/// Decodes a binary COPY TO STDOUT stream of (bigint, bigint, double precision) tuples,
/// fed in chunks of any size.
#[derive(Default)]
pub struct TripleReader {
    pending: Vec<u8>,
    header_read: bool,
    finished: bool,
}

/// Field count, then three fields of a 4-byte length and 8 bytes of value.
const TRIPLE_LEN: usize = 2 + 3 * (4 + 8);

impl TripleReader {
    /// Decodes every complete tuple of `chunk` (with what earlier chunks left over).
    pub fn feed(&mut self, chunk: &[u8], mut each: impl FnMut(i64, i64, f64)) -> Result<(), sqlx::Error> {
        self.pending.extend_from_slice(chunk);
        let mut at = 0;
        if !self.header_read {
            if self.pending.len() < HEADER_LEN {
                return Ok(());
            }
            if &self.pending[..SIGNATURE.len()] != SIGNATURE {
                return Err(malformed("missing signature"));
            }
            let extension = word(&self.pending[SIGNATURE.len() + 4..]) as usize;
            if self.pending.len() < HEADER_LEN + extension {
                return Ok(());
            }
            at = HEADER_LEN + extension;
            self.header_read = true;
        }
        while !self.finished && self.pending.len() - at >= 2 {
            let fields = i16::from_be_bytes([self.pending[at], self.pending[at + 1]]);
            if fields == -1 {
                self.finished = true;
                at += 2;
                break;
            }
            if fields != 3 {
                return Err(malformed(&format!("{fields} fields where 3 were expected")));
            }
            if self.pending.len() - at < TRIPLE_LEN {
                break;
            }
            let tuple = &self.pending[at + 2..at + TRIPLE_LEN];
            let mut values = [0u64; 3];
            for (n, value) in values.iter_mut().enumerate() {
                let field = &tuple[n * 12..n * 12 + 12];
                if word(field) != 8 {
                    return Err(malformed("a field that is NULL or not 8 bytes"));
                }
                *value = u64::from_be_bytes(field[4..12].try_into().unwrap_or_default());
            }
            each(values[0] as i64, values[1] as i64, f64::from_bits(values[2]));
            at += TRIPLE_LEN;
        }
        self.pending.drain(..at);
        Ok(())
    }

    /// Whether the trailer arrived with nothing after it.
    pub fn finish(self) -> Result<(), sqlx::Error> {
        if self.finished && self.pending.is_empty() {
            Ok(())
        } else {
            Err(malformed("ended before its trailer"))
        }
    }
}

fn word(bytes: &[u8]) -> i32 {
    i32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn triple_stream(rows: &[(i64, i64, f64)]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(SIGNATURE);
        out.extend_from_slice(&0i32.to_be_bytes());
        out.extend_from_slice(&0i32.to_be_bytes());
        for (a, b, c) in rows {
            out.extend_from_slice(&3i16.to_be_bytes());
            for value in [*a as u64, *b as u64, c.to_bits()] {
                out.extend_from_slice(&8i32.to_be_bytes());
                out.extend_from_slice(&value.to_be_bytes());
            }
        }
        out.extend_from_slice(&(-1i16).to_be_bytes());
        out
    }

    #[test]
    fn triples_decode_whatever_the_chunking() {
        let rows = vec![(1, 2, 0.5), (i64::MAX, -7, -1e300), (0, 0, f64::MIN_POSITIVE)];
        let stream = triple_stream(&rows);
        for chunk in [1, 2, 5, 13, 38, 1000] {
            let mut reader = TripleReader::default();
            let mut got = Vec::new();
            for piece in stream.chunks(chunk) {
                reader.feed(piece, |a, b, c| got.push((a, b, c))).expect("decodes");
            }
            reader.finish().expect("complete");
            assert_eq!(got, rows, "chunks of {chunk}");
        }
    }

    #[test]
    fn a_truncated_or_foreign_stream_is_an_error() {
        let stream = triple_stream(&[(1, 2, 3.0)]);
        let mut reader = TripleReader::default();
        reader
            .feed(&stream[..stream.len() - 2], |_, _, _| {})
            .expect("so far so good");
        assert!(reader.finish().is_err());
        let mut reader = TripleReader::default();
        assert!(reader.feed(b"1\t2\t3.0\n and more text", |_, _, _| {}).is_err());
    }

    #[test]
    fn an_array_is_framed_as_postgres_sends_it() {
        let mut writer = BinaryCopy::with_capacity(64);
        writer.row(1);
        writer.float4_array([1.5f32, -2.0].into_iter());
        let bytes = writer.finish();
        let body = &bytes[HEADER_LEN..];
        assert_eq!(&body[..2], &1i16.to_be_bytes());
        assert_eq!(word(&body[2..]), 20 + 2 * 8);
        assert_eq!(word(&body[6..]), 1, "one dimension");
        assert_eq!(word(&body[14..]), FLOAT4_OID);
        assert_eq!(word(&body[18..]), 2, "two elements");
        assert_eq!(&body[30..34], &1.5f32.to_bits().to_be_bytes());
        assert_eq!(&bytes[bytes.len() - 2..], &(-1i16).to_be_bytes());
    }
}
