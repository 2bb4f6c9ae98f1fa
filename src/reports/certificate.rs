//! The certificate for people: every check with its requirement, result and evidence, in one
//! self-contained HTML file.

use minijinja::{context, Environment};

use crate::certify::Certification;

const TEMPLATE: &str = include_str!("templates/certificate.html");

/// Renders `certificate.html`; `signer` says which key signs the bundle.
pub fn render(c: &Certification, signer: &str) -> Result<String, minijinja::Error> {
    let mut env = Environment::new();
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::Html);
    env.add_template("certificate.html", TEMPLATE)?;
    env.get_template("certificate.html")?
        .render(context! { c => c, signer => signer })
}
