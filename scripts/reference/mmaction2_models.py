"""mmaction2's own networks: the ground truth the project's checkpoints, fixtures and speed are held to.
mmaction2 1.2.0 builds them from the configs its wheel ships (recognition/i3d/*-nl-*), exactly as its
training does. Needs, in a virtual environment outside the repository (never in CI):

    pip install torch safetensors mmaction2==1.2.0 mmcv-lite==2.1.0 mmengine==0.10.7 importlib_metadata

The wheel lacks mmaction/models/localizers/drn, which nothing here uses: it is stubbed before import.

    from mmaction2_models import nl_i3d_r50
    model = nl_i3d_r50(num_classes=400, mode="embedded_gaussian")   # gaussian, dot_product, concatenation
    logits = model(torch.randn(1, 3, 32, 224, 224))                   # N, C, T, H, W
    model.state_dict()                                                # mmaction2's keys: backbone.*, cls_head.*
"""
import os, sys, types, warnings

warnings.filterwarnings("ignore", message=".*MultiScaleDeformableAttention.*")
drn = types.ModuleType("mmaction.models.localizers.drn"); drn.__path__ = []
drn_module = types.ModuleType("mmaction.models.localizers.drn.drn"); drn_module.DRN = type("DRN", (), {})
sys.modules.setdefault("mmaction.models.localizers.drn", drn)
sys.modules.setdefault("mmaction.models.localizers.drn.drn", drn_module)

import torch
import mmaction
from mmengine.config import Config
from mmaction.registry import MODELS
from mmaction.utils import register_all_modules
from mmcv.cnn import NonLocal3d  # noqa: F401  (mmaction2's non-local block, for the layer fixtures)

register_all_modules()
CONFIGS = os.path.join(os.path.dirname(mmaction.__file__), ".mim", "configs", "recognition", "i3d")
MODES = {"embedded_gaussian": "embedded-gaussian", "gaussian": "gaussian", "dot_product": "dot-product"}


class Recognizer(torch.nn.Module):
    """mmaction2's Recognizer3D as a clip-to-logits module: its backbone and cls_head, with their
    state_dict keys (the data preprocessor, which only normalises, is left out)."""

    def __init__(self, recognizer):
        super().__init__()
        self.backbone, self.cls_head = recognizer.backbone, recognizer.cls_head

    def forward(self, x):
        return self.cls_head(self.backbone(x))


def model_config(mode="embedded_gaussian"):
    """mmaction2's shipped config of the NL I3D R50 (for "concatenation", which mmaction2 ships no
    config of, the embedded-Gaussian one with that mode)."""
    name = f"i3d_imagenet-pretrained-r50-nl-{MODES.get(mode, 'embedded-gaussian')}_8xb8-32x2x1-100e_kinetics400-rgb.py"
    cfg = Config.fromfile(os.path.join(CONFIGS, name)).model
    cfg.backbone.non_local_cfg.mode = mode
    cfg.backbone.pretrained, cfg.backbone.pretrained2d = None, False   # no download: weights from the caller
    return cfg


def nl_i3d_r50(num_classes=400, mode="embedded_gaussian", **backbone):
    """The network of mmaction2's NL I3D R50 config; `backbone` overrides ResNet3d's arguments
    (depth, base_channels, inflate, non_local, ...). Weights at PyTorch's default initialisation:
    the callers load their own."""
    cfg = model_config(mode)
    cfg.cls_head.num_classes = num_classes
    cfg.backbone.update(backbone)
    depth, base = cfg.backbone.get("depth", 50), cfg.backbone.get("base_channels", 64)
    cfg.cls_head.in_channels = base * 8 * (4 if depth >= 50 else 1)
    return Recognizer(MODELS.build(cfg))
