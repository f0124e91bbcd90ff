//! Deterministic WAL-like test data: 8 KiB pages with PostgreSQL 15 page
//! headers, records mixing repeated tuple images, counters and random bytes,
//! and a zero-filled tail as in a segment closed by `pg_switch_wal()`.

/// PostgreSQL 15's `XLOG_PAGE_MAGIC`.
pub const PG15_PAGE_MAGIC: u16 = 0xD110;
const PAGE: usize = 8192;

/// splitmix64: small, deterministic, good enough for test data.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

/// `len` bytes (a multiple of 8 KiB) of WAL-like data; the last eighth of
/// the pages are zero, like the unused tail of a switched segment.
pub fn wal_like(len: usize, seed: u64) -> Vec<u8> {
    assert_eq!(len % PAGE, 0, "length must be whole pages");
    let mut rng = Rng::new(seed);
    let mut out = vec![0u8; len];
    let pages = len / PAGE;
    let used_pages = pages - pages / 8;
    let mut lsn: u64 = 0x0300_0000;
    let mut xid: u32 = 7_000;
    for (i, page) in out.chunks_mut(PAGE).take(used_pages).enumerate() {
        // XLogPageHeaderData: magic, info, timeline, pageaddr, rem_len.
        page[0..2].copy_from_slice(&PG15_PAGE_MAGIC.to_le_bytes());
        page[2..4].copy_from_slice(&(if i == 0 { 0x0007u16 } else { 0x0005 }).to_le_bytes());
        page[4..8].copy_from_slice(&1u32.to_le_bytes());
        page[8..16].copy_from_slice(&(lsn + (i * PAGE) as u64).to_le_bytes());
        page[16..20].copy_from_slice(&(rng.below(200) as u32).to_le_bytes());
        let mut pos = 24;
        while pos + 24 + 64 < PAGE {
            let body = 64 + rng.below(300) as usize;
            let body = body.min(PAGE - pos - 24);
            // XLogRecord: tot_len, xid, prev, info, rmid, crc.
            page[pos..pos + 4].copy_from_slice(&((24 + body) as u32).to_le_bytes());
            page[pos + 4..pos + 8].copy_from_slice(&xid.to_le_bytes());
            page[pos + 8..pos + 16].copy_from_slice(&lsn.to_le_bytes());
            page[pos + 16] = [0x00, 0x10, 0x20, 0x80][rng.below(4) as usize];
            page[pos + 17] = [10u8, 11, 2, 1][rng.below(4) as usize];
            let crc = rng.next_u64().to_le_bytes();
            page[pos + 20..pos + 24].copy_from_slice(&crc[..4]);
            let payload = &mut page[pos + 24..pos + 24 + body];
            match rng.below(10) {
                // Incompressible: full-page-image fragments of random data.
                0 | 1 => rng.fill(payload),
                // pgbench-like tuple images: mostly padding and small ints.
                2..=6 => {
                    let aid = rng.below(500_000);
                    let text = format!(
                        "{aid:>10}{:>10}{:>10}{:84}",
                        aid / 100_000 + 1,
                        rng.below(10_000),
                        ""
                    );
                    for (dst, src) in payload.iter_mut().zip(text.bytes().cycle()) {
                        *dst = src;
                    }
                }
                // Counters and small structs.
                _ => {
                    for (k, dst) in payload.iter_mut().enumerate() {
                        *dst = (k as u8).wrapping_mul(3) ^ (xid as u8);
                    }
                }
            }
            lsn += (24 + body) as u64;
            xid += 1;
            pos += (24 + body + 7) & !7;
        }
    }
    out
}
