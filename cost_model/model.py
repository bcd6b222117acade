"""The learned cost model: gradient-boosted trees (XGBoost) on the candidate features.

The default objective is regression on ``log(seconds per row)``; ``"pairwise"``
and ``"ndcg"`` train XGBoost's learning-to-rank objectives within each
(workload, batch size, device) group instead.  ``tunebird costmodel eval``
compares them; on the seed data (README, "Cost model") regression ranks better
than both ranking objectives (Spearman 0.92 vs 0.91 pairwise and 0.86 NDCG;
top-5 recall 1.00 vs 0.81 and 0.90), and it also gives seconds, which the tuner
records as each trial's prediction and compares across tasks and batch sizes.

Online training: :meth:`XGBCostModel.update` appends the new trials to the
retained training set (the newest ``max_rows``) and refits from scratch when
the set has grown by ``refit_growth`` since the last full fit, otherwise it
adds ``update_rounds`` boosting rounds to the current model.
"""

from __future__ import annotations

import io
import logging
from typing import Any, ClassVar, Mapping, Sequence

import numpy as np

from .base import CostModel, StaleCostModelError, check_training_data, register_model
from .features import Candidate, FeatureSchema, analytic_seconds, current_schema, featurize

log = logging.getLogger(__name__)

OBJECTIVES = ("regression", "pairwise", "ndcg")
_NDCG_LEVELS = 31  # XGBoost's exponential NDCG gain takes relevance labels up to 31


def _xgb() -> Any:
    import xgboost

    return xgboost


def _check_is_fitted(model: XGBCostModel) -> None:
    if not hasattr(model, "booster_"):
        from sklearn.exceptions import NotFittedError

        raise NotFittedError(
            f"This {type(model).__name__} instance is not fitted yet. Call 'fit' or 'update' with measured "
            "candidates, or load a saved model (cost_model.load_model), before using it."
        )


@register_model
class XGBCostModel(CostModel):
    """XGBoost on :func:`~cost_model.features.featurize` rows.

    Parameters are XGBoost's (``n_estimators`` boosting rounds, ``max_depth``,
    ``learning_rate``, ``subsample``, ``colsample_bytree``, ``min_child_weight``,
    ``n_jobs`` threads: 1 by default so training does not disturb measurements
    running beside it).  ``objective``: ``"regression"`` (log seconds per row),
    ``"pairwise"`` or ``"ndcg"`` (ranking within each workload / batch / device group).
    ``schema``: the feature layout (default: every registered strategy and backend).
    """

    kind: ClassVar[str] = "xgboost"

    def __init__(
        self,
        *,
        objective: str = "regression",
        n_estimators: int = 300,
        max_depth: int = 6,
        learning_rate: float = 0.1,
        subsample: float = 0.8,
        colsample_bytree: float = 0.8,
        min_child_weight: float = 1.0,
        n_jobs: int = 1,
        max_rows: int = 20000,
        refit_growth: float = 0.25,
        update_rounds: int = 20,
        random_state: int = 0,
        analytic_offset: bool = True,
        schema: FeatureSchema | None = None,
    ) -> None:
        self.objective = objective
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.learning_rate = learning_rate
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.min_child_weight = min_child_weight
        self.n_jobs = n_jobs
        self.max_rows = max_rows
        self.refit_growth = refit_growth
        self.update_rounds = update_rounds
        self.random_state = random_state
        self.analytic_offset = analytic_offset
        self.schema = schema

    PARAMS: ClassVar[tuple[str, ...]] = (
        "objective", "n_estimators", "max_depth", "learning_rate", "subsample", "colsample_bytree",
        "min_child_weight", "n_jobs", "max_rows", "refit_growth", "update_rounds", "random_state", "analytic_offset",
    )

    def get_params(self) -> dict[str, Any]:
        """The constructor arguments (without ``schema``)."""
        return {name: getattr(self, name) for name in self.PARAMS}

    # ---- training
    def _validate_params(self) -> None:
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, got {self.objective!r}")
        for name in ("n_estimators", "max_depth", "n_jobs", "max_rows", "update_rounds"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")

    def _schema(self) -> FeatureSchema:
        return self.schema or current_schema()

    def _xgb_params(self) -> dict[str, Any]:
        objective = {"regression": "reg:squarederror", "pairwise": "rank:pairwise", "ndcg": "rank:ndcg"}[self.objective]
        params = {
            "objective": objective, "eta": self.learning_rate, "max_depth": self.max_depth,
            "subsample": self.subsample, "colsample_bytree": self.colsample_bytree,
            "min_child_weight": self.min_child_weight, "nthread": self.n_jobs, "seed": self.random_state,
            "tree_method": "hist", "verbosity": 0,
        }
        if self.objective != "regression":
            params["lambdarank_pair_method"] = "mean"
            params["lambdarank_num_pair_per_sample"] = 8
        return params

    def _labels(self, y: np.ndarray, groups: np.ndarray) -> np.ndarray:
        """Regression: ``y``.  Ranking: higher is better (pairwise: -y; ndcg: integer levels per group)."""
        if self.objective == "regression":
            return y
        if self.objective == "pairwise":
            return -y
        out = np.zeros_like(y)
        for g in np.unique(groups):
            idx = np.flatnonzero(groups == g)
            order = np.argsort(np.argsort(y[idx], kind="stable"), kind="stable")  # 0 = fastest
            out[idx] = np.floor(_NDCG_LEVELS * (1 - order / max(len(idx), 1)))
        return out

    def _offsets(self, candidates: Sequence[Candidate]) -> np.ndarray:
        """Regression starts from the analytic estimate (log seconds per row) and learns the correction:
        trees cannot extrapolate, the estimate scales to models larger than any seen."""
        if self.objective != "regression" or not self.analytic_offset:
            return np.zeros(len(candidates))
        return np.log([analytic_seconds(c) / c.batch_size for c in candidates])

    def _dmatrix(self, X: np.ndarray, offset: np.ndarray, y: np.ndarray | None = None,
                 groups: np.ndarray | None = None) -> Any:
        xgb = _xgb()
        if y is None or self.objective == "regression":
            return xgb.DMatrix(X, label=y, base_margin=offset, missing=np.nan)
        _, qid = np.unique(groups, return_inverse=True)
        order = np.argsort(qid, kind="stable")  # XGBoost wants each query's rows together
        return xgb.DMatrix(X[order], label=self._labels(y, groups)[order], qid=qid[order], missing=np.nan)

    def _train(self, rounds: int, base: Any = None) -> None:
        dtrain = self._dmatrix(self.X_, self.offset_, self.y_, self.groups_)
        self.booster_ = _xgb().train(self._xgb_params(), dtrain, num_boost_round=rounds, xgb_model=base)

    @staticmethod
    def _targets(candidates: Sequence[Candidate], latencies: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        batch = np.array([c.batch_size for c in candidates], dtype=np.float64)
        groups = np.array([c.group for c in candidates], dtype=str)
        return np.log(latencies / batch), groups

    def fit(self, candidates: Sequence[Candidate], latencies: Any) -> XGBCostModel:
        self._validate_params()
        cands, lat = check_training_data(candidates, latencies)
        if not cands:
            raise ValueError("no candidate with a finite positive latency to learn from")
        schema = self._schema()
        y, groups = self._targets(cands, lat)
        self.X_, self.y_, self.groups_ = featurize(cands, schema), y, groups
        self.offset_ = self._offsets(cands)
        self._trim()
        self.schema_hash_ = schema.hash
        self.n_features_in_ = len(schema)
        self.n_trials_ = len(cands)
        self.rows_at_fit_ = len(self.y_)
        self._train(self.n_estimators)
        log.debug("fitted %s on %d trials in %d groups", self.kind, len(cands), len(np.unique(groups)))
        return self

    def update(self, candidates: Sequence[Candidate], latencies: Any) -> XGBCostModel:
        if not hasattr(self, "booster_"):
            cands, _ = check_training_data(candidates, latencies)
            return self.fit(candidates, latencies) if cands else self
        cands, lat = check_training_data(candidates, latencies)
        if not cands:
            return self
        y, groups = self._targets(cands, lat)
        self.X_ = np.concatenate([self.X_, featurize(cands, self._schema())])
        self.y_ = np.concatenate([self.y_, y])
        self.groups_ = np.concatenate([self.groups_, groups])
        self.offset_ = np.concatenate([self.offset_, self._offsets(cands)])
        self._trim()
        self.n_trials_ += len(cands)
        if len(self.y_) >= (1 + self.refit_growth) * self.rows_at_fit_:
            self.rows_at_fit_ = len(self.y_)
            self._train(self.n_estimators)
        else:
            self._train(self.update_rounds, base=self.booster_)
        return self

    def _trim(self) -> None:
        if len(self.y_) > self.max_rows:
            keep = slice(len(self.y_) - self.max_rows, None)
            self.X_, self.y_, self.groups_, self.offset_ = self.X_[keep], self.y_[keep], self.groups_[keep], self.offset_[keep]

    # ---- prediction
    def predict(self, candidates: Sequence[Candidate]) -> np.ndarray:
        """Regression: estimated seconds per call of ``batch_size`` rows.  Ranking: negated scores."""
        _check_is_fitted(self)
        schema = self._schema()
        if schema.hash != self.schema_hash_:
            raise StaleCostModelError(
                f"this model was trained on feature schema {self.schema_hash_[:12]}, but the registered strategies "
                f"and backends give {schema.hash[:12]}; retrain it (tunebird costmodel train)"
            )
        if not candidates:
            return np.zeros(0)
        margin = self.booster_.predict(self._dmatrix(featurize(candidates, schema), self._offsets(candidates)))
        if self.objective != "regression":
            return -margin.astype(np.float64)
        batch = np.array([c.batch_size for c in candidates], dtype=np.float64)
        return np.exp(margin.astype(np.float64)) * batch

    @property
    def n_trials(self) -> int:
        return int(getattr(self, "n_trials_", 0))

    @property
    def is_fitted(self) -> bool:
        return hasattr(self, "booster_")

    # ---- persistence
    def _payload(self) -> tuple[dict[str, Any], dict[str, bytes]]:
        _check_is_fitted(self)
        data = io.BytesIO()
        np.savez_compressed(data, X=self.X_, y=self.y_, groups=self.groups_, offset=self.offset_)
        meta = {
            "params": self.get_params(), "feature_schema": self.schema_hash_, "n_trials": self.n_trials_,
            "n_features": self.n_features_in_, "rows_at_fit": self.rows_at_fit_,
        }
        return meta, {"booster.ubj": bytes(self.booster_.save_raw("ubj")), "data.npz": data.getvalue()}

    @classmethod
    def _from_payload(cls, meta: Mapping[str, Any], parts: Mapping[str, bytes]) -> XGBCostModel:
        schema = current_schema()
        if meta.get("feature_schema") != schema.hash:
            raise StaleCostModelError(
                f"the saved cost model uses feature schema {str(meta.get('feature_schema'))[:12]}, this tunebird's "
                f"strategies and backends give {schema.hash[:12]}; it must be retrained (tunebird costmodel train)"
            )
        model = cls(**meta["params"])
        booster = _xgb().Booster()
        booster.load_model(bytearray(parts["booster.ubj"]))
        with np.load(io.BytesIO(parts["data.npz"]), allow_pickle=False) as d:
            model.X_, model.y_, model.groups_, model.offset_ = d["X"], d["y"], d["groups"], d["offset"]
        model.booster_ = booster
        model.schema_hash_ = schema.hash
        model.n_features_in_ = int(meta["n_features"])
        model.n_trials_ = int(meta["n_trials"])
        model.rows_at_fit_ = int(meta["rows_at_fit"])
        return model


__all__ = ["OBJECTIVES", "XGBCostModel"]
