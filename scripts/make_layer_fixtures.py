#!/usr/bin/env python3
"""Makes the PyTorch parity fixtures of the layer tests (Tests/NLLayersTests/Fixtures).

Each case is one small safetensors file holding, in PyTorch's layouts:
  input, grad_output            what the layer is fed (grad_output: a random upstream gradient)
  param.<key>                   the layer's state_dict before the step (mmcv/mmaction2 key names)
  output, grad_input, grad.<key>  forward output, and gradients after backward(grad_output)
  after.<key>                   buffers after the step (BatchNorm's running statistics)
and, in its metadata, the layer's settings ("layer", "mode", "kernel", ...), which the Swift tests
read to build the same layer. The reference is computed in float64 and stored as float32, so the
tests measure the Swift code's error against the exact computation.

Needs torch and safetensors (never in CI; fixtures are committed):
    python3 -m venv /tmp/torch && /tmp/torch/bin/pip install torch safetensors
    /tmp/torch/bin/python scripts/make_layer_fixtures.py [--reference ../shared/reference]
"""
import argparse, os, sys
import torch, torch.nn as nn, torch.nn.functional as F
from safetensors.torch import save_file

here = os.path.dirname(os.path.abspath(__file__))
ap = argparse.ArgumentParser()
ap.add_argument("--reference", default=os.path.join(here, "..", "..", "shared", "reference"),
                help="folder holding mmaction2_nl_i3d.py")
ap.add_argument("--out", default=os.path.join(here, "..", "Tests", "NLLayersTests", "Fixtures"))
args = ap.parse_args()
sys.path.insert(0, args.reference)
from mmaction2_nl_i3d import NonLocal3d  # noqa: E402
sys.path.insert(0, here)
from context_block import ContextBlock3d  # noqa: E402

torch.manual_seed(20261121)
os.makedirs(args.out, exist_ok=True)
for f in os.listdir(args.out):
    if f.endswith(".safetensors"): os.remove(os.path.join(args.out, f))


def randomize(module):
    """Every parameter and buffer random (BatchNorm variances positive), so no gradient is trivially zero."""
    with torch.no_grad():
        for name, t in module.state_dict().items():
            if not t.is_floating_point(): continue
            if name.endswith("running_var"): t.uniform_(0.5, 1.5)
            elif name.endswith("running_mean"): t.uniform_(-0.2, 0.2)
            elif name.endswith("bn.weight") or name.endswith("norm.weight"): t.uniform_(0.5, 1.5)
            else: t.normal_(0, 0.3)


def save(name, module, x, meta, train=True, distinct=False):
    """Runs module on x in float64, backward with a random upstream gradient, and saves the case."""
    module = module.double()
    module.train(train)
    x = x.double().requires_grad_(True)
    before = {k: v.detach().clone() for k, v in module.state_dict().items()}
    y = module(x)
    gy = torch.randn_like(y)
    y.backward(gy)
    t = {"input": x.detach(), "grad_output": gy, "output": y.detach(), "grad_input": x.grad}
    for k, v in before.items(): t["param." + k] = v
    for k, p in module.named_parameters():
        t["grad." + k] = p.grad if p.grad is not None else torch.zeros_like(p)
    for k, v in module.state_dict().items():
        if "running" in k or "num_batches" in k: t["after." + k] = v
    t = {k: (v.float() if v.is_floating_point() else v).contiguous() for k, v in t.items()}
    meta = {k: str(v) for k, v in meta.items()}
    meta["train"] = str(int(train))
    save_file(t, os.path.join(args.out, name + ".safetensors"), metadata=meta)


def triple(v): return " ".join(str(i) for i in (v if isinstance(v, tuple) else (v, v, v)))


# Conv3d: every path (1x1x1 GEMM, kx1x1 row shifts, vol2col tiles), odd sizes, even kernels.
conv_cases = [
    ("conv3d_1x1x1", 8, 6, 1, 1, 0, True, (2, 3, 5, 4)),
    ("conv3d_3x1x1", 8, 6, (3, 1, 1), 1, (1, 0, 0), False, (2, 4, 3, 5)),
    ("conv3d_3x1x1_nopad", 5, 4, (3, 1, 1), 1, 0, True, (2, 5, 3, 3)),
    ("conv3d_2x1x1_even", 4, 3, (2, 1, 1), 1, (1, 0, 0), False, (1, 4, 3, 3)),
    ("conv3d_3x1x1_stride_t2", 4, 5, (3, 1, 1), (2, 1, 1), (1, 0, 0), False, (2, 5, 2, 3)),
    ("conv3d_1x3x3_s122", 6, 8, (1, 3, 3), (1, 2, 2), (0, 1, 1), False, (2, 3, 7, 6)),
    ("conv3d_1x1x1_s122", 8, 12, 1, (1, 2, 2), 0, False, (2, 2, 5, 6)),
    ("conv3d_5x7x7_s222", 3, 4, (5, 7, 7), 2, (2, 3, 3), False, (1, 7, 11, 9)),
    ("conv3d_3x3x3_s212_odd", 5, 7, 3, (2, 1, 2), (1, 0, 1), True, (2, 5, 6, 7)),
]
for name, cin, cout, k, s, p, bias, (n, T, H, W) in conv_cases:
    m = nn.Conv3d(cin, cout, k, stride=s, padding=p, bias=bias)
    randomize(m)
    save(name, m, torch.randn(n, cin, T, H, W),
         dict(layer="conv3d", inputs=cin, outputs=cout, kernel=triple(k), stride=triple(s), padding=triple(p), bias=int(bias)))

# BatchNorm3d: training (batch statistics, running statistics updated), inference, frozen (norm_eval).
for name, train in [("batchnorm3d_train", True), ("batchnorm3d_eval", False)]:
    m = nn.BatchNorm3d(6)
    randomize(m)
    save(name, m, torch.randn(3, 6, 3, 4, 5) * 2 + 0.5, dict(layer="batchnorm3d", channels=6), train=train)

save("relu", nn.ReLU(), torch.randn(2, 5, 3, 4, 4), dict(layer="relu"))

# MaxPool3d: the network's pools and PyTorch's padding rules, on distinct values (no ties).
for name, k, s, p, shape in [
    ("maxpool3d_1x3x3_s122_p011", (1, 3, 3), (1, 2, 2), (0, 1, 1), (2, 4, 3, 7, 8)),
    ("maxpool3d_2x1x1", (2, 1, 1), (2, 1, 1), 0, (2, 3, 5, 3, 3)),
    ("maxpool3d_1x2x2_odd", (1, 2, 2), (1, 2, 2), 0, (1, 3, 2, 5, 7)),
    ("maxpool3d_3x3x3_s2_p1", 3, 2, 1, (2, 2, 5, 6, 5)),
]:
    x = torch.randperm(torch.Size(shape).numel()).float().reshape(shape) / 10
    save(name, nn.MaxPool3d(k, stride=s, padding=p), x,
         dict(layer="maxpool3d", kernel=triple(k), stride=triple(s), padding=triple(p)))


class GlobalAveragePool(nn.Module):
    def forward(self, x): return F.adaptive_avg_pool3d(x, 1).flatten(1)


save("global_average_pool", GlobalAveragePool(), torch.randn(3, 7, 2, 3, 4), dict(layer="global_average_pool"))

m = nn.Linear(12, 5)
randomize(m)
save("linear", m, torch.randn(4, 12), dict(layer="linear", inputs=12, outputs=5))


class CrossEntropy(nn.Module):
    """Loss of fixed labels; its 'output' is the scalar loss."""
    def __init__(self, labels): super().__init__(); self.labels = labels
    def forward(self, logits): return F.cross_entropy(logits, self.labels)


labels = torch.tensor([3, 0, 6, 2, 6])
m = CrossEntropy(labels)
x = torch.randn(5, 7) * 3
x64 = x.double().requires_grad_(True)
loss = m(x64); loss.backward()
save_file({"input": x, "labels": labels, "output": loss.detach().float().reshape(1), "grad_input": x64.grad.float()},
          os.path.join(args.out, "softmax_cross_entropy.safetensors"), metadata={"layer": "softmax_cross_entropy"})

# NonLocal3d, exactly the reference, in every mode; BatchNorm nonzero so every path has a gradient.
for name, mode, scale, sub, (n, c, T, H, W) in [
    ("nonlocal_embedded_gaussian", "embedded_gaussian", False, True, (2, 8, 3, 4, 6)),
    ("nonlocal_embedded_gaussian_scale", "embedded_gaussian", True, True, (2, 8, 2, 6, 4)),
    ("nonlocal_embedded_gaussian_nosub", "embedded_gaussian", False, False, (2, 6, 2, 3, 3)),
    ("nonlocal_gaussian", "gaussian", False, True, (2, 8, 3, 4, 4)),
    ("nonlocal_gaussian_nosub", "gaussian", False, False, (1, 6, 2, 3, 4)),
    ("nonlocal_dot_product", "dot_product", False, True, (2, 8, 3, 4, 6)),
    ("nonlocal_concatenation", "concatenation", False, True, (2, 8, 3, 4, 4)),
    ("nonlocal_concatenation_nosub", "concatenation", False, False, (1, 6, 2, 3, 3)),
]:
    m = NonLocal3d(c, mode=mode, use_scale=scale, sub_sample=sub)
    randomize(m)
    if mode == "concatenation":  # keep about half of the pairwise scores positive
        with torch.no_grad(): m.concat_project.conv.weight.mul_(3)
    save(name, m, torch.randn(n, c, T, H, W), dict(layer="nonlocal", channels=c, mode=mode, use_scale=int(scale), sub_sample=int(sub)))

# GCNet's ContextBlock in 3D; the last conv of each transform nonzero so every path has a gradient,
# and at least 4 planes (LayerNorm over 2 values gives +-1 whatever its input: no gradient behind it).
for name, pooling, fusions, ratio, (n, c, T, H, W) in [
    ("context_att_add", "att", ("channel_add",), 0.25, (2, 16, 2, 3, 4)),
    ("context_avg_mul", "avg", ("channel_mul",), 0.5, (2, 8, 2, 3, 3)),
    ("context_att_add_mul", "att", ("channel_add", "channel_mul"), 0.25, (3, 16, 2, 2, 3)),
]:
    m = ContextBlock3d(c, ratio, pooling, fusions)
    randomize(m)
    save(name, m, torch.randn(n, c, T, H, W),
         dict(layer="context", channels=c, ratio=ratio, pooling=pooling, fusions=" ".join(fusions)))

print("fixtures written to", os.path.normpath(args.out))
