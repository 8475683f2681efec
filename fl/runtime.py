"""What one process (a client actor, or the server) keeps loaded across rounds.

The frozen base model is built once per process and cached; each round only the
trainable tensors are written into it. (The reference implementation rebuilt the HF
model for every client in every round.)
"""

from __future__ import annotations

import hashlib
import threading

import numpy as np
import torch

from core.config import from_dict
from core.data import load_splits, tokenize
from core.models import build_classifier, load_tokenizer, resolve_device, trainable_state
from core.partition import make_partitions
from fl.config import SpryConfig
from fl.methods import head_lr_overrides

_CACHE: dict[str, "Runtime"] = {}
_LOCK = threading.Lock()


class Runtime:
    def __init__(self, cfg: SpryConfig, with_test: bool = True):
        self.cfg = cfg
        self.device = resolve_device(cfg.model.device)
        train, test = load_splits(cfg.data)
        self.label_names = train.label_names
        self.model = build_classifier(cfg.model, cfg.adapter, train.num_labels, seed=cfg.seed)
        self.trainable_names = list(trainable_state(self.model))
        # Trained tensors are passed to functional_call; the module's own copies need no grad.
        self.model.requires_grad_(False)
        tok = load_tokenizer(cfg.model.name)
        self.train_data = tokenize(train, tok, cfg.model.max_length)
        self.test_data = tokenize(test, tok, cfg.model.max_length) if with_test else None
        self.train_labels = train.labels
        self.partitions = make_partitions(cfg.partition, train.labels)
        self._client_tests: list[np.ndarray] | None = None

    @property
    def client_tests(self) -> list[np.ndarray]:
        """Each client's own test set (fl.evaluation.client_test_sets), by partition id."""
        if self._client_tests is None:
            from fl.evaluation import client_test_sets

            self._client_tests = client_test_sets(self.train_labels, self.partitions,
                                                  self.test_data["labels"].numpy(), self.cfg.seed)
        return self._client_tests

    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    def state(self) -> dict[str, torch.Tensor]:
        params = dict(self.model.named_parameters())
        return {k: params[k].detach().cpu().clone() for k in self.trainable_names}

    def load_state(self, state: dict[str, torch.Tensor]) -> None:
        params = dict(self.model.named_parameters())
        with torch.no_grad():
            for k, v in state.items():
                params[k].copy_(torch.as_tensor(v))

    def params(self, names: list[str]) -> dict[str, torch.Tensor]:
        params = dict(self.model.named_parameters())
        return {k: params[k].detach() for k in names}

    def head_lr_overrides(self) -> dict[str, float] | None:
        return head_lr_overrides(self.cfg.fl, self.trainable_names)

    def local_steps(self, partition_id: int) -> int:
        fl = self.cfg.fl
        if fl.local_steps is not None:
            return fl.local_steps
        n = len(self.partitions[partition_id])
        return fl.local_epochs * int(np.ceil(n / fl.batch_size))


def get_runtime(config_yaml: str, with_test: bool = False) -> Runtime:
    """The process-wide Runtime for this config (built on first use)."""
    import yaml

    key = hashlib.sha1(config_yaml.encode()).hexdigest()
    with _LOCK:
        if key not in _CACHE:
            cfg = from_dict(SpryConfig, yaml.safe_load(config_yaml))
            _CACHE[key] = Runtime(cfg, with_test=with_test)
        return _CACHE[key]
