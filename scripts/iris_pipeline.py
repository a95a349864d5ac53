#!/usr/bin/python3
"""Train one iris model as one mlfs run, with plain file writes.

    MLFS_RUN=RUN_ID /usr/bin/python3 scripts/iris_pipeline.py RUN_ID /mnt/ml/iris@v1 --C 1.0

It uses scikit-learn only (Debian's python3-sklearn) and no mlfs library:
everything mlfs learns about the run comes from the files written here.

  1. os.mkdir(<runs>/RUN_ID) starts the run (<runs> is the runs/ folder
     next to the version: /mnt/ml/runs for /mnt/ml/iris@v1);
  2. reads DATA/iris.csv -- after the mkdir, and with MLFS_RUN=RUN_ID in the
     environment, so that the daemon records the version in the run's
     meta.json ("datasets"): the lineage;
  3. writes params.json, tags/experiment and tags/dataset;
  4. k-fold cross-validates a StandardScaler + LogisticRegression(C): one
     line "fold accuracy" per fold in metrics/fold_accuracy, as each fold
     ends, then the mean and standard deviation in metrics.jsonl (the keys
     accuracy and accuracy_std);
  5. fits on every row and pickles the model into artifacts/model.pkl, and
     prints the sha256 of the bytes it wrote ("... model.pkl sha256 HEX");
  6. writes "finished" to status ("failed" if anything above failed).

The CSV is the one scikit-learn ships: its first line is a header
"n_samples,n_features,class names...", e.g. "150,4,setosa,versicolor,virginica",
then rows of four features and a class number.
"""

import argparse
import csv
import hashlib
import json
import os
import pickle
import sys
import time

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def load_iris_csv(path):
    """Rows and labels of a scikit-learn style iris.csv, header checked."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        raise ValueError(f"{path}: empty")
    header, body = rows[0], [r for r in rows[1:] if r]
    try:
        n_samples, n_features = int(header[0]), int(header[1])
    except (IndexError, ValueError):
        raise ValueError(f"{path}: first line {','.join(header)!r} is not "
                         "scikit-learn's header 'n_samples,n_features,names...'")
    names = header[2:]
    if len(body) != n_samples:
        raise ValueError(f"{path}: the header says {n_samples} rows, the file has {len(body)}")
    X = np.array([[float(v) for v in r[:n_features]] for r in body])
    y = np.array([int(r[n_features]) for r in body])
    return X, y, names


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", help="run id: the folder created under RUNS")
    ap.add_argument("data", help="a version folder holding iris.csv, e.g. /mnt/ml/iris@v1")
    ap.add_argument("--runs", help="runs folder (default: runs/ next to DATA)")
    ap.add_argument("--C", type=float, default=1.0, help="inverse regularization strength")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()

    data = os.path.abspath(a.data)
    runs = a.runs or os.path.join(os.path.dirname(data), "runs")
    version = os.path.basename(data)  # iris@v1
    if os.environ.get("MLFS_RUN") != a.run:
        # Lineage comes from the reader's environment, not from anything
        # written: without it, meta.json would not list the version read.
        sys.exit(f"iris_pipeline: set MLFS_RUN={a.run} in the environment "
                 f"(it is {os.environ.get('MLFS_RUN')!r}), so the run records that it read {version}")

    run = os.path.join(runs, a.run)
    os.mkdir(run)  # starts the run: params/ metrics/ tags/ artifacts/ exist now
    try:
        X, y, names = load_iris_csv(os.path.join(data, "iris.csv"))
        params = {"model": "logistic_regression", "C": a.C, "folds": a.folds,
                  "seed": a.seed, "scaler": "standard"}
        write(os.path.join(run, "params.json"), json.dumps(params, indent=2) + "\n")
        write(os.path.join(run, "tags", "experiment"), "iris\n")
        write(os.path.join(run, "tags", "dataset"), version + "\n")

        def model():
            return make_pipeline(StandardScaler(), LogisticRegression(C=a.C, max_iter=1000))

        folds = StratifiedKFold(n_splits=a.folds, shuffle=True, random_state=a.seed)
        scores = []
        with open(os.path.join(run, "metrics", "fold_accuracy"), "a") as out:
            for k, (train, test) in enumerate(folds.split(X, y)):
                m = model().fit(X[train], y[train])
                scores.append(float((m.predict(X[test]) == y[test]).mean()))
                out.write(f"{k} {scores[-1]:.6f}\n")
                out.flush()  # visible to `mlfs runs` while the next fold trains
        mean, std = float(np.mean(scores)), float(np.std(scores))
        with open(os.path.join(run, "metrics.jsonl"), "a") as out:
            out.write(json.dumps({"step": a.folds, "accuracy": round(mean, 6),
                                  "accuracy_std": round(std, 6)}) + "\n")

        t = time.monotonic()
        final = model().fit(X, y)
        blob = pickle.dumps(final)
        with open(os.path.join(run, "artifacts", "model.pkl"), "wb") as out:
            out.write(blob)  # chunked into the store when closed
        fit = time.monotonic() - t
        print(f"{a.run}: {version}, {len(y)} rows, {len(names)} classes; C={a.C:g}: "
              f"{a.folds}-fold accuracy {mean:.4f} +- {std:.4f} (final fit {fit * 1000:.0f} ms)")
        print(f"{a.run}: wrote artifacts/model.pkl sha256 {hashlib.sha256(blob).hexdigest()}")
        write(os.path.join(run, "status"), "finished\n")
    except BaseException:
        try:
            write(os.path.join(run, "status"), "failed\n")
        except OSError:
            pass  # the mount itself is gone: the error below says why
        raise


if __name__ == "__main__":
    main()
