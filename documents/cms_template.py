"""A signer's CMS SignedData assembled from pre-encoded DER parts.

pyHanko builds each signature's CMS container as an asn1crypto object tree and encodes it;
re-encoding the same certificates, names and algorithm identifiers on every signature was
over half of a signature's cost. A :class:`CmsTemplate` encodes everything that does not
change between one signer's signatures once (with asn1crypto, exactly as pyHanko would)
and per signature only splices in the document digest, the RSA signature and the timestamp
token. The result is the container pyHanko's PAdES path produces: signed attributes
content-type, message-digest and signing-certificate-v2; the signer's certificate and chain;
an optional signature-time-stamp-token (``tests/test_signing.py`` compares the two).

:class:`TimestampTemplate` does the same for the in-app timestamp authority's tokens (the
SignedData over a TSTInfo that pyHanko's responder builds; ``tests/test_timestamps.py``
compares them).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Awaitable, Callable, Iterable

from asn1crypto import algos, cms, core, x509
from pyhanko.sign.general import as_signing_certificate_v2, simple_cms_attribute

DIGEST = "sha256"
_DIGEST_SIZE = 32
_VERSION_1 = b"\x02\x01\x01"
_VERSION_3 = b"\x02\x01\x03"


def _length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    octets = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(octets)]) + octets


def tlv(tag: int, *parts: bytes) -> bytes:
    """One DER element: tag, definite length, the concatenated contents."""
    body = b"".join(parts)
    return bytes([tag]) + _length(len(body)) + body


def _integer(n: int) -> bytes:
    """A non-negative INTEGER (a leading zero octet keeps the sign bit clear)."""
    return tlv(0x02, n.to_bytes(n.bit_length() // 8 + 1, "big"))


def _der_set(elements: Iterable[bytes]) -> bytes:
    """The contents of a DER ``SET OF``: elements in ascending order of their encodings."""
    return b"".join(sorted(elements))


class CmsTemplate:
    """Everything in one signer's SHA-256 / RSA PKCS#1 v1.5 SignedData that does not
    change between signatures, already DER-encoded."""

    def __init__(self, signing_cert: x509.Certificate, chain: Iterable[x509.Certificate],
                 signature_algorithm: algos.SignedDigestAlgorithm) -> None:
        digest_algorithm = algos.DigestAlgorithm({"algorithm": DIGEST}).dump()
        self._digest_algorithm = digest_algorithm
        self._signature_algorithm = signature_algorithm.dump()
        self._sid = cms.SignerIdentifier({"issuer_and_serial_number": cms.IssuerAndSerialNumber(
            {"issuer": signing_cert.issuer,
             "serial_number": signing_cert.serial_number})}).dump()
        self._certificates = _der_set({c.dump() for c in [signing_cert, *chain]})
        self._fixed_attrs = [
            simple_cms_attribute("content_type", "data").dump(),
            simple_cms_attribute("signing_certificate_v2",
                                 as_signing_certificate_v2(signing_cert)).dump(),
        ]
        md_attr = simple_cms_attribute("message_digest", bytes(_DIGEST_SIZE)).dump()
        self._md_attr_prefix = md_attr[:-_DIGEST_SIZE]
        self._signed_data_prefix = (_VERSION_1 + tlv(0x31, digest_algorithm)
                                    + tlv(0x30, cms.ContentType("data").dump()))
        self._signed_data_oid = cms.ContentType("signed_data").dump()
        self._tst_attr_oid = cms.CMSAttributeType("signature_time_stamp_token").dump()

    def signed_attributes(self, document_digest: bytes) -> bytes:
        """The DER ``SET`` of signed attributes, i.e. exactly the bytes to sign."""
        if len(document_digest) != _DIGEST_SIZE:
            raise ValueError("expected a SHA-256 document digest")
        return tlv(0x31, _der_set([*self._fixed_attrs, self._md_attr_prefix + document_digest]))

    async def content_info(
        self, document_digest: bytes, sign: Callable[[bytes], bytes],
        timestamp: Callable[[bytes], Awaitable[cms.ContentInfo]] | None,
    ) -> bytes:
        """The whole ContentInfo: signed attributes signed with ``sign``, and, if
        ``timestamp`` is given, the token it returns for the signature value."""
        signed_attrs = self.signed_attributes(document_digest)
        signature = sign(signed_attrs)
        unsigned = b""
        if timestamp is not None:
            token = (await timestamp(signature)).dump()
            unsigned = tlv(0xA1, tlv(0x30, self._tst_attr_oid, tlv(0x31, token)))
        signer_info = tlv(0x30, _VERSION_1, self._sid, self._digest_algorithm,
                          b"\xa0" + signed_attrs[1:],  # [0] IMPLICIT: same contents, new tag
                          self._signature_algorithm, tlv(0x04, signature), unsigned)
        signed_data = tlv(0x30, self._signed_data_prefix, tlv(0xA0, self._certificates),
                          tlv(0x31, signer_info))
        return tlv(0x30, self._signed_data_oid, tlv(0xA0, signed_data))


class TimestampTemplate:
    """The in-app TSA's RFC 3161 token for one TSA certificate: everything but the time, the
    serial number, the message imprint and the RSA signature is encoded once."""

    def __init__(self, tsa_cert: x509.Certificate, chain: Iterable[x509.Certificate],
                 policy_oid: str, signing_certificate_attr: bytes) -> None:
        self._digest_algorithm = algos.DigestAlgorithm({"algorithm": DIGEST}).dump()
        self._signature_algorithm = algos.SignedDigestAlgorithm(
            {"algorithm": "rsassa_pkcs1v15"}).dump()
        self._sid = cms.SignerIdentifier({"issuer_and_serial_number": cms.IssuerAndSerialNumber(
            {"issuer": tsa_cert.issuer, "serial_number": tsa_cert.serial_number})}).dump()
        self._certificates = _der_set({c.dump() for c in [tsa_cert, *chain]})
        self._policy = core.ObjectIdentifier(policy_oid).dump()
        self._tsa = tlv(0xA0, x509.GeneralName(name="directory_name",
                                               value=tsa_cert.subject).dump())
        self._content_type_attr = simple_cms_attribute("content_type", "tst_info").dump()
        self._signing_certificate_attr = signing_certificate_attr
        md_attr = simple_cms_attribute("message_digest", bytes(_DIGEST_SIZE)).dump()
        self._md_attr_prefix = md_attr[:-_DIGEST_SIZE]
        self._signing_time_oid = cms.CMSAttributeType("signing_time").dump()
        self._tst_info_oid = cms.ContentType("tst_info").dump()
        self._signed_data_oid = cms.ContentType("signed_data").dump()

    def token(self, message_digest: bytes, at: dt.datetime, serial: int,
              sign: Callable[[bytes], bytes]) -> bytes:
        """The token (a ContentInfo) for a SHA-256 ``message_digest``, stamped ``at``."""
        if len(message_digest) != _DIGEST_SIZE:
            raise ValueError("expected a SHA-256 message imprint")
        imprint = tlv(0x30, self._digest_algorithm, tlv(0x04, message_digest))
        tst_info = tlv(0x30, _VERSION_1, self._policy, imprint, _integer(serial),
                       core.GeneralizedTime(at).dump(), self._tsa)
        signing_time = tlv(0x30, self._signing_time_oid, tlv(0x31, core.UTCTime(at).dump()))
        signed_attrs = tlv(0x31, _der_set([
            self._content_type_attr, signing_time, self._signing_certificate_attr,
            self._md_attr_prefix + hashlib.sha256(tst_info).digest()]))
        signer_info = tlv(0x30, _VERSION_1, self._sid, self._digest_algorithm,
                          b"\xa0" + signed_attrs[1:], self._signature_algorithm,
                          tlv(0x04, sign(signed_attrs)))
        encapsulated = tlv(0x30, self._tst_info_oid, tlv(0xA0, tlv(0x04, tst_info)))
        signed_data = tlv(0x30, _VERSION_3, tlv(0x31, self._digest_algorithm), encapsulated,
                          tlv(0xA0, self._certificates), tlv(0x31, signer_info))
        return tlv(0x30, self._signed_data_oid, tlv(0xA0, signed_data))
