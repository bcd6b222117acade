"""The learned cost model: features of (task, config, batch size, device) -> predicted latency.

``features``  candidate -> fixed-length vector, columns read from the declared knobs (versioned schema)
``base``      the ``CostModel`` interface (fit / predict / update, persisted as bytes)
``model``     ``XGBCostModel``: XGBoost regression on log seconds per row (or a ranking objective)
``baseline``  ``HeuristicCostModel``: the untuned default first, the rest by an analytic estimate
``store``     models per device and workload operators in the records database; training sets from it
``evaluate``  leave-one-workload-out Spearman and top-k recall (``tunebird costmodel eval``)
``tuning``    ``for_device(db, device)``: the cost model a tuning run ranks with (learned, heuristic warm-up)
"""

from .base import CostModel, StaleCostModelError, model_from_bytes
from .baseline import HeuristicCostModel, default_config
from .features import Candidate, FeatureSchema, current_schema, featurize
from .model import XGBCostModel
from .store import Dataset, load_dataset, load_model, save_model, store_workload_ir, train_for_device

__all__ = [
    "Candidate",
    "CostModel",
    "Dataset",
    "FeatureSchema",
    "HeuristicCostModel",
    "StaleCostModelError",
    "XGBCostModel",
    "current_schema",
    "default_config",
    "featurize",
    "load_dataset",
    "load_model",
    "model_from_bytes",
    "save_model",
    "store_workload_ir",
    "train_for_device",
]
