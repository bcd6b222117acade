"""Are time budgets kept?  ``tune(time_budget=B)`` on suite models, each in a fresh database: seconds until it
returned vs the promise ``1.1 B + 10``, and where the time went.

    python -m bench.budgets [--cases higgs:20 lightgbm:60 pipe_hgb:120]

Writes ``bench/results/budgets.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from . import models

OUT = Path(__file__).resolve().parent / "results"
CACHE = OUT / "models"


def run_case(name: str, budget: float) -> dict:
    import tuner

    m = models.load(name, CACHE)
    sizes = tuple(b for b in (1, 1024) if m.spec.max_batch is None or b <= m.spec.max_batch)
    with tempfile.TemporaryDirectory(prefix="tunebird-budget-") as tmp:
        t = time.monotonic()
        report = tuner.tune(m.model, m.X, db=str(Path(tmp) / "b.db"), batch_sizes=sizes, time_budget=budget,
                            progress=False)
        returned = time.monotonic() - t
    return {"model": name, "budget_s": budget, "returned_s": returned, "limit_s": 1.1 * budget + 10,
            "kept": returned <= 1.1 * budget + 10, "trials": report.trials_measured, "time_s": report.time_s,
            "artifacts": report.artifacts, "skipped_builds": report.skipped_builds}


def report(rows: list[dict]) -> str:
    lines = [f"# Time budgets ({time.strftime('%Y-%m-%d %H:%M')}; fresh database per case, batch sizes 1 and 1,024)", "",
             "| model | budget B | returned after | limit 1.1 B + 10 | kept | prepare | search | final builds | trials | artifacts (skipped) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        t = r["time_s"]
        lines.append(f"| {r['model']} | {r['budget_s']:.0f} s | {r['returned_s']:.1f} s | {r['limit_s']:.0f} s | "
                     f"{'yes' if r['kept'] else '**no**'} | {t.get('prepare', 0):.1f} s | {t.get('search', 0):.1f} s | "
                     f"{t.get('builds', 0):.1f} s | {r['trials']} | {r['artifacts']} ({r['skipped_builds']}) |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", nargs="+", default=["higgs:20", "higgs:60", "lightgbm:60", "pipe_hgb:120"],
                    help="MODEL:SECONDS pairs (suite model names from bench/models.py)")
    args = ap.parse_args(argv)
    rows = []
    for case in args.cases:
        name, _, seconds = case.partition(":")
        rows.append(run_case(name, float(seconds)))
        print(report(rows[-1:]).splitlines()[-1], flush=True)
    (OUT / "budgets.json").write_text(json.dumps(rows, indent=1))
    (OUT / "budgets.md").write_text(report(rows))
    print(report(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
