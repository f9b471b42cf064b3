"""Reading an untrusted checkpoint into a built network: weights only, every key and tensor checked first.

What a file is (checkpoint_files) and how each publisher's keys are renamed (checkpoint_keys)
are their own modules; this one is the path a load takes through them.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import torch
import torch.nn as nn

from analysis.errors import CheckpointError
from analysis.zoo.specs import ModelSpec
from analysis.zoo.weights.checkpoint_files import checkpoint_kind, describe_non_checkpoint, pickled_model_class
from analysis.zoo.weights.checkpoint_keys import (
    add_missing_bn_counters,
    fix_old_densenet_keys,
    strip_module,
    unwrap_checkpoint,
)


def read_checkpoint(path: Path, spec: ModelSpec | None = None) -> dict[str, torch.Tensor]:
    """Load an untrusted checkpoint: tensors and plain containers only, never arbitrary code.

    Any era's files: zip archives and the legacy pickle stream of PyTorch 0.2-1.5 (tensors rebuilt by
    torch._utils._rebuild_tensor or _rebuild_tensor_v2, storages saved from the GPU). A refusal says
    what the file is: no checkpoint at all, a pickled whole model (and which file to fetch for spec
    instead), or a pickle that would run code."""
    if checkpoint_kind(path) is None:
        raise CheckpointError(f"{path.name} is not a PyTorch checkpoint: it is {describe_non_checkpoint(path)}. "
                              "Give the model's weight file (.pth, .pt or .pth.tar).")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        if (model_class := pickled_model_class(path)) is not None:
            instead = ""
            if spec and spec.weights.filename:
                instead = (f" Fetch the state-dict file '{spec.weights.filename}' instead"
                           + (f" ({spec.weights.url})." if spec.weights.url else "."))
            raise CheckpointError(f"Refused {path.name}: it is a whole pickled model ({model_class}), which only loads "
                                  f"by running its code; the lab loads state dicts of weights.{instead}") from None
        raise CheckpointError(f"Refused {path.name}: it needs arbitrary code to unpickle, which a plain "
                              "weights file never does. Only weights-only checkpoints are loaded.") from None
    except Exception as err:  # the weights-only unpickler raises KeyError, IndexError... on arbitrary bytes
        raise CheckpointError(f"{path.name} is not a readable PyTorch checkpoint ({type(err).__name__}).") from None
    state = unwrap_checkpoint(raw)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path.name} holds no state dict of tensors.")
    return state


def fit_state_dict(spec: ModelSpec, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a checkpoint's keys to the built module's (CSAIL 'module.', old densenet names)."""
    state = strip_module(state)
    if spec.weights.format == "csail":
        state = add_missing_bn_counters(fix_old_densenet_keys(state))
    return {k: v for k, v in state.items() if not k.startswith(spec.drop_keys)} if spec.drop_keys else state


def adapt_to_layout(spec: ModelSpec, state: dict[str, torch.Tensor], source: str
                    ) -> tuple[ModelSpec, dict[str, torch.Tensor]]:
    """For a model published in several layouts, the spec of the file's (picked from its keys) and its renamed state."""
    return spec.adapt(spec, state, source) if spec.adapt is not None else (spec, state)


def _key_list(keys: list[str]) -> str:
    return ", ".join(keys[:5]) + (f" (+{len(keys) - 5} more)" if len(keys) > 5 else "")


def load_state(module: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Strict load, every key checked first, so what does not fit is one readable line and never
    PyTorch's copy traceback: the key set and each shape, then each tensor's kind (dense, with data,
    floating point where the network's is) and values (finite: one NaN turns every dream black)."""
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state) if tuple(expected[k].shape) != tuple(state[k].shape))
    if missing or unexpected or wrong:
        parts = [f"{len(missing)} missing: {_key_list(missing)}" if missing else "",
                 f"{len(unexpected)} unexpected: {_key_list(unexpected)}" if unexpected else "",
                 f"{len(wrong)} with the wrong shape: {_key_list(wrong)}" if wrong else ""]
        keys = "; ".join(p for p in parts if p)
        raise CheckpointError(f"{source} does not fit this architecture; keys {keys}.")
    odd = sorted(k for k, v in state.items() if v.layout != torch.strided or v.is_quantized or v.is_meta
                 or type(v) not in (torch.Tensor, nn.Parameter))
    if odd:
        raise CheckpointError(f"{source} holds tensors that are not plain dense weights (sparse, quantized, "
                              f"without data or a tensor subclass): {_key_list(odd)}.")
    not_float = sorted(k for k, v in state.items() if expected[k].is_floating_point() and not v.is_floating_point())
    if not_float:
        kinds = sorted({str(state[k].dtype).removeprefix("torch.") for k in not_float})
        raise CheckpointError(f"{source} holds {'/'.join(kinds)} tensors where the network has floating-point "
                              f"weights: {_key_list(not_float)}. A weights file stores floats; this one is damaged "
                              "or not a weights file.")
    broken = sorted(k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all()))
    if broken:
        raise CheckpointError(f"{source} holds NaN or infinite values in {_key_list(broken)}: the network would "
                              "dream black or not at all. The file is damaged; fetch it again.")
    module.load_state_dict(state, strict=True)


