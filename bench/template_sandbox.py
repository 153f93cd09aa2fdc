"""Rendering a quote DOCX in its own process (``render_docx_isolated``) vs in-process
(``render_docx``), and the child's memory, in one run.

    .venv/bin/python -m bench.template_sandbox [--runs 15] [--image-mb 19]

Three templates: the built-in one, a one-page user template with a loop, and a user template
carrying about ``--image-mb`` MB of incompressible images (the upload limit is 20 MB). Each
run renders the same quote both ways, interleaved, so both see the same machine. Then, per
template, one child reports its peak address space (``VmPeak``, what ``RLIMIT_AS`` counts) and
resident memory (``VmHWM``). The limits in ``documents.quote_document.TEMPLATE_LIMITS`` should
leave generous headroom over these.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import os
import statistics
import time

from documents import sandbox
from documents.assembly import BomRow, DocLine
from documents.quote_document import (
    TEMPLATE_LIMITS,
    QuoteDocument,
    default_template,
    render_docx,
    render_docx_isolated,
)


def quote() -> QuoteDocument:
    lines = [DocLine(i, f"SKU-{i}", f"Product {i}", i, "each", 10_000 * i, 9_000 * i,
                     9_000 * i * i, 10.0, [f"Option {i} × 1", "Colour: graphite"])
             for i in range(1, 21)]
    return QuoteDocument(
        org_name="Acme Inc.", number="Q-7 v1", title="Bench quote", account_name="Globex",
        prepared_by="Bea Bench", issued=dt.date(2026, 1, 15), valid_until=dt.date(2026, 2, 14),
        currency="USD", channel="direct", lines=lines,
        bom=[BomRow(i % 3, f"PART-{i}", f"Part {i}", i) for i in range(40)],
        list_total=sum(ln.list_unit * ln.quantity for ln in lines),
        net_total=sum(ln.net_total for ln in lines), term_months=12,
        terms=[f"Term {i}." for i in range(8)])


def user_template(image_mb: int = 0) -> bytes:
    import docx
    from docx.shared import Mm
    from PIL import Image

    d = docx.Document()
    for text in ("Dear {{ account_name }},", "{%p for line in lines %}",
                 "{{ line.position }}. {{ line.name }}: {{ line.net_total }}", "{%p endfor %}",
                 "Total {{ net_total }}"):
        d.add_paragraph(text)
    per_image = 3  # MB of noise in a 1000 × 1000 RGB PNG
    for _ in range(image_mb // per_image):
        buf = io.BytesIO()
        Image.frombytes("RGB", (1000, 1000), os.urandom(3_000_000)).save(buf, format="PNG")
        d.add_picture(io.BytesIO(buf.getvalue()), width=Mm(60))
    out = io.BytesIO()
    d.save(out)
    return out.getvalue()


def peak_memory(doc: QuoteDocument, template: bytes) -> bytes:
    """Runs in the child: render, then report this process's peak memory."""
    render_docx(doc, template)
    status = dict(line.split(":", 1) for line in open("/proc/self/status"))  # noqa: SIM115
    return f"{status['VmPeak'].strip()} / {status['VmHWM'].strip()}".encode()


def main() -> None:
    from bench._common import finish, machine_note

    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--image-mb", type=int, default=19)
    args = ap.parse_args()
    print(machine_note("start"))
    # The child imports the function by its module's name; __main__ would not be found there.
    from bench.template_sandbox import peak_memory as probe

    doc = quote()
    templates = {"built-in": default_template(), "user": user_template(),
                 f"user + {args.image_mb} MB images": user_template(args.image_mb)}
    started = time.perf_counter()
    render_docx_isolated(doc, templates["user"])
    print(f"first isolated render (starts the forkserver): "
          f"{1000 * (time.perf_counter() - started):.0f} ms")
    for name, template in templates.items():
        assert render_docx(doc, template) == render_docx_isolated(doc, template)
        samples: dict[str, list[float]] = {"in-process": [], "isolated": []}
        for _ in range(args.runs):
            for kind, fn in (("in-process", render_docx), ("isolated", render_docx_isolated)):
                t0 = time.perf_counter()
                fn(doc, template)
                samples[kind].append(1000 * (time.perf_counter() - t0))
        med = {k: statistics.median(v) for k, v in samples.items()}
        peak = sandbox.run(probe, doc, template, limits=TEMPLATE_LIMITS).decode()
        print(f"{name:<24} {len(template) / 1e6:5.1f} MB  in-process {med['in-process']:6.1f} ms"
              f"  isolated {med['isolated']:6.1f} ms  (+{med['isolated'] - med['in-process']:.1f}"
              f" ms)  child VmPeak / VmHWM: {peak}")
    print(f"limits: {TEMPLATE_LIMITS.seconds:g} s, {TEMPLATE_LIMITS.memory_mb} MB")
    print(machine_note("end"))
    finish(0)


if __name__ == "__main__":
    main()
