"""RFC 3161 timestamps: the app's own timestamp authority (the embedded default) and a client
for an external one.

The internal TSA signs with the PKI's TSA certificate. It is a real RFC 3161 responder
(``POST /tsa`` in the web app serves it to anyone), but its clock is this server's clock and
its key lives next to the app: production should point ``DEALDESK_TSA_URL`` at a qualified or
at least independent TSA. A TSA failure raises :class:`TimestampRequestError`; the signing
step fails and is retried, and never falls back to an untimestamped signature.
"""

from __future__ import annotations

import datetime as dt
import secrets

import httpx
from asn1crypto import cms, keys, tsp, x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from pyhanko.sign import general
from pyhanko.sign.general import simple_cms_attribute
from pyhanko.sign.timestamps.api import TimeStamper
from pyhanko.sign.timestamps.common_utils import TimestampRequestError, set_tsp_headers
from pyhanko.sign.timestamps.dummy_client import DummyTimeStamper
from pyhanko_certvalidator.registry import SimpleCertificateStore
from pyhanko_certvalidator.util import get_pyca_cryptography_hash

from documents.cms_template import DIGEST, TimestampTemplate
from documents.pki import Pki

__all__ = ["HttpTimeStamper", "InternalTimeStamper", "TimestampRequestError",
           "internal_timestamper", "timestamper"]

# dealdesk's timestamp policy: an OID under the UUID arc (X.667), so no registration needed.
POLICY_OID = "2.25.164087314373785296436426226127853190912"
TSA_TIMEOUT_S = 10.0


class InternalTimeStamper(DummyTimeStamper):
    """The in-app TSA: pyHanko's responder with our policy OID, the UTC clock, the CA chain
    embedded, and the TSA key parsed once (the stock class re-parses it per token). Tokens for
    this process's own signatures come from a :class:`TimestampTemplate` (same token, a
    fraction of the encoding work); the HTTP endpoint answers through pyHanko's responder."""

    def __init__(self, tsa_cert: x509.Certificate, tsa_key: RSAPrivateKey,
                 chain: list[x509.Certificate]) -> None:
        key_info = keys.PrivateKeyInfo.load(tsa_key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
        super().__init__(tsa_cert, key_info, certs_to_embed=SimpleCertificateStore.from_certs(
            chain))
        self._key = tsa_key
        # Built (and DER-encoded) once: re-encoding the certificate's issuer name for every
        # token was most of a token's cost.
        # Loaded back from DER, so asn1crypto treats it as an unparsed blob when encoding
        # (a constructed tree is walked again on every dump).
        self._signing_certificate = cms.CMSAttribute.load(simple_cms_attribute(
            "signing_certificate", general.as_signing_certificate(tsa_cert)).dump())
        self._template = TimestampTemplate(tsa_cert, chain, POLICY_OID,
                                           self._signing_certificate.dump())

    async def async_timestamp(self, message_digest: bytes,
                              md_algorithm: str) -> cms.ContentInfo:
        """A token for this process, built from the pre-encoded template (no request, no
        response, no nonce: nothing travels). Other digests go pyHanko's way."""
        if md_algorithm.lower() != DIGEST:
            token: cms.ContentInfo = await super().async_timestamp(message_digest, md_algorithm)
            return token
        der = self._template.token(
            message_digest, dt.datetime.now(dt.UTC), secrets.randbits(64),
            lambda data: self._key.sign(data, PKCS1v15(), hashes.SHA256()))
        return cms.ContentInfo.load(der)

    def _build_tst_info(self, message_imprint: tsp.MessageImprint, dt_: dt.datetime,
                        req: tsp.TimeStampReq) -> tsp.TSTInfo:
        info = super()._build_tst_info(message_imprint, dt_, req)
        info["policy"] = tsp.ObjectIdentifier(POLICY_OID)
        return info

    def _sign_tst_info(self, tst_info_data: bytes, md_algorithm: str,
                       dt_: dt.datetime) -> tuple[bytes, cms.CMSAttributes]:
        # Same attributes as the parent builds, signed with the cached key.
        md = hashes.Hash(get_pyca_cryptography_hash(md_algorithm))
        md.update(tst_info_data)
        signed_attrs = cms.CMSAttributes([
            simple_cms_attribute("content_type", "tst_info"),
            simple_cms_attribute("signing_time", cms.Time({"utc_time": dt_})),
            self._signing_certificate,
            simple_cms_attribute("message_digest", md.finalize()),
        ])
        signature = self._key.sign(signed_attrs.dump(), PKCS1v15(),
                                   get_pyca_cryptography_hash(md_algorithm.upper()))
        return signature, signed_attrs

    def respond(self, request_der: bytes) -> bytes:
        """Answer one DER ``TimeStampReq`` (the web endpoint's job)."""
        try:
            req = tsp.TimeStampReq.load(request_der)
            req.native  # noqa: B018 - parse everything now, to refuse garbage here
        except (ValueError, TypeError) as e:
            raise TimestampRequestError(f"malformed timestamp request: {e}") from None
        resp: tsp.TimeStampResp = self.request_tsa_response(req)
        return bytes(resp.dump())


class HttpTimeStamper(TimeStamper):
    """An external RFC 3161 TSA over HTTP(S), with httpx (pyHanko's own clients need
    requests or aiohttp)."""

    def __init__(self, url: str, timeout: float = TSA_TIMEOUT_S) -> None:
        super().__init__()
        self.url = url
        self.timeout = timeout

    async def async_request_tsa_response(self, req: tsp.TimeStampReq) -> tsp.TimeStampResp:
        try:
            async with httpx.AsyncClient(timeout=self.timeout) as client:
                r = await client.post(self.url, content=req.dump(),
                                      headers=set_tsp_headers({}))
        except httpx.HTTPError as e:
            raise TimestampRequestError(f"timestamp authority {self.url} unreachable: {e}") \
                from e
        if r.status_code != 200 or r.headers.get("content-type") != "application/timestamp-reply":
            raise TimestampRequestError(
                f"timestamp authority {self.url} answered HTTP {r.status_code} "
                f"({r.headers.get('content-type', 'no content type')})")
        return tsp.TimeStampResp.load(r.content)


def internal_timestamper(pki: Pki) -> InternalTimeStamper:
    return InternalTimeStamper(pki.tsa.asn1_cert, pki.tsa.key, pki.chain)


def timestamper(pki: Pki, tsa_url: str = "") -> TimeStamper:
    """The configured TSA: ``tsa_url`` if set, else the internal one."""
    return HttpTimeStamper(tsa_url) if tsa_url else internal_timestamper(pki)
