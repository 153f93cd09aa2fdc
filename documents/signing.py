"""Preparing and signing an envelope's PDF with pyHanko, the way that validates everywhere.

The sequence (see PARTS.md, pyHanko):

1. :func:`prepare_fields` creates **every** signature field, in one incremental update,
   before anyone signs (a field added after certification is a modification).
2. :func:`sign_field` applies one person's signature to their own field, in its own
   incremental update, with their own certificate and their stamp (name, date, reason) in
   that field's appearance. The first signature of a document certifies it (DocMDP level 2:
   form filling and signing stay allowed). Each signature carries an RFC 3161 timestamp
   (PAdES B-T).
3. :func:`seal` adds the validation data (the certificates and CRLs of every signature and
   timestamp) to the document security store, then a document timestamp over all of it:
   PAdES B-LT, and B-LTA with the timestamp.

All functions take and return bytes and are blocking (RSA, parsing): run them on a worker
thread, never on an event loop. They are deterministic up to the clock and the signature
randomness, which is why signing activities store their output and return it on retry
instead of signing again.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Sequence
from dataclasses import dataclass

from asn1crypto import cms
from asn1crypto import crl as asn1_crl
from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from PIL import Image
from pyhanko.pdf_utils import layout
from pyhanko.pdf_utils.images import PdfImage
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import fields, signers
from pyhanko.sign.fields import MDPPerm, SigFieldSpec
from pyhanko.sign.signers.pdf_cms import PdfCMSSignedAttributes
from pyhanko.sign.timestamps.api import TimeStamper
from pyhanko.sign.validation.dss import DocumentSecurityStore
from pyhanko.stamp import TextStampStyle
from pyhanko_certvalidator.registry import SimpleCertificateStore
from pyhanko_certvalidator.util import get_pyca_cryptography_hash

from documents.cms_template import DIGEST, CmsTemplate
from documents.pki import Identity

# Room for the CMS blob, in hex digits: the signer's certificate, the CA chain and the
# timestamp token (itself carrying the TSA's chain) come to ~9 KB; leave headroom so the
# size never has to be estimated by a trial signature (pyHanko's default, which signs twice).
SIGNATURE_BYTES_RESERVED = 32_768
TIMESTAMP_BYTES_RESERVED = 16_384
STAMP_TEXT = "Signed by %(signer)s\n%(ts)s\n%(reason)s"


class SigningError(Exception):
    """The document cannot be signed as asked (a missing field, a field already signed)."""


@dataclass(frozen=True)
class FieldSpec:
    """One recipient's signature field."""

    name: str
    """Field name, unique in the document (e.g. ``sig-r12``)."""
    page: int
    """0-based page index."""
    box: tuple[int, int, int, int]
    """``(x1, y1, x2, y2)`` in PDF points, origin at the page's bottom left."""


@dataclass(frozen=True)
class SignatureSpec:
    """What one signature says about itself."""

    field_name: str
    """The (already prepared) field to sign."""
    reason: str
    """Shown in the stamp and stored in the signature, e.g. "Signed as Buyer"."""
    location: str = ""
    """Free text, e.g. the signer's IP address or city."""
    certify: bool = False
    """Make this the certification signature (only the document's first)."""
    drawing: bytes | None = None
    """The signer's drawn signature (PNG), shown in the stamp behind its text."""


class FastSigner(signers.SimpleSigner):
    """pyHanko's SimpleSigner keeping the parsed RSA key (the stock one re-parses and
    re-validates the DER key for every signature, which is most of its cost) and assembling
    PAdES signatures' CMS containers from a pre-encoded :class:`CmsTemplate` (pyHanko
    re-encodes the same certificates for every signature, which is most of the rest)."""

    def __init__(self, key: RSAPrivateKey, identity: Identity,
                 chain: Sequence[asn1_x509.Certificate]) -> None:
        super().__init__(signing_cert=identity.asn1_cert, signing_key=identity.asn1_key,
                         cert_registry=SimpleCertificateStore.from_certs(list(chain)))
        self._key = key
        self._template = CmsTemplate(identity.asn1_cert, chain,
                                     self.get_signature_mechanism_for_digest(DIGEST))

    async def async_sign(self, data_digest: bytes, digest_algorithm: str, dry_run: bool = False,
                         use_pades: bool = False, timestamper: TimeStamper | None = None,
                         signed_attr_settings: PdfCMSSignedAttributes | None = None,
                         is_pdf_sig: bool = True,
                         encap_content_info: object = None) -> cms.ContentInfo:
        settings = signed_attr_settings or PdfCMSSignedAttributes()
        if (dry_run or not use_pades or not is_pdf_sig or encap_content_info is not None
                or digest_algorithm.lower() != DIGEST or settings.cades_signed_attrs
                or settings.adobe_revinfo_attr or self.signed_attr_prov_spec
                or self.unsigned_attr_prov_spec):
            return await super().async_sign(  # everything the template does not cover
                data_digest, digest_algorithm, dry_run=dry_run, use_pades=use_pades,
                timestamper=timestamper, signed_attr_settings=signed_attr_settings,
                is_pdf_sig=is_pdf_sig, encap_content_info=encap_content_info)

        async def timestamp(signature: bytes) -> cms.ContentInfo:
            assert timestamper is not None
            token: cms.ContentInfo = await timestamper.async_timestamp(
                hashlib.sha256(signature).digest(), DIGEST)
            return token

        der = await self._template.content_info(
            data_digest, lambda attrs: self.sign_raw(attrs, DIGEST),
            timestamp if timestamper is not None else None)
        return cms.ContentInfo.load(der)

    def sign_raw(self, data: bytes, digest_algorithm: str) -> bytes:
        mechanism = self.get_signature_mechanism_for_digest(digest_algorithm).signature_algo
        if mechanism != "rsassa_pkcs1v15":
            return super().sign_raw(data, digest_algorithm)
        return self._key.sign(data, PKCS1v15(), get_pyca_cryptography_hash(digest_algorithm))


def signer_for(identity: Identity, chain: Sequence[asn1_x509.Certificate]) -> FastSigner:
    return FastSigner(identity.key, identity, chain)


def _writer(pdf: bytes) -> IncrementalPdfFileWriter:
    return IncrementalPdfFileWriter(io.BytesIO(pdf), strict=False)


def prepare_fields(pdf: bytes, specs: Sequence[FieldSpec]) -> bytes:
    """Add every (empty) signature field in one incremental update (none: ``pdf`` as it is,
    e.g. a certified upload whose signers sign in its own fields)."""
    if not specs:
        return pdf
    w = _writer(pdf)
    pages = int(w.root["/Pages"]["/Count"])
    existing = {f[0] for f in fields.enumerate_sig_fields(w.prev, filled_status=None)}
    for spec in specs:
        if not 0 <= spec.page < pages:
            raise SigningError(f"field {spec.name}: page {spec.page + 1} is not in the "
                               f"document ({pages} pages)")
        if spec.name in existing:
            raise SigningError(f"the document already has a field named {spec.name!r}")
        fields.append_signature_field(w, SigFieldSpec(sig_field_name=spec.name,
                                                      on_page=spec.page, box=spec.box))
    out = io.BytesIO()
    w.write(out)
    return out.getvalue()


def sign_field(pdf: bytes, spec: SignatureSpec, signer: signers.Signer,
               timestamper: TimeStamper | None) -> bytes:
    """One signature in its own incremental update, into the prepared field (timestamped
    unless ``timestamper`` is None, which only the benchmarks use)."""
    w = _writer(pdf)
    state = {name: filled for name, filled, _ in
             fields.enumerate_sig_fields(w.prev, filled_status=None)}
    if spec.field_name not in state:
        raise SigningError(f"the document has no signature field {spec.field_name!r}")
    if state[spec.field_name]:
        raise SigningError(f"the field {spec.field_name!r} is already signed")
    meta = signers.PdfSignatureMetadata(
        field_name=spec.field_name, md_algorithm="sha256",
        subfilter=fields.SigSeedSubFilter.PADES, reason=spec.reason,
        location=spec.location or None, certify=spec.certify,
        docmdp_permissions=MDPPerm.FILL_FORMS)
    pdf_signer = signers.PdfSigner(meta, signer=signer, timestamper=timestamper,
                                   stamp_style=_stamp_style(spec.drawing))
    out: io.BytesIO = pdf_signer.sign_pdf(
        w, existing_fields_only=True, bytes_reserved=SIGNATURE_BYTES_RESERVED,
        appearance_text_params={"reason": spec.reason})
    return out.getvalue()


def _stamp_style(drawing: bytes | None) -> TextStampStyle:
    """Name, time and reason as text; a drawn signature fills the stamp behind them, scaled
    to fit, its ink at half strength so the text over it stays readable."""
    if drawing is None:
        return TextStampStyle(stamp_text=STAMP_TEXT, timestamp_format="%Y-%m-%d %H:%M %Z")
    try:
        with Image.open(io.BytesIO(drawing)) as img:
            img.load()
            picture = img.convert("RGBA") if img.mode not in ("RGB", "RGBA", "L", "LA") \
                else img.copy()
    except (OSError, ValueError) as e:
        raise SigningError(f"the drawn signature can't be read as an image: {e}") from e
    return TextStampStyle(
        stamp_text=STAMP_TEXT, timestamp_format="%Y-%m-%d %H:%M %Z",
        background=PdfImage(picture, name="DrawnSignature"), background_opacity=0.5,
        background_layout=layout.SimpleBoxLayoutRule(
            x_align=layout.AxisAlignment.ALIGN_MIN, y_align=layout.AxisAlignment.ALIGN_MID,
            margins=layout.Margins.uniform(2),
            inner_content_scaling=layout.InnerScaling.STRETCH_TO_FIT))


def seal(pdf: bytes, *, certs: Sequence[asn1_x509.Certificate], crls: Sequence[bytes],
         timestamper: TimeStamper) -> bytes:
    """Validation data for every signature into the DSS (B-LT), then a document
    timestamp over everything (B-LTA)."""
    reader = PdfFileReader(io.BytesIO(pdf), strict=False)
    all_certs: dict[bytes, asn1_x509.Certificate] = {c.dump(): c for c in certs}
    for sig in reader.embedded_signatures:
        for c in sig.signed_data["certificates"]:
            all_certs.setdefault(c.chosen.dump(), c.chosen)
        for attr in sig.signer_info["unsigned_attrs"] or []:
            if attr["type"].native == "signature_time_stamp_token":
                for token in attr["values"]:
                    for c in token["content"]["certificates"]:
                        all_certs.setdefault(c.chosen.dump(), c.chosen)
    w = _writer(pdf)
    DocumentSecurityStore.supply_dss_in_writer(
        w, None, certs=list(all_certs.values()),
        crls=[asn1_crl.CertificateList.load(c) for c in crls])
    buf = io.BytesIO()
    w.write(buf)
    stamped: io.BytesIO = signers.PdfTimeStamper(timestamper).timestamp_pdf(
        _writer(buf.getvalue()), "sha256", bytes_reserved=TIMESTAMP_BYTES_RESERVED)
    return stamped.getvalue()


def seal_certificate(pdf: bytes, seal: signers.Signer, timestamper: TimeStamper) -> bytes:
    """Certify a freshly made PDF (the certificate of completion) with the organisation
    seal, in an invisible field."""
    prepared = prepare_fields(pdf, [FieldSpec("seal", 0, (0, 0, 0, 0))])
    return sign_field(prepared, SignatureSpec("seal", "Certificate of completion", certify=True),
                      seal, timestamper)
