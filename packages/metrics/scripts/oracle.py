#!/usr/bin/env python3
"""Computes metrics with torchmetrics and scikit-learn for the metrics' oracle test.

Used by packages/metrics/src/oracle.test.ts in the venv made by scripts/metrics-venv.sh. Reads
{"cases": [{"id", "metric", "options", "batches": [{"preds": T, "target": T}]}]} on stdin, where T is
{"data": [...], "shape": [...], "dtype": "float32" | "int32"} and options use Flint's camelCase
names; prints {"versions": {...}, "results": {id: {"torchmetrics": v, "sklearn": v | null}}}.

torchmetrics gets every batch through update() (float32 tensors, as a user would feed them) and one
compute(). scikit-learn gets the concatenated data in float64: scores are taken as logits per batch
where torchmetrics does so (any value outside [0, 1]), labels come from the threshold or argmax, and
each metric is mapped to its scikit-learn equivalent; null where scikit-learn has none (top-k
precision, normalized multilabel confusion matrices). NaN is written as the string "NaN".
"""

import json
import math
import re
import sys
import warnings

import numpy as np
import sklearn
import sklearn.metrics as skm
import torch
import torchmetrics

warnings.simplefilter("ignore")


def snake(name):
    return re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), name)


def array(t):
    return np.asarray(t["data"], dtype=np.float32 if t["dtype"] == "float32" else np.int64).reshape(t["shape"])


def tensor(t):
    return torch.tensor(array(t))


def class_last(x):
    """[N, C, ...] -> [M, C]."""
    return np.moveaxis(x, 1, -1).reshape(-1, x.shape[1])


def normalized(p, how):
    p = p.astype(np.float64)
    if np.all((p >= 0) & (p <= 1)):
        return p
    if how == "sigmoid":
        return 1 / (1 + np.exp(-p))
    e = np.exp(p - p.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def to_json(v):
    if isinstance(v, torch.Tensor):
        v = v.double().numpy()
    v = np.asarray(v, dtype=np.float64)
    return [x if math.isfinite(x) else "NaN" for x in v.reshape(-1).tolist()] if v.ndim > 0 else (float(v) if math.isfinite(v) else "NaN")


def run_torchmetrics(case):
    opts = {snake(k): v for k, v in case["options"].items()}
    if "beta" in opts:
        opts["beta"] = float(opts["beta"])
    if case["metric"] == "R2Score":
        opts.pop("num_outputs", None)  # torchmetrics infers it
    metric = getattr(torchmetrics, case["metric"])(**opts)
    for b in case["batches"]:
        metric.update(tensor(b["preds"]), tensor(b["target"]))
    return to_json(metric.compute())


def labels_and_scores(case):
    """Concatenated (target, predicted labels or None, scores or None) in scikit-learn's layout."""
    o = case["options"]
    task = o["task"]
    ts, ps, ss = [], [], []
    for b in case["batches"]:
        p, t = array(b["preds"]), array(b["target"])
        if task == "binary":
            t = t.reshape(-1)
            if b["preds"]["dtype"] == "float32":
                s = normalized(p.reshape(-1), "sigmoid")
                ss.append(s)
                ps.append((s > o.get("threshold", 0.5)).astype(np.int64))
            else:
                ps.append(p.reshape(-1))
        elif task == "multiclass":
            if p.ndim == t.ndim + 1:
                s = class_last(p)
                if case["metric"] in ("AUROC", "AveragePrecision"):
                    s = normalized(s, "softmax")
                ss.append(s)
                ps.append(s.argmax(axis=1))
            else:
                ps.append(p.reshape(-1))
            t = t.reshape(-1)
        else:
            if b["preds"]["dtype"] == "float32":
                p = (normalized(p, "sigmoid") > o.get("threshold", 0.5)).astype(np.int64)
            ps.append(class_last(p))
            t = class_last(t)
        ts.append(t)
    cat = lambda xs: np.concatenate(xs) if xs else None
    return cat(ts), cat(ps), cat(ss)


def per_class_mean(values, support, average):
    values = np.asarray(values, dtype=np.float64)
    if average in (None, "none"):
        return values
    keep = ~np.isnan(values)
    w = np.asarray(support, dtype=np.float64)[keep] if average == "weighted" else np.ones(keep.sum())
    return float((values[keep] * w).sum() / w.sum()) if w.sum() > 0 else 0.0


def run_sklearn(case):
    m, o = case["metric"], case["options"]
    task = o.get("task")
    avg = o.get("average", "micro" if m not in ("AUROC", "AveragePrecision") else "macro")
    sk_avg = None if avg == "none" else avg
    if m in ("MeanSquaredError", "MeanAbsoluteError", "R2Score"):
        outputs = o.get("numOutputs", 1)
        p = np.concatenate([array(b["preds"]).astype(np.float64).reshape(-1, outputs) if (outputs > 1 or m == "R2Score") else array(b["preds"]).astype(np.float64).reshape(-1) for b in case["batches"]])
        t = np.concatenate([array(b["target"]).astype(np.float64).reshape(-1, outputs) if (outputs > 1 or m == "R2Score") else array(b["target"]).astype(np.float64).reshape(-1) for b in case["batches"]])
        if m == "MeanAbsoluteError":
            return to_json(skm.mean_absolute_error(t, p, multioutput="raw_values" if outputs > 1 else "uniform_average"))
        if m == "MeanSquaredError":
            v = skm.mean_squared_error(t, p, multioutput="raw_values" if outputs > 1 else "uniform_average")
            return to_json(v if o.get("squared", True) else np.sqrt(v))
        r2 = skm.r2_score(t, p, multioutput=o.get("multioutput", "uniform_average"))
        k, n = o.get("adjusted", 0), len(t)
        if k and n - k - 1 > 0:
            r2 = 1 - (1 - r2) * (n - 1) / (n - k - 1)
        return to_json(r2)

    t, p, s = labels_and_scores(case)
    n_classes = o.get("numClasses", 2)
    if m in ("AUROC", "AveragePrecision"):
        score = skm.roc_auc_score if m == "AUROC" else skm.average_precision_score
        if task == "binary":
            return to_json(score(t, s))
        per = [score((t == k).astype(int), s[:, k]) for k in range(n_classes)]
        return to_json(per_class_mean(per, [(t == k).sum() for k in range(n_classes)], avg))

    if o.get("topK", 1) > 1:
        if m == "Accuracy" and avg == "micro":
            return to_json(skm.top_k_accuracy_score(t, s, k=o["topK"], labels=list(range(n_classes))))
        return None

    if m == "ConfusionMatrix":
        norm = o.get("normalize", "none")
        if task == "multilabel":
            return to_json(skm.multilabel_confusion_matrix(t, p)) if norm == "none" else None
        labels = [0, 1] if task == "binary" else list(range(n_classes))
        return to_json(skm.confusion_matrix(t, p, labels=labels, normalize=None if norm == "none" else norm))

    if m == "Accuracy":
        if task == "binary":
            return to_json(skm.accuracy_score(t, p))
        if task == "multiclass":
            if avg == "micro":
                return to_json(skm.accuracy_score(t, p))
            # torchmetrics' macro / weighted multiclass accuracy is the mean per-class recall.
            labels = list(range(n_classes)) if avg == "none" else None
            return to_json(skm.recall_score(t, p, average=sk_avg, labels=labels, zero_division=0))
        if avg == "micro":
            return to_json(1 - skm.hamming_loss(t, p))
        per = [skm.accuracy_score(t[:, k], p[:, k]) for k in range(t.shape[1])]
        return to_json(per_class_mean(per, t.sum(axis=0), avg))

    fn = {
        "Precision": skm.precision_score,
        "Recall": skm.recall_score,
        "F1Score": skm.f1_score,
        "FBetaScore": lambda *a, **k: skm.fbeta_score(*a, beta=o.get("beta", 1.0), **k),
    }[m]
    if task == "binary":
        return to_json(fn(t, p, zero_division=0))
    labels = list(range(n_classes)) if task == "multiclass" and avg == "none" else None
    return to_json(fn(t, p, average=sk_avg, labels=labels, zero_division=0))


def main():
    cases = json.load(sys.stdin)["cases"]
    results = {}
    for case in cases:
        results[case["id"]] = {"torchmetrics": run_torchmetrics(case), "sklearn": run_sklearn(case)}
    versions = {"torchmetrics": torchmetrics.__version__, "sklearn": sklearn.__version__, "torch": torch.__version__}
    json.dump({"versions": versions, "results": results}, sys.stdout)


if __name__ == "__main__":
    main()
