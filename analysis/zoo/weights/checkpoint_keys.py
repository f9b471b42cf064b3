"""Pure functions that turn the published checkpoints into strict-loadable state dicts.

Layouts met (see each function for its source):

- CSAIL Places365 ``{arch}_places365.pth.tar`` and ``wideresnet18_places365.pth.tar``: a dict
  ``{'epoch', 'arch', 'state_dict', 'best_prec1'}`` written by CSAILVision/places365's
  ``train_placesCNN.py``. That script wraps the whole model in ``DataParallel`` (keys
  ``module.conv1.weight``) except for alexnet/vgg, where only ``model.features`` is wrapped
  (keys ``features.module.0.weight`` but ``classifier.1.weight``). The models were trained with
  PyTorch 0.2, so densenet161 carries the old ``norm.1``/``conv.1`` layer names and no batch
  norm has a ``num_batches_tracked`` entry.
- ProGamerGov's ``googlenet_places{205,365}.pth`` and lucent's ``inception5h.pth``: a bare state
  dict (lucent's InceptionV1 loads it with ``torch.hub.load_state_dict_from_url`` straight into
  ``load_state_dict``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch

from analysis.errors import CheckpointError

# torchvision densenet.py ``_load_state_dict``: before '.' was banned in module names,
# _DenseLayer named its children 'norm.1', 'relu.1', 'conv.1', 'norm.2', 'relu.2', 'conv.2'.
_OLD_DENSE_LAYER_KEY = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$"
)


def unwrap_checkpoint(obj: object) -> dict[str, torch.Tensor]:
    """The state dict inside a loaded checkpoint: CSAIL's ``['state_dict']`` or the bare dict itself."""
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]
    if (
        isinstance(obj, Mapping)
        and obj
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())
    ):
        return dict(obj)
    raise CheckpointError(
        "The checkpoint holds no state dict of tensors (neither a bare one nor one under 'state_dict')."
    )


def strip_module(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop every ``module`` key segment that DataParallel added, wherever it stands.

    Segment-wise, unlike CSAIL's ``k.replace('module.', '')``, so a name such as ``submodule.`` is kept.
    """
    return {".".join(part for part in key.split(".") if part != "module"): value for key, value in state.items()}


def fix_old_densenet_keys(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename PyTorch 0.2 densenet keys (``denselayer1.norm.1.weight``) to today's (``denselayer1.norm1.weight``)."""
    fixed: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        match = _OLD_DENSE_LAYER_KEY.match(key)
        fixed[match.group(1) + match.group(2) if match else key] = value
    return fixed


def add_missing_bn_counters(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Add ``num_batches_tracked`` (0) next to each batch norm's ``running_var`` where it is missing.

    Batch norms gained that buffer in PyTorch 0.4.1; CSAIL's files predate it. ``load_state_dict``
    fills it in by itself when the dict carries no newer version metadata, but a key-set
    comparison made before loading (to word a readable error) would report it missing.
    """
    filled = dict(state)
    for key in state:
        if key.endswith(".running_var"):
            filled.setdefault(key[: -len("running_var")] + "num_batches_tracked", torch.tensor(0, dtype=torch.long))
    return filled
