//! The `tls-server-end-point` channel-binding data (RFC 5929): a hash of
//! the server's certificate with the hash function of the certificate's
//! signature algorithm, SHA-256 in place of MD5 and SHA-1 — what the
//! PostgreSQL server computes on its side. Only the certificate's
//! `signatureAlgorithm` is read, with a minimal DER walk.

use sha2::{Digest as _, Sha224, Sha256, Sha384, Sha512};

/// The hash functions a signature algorithm can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hash {
    Sha224,
    Sha256,
    Sha384,
    Sha512,
}

/// 1.2.840.113549.1.1 (PKCS #1): the arc of the RSA signature algorithms.
const PKCS1: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01];

/// 1.2.840.10045.4: the arc of the ECDSA signature algorithms.
const ECDSA: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04];

/// The hash a signature algorithm (its OID's DER content bytes) binds
/// with, SHA-256 in place of MD5 and SHA-1 (RFC 5929 4.1); `None` for an
/// algorithm that names no usable hash (Ed25519, RSA-PSS, unknown ones).
fn binding_hash(oid: &[u8]) -> Option<Hash> {
    if let Some(rest) = oid.strip_prefix(PKCS1) {
        // md5, sha1, sha256, sha384, sha512 and sha224WithRSAEncryption.
        return match rest {
            [0x04 | 0x05 | 0x0b] => Some(Hash::Sha256),
            [0x0c] => Some(Hash::Sha384),
            [0x0d] => Some(Hash::Sha512),
            [0x0e] => Some(Hash::Sha224),
            _ => None,
        };
    }
    // ecdsa-with-SHA1, then ecdsa-with-SHA256/384/512 (arc .3).
    match oid.strip_prefix(ECDSA)? {
        [0x01] | [0x03, 0x02] => Some(Hash::Sha256),
        [0x03, 0x03] => Some(Hash::Sha384),
        [0x03, 0x04] => Some(Hash::Sha512),
        _ => None,
    }
}

/// The `tls-server-end-point` data for a DER certificate, or `None` when
/// its signature algorithm names no usable hash (Ed25519, RSA-PSS) or the
/// certificate cannot be parsed: such a server cannot do channel binding.
pub fn server_end_point_hash(cert_der: &[u8]) -> Option<Vec<u8>> {
    let oid = signature_algorithm(cert_der)?;
    let hash = binding_hash(oid)?;
    Some(match hash {
        Hash::Sha224 => Sha224::digest(cert_der).to_vec(),
        Hash::Sha256 => Sha256::digest(cert_der).to_vec(),
        Hash::Sha384 => Sha384::digest(cert_der).to_vec(),
        Hash::Sha512 => Sha512::digest(cert_der).to_vec(),
    })
}

/// `Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm
/// AlgorithmIdentifier, signature }`: the OID of `signatureAlgorithm`.
fn signature_algorithm(cert: &[u8]) -> Option<&[u8]> {
    let (certificate, _) = element(cert, 0x30)?;
    let (_tbs, rest) = element(certificate, 0x30)?;
    let (algorithm, _) = element(rest, 0x30)?;
    let (oid, _) = element(algorithm, 0x06)?;
    Some(oid)
}

/// Splits one DER element with tag `tag` off `input`: (content, rest).
fn element(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&first, input) = input.split_first()?;
    if first != tag {
        return None;
    }
    let (&len, mut input) = input.split_first()?;
    let len = if len < 0x80 {
        usize::from(len)
    } else {
        let count = usize::from(len & 0x7f);
        if count == 0 || count > 4 || input.len() < count {
            return None;
        }
        let (bytes, rest) = input.split_at(count);
        input = rest;
        bytes.iter().fold(0usize, |n, b| (n << 8) | usize::from(*b))
    };
    (input.len() >= len).then(|| input.split_at(len))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A DER element of `tag` around `content`.
    fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        let len = content.len();
        if len < 0x80 {
            out.push(u8::try_from(len).unwrap());
        } else {
            let bytes: Vec<u8> = len
                .to_be_bytes()
                .into_iter()
                .skip_while(|b| *b == 0)
                .collect();
            out.push(0x80 | u8::try_from(bytes.len()).unwrap());
            out.extend(bytes);
        }
        out.extend_from_slice(content);
        out
    }

    /// A certificate-shaped structure whose signature algorithm is `oid`,
    /// with a long tbsCertificate (long-form lengths).
    fn cert(oid: &[u8]) -> Vec<u8> {
        let tbs = tlv(0x30, &[0xab; 300]);
        let alg = tlv(0x30, &[tlv(0x06, oid), vec![0x05, 0x00]].concat());
        let sig = tlv(0x03, &[0x00, 1, 2, 3]);
        tlv(0x30, &[tbs, alg, sig].concat())
    }

    /// Every signature algorithm with a hash, by its OID's last bytes.
    fn algorithms() -> Vec<(Vec<u8>, Hash)> {
        let rsa = [
            (0x04, Hash::Sha256),
            (0x05, Hash::Sha256),
            (0x0b, Hash::Sha256),
            (0x0c, Hash::Sha384),
            (0x0d, Hash::Sha512),
            (0x0e, Hash::Sha224),
        ]
        .map(|(last, hash)| ([PKCS1, &[last]].concat(), hash));
        let ecdsa = [
            (&[0x01][..], Hash::Sha256),
            (&[0x03, 0x02], Hash::Sha256),
            (&[0x03, 0x03], Hash::Sha384),
            (&[0x03, 0x04], Hash::Sha512),
        ]
        .map(|(tail, hash)| ([ECDSA, tail].concat(), hash));
        rsa.into_iter().chain(ecdsa).collect()
    }

    #[test]
    fn hash_follows_the_signature_algorithm() {
        let algorithms = algorithms();
        for (oid, hash) in &algorithms {
            let der = cert(oid);
            let got = server_end_point_hash(&der).unwrap();
            let want = match hash {
                Hash::Sha224 => Sha224::digest(&der).to_vec(),
                Hash::Sha256 => Sha256::digest(&der).to_vec(),
                Hash::Sha384 => Sha384::digest(&der).to_vec(),
                Hash::Sha512 => Sha512::digest(&der).to_vec(),
            };
            assert_eq!(got, want, "{oid:02x?}");
        }
        // SHA-1 signatures bind with SHA-256 (32 bytes), SHA-384 with 48.
        assert_eq!(
            server_end_point_hash(&cert(&algorithms[1].0))
                .unwrap()
                .len(),
            32
        );
        assert_eq!(
            server_end_point_hash(&cert(&algorithms[8].0))
                .unwrap()
                .len(),
            48
        );
        // Ed25519 (1.3.101.112) and RSA-PSS name no hash.
        assert_eq!(server_end_point_hash(&cert(&[0x2b, 0x65, 0x70])), None);
        assert_eq!(
            server_end_point_hash(&cert(&[
                0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a
            ])),
            None
        );
    }

    #[test]
    fn malformed_certificates_give_none() {
        let good = cert(&algorithms()[7].0);
        for bad in [
            &[][..],
            &[0x30],
            &[0x31, 0x00],
            &[0x30, 0x85, 1, 1, 1, 1, 1],
            &good[..good.len() / 2],
        ] {
            assert_eq!(server_end_point_hash(bad), None, "{bad:02x?}");
        }
    }
}
