"""Answer suggestions for reworded RFP questions: ``documents.suggest`` against plain SQLite
FTS5 BM25 over the same library, in one run.

    .venv/bin/python -m bench.rfp_match [--data bench/rfp_match_data.json] [--misses]

The data (``rfp_match_data.json``) holds a content library and questions worded as an RFP or
a security questionnaire words them, each labelled with the one item that answers it. For each
question the script asks

- **fts5-bm25** (the baseline): an in-memory FTS5 table of the items (title, body, tags;
  tokenizer ``porter unicode61``, as the store's), queried with any of the question's words
  (an OR query), ranked by ``bm25()``;
- **suggest**: ``documents.suggest.rank`` over the whole library (in the app, the candidates
  are the store's full-text top 50 for ``suggest.query_terms``; here the library is small
  enough to rank it all, and the store path is the same for both).

It prints hit@1 and hit@3 of each, the time per question, and PASS/MISS for the targets:
suggest hit@1 ≥ 0.80 and ≥ 10 points above the baseline's. The ranker's weights were chosen
on the even-numbered questions, so it also prints suggest's hit@1 on the odd-numbered half.
``--misses`` lists the questions whose answer suggest did not rank first.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import time
from pathlib import Path

from bench._common import machine_note, verdict
from documents import suggest

DATA = Path(__file__).with_name("rfp_match_data.json")
TARGET_HIT1 = 0.80
TARGET_MARGIN = 0.10


def fts5_ranker(items: list[dict[str, object]]) -> sqlite3.Connection:
    db = sqlite3.connect(":memory:")
    db.execute("CREATE VIRTUAL TABLE lib USING fts5(key UNINDEXED, title, body, tags, "
               "tokenize='porter unicode61 remove_diacritics 2')")
    db.executemany("INSERT INTO lib (key, title, body, tags) VALUES (?, ?, ?, ?)",
                   [(i["key"], i["title"], i["body"], " ".join(i["tags"]))  # type: ignore[arg-type]
                    for i in items])
    return db


def fts5_rank(db: sqlite3.Connection, question: str, limit: int = 3) -> list[str]:
    ws = sorted(set(suggest.words(question)))
    if not ws:
        return []
    match = " OR ".join(f'"{w}"' for w in ws)
    rows = db.execute("SELECT key FROM lib WHERE lib MATCH ? ORDER BY bm25(lib) LIMIT ?",
                      (match, limit)).fetchall()
    return [r[0] for r in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--misses", action="store_true")
    args = parser.parse_args()
    data = json.loads(args.data.read_text())
    items, questions = data["items"], data["questions"]
    print(machine_note("start"))
    print(f"library: {len(items)} items; questions: {len(questions)}")

    db = fts5_ranker(items)
    index = suggest.Index([suggest.Candidate(i["key"], i["title"], i["body"], tuple(i["tags"]))
                           for i in items])
    hits = {"fts5-bm25": [0, 0], "suggest": [0, 0]}
    times = {"fts5-bm25": 0.0, "suggest": 0.0}
    misses: list[str] = []
    held_out = [0, 0]  # suggest's hit@1 on the odd-numbered questions (not used for tuning)
    for number, q in enumerate(questions):
        t0 = time.perf_counter()
        base = fts5_rank(db, q["q"])
        t1 = time.perf_counter()
        ours = [str(s.key) for s in index.rank(q["q"], 3)]
        t2 = time.perf_counter()
        times["fts5-bm25"] += t1 - t0
        times["suggest"] += t2 - t1
        for name, ranked in (("fts5-bm25", base), ("suggest", ours)):
            hits[name][0] += ranked[:1] == [q["answer"]]
            hits[name][1] += q["answer"] in ranked[:3]
        if number % 2:
            held_out[0] += ours[:1] == [q["answer"]]
            held_out[1] += 1
        if ours[:1] != [q["answer"]]:
            misses.append(f"  {q['q']!r}: want {q['answer']}, got {ours}")

    n = len(questions)
    print(f"{'ranker':<10} {'hit@1':>6} {'hit@3':>6} {'ms/question':>12}")
    for name, (h1, h3) in hits.items():
        print(f"{name:<10} {h1 / n:>6.3f} {h3 / n:>6.3f} {1000 * times[name] / n:>12.2f}")
    print(f"suggest hit@1 on the held-out half (odd-numbered questions, not used to choose "
          f"the weights): {held_out[0] / max(held_out[1], 1):.3f}")
    ours1, base1 = hits["suggest"][0] / n, hits["fts5-bm25"][0] / n
    print(f"target suggest hit@1 >= {TARGET_HIT1:.2f}: {verdict(ours1 >= TARGET_HIT1)} "
          f"({ours1:.3f})")
    print(f"target suggest hit@1 >= fts5-bm25 + {TARGET_MARGIN:.2f}: "
          f"{verdict(ours1 - base1 >= TARGET_MARGIN)} ({100 * (ours1 - base1):+.1f} points)")
    if args.misses:
        print(f"suggest's misses ({len(misses)}):")
        print("\n".join(misses))
    print(machine_note("end"))


if __name__ == "__main__":
    main()
