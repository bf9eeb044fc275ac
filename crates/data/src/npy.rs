//! A small, strict reader and writer for `.npy` files holding little-endian `f32` 2-D C-order
//! arrays (NPY format versions 1.0, 2.0 and 3.0).
//!
//! Everything else (other dtypes, big-endian data, Fortran order, 1-D or 3-D shapes, pickled
//! objects, truncated or oversized data) is rejected with a [`DataError::Npy`] that names the
//! file. The writer emits version 1.0 (2.0 when the header would not fit), with the header
//! padded so the data starts on a 64-byte boundary, as NumPy does; NumPy reads the files back
//! with `numpy.load`.

use std::path::Path;

use crate::error::{DataError, Result};

const MAGIC: &[u8; 6] = b"\x93NUMPY";

/// A dense row-major `rows x cols` matrix of `f32`.
#[derive(Debug, Clone, PartialEq)]
pub struct Matrix {
    /// Number of rows.
    pub rows: usize,
    /// Number of columns.
    pub cols: usize,
    /// `rows * cols` values, row after row.
    pub data: Vec<f32>,
}

impl Matrix {
    /// A matrix from its row-major values; fails when `data.len() != rows * cols`.
    pub fn new(rows: usize, cols: usize, data: Vec<f32>) -> Result<Self> {
        let expected = rows
            .checked_mul(cols)
            .ok_or_else(|| DataError::InvalidArgument(format!("{rows} x {cols} overflows")))?;
        if data.len() != expected {
            return Err(DataError::Shape {
                what: format!("{rows} x {cols} matrix"),
                unit: "values",
                expected,
                got: data.len(),
            });
        }
        Ok(Self { rows, cols, data })
    }

    /// Row `i`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }

    /// The first non-finite value, as `(row, col, value)`.
    pub fn first_non_finite(&self) -> Option<(usize, usize, f32)> {
        let cols = self.cols.max(1);
        self.data
            .iter()
            .position(|v| !v.is_finite())
            .map(|i| (i / cols, i % cols, self.data[i]))
    }
}

/// Reads a `.npy` file holding a little-endian f32 2-D C-order array.
pub fn read_npy_f32(path: &Path) -> Result<Matrix> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    parse_npy_f32(&bytes, path)
}

/// Parses the bytes of a `.npy` file (`path` is only used in error messages).
pub fn parse_npy_f32(bytes: &[u8], path: &Path) -> Result<Matrix> {
    let err = |m: String| DataError::npy(path, m);
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err(err("missing the \\x93NUMPY magic string".into()));
    }
    let (major, minor) = (bytes[6], bytes[7]);
    let (header_len, header_start): (usize, usize) = match (major, minor) {
        (1, 0) => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        (2, 0) | (3, 0) => {
            if bytes.len() < 12 {
                return Err(err("truncated header".into()));
            }
            let n = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
            (n as usize, 12)
        }
        _ => {
            return Err(err(format!(
                "unsupported format version {major}.{minor} (expected 1.0, 2.0 or 3.0)"
            )))
        }
    };
    let data_start = header_start
        .checked_add(header_len)
        .filter(|&end| end <= bytes.len())
        .ok_or_else(|| {
            err(format!(
                "header of {header_len} bytes runs past the end of the file"
            ))
        })?;
    let header_bytes = &bytes[header_start..data_start];
    let header = if major == 3 {
        std::str::from_utf8(header_bytes).map_err(|_| err("header is not UTF-8".into()))?
    } else {
        if !header_bytes.is_ascii() {
            return Err(err("header is not ASCII".into()));
        }
        std::str::from_utf8(header_bytes).map_err(|_| err("header is not ASCII".into()))?
    };
    let h = parse_header(header).map_err(|m| err(format!("bad header {header:?}: {m}")))?;
    match h.descr.as_str() {
        "<f4" => {}
        ">f4" => {
            return Err(err(
                "big-endian f32 data ('>f4'); convert with .astype('<f4')".into(),
            ))
        }
        d => {
            return Err(err(format!(
                "dtype '{d}' (expected little-endian float32, '<f4'; convert with .astype('<f4'))"
            )))
        }
    }
    if h.fortran_order {
        return Err(err(
            "Fortran-order array (expected C order; save numpy.ascontiguousarray(x))".into(),
        ));
    }
    if h.shape.len() != 2 {
        return Err(err(format!(
            "{}-D array of shape {:?} (expected a 2-D array: rows x dimension)",
            h.shape.len(),
            h.shape
        )));
    }
    let (rows, cols) = (h.shape[0], h.shape[1]);
    let n = rows
        .checked_mul(cols)
        .and_then(|n| n.checked_mul(4))
        .ok_or_else(|| err(format!("shape ({rows}, {cols}) overflows")))?;
    let data = &bytes[data_start..];
    if data.len() != n {
        return Err(err(format!(
            "shape ({rows}, {cols}) needs {n} bytes of data, the file has {}",
            data.len()
        )));
    }
    let values: Vec<f32> = data
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Ok(Matrix {
        rows,
        cols,
        data: values,
    })
}

/// Writes `m` as a `.npy` file (little-endian f32, C order, shape `(rows, cols)`) with
/// [`write_atomic`](crate::write_atomic): through a temporary file renamed into place.
pub fn write_npy_f32(path: &Path, m: &Matrix) -> Result<()> {
    crate::write_atomic(path, &encode_npy_f32(m)?)
}

/// The bytes of a `.npy` file holding `m`.
pub fn encode_npy_f32(m: &Matrix) -> Result<Vec<u8>> {
    if m.data.len() != m.rows * m.cols {
        return Err(DataError::Shape {
            what: "matrix to write".into(),
            unit: "values",
            expected: m.rows * m.cols,
            got: m.data.len(),
        });
    }
    let dict = format!(
        "{{'descr': '<f4', 'fortran_order': False, 'shape': ({}, {}), }}",
        m.rows, m.cols
    );
    // Version 1.0 has a 2-byte header length; pad magic + version + length + dict + '\n' to a
    // multiple of 64 bytes.
    let (version, len_bytes) = if dict.len() + 11 < 65535 {
        (1u8, 2)
    } else {
        (2u8, 4)
    };
    let prefix = 6 + 2 + len_bytes;
    let total = (prefix + dict.len() + 1).div_ceil(64) * 64;
    let header_len = total - prefix;
    let mut out = Vec::with_capacity(total + m.data.len() * 4);
    out.extend_from_slice(MAGIC);
    out.push(version);
    out.push(0);
    if version == 1 {
        out.extend_from_slice(&(header_len as u16).to_le_bytes());
    } else {
        out.extend_from_slice(&(header_len as u32).to_le_bytes());
    }
    out.extend_from_slice(dict.as_bytes());
    out.resize(total - 1, b' ');
    out.push(b'\n');
    for v in &m.data {
        out.extend_from_slice(&v.to_le_bytes());
    }
    Ok(out)
}

#[derive(Debug)]
struct Header {
    descr: String,
    fortran_order: bool,
    shape: Vec<usize>,
}

/// Parses the Python dict literal of an NPY header: exactly the keys `descr` (a string),
/// `fortran_order` (True/False) and `shape` (a tuple of non-negative integers), in any order,
/// with an optional trailing comma, followed by spaces and one newline.
fn parse_header(s: &str) -> std::result::Result<Header, String> {
    let mut p = Lexer {
        s: s.as_bytes(),
        i: 0,
    };
    p.ws();
    p.expect(b'{')?;
    let (mut descr, mut fortran, mut shape) = (None, None, None);
    loop {
        p.ws();
        if p.eat(b'}') {
            break;
        }
        let key = p.string()?;
        p.ws();
        p.expect(b':')?;
        p.ws();
        match key.as_str() {
            "descr" if descr.is_none() => descr = Some(p.string()?),
            "fortran_order" if fortran.is_none() => fortran = Some(p.boolean()?),
            "shape" if shape.is_none() => shape = Some(p.tuple()?),
            "descr" | "fortran_order" | "shape" => return Err(format!("key '{key}' twice")),
            other => return Err(format!("unexpected key '{other}'")),
        }
        p.ws();
        if p.eat(b',') {
            continue;
        }
        p.ws();
        p.expect(b'}')?;
        break;
    }
    p.ws();
    if p.i != p.s.len() {
        return Err("trailing characters after the dict".into());
    }
    Ok(Header {
        descr: descr.ok_or("missing 'descr'")?,
        fortran_order: fortran.ok_or("missing 'fortran_order'")?,
        shape: shape.ok_or("missing 'shape'")?,
    })
}

struct Lexer<'a> {
    s: &'a [u8],
    i: usize,
}

impl Lexer<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && matches!(self.s[self.i], b' ' | b'\t' | b'\n' | b'\r') {
            self.i += 1;
        }
    }
    fn eat(&mut self, c: u8) -> bool {
        if self.s.get(self.i) == Some(&c) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn expect(&mut self, c: u8) -> std::result::Result<(), String> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(format!("expected '{}' at byte {}", c as char, self.i))
        }
    }
    fn string(&mut self) -> std::result::Result<String, String> {
        let q = match self.s.get(self.i) {
            Some(&q @ (b'\'' | b'"')) => q,
            _ => return Err(format!("expected a quoted string at byte {}", self.i)),
        };
        self.i += 1;
        let start = self.i;
        while self.i < self.s.len() && self.s[self.i] != q {
            if self.s[self.i] == b'\\' {
                return Err("escapes in header strings are not supported".into());
            }
            self.i += 1;
        }
        if self.i >= self.s.len() {
            return Err("unterminated string".into());
        }
        let v = String::from_utf8_lossy(&self.s[start..self.i]).into_owned();
        self.i += 1;
        Ok(v)
    }
    fn boolean(&mut self) -> std::result::Result<bool, String> {
        if self.s[self.i..].starts_with(b"True") {
            self.i += 4;
            Ok(true)
        } else if self.s[self.i..].starts_with(b"False") {
            self.i += 5;
            Ok(false)
        } else {
            Err(format!("expected True or False at byte {}", self.i))
        }
    }
    fn tuple(&mut self) -> std::result::Result<Vec<usize>, String> {
        self.expect(b'(')?;
        let mut v = Vec::new();
        loop {
            self.ws();
            if self.eat(b')') {
                break;
            }
            let start = self.i;
            while self.i < self.s.len() && self.s[self.i].is_ascii_digit() {
                self.i += 1;
            }
            if start == self.i {
                return Err(format!("expected a dimension at byte {}", self.i));
            }
            let digits = std::str::from_utf8(&self.s[start..self.i]).map_err(|e| e.to_string())?;
            // NumPy may write `3L` in Python 2 files.
            self.eat(b'L');
            v.push(
                digits
                    .parse::<usize>()
                    .map_err(|_| format!("dimension {digits} is too large"))?,
            );
            self.ws();
            if self.eat(b',') {
                continue;
            }
            self.ws();
            self.expect(b')')?;
            break;
        }
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> &'static Path {
        Path::new("x.npy")
    }

    #[test]
    fn round_trip_and_alignment() {
        let m = Matrix::new(3, 2, vec![1.0, -2.0, 3.5, 0.0, f32::MIN_POSITIVE, 7.25]).unwrap();
        let b = encode_npy_f32(&m).unwrap();
        assert_eq!(&b[..8], b"\x93NUMPY\x01\x00");
        let hl = u16::from_le_bytes([b[8], b[9]]) as usize;
        assert_eq!((10 + hl) % 64, 0);
        assert_eq!(b[10 + hl - 1], b'\n');
        assert_eq!(parse_npy_f32(&b, p()).unwrap(), m);
    }

    #[test]
    fn reads_numpy_written_headers() {
        // Exactly what numpy 1.x writes for np.zeros((2, 3), np.float32).
        let mut b =
            b"\x93NUMPY\x01\x00v\x00{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"
                .to_vec();
        b.resize(10 + 0x76 - 1, b' ');
        b.push(b'\n');
        b.extend(std::iter::repeat_n(0u8, 24));
        let m = parse_npy_f32(&b, p()).unwrap();
        assert_eq!((m.rows, m.cols), (2, 3));
        // Version 3 (UTF-8 header), keys in another order, no trailing comma.
        let dict = "{'shape': (1, 1), 'fortran_order': False, 'descr': '<f4'}\n";
        let mut b = b"\x93NUMPY\x03\x00".to_vec();
        b.extend_from_slice(&(dict.len() as u32).to_le_bytes());
        b.extend_from_slice(dict.as_bytes());
        b.extend_from_slice(&1.5f32.to_le_bytes());
        assert_eq!(parse_npy_f32(&b, p()).unwrap().data, vec![1.5]);
    }

    fn with_dict(dict: &str, data: usize) -> Vec<u8> {
        let mut b = b"\x93NUMPY\x01\x00".to_vec();
        b.extend_from_slice(&((dict.len() + 1) as u16).to_le_bytes());
        b.extend_from_slice(dict.as_bytes());
        b.push(b'\n');
        b.extend(std::iter::repeat_n(0u8, data));
        b
    }

    #[test]
    fn rejects_everything_else() {
        let cases = [
            ("{'descr': '<f8', 'fortran_order': False, 'shape': (1, 1), }", 8, "float32"),
            ("{'descr': '>f4', 'fortran_order': False, 'shape': (1, 1), }", 4, "big-endian"),
            ("{'descr': '<f4', 'fortran_order': True, 'shape': (1, 1), }", 4, "Fortran"),
            ("{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }", 16, "2-D"),
            ("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2, 2), }", 16, "2-D"),
            ("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }", 12, "needs 16 bytes"),
            ("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }", 20, "needs 16 bytes"),
            ("{'descr': '<f4', 'shape': (2, 2), }", 16, "missing 'fortran_order'"),
            ("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), 'x': 1}", 16, "unexpected key"),
            ("{'descr': '|O', 'fortran_order': False, 'shape': (1, 1), }", 8, "dtype"),
            ("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999999, 1), }", 0, "too large"),
            ("{'descr': '<f4', 'fortran_order': False, 'shape': (9223372036854775807, 9223372036854775807), }", 0, "overflows"),
        ];
        for (dict, n, needle) in cases {
            let e = parse_npy_f32(&with_dict(dict, n), p())
                .unwrap_err()
                .to_string();
            assert!(e.contains("x.npy") && e.contains(needle), "{dict}: {e}");
        }
        for bad in [
            &b""[..],
            b"\x93NUMPY",
            b"PK\x03\x04aaaaaaaa",
            b"\x93NUMPY\x04\x00\x00\x00",
        ] {
            let e = parse_npy_f32(bad, p()).unwrap_err().to_string();
            assert!(e.contains("x.npy"), "{e}");
        }
        let mut b = with_dict(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1), }",
            4,
        );
        b[8] = 0xff;
        assert!(parse_npy_f32(&b, p()).is_err());
    }

    proptest::proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let _ = parse_npy_f32(&bytes, p());
            let mut b = b"\x93NUMPY\x01\x00".to_vec();
            b.extend_from_slice(&bytes);
            let _ = parse_npy_f32(&b, p());
        }

        #[test]
        fn round_trips(rows in 0usize..6, cols in 0usize..6, seed in 0u32..1000) {
            let data: Vec<f32> = (0..rows * cols).map(|i| (i as f32 + seed as f32) * 0.37 - 3.0).collect();
            let m = Matrix::new(rows, cols, data).unwrap();
            proptest::prop_assert_eq!(parse_npy_f32(&encode_npy_f32(&m).unwrap(), p()).unwrap(), m);
        }
    }
}
