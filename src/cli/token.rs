//! `hookbench token`: prints a signed JWT, so curl and scripts can talk to the simulator or a
//! real channel without writing JWT code.

use crate::error::Error;
use std::path::PathBuf;

use clap::{Args, ValueEnum};

use super::Exit;
use crate::common::DurationSpec;
use crate::protocol::jwt::{Alg, AppClaim, ClaimsTemplate, Signer};
use crate::sim::Bot;

/// Where the client id goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AppClaimArg {
    /// `appId` (documented).
    AppId,
    /// `iss` (third-party style).
    Iss,
    /// `kore_iss`, with `kore_sub` and `kore_jti` (the SDK security page's aliases).
    KoreIss,
}

/// Arguments of `hookbench token`.
#[derive(Debug, Args)]
pub struct TokenArgs {
    /// The user (`sub` and `userIdentity`).
    #[arg(long, default_value = "user-1")]
    pub user: String,
    /// Client id; the demo bot's when omitted.
    #[arg(long, env = "HOOKBENCH_CLIENT_ID")]
    pub client_id: Option<String>,
    /// Client secret for HS256/HS512; the demo bot's when omitted.
    #[arg(long, env = "HOOKBENCH_CLIENT_SECRET", hide_env_values = true)]
    pub client_secret: Option<String>,
    /// PEM private key for RS256/RS512.
    #[arg(long, value_name = "FILE")]
    pub private_key_file: Option<PathBuf>,
    /// Signing algorithm.
    #[arg(long, default_value = "HS256", value_parser = parse_alg)]
    pub alg: Alg,
    /// Claim that carries the client id.
    #[arg(long, value_enum, default_value = "app-id")]
    pub app_claim: AppClaimArg,
    /// Lifetime (`exp`); `0s` leaves `exp` out.
    #[arg(long, default_value = "1h")]
    pub expires_in: DurationSpec,
    /// Leave out `userIdentity` (then `from.id` identifies the user).
    #[arg(long)]
    pub no_user_identity: bool,
    /// Add a fresh `jti`.
    #[arg(long)]
    pub jti: bool,
    /// Encrypt the signed token as a JWE to this public key (the bot's, PEM).
    #[arg(long, value_name = "FILE")]
    pub jwe_public_key_file: Option<PathBuf>,
    /// JWE key management: RSA-OAEP-256 or RSA-OAEP.
    #[arg(long, default_value = "RSA-OAEP-256", requires = "jwe_public_key_file")]
    pub jwe_alg: String,
    /// JWE content encryption: A256GCM or A128CBC-HS256.
    #[arg(long, default_value = "A256GCM", requires = "jwe_public_key_file")]
    pub jwe_enc: String,
}

fn parse_alg(s: &str) -> Result<Alg, crate::error::Error> {
    Alg::parse(&s.to_ascii_uppercase()).ok_or_else(|| {
        crate::error::Error::Invalid(format!("`{s}` is not one of HS256, HS512, RS256, RS512"))
    })
}

/// Prints one token.
pub fn run(args: TokenArgs) -> Exit {
    let demo = Bot::demo();
    let client_id = args
        .client_id
        .clone()
        .unwrap_or_else(|| demo.apps[0].client_id.clone());
    let signer = if args.alg.is_hmac() {
        let secret = args
            .client_secret
            .clone()
            .or_else(|| demo.apps[0].client_secret.clone())
            .unwrap_or_default();
        Signer::hmac(args.alg, secret.as_bytes())
    } else {
        let Some(path) = &args.private_key_file else {
            eprintln!("error: {} needs --private-key-file", args.alg);
            return Exit::Usage;
        };
        match crate::common::read_bytes_limited(path, crate::common::MAX_KEY_BYTES) {
            Ok(pem) => Signer::rsa_pem(args.alg, &pem),
            Err(e) => {
                eprintln!("error: cannot read {}: {e}", path.display());
                return Exit::Usage;
            }
        }
    };
    let template = ClaimsTemplate {
        client_id,
        app_claim: match args.app_claim {
            AppClaimArg::AppId => AppClaim::AppId,
            AppClaimArg::Iss => AppClaim::Iss,
            AppClaimArg::KoreIss => AppClaim::KoreIss,
        },
        user_identity: !args.no_user_identity,
        expires_in: Some(args.expires_in.get()).filter(|d| !d.is_zero()),
        jti: args.jti,
        extra: Default::default(),
    };
    let encrypter = match jwe_of(&args) {
        Ok(e) => e,
        Err(e) => return crate::error::fail(&e),
    };
    let token = signer
        .and_then(|s| s.sign_for(&template, &args.user))
        .and_then(|t| match &encrypter {
            Some(e) => e.encrypt(&t),
            None => Ok(t),
        });
    match token {
        Ok(token) => {
            out!("{token}");
            Exit::Ok
        }
        Err(e) => {
            eprintln!("error: {e}");
            Exit::Usage
        }
    }
}

/// The JWE encrypter the arguments ask for, if any.
fn jwe_of(args: &TokenArgs) -> Result<Option<crate::protocol::jwt::jwe::Encrypter>, Error> {
    use crate::protocol::jwt::jwe::{self, ContentEnc, KeyAlg};
    let Some(path) = &args.jwe_public_key_file else {
        return Ok(None);
    };
    let alg = KeyAlg::parse(&args.jwe_alg).ok_or_else(|| {
        Error::Invalid(format!(
            "--jwe-alg `{}` is not RSA-OAEP-256 or RSA-OAEP",
            args.jwe_alg
        ))
    })?;
    let enc = ContentEnc::parse(&args.jwe_enc).ok_or_else(|| {
        Error::Invalid(format!(
            "--jwe-enc `{}` is not A256GCM or A128CBC-HS256",
            args.jwe_enc
        ))
    })?;
    let pem =
        crate::common::read_limited(path, crate::common::MAX_KEY_BYTES).map_err(|source| {
            Error::Read {
                path: path.clone(),
                source,
            }
        })?;
    let key = jwe::public_key_from_pem(&pem)
        .map_err(|e| Error::Invalid(format!("--jwe-public-key-file {}: {e}", path.display())))?;
    Ok(Some(jwe::Encrypter { key, alg, enc }))
}
