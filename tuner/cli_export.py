"""``tunebird export``: a tuned model's compiled program as an ONNX file."""

from __future__ import annotations

import argparse
import json

DB_HELP = "tuning log: a SQLite path or SQLAlchemy URL (default: $TUNEBIRD_DB or ./tunebird.db)"
METHODS = ("predict", "predict_proba", "decision_function", "transform", "score_samples")  # strategies.head.METHODS


def _export(args: argparse.Namespace) -> int:
    import tuner
    from records.report import describe_config

    predictor = tuner.load(args.model, db=args.db)
    proto = predictor.to_onnx(args.output, args.method, batch_size=args.batch_size, fallback=args.fallback)
    meta = {p.key: p.value for p in proto.metadata_props}
    plan = " + ".join(describe_config(c) for c in json.loads(meta["plan"]))
    outputs = ", ".join(f"{o} ({m})" for m, o in json.loads(meta["outputs"]).items())
    print(f"wrote {args.output}: {meta['source']}, {'tuned' if predictor.tuned else 'untuned'} plan {plan}")
    print(f"input X: {meta['input_dtype']} (n, {meta['n_features']}); outputs: {outputs}")
    return 0


def add_export(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "export", help="write a model's tuned program as an ONNX file that ONNX Runtime runs",
        description="Export MODEL's tuned plan (a torch-family backend: torch, torchscript, inductor, tvm, "
                    "onnxruntime) as ONNX; "
                    "the untuned default when nothing is tuned for it on this device.")
    p.add_argument("model", metavar="MODEL",
                   help="model file (XGBoost .json/.ubj, LightGBM .txt, scikit-learn .joblib/.pkl)")
    p.add_argument("--db", default=None, help=DB_HELP)
    p.add_argument("-o", "--output", required=True, metavar="FILE", help="the ONNX file to write")
    p.add_argument("--method", choices=METHODS, default=None,
                   help="the one method to export (default: a classifier's label and probabilities, else predict)")
    p.add_argument("--batch-size", type=int, default=None, metavar="N",
                   help="export the plan tuned for the batch size nearest N (default: the largest tuned)")
    p.add_argument("--fallback", choices=("error", "default"), default="error",
                   help="when the plan runs on tvm-tir (no ONNX form): fail (default), or export the untuned "
                        "torch default")
    p.set_defaults(handler=_export)
