//! Request and response bodies the tests share: the deterministic body of `large.php`,
//! random bytes and their checksum, and a reader that stays open after its bytes.

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::sync::mpsc;
use std::thread::JoinHandle;

const HEX: &[u8; 16] = b"0123456789abcdef";

/// The first `len` bytes of the body that `large.php?bytes=N` sends (for `N >= len`).
///
/// The body is a sequence of 16-byte lines: line `L` (bytes `16 * L .. 16 * L + 16`) is
/// `L` written as 15 lower-case hexadecimal digits followed by `\n`, so it starts
/// `000000000000000\n000000000000001\n000000000000002\n...` and every byte depends on
/// its position: lost, repeated or reordered data never compares equal.
///
/// ```
/// assert_eq!(fcgi_testkit::large_body(20), b"000000000000000\n0000");
/// ```
pub fn large_body(len: usize) -> Vec<u8> {
    let mut body = vec![0; len];
    fill_large_body(0, &mut body);
    body
}

/// Fills `buf` with the bytes of the `large.php` body (see [`large_body`]) that start
/// at byte `offset`: lets a test check a long streamed body piece by piece without
/// holding all of it.
///
/// ```
/// let mut piece = [0u8; 5];
/// fcgi_testkit::fill_large_body(30, &mut piece);
/// assert_eq!(&piece, b"1\n000");
/// ```
pub fn fill_large_body(offset: u64, buf: &mut [u8]) {
    let mut pos = offset;
    let mut filled = 0;
    while filled < buf.len() {
        let line = line(pos / 16);
        let within = (pos % 16) as usize;
        let n = (16 - within).min(buf.len() - filled);
        buf[filled..filled + n].copy_from_slice(&line[within..within + n]);
        filled += n;
        pos += n as u64;
    }
}

fn line(number: u64) -> [u8; 16] {
    let mut out = [b'\n'; 16];
    let mut rest = number;
    for digit in out[..15].iter_mut().rev() {
        *digit = HEX[(rest & 15) as usize];
        rest >>= 4;
    }
    out
}

/// `len` deterministic pseudo-random bytes (xorshift64*) for request bodies: the same
/// `seed` gives the same bytes, so a failing size is easy to replay.
///
/// ```
/// assert_eq!(fcgi_testkit::random_bytes(5, 7), fcgi_testkit::random_bytes(5, 7));
/// assert_ne!(fcgi_testkit::random_bytes(64, 1), fcgi_testkit::random_bytes(64, 2));
/// ```
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// The sha256 of `data` in lower-case hex, as `echo.php` sends it in `X-Body-Sha256`.
///
/// ```
/// assert_eq!(
///     fcgi_testkit::hex_sha256(b""),
///     "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
/// );
/// ```
pub fn hex_sha256(data: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_count_in_hex() {
        let body = large_body(16 * 4098);
        assert_eq!(&body[..16], b"000000000000000\n");
        assert_eq!(&body[16 * 4095..16 * 4096], b"000000000000fff\n");
        assert_eq!(&body[16 * 4096..16 * 4097], b"000000000001000\n");
        assert_eq!(&body[16 * 4097..], b"000000000001001\n");
    }

    #[test]
    fn fill_at_any_offset_matches_the_whole() {
        let whole = large_body(1000);
        for offset in [0usize, 1, 15, 16, 17, 500, 999] {
            let mut piece = vec![0; 1000 - offset];
            fill_large_body(offset as u64, &mut piece);
            assert_eq!(piece, whole[offset..]);
        }
        let mut far = [0u8; 16];
        fill_large_body(16 * 0xabc_def0_1234, &mut far);
        assert_eq!(&far, b"0000abcdef01234\n");
    }
}

/// A reader over `data` that stays open after it, as a pipe or the standard input of a
/// process that has not exited: one end of a unix socket pair whose other end a thread
/// writes `data` to and holds open until the returned [`OpenWriter`] is dropped. The
/// async adapters' tests wrap it in their runtime's socket type (set it non-blocking
/// first where the runtime asks for it).
///
/// ```
/// use std::io::Read;
///
/// let (mut reader, writer) = fcgi_testkit::open_reader(b"abc");
/// let mut got = [0; 3];
/// reader.read_exact(&mut got).unwrap();
/// assert_eq!(&got, b"abc");
/// drop(writer); // now the reader sees its end
/// assert_eq!(reader.read(&mut got).unwrap(), 0);
/// ```
pub fn open_reader(data: &[u8]) -> (UnixStream, OpenWriter) {
    let (reader, mut writer) = UnixStream::pair().expect("a unix socket pair");
    let (done, wait_done) = mpsc::channel::<()>();
    let data = data.to_vec();
    let feeder = std::thread::spawn(move || {
        let _ = writer.write_all(&data);
        let _ = wait_done.recv();
    });
    (reader, OpenWriter(Some((done, feeder))))
}

/// Holds the write end of an [`open_reader`] open; dropping it closes it.
#[derive(Debug)]
pub struct OpenWriter(Option<(mpsc::Sender<()>, JoinHandle<()>)>);

impl Drop for OpenWriter {
    fn drop(&mut self) {
        if let Some((done, feeder)) = self.0.take() {
            drop(done);
            let _ = feeder.join();
        }
    }
}
