"""Pricing a 2,000-line quote, vs. the same lines summed as list × quantity, in one run.

    .venv/bin/python -m bench.pricing_cost [--lines 2000] [--runs 30]

The demo catalog (dealdesk/demo/catalog.yaml), a reseller deal for the account with a
contracted price book, a quote header discount: 2,000 lines cycling over every sellable SKU
with quantities 1-120 (so range and slab schedules, contracted prices, the partner discount,
the line discount and the channel guard's direct re-pricing all run). Timed: the pricing
engine (``Pricer(...).price(lines)``) from lines to the priced quote. Baseline, same lines:
a plain loop of list price × quantity. Target: under 200 ms (median and p95).
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import time
from decimal import Decimal
from pathlib import Path

import yaml

from bench._common import finish, machine_note, verdict
from cpq.loader import parse_catalog
from cpq.pricing import Deal, LineIn, Pricer

TARGET_MS = 200.0
DEMO = Path(__file__).resolve().parents[1] / "dealdesk" / "demo" / "catalog.yaml"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lines", type=int, default=2000)
    ap.add_argument("--runs", type=int, default=30)
    args = ap.parse_args()
    print(machine_note("start"))
    spec = parse_catalog(yaml.safe_load(DEMO.read_text()),
                         {"Stark Industries": 1, "Globex": 2}.get)
    skus = sorted(s for s, p in spec.catalog.products.items() if p.list_prices.get("USD"))
    lines = [LineIn(skus[i % len(skus)], 1 + (i * 7) % 120, Decimal(i % 9))
             for i in range(args.lines)]
    deal = Deal("USD", dt.date(2026, 11, 26), account_id=1, channel="reseller",
                partner_tier="gold", header_discount_pct=Decimal("2.5"))
    usd = {s: spec.catalog.products[s].list_prices["USD"] for s in skus}

    def engine() -> int:
        return Pricer(spec.catalog, spec.prices, deal).price(lines).net_total

    def baseline() -> int:
        return sum(usd[ln.sku] * ln.quantity for ln in lines)

    samples: dict[str, list[float]] = {"engine": [], "baseline": []}
    for _ in range(3):
        engine(), baseline()
    for _ in range(args.runs):  # interleaved, so both see the same machine
        for name, fn in (("engine", engine), ("baseline", baseline)):
            t0 = time.perf_counter()
            fn()
            samples[name].append(1000 * (time.perf_counter() - t0))
    q = Pricer(spec.catalog, spec.prices, deal).price(lines)
    print(f"{args.lines} lines, {len(q.channel_conflicts)} SKUs in channel conflict, "
          f"net {q.net_total / 100:,.2f} USD")
    for name, times in samples.items():
        ordered = sorted(times)
        print(f"{name:<9} median {statistics.median(times):8.2f} ms  "
              f"p95 {ordered[int(0.95 * len(ordered)) - 1]:8.2f} ms")
    med = statistics.median(samples["engine"])
    p95 = sorted(samples["engine"])[int(0.95 * args.runs) - 1]
    print(f"engine / baseline: {med / statistics.median(samples['baseline']):.0f}x "
          f"(the waterfall, schedules, books and the guard against one multiplication)")
    print(f"pricing {args.lines} lines: median {med:.1f} ms, p95 {p95:.1f} ms "
          f"(target < {TARGET_MS:.0f} ms: {verdict(p95 < TARGET_MS)})")
    print(machine_note("end"))
    finish(0)


if __name__ == "__main__":
    main()
