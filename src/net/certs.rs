//! The cluster's certificates: one CA, and per node a certificate naming its role. The server's
//! certificate carries the DNS name `lagom-server`, which every client dials as its TLS server
//! name; a worker's carries `lagom-worker` plus the node's own name. `lagom certs` writes them as
//! PEM files; `--role local` makes an ephemeral set in memory.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::proto::Role;

/// The DNS name in the server's certificate, and the TLS server name clients dial.
pub const SERVER_NAME: &str = "lagom-server";
/// The DNS name in every worker's certificate.
pub const WORKER_NAME: &str = "lagom-worker";

/// The certificate name that proves `role`.
pub fn role_name(role: Role) -> &'static str {
    match role {
        Role::Server => SERVER_NAME,
        Role::Worker => WORKER_NAME,
    }
}

/// What one node presents and trusts: its certificate chain and key, and the cluster CA.
#[derive(Debug)]
pub struct NodeIdentity {
    /// The cluster CA certificate (the only root trusted).
    pub ca: CertificateDer<'static>,
    /// The node's certificate.
    pub cert: CertificateDer<'static>,
    /// The node's private key.
    pub key: PrivateKeyDer<'static>,
}

impl Clone for NodeIdentity {
    fn clone(&self) -> Self {
        NodeIdentity {
            ca: self.ca.clone(),
            cert: self.cert.clone(),
            key: self.key.clone_key(),
        }
    }
}

/// A cluster CA that can issue node certificates.
pub struct ClusterCa {
    cert: CertificateDer<'static>,
    cert_pem: String,
    key_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl ClusterCa {
    /// A new CA with a fresh ECDSA P-256 key.
    pub fn generate(cluster: &str) -> Result<Self> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, format!("lagom cluster CA {cluster}"));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::CrlSign,
        ];
        let key = KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        Ok(ClusterCa {
            cert: cert.der().clone(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            issuer: Issuer::new(params, key),
        })
    }

    /// Issues a certificate for node `name` in `role`; returns the identity and its PEM texts
    /// (certificate, key).
    pub fn issue(&self, name: &str, role: Role) -> Result<(NodeIdentity, String, String)> {
        let mut names = vec![role_name(role).to_string()];
        if name != role_name(role) {
            names.push(name.to_string());
        }
        let mut params = CertificateParams::new(names)
            .with_context(|| format!("`{name}` is not a valid node name (use a DNS-like name)"))?;
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{} {name}", role.as_str()));
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        let identity = NodeIdentity {
            ca: self.cert.clone(),
            cert: cert.der().clone(),
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        };
        Ok((identity, cert.pem(), key.serialize_pem()))
    }
}

/// Files of one node in a certificate directory: `NAME.pem` and `NAME.key`.
pub fn node_files(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}.key")),
    )
}

/// Writes `ca.pem`, `ca.key`, and a certificate + key per node into `dir` (keys mode 0600).
/// `server` is the server node's name; `workers` the names of worker hosts.
pub fn write_cluster(dir: &Path, server: &str, workers: &[String]) -> Result<Vec<PathBuf>> {
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let ca = ClusterCa::generate(server)?;
    let mut written = Vec::new();
    write_file(&dir.join("ca.pem"), &ca.cert_pem, false, &mut written)?;
    write_file(&dir.join("ca.key"), &ca.key_pem, true, &mut written)?;
    let mut nodes = vec![(server.to_string(), Role::Server)];
    nodes.extend(workers.iter().map(|w| (w.clone(), Role::Worker)));
    for (name, role) in nodes {
        if name.is_empty() || name == "ca" || name.contains(['/', '\\']) {
            bail!("`{name}` cannot be a node name");
        }
        let (_, cert, key) = ca.issue(&name, role)?;
        let (cert_path, key_path) = node_files(dir, &name);
        write_file(&cert_path, &cert, false, &mut written)?;
        write_file(&key_path, &key, true, &mut written)?;
    }
    Ok(written)
}

fn write_file(path: &Path, text: &str, secret: bool, written: &mut Vec<PathBuf>) -> Result<()> {
    if path.exists() {
        bail!(
            "{} exists; remove the old certificates first (a new CA invalidates them all)",
            path.display()
        );
    }
    fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(0o600))
            .with_context(|| format!("cannot restrict {}", path.display()))?;
    }
    #[cfg(not(unix))]
    let _ = secret;
    written.push(path.to_path_buf());
    Ok(())
}

/// Loads node `name`'s identity from a directory written by [`write_cluster`].
pub fn load_identity(dir: &Path, name: &str) -> Result<NodeIdentity> {
    let hint = "create them with `lagom certs --dir DIR --server NAME --workers NAME,...`";
    let ca_path = dir.join("ca.pem");
    let ca = CertificateDer::from_pem_file(&ca_path)
        .with_context(|| format!("cannot read the cluster CA {} ({hint})", ca_path.display()))?;
    let (cert_path, key_path) = node_files(dir, name);
    let cert = CertificateDer::from_pem_file(&cert_path)
        .with_context(|| format!("cannot read certificate {} ({hint})", cert_path.display()))?;
    let key = PrivateKeyDer::from_pem_file(&key_path)
        .with_context(|| format!("cannot read key {} ({hint})", key_path.display()))?;
    Ok(NodeIdentity { ca, cert, key })
}
