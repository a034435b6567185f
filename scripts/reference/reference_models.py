"""mmaction2's Recognizer3D in plain PyTorch for every variant the project builds: ResNet3d of
depth 18/34 (BasicBlock3d) and 50/101/152 (Bottleneck3d), '3x1x1' or '3x3x3' inflation, non-local
blocks in every mode (own_modules.NonLocal3d), GCNet context blocks after the last conv of a block
(context_block.py), frozen stages and norm_eval. State_dict keys are mmaction2's.

mmaction2 itself (mmaction2_models.py) builds every variant but the concatenation mode and the
context blocks; for those it does build, make_model_fixtures.py loads this network's weights into
mmaction2's strictly and requires the same output before writing a fixture. Also the
deterministic weights and inputs the model fixtures use."""
import math
import torch, torch.nn as nn, torch.nn.functional as F
from own_modules import ConvModule, NonLocal3d, I3DHead
from context_block import ContextBlock3d


class Block3d(nn.Module):
    """BasicBlock3d (expansion 1) or Bottleneck3d (expansion 4), pytorch style."""
    def __init__(self, cin, planes, bottleneck, stride, inflate, inflate_style, nl, gc, downsample):
        super().__init__()
        s = (1, stride, stride)
        if bottleneck:
            k1, k2 = ((3, 1, 1), (1, 3, 3)) if inflate and inflate_style == "3x1x1" else \
                     ((1, 1, 1), (3, 3, 3)) if inflate else ((1, 1, 1), (1, 3, 3))
            pad = lambda k: tuple((i - 1) // 2 for i in k)
            self.conv1 = ConvModule(cin, planes, k1, padding=pad(k1))
            self.conv2 = ConvModule(planes, planes, k2, stride=s, padding=pad(k2))
            self.conv3 = ConvModule(planes, planes * 4, 1, act=False)
            out = planes * 4
        else:
            k, p = ((3, 3, 3), (1, 1, 1)) if inflate else ((1, 3, 3), (0, 1, 1))
            self.conv1 = ConvModule(cin, planes, k, stride=s, padding=p)
            self.conv2 = ConvModule(planes, planes, k, padding=p, act=False)
            out = planes
        self.convs = ["conv1", "conv2"] + (["conv3"] if bottleneck else [])
        self.downsample = downsample
        if gc is not None: self.context_block = ContextBlock3d(out, **gc)
        if nl is not None: self.non_local_block = NonLocal3d(out, **nl)

    def forward(self, x):
        o = x
        for c in self.convs: o = getattr(self, c)(o)
        if hasattr(self, "context_block"): o = self.context_block(o)
        o = F.relu(o + (x if self.downsample is None else self.downsample(x)))
        return self.non_local_block(o) if hasattr(self, "non_local_block") else o


ARCH = {18: ((2, 2, 2, 2), False), 34: ((3, 4, 6, 3), False), 50: ((3, 4, 6, 3), True),
        101: ((3, 4, 23, 3), True), 152: ((3, 8, 36, 3), True)}


class ResNet3d(nn.Module):
    def __init__(self, depth=50, base=64, conv1_kernel=(5, 7, 7), conv1_stride_t=2, pool1_stride_t=2,
                 with_pool2=True, inflate=None, inflate_style="3x1x1", non_local=None, nl_cfg=None,
                 context=None, gc_cfg=None, frozen_stages=-1, norm_eval=False):
        super().__init__()
        stages, bottleneck = ARCH[depth]
        self.frozen_stages, self.norm_eval = frozen_stages, norm_eval
        pad = tuple((k - 1) // 2 for k in conv1_kernel)
        self.conv1 = ConvModule(3, base, conv1_kernel, stride=(conv1_stride_t, 2, 2), padding=pad)
        self.maxpool = nn.MaxPool3d((1, 3, 3), stride=(pool1_stride_t, 2, 2), padding=(0, 1, 1))
        self.pool2 = nn.MaxPool3d((2, 1, 1), stride=(2, 1, 1)) if with_pool2 else nn.Identity()
        expansion = 4 if bottleneck else 1
        cin = base
        for i, nb in enumerate(stages):
            planes, stride = base * 2 ** i, 1 if i == 0 else 2
            ds = ConvModule(cin, planes * expansion, 1, stride=(1, stride, stride), act=False) \
                if stride != 1 or cin != planes * expansion else None
            blocks = []
            for j in range(nb):
                blocks.append(Block3d(cin, planes, bottleneck, stride if j == 0 else 1, bool(inflate[i][j]), inflate_style,
                                      nl_cfg if non_local[i][j] else None, gc_cfg if context[i][j] else None,
                                      ds if j == 0 else None))
                cin = planes * expansion
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
        self.feat_dim = cin
        self.train()

    def forward(self, x):
        x = self.maxpool(self.conv1(x))
        x = self.pool2(self.layer1(x))
        return self.layer4(self.layer3(self.layer2(x)))

    def train(self, mode=True):
        """As mmaction2's ResNet3d.train: frozen stages in eval mode without gradients; norm_eval."""
        super().train(mode)
        frozen = ([self.conv1] if self.frozen_stages >= 0 else []) + \
                 [getattr(self, f"layer{i}") for i in range(1, self.frozen_stages + 1)]
        for m in frozen:
            m.eval()
            for p in m.parameters(): p.requires_grad = False
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, nn.BatchNorm3d): m.eval()
        return self


class Recognizer3D(nn.Module):
    def __init__(self, num_classes, dropout=0.5, **kw):
        super().__init__()
        self.backbone = ResNet3d(**kw)
        self.cls_head = I3DHead(self.backbone.feat_dim, num_classes, dropout)

    def forward(self, x):
        return self.cls_head(self.backbone(x))


# Deterministic values both languages compute exactly: 32-bit integer hashing, no library RNG.
def fnv1a(text):
    h = 0x811C9DC5
    for b in text.encode():
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return h


def hash_uniform(key, count):
    """count values in [-1, 1) for `key`: mix32(fnv1a(key) + i * 0x9E3779B9) / 2^31 - 1."""
    base = fnv1a(key)
    out = []
    for i in range(count):
        x = (base + i * 0x9E3779B9) & 0xFFFFFFFF
        x = ((x ^ (x >> 16)) * 0x7FEB352D) & 0xFFFFFFFF
        x = ((x ^ (x >> 15)) * 0x846CA68B) & 0xFFFFFFFF
        x ^= x >> 16
        out.append(x / 2147483648.0 - 1.0)
    return torch.tensor(out, dtype=torch.float64)


def deterministic_state(model):
    """Every floating entry of the state_dict from hash_uniform, scaled by its role."""
    sd = model.state_dict()
    for key, t in sd.items():
        if not t.is_floating_point(): continue
        u = hash_uniform(key, t.numel()).reshape(t.shape).to(t.dtype)
        if key.endswith("running_var"): v = 1 + 0.2 * u
        elif key.endswith("running_mean") or key.endswith("bias"): v = 0.1 * u
        elif t.dim() == 1 or (t.dim() == 4 and key.split(".")[-2] == "1"):  # norm weights (BN, LayerNorm)
            v = 1 + 0.2 * u
        else:  # conv and linear weights: He-uniform on the fan-in
            v = u * math.sqrt(6 / (t[0].numel()))
            # Non-local theta, phi and g a tenth of that (the reference starts them at std 0.01):
            # large pairwise scores saturate the softmax and make its gradient chaotic.
            if ".non_local_block." in key and ".conv_out." not in key: v = v / 10
        t.copy_(v.float().to(t.dtype))  # float32 values, as the Swift side holds them
    return sd
