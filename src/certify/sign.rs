//! Signing: Ed25519 keys (PKCS#8 / SPKI PEM), and DSSE envelopes (the in-toto signature
//! wrapper: the signature covers `PAE(payloadType, payload)`, never re-serialised JSON).

use base64::Engine as _;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The payload type of an in-toto statement.
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

/// Why a key or a signature is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    /// A key file that is not an Ed25519 key.
    #[error("not an Ed25519 key in PEM ({0})")]
    Key(String),
    /// A signature that does not verify.
    #[error("the signature does not verify with this key")]
    BadSignature,
    /// A malformed envelope.
    #[error("not a DSSE envelope: {0}")]
    Envelope(String),
}

/// A new random signing key.
pub fn generate() -> SigningKey {
    SigningKey::from_bytes(&rand::random::<[u8; 32]>())
}

/// The private key as PKCS#8 PEM.
pub fn private_pem(key: &SigningKey) -> Result<String, SignError> {
    key.to_pkcs8_pem(Default::default())
        .map(|p| p.to_string())
        .map_err(|e| SignError::Key(e.to_string()))
}

/// The public key as SPKI PEM.
pub fn public_pem(key: &VerifyingKey) -> Result<String, SignError> {
    key.to_public_key_pem(Default::default())
        .map_err(|e| SignError::Key(e.to_string()))
}

/// Reads a PKCS#8 PEM private key.
pub fn read_private(pem: &str) -> Result<SigningKey, SignError> {
    SigningKey::from_pkcs8_pem(pem).map_err(|e| SignError::Key(e.to_string()))
}

/// Reads an SPKI PEM public key.
pub fn read_public(pem: &str) -> Result<VerifyingKey, SignError> {
    VerifyingKey::from_public_key_pem(pem).map_err(|e| SignError::Key(e.to_string()))
}

/// The key id: sha256 of the raw public key, hex.
pub fn key_id(key: &VerifyingKey) -> String {
    hex(&Sha256::digest(key.as_bytes()))
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// sha256 of `bytes`, hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// DSSE's pre-authentication encoding.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {payload_type} {} ",
        payload_type.len(),
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

/// A DSSE envelope.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Envelope {
    /// The payload's type.
    pub payload_type: String,
    /// base64 of the payload.
    pub payload: String,
    /// Signatures.
    pub signatures: Vec<EnvelopeSignature>,
}

/// One signature of an envelope.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EnvelopeSignature {
    /// [`key_id`] of the signer.
    pub keyid: String,
    /// base64 of the signature.
    pub sig: String,
}

impl Envelope {
    /// Signs `payload` of `payload_type` with `key`.
    pub fn sign(payload_type: &str, payload: &[u8], key: &SigningKey) -> Self {
        let b64 = base64::engine::general_purpose::STANDARD;
        let sig = key.sign(&pae(payload_type, payload));
        Envelope {
            payload_type: payload_type.into(),
            payload: b64.encode(payload),
            signatures: vec![EnvelopeSignature {
                keyid: key_id(&key.verifying_key()),
                sig: b64.encode(sig.to_bytes()),
            }],
        }
    }

    /// The payload, once a signature by `key` verifies.
    pub fn open(&self, key: &VerifyingKey) -> Result<Vec<u8>, SignError> {
        let b64 = base64::engine::general_purpose::STANDARD;
        let payload = b64
            .decode(&self.payload)
            .map_err(|e| SignError::Envelope(format!("payload: {e}")))?;
        let message = pae(&self.payload_type, &payload);
        let verified = self.signatures.iter().any(|s| {
            b64.decode(&s.sig)
                .ok()
                .and_then(|bytes| Signature::from_slice(&bytes).ok())
                .is_some_and(|sig| key.verify(&message, &sig).is_ok())
        });
        if verified {
            Ok(payload)
        } else {
            Err(SignError::BadSignature)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pae_is_the_dsse_encoding() {
        // The DSSE specification's test vector.
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
    }

    #[test]
    fn envelopes_verify_with_their_key_only() {
        let key = generate();
        let env = Envelope::sign(IN_TOTO_PAYLOAD_TYPE, b"{\"a\":1}", &key);
        assert_eq!(env.open(&key.verifying_key()).unwrap(), b"{\"a\":1}");
        let other = generate();
        assert_eq!(
            env.open(&other.verifying_key()),
            Err(SignError::BadSignature)
        );
        let mut changed = env.clone();
        changed.payload_type = "text/plain".into();
        assert_eq!(
            changed.open(&key.verifying_key()),
            Err(SignError::BadSignature)
        );
    }

    #[test]
    fn keys_round_trip_through_pem() {
        let key = generate();
        let back = read_private(&private_pem(&key).unwrap()).unwrap();
        assert_eq!(back.to_bytes(), key.to_bytes());
        let public = read_public(&public_pem(&key.verifying_key()).unwrap()).unwrap();
        assert_eq!(public, key.verifying_key());
        assert!(read_public("not a key").is_err());
    }
}
