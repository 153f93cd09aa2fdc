"""Rich library sections (DOCX fragments) as templates: ``{{ customer }}``, ``{% if … %}``
and table loops (docxtpl) filled in with the proposal's facts when it is assembled.

A fragment with no Jinja tag goes in byte for byte. One with tags is rendered in Jinja's
immutable sandbox (autoescaped, undefined names are errors); assembly runs in
``documents.sandbox``'s child, so a template that loops for hours or asks for gigabytes is
stopped there. On upload, :func:`check_isolated` opens the fragment, lists the names it
uses, refuses names a proposal doesn't have, and renders it with :data:`SAMPLE`, so a
broken section is refused with its reason before anyone picks it for a proposal.
"""

from __future__ import annotations

import io
import re
import zipfile
from typing import Any

from docxtpl import DocxTemplate
from jinja2 import StrictUndefined, TemplateError
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from documents import sandbox
from documents.convert import ConversionFailed, check_docx
from documents.zips import stable_zip

FIELDS: dict[str, str] = {
    "customer": "the customer's name", "title": "the proposal's title",
    "number": "the proposal number and version (P-12 v2)", "seller": "your company's name",
    "prepared_by": "the proposal's owner", "issued": "the date it was made",
    "valid_until": "the last day the offer holds", "currency": "ISO code, e.g. USD (or empty)",
    "total": "the linked quote's net total, e.g. 150,000.00 (or empty)",
    "discount_pct": "the linked quote's discount, e.g. 25% (or empty)",
    "signer": "who signs for the customer (or empty)",
    "custom": "the proposal's own fields, as {{ custom.project_name }}"}
"""What a section can use, each with what it holds."""


class _AnyField(dict[str, str]):
    """Sample custom fields: every name has a value (a proposal sets its own)."""

    def __missing__(self, key: str) -> str:
        return f"sample {key}"


SAMPLE: dict[str, Any] = {
    "customer": "Globex Corporation", "title": "Analytics platform", "number": "P-1 v1",
    "seller": "Northwind Software", "prepared_by": "Riley Rivera", "issued": "1 March 2027",
    "valid_until": "31 March 2027", "currency": "USD", "total": "150,000.00",
    "discount_pct": "25%", "signer": "Hank Scorpio", "custom": _AnyField()}

CHECK_LIMITS = sandbox.Limits(seconds=10, memory_mb=512)
_TAG = re.compile(rb"\{\{|\{%|\{#")
_PARTS = re.compile(r"word/(document|header\d*|footer\d*|footnotes|endnotes)\.xml")


class SectionTemplateError(ValueError):
    """The fragment can't be used; the message names the problem and the fix."""


def has_tags(data: bytes) -> bool:
    """Whether any text part of the DOCX holds a Jinja tag (then it is rendered)."""
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return any(_TAG.search(z.read(n)) for n in z.namelist() if _PARTS.fullmatch(n))


def _env() -> ImmutableSandboxedEnvironment:
    return ImmutableSandboxedEnvironment(autoescape=True, undefined=StrictUndefined)


def _open(data: bytes, name: str) -> DocxTemplate:
    try:
        check_docx(data, name)
    except ConversionFailed as e:
        raise SectionTemplateError(e.message) from e
    tpl = DocxTemplate(io.BytesIO(data))
    try:
        tpl.init_docx()
    except MemoryError:
        raise
    except Exception as e:  # python-docx and lxml raise many types for a damaged package
        raise SectionTemplateError(f"{name} can't be opened as a Word document; open it in "
                                   "Word, save it as .docx and upload it again") from e
    return tpl


def render(data: bytes, context: dict[str, Any], name: str = "the section") -> bytes:
    """The fragment with its tags filled in from ``context`` (unchanged without tags)."""
    if not has_tags(data):
        return data
    tpl = _open(data, name)
    try:
        tpl.render(context, jinja_env=_env())
    except SecurityError as e:
        raise SectionTemplateError(f"{name} tries something templates may not do ({e})") from e
    except UndefinedError as e:
        raise SectionTemplateError(f"{name} uses a field this proposal doesn't have ({e}); "
                                   "add it under the proposal's custom fields") from e
    except TemplateError as e:
        raise SectionTemplateError(f"{name} has a template error: {e}") from e
    except MemoryError:
        raise
    except Exception as e:  # a template can make any expression fail (1/0, 'a' + 1, ...)
        raise SectionTemplateError(f"{name} failed while being filled in: "
                                   f"{type(e).__name__}: {e}") from e
    out = io.BytesIO()
    tpl.save(out)
    return stable_zip(out.getvalue())


def check(data: bytes, name: str) -> bytes:
    """The names the fragment uses, one per line (bytes, to cross the sandbox), after
    refusing unknown ones and rendering it with :data:`SAMPLE`."""
    tpl = _open(data, name)
    if not has_tags(data):
        return b""
    try:
        env = _env()
        used = sorted(tpl.get_undeclared_template_variables(env) - set(env.globals))
    except TemplateError as e:
        raise SectionTemplateError(f"{name} has a template error: {e}") from e
    unknown = [n for n in used if n not in FIELDS]
    if unknown:
        raise SectionTemplateError(
            f"{name} uses {', '.join(repr(n) for n in unknown)}, which a proposal doesn't "
            f"have; use {', '.join(FIELDS)}")
    render(data, SAMPLE, name)
    return "\n".join(used).encode()


def check_isolated(data: bytes, name: str, *,
                   limits: sandbox.Limits = CHECK_LIMITS) -> list[str]:
    """:func:`check` in a child process within ``limits`` (blocking: call it on a thread)."""
    try:
        found: bytes = sandbox.run(check, data, name, limits=limits)
    except sandbox.SandboxError as e:
        raise SectionTemplateError(
            f"checking {name} overran its {e.limit} limit and was stopped; look for loops "
            "inside loops, very long repeated text or very large images") from e
    return [n for n in found.decode().split("\n") if n]
