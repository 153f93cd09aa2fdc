"""The internal PKI: a root CA, an issuing CA, a timestamp authority and an organisation seal,
created on first use under ``var/pki``; per-signer certificates issued on demand.

Layout of ``var/pki`` (keys are PKCS#8 PEM encrypted with the settings' passphrase)::

    root.pem  root.key            self-signed root, 20 years
    issuing.pem  issuing.key      issues everything else, 10 years
    tsa.pem  tsa.key              RFC 3161 timestamps (EKU timeStamping, critical)
    seal.pem  seal.key            the organisation's own signature (certificates of
                                  completion, countersignatures without a person)
    issued/<serial>.pem           every end-entity certificate issued, for the record
    revoked.txt                   serials (hex) revoked, one per line

Certificates point at ``{base_url}/pki/{root,issuing}.crl`` (CRL distribution points) and
``/pki/{root,issuing}.crt`` (authority information access), which the web app publishes.
Signer certificates carry the person's name and email, key usage digitalSignature +
nonRepudiation, and a short validity: the signature's timestamp and the embedded revocation
data (PAdES B-LT) keep it verifiable after they expire.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

ROOT_YEARS, ISSUING_YEARS, TSA_YEARS, SEAL_YEARS = 20, 10, 10, 3
SIGNER_VALIDITY = dt.timedelta(days=30)
CRL_VALIDITY = dt.timedelta(days=7)
# Adobe's "document signing" extended key usage. Every signing certificate also carries
# emailProtection: NSS (hence poppler's pdfsig) checks signatures for that usage and rejects a
# certificate whose EKUs leave it out.
DOCUMENT_SIGNING = x509.ObjectIdentifier("1.3.6.1.4.1.311.10.3.12")
SIGNING_EKU = [DOCUMENT_SIGNING, ExtendedKeyUsageOID.EMAIL_PROTECTION]


class PkiError(Exception):
    """The PKI on disk is unusable (wrong passphrase, a missing or corrupt file)."""


@dataclass(frozen=True)
class Identity:
    """A private key with its certificate (both as ``cryptography`` objects)."""

    key: rsa.RSAPrivateKey
    cert: x509.Certificate

    @property
    def asn1_cert(self) -> asn1_x509.Certificate:
        return to_asn1(self.cert)

    @property
    def asn1_key(self) -> asn1_keys.PrivateKeyInfo:
        return asn1_keys.PrivateKeyInfo.load(self.key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))


def to_asn1(cert: x509.Certificate) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _name(common_name: str, org: str, email: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, common_name),
             x509.NameAttribute(NameOID.ORGANIZATION_NAME, org)]
    if email:
        attrs.append(x509.NameAttribute(NameOID.EMAIL_ADDRESS, email))
    return x509.Name(attrs)


class Pki:
    """Open (or create, the first time) the PKI under ``directory``.

    Thread-safe: the worker's activities issue certificates from several threads.
    """

    def __init__(self, directory: Path, passphrase: str, *, org_name: str, base_url: str) -> None:
        if not passphrase:
            raise PkiError("the PKI passphrase is empty (DEALDESK_PKI_PASSPHRASE)")
        self.directory = directory
        self.org_name = org_name
        self.base_url = base_url.rstrip("/")
        self._passphrase = passphrase.encode()
        self._lock = threading.Lock()
        directory.mkdir(parents=True, exist_ok=True)
        # `dealdesk up` starts the worker and the web app together, and both open the PKI:
        # creation happens once, under an exclusive lock across processes; seal.pem is
        # written last, so its presence means complete.
        with open(directory / ".lock", "a") as lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX)
            if not (directory / "seal.pem").exists():
                self._create()
            self.root = self._load("root")
            self.issuing = self._load("issuing")
            self.tsa = self._load("tsa")
            self.seal = self._load("seal")

    # ------------------------------------------------------------------ public
    @property
    def chain(self) -> list[asn1_x509.Certificate]:
        """The CA certificates above any end-entity certificate, nearest first (embedded in
        every signature and timestamp)."""
        return [self.issuing.asn1_cert, self.root.asn1_cert]

    def validation_material(self) -> tuple[list[asn1_x509.Certificate], list[bytes]]:
        """What a sealed document's DSS needs besides its signatures' own certificates: the
        CA chain and the TSA certificate, and both CAs' current CRLs."""
        return [*self.chain, self.tsa.asn1_cert], [self.crl("issuing"), self.crl("root")]

    def trust_roots(self) -> list[asn1_x509.Certificate]:
        return [to_asn1(self.root.cert)]

    def issue_signer(self, name: str, email: str,
                     validity: dt.timedelta = SIGNER_VALIDITY) -> Identity:
        """A fresh key and certificate for one person's signature (the key is not kept)."""
        key = _new_key()
        cert = self._issue(_name(name, self.org_name, email), key.public_key(), validity,
                           eku=SIGNING_EKU,
                           email=email)
        return Identity(key, cert)

    def issue_seal_for(self, public_key: rsa.RSAPublicKey) -> x509.Certificate:
        """A seal certificate for a key held elsewhere (an HSM): same name and usage as the
        file-based seal."""
        return self._issue(_name(f"{self.org_name} Seal", self.org_name), public_key,
                           dt.timedelta(days=365 * SEAL_YEARS), eku=SIGNING_EKU)

    def revoke(self, serial: int) -> None:
        with self._lock, (self.directory / "revoked.txt").open("a") as f:
            f.write(f"{serial:x}\n")

    def crl(self, which: str = "issuing") -> bytes:
        """The current CRL (DER) of the root or the issuing CA, re-signed when stale."""
        if which not in ("root", "issuing"):
            raise PkiError(f"no CA named {which!r}")
        path = self.directory / f"{which}.crl"
        with self._lock:
            if path.exists():
                crl = x509.load_der_x509_crl(path.read_bytes())
                if (crl.next_update_utc is not None
                        and crl.next_update_utc - _now() > CRL_VALIDITY / 2
                        and path.stat().st_mtime >= self._revoked_mtime()):
                    return path.read_bytes()
            data = self._sign_crl(which)
            _write_atomic(path, data)
            return data

    def ca_cert_der(self, which: str) -> bytes:
        ident = {"root": self.root, "issuing": self.issuing}.get(which)
        if ident is None:
            raise PkiError(f"no CA named {which!r}")
        return ident.cert.public_bytes(serialization.Encoding.DER)

    # ---------------------------------------------------------------- creation
    def _create(self) -> None:
        os.chmod(self.directory, 0o700)
        (self.directory / "issued").mkdir(exist_ok=True)
        now = _now()
        root_key = _new_key()
        root_name = _name(f"{self.org_name} Root CA", self.org_name)
        root_cert = (self._builder(root_name, root_name, root_key.public_key(), now,
                                   now + dt.timedelta(days=365 * ROOT_YEARS))
                     .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
                     .add_extension(_ca_usage(), critical=True)
                     .add_extension(x509.SubjectKeyIdentifier.from_public_key(
                         root_key.public_key()), critical=False)
                     .sign(root_key, hashes.SHA256()))
        root = Identity(root_key, root_cert)
        self._save("root", root)
        issuing_key = _new_key()
        issuing_builder = (self._builder(_name(f"{self.org_name} Issuing CA", self.org_name),
                                         root_name, issuing_key.public_key(), now,
                                         now + dt.timedelta(days=365 * ISSUING_YEARS))
                           .add_extension(x509.BasicConstraints(ca=True, path_length=0),
                                          critical=True)
                           .add_extension(_ca_usage(), critical=True))
        issuing_cert = self._with_links(issuing_builder, issuing_key.public_key(), root,
                                        "root").sign(
            root_key, hashes.SHA256())
        self.root, self.issuing = root, Identity(issuing_key, issuing_cert)
        self._save("issuing", self.issuing)
        tsa_key = _new_key()
        self._save("tsa", Identity(tsa_key, self._issue(
            _name(f"{self.org_name} Timestamp Authority", self.org_name), tsa_key.public_key(),
            dt.timedelta(days=365 * TSA_YEARS), eku=[ExtendedKeyUsageOID.TIME_STAMPING],
            eku_critical=True, content_commitment=False)))
        seal_key = _new_key()
        self._save("seal", Identity(seal_key, self._issue(
            _name(f"{self.org_name} Seal", self.org_name), seal_key.public_key(),
            dt.timedelta(days=365 * SEAL_YEARS), eku=SIGNING_EKU)))

    def _builder(self, subject: x509.Name, issuer: x509.Name, key: rsa.RSAPublicKey,
                 not_before: dt.datetime, not_after: dt.datetime) -> x509.CertificateBuilder:
        return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
                .public_key(key).serial_number(x509.random_serial_number())
                .not_valid_before(not_before - dt.timedelta(minutes=5))
                .not_valid_after(not_after))

    def _with_links(self, builder: x509.CertificateBuilder, subject_key: rsa.RSAPublicKey,
                    issuer: Identity, issuer_name: str) -> x509.CertificateBuilder:
        return (builder
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                    issuer.key.public_key()), critical=False)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(
                    subject_key), critical=False)
                .add_extension(x509.CRLDistributionPoints([x509.DistributionPoint(
                    full_name=[x509.UniformResourceIdentifier(
                        f"{self.base_url}/pki/{issuer_name}.crl")],
                    relative_name=None, reasons=None, crl_issuer=None)]), critical=False)
                .add_extension(x509.AuthorityInformationAccess([x509.AccessDescription(
                    AuthorityInformationAccessOID.CA_ISSUERS,
                    x509.UniformResourceIdentifier(
                        f"{self.base_url}/pki/{issuer_name}.crt"))]), critical=False))

    def _issue(self, subject: x509.Name, key: rsa.RSAPublicKey, validity: dt.timedelta, *,
               eku: list[x509.ObjectIdentifier], eku_critical: bool = False,
               content_commitment: bool = True, email: str | None = None) -> x509.Certificate:
        now = _now()
        builder = (self._builder(subject, self.issuing.cert.subject, key, now, now + validity)
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None),
                                  critical=True)
                   .add_extension(x509.KeyUsage(
                       digital_signature=True, content_commitment=content_commitment,
                       key_encipherment=False, data_encipherment=False, key_agreement=False,
                       key_cert_sign=False, crl_sign=False, encipher_only=False,
                       decipher_only=False), critical=True)
                   .add_extension(x509.ExtendedKeyUsage(eku), critical=eku_critical))
        if email:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.RFC822Name(email)]), critical=False)
        cert = self._with_links(builder, key, self.issuing, "issuing").sign(self.issuing.key,
                                                                        hashes.SHA256())
        _write_atomic(self.directory / "issued" / f"{cert.serial_number:x}.pem",
                      cert.public_bytes(serialization.Encoding.PEM))
        return cert

    def _sign_crl(self, which: str) -> bytes:
        ca = self.root if which == "root" else self.issuing
        revoked = self._revoked()
        now = _now()
        builder = (x509.CertificateRevocationListBuilder().issuer_name(ca.cert.subject)
                   .last_update(now - dt.timedelta(minutes=5))
                   .next_update(now + CRL_VALIDITY)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                       ca.key.public_key()), critical=False)
                   .add_extension(x509.CRLNumber(int(now.timestamp())), critical=False))
        for serial in sorted(revoked):
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder().serial_number(serial)
                .revocation_date(now).build())
        return builder.sign(ca.key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)

    # ------------------------------------------------------------------ storage
    def _revoked_mtime(self) -> float:
        path = self.directory / "revoked.txt"
        return path.stat().st_mtime if path.exists() else 0.0

    def _revoked(self) -> set[int]:
        path = self.directory / "revoked.txt"
        if not path.exists():
            return set()
        return {int(line, 16) for line in path.read_text().split() if line.strip()}

    def _save(self, name: str, ident: Identity) -> None:
        _write_atomic(self.directory / f"{name}.key", ident.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(self._passphrase)))
        _write_atomic(self.directory / f"{name}.pem",
                      ident.cert.public_bytes(serialization.Encoding.PEM))

    def _load(self, name: str) -> Identity:
        try:
            key = serialization.load_pem_private_key(
                (self.directory / f"{name}.key").read_bytes(), password=self._passphrase)
            cert = x509.load_pem_x509_certificate((self.directory / f"{name}.pem").read_bytes())
        except FileNotFoundError as e:
            raise PkiError(f"the PKI under {self.directory} is incomplete: {e.filename} is "
                           "missing") from None
        except ValueError:
            raise PkiError(f"cannot open {self.directory / (name + '.key')}: wrong passphrase "
                           "(DEALDESK_PKI_PASSPHRASE) or a corrupt file") from None
        if not isinstance(key, rsa.RSAPrivateKey):
            raise PkiError(f"{name}.key is not an RSA key")
        return Identity(key, cert)


def _ca_usage() -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=False, content_commitment=False,
                         key_encipherment=False, data_encipherment=False, key_agreement=False,
                         key_cert_sign=True, crl_sign=True, encipher_only=False,
                         decipher_only=False)


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
