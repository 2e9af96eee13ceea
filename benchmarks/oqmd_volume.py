"""Volume per atom on the OQMD benchmark (CrabNet's published split): our regressors beside the published MAEs.

Usage: python benchmarks/oqmd_volume.py [--models lightgbm_regressor,mlp_regressor,tabnet,wide_deep,random_forest]
Trains on OQMD train (early stopping on OQMD val), scores on OQMD test (51,255 formulas, Å³/atom), with the
configs of params.yaml (models.<name> with tasks.volume_per_atom_from_composition.model_overrides); models too slow for one core on 239,190 rows get the caps printed beside them.
Published (Wang et al., npj Comput. Mater. 7:77, 2021, Table 2, same test rows): CrabNet 0.277, Roost 0.296,
ElemNet 0.442, RF on Magpie 0.544 Å³/atom MAE.
"""

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from sklearn.ensemble import RandomForestRegressor
from threadpoolctl import threadpool_limits

from xtalml.config import load_params, source_config
from xtalml.evaluation.baselines import elemental_volume_baseline
from xtalml.evaluation.metrics import regression_metrics
from xtalml.features.composition import composition_features, feature_names
from xtalml.models.registry import build_model
from xtalml.sources.oqmd_volume import load_oqmd_volume
from xtalml.tasks import model_config

PUBLISHED = {"CrabNet": 0.277, "Roost": 0.296, "ElemNet": 0.442, "RF on Magpie (published)": 0.544}
# caps so that each model fits in minutes on one core (the full configs are for the ~6k-row AMCSD table)
CAPS = {"tabnet": {"max_train_rows": 30_000, "max_epochs": 40},  # beyond the task's own overrides
        "wide_deep": {"max_epochs": 15, "wide_feature": "magpie_mean_GSvolume_pa"},
        "random_forest": {"n_estimators": 50, "max_features": 0.33, "min_samples_leaf": 2}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", default="lightgbm_regressor,mlp_regressor,tabnet,wide_deep,random_forest")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    threadpool_limits(args.threads)
    import torch

    torch.set_num_threads(args.threads)
    params = load_params()
    with tempfile.TemporaryDirectory() as tmp:
        table = load_oqmd_volume(source_config("oqmd_volume"), Path(tmp))
    start = time.perf_counter()
    X_all, errors = composition_features(table["formula"].tolist())
    print(f"OQMD: {len(table):,} formulas featurized in {time.perf_counter() - start:.1f} s; {len(errors)} rejected")
    keep = ~X_all.isna().any(axis=1).to_numpy()
    names = feature_names()
    parts = {p: (X_all.to_numpy()[keep & (table["published_split"] == p).to_numpy()],
                 table["volume_per_atom"].to_numpy()[keep & (table["published_split"] == p).to_numpy()])
             for p in ("train", "val", "test")}
    (X_tr, y_tr), (X_va, y_va), (X_te, y_te) = parts["train"], parts["val"], parts["test"]
    col = names.index("magpie_mean_GSvolume_pa")
    rows = [("baseline: elemental volume (scale fitted on train)",
             elemental_volume_baseline(X_tr[:, col], y_tr, X_te[:, col], y_te)["elemental_volume"]["mae"], "-", "")]
    for name in args.models.split(","):
        cap = CAPS.get(name, {})
        if name == "random_forest":
            model = RandomForestRegressor(random_state=params["train"]["seed"], n_jobs=args.threads, **cap)
        else:
            cfg = {**model_config(params["tasks"]["volume_per_atom_from_composition"], name, params["models"]), **cap}
            model = build_model(name, cfg, params["train"]["seed"], names)
        n = cap.get("max_train_rows", len(y_tr))
        idx = np.sort(np.random.default_rng(0).choice(len(y_tr), n, replace=False)) if n < len(y_tr) else slice(None)
        start = time.perf_counter()
        if name == "random_forest":
            model.fit(X_tr[idx], y_tr[idx])
        else:
            model.fit(X_tr[idx], y_tr[idx], X_va, y_va)
        seconds = time.perf_counter() - start
        mae = regression_metrics(y_te, model.predict(X_te))["mae"]
        rows.append((name, mae, f"{seconds:.0f}", ", ".join(f"{k}={v}" for k, v in cap.items())))
        print(f"{name}: test MAE {mae:.3f} Å³/atom ({seconds:.0f} s)", flush=True)
    rows += [(f"published: {k}", v, "-", "Wang et al. 2021, Table 2") for k, v in PUBLISHED.items()]
    print(f"\nOQMD test ({len(y_te):,} formulas), MAE in Å³/atom, trained on {len(y_tr):,} OQMD train formulas:")
    print("| model | MAE | train s | note |\n|---|---|---|---|")
    for name, mae, seconds, note in sorted(rows, key=lambda r: r[1]):
        print(f"| {name} | {mae:.3f} | {seconds} | {note} |")


if __name__ == "__main__":
    main()
