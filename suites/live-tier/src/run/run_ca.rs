//! A CA made for one run, and a serving certificate for the environment's
//! host signed by it. cert-manager's ClusterIssuers cannot reach Let's
//! Encrypt from a test cluster; the static tier checks the issuer
//! annotations, the live tier checks TLS with this CA.

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

#[derive(Debug, thiserror::Error)]
#[error("generate the run's TLS material")]
pub struct RunCaError(#[source] pub rcgen::Error);

#[derive(Debug, Clone)]
pub(crate) struct ServingCert {
    pub(crate) ca_pem: String,
    pub(crate) cert_pem: String,
    /// Private key of the serving certificate: goes into the TLS Secret only.
    pub(crate) key_pem: String,
}

pub(crate) fn for_host(host: &str) -> Result<ServingCert, RunCaError> {
    let ca_key = KeyPair::generate().map_err(RunCaError)?;
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(RunCaError)?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "cbam-conformance run CA");
    let ca_cert = ca.self_signed(&ca_key).map_err(RunCaError)?;
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().map_err(RunCaError)?;
    let mut leaf = CertificateParams::new(vec![host.to_owned()]).map_err(RunCaError)?;
    leaf.distinguished_name.push(DnType::CommonName, host);
    let cert = leaf.signed_by(&key, &issuer).map_err(RunCaError)?;
    Ok(ServingCert { ca_pem: ca_cert.pem(), cert_pem: cert.pem(), key_pem: key.serialize_pem() })
}
