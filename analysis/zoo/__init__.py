"""The model zoo: name -> spec -> weights -> LoadedModel.

specs      what a model is before loading: ModelSpec, its input convention and layers; the registry
catalogue/ the models the lab knows, each spec beside its architecture and layer selector
weights/   where a weight file is and its sha256 (locate), fetching it (downloads), reading it safely (checkpoint)
loaded     LoadedModel: the truncated forward, BatchRows, hook counting
loading    device, precision and initialisation choices, and load_model
"""

from analysis.zoo.catalogue import DEFAULT_MODEL
from analysis.zoo.catalogue.efficientnet import MINUS_ONE_TO_ONE
from analysis.zoo.catalogue.lucent import LUCENT_INCEPTION
from analysis.zoo.loaded import BatchRows, LoadedModel, count_hooks
from analysis.zoo.loading import (
    PRECISIONS,
    cpu_kind,
    he_initialise,
    load_model,
    native_bf16,
    pick_device,
    pick_precision,
    precision_note,
)
from analysis.zoo.specs import (
    IMAGENET_MEAN_STD,
    LOGITS,
    REGISTRY,
    UNTRAINED_SUFFIX,
    ImageNet,
    InputConvention,
    LayerInfo,
    ModelSpec,
    Places205,
    Places365,
    Preprocess,
    Untrained,
    WeightsSource,
    class_labels,
    get_spec,
    layer_at_depth,
    layer_table,
    model_names,
    register,
)
from analysis.zoo.weights.checkpoint import adapt_to_layout, fit_state_dict, load_state, read_checkpoint
from analysis.zoo.weights.locate import (
    REPO_ROOT,
    file_sha256,
    locate_weights,
    missing_weights_message,
    model_table,
    weights_dir,
    weights_present,
)

__all__ = [
    "BatchRows", "DEFAULT_MODEL", "IMAGENET_MEAN_STD", "ImageNet", "InputConvention", "LOGITS", "LUCENT_INCEPTION",
    "LayerInfo", "LoadedModel", "MINUS_ONE_TO_ONE", "ModelSpec", "PRECISIONS", "Places205", "Places365", "Preprocess",
    "REGISTRY", "REPO_ROOT", "UNTRAINED_SUFFIX", "Untrained", "WeightsSource", "adapt_to_layout", "class_labels",
    "count_hooks", "cpu_kind", "file_sha256", "fit_state_dict", "get_spec", "he_initialise", "layer_at_depth",
    "layer_table", "load_model", "load_state", "locate_weights", "missing_weights_message", "model_names",
    "model_table", "native_bf16", "pick_device", "pick_precision", "precision_note", "read_checkpoint", "register",
    "weights_dir", "weights_present",
]
