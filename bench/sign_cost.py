"""Per-signature cost of dealdesk's envelope signature next to stock pyHanko, tuned pyHanko
and @libpdf/core, all on the same 20-page PDF and RSA-2048 key, in one run.

    .venv/bin/python -m bench.sign_cost [--rounds 3] [--runs 10] [--peers ../shared/peers/signing]

The peers are measured by the shared peer scripts (``../shared/peers/signing``, see its
README): ``gen_data.py`` makes the PDF (one empty field ``Signature1``) and the PKCS#12,
``bench_pyhanko.py`` times pyHanko stock / tuned / tuned+keycache, ``bench_node.mjs`` times
@libpdf/core with a fresh and a reused signer. Their Node packages are installed once from
the npm registry into ``var/bench/peersign/node``.

Ours, timed in this process on the same bytes and key (input bytes in memory → signed bytes
in memory, as the peers time it):

- ``dealdesk-envelope``: exactly what ``apply_signature`` does: the certifying signature
  with the signer's visible stamp, the CA chain embedded and an RFC 3161 timestamp from the
  in-app TSA (PAdES B-T);
- ``dealdesk-no-timestamp``: the same without the timestamp (what the peers produce: B-B).

Rounds alternate processes (ours, pyHanko, Node) and never overlap. Each round's output of
ours is validated with the peers' ``validate.py`` (pyHanko with diff analysis, and pdfsig).
Ratios use medians over all rounds. Targets: ours ≤ 1.3 x tuned pyHanko (tuned+keycache)
and ≤ 2 x @libpdf/core (signer reused).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from cryptography.hazmat.primitives.serialization import pkcs12

from bench._common import finish, machine_note, temp_root, verdict
from documents import signing
from documents.pki import Identity, Pki, to_asn1
from documents.timestamps import timestamper

ROOT = Path(__file__).resolve().parents[1]
NODE_PACKAGES = ["@signpdf/signpdf@3.3.0", "@signpdf/signer-p12@3.3.0",
                 "@signpdf/placeholder-plain@3.3.0", "@signpdf/placeholder-pdf-lib@3.3.0",
                 "@signpdf/utils@3.3.0", "node-forge@1.4.3", "pdf-lib@1.17.1",
                 "@libpdf/core@0.4.2"]
TUNED, LIBPDF = "pyhanko-tuned+keycache", "libpdf-reuse"


def node_dir() -> Path:
    target = ROOT / "var" / "bench" / "peersign" / "node"
    if not (target / "node_modules" / "@libpdf" / "core").exists():
        target.mkdir(parents=True, exist_ok=True)
        print(f"installing the peers' Node packages into {target} (npm registry)")
        subprocess.run(["npm", "install", "--prefix", str(target), "--no-audit", "--no-fund",
                        "--silent", *NODE_PACKAGES], check=True, timeout=600)
    return target


def ours(data: Path, pki_dir: Path, runs: int, warmup: int, out: Path) -> dict[str, list[float]]:
    pdf = (data / "input.pdf").read_bytes()
    key, cert, extra = pkcs12.load_key_and_certificates((data / "signer.p12").read_bytes(),
                                                        b"peersign")
    assert isinstance(key, RSAPrivateKey) and cert is not None
    signer = signing.signer_for(Identity(key, cert), [to_asn1(c) for c in extra or []])
    tsa = timestamper(Pki(pki_dir, "bench", org_name="Bench", base_url="http://127.0.0.1"))
    spec = signing.SignatureSpec("Signature1", "Signed as Buyer", location="203.0.113.7",
                                 certify=True)
    samples: dict[str, list[float]] = {}
    for name, ts in (("dealdesk-envelope", tsa), ("dealdesk-no-timestamp", None)):
        for _ in range(warmup):
            signing.sign_field(pdf, spec, signer, ts)
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()  # bytes are immutable: every run reads the same input
            signed = signing.sign_field(pdf, spec, signer, ts)
            times.append(1000 * (time.perf_counter() - t0))
        samples[name] = times
        (out / f"{name}.pdf").write_bytes(signed)
    return samples


def run_json(cmd: list[str], env: dict[str, str]) -> dict[str, object]:
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:2])} failed: {res.stderr[-2000:]}")
    parsed: dict[str, object] = json.loads(res.stdout)
    return parsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--peers", type=Path, default=ROOT.parent / "shared" / "peers" / "signing")
    args = ap.parse_args()
    print(machine_note("start"))
    samples: dict[str, list[float]] = {}
    with temp_root("dealdesk-bench-sign-") as root:
        env = {**os.environ, "PEERSIGN_DIR": str(root), "NODE_DIR": str(node_dir())}
        data, out = root / "data", root / "out"
        out.mkdir()
        subprocess.run([sys.executable, str(args.peers / "gen_data.py"), "--out", str(data)],
                       check=True, env=env, capture_output=True, timeout=120)
        common = ["--runs", str(args.runs), "--warmup", str(args.warmup)]
        for n in range(args.rounds):
            for name, times in ours(data, root / "pki", args.runs, args.warmup, out).items():
                samples.setdefault(name, []).extend(times)
            py = run_json([sys.executable, str(args.peers / "bench_pyhanko.py"), "--data",
                           str(data), "--out", str(out), *common], env)
            js = run_json(["node", str(args.peers / "bench_node.mjs"), "--data", str(data),
                           "--out", str(out), "--only", "libpdf-stock,libpdf-reuse", *common],
                          env)
            for variant in [*py["variants"], *js["variants"]]:  # type: ignore[misc]
                samples.setdefault(variant["name"], []).extend(variant["samples_ms"])
            print(f"round {n + 1}/{args.rounds} done")
        checked = run_json([sys.executable, str(args.peers / "validate.py"), "--data",
                            str(data), str(out / "dealdesk-envelope.pdf"),
                            str(out / "dealdesk-no-timestamp.pdf")], env)
    print()
    print(f"{'variant':<26} {'n':>4} {'median':>9} {'p90':>9} {'min':>9}   (ms per signature)")
    for name, times in samples.items():
        ordered = sorted(times)
        p90 = ordered[max(0, int(0.9 * len(ordered)) - 1)]
        print(f"{name:<26} {len(times):>4} {statistics.median(times):>9.1f} {p90:>9.1f} "
              f"{ordered[0]:>9.1f}")
    print()
    print("validation of ours (peers' validate.py: pyHanko diff analysis + pdfsig):")
    print(json.dumps(checked, indent=1)[:3000])
    med = {k: statistics.median(v) for k, v in samples.items()}
    for name in ("dealdesk-envelope", "dealdesk-no-timestamp"):
        r_tuned, r_libpdf = med[name] / med[TUNED], med[name] / med[LIBPDF]
        print(f"{name}: {r_tuned:.2f} x tuned pyHanko (target <= 1.3: "
              f"{verdict(r_tuned <= 1.3)}), {r_libpdf:.2f} x @libpdf/core reused "
              f"(target <= 2: {verdict(r_libpdf <= 2)})")
    print(machine_note("end"))
    finish(0)


if __name__ == "__main__":
    main()
