"""Verify every signature in a PDF with pyHanko: integrity, trust, what changed after signing.

``verify_pdf(data, trust_roots)`` reads the PDF, validates each signature field (approval and
certification signatures, document timestamps) with pyHanko's diff analysis, and returns a
:class:`VerificationReport`. It never fetches anything (no OCSP, CRL or AIA requests): trust
comes only from the roots passed in, revocation data only from the file's DSS.
``check_integrity(data)`` is the same trusting no one, in a child process with time and
memory limits, for untrusted uploads (intake).

Errors, in one place:

    UnreadablePdf   the bytes are not a PDF pyHanko can read (not a PDF, broken structure,
                    password-protected, unreadable form fields). Document level.
    ValueError      bad arguments (a naive ``moment``; a trust-root file that holds no
                    certificate).
    SandboxError    (``check_integrity`` only, from ``documents.sandbox``) the check ran over
                    its time or memory limit, or its process died.

Anything pyHanko raises while checking one signature (``SignatureValidationError``,
``PdfReadError``, and the bare ``AssertionError``/``AttributeError`` some malformed CMS
blobs provoke) becomes a plain-language problem on that signature, which then fails;
``MemoryError`` is not a verdict on the file and passes through (see ``check_integrity``).

Choices worth knowing:
- The signer's certificate must allow ``digital_signature`` *or* ``non_repudiation``
  (pyHanko's default demands ``non_repudiation``; Acrobat and the ETSI profiles accept either).
- Files that break a PDF syntax rule are read a second time leniently, with a note; a lenient
  read never accepts hybrid-reference files (a known shadow-attack vector).
- Certificates are judged at ``moment`` (default: now); revocation is soft-fail and nothing
  is fetched. A signer certificate that has expired since is judged instead at the time of
  the signature's timestamp token, if that token is trusted now, using the revocation data
  the file embeds (a note says so). A timestamp authority's own expiry is not bridged by
  later document timestamps (no full AdES long-term validation).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import io
import logging
import pickle
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from asn1crypto import crl as asn1_crl
from asn1crypto import ocsp as asn1_ocsp
from asn1crypto import pem, x509
from asn1crypto.x509 import Certificate
from pyhanko.pdf_utils.misc import PdfReadError, PdfStrictReadError
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.ades.report import AdESIndeterminate
from pyhanko.sign.diff_analysis import ModificationLevel
from pyhanko.sign.fields import enumerate_sig_fields
from pyhanko.sign.validation import (
    DocumentSecurityStore,
    EmbeddedPdfSignature,
    async_validate_pdf_signature,
    async_validate_pdf_timestamp,
)
from pyhanko.sign.validation.errors import SignatureValidationError
from pyhanko.sign.validation.settings import KeyUsageConstraints
from pyhanko_certvalidator import ValidationContext

from documents import sandbox

_ALLOWED_COVERAGE = ("ENTIRE_FILE", "ENTIRE_REVISION")
INTEGRITY_LIMITS = sandbox.Limits(seconds=30, memory_mb=1024)
"""For :func:`check_integrity`. Measured (bench/signed_intake.py): 0.1-0.4 s and about 105 MB
of address space for a contract with one to three signatures, 0.5-0.8 s and 165 MB for 30 MB
of images with two, about 0.1 s more per further signature."""
_KEY_USAGE = KeyUsageConstraints(key_usage={"digital_signature", "non_repudiation"},
                                 match_all_key_usages=False)


class UnreadablePdf(Exception):
    """The document as a whole cannot be read, so no signature in it can be checked."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class SignatureKind(StrEnum):
    SIGNATURE = "signature"
    CERTIFICATION = "certification"
    DOCUMENT_TIMESTAMP = "document timestamp"


@dataclass(frozen=True)
class SignatureCheck:
    """The verdict on one signature field."""

    field_name: str
    """Fully qualified name of the signature form field."""
    kind: SignatureKind
    """Approval signature, certification (author, DocMDP) signature or document timestamp."""
    signer_name: str | None
    """Common name of the signer's certificate (the TSA's, for a document timestamp)."""
    signer_email: str | None
    """Email address from the certificate subject or its subjectAltName, if any."""
    signing_time: dt.datetime | None
    """Time of the embedded timestamp token when there is one, else the signer's claim."""
    timestamped: bool
    """True when ``signing_time`` comes from a timestamp token rather than the signer's claim."""
    revision: int | None
    """The document revision (0 = original) this signature covers; None if unreadable."""
    intact: bool
    """The digest of the signed byte ranges matches what was signed."""
    valid: bool
    """The cryptographic signature over that digest verifies."""
    trusted: bool
    """The signer's certificate chains to one of the trust roots and is usable at ``moment``."""
    modification_level: str | None
    """pyHanko ModificationLevel name for changes made after signing (NONE, LTA_UPDATES,
    FORM_FILLING, ANNOTATIONS, OTHER); None when it could not be determined."""
    docmdp_ok: bool | None
    """The later changes are allowed by the document's modification policy (DocMDP/FieldMDP)."""
    coverage: str | None
    """pyHanko SignatureCoverageLevel name: ENTIRE_FILE, ENTIRE_REVISION,
    CONTIGUOUS_BLOCK_FROM_START or UNCLEAR."""
    pades_level: str | None
    """Best-effort PAdES baseline level reached: B-B, B-T, B-LT or B-LTA. None for document
    timestamps and for signatures that are not PAdES (e.g. adbe.pkcs7.detached)."""
    integrity_ok: bool
    """Everything except trust holds: intact, valid, changes allowed, any timestamp token
    sound. (An untrusted but intact signature has ``integrity_ok`` and not ``ok``.)"""
    ok: bool
    """This signature passes: ``integrity_ok``, trusted, timestamp authority trusted, seed
    values respected, and no error."""
    problems: tuple[str, ...]
    """Plain-language reasons this signature is not ``ok`` (empty when it is)."""
    notes: tuple[str, ...] = ()
    """Remarks that do not fail the signature (e.g. judged at its timestamp's time)."""
    integrity_problems: tuple[str, ...] = ()
    """The ``problems`` that break ``integrity_ok`` (the others are about trust)."""


@dataclass(frozen=True)
class VerificationReport:
    """The verdict on a whole PDF."""

    signatures: tuple[SignatureCheck, ...]
    """One entry per filled signature field, oldest revision first."""
    moment: dt.datetime
    """The time certificates were judged at."""
    trust_roots: tuple[str, ...]
    """Subjects of the certificates trusted for this check."""
    notes: tuple[str, ...] = ()
    """Remarks about the document that do not by themselves fail it."""

    @property
    def valid(self) -> bool:
        """At least one signature, and every signature ``ok``."""
        return bool(self.signatures) and all(s.ok for s in self.signatures)

    @property
    def untampered(self) -> bool:
        """At least one signature, and every one ``integrity_ok``: nothing changed that the
        signers did not allow, whoever they are (trust aside). The verdict the upstream
        validator suites call PASS for signers outside our trust roots."""
        return bool(self.signatures) and all(s.integrity_ok for s in self.signatures)

    @property
    def problems(self) -> tuple[str, ...]:
        """Document-level reasons the document is not ``valid`` (besides per-signature ones)."""
        return () if self.signatures else ("the PDF contains no signatures",)


def parse_trust_roots(data: bytes) -> list[Certificate]:
    """Certificates from PEM (one or more) or DER bytes."""
    if pem.detect(data):
        return [x509.Certificate.load(der) for kind, _, der in pem.unarmor(data, multiple=True)
                if kind == "CERTIFICATE"]
    return [x509.Certificate.load(data)]


def load_trust_roots(paths: Iterable[Path]) -> list[Certificate]:
    """Certificates from PEM or DER files; ValueError naming the file that holds none."""
    roots: list[Certificate] = []
    for path in paths:
        try:
            found = parse_trust_roots(path.read_bytes())
            for cert in found:
                cert.subject  # noqa: B018 - parse now, so a bad file fails here
        except (OSError, ValueError, TypeError) as e:
            raise ValueError(f"{path}: not a readable certificate file ({e})") from None
        if not found:
            raise ValueError(f"{path}: holds no certificate")
        roots.extend(found)
    return roots


def default_trust_roots(pki_dir: Path) -> list[Certificate]:
    """The roots to trust when the caller names none: the internal CA's root certificate.

    This is the one hook the CLI and the web page share. It reads ``root.pem`` from the PKI
    directory laid out by :mod:`documents.pki` (public, so no passphrase, and it never
    creates a CA). No CA yet: nothing is trusted, and the report says so. A corrupt
    ``root.pem``: ValueError naming it.
    """
    root = pki_dir / "root.pem"
    return load_trust_roots([root]) if root.is_file() else []


def verify_pdf(data: bytes, trust_roots: Sequence[Certificate], *,
               moment: dt.datetime | None = None) -> VerificationReport:
    """Verify every signature in ``data``; raises :class:`UnreadablePdf`.

    Blocking (CPU and pyHanko's own event loop): call it from a worker thread
    (``asyncio.to_thread``, a sync Temporal activity), never on a thread that is running
    an event loop — that raises RuntimeError.
    """
    if moment is not None and moment.utcoffset() is None:
        raise ValueError("moment must be timezone-aware")
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        raise RuntimeError("verify_pdf blocks: run it in a worker thread (asyncio.to_thread)")
    when = moment or dt.datetime.now(dt.UTC)
    return asyncio.run(_verify(data, list(trust_roots), when))


def check_integrity(data: bytes, *, limits: sandbox.Limits = INTEGRITY_LIMITS
                    ) -> VerificationReport:
    """:func:`verify_pdf` trusting no one, in a child process within ``limits``: for untrusted
    uploads, where only integrity matters (``untampered``, each ``integrity_ok`` and
    ``integrity_problems``; no signer is trusted).

    pyHanko bounds neither time nor memory (it diffs every revision of every signature), so a
    big or hostile file could hold a thread for minutes; a child process is killed at the
    limit. Raises :class:`UnreadablePdf`, and :class:`documents.sandbox.SandboxError` when the
    check overran its limits or died. Blocking, but safe on any thread: the event loop pyHanko
    needs is the child's.
    """
    report = pickle.loads(sandbox.run(_integrity_report, data, limits=limits))  # noqa: S301
    assert isinstance(report, VerificationReport)
    return report


def _integrity_report(data: bytes) -> bytes:
    """Runs in the child: the report, pickled (``sandbox.run`` passes bytes)."""
    # With no roots every chain fails to build, and pyHanko logs each with a traceback to the
    # child's stderr (the app's): expected here, and the report says it better.
    for name in ("pyhanko", "pyhanko_certvalidator"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    return pickle.dumps(verify_pdf(data, []))


async def _verify(data: bytes, roots: list[Certificate], moment: dt.datetime
                  ) -> VerificationReport:
    if b"%PDF-" not in data[:1024]:
        raise UnreadablePdf("this is not a PDF file (no %PDF- header)")
    notes: list[str] = []
    try:
        reader, fields = _open(data, strict=True)
    except PdfStrictReadError as e:
        reader, fields = _open(data, strict=False)
        notes.append(f"the file breaks a PDF syntax rule and was read leniently ({e})")
    if not roots:
        notes.append("no trust roots were given, so no signer can be trusted")
    dss = _DssData.read(reader)
    context = dss.context(roots, moment)
    try:
        found = [_embed(reader, field) for field in fields]
        statuses = [(f, await _validate(reader, f, context, dss, roots)
                     if isinstance(f, _Loaded) else f.error) for f in found]
    finally:
        await context.aclose()
    certifying = _certification_ref(reader)
    levels = _PadesLevels(reader, statuses)
    checks = [_check(item, status, certifying, levels, moment) for item, status in statuses]
    return VerificationReport(
        signatures=tuple(sorted(checks, key=lambda c: (c.revision is None, c.revision or 0))),
        moment=moment, trust_roots=tuple(r.subject.human_friendly for r in roots),
        notes=tuple(notes))


def _open(data: bytes, *, strict: bool) -> tuple[Any, list[tuple[str, Any]]]:
    try:
        reader = PdfFileReader(io.BytesIO(data), strict=strict)
        if reader.encrypted and reader.decrypt("").status.name == "FAILED":
            raise UnreadablePdf("the PDF is password-protected; upload an unlocked copy")
        fields = [(name, field) for name, _, field in
                  enumerate_sig_fields(reader, filled_status=True)]
    except UnreadablePdf:
        raise
    except PdfStrictReadError:
        if strict:
            raise
        raise UnreadablePdf("the PDF cannot be read: its PDF structure is broken") from None
    except MemoryError:
        raise  # a limit of this process (check_integrity), not a verdict on the file
    except Exception as e:
        raise UnreadablePdf(f"the PDF cannot be read: {_describe_error(e)}") from e
    return reader, fields


@dataclass
class _Loaded:
    """A signature field pyHanko could load, with its signed revision."""

    emb: Any
    revision: int
    judged_at: dt.datetime | None = None
    """Set when the signer's certificate was judged at its timestamp's time (expired since)."""


@dataclass
class _Unloadable:
    """A signature field that could not even be loaded."""

    name: str
    error: Exception


def _embed(reader: Any, field: tuple[str, Any]) -> _Loaded | _Unloadable:
    name, sig_field = field
    try:
        emb = EmbeddedPdfSignature(reader, sig_field, name)
        return _Loaded(emb, int(emb.signed_revision))
    except MemoryError:
        raise
    except Exception as e:
        return _Unloadable(name, e)


async def _validate(reader: Any, sig: _Loaded, context: ValidationContext, dss: _DssData,
                    roots: list[Certificate]) -> Any:
    emb = sig.emb
    try:
        if not reader.strict and reader.xrefs.hybrid_xrefs_present:
            raise SignatureValidationError("hybrid-reference files are not accepted")
        if emb.sig_object_type == "/DocTimeStamp":
            return await async_validate_pdf_timestamp(emb, context)
        status = await async_validate_pdf_signature(emb, context, key_usage_settings=_KEY_USAGE)
        token = status.timestamp_validity
        if status.trust_problem_indic is AdESIndeterminate.OUT_OF_BOUNDS_NO_POE and \
                token is not None and token.trusted:
            # The signer's certificate expired after signing (ours live 30 days): a trusted
            # timestamp proves when the signature existed, so judge the certificate then,
            # with the revocation data the file embeds. The token itself is judged now.
            then = dss.context(roots, token.timestamp, past=True)
            try:
                again = await async_validate_pdf_signature(
                    emb, then, ts_validation_context=context, key_usage_settings=_KEY_USAGE)
            finally:
                await then.aclose()
            if again.trusted:
                sig.judged_at = token.timestamp
                return again
        return status
    except MemoryError:
        raise
    except Exception as e:
        return e


@dataclass(frozen=True)
class _DssData:
    """What the file's Document Security Store holds, parsed once."""

    certs: list[Certificate]
    crls: list[Any]
    ocsps: list[Any]

    @classmethod
    def read(cls, reader: Any) -> _DssData:
        dss = _read_dss(reader)
        parts: list[list[Any]] = []
        for load in (lambda d: list(d.load_certs()), _crls, _ocsps):
            try:
                parts.append(load(dss) if dss is not None else [])
            except Exception:
                parts.append([])
        return cls(*parts)

    def context(self, roots: list[Certificate], moment: dt.datetime, *,
                past: bool = False) -> ValidationContext:
        """Now: DSS certificates only help path building; its CRLs/OCSP responses are left
        out, since judged at ``moment`` they are stale by design and would fail signatures
        that soft-fail revocation passes. In the past (at a timestamp): they are used."""
        return ValidationContext(trust_roots=roots, other_certs=self.certs, moment=moment,
                                 allow_fetching=False, crls=self.crls if past else None,
                                 ocsps=self.ocsps if past else None, retroactive_revinfo=past)


def _read_dss(handler: Any) -> Any:
    try:
        return DocumentSecurityStore.read_dss(handler)
    except Exception:
        return None


def _ocsps(dss: Any) -> list[Any]:
    return [asn1_ocsp.OCSPResponse.load(ref.get_object().data) for ref in dss.ocsps]


def _crls(dss: Any) -> list[Any]:
    return [asn1_crl.CertificateList.load(ref.get_object().data) for ref in dss.crls]


def _certification_ref(reader: Any) -> Any:
    try:
        return reader.root["/Perms"].raw_get("/DocMDP").reference
    except Exception:
        return None


class _PadesLevels:
    """Best-effort PAdES baseline level: B-B (ETSI.CAdES.detached), B-T (+ sound signature
    timestamp), B-LT (+ DSS with validation data for the signer), B-LTA (+ a sound document
    timestamp over a revision whose DSS already holds that data)."""

    def __init__(self, reader: Any, statuses: list[tuple[_Loaded | _Unloadable, Any]]) -> None:
        self.reader = reader
        self.timestamps = [
            item.revision for item, st in statuses
            if isinstance(item, _Loaded) and item.emb.sig_object_type == "/DocTimeStamp"
            and not isinstance(st, Exception) and st.intact and st.valid]
        self._dss: dict[int, Any] = {}

    def dss_at(self, revision: int) -> Any:
        if revision not in self._dss:
            last = revision == self.reader.xrefs.total_revisions - 1
            self._dss[revision] = _read_dss(
                self.reader if last else self.reader.get_historical_resolver(revision))
        return self._dss[revision]

    def of(self, sig: _Loaded, status: Any) -> str | None:
        emb = sig.emb
        if emb.sig_object_type == "/DocTimeStamp" or \
                emb.sig_object.get("/SubFilter") != "/ETSI.CAdES.detached":
            return None
        token = status.timestamp_validity
        if token is None or not (token.intact and token.valid):
            return "B-B"
        latest = self.reader.xrefs.total_revisions - 1
        if not _has_validation_data(self.dss_at(latest), emb):
            return "B-T"
        for revision in self.timestamps:
            if revision >= sig.revision and _has_validation_data(self.dss_at(revision), emb):
                return "B-LTA"
        return "B-LT"


def _has_validation_data(dss: Any, emb: Any) -> bool:
    if dss is None:
        return False
    try:
        vri = "/" + hashlib.sha1(emb.pkcs7_content).hexdigest().upper()  # noqa: S324 - PAdES VRI key
        if vri in (dss.vri_entries or {}):
            return True
        cert = emb.signer_cert
        for resp in _ocsps(dss):
            basic = resp["response_bytes"]["response"].parsed
            for single in basic["tbs_response_data"]["responses"]:
                if single["cert_id"]["serial_number"].native == cert.serial_number:
                    return True
        return any(c.issuer == cert.issuer for c in _crls(dss))
    except Exception:
        return False


def _summarise(sig: _Loaded, status: Any, certifying: Any, pades_level: str | None,
               moment: dt.datetime) -> SignatureCheck:
    emb = sig.emb
    is_ts = emb.sig_object_type == "/DocTimeStamp"
    if is_ts:
        kind = SignatureKind.DOCUMENT_TIMESTAMP
    elif certifying is not None and _field_value_ref(emb) == certifying:
        kind = SignatureKind.CERTIFICATION
    else:
        kind = SignatureKind.SIGNATURE
    level = status.modification_level
    coverage = status.coverage.name if status.coverage is not None else None
    token = None if is_ts else status.timestamp_validity
    if is_ts:
        # pyHanko leaves docmdp_ok unset for document timestamps: judge the changes alone.
        docmdp_ok = level is not None and level != ModificationLevel.OTHER and \
            coverage in _ALLOWED_COVERAGE
        when, timestamped = status.timestamp, True
    else:
        docmdp_ok = status.docmdp_ok
        when = token.timestamp if token is not None else status.signer_reported_dt
        timestamped = token is not None
    integrity: list[str] = []
    trust: list[str] = []
    if not status.intact:
        integrity.append("the signed content was changed after signing (its digest no "
                         "longer matches)")
    elif not status.valid:
        integrity.append("the cryptographic signature does not verify")
    if coverage == "CONTIGUOUS_BLOCK_FROM_START":
        integrity.append("the signature does not cover its whole revision of the document: "
                         "bytes outside the signed range could be anything")
    elif coverage not in _ALLOWED_COVERAGE:
        integrity.append("the signature's byte range is irregular, so it is unclear what it "
                         "covers")
    elif level is None or level == ModificationLevel.OTHER:
        detail = status.diff_result if isinstance(status.diff_result, Exception) else None
        integrity.append("the document was changed after this signature in ways a later "
                         "signer may not make" + (f": {_first_line(detail)}" if detail else ""))
    elif not docmdp_ok:
        changes = level.name.lower().replace("_", " ")
        integrity.append(f"the changes after this signature ({changes}) go beyond what the "
                         "document's certification allows")
    if token is not None and not (token.intact and token.valid):
        integrity.append("the signature's timestamp token does not verify")
    if status.intact and status.valid and not status.trusted:
        trust.append(_trust_problem(status, moment, is_tsa=is_ts))
    if token is not None and token.intact and token.valid and not token.trusted:
        trust.append("the timestamp authority that dated this signature is not trusted")
    sv_error = getattr(status, "seed_value_constraint_error", None)
    if sv_error is not None:
        trust.append("the signature breaks the signature field's constraints: "
                     f"{sv_error.failure_message}")
    notes = [] if sig.judged_at is None else [
        f"the signer's certificate has expired since; it was valid at the trusted timestamp "
        f"({sig.judged_at.astimezone(dt.UTC):%d %b %Y %H:%M} UTC)"]
    name, email = _names(status.signing_cert)
    return SignatureCheck(
        field_name=emb.field_name, kind=kind, signer_name=name, signer_email=email,
        signing_time=when, timestamped=timestamped, revision=sig.revision,
        intact=bool(status.intact), valid=bool(status.valid), trusted=bool(status.trusted),
        modification_level=level.name if level is not None else None,
        docmdp_ok=docmdp_ok, coverage=coverage, pades_level=pades_level,
        integrity_ok=not integrity, ok=not integrity and not trust,
        problems=tuple(integrity + trust), notes=tuple(notes),
        integrity_problems=tuple(integrity))


def _check(found: _Loaded | _Unloadable, status: Any, certifying: Any, levels: _PadesLevels,
           moment: dt.datetime) -> SignatureCheck:
    if isinstance(found, _Loaded) and not isinstance(status, Exception):
        try:
            return _summarise(found, status, certifying, levels.of(found, status), moment)
        except MemoryError:
            raise
        except Exception as e:
            status = e
    name, revision = (found.emb.field_name, found.revision) if isinstance(found, _Loaded) \
        else (found.name, None)
    signer = email = when = None
    kind = SignatureKind.SIGNATURE
    if isinstance(found, _Loaded):
        try:
            if found.emb.sig_object_type == "/DocTimeStamp":
                kind = SignatureKind.DOCUMENT_TIMESTAMP
            when = found.emb.self_reported_timestamp
            signer, email = _names(found.emb.signer_cert)
        except Exception:  # noqa: S110 - best effort: the error itself is what we report
            pass
    problem = f"the signature cannot be checked: {_describe_error(status)}"
    return SignatureCheck(
        field_name=name, kind=kind, signer_name=signer, signer_email=email, signing_time=when,
        timestamped=False, revision=revision, intact=False, valid=False, trusted=False,
        modification_level=None, docmdp_ok=None, coverage=None, pades_level=None,
        integrity_ok=False, ok=False, problems=(problem,), integrity_problems=(problem,))


def _field_value_ref(emb: Any) -> Any:
    try:
        return emb.sig_field.raw_get("/V").reference
    except Exception:
        return None


def _names(cert: Any) -> tuple[str | None, str | None]:
    subject = cert.subject.native
    name = subject.get("common_name")
    email = subject.get("email_address")
    try:
        for general in cert.subject_alt_name_value or ():
            if email is None and general.name == "rfc822_name":
                email = general.native
    except Exception:  # noqa: S110 - a broken SAN only costs us the email
        pass
    return _one(name), _one(email)


def _one(value: Any) -> str | None:
    """asn1crypto gives a list for a multi-valued attribute: keep the first."""
    if isinstance(value, list):
        value = value[0] if value else None
    return str(value) if value else None


def _trust_problem(status: Any, moment: dt.datetime, *, is_tsa: bool) -> str:
    """Why pyHanko did not trust a certificate, from its AdES sub-indication."""
    who = "the timestamp authority's certificate" if is_tsa else "the signer's certificate"
    cert = status.signing_cert
    revoked = status.revocation_details
    if revoked is not None:
        whose = f"a CA certificate above {who}" if revoked.ca_revoked else who
        return f"{whose} was revoked on {revoked.revocation_date:%d %b %Y}"
    why = status.trust_problem_indic.name if status.trust_problem_indic is not None else ""
    if why in ("NO_CERTIFICATE_CHAIN_FOUND", "CHAIN_CONSTRAINTS_FAILURE") and \
            cert.self_signed != "no":
        return f"{who} is self-signed and is not one of the trusted roots"
    if why == "NO_CERTIFICATE_CHAIN_FOUND":
        issuer = cert.issuer.native.get("common_name") or cert.issuer.human_friendly
        return f"{who} (issued by {issuer}) does not lead to a trusted root"
    if why in ("OUT_OF_BOUNDS_NO_POE", "OUT_OF_BOUNDS_NOT_REVOKED", "EXPIRED", "NOT_YET_VALID"):
        return (f"{who} was not valid on {moment:%d %b %Y} (it is valid from "
                f"{cert.not_valid_before:%d %b %Y} to {cert.not_valid_after:%d %b %Y})")
    if why == "CHAIN_CONSTRAINTS_FAILURE":
        return f"{who} may not be used for this: its chain or key usage breaks a rule"
    if why == "TRY_LATER":
        return f"there is no usable revocation information for {who}"
    if why.startswith("CRYPTO_CONSTRAINTS"):
        return f"{who} or its chain uses an algorithm no longer considered secure"
    if why.startswith("REVOKED"):
        return f"{who} or a CA above it was revoked"
    return f"{who} is not trusted ({why.lower().replace('_', ' ') or 'no trusted path'})"


def _describe_error(error: BaseException) -> str:
    """A one-line reason for an exception pyHanko (or asn1crypto under it) raised."""
    text = _first_line(error)
    if isinstance(error, SignatureValidationError):
        return text
    if isinstance(error, PdfReadError):
        return f"its PDF structure is broken ({text})"
    return ("the signature data is malformed or uses a feature that is not supported "
            f"({type(error).__name__}: {text})")


def _first_line(error: BaseException) -> str:
    lines = [ln.strip() for ln in str(error).splitlines() if ln.strip()]
    return " ".join(lines[:3])[:300] or type(error).__name__


def to_json(report: VerificationReport) -> dict[str, Any]:
    """A JSON-ready dict: ``valid`` first, then the document problems and each signature."""
    return {
        "valid": report.valid,
        "problems": list(report.problems),
        "notes": list(report.notes),
        "moment": report.moment.isoformat(),
        "trust_roots": list(report.trust_roots),
        "signatures": [{
            "field": s.field_name, "kind": str(s.kind), "signer": s.signer_name,
            "email": s.signer_email,
            "signing_time": s.signing_time.isoformat() if s.signing_time else None,
            "timestamped": s.timestamped, "revision": s.revision, "intact": s.intact,
            "valid": s.valid, "trusted": s.trusted,
            "modification_level": s.modification_level, "docmdp_ok": s.docmdp_ok,
            "coverage": s.coverage, "pades_level": s.pades_level,
            "integrity_ok": s.integrity_ok, "ok": s.ok, "problems": list(s.problems),
            "notes": list(s.notes),
        } for s in report.signatures],
    }
