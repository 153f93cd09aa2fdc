"""A detached CMS signature over any bytes, carrying an RFC 3161 signature timestamp: how the
organisation seal signs the audit log's tree heads (web/services/transparency.py).

Why CMS and not a bare RSA signature: the container carries the seal's certificate and the CA
chain, and the timestamp token sits in it as the standard ``signature-time-stamp`` unsigned
attribute; so anyone holding the bytes, the signature and the PKI's root certificate can check
both with pyHanko alone (``validate_detached``), as an offline ``verify.py`` will.

Both are blocking (RSA, and the TSA request if the TSA is external): call them from a thread,
never on an event loop.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from asn1crypto import cms
from asn1crypto import x509 as asn1_x509
from pyhanko.sign import signers
from pyhanko.sign.ades.report import AdESIndeterminate
from pyhanko.sign.timestamps.api import TimeStamper
from pyhanko.sign.validation.errors import SignatureValidationError
from pyhanko.sign.validation.generic_cms import async_validate_detached_cms
from pyhanko.sign.validation.status import StandardCMSSignatureStatus
from pyhanko_certvalidator import ValidationContext

DIGEST = "sha256"


def sign_detached(data: bytes, seal: signers.Signer, tsa: TimeStamper) -> bytes:
    """DER ``ContentInfo`` (SignedData, no encapsulated content) over ``data``, timestamped."""
    info: cms.ContentInfo = asyncio.run(seal.async_sign_general_data(
        data, DIGEST, detached=True, timestamper=tsa))
    return bytes(info.dump())


@dataclass(frozen=True)
class DetachedCheck:
    """What :func:`validate_detached` found."""

    valid: bool
    """Intact, by a certificate chaining to a trust root, and timestamped by a trusted TSA."""
    signer: str = ""
    """The signing certificate's subject, human-readable."""
    timestamped_at: dt.datetime | None = None
    """The time in the signature's timestamp token (when it is valid)."""
    problem: str = ""
    """Why it is not valid, in plain words."""


def validate_detached(data: bytes, signature: bytes,
                      trust_roots: Sequence[asn1_x509.Certificate], *,
                      moment: dt.datetime | None = None) -> DetachedCheck:
    """Check ``signature`` over ``data`` against ``trust_roots`` at ``moment`` (default: now),
    fetching nothing (revocation is soft-fail: the roots are the log's own PKI). A seal
    certificate that has expired since is judged at the time of the signature's timestamp
    instead, if that token is trusted now (as documents/verify.py does for PDFs): a head
    signed in the seal's lifetime stays valid after it."""
    try:
        signed = cms.ContentInfo.load(signature)["content"]
        status = asyncio.run(_validate(data, signed, list(trust_roots), moment))
    except (ValueError, TypeError, KeyError, SignatureValidationError) as e:
        return DetachedCheck(False, problem=f"the signature cannot be read: {e}")
    signer = status.signing_cert.subject.human_friendly if status.signing_cert else ""
    ts = status.timestamp_validity
    stamped = ts.timestamp if ts is not None and ts.intact and ts.valid and ts.trusted else None
    if not (status.intact and status.valid):
        return DetachedCheck(False, signer, stamped, "the signature does not match the data")
    if not status.trusted:
        return DetachedCheck(False, signer, stamped,
                             "the signer's certificate does not chain to a trusted root")
    if stamped is None:
        return DetachedCheck(False, signer, None,
                             "no valid timestamp from a trusted timestamp authority")
    return DetachedCheck(True, signer, stamped)


async def _validate(data: bytes, signed: cms.SignedData, roots: list[asn1_x509.Certificate],
                    moment: dt.datetime | None) -> StandardCMSSignatureStatus:
    now = ValidationContext(trust_roots=roots, allow_fetching=False,
                            revocation_mode="soft-fail", moment=moment)
    status = await async_validate_detached_cms(data, signed, now)
    token = status.timestamp_validity
    if status.trust_problem_indic is AdESIndeterminate.OUT_OF_BOUNDS_NO_POE and \
            token is not None and token.trusted:
        then = ValidationContext(trust_roots=roots, allow_fetching=False,
                                 revocation_mode="soft-fail", moment=token.timestamp)
        again = await async_validate_detached_cms(data, signed, then,
                                                  ts_validation_context=now)
        if again.trusted:
            return again
    return status
