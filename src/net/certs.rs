//! The cluster's certificates: one CA, and per node a certificate naming its role. The server's
//! certificate carries the DNS name `lagom-server`, which every client dials as its TLS server
//! name; a worker's carries `lagom-worker`, the node's own name and the worker slots it may take
//! ([`SlotGrant`]). Every certificate expires (`lagom certs --days`, a year by default). `lagom
//! certs` writes them as PEM files, each key created with mode 0600 and never over an existing
//! file or through a symbolic link.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{
    CertificateDer, CertificateRevocationListDer, PrivateKeyDer, PrivatePkcs8KeyDer,
};

use super::slot_grant::SlotGrant;
use crate::proto::Role;

/// The DNS name in the server's certificate, and the TLS server name clients dial.
pub const SERVER_NAME: &str = "lagom-server";
/// The DNS name in every worker's certificate.
pub const WORKER_NAME: &str = "lagom-worker";

/// Node names `lagom certs` refuses: the role names (a node called `lagom-server` would be a
/// server) and `ca` (the CA's own files); names under `.slot.lagom-worker` are refused too.
pub const RESERVED_NAMES: [&str; 3] = [SERVER_NAME, WORKER_NAME, "ca"];

/// How long certificates are valid unless `lagom certs --days` says otherwise.
pub const DEFAULT_VALIDITY_DAYS: u32 = 365;

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
    /// Revoked certificates this node refuses (`crl.pem` of its certificate directory).
    pub crls: Vec<CertificateRevocationListDer<'static>>,
}

impl Clone for NodeIdentity {
    fn clone(&self) -> Self {
        NodeIdentity {
            ca: self.ca.clone(),
            cert: self.cert.clone(),
            key: self.key.clone_key(),
            crls: self.crls.clone(),
        }
    }
}

/// A cluster CA that can issue node certificates.
pub struct ClusterCa {
    validity: Duration,
    cert: CertificateDer<'static>,
    cert_pem: String,
    key_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl ClusterCa {
    /// A new CA with a fresh ECDSA P-256 key, valid for `validity`; every certificate it issues
    /// is valid for `validity` from its issue (a little before, for clocks a few minutes apart).
    pub fn generate(cluster: &str, validity: Duration) -> Result<Self> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        set_validity(&mut params, validity)?;
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
            validity,
            cert: cert.der().clone(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            issuer: Issuer::new(params, key),
        })
    }

    /// Issues the server's certificate for node `name`; returns the identity and its PEM texts
    /// (certificate, key).
    pub fn issue_server(&self, name: &str) -> Result<(NodeIdentity, String, String)> {
        self.issue(name, Role::Server, Vec::new())
    }

    /// Issues a worker certificate for host `name` that may take the slots of `grant`; returns
    /// the identity and its PEM texts (certificate, key).
    pub fn issue_worker(
        &self,
        name: &str,
        grant: &SlotGrant,
    ) -> Result<(NodeIdentity, String, String)> {
        self.issue(name, Role::Worker, grant.dns_names())
    }

    fn issue(
        &self,
        name: &str,
        role: Role,
        extra_names: Vec<String>,
    ) -> Result<(NodeIdentity, String, String)> {
        check_node_name(name)?;
        let mut names = vec![role_name(role).to_string(), name.to_string()];
        names.extend(extra_names);
        let mut params = CertificateParams::new(names)
            .with_context(|| format!("`{name}` is not a valid node name (use a DNS-like name)"))?;
        set_validity(&mut params, self.validity)?;
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
            crls: Vec::new(),
        };
        Ok((identity, cert.pem(), key.serialize_pem()))
    }
}

/// Valid from a few minutes ago (clocks in a cluster differ a little) for `validity`.
fn set_validity(params: &mut CertificateParams, validity: Duration) -> Result<()> {
    let now = time::OffsetDateTime::now_utc();
    let validity = time::Duration::try_from(validity)
        .ok()
        .filter(|d| *d > time::Duration::ZERO)
        .context("certificate validity must be positive and below ~290 billion years")?;
    params.not_before = now - time::Duration::minutes(10);
    params.not_after = now
        .checked_add(validity)
        .filter(|t| t.year() < 10_000)
        .context("certificate validity reaches beyond the year 9999")?;
    Ok(())
}

/// Refuses names that are not a plain DNS label sequence or that are reserved.
pub fn check_node_name(name: &str) -> Result<()> {
    let valid = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    if !valid {
        bail!("`{name}` cannot be a node name: use letters, digits, `-` and `.` (a DNS name)");
    }
    let lower = name.to_ascii_lowercase();
    if RESERVED_NAMES.contains(&lower.as_str()) || lower.ends_with(&format!(".slot.{WORKER_NAME}"))
    {
        bail!("`{name}` is reserved; choose another node name");
    }
    Ok(())
}

/// Files of one node in a certificate directory: `NAME.pem` and `NAME.key`.
pub fn node_files(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}.key")),
    )
}

/// Writes `ca.pem`, `ca.key`, and a certificate + key per node into `dir` (keys mode 0600),
/// each valid for `validity`. `server` is the server node's name; `workers` the worker hosts with
/// the slots each may take.
pub fn write_cluster(
    dir: &Path,
    server: &str,
    workers: &[(String, SlotGrant)],
    validity: Duration,
) -> Result<Vec<PathBuf>> {
    check_node_name(server)?;
    for (name, _) in workers {
        check_node_name(name)?;
        if name == server || workers.iter().filter(|(n, _)| n == name).count() > 1 {
            bail!("node name `{name}` appears twice");
        }
    }
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let ca = ClusterCa::generate(server, validity)?;
    let mut written = Vec::new();
    write_new_file(&dir.join("ca.pem"), &ca.cert_pem, false, &mut written)?;
    write_new_file(&dir.join("ca.key"), &ca.key_pem, true, &mut written)?;
    let (_, cert, key) = ca.issue_server(server)?;
    write_node(dir, server, &cert, &key, &mut written)?;
    for (name, grant) in workers {
        let (_, cert, key) = ca.issue_worker(name, grant)?;
        write_node(dir, name, &cert, &key, &mut written)?;
    }
    Ok(written)
}

fn write_node(
    dir: &Path,
    name: &str,
    cert: &str,
    key: &str,
    written: &mut Vec<PathBuf>,
) -> Result<()> {
    let (cert_path, key_path) = node_files(dir, name);
    write_new_file(&cert_path, cert, false, written)?;
    write_new_file(&key_path, key, true, written)
}

/// Creates `path` (never over an existing file or link); a `secret` is mode 0600 from the start.
fn write_new_file(path: &Path, text: &str, secret: bool, written: &mut Vec<PathBuf>) -> Result<()> {
    let mut options = fs::OpenOptions::new();
    // `create_new` fails on any existing entry, a symbolic link included (O_CREAT | O_EXCL does
    // not follow links), so a planted link cannot redirect a key.
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(if secret { 0o600 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = secret;
    let mut file = match options.open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => bail!(
            "{} exists; remove the old certificates first (a new CA invalidates them all)",
            path.display()
        ),
        Err(e) => return Err(e).with_context(|| format!("cannot create {}", path.display())),
    };
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))?;
    written.push(path.to_path_buf());
    Ok(())
}

/// Loads node `name`'s identity from a directory written by [`write_cluster`], with the
/// directory's revocation list if it has one.
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
    let crls = super::revocation::load_crls(dir)?;
    Ok(NodeIdentity {
        ca,
        cert,
        key,
        crls,
    })
}
