"""Adding a line in the quote builder: server time of the builder's own request, vs. the
app's floor (GET /healthz) measured interleaved in the same run.

    .venv/bin/python -m bench.builder_add_line [--existing 100] [--adds 60]

The demo data (users, policy, catalog) on SQLite; a rep's quote that already has
``--existing`` configured lines. Each sample is the htmx POST the builder sends when the rep
clicks "Add to quote" on a configured WS-9 workstation (three-level bundle, rules, pricing,
one transaction, the re-rendered lines and totals), timed from request to last byte over
localhost. Target: p95 < 100 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import time
from decimal import Decimal

import httpx
from sqlalchemy import select

from bench._common import (
    bench_settings,
    finish,
    live_app,
    machine_note,
    pct,
    summary,
    temp_root,
    temporal_server,
    verdict,
)
from cpq.catalog import Selection
from dealdesk.demo import PASSWORD, seed_records
from store.db import make_engine, make_session_factory, write_lock
from store.migrate import upgrade
from store.models import Account, User
from web.services import configurator
from web.services.quotes import QuoteFields, create_quote

TARGET_MS = 100.0
FORM = {"sku": "WS-9", "qty": "4", "discount": "5", "a::colour": "graphite",
        "o:WS-BODY": "1", "o:WS-BODY/CPU-32": "1", "o:WS-BODY/RAM-64": "4",
        "o:WS-BODY/GPU-PRO": "1", "o:WS-BODY/SSD-2T": "2", "o:DSP-27": "2",
        "seen": ["", "WS-BODY"]}


async def run(existing: int, adds: int) -> None:
    with temp_root("dealdesk-bench-builder-") as root, temporal_server(root) as temporal:
        url = f"sqlite:///{root / 'dealdesk.db'}"
        upgrade(url)
        settings = bench_settings(root, url, temporal.address)
        sessions = make_session_factory(make_engine(url))
        seed_records(sessions)
        with sessions() as s:
            write_lock(s)
            rep = s.scalar(select(User).where(User.email == "rep@demo.test"))
            acc = s.scalar(select(Account).where(Account.name == "Initech"))
            assert rep and acc
            quote = create_quote(s, rep, QuoteFields(account_id=acc.id, title="Bench fleet",
                                                     currency="USD", term_months=12))
            sel = Selection("WS-9", 2, options=(Selection("WS-BODY", 1, options=(
                Selection("CPU-16", 1),)),))
            configurator.add_items(s, quote, rep, [(sel, Decimal(3))] * existing)
            s.commit()
            quote_id = quote.id
        async with live_app(settings) as (base, _), httpx.AsyncClient(base_url=base) as c:
            page = await c.get("/login")
            csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
            assert csrf
            await c.post("/login", data={"email": "rep@demo.test", "password": PASSWORD,
                                         "csrf_token": csrf.group(1)})
            builder = await c.get(f"/quotes/{quote_id}/build")
            token = re.search(r'"X-CSRF-Token": "([^"]+)"', builder.text)
            assert builder.status_code == 200 and token
            headers = {"HX-Request": "true", "HX-Target": "lines-table",
                       "X-CSRF-Token": token.group(1)}
            add, floor = [], []
            for i in range(adds + 3):
                t0 = time.perf_counter()
                r = await c.post(f"/quotes/{quote_id}/build/items", data=FORM, headers=headers)
                t1 = time.perf_counter()
                assert r.status_code == 200 and "<tbody class=\"item\">" in r.text, r.text[:300]
                await c.get("/healthz")
                t2 = time.perf_counter()
                if i >= 3:  # warm-up
                    add.append(t1 - t0)
                    floor.append(t2 - t1)
                await asyncio.sleep(0.05)
        print(summary("GET /healthz (floor)", floor))
        print(summary(f"add a line ({existing}->{existing + adds + 3} lines)", add))
        ratio = pct(add, 95) / pct(floor, 95)
        print(f"add-line p95 / floor p95: {ratio:.1f}x")
        print(f"add-line p95 {pct(add, 95):.1f} ms (target < {TARGET_MS:.0f} ms: "
              f"{verdict(pct(add, 95) < TARGET_MS)})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--existing", type=int, default=100)
    ap.add_argument("--adds", type=int, default=60)
    args = ap.parse_args()
    print(machine_note("start"))
    asyncio.run(run(args.existing, args.adds))
    print(machine_note("end"))
    finish(0)


if __name__ == "__main__":
    main()
