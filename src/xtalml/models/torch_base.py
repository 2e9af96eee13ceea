"""A torch training loop behind the scikit-learn estimator interface (seeded, early stopping, per-epoch history)."""

from __future__ import annotations

import copy
import random
from typing import Callable

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.preprocessing import StandardScaler
from torch import nn

from xtalml.numerics import configure_torch
from xtalml.progress import progress

configure_torch()


def pick_device(device: str = "auto") -> torch.device:
    """'auto' → the GPU when one is present, else the CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (CPU runs are then repeatable bit for bit)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def make_optimizer(name: str, params, lr: float, weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """Adam, AdamW, RMSprop or SGD by name."""
    table = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "rmsprop": torch.optim.RMSprop, "sgd": torch.optim.SGD}
    if name.lower() not in table:
        raise ValueError(f"optimizer {name!r} is not one of {', '.join(table)}")
    return table[name.lower()](params, lr=lr, weight_decay=weight_decay)


class TorchEstimator(BaseEstimator):
    """Base for torch models: subclasses build the network, the loss and the target encoding."""

    max_epochs: int
    batch_size: int
    patience: int
    min_delta: float
    seed: int
    device: str

    def _build(self, n_features: int) -> nn.Module:
        raise NotImplementedError

    def _loss(self) -> Callable:
        raise NotImplementedError

    def _optimizer(self, module: nn.Module) -> torch.optim.Optimizer:
        return make_optimizer(getattr(self, "optimizer", "adam"), module.parameters(), self.lr, getattr(self, "weight_decay", 0.0))

    def _scheduler(self, optimizer):
        """lr_schedule: none, cosine (one period over max_epochs), plateau (halve after patience/3 flat epochs) or
        onecycle (warm up over the first tenth of the steps, then anneal; stepped after every batch)."""
        schedule = getattr(self, "lr_schedule", "none")
        if schedule == "onecycle":
            return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=self.lr, pct_start=0.1,
                                                       total_steps=self.max_epochs * self.steps_per_epoch_)
        if schedule == "cosine":
            return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=self.max_epochs)
        if schedule == "plateau":
            return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=max(2, self.patience // 3))
        if schedule != "none":
            raise ValueError(f"lr_schedule={schedule!r}: choose none, cosine, plateau or onecycle")
        return None

    def _watches_val_metric(self) -> bool:
        """Whether early stopping watches _val_metric rather than the validation loss."""
        return False

    def _val_metric(self, outputs: torch.Tensor, x: torch.Tensor, t: torch.Tensor) -> float:
        """The validation metric early stopping watches (lower is better), from the module's outputs on rows x."""
        raise NotImplementedError

    def _forward(self, module: nn.Module, x: torch.Tensor) -> torch.Tensor:
        return module(x)

    def _input_scaler(self):
        """Fitted on the training rows only; models whose inputs are not plain features replace it."""
        return StandardScaler()

    def _batches(self, x: torch.Tensor, generator: torch.Generator) -> list[torch.Tensor]:
        """Row indices of each minibatch of one epoch: a fresh shuffle."""
        return list(torch.randperm(len(x), generator=generator).split(self.batch_size))

    def _fit_tensors(self, X, y, X_val, y_val, y_dtype) -> None:
        seed_everything(self.seed)
        self.device_ = pick_device(self.device)
        self.scaler_ = self._input_scaler().fit(X)
        x = torch.tensor(self.scaler_.transform(X), dtype=torch.float32)
        t = torch.tensor(y, dtype=y_dtype)
        if X_val is None:  # no validation set given: hold out 10% of the training rows
            order = np.random.default_rng(self.seed).permutation(len(x))
            cut = max(1, len(x) // 10)
            x, xv, t, tv = x[order[cut:]], x[order[:cut]], t[order[cut:]], t[order[:cut]]
        else:
            xv = torch.tensor(self.scaler_.transform(X_val), dtype=torch.float32)
            tv = torch.tensor(y_val, dtype=y_dtype)
        self.steps_per_epoch_ = -(-len(x) // self.batch_size)
        module = self._build(x.shape[1]).to(self.device_)
        optimizer = self._optimizer(module)
        scheduler = self._scheduler(optimizer)
        loss_fn = self._loss()
        generator = torch.Generator().manual_seed(self.seed)
        best, best_state, waited = np.inf, None, 0
        self.history_: list[dict[str, float]] = []
        bar = progress(total=self.max_epochs, desc=f"{type(self).__name__} epochs", unit="epoch")
        for epoch in range(self.max_epochs):
            module.train()
            total, seen = 0.0, 0
            for idx in self._batches(x, generator):
                if len(idx) < 2:
                    continue  # BatchNorm cannot train on a single row
                xb, tb = x[idx].to(self.device_), t[idx].to(self.device_)
                optimizer.zero_grad()
                loss = loss_fn(self._forward(module, xb), tb)
                loss.backward()
                optimizer.step()
                if isinstance(scheduler, torch.optim.lr_scheduler.OneCycleLR):
                    scheduler.step()
                total += loss.item() * len(idx)
                seen += len(idx)
            if self._watches_val_metric():  # one pass over the validation rows gives the metric and the loss
                outputs = self._outputs(module, xv)
                metric = self._val_metric(outputs, xv, tv)
                val_loss = self._loss_of(outputs, tv, loss_fn)
            else:
                val_loss, metric = self._evaluate(module, xv, tv, loss_fn), None
            score = val_loss if metric is None else metric
            if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                scheduler.step(score)
            elif scheduler is not None and not isinstance(scheduler, torch.optim.lr_scheduler.OneCycleLR):
                scheduler.step()
            self.history_.append({"epoch": epoch, "train_loss": total / max(seen, 1), "val_loss": val_loss,
                                  **({} if metric is None else {"val_metric": metric})})
            bar.set_postfix(val=f"{score:.4g}", refresh=False)
            bar.update(1)
            if score < best - self.min_delta:
                best, best_state, waited = score, copy.deepcopy(module.state_dict()), 0
            else:
                waited += 1
                if waited >= self.patience:
                    break
        bar.close()
        if best_state is not None:
            module.load_state_dict(best_state)
        self.module_ = module.cpu().eval()
        self.device_ = torch.device("cpu")
        self.best_epoch_ = int(np.argmin([h.get("val_metric", h["val_loss"]) for h in self.history_]))

    @torch.no_grad()
    def _evaluate(self, module, x, t, loss_fn) -> float:
        return self._loss_of(self._outputs(module, x, 4096), t, loss_fn)

    @torch.no_grad()
    def _loss_of(self, outputs: torch.Tensor, t: torch.Tensor, loss_fn) -> float:
        """Mean loss over the rows, summed over blocks of 4,096 rows."""
        total = 0.0
        for start in range(0, len(t), 4096):
            ob, tb = outputs[start:start + 4096].to(self.device_), t[start:start + 4096].to(self.device_)
            total += float(loss_fn(ob, tb)) * len(tb)
        return total / max(len(t), 1)

    @torch.no_grad()
    def _outputs(self, module, x: torch.Tensor, block: int = 8192) -> torch.Tensor:
        module.eval()
        return torch.cat([self._forward(module, x[s:s + block].to(self.device_)).cpu() for s in range(0, len(x), block)])

    @torch.no_grad()
    def _raw_output(self, X) -> torch.Tensor:
        self.module_.eval()
        x = torch.tensor(self.scaler_.transform(X), dtype=torch.float32)
        return torch.cat([self._forward(self.module_, x[s:s + 8192]) for s in range(0, len(x), 8192)])
