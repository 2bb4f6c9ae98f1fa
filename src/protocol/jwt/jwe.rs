//! JSON Web Encryption (RFC 7516) of a signed JWT, compact form, as the platform's "Enforce
//! JWE Encryption" app setting asks for. The platform names neither the algorithms nor whether
//! the signed JWT is nested ([gap]); this models one configurable profile: key management
//! `RSA-OAEP-256` or `RSA-OAEP`, content encryption `A256GCM` or `A128CBC-HS256`, the payload
//! the signed JWT itself (`cty: "JWT"`, RFC 7519 §5.2), encrypted to the bot's public key.
//! Pure Rust (RustCrypto `rsa`, `aes-gcm`, `aes` + `cbc` + `hmac`).

use aes_gcm::aead::{Aead, KeyInit, Payload};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use hmac::Mac as _;
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePublicKey, LineEnding};
use rsa::{Oaep, RsaPrivateKey, RsaPublicKey};

use super::JwtError;

/// Key management.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyAlg {
    /// RSAES-OAEP with SHA-256 and MGF1-SHA-256.
    #[default]
    RsaOaep256,
    /// RSAES-OAEP with SHA-1 (RFC 7518's `RSA-OAEP`).
    RsaOaep,
}

/// Content encryption.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ContentEnc {
    /// AES-256 in GCM.
    #[default]
    A256Gcm,
    /// AES-128-CBC with HMAC-SHA-256 (RFC 7518 §5.2.3).
    A128CbcHs256,
}

impl KeyAlg {
    /// The header's `alg`.
    pub fn name(self) -> &'static str {
        match self {
            KeyAlg::RsaOaep256 => "RSA-OAEP-256",
            KeyAlg::RsaOaep => "RSA-OAEP",
        }
    }

    /// From the header's `alg`.
    pub fn parse(s: &str) -> Option<KeyAlg> {
        match s {
            "RSA-OAEP-256" => Some(KeyAlg::RsaOaep256),
            "RSA-OAEP" => Some(KeyAlg::RsaOaep),
            _ => None,
        }
    }

    fn padding(self) -> Oaep {
        match self {
            KeyAlg::RsaOaep256 => Oaep::new::<sha2::Sha256>(),
            KeyAlg::RsaOaep => Oaep::new::<sha1::Sha1>(),
        }
    }
}

impl ContentEnc {
    /// The header's `enc`.
    pub fn name(self) -> &'static str {
        match self {
            ContentEnc::A256Gcm => "A256GCM",
            ContentEnc::A128CbcHs256 => "A128CBC-HS256",
        }
    }

    /// From the header's `enc`.
    pub fn parse(s: &str) -> Option<ContentEnc> {
        match s {
            "A256GCM" => Some(ContentEnc::A256Gcm),
            "A128CBC-HS256" => Some(ContentEnc::A128CbcHs256),
            _ => None,
        }
    }

    fn key_len(self) -> usize {
        32
    }

    fn iv_len(self) -> usize {
        match self {
            ContentEnc::A256Gcm => 12,
            ContentEnc::A128CbcHs256 => 16,
        }
    }
}

/// What encrypts a user's signed token: the bot's public key and the profile.
#[derive(Debug, Clone)]
pub struct Encrypter {
    /// The bot's public key.
    pub key: RsaPublicKey,
    /// Key management.
    pub alg: KeyAlg,
    /// Content encryption.
    pub enc: ContentEnc,
}

impl Encrypter {
    /// The compact JWE of `jwt`.
    pub fn encrypt(&self, jwt: &str) -> Result<String, JwtError> {
        encrypt(jwt, &self.key, self.alg, self.enc)
    }
}

/// True when `token` has the five parts of a compact JWE (a JWS has three).
pub fn is_jwe(token: &str) -> bool {
    token.bytes().filter(|b| *b == b'.').count() == 4
}

/// A public key to encrypt to, from PEM (SPKI `PUBLIC KEY` or PKCS#1 `RSA PUBLIC KEY`).
pub fn public_key_from_pem(pem: &str) -> Result<RsaPublicKey, JwtError> {
    use rsa::pkcs1::DecodeRsaPublicKey;
    RsaPublicKey::from_public_key_pem(pem)
        .or_else(|_| RsaPublicKey::from_pkcs1_pem(pem))
        .map_err(|e| JwtError::InvalidKey(format!("not an RSA public key: {e}")))
}

/// A private key to decrypt with, from PEM (PKCS#8 or PKCS#1).
pub fn private_key_from_pem(pem: &str) -> Result<RsaPrivateKey, JwtError> {
    use rsa::pkcs1::DecodeRsaPrivateKey;
    RsaPrivateKey::from_pkcs8_pem(pem)
        .or_else(|_| RsaPrivateKey::from_pkcs1_pem(pem))
        .map_err(|e| JwtError::InvalidKey(format!("not an RSA private key: {e}")))
}

/// The public half of a private key, as SPKI PEM.
pub fn public_pem(key: &RsaPrivateKey) -> String {
    RsaPublicKey::from(key)
        .to_public_key_pem(LineEnding::LF)
        .unwrap_or_default()
}

/// A 96-bit GCM nonce (the caller checked the length).
fn nonce(iv: &[u8]) -> aes_gcm::Nonce<aes_gcm::aead::consts::U12> {
    let mut n = aes_gcm::Nonce::<aes_gcm::aead::consts::U12>::default();
    n.copy_from_slice(iv);
    n
}

fn random(n: usize) -> Vec<u8> {
    use rand::RngCore;
    let mut v = vec![0u8; n];
    rand::rng().fill_bytes(&mut v);
    v
}

/// AES-128-CBC + HMAC-SHA-256 (RFC 7518 §5.2.2): the ciphertext and the 16-byte tag.
fn cbc_hs256_seal(key: &[u8], iv: &[u8], aad: &[u8], plain: &[u8]) -> (Vec<u8>, Vec<u8>) {
    use cbc::cipher::{BlockEncryptMut, KeyIvInit};
    let (mac_key, enc_key) = key.split_at(16);
    let ct = cbc::Encryptor::<aes::Aes128>::new(enc_key.into(), iv.into())
        .encrypt_padded_vec_mut::<cbc::cipher::block_padding::Pkcs7>(plain);
    let tag = cbc_hs256_tag(mac_key, iv, aad, &ct);
    (ct, tag)
}

fn cbc_hs256_tag(mac_key: &[u8], iv: &[u8], aad: &[u8], ct: &[u8]) -> Vec<u8> {
    let mut mac = <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(mac_key)
        .expect("HMAC takes any key length");
    mac.update(aad);
    mac.update(iv);
    mac.update(ct);
    mac.update(&((aad.len() as u64) * 8).to_be_bytes());
    mac.finalize().into_bytes()[..16].to_vec()
}

fn cbc_hs256_open(key: &[u8], iv: &[u8], aad: &[u8], ct: &[u8], tag: &[u8]) -> Option<Vec<u8>> {
    use cbc::cipher::{BlockDecryptMut, KeyIvInit};
    use subtle::ConstantTimeEq;
    if key.len() != 32 || iv.len() != 16 {
        return None;
    }
    let (mac_key, enc_key) = key.split_at(16);
    let expected = cbc_hs256_tag(mac_key, iv, aad, ct);
    if !bool::from(expected.ct_eq(tag)) {
        return None;
    }
    cbc::Decryptor::<aes::Aes128>::new(enc_key.into(), iv.into())
        .decrypt_padded_vec_mut::<cbc::cipher::block_padding::Pkcs7>(ct)
        .ok()
}

/// Encrypts a signed JWT to `key`: `header.encrypted_key.iv.ciphertext.tag`.
pub fn encrypt(
    jwt: &str,
    key: &RsaPublicKey,
    alg: KeyAlg,
    enc: ContentEnc,
) -> Result<String, JwtError> {
    let header = format!(
        r#"{{"alg":"{}","enc":"{}","cty":"JWT","typ":"JWT"}}"#,
        alg.name(),
        enc.name()
    );
    let header_b64 = B64.encode(header);
    let cek = random(enc.key_len());
    let iv = random(enc.iv_len());
    let mut rng = rand_core06::OsRng;
    let encrypted_key = key
        .encrypt(&mut rng, alg.padding(), &cek)
        .map_err(|e| JwtError::InvalidKey(format!("cannot encrypt the content key: {e}")))?;
    let aad = header_b64.as_bytes();
    let (ct, tag) = match enc {
        ContentEnc::A256Gcm => {
            let cipher = aes_gcm::Aes256Gcm::new_from_slice(&cek)
                .map_err(|e| JwtError::InvalidKey(e.to_string()))?;
            let mut sealed = cipher
                .encrypt(
                    &nonce(&iv),
                    Payload {
                        msg: jwt.as_bytes(),
                        aad,
                    },
                )
                .map_err(|_| JwtError::InvalidKey("AES-GCM encryption failed".into()))?;
            let tag = sealed.split_off(sealed.len() - 16);
            (sealed, tag)
        }
        ContentEnc::A128CbcHs256 => cbc_hs256_seal(&cek, &iv, aad, jwt.as_bytes()),
    };
    Ok(format!(
        "{header_b64}.{}.{}.{}.{}",
        B64.encode(encrypted_key),
        B64.encode(iv),
        B64.encode(ct),
        B64.encode(tag)
    ))
}

/// Decrypts a compact JWE with `key`, giving the signed JWT inside (still to be verified).
pub fn decrypt(token: &str, key: &RsaPrivateKey) -> Result<String, JwtError> {
    let bad = |why: &str| JwtError::Malformed(format!("JWE: {why}"));
    let parts: Vec<&str> = token.split('.').collect();
    let [h, k, iv, ct, tag] = parts[..] else {
        return Err(bad("expected five dot-separated parts"));
    };
    let dec = |p: &str, what: &str| {
        B64.decode(p)
            .map_err(|_| bad(&format!("{what} is not base64url")))
    };
    #[derive(serde::Deserialize)]
    struct Header {
        alg: String,
        enc: String,
    }
    let header: Header =
        serde_json::from_slice(&dec(h, "header")?).map_err(|_| bad("header is not JSON"))?;
    let alg = KeyAlg::parse(&header.alg)
        .ok_or_else(|| JwtError::UnsupportedAlgorithm(header.alg.clone()))?;
    let enc = ContentEnc::parse(&header.enc)
        .ok_or_else(|| JwtError::UnsupportedAlgorithm(header.enc.clone()))?;
    let cek = key
        .decrypt(alg.padding(), &dec(k, "encrypted key")?)
        .map_err(|_| JwtError::JweUndecryptable)?;
    let (iv, ct, tag) = (dec(iv, "iv")?, dec(ct, "ciphertext")?, dec(tag, "tag")?);
    let aad = h.as_bytes();
    let plain = match enc {
        ContentEnc::A256Gcm => {
            if cek.len() != 32 || iv.len() != 12 || tag.len() != 16 {
                return Err(JwtError::JweUndecryptable);
            }
            let cipher =
                aes_gcm::Aes256Gcm::new_from_slice(&cek).map_err(|_| JwtError::JweUndecryptable)?;
            let mut sealed = ct;
            sealed.extend_from_slice(&tag);
            cipher
                .decrypt(&nonce(&iv), Payload { msg: &sealed, aad })
                .map_err(|_| JwtError::JweUndecryptable)?
        }
        ContentEnc::A128CbcHs256 => {
            cbc_hs256_open(&cek, &iv, aad, &ct, &tag).ok_or(JwtError::JweUndecryptable)?
        }
    };
    String::from_utf8(plain).map_err(|_| bad("the payload is not text"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> RsaPrivateKey {
        private_key_from_pem(include_str!("../../../scenarios/bots/demo-jwe.key.pem")).unwrap()
    }

    #[test]
    fn every_profile_round_trips_and_a_changed_byte_is_refused() {
        let k = key();
        let public = RsaPublicKey::from(&k);
        for alg in [KeyAlg::RsaOaep256, KeyAlg::RsaOaep] {
            for enc in [ContentEnc::A256Gcm, ContentEnc::A128CbcHs256] {
                let jwe = encrypt("a.b.c", &public, alg, enc).unwrap();
                assert!(is_jwe(&jwe));
                assert_eq!(decrypt(&jwe, &k).unwrap(), "a.b.c", "{alg:?} {enc:?}");
                // A changed ciphertext, tag or header fails authentication.
                let parts: Vec<&str> = jwe.split('.').collect();
                for i in [0usize, 3, 4] {
                    let mut p: Vec<String> = parts.iter().map(|s| s.to_string()).collect();
                    let mut bytes = B64.decode(&p[i]).unwrap();
                    bytes[0] ^= 1;
                    p[i] = B64.encode(bytes);
                    assert!(
                        decrypt(&p.join("."), &k).is_err(),
                        "{alg:?} {enc:?} part {i}"
                    );
                }
            }
        }
        assert!(!is_jwe("a.b.c"));
    }

    /// RFC 7518 Appendix B.1: AES_128_CBC_HMAC_SHA_256 test vector.
    #[test]
    fn a128cbc_hs256_matches_rfc_7518() {
        let hex = |s: &str| {
            let s: String = s.split_whitespace().collect();
            (0..s.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
                .collect::<Vec<u8>>()
        };
        let k = hex("00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f 10 11 12 13 14 15 16 17 18 19 1a 1b 1c 1d 1e 1f");
        let p = hex("41 20 63 69 70 68 65 72 20 73 79 73 74 65 6d 20 6d 75 73 74 20 6e 6f 74 20 62 65 20 72 65 71 75 69 72 65 64 20 74 6f 20 62 65 20 73 65 63 72 65 74 2c 20 61 6e 64 20 69 74 20 6d 75 73 74 20 62 65 20 61 62 6c 65 20 74 6f 20 66 61 6c 6c 20 69 6e 74 6f 20 74 68 65 20 68 61 6e 64 73 20 6f 66 20 74 68 65 20 65 6e 65 6d 79 20 77 69 74 68 6f 75 74 20 69 6e 63 6f 6e 76 65 6e 69 65 6e 63 65");
        let iv = hex("1a f3 8c 2d c2 b9 6f fd d8 66 94 09 23 41 bc 04");
        let a = hex("54 68 65 20 73 65 63 6f 6e 64 20 70 72 69 6e 63 69 70 6c 65 20 6f 66 20 41 75 67 75 73 74 65 20 4b 65 72 63 6b 68 6f 66 66 73");
        let (ct, tag) = cbc_hs256_seal(&k, &iv, &a, &p);
        assert_eq!(tag, hex("65 2c 3f a3 6b 0a 7c 5b 32 19 fa b3 a3 0b c1 c4"));
        assert_eq!(
            &ct[..16],
            &hex("c8 0e df a3 2d df 39 d5 ef 00 c0 b4 68 83 42 79")[..]
        );
        assert_eq!(cbc_hs256_open(&k, &iv, &a, &ct, &tag).unwrap(), p);
    }
}
