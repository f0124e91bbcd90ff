//! Bounded-buffer copy helpers, generic over [`Read`]/[`Write`]: the caller
//! owns file handling (temporary file, fsync, rename).

use std::io::{self, Read, Write};

use super::{Decoder, Encoder};

/// The buffer size used by [`copy_stream`] (128 KiB).
pub const COPY_BUFFER_SIZE: usize = 128 * 1024;

/// Copies `src` to `dst` through one [`COPY_BUFFER_SIZE`] buffer; returns the
/// number of bytes copied. `dst` is not flushed.
pub fn copy_stream<R, W>(src: &mut R, dst: &mut W) -> io::Result<u64>
where
    R: Read + ?Sized,
    W: Write + ?Sized,
{
    let mut buf = vec![0u8; COPY_BUFFER_SIZE];
    let mut total = 0u64;
    loop {
        let n = match src.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        dst.write_all(&buf[..n])?;
        total += n as u64;
    }
}

/// Compresses all of `src` through `encoder` and finishes the stream.
/// Returns the number of uncompressed bytes read and the inner writer.
///
/// ```
/// use barman_wal::{compress, decompress, Compression, CompressionLevel};
/// let enc = Compression::Gzip.writer(Vec::new(), CompressionLevel::Medium)?;
/// let (read, stored) = compress(&mut &b"hello WAL"[..], enc)?;
/// assert_eq!(read, 9);
/// let mut out = Vec::new();
/// decompress(Compression::Gzip.reader(stored.as_slice())?, &mut out)?;
/// assert_eq!(out, b"hello WAL");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn compress<R, W>(src: &mut R, mut encoder: Encoder<W>) -> io::Result<(u64, W)>
where
    R: Read + ?Sized,
    W: Write,
{
    let n = copy_stream(src, &mut encoder)?;
    Ok((n, encoder.finish()?))
}

/// Decompresses all of `decoder` into `dst` and flushes it; returns the
/// number of uncompressed bytes written.
pub fn decompress<R, W>(mut decoder: Decoder<R>, dst: &mut W) -> io::Result<u64>
where
    R: Read,
    W: Write + ?Sized,
{
    let n = copy_stream(&mut decoder, dst)?;
    dst.flush()?;
    Ok(n)
}
