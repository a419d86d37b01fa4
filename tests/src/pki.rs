//! Certificates for TLS tests, made at run time with rcgen: a CA, a server
//! certificate for `localhost` and `127.0.0.1`, an expired one, one for
//! another host, a client certificate, and a second CA that signs a server
//! and a client certificate of its own.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// A certificate and its key, as PEM files.
#[derive(Clone, Debug)]
pub struct CertFiles {
    /// The certificate (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM).
    pub key: PathBuf,
}

impl CertFiles {
    /// The certificate's PEM text.
    pub fn cert_pem(&self) -> Vec<u8> {
        std::fs::read(&self.cert).expect("reads the certificate")
    }

    /// The key's PEM text.
    pub fn key_pem(&self) -> Vec<u8> {
        std::fs::read(&self.key).expect("reads the key")
    }
}

/// Every file a TLS test needs, in one directory.
#[derive(Debug)]
pub struct TestPki {
    /// The directory holding the files.
    pub root: PathBuf,
    /// Removes `root` when dropped, if it was made as a temporary one.
    _temporary: Option<tempfile::TempDir>,
    /// The CA's certificate (PEM), what clients and the Admin listener trust.
    pub ca: PathBuf,
    /// A server certificate for `localhost` and `127.0.0.1`, from the CA.
    pub server: CertFiles,
    /// The same names, from the CA, but expired a year ago.
    pub expired: CertFiles,
    /// From the CA, but for `cds.example.net` only.
    pub wrong_host: CertFiles,
    /// A client certificate from the CA.
    pub client: CertFiles,
    /// Another CA's certificate.
    pub other_ca: PathBuf,
    /// A client certificate from the other CA.
    pub stranger: CertFiles,
}

struct Authority {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

fn authority(name: &str) -> Authority {
    let key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.distinguished_name.push(DnType::CommonName, name);
    let cert = params.self_signed(&key).expect("self-signed CA");
    Authority {
        pem: cert.pem(),
        issuer: Issuer::new(params, key),
    }
}

/// What kind of leaf certificate to make.
enum Leaf<'a> {
    Server { names: &'a [&'a str], expired: bool },
    Client,
}

fn leaf(dir: &Path, file: &str, by: &Authority, kind: Leaf<'_>) -> CertFiles {
    let key = KeyPair::generate().expect("key");
    let (names, usage, expired) = match kind {
        Leaf::Server { names, expired } => (
            names.iter().map(|n| n.to_string()).collect(),
            ExtendedKeyUsagePurpose::ServerAuth,
            expired,
        ),
        Leaf::Client => (vec![], ExtendedKeyUsagePurpose::ClientAuth, false),
    };
    let mut params = CertificateParams::new(names).expect("params");
    params
        .distinguished_name
        .push(DnType::CommonName, format!("cds test {file}"));
    params.extended_key_usages = vec![usage];
    if expired {
        params.not_before = rcgen::date_time_ymd(2000, 1, 1);
        params.not_after = rcgen::date_time_ymd(2001, 1, 1);
    }
    let cert = params.signed_by(&key, &by.issuer).expect("signed");
    let files = CertFiles {
        cert: dir.join(format!("{file}.pem")),
        key: dir.join(format!("{file}.key")),
    };
    std::fs::write(&files.cert, cert.pem()).expect("writes the certificate");
    std::fs::write(&files.key, key.serialize_pem()).expect("writes the key");
    // Private keys are for their owner only, as a server expects them.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&files.key, std::fs::Permissions::from_mode(0o600))
            .expect("restricts the key");
    }
    files
}

impl TestPki {
    /// Make every certificate in a new temporary directory.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let mut pki = Self::create_in(dir.path());
        pki._temporary = Some(dir);
        pki
    }

    /// Make every certificate in `d` (which must exist), to keep.
    pub fn create_in(d: &Path) -> Self {
        let ca = authority("cds test CA");
        let other = authority("another CA");
        let here = ["localhost", "127.0.0.1"];
        let server = leaf(
            d,
            "server",
            &ca,
            Leaf::Server {
                names: &here,
                expired: false,
            },
        );
        let expired = leaf(
            d,
            "expired",
            &ca,
            Leaf::Server {
                names: &here,
                expired: true,
            },
        );
        let wrong_host = leaf(
            d,
            "wrong-host",
            &ca,
            Leaf::Server {
                names: &["cds.example.net"],
                expired: false,
            },
        );
        let client = leaf(d, "client", &ca, Leaf::Client);
        let stranger = leaf(d, "stranger", &other, Leaf::Client);
        let ca_file = d.join("ca.pem");
        std::fs::write(&ca_file, &ca.pem).expect("writes the CA");
        let other_ca = d.join("other-ca.pem");
        std::fs::write(&other_ca, &other.pem).expect("writes the other CA");
        Self {
            ca: ca_file,
            server,
            expired,
            wrong_host,
            client,
            other_ca,
            stranger,
            root: d.to_owned(),
            _temporary: None,
        }
    }

    /// The CA certificate's PEM text.
    pub fn ca_pem(&self) -> Vec<u8> {
        std::fs::read(&self.ca).expect("reads the CA")
    }

    /// The other CA's PEM text.
    pub fn other_ca_pem(&self) -> Vec<u8> {
        std::fs::read(&self.other_ca).expect("reads the other CA")
    }
}

impl Default for TestPki {
    fn default() -> Self {
        Self::new()
    }
}
