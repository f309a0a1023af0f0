//! Revoking a node: `lagom certs --dir DIR --revoke NAME` adds the node's certificate to the
//! cluster's revocation list (`revoked.txt`, one `SERIAL NAME` line per node) and writes it signed
//! by the CA as `crl.pem`. Every node that finds `crl.pem` next to its certificates refuses a
//! revoked peer's handshake ("certificate revoked").

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use rcgen::{
    CertificateRevocationListParams, Issuer, KeyIdMethod, KeyPair, RevocationReason,
    RevokedCertParams, SerialNumber,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateRevocationListDer;

use super::certs::node_files;

/// The revocation list's file name in a certificate directory.
pub const CRL_FILE: &str = "crl.pem";
/// The list of revoked nodes the CRL is made from.
pub const REVOKED_FILE: &str = "revoked.txt";

/// How long a CRL says it is current (nodes do not refuse an older one; it is informative).
const CRL_VALIDITY_DAYS: i64 = 365;

/// Revokes nodes `names` of the cluster in `dir` (which holds `ca.pem`, `ca.key` and each
/// node's `NAME.pem`); rewrites `revoked.txt` and `crl.pem`. Returns the CRL's path.
pub fn revoke(dir: &Path, names: &[String]) -> Result<PathBuf> {
    let read = |path: PathBuf| {
        fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))
    };
    let ca_pem = read(dir.join("ca.pem"))?;
    let ca_key = KeyPair::from_pem(&read(dir.join("ca.key"))?)
        .context("ca.key is not the CA's private key")?;
    let issuer = Issuer::from_ca_cert_pem(&ca_pem, ca_key).context("ca.pem is not a CA")?;
    let revoked_path = dir.join(REVOKED_FILE);
    let mut revoked = if revoked_path.exists() {
        read(revoked_path.clone())?
    } else {
        String::new()
    };
    for name in names {
        let (cert, _) = node_files(dir, name);
        let pem = read(cert.clone())?;
        let not_a_cert = || format!("{} is not a PEM certificate", cert.display());
        let (_, pem) = x509_parser::pem::parse_x509_pem(pem.as_bytes())
            .map_err(|e| anyhow::anyhow!("{e}"))
            .with_context(not_a_cert)?;
        let parsed = pem
            .parse_x509()
            .map_err(|e| anyhow::anyhow!("{e}"))
            .with_context(not_a_cert)?;
        let hex: String = parsed
            .tbs_certificate
            .raw_serial()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        if !revoked
            .lines()
            .any(|l| l.split_whitespace().next() == Some(&hex))
        {
            revoked.push_str(&format!("{hex} {name}\n"));
        }
    }
    let now = time::OffsetDateTime::now_utc();
    let mut entries = Vec::new();
    for line in revoked.lines().filter(|l| !l.trim().is_empty()) {
        let hex = line.split_whitespace().next().unwrap_or_default();
        let bytes = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(hex.get(i..i + 2).unwrap_or("zz"), 16))
            .collect::<Result<Vec<u8>, _>>()
            .with_context(|| format!("{}: `{line}` is not `SERIAL NAME`", REVOKED_FILE))?;
        entries.push(RevokedCertParams {
            serial_number: SerialNumber::from(bytes),
            revocation_time: now,
            reason_code: Some(RevocationReason::Unspecified),
            invalidity_date: None,
        });
    }
    let crl = CertificateRevocationListParams {
        this_update: now,
        next_update: now + time::Duration::days(CRL_VALIDITY_DAYS),
        crl_number: SerialNumber::from(now.unix_timestamp().max(1) as u64),
        issuing_distribution_point: None,
        revoked_certs: entries,
        key_identifier_method: KeyIdMethod::Sha256,
    }
    .signed_by(&issuer)
    .context("cannot sign the revocation list")?;
    replace_file(&revoked_path, &revoked)?;
    let crl_path = dir.join(CRL_FILE);
    replace_file(&crl_path, &crl.pem().context("cannot encode the CRL")?)?;
    Ok(crl_path)
}

/// Writes `text` to `path` through a temporary file and a rename (readers see old or new).
fn replace_file(path: &Path, text: &str) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let _ = fs::remove_file(&tmp);
    fs::write(&tmp, text).with_context(|| format!("cannot write {}", tmp.display()))?;
    fs::rename(&tmp, path).with_context(|| format!("cannot replace {}", path.display()))
}

/// The revocation lists in `dir` (`crl.pem`), none when there is no such file.
pub fn load_crls(dir: &Path) -> Result<Vec<CertificateRevocationListDer<'static>>> {
    let path = dir.join(CRL_FILE);
    if !path.exists() {
        return Ok(Vec::new());
    }
    let crls = CertificateRevocationListDer::pem_file_iter(&path)
        .and_then(|i| i.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("{} is not a PEM revocation list", path.display()))?;
    if crls.is_empty() {
        bail!("{} holds no revocation list", path.display());
    }
    Ok(crls)
}
