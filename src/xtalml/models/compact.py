"""Champions in a compact numpy form that loads memory-mapped in milliseconds: forests, the two-stage model, attention.

A fitted scikit-learn forest keeps a dense (nodes × classes) float64 value array and a 64-byte record per node, and
the two-stage champion's forests hold 4.5 M nodes: 2 GB resident and seconds to unpickle. Here a forest is five flat
arrays over its nodes (feature, threshold, children) plus the non-zero class shares of its leaves, and predictions
are the same as scikit-learn's: thresholds are rounded down to float32, which compares exactly like scikit-learn's
float32 inputs against float64 thresholds. Nothing here imports scikit-learn or torch, so a cold `xtalml predict`
pays for neither. Which model has which form is its registry entry's `compact`. Save with `save_compact`, load with `load_compact`
(joblib, arrays memory-mapped).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from xtalml.models.lattices import ConstantExpert, blend_neighbours, two_stage_proba

_LEAF = -1
ELEMENT_TABLES = "elements.json"  # beside the served models: the element tables their features were computed with


def _plain_arrays(state: dict) -> dict:
    """Memory-mapped arrays as plain ndarray views of the same pages: np.memmap's indexing adds ~0.1 ms per call."""
    return {k: (np.asarray(v) if isinstance(v, np.ndarray) else v) for k, v in state.items()}


def _float32_floor(threshold: np.ndarray) -> np.ndarray:
    """The largest float32 at most each threshold: x32 <= t64 exactly when x32 <= floor32(t64)."""
    t32 = threshold.astype(np.float32)
    above = t32.astype(np.float64) > threshold
    t32[above] = np.nextafter(t32[above], np.float32(-np.inf))
    return t32


class CompactForest:
    """A random forest (classifier or regressor, optionally behind a StandardScaler) as flat node arrays.

    Per node: feature, threshold (float32, rounded down), children (left, right) and where missing values go; a leaf
    points at itself with threshold +inf, so every row can take the same number of steps. Leaf i's values are
    values[value_start[i]:value_start[i + 1]] (classifier: the non-zero class shares, their classes in value_class;
    regressor: one value per output).
    """

    def __init__(self, feature, threshold, children, missing_left, roots, value_start, values, value_class, classes,
                 n_outputs: int, mean=None, scale=None):
        self.feature, self.threshold, self.children, self.missing_left = feature, threshold, children, missing_left
        self.roots, self.value_start, self.values, self.value_class = roots, value_start, values, value_class
        self.classes_, self.n_outputs, self.mean, self.scale = classes, n_outputs, mean, scale

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(_plain_arrays(state))

    @classmethod
    def from_sklearn(cls, estimator) -> "CompactForest":
        """From a fitted RandomForest/ExtraTrees classifier or regressor, or a Pipeline of a StandardScaler and one."""
        mean = scale = None
        steps = getattr(estimator, "steps", None)
        if steps is not None:
            *before, (_, forest) = steps
            if len(before) > 1 or (before and type(before[0][1]).__name__ != "StandardScaler"):
                raise TypeError(f"cannot compact a pipeline of {[type(s).__name__ for _, s in steps]}: "
                                "only a StandardScaler before the forest")
            if before:
                scaler = before[0][1]
                mean = None if scaler.mean_ is None else np.asarray(scaler.mean_, float)
                scale = None if scaler.scale_ is None else np.asarray(scaler.scale_, float)
        else:
            forest = estimator
        if not hasattr(forest, "estimators_"):
            raise TypeError(f"cannot compact {type(forest).__name__}: only fitted tree forests")
        classifier = hasattr(forest, "classes_")
        if classifier and getattr(forest, "n_outputs_", 1) != 1:
            raise TypeError("cannot compact a multi-output classifier forest")
        feature, threshold, children, missing, roots, counts, values, value_class = [], [], [], [], [], [], [], []
        offset = 0
        for tree in forest.estimators_:
            t = tree.tree_
            leaf = t.children_left == _LEAF
            ids = np.arange(t.node_count) + offset
            feature.append(np.where(leaf, 0, t.feature))
            threshold.append(np.where(leaf, np.float32(np.inf), _float32_floor(t.threshold)))
            children.append(np.column_stack([np.where(leaf, ids, t.children_left + offset),
                                             np.where(leaf, ids, t.children_right + offset)]))
            missing.append(np.asarray(getattr(t, "missing_go_to_left", np.zeros(t.node_count, np.uint8)), bool))
            count = np.zeros(t.node_count, np.int64)
            if classifier:
                share = t.value[leaf, 0, :].astype(np.float64)
                total = share.sum(axis=1, keepdims=True)
                share = share / np.where(total == 0, 1.0, total)  # as DecisionTreeClassifier.predict_proba
                rows, cols = np.nonzero(share)
                count[leaf] = np.bincount(rows, minlength=int(leaf.sum()))
                values.append(share[rows, cols])
                value_class.append(cols.astype(np.int16))
            else:
                block = t.value[leaf, :, 0].astype(np.float64)
                count[leaf] = block.shape[1]
                values.append(block.ravel())
            counts.append(count)
            roots.append(offset)
            offset += t.node_count
        value_start = np.concatenate([[0], np.cumsum(np.concatenate(counts))])
        index = np.int32 if max(offset, int(value_start[-1])) < 2**31 else np.int64
        return cls(np.concatenate(feature).astype(np.int16 if forest.n_features_in_ < 2**15 else np.int32),
                   np.concatenate(threshold).astype(np.float32), np.concatenate(children).astype(index).ravel(),
                   np.concatenate(missing), np.asarray(roots, index), value_start.astype(index), np.concatenate(values),
                   np.concatenate(value_class) if classifier else None,
                   np.asarray(forest.classes_) if classifier else None,
                   1 if classifier else int(forest.n_outputs_), mean, scale)

    def _inputs(self, X) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        if self.mean is not None:
            X = X - self.mean
        if self.scale is not None:
            X = X / self.scale
        return np.ascontiguousarray(X, dtype=np.float32)

    def apply(self, X) -> np.ndarray:
        """The leaf each row reaches in each tree, (rows × trees) node indices."""
        X = self._inputs(X)
        n_rows, n_features = X.shape
        flat, roots = X.ravel(), np.asarray(self.roots, np.int64)
        has_missing = bool(np.isnan(flat).any())
        node = np.tile(roots, n_rows)
        row_base = np.repeat(np.arange(n_rows, dtype=np.int64) * n_features, len(roots))
        position = np.arange(len(node))
        out = np.empty(len(node), np.int64)
        step = 0
        while node.size:
            x = flat[row_base + self.feature[node]]
            right = ~(x <= self.threshold[node])
            if has_missing:
                right = np.where(np.isnan(x), ~self.missing_left[node], right)
            following = self.children[2 * node + right]
            step += 1
            if step % 4 == 0:  # drop the finished rows now and then: compressing every step costs more than it saves
                done = following == node
                out[position[done]] = following[done]
                keep = ~done
                node, row_base, position = following[keep], row_base[keep], position[keep]
            else:
                node = following
        return out.reshape(n_rows, len(roots))

    def predict_proba(self, X) -> np.ndarray:
        leaves = self.apply(X).ravel()
        n_rows, n_trees = len(X), len(self.roots)
        start = self.value_start[leaves].astype(np.int64)
        count = self.value_start[leaves + 1] - start
        rows = np.repeat(np.repeat(np.arange(n_rows), n_trees), count)
        position = np.repeat(start - (np.cumsum(count) - count), count) + np.arange(int(count.sum()))
        n_classes = len(self.classes_)
        flat = np.bincount(rows * n_classes + self.value_class[position], weights=self.values[position],
                           minlength=n_rows * n_classes)
        return flat.reshape(n_rows, n_classes) / n_trees

    def predict(self, X) -> np.ndarray:
        if self.classes_ is not None:
            return self.classes_[self.predict_proba(X).argmax(axis=1)]
        start = self.value_start[self.apply(X)].astype(np.int64)  # (rows, trees): each leaf's n_outputs values
        out = np.stack([self.values[start + k] for k in range(self.n_outputs)], axis=-1).mean(axis=1)
        return out[:, 0] if self.n_outputs == 1 else out


class PackedGroups:
    """PrototypeNeighbours.groups_ ({pattern: (vectors, codes)}) packed into two flat arrays, read-only."""

    def __init__(self, groups: Mapping[tuple, tuple[np.ndarray, np.ndarray]]):
        patterns = list(groups)
        width = max((len(p) for p in patterns), default=0)
        self.patterns = np.full((len(patterns), width), np.nan)  # one row per pattern, NaN-padded: few pickle objects
        self.lengths = np.array([len(p) for p in patterns], dtype=np.int16)
        for i, p in enumerate(patterns):
            self.patterns[i, :len(p)] = p
        vectors = [np.asarray(groups[p][0], float) for p in patterns]
        self.rows = np.array([v.shape[0] for v in vectors], dtype=np.int64)
        self.row_start = np.concatenate([[0], np.cumsum(self.rows)]).astype(np.int64)
        self.vector_start = np.concatenate([[0], np.cumsum([v.size for v in vectors])]).astype(np.int64)
        self.vectors = np.concatenate([v.ravel() for v in vectors]) if vectors else np.zeros(0)
        self.codes = np.concatenate([np.asarray(groups[p][1]) for p in patterns]) if patterns else np.zeros(0, int)
        self._build_index()

    def _build_index(self) -> None:
        self._index = {tuple(row[:n]): i for i, (row, n) in enumerate(zip(self.patterns.tolist(), self.lengths.tolist()))}

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "_index"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(_plain_arrays(state))
        self._build_index()

    def __contains__(self, pattern) -> bool:
        return pattern in self._index

    def __getitem__(self, pattern) -> tuple[np.ndarray, np.ndarray]:
        i = self._index[pattern]
        vectors = self.vectors[self.vector_start[i]:self.vector_start[i + 1]].reshape(self.rows[i], -1)
        return vectors, self.codes[self.row_start[i]:self.row_start[i + 1]]


class CompactTwoStage:
    """A fitted TwoStageClassifier with its forests compact: the same predict_proba, by the same code (lattices.py)."""

    def __init__(self, model):
        self.classes_ = np.asarray(model.classes_)
        self.combine, self.neighbours, self.neighbours_ = model.combine, model.neighbours, None
        if model.neighbours_ is not None:  # thousands of small arrays packed into a few, so loading maps a few files;
            self.neighbours_ = copy.copy(model.neighbours_)  # a copy: the fitted model keeps its own
            self.neighbours_.groups_ = PackedGroups(model.neighbours_.groups_)
        self.feature_index, self.token_index = model.feature_index, model.token_index
        self.members_ = [(CompactForest.from_sklearn(stage1),
                          {lattice: e if isinstance(e, ConstantExpert) else CompactForest.from_sklearn(e)
                           for lattice, e in experts.items()})
                         for stage1, experts in model.members_]

    def predict_proba(self, X) -> np.ndarray:
        X = np.asarray(X, float)
        stage_x = X if self.feature_index is None else X[:, list(self.feature_index)]
        out = two_stage_proba(self.members_, self.classes_, self.combine, stage_x)
        if self.neighbours_ is not None:
            half = len(self.token_index) // 2
            out = blend_neighbours(out, self.neighbours_, float(self.neighbours["weight"]),
                                   X[:, list(self.token_index[:half])], X[:, list(self.token_index[half:])])
        return out

    def predict(self, X) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(axis=1)]


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * weight + bias


def _silu(x: np.ndarray) -> np.ndarray:
    return x / (1.0 + np.exp(-x))


class CompactCompositionAttention:
    """CompositionAttentionRegressor's forward pass in numpy float32 (eval mode), from its fitted state dict."""

    def __init__(self, model):
        net = model.module_
        self.z_index, self.fraction_index, self.offset_index = model.z_index, model.fraction_index, model.offset_index
        self.heads, self.width = int(model.heads), int(net.width)
        self.weights = {k: v.detach().cpu().numpy().astype(np.float32) for k, v in net.state_dict().items()}
        self.n_layers = len(net.encoder.layers)
        self.eps = float(net.encoder.layers[0].norm1.eps)
        activation = net.encoder.layers[0].activation
        if getattr(activation, "__name__", type(activation).__name__).lower() != "relu":
            raise TypeError(f"compact attention supports the ReLU feed-forward only, not {activation}")

    def _linear(self, x: np.ndarray, name: str) -> np.ndarray:
        return x @ self.weights[f"{name}.weight"].T + self.weights[f"{name}.bias"]

    def _attention(self, x: np.ndarray, pad: np.ndarray, prefix: str) -> np.ndarray:
        n, length, d = x.shape
        head = d // self.heads
        qkv = x @ self.weights[f"{prefix}.in_proj_weight"].T + self.weights[f"{prefix}.in_proj_bias"]
        q, k, v = (qkv[..., i * d:(i + 1) * d].reshape(n, length, self.heads, head).transpose(0, 2, 1, 3) for i in range(3))
        scores = (q @ k.transpose(0, 1, 3, 2)) / np.float32(np.sqrt(head))
        scores = np.where(pad[:, None, None, :], np.float32(-np.inf), scores)
        scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
        weights = scores / scores.sum(axis=-1, keepdims=True)
        mixed = (weights @ v).transpose(0, 2, 1, 3).reshape(n, length, d)
        return self._linear(mixed, f"{prefix}.out_proj")

    def _forward(self, z: np.ndarray, fraction: np.ndarray) -> np.ndarray:
        w = self.weights
        used = max(1, int((z > 0).sum(axis=1).max()))
        z, fraction = z[:, :used].astype(np.int64), fraction[:, :used].astype(np.float32)
        pad = z == 0
        log_fraction = np.log(np.maximum(fraction, np.float32(1e-6))) * ~pad
        tokens = np.concatenate([w["embedding.weight"][z], w["properties"][z], fraction[..., None],
                                 log_fraction[..., None].astype(np.float32)], axis=-1)
        x = self._linear(tokens, "project")
        for i in range(self.n_layers):
            p = f"encoder.layers.{i}"
            x = x + self._attention(_layer_norm(x, w[f"{p}.norm1.weight"], w[f"{p}.norm1.bias"], self.eps), pad,
                                    f"{p}.self_attn")
            h = _layer_norm(x, w[f"{p}.norm2.weight"], w[f"{p}.norm2.bias"], self.eps)
            x = x + self._linear(np.maximum(self._linear(h, f"{p}.linear1"), 0), f"{p}.linear2")
        pooled = (x * fraction[..., None]).sum(axis=1) / np.maximum(fraction.sum(axis=1, keepdims=True), 1e-9)
        h = _silu(self._linear(pooled, "head.0"))
        h = _silu(self._linear(h, "head.2"))
        return self._linear(h, "head.4")[:, 0]

    def predict(self, X) -> np.ndarray:
        X = np.asarray(X, dtype=float)
        estimate = np.ones(len(X)) if self.offset_index is None else X[:, self.offset_index]
        z, fraction = X[:, list(self.z_index)], X[:, list(self.fraction_index)]
        ok = ~np.isnan(z).any(axis=1) & ~np.isnan(fraction).any(axis=1) & (estimate > 0)
        out = np.full(len(X), np.nan)
        length = (np.nan_to_num(z) > 0).sum(axis=1)
        for n_elements in np.unique(length[ok]):  # rows of one element count: no padding to compute and mask
            same = np.flatnonzero(ok & (length == n_elements))
            for start in range(0, len(same), 8192):
                rows = same[start:start + 8192]
                out[rows] = estimate[rows] * np.exp(self._forward(z[rows], fraction[rows]).astype(np.float64))
        return out


def to_compact(form: str, model) -> Any:
    """The compact form named by a registry entry ('CompactForest.from_sklearn'...) of a fitted model, or None where
    that form cannot hold it (a two-stage model on LightGBM: it is then served as pickled)."""
    make: Any = globals()[form.split(".")[0]]
    for part in form.split(".")[1:]:
        make = getattr(make, part)
    try:
        return make(model)
    except TypeError:  # the forms raise TypeError for a learner they cannot hold
        return None


def save_compact(bundle: Mapping[str, Any], path: Path) -> None:
    """Write a bundle ({model, feature_names, ...}) uncompressed, so load_compact can memory-map its arrays."""
    import joblib

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    joblib.dump(dict(bundle), path, compress=0)


def load_compact(path: Path) -> dict[str, Any]:
    """A bundle save_compact wrote, its arrays memory-mapped (read-only): pages load as predictions touch them."""
    import joblib

    return joblib.load(path, mmap_mode="r")


def compact_lattice(model):
    """A LatticeParameterRegressor whose per-lattice forests are compact (same predictions)."""
    compact = copy.copy(model)
    compact.forests_ = {lattice: CompactForest.from_sklearn(forest) for lattice, forest in model.forests_.items()}
    return compact
