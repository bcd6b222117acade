"""Deploy-time costs: a fresh process's import + load + first prediction, and the Predictor's batch-1 overhead.

    python -m bench.cold_start [--model higgs] [--repeats 5] [--db bench/results/cold/higgs.db]

1. Tunes the model for a ``tvm-tir`` plan into its own database when that database has none yet (a short
   budget: the question is how fast a tuned plan loads, not how good it is), and saves the tuned
   predictor as an artifact file.
2. Starts ``--repeats`` fresh interpreters per entry point (``tuner.load_artifact(file)`` and
   ``tuner.load(model_file, db=...)``), each timing from before ``import tuner`` to the first
   prediction's result; the parent also times the whole process (interpreter start included).  Reports
   medians, and which heavy modules the child imported.
3. Times, in one process, the tuned program's own call and ``Predictor.predict`` on one float32 row,
   interleaved, and reports the Predictor's overhead over the program (median of repeats).

Writes ``bench/results/cold_start.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
TREEBEARD = REPO.parent / "shared" / "data" / "treebeard"
OUT = REPO / "bench" / "results"
HEAVY = ("torch", "tvm", "optuna", "sklearn", "xgboost", "lightgbm", "sqlalchemy", "pandas", "scipy")

CHILD = textwrap.dedent("""
    import sys, time
    t0 = time.perf_counter()
    import numpy as np
    import tuner
    t1 = time.perf_counter()
    mode, target, db, csv = sys.argv[1:5]
    p = tuner.load_artifact(target) if mode == "load_artifact" else tuner.load(target, db=db, strict=True)
    t2 = time.perf_counter()
    x = np.loadtxt(csv, delimiter=",", max_rows=1, ndmin=2)[:, :-1].astype(np.float32)
    t3 = time.perf_counter()
    y = p.predict(x)
    t4 = time.perf_counter()
    heavy = [m for m in {heavy!r} if m in sys.modules]
    print(repr(dict(import_s=t1 - t0, load_s=t2 - t1, first_predict_s=t4 - t3, total_s=(t4 - t3) + (t2 - t0),
                    heavy=heavy, plan=repr(p))))
""").replace("{heavy!r}", repr(HEAVY))


def ensure_tuned(model: Path, db: Path, budget: float) -> None:
    """A tvm-tir plan for ``model`` in ``db`` (tuned now, briefly, when there is none)."""
    import tuner

    db.parent.mkdir(parents=True, exist_ok=True)
    try:
        p = tuner.load(str(model), db=str(db), strict=True)
        if all(c["backend"] == "tvm-tir" for plan in p.plans for c in plan.configs()):
            return
    except tuner.NotTunedError:
        pass
    tuner.tune(str(model), db=str(db), batch_sizes=(1, 1024), time_budget=budget, backends=("tvm-tir",),
               progress=False)


def fresh_processes(mode: str, target: str, db: str, csv: str, repeats: int) -> dict:
    runs, walls = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", CHILD, mode, target, db, csv], capture_output=True, text=True,
                             cwd=REPO, timeout=300)
        walls.append(time.perf_counter() - t)
        if out.returncode != 0:
            raise RuntimeError(f"{mode} failed: {out.stderr[-2000:]}")
        runs.append(eval(out.stdout.strip().splitlines()[-1]))  # noqa: S307 - our own child's repr
    med = {k: statistics.median(r[k] for r in runs) for k in ("import_s", "load_s", "first_predict_s", "total_s")}
    return {**med, "process_s": statistics.median(walls), "heavy": runs[-1]["heavy"], "plan": runs[-1]["plan"],
            "repeats": repeats}


def batch1_overhead(artifact: str, csv: str, repeats: int = 15, calls: int = 5000) -> dict:
    import tuner

    p = tuner.load_artifact(artifact)
    x = np.ascontiguousarray(np.loadtxt(csv, delimiter=",", max_rows=1, ndmin=2)[:, :-1].astype(np.float32))
    task = p.plan_for(1).tasks[0]
    program = task.program("out")
    np.testing.assert_array_equal(p.predict(x), p.model.head.finish("predict", program(x)))

    def once(f) -> float:
        t = time.perf_counter()
        for _ in range(calls):
            f(x)
        return (time.perf_counter() - t) / calls

    kernel, predictor = [], []
    for _ in range(repeats):  # interleaved, so drift on a shared machine hits both alike
        kernel.append(once(program))
        predictor.append(once(p.predict))
    k, q = statistics.median(kernel), statistics.median(predictor)
    return {"kernel_us": k * 1e6, "predict_us": q * 1e6, "overhead_us": (q - k) * 1e6, "plan": repr(p)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="higgs")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--db", type=Path, default=None)
    ap.add_argument("--budget", type=float, default=60.0, help="tuning budget when the database has no plan yet")
    args = ap.parse_args(argv)
    model = TREEBEARD / f"{args.model}_xgb_model_save.json"
    csv = Path(f"{model}.test.sampled.csv")
    if not model.is_file():
        print(f"bench.cold_start: {model} is missing (the shared Treebeard models)", file=sys.stderr)
        return 1
    db = args.db or OUT / "cold" / f"{args.model}.db"
    ensure_tuned(model, db, args.budget)
    import tuner

    artifact = db.parent / f"{args.model}.tb"
    tuner.load(str(model), db=str(db), strict=True).save(str(artifact))
    results = {
        "model": args.model,
        "load_artifact": fresh_processes("load_artifact", str(artifact), str(db), str(csv), args.repeats),
        "load": fresh_processes("load", str(model), str(db), str(csv), args.repeats),
        "batch1": batch1_overhead(str(artifact), str(csv)),
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }
    (OUT / "cold_start.json").write_text(json.dumps(results, indent=1))
    (OUT / "cold_start.md").write_text(report(results))
    print(report(results))
    return 0


def report(r: dict) -> str:
    lines = [f"# Deploy-time costs: {r['model']} ({r['date']}, {r['load']['repeats']} fresh processes each, medians)",
             "", f"Plan: `{r['load']['plan']}`", "",
             "| entry point | import tuner | load | first predict | import + load + first predict | whole process | heavy modules imported |",
             "|---|---|---|---|---|---|---|"]
    for mode in ("load_artifact", "load"):
        m = r[mode]
        lines.append(f"| `tuner.{mode}` | {m['import_s']:.3f} s | {m['load_s']:.3f} s | {m['first_predict_s'] * 1e3:.2f} ms "
                     f"| **{m['total_s']:.3f} s** | {m['process_s']:.3f} s | {', '.join(m['heavy']) or 'none'} |")
    b = r["batch1"]
    lines += ["", "Batch 1, one float32 row (median of 15 interleaved runs of 5,000 calls):", "",
              "| tuned program's own call | `Predictor.predict` | overhead |", "|---|---|---|",
              f"| {b['kernel_us']:.2f} us | {b['predict_us']:.2f} us | **{b['overhead_us']:.2f} us** |", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
