"""One system on one model, in a fresh process: ``python -m bench.worker JOB.json``.

The parent (``bench.runner``) writes the job; this process imports the
system's libraries, loads the inputs, resets its peak RSS, then builds and
measures (``bench.measure.run_job``) and writes the result JSON and outputs.
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

from .measure import load_inputs, run_job, write_result
from .peers import get
from .peers.base import Context


def main(job_path: str) -> int:
    job = json.loads(Path(job_path).read_text())
    warnings.simplefilter("ignore")  # library chatter would only clutter the parent's log
    system = get(job["system"])
    ctx = Context(threads=job["threads"], db=job["db"], cache_dir=Path(job["cache_dir"]), method=job["method"])
    system.warm_imports()
    inputs = load_inputs(job["inputs"])
    result = run_job(lambda: system.prepare(job["model"], ctx), inputs, job["outputs"], job["max_call_s"],
                     job.get("min_seconds"), always_output=job["system"] == "native", facts=system.cell_facts)
    write_result(job["result"], result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1]))
