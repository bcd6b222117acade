"""The task-scheduler role: shares one budget across the jobs (tasks x tuned batch sizes).

A scheduler only decides which job gets the next round (:meth:`TaskScheduler.next_job`);
:meth:`TaskScheduler.run` is the loop: start every job, give rounds to the jobs
without a leader until the budget is spent or every one has ended, then let each
follower measure its leader's winner (tuned once: the members of an ensemble
that share a structure), then measure the seeds of any job the
time budget never reached (bounded by the run's deadline), so no batch size is
left with nothing measured.  ``make_scheduler(name_or_instance)``: ``gradient``
(the default, after Ansor) or ``round-robin``.
"""

from __future__ import annotations

import abc
import math
from typing import ClassVar, Sequence

from .job import Job, TuneContext


class TaskScheduler(abc.ABC):
    """Picks the job that gets the next round."""

    name: ClassVar[str]

    @abc.abstractmethod
    def next_job(self, jobs: Sequence[Job]) -> Job | None:
        """The job to give a round to, or None when every job has ended."""

    def run(self, jobs: Sequence[Job], ctx: TuneContext) -> None:
        """Tune ``jobs`` within ``ctx.budget``: the jobs without a leader are searched; then each follower
        measures its leader's winner (trials are held back for them)."""
        for job in jobs:
            ctx.start(job)
        searched = [j for j in jobs if j.leader is None]
        followers = [j for j in jobs if j.leader is not None]
        ctx.budget.held_trials = len(followers)
        try:
            while not ctx.budget.spent() and not ctx.out_of_time:
                job = self.next_job(searched)
                if job is None:
                    break
                ctx.run_round(job, jobs)
        finally:
            ctx.budget.held_trials = 0
        for job in followers:
            for _ in range(2):  # the leader's winner; if it fails here, the follower's own seeds
                if job.best is not None or (ctx.budget.trials is not None
                                            and ctx.budget.used_trials >= ctx.budget.trials):
                    break
                ctx.run_round(job, jobs, seeds_only=True)
                job.leader = None
        if ctx.budget.seconds is not None:
            for job in searched:
                if job.rounds == 0 and not job.done:
                    ctx.run_round(job, jobs, seeds_only=True)
        for job in jobs:
            ctx.search.finish(job)


class RoundRobinScheduler(TaskScheduler):
    """Every live job in turn."""

    name: ClassVar[str] = "round-robin"

    def __init__(self) -> None:
        self._turn = 0

    def next_job(self, jobs: Sequence[Job]) -> Job | None:
        live = [j for j in jobs if not j.done]
        if not live:
            return None
        job = live[self._turn % len(live)]
        self._turn += 1
        return job


class GradientScheduler(TaskScheduler):
    """After Ansor: every job gets a first round, then the job whose best latency is falling fastest
    relative to its batch size's end-to-end latency (every job keeps some hope: 5% of its latency);
    ties go to the job with the fewest rounds."""

    name: ClassVar[str] = "gradient"

    def __init__(self, window: int = 3, hope: float = 0.05) -> None:
        self.window = window
        self.hope = hope

    def next_job(self, jobs: Sequence[Job]) -> Job | None:
        live = [j for j in jobs if not j.done]
        if not live:
            return None
        fresh = [j for j in live if j.rounds == 0]
        if fresh:
            return fresh[0]
        totals: dict[int, float] = {}
        for j in jobs:
            if math.isfinite(j.best_latency):
                totals[j.batch] = totals.get(j.batch, 0.0) + j.best_latency

        def gain(j: Job) -> float:
            hist = j.best_history
            if len(hist) < 2 or not math.isfinite(hist[-1]):
                return math.inf
            past = hist[-self.window] if len(hist) >= self.window else hist[0]
            recent = max(past, hist[-1]) - hist[-1]
            return (max(recent, 0.0) + self.hope * hist[-1]) / max(totals.get(j.batch, hist[-1]), 1e-12)

        # equal gains (jobs that stopped improving all keep the same hope): the job served least so far,
        # so no batch size is starved while another never ends
        return max(live, key=lambda j: (gain(j), -j.rounds))


SCHEDULERS: dict[str, type[TaskScheduler]] = {"gradient": GradientScheduler, "round-robin": RoundRobinScheduler}


def make_scheduler(scheduler: str | TaskScheduler | None) -> TaskScheduler:
    """The task scheduler called ``scheduler`` (default ``gradient``), or ``scheduler`` itself."""
    if isinstance(scheduler, TaskScheduler):
        return scheduler
    cls = SCHEDULERS.get(scheduler or "gradient")
    if cls is None:
        raise ValueError(f"unknown task scheduler {scheduler!r}; expected one of {sorted(SCHEDULERS)}")
    return cls()
