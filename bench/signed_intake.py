"""Intake of an upload that is already signed: what checking its signatures' integrity costs.

    .venv/bin/python -m bench.signed_intake [--runs 5] [--image-mb 24]

Documents signed here (an internal PKI in a temp folder, one signer per signature, no
timestamps): a 20-page contract with one signature; the same with three signatures (three
revisions to diff); and a PDF of about ``--image-mb`` MB of incompressible images (the upload
limit is 25 MB) with two signatures. Timed, each: ``accept_pdf`` as intake runs it (structure
checks, then ``check_integrity`` in a child process), and ``check_integrity`` alone; then one
child reports its peak address space (``VmPeak``, what ``RLIMIT_AS`` counts) and resident memory
(``VmHWM``) after ``verify_pdf``. ``documents.verify.INTEGRITY_LIMITS`` should leave generous
headroom over these.
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import statistics
import tempfile
import time
from pathlib import Path

from documents import sandbox, signing
from documents.intake import accept_pdf
from documents.pki import Pki
from documents.verify import INTEGRITY_LIMITS, check_integrity, verify_pdf


def contract(pages: int = 20) -> bytes:
    from reportlab.pdfgen import canvas

    buf = io.BytesIO()
    c = canvas.Canvas(buf)
    for i in range(pages):
        c.drawString(72, 760, f"Master services agreement, page {i + 1} of {pages}")
        for line in range(40):
            c.drawString(72, 730 - 14 * line, f"{i + 1}.{line + 1} The parties agree to "
                                              f"clause {line + 1} as written.")
        c.showPage()
    c.save()
    return buf.getvalue()


def images(megabytes: int) -> bytes:
    from PIL import Image
    from reportlab.lib.utils import ImageReader
    from reportlab.pdfgen import canvas

    buf = io.BytesIO()
    c = canvas.Canvas(buf)
    for i in range(max(1, megabytes // 3)):  # ~3 MB of noise a page once deflated
        noise = Image.frombytes("RGB", (1000, 1000), os.urandom(3_000_000))
        c.drawImage(ImageReader(noise), 50, 200, width=500, height=500)
        c.drawString(72, 760, f"Drawing {i + 1}")
        c.showPage()
    c.save()
    return buf.getvalue()


def signed(pdf: bytes, pki: Pki, count: int) -> bytes:
    names = [f"Sig{n}" for n in range(1, count + 1)]
    pdf = signing.prepare_fields(pdf, [signing.FieldSpec(name, 0, (72 + 90 * n, 60,
                                                                   152 + 90 * n, 100))
                                       for n, name in enumerate(names)])
    for n, name in enumerate(names):
        signer = signing.signer_for(pki.issue_signer(f"Signer {n + 1}", f"s{n}@x.test"),
                                    pki.chain)
        pdf = signing.sign_field(pdf, signing.SignatureSpec(name, "Agreed", certify=n == 0),
                                 signer, None)
    return pdf


def peak_memory(data: bytes) -> bytes:
    """Runs in the child: verify, then report this process's peak memory."""
    for name in ("pyhanko", "pyhanko_certvalidator"):  # untrusted chains, logged with tracebacks
        logging.getLogger(name).setLevel(logging.CRITICAL)
    verify_pdf(data, [])
    status = dict(line.split(":", 1) for line in open("/proc/self/status"))  # noqa: SIM115
    return f"{status['VmPeak'].strip()} / {status['VmHWM'].strip()}".encode()


def main() -> None:
    from bench._common import finish, machine_note

    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--image-mb", type=int, default=24)
    args = ap.parse_args()
    print(machine_note("start"))
    # The child imports the function by its module's name; __main__ would not be found there.
    from bench.signed_intake import peak_memory as probe

    with tempfile.TemporaryDirectory() as tmp:
        pki = Pki(Path(tmp), "bench-passphrase", org_name="Bench", base_url="http://127.0.0.1:9")
        files = {"20 pages, 1 signature": signed(contract(), pki, 1),
                 "20 pages, 3 signatures": signed(contract(), pki, 3),
                 f"{args.image_mb} MB of images, 2 signatures": signed(images(args.image_mb),
                                                                       pki, 2)}
    started = time.perf_counter()
    check_integrity(files["20 pages, 1 signature"])
    print(f"first check (starts the forkserver): {1000 * (time.perf_counter() - started):.0f} ms")
    for name, data in files.items():
        intake: list[float] = []
        alone: list[float] = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            accepted = accept_pdf(data, filename="signed.pdf", max_bytes=30 * 2**20)
            t1 = time.perf_counter()
            report = check_integrity(data)
            alone.append(1000 * (time.perf_counter() - t1))
            intake.append(1000 * (t1 - t0))
        assert report.untampered and accepted.signature_count == len(report.signatures)
        peak = sandbox.run(probe, data, limits=INTEGRITY_LIMITS).decode()
        print(f"{name:<30} {len(data) / 1e6:5.1f} MB  accept_pdf {statistics.median(intake):6.0f}"
              f" ms  check_integrity {statistics.median(alone):6.0f} ms  child VmPeak / VmHWM: "
              f"{peak}")
    print(f"limits: {INTEGRITY_LIMITS.seconds:g} s, {INTEGRITY_LIMITS.memory_mb} MB")
    print(machine_note("end"))
    finish(0)


if __name__ == "__main__":
    main()
