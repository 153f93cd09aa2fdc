"""The organisation seal's key in a PKCS#11 token (an HSM; SoftHSM2 in tests) instead of
``var/pki/seal.key``.

``provision_seal`` creates the RSA key on the token (unless one with that label exists, never
extractable) and has the internal CA issue a seal certificate for it, kept as
``var/pki/seal-hsm.pem``. ``HsmSeal`` then signs with it through pyHanko's ``PKCS11Signer``,
keeping one session open for the worker's life.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import pkcs11
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pkcs11 import Attribute, KeyType, ObjectClass, Session
from pkcs11.exceptions import PKCS11Error
from pyhanko.keys import load_cert_from_pemder
from pyhanko.sign.pkcs11 import PKCS11Signer
from pyhanko_certvalidator.registry import CertificateStore, SimpleCertificateStore

from documents.pki import Pki

SEAL_CERT = "seal-hsm.pem"


class HsmError(Exception):
    """The token cannot be used (module, label, PIN or key missing); the message says which."""


@dataclass(frozen=True)
class HsmConfig:
    module: str
    """Path of the PKCS#11 module, e.g. ``/usr/lib/softhsm/libsofthsm2.so``."""
    token_label: str
    """The token, by label (slot numbers change between restarts)."""
    pin: str = field(repr=False)
    """User PIN."""
    key_label: str = "dealdesk-seal"
    """Label of the seal's key pair on the token."""


def _session(cfg: HsmConfig, *, rw: bool = False) -> Session:
    try:
        token = pkcs11.lib(cfg.module).get_token(token_label=cfg.token_label)
        return token.open(rw=rw, user_pin=cfg.pin)
    except (PKCS11Error, OSError, RuntimeError) as e:
        raise HsmError(f"cannot open token {cfg.token_label!r} with {cfg.module}: "
                       f"{type(e).__name__} {e}") from None


def provision_seal(pki: Pki, cfg: HsmConfig) -> x509.Certificate:
    """Key pair on the token (created once) and its seal certificate from the internal CA."""
    session = _session(cfg, rw=True)
    try:
        found = list(session.get_objects({Attribute.CLASS: ObjectClass.PUBLIC_KEY,
                                          Attribute.LABEL: cfg.key_label}))
        if found:
            public = found[0]
        else:
            public, _ = session.generate_keypair(
                KeyType.RSA, 2048, label=cfg.key_label, store=True,
                private_template={Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False})
        key = rsa.RSAPublicNumbers(
            int.from_bytes(public[Attribute.PUBLIC_EXPONENT], "big"),
            int.from_bytes(public[Attribute.MODULUS], "big")).public_key()
    finally:
        session.close()
    cert = pki.issue_seal_for(key)
    (pki.directory / SEAL_CERT).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert


class _SealSigner(PKCS11Signer):
    """PKCS11Signer registers the signing certificate among the "other" certificates too, so
    the CMS carried it twice; NSS (hence poppler's pdfsig) then calls the certificate
    unusable. Only the CA chain is extra here."""

    def __init__(self, session: Session, key_label: str, cert: asn1_x509.Certificate,
                 chain: list[asn1_x509.Certificate]) -> None:
        super().__init__(session, key_label=key_label, signing_cert=cert)
        self._chain_only = SimpleCertificateStore.from_certs(chain)

    @property
    def cert_registry(self) -> CertificateStore:
        return self._chain_only  # type: ignore[no-any-return]


class HsmSeal:
    """A pyHanko signer for the seal key on the token, with one long-lived session."""

    def __init__(self, pki: Pki, cfg: HsmConfig) -> None:
        cert_path = pki.directory / SEAL_CERT
        if not cert_path.exists():
            raise HsmError(f"no {cert_path}: run `dealdesk pki seal-hsm` first")
        self._cfg = cfg
        self._cert = load_cert_from_pemder(str(cert_path))
        self._chain = pki.chain
        self._lock = threading.Lock()
        self._session: Session | None = None

    def signer(self) -> PKCS11Signer:
        with self._lock:
            if self._session is None:
                self._session = _session(self._cfg)
            return _SealSigner(self._session, self._cfg.key_label, self._cert, self._chain)

    def close(self) -> None:
        with self._lock:
            if self._session is not None:
                self._session.close()
                self._session = None
