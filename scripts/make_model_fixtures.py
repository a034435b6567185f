#!/usr/bin/env python3
"""Makes the whole-model parity fixtures of the model tests (Tests/NLModelsTests/Fixtures).

Each case is a small network of the family (nl_i3d_r50's structure at a fraction of the width,
every non-local mode, the context-block model, basic blocks, 3x3x3 inflation with frozen stages)
whose weights and input both sides compute from the same integer hash (reference_models.py:
deterministic_state, hash_uniform), so only results are stored, computed in float64:
  logits_eval                       inference-mode logits
  loss, grad.<key>                  training mode (batch statistics, no dropout): the loss of
                                    `labels` and the gradient of every trainable parameter
  f32error.<name>                   PyTorch's own float32 error on each of those, max|f32 - f64| /
                                    max|f64| (absolute where f64 is zero): some gradients nearly cancel (a batch-statistics
                                    BatchNorm makes per-channel shifts of its input irrelevant), and
                                    no float32 computation resolves them; the tests judge those
                                    against this peer figure instead of the plain 1e-3
Gradients of a ReLU network jump where an activation crosses zero or a max pool's two largest
values swap, and a float32 computation in another summation order (another BLAS kernel) can land
on the other side of such a point wherever the float64 value is within rounding of it: one such
flip in res5, whose BatchNorms see 8 values a channel, moves every gradient below it by 5-40%.
So for the training pass the backbone's BatchNorm biases are raised by norm_shift times
norm_scale (metadata), which keeps most ReLU inputs well above zero, and each case draws its clip from the first key "clip",
"clip.1", ... whose training forward keeps every ReLU input and every max-pool runner-up more
than MARGIN times PyTorch's own float32 error of that tensor from the kink (metadata
`clip_key`). Ties of exact zeros (pooled ReLU outputs) are harmless: no gradient goes through
them. The comparison then holds whatever the machine's BLAS kernels.
The case's settings are in the metadata under the project's [model] config keys. Also writes
nl_i3d_r50_state_dict.txt (the full model's keys, shapes and dtypes) and one reference
state_dict (state_dict.safetensors), which the tests load strictly.

Needs torch and safetensors (never in CI; fixtures are committed):
    /tmp/torch/bin/python scripts/make_model_fixtures.py [--reference ../shared/reference]
"""
import argparse, os, sys
import torch, torch.nn.functional as F
from safetensors.torch import save_file

here = os.path.dirname(os.path.abspath(__file__))
ap = argparse.ArgumentParser()
ap.add_argument("--reference", default=os.path.join(here, "..", "..", "shared", "reference"))
ap.add_argument("--out", default=os.path.join(here, "..", "Tests", "NLModelsTests", "Fixtures"))
args = ap.parse_args()
sys.path.insert(0, args.reference); sys.path.insert(0, here)
import mmaction2_nl_i3d as shared  # noqa: E402
from reference_models import Recognizer3D, deterministic_state, hash_uniform  # noqa: E402

os.makedirs(args.out, exist_ok=True)
for f in os.listdir(args.out):
    if f.endswith(".safetensors"): os.remove(os.path.join(args.out, f))

R50_INFLATE = ((1, 1, 1), (1, 0, 1, 0), (1, 0, 1, 0, 1, 0), (0, 1, 0))
R50_NL = ((0, 0, 0), (0, 1, 0, 1), (0, 1, 0, 1, 0, 1), (0, 0, 0))
NONE = ((0, 0, 0), (0, 0, 0, 0), (0, 0, 0, 0, 0, 0), (0, 0, 0))
CLIP = (2, 3, 8, 64, 64)
LABELS = [1, 3]


def pattern(p): return " ".join("".join(str(b) for b in stage) for stage in p)


def case(name, depth=50, base=2, inflate=R50_INFLATE, inflate_style="3x1x1", non_local=NONE, mode="embedded_gaussian",
         context=NONE, gc_ratio=0.25, frozen_stages=-1, norm_eval=False, conv1_kernel=(5, 7, 7), conv1_stride_t=2, pool1_stride_t=2,
         norm_scale=1.0, norm_shift=2.5):
    kw = dict(depth=depth, base=base, conv1_kernel=conv1_kernel, conv1_stride_t=conv1_stride_t, pool1_stride_t=pool1_stride_t,
              inflate=inflate, inflate_style=inflate_style, non_local=non_local,
              nl_cfg=dict(mode=mode, use_scale=False, sub_sample=True), context=context,
              gc_cfg=dict(ratio=gc_ratio, pooling_type="att", fusion_types=("channel_add",)),
              frozen_stages=frozen_stages, norm_eval=norm_eval)

    def build(dtype):
        model = Recognizer3D(5, dropout=0.0, **kw).to(dtype)
        with torch.no_grad():
            deterministic_state(model)
            scale_norms(model, norm_scale)
        return model

    def shifted(model):
        with torch.no_grad(): shift_norm_biases(model, norm_shift * norm_scale)
        return model

    def make_clip(key, dtype):
        return hash_uniform(key, torch.Size(CLIP).numel()).reshape(CLIP).float().to(dtype)

    clip_key = next(key for key in ("clip" if i == 0 else f"clip.{i}" for i in range(200))
                    if kinks_near(lambda dtype: shifted(build(dtype))(make_clip(key, dtype))) == 0)

    def run(dtype):
        model = build(dtype)
        clip = make_clip(clip_key, dtype)
        model.eval()
        with torch.no_grad(): logits_eval = model(clip)
        model = shifted(model.train())
        loss = F.cross_entropy(model(clip), torch.tensor(LABELS))
        loss.backward()
        t = {"logits_eval": logits_eval, "loss": loss.detach().reshape(1)}
        for k, p in model.named_parameters():
            if p.requires_grad: t["grad." + k] = p.grad
        return model, clip, t

    model, clip, t = run(torch.float64)
    _, _, t32 = run(torch.float32)
    for k in list(t):  # relative, or absolute where the exact value is zero (see the tests)
        scale = t[k].abs().max()
        deviation = (t32[k].double() - t[k]).abs().max()
        t["f32error." + k] = (deviation / scale if scale > 1e-9 else deviation).reshape(1)
    t = {k: v.float().contiguous() for k, v in t.items()}
    meta = {"depth": depth, "base_channels": base, "num_classes": 5, "dropout": 0, "conv1_kernel": " ".join(map(str, conv1_kernel)),
            "conv1_stride_t": conv1_stride_t, "pool1_stride_t": pool1_stride_t, "inflate": pattern(inflate),
            "inflate_style": inflate_style, "non_local": pattern(non_local), "non_local_mode": mode, "context": pattern(context),
            "context_ratio": gc_ratio, "frozen_stages": frozen_stages, "norm_eval": int(norm_eval),
            "clip": " ".join(map(str, CLIP)), "clip_key": clip_key, "labels": " ".join(map(str, LABELS)),
            "norm_scale": norm_scale, "norm_shift": norm_shift}
    save_file(t, os.path.join(args.out, f"model_{name}.safetensors"), metadata={k: str(v) for k, v in meta.items()})
    ill = sorted((v.item(), k) for k, v in t.items() if k.startswith("f32error.") and v.item() > 1e-3)
    print(f"{name} (clip key {clip_key}): {len(ill)} quantities where PyTorch float32 misses 1e-3" + (f", worst {ill[-1][0]:.1e}" if ill else ""))
    with torch.no_grad(): deterministic_state(model); scale_norms(model, norm_scale)  # undo the shift and the training step
    return model, clip


MARGIN = 4


def kinks_near(forward):
    """The ReLU inputs and max-pool runners-up within MARGIN times float32's error of a kink, in a
    training-mode forward (`forward(dtype)` builds and runs the network): float64 gives the
    values, the float32 run the error scale, tensor by tensor in call order."""
    def recorded(dtype):
        seen, relu, pool = [], F.relu, F.max_pool3d
        def record_relu(x, inplace=False):
            seen.append(("relu", x.detach().clone(), None))
            return relu(x, inplace=inplace)
        def record_pool(x, kernel_size, stride=None, padding=0, *rest, **kwargs):
            seen.append(("pool", x.detach().clone(), (kernel_size, stride or kernel_size, padding)))
            return pool(x, kernel_size, stride, padding, *rest, **kwargs)
        F.relu, F.max_pool3d = record_relu, record_pool
        try: forward(dtype)
        finally: F.relu, F.max_pool3d = relu, pool
        return seen

    def triple(v): return tuple(v) if isinstance(v, (tuple, list)) else (v, v, v)

    def gaps(kind, x, geometry):  # distance to the kink of each element (ReLU) or window (pool)
        if kind == "relu": return x.abs()
        k, s, p = map(triple, geometry)
        x = F.pad(x, (p[2], p[2], p[1], p[1], p[0], p[0]), value=float("-inf"))
        windows = x.unfold(2, k[0], s[0]).unfold(3, k[1], s[1]).unfold(4, k[2], s[2]).flatten(-3)
        top = windows.topk(2, dim=-1).values
        return torch.where(top[..., 0] == 0, float("inf"), top[..., 0] - top[..., 1])

    near = 0
    for (kind, x64, geometry), (_, x32, _) in zip(recorded(torch.float64), recorded(torch.float32)):
        error = (x32.double() - x64).abs().max()
        near += int((gaps(kind, x64, geometry) <= MARGIN * error).sum())
    return near


def backbone_norms(model, suffixes):
    return [t for k, t in model.state_dict().items() if k.endswith(suffixes) and "non_local" not in k]


def scale_norms(model, factor):
    """BatchNorm weights and biases of the backbone's convolutions times `factor`: a small residual
    stream keeps the gaussian mode's scores x_i . x_j, taken on the raw input, out of saturation."""
    for t in backbone_norms(model, (".bn.weight", ".bn.bias")): t.mul_(factor)


def shift_norm_biases(model, shift):
    """The backbone's BatchNorm biases raised by `shift`, away from the ReLU kinks (see above).
    Only for the training pass: with running statistics nothing renormalises the activations,
    and the shift would compound through the network."""
    for t in backbone_norms(model, (".bn.bias",)): t.add_(shift)


for mode in ("embedded_gaussian", "gaussian", "dot_product", "concatenation"):
    model, clip = case(f"nl_{mode}", non_local=R50_NL, mode=mode, norm_scale=0.1 if mode == "gaussian" else 1.0)
    if mode == "embedded_gaussian":
        # The general builder and the shared reference are the same network: same keys, same logits.
        ref = shared.Recognizer3D(5, nl_cfg=dict(mode=mode, use_scale=False, sub_sample=True), base=2, non_local=R50_NL).double()
        ref.cls_head.dropout.p = 0.0
        ref.load_state_dict(model.state_dict(), strict=True)
        ref.eval(); model.eval()
        with torch.no_grad(): assert torch.allclose(ref(clip), model(clip), atol=1e-12), "reference_models differs from the shared reference"
        save_file({k: v.float() if v.is_floating_point() else v for k, v in ref.state_dict().items()},
                  os.path.join(args.out, "state_dict.safetensors"), metadata={"format": "pt"})
case("gc", context=((0, 0, 0), (1, 1, 1, 1), (1, 1, 1, 1, 1, 1), (1, 1, 1)))
case("r18_basic", depth=18, base=2, inflate=((1, 1), (1, 0), (1, 1), (0, 1)), non_local=((0, 0), (0, 1), (1, 0), (0, 0)),
     context=((0, 0), (0, 0), (0, 0), (0, 0)), conv1_kernel=(3, 7, 7), conv1_stride_t=1, pool1_stride_t=1)
case("frozen_3x3x3", inflate_style="3x3x3", non_local=R50_NL, frozen_stages=1)
case("norm_eval", non_local=R50_NL, mode="dot_product", norm_eval=True, norm_shift=0)  # running statistics: see shift_norm_biases

# The full nl_i3d_r50's state_dict listing, as ../shared/spec has it.
full = shared.nl_i3d_r50()
with open(os.path.join(args.out, "nl_i3d_r50_state_dict.txt"), "w") as f:
    f.write("# nl_i3d_r50 (400 classes) state_dict from the reference: key, shape, dtype\n")
    for k, v in full.state_dict().items():
        f.write(f"{k} {list(v.shape)} {str(v.dtype).replace('torch.', '')}\n")
    f.write(f"# parameters {sum(p.numel() for p in full.parameters())}\n")
print("fixtures written to", os.path.normpath(args.out))
