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
         norm_scale=1.0):
    kw = dict(depth=depth, base=base, conv1_kernel=conv1_kernel, conv1_stride_t=conv1_stride_t, pool1_stride_t=pool1_stride_t,
              inflate=inflate, inflate_style=inflate_style, non_local=non_local,
              nl_cfg=dict(mode=mode, use_scale=False, sub_sample=True), context=context,
              gc_cfg=dict(ratio=gc_ratio, pooling_type="att", fusion_types=("channel_add",)),
              frozen_stages=frozen_stages, norm_eval=norm_eval)

    def run(dtype):
        model = Recognizer3D(5, dropout=0.0, **kw).to(dtype)
        with torch.no_grad():
            deterministic_state(model)
            scale_norms(model, norm_scale)
        clip = hash_uniform("clip", torch.Size(CLIP).numel()).reshape(CLIP).float().to(dtype)
        model.eval()
        with torch.no_grad(): logits_eval = model(clip)
        model.train()
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
            "clip": " ".join(map(str, CLIP)), "labels": " ".join(map(str, LABELS)), "norm_scale": norm_scale}
    save_file(t, os.path.join(args.out, f"model_{name}.safetensors"), metadata={k: str(v) for k, v in meta.items()})
    ill = sorted((v.item(), k) for k, v in t.items() if k.startswith("f32error.") and v.item() > 1e-3)
    print(f"{name}: {len(ill)} quantities where PyTorch float32 misses 1e-3" + (f", worst {ill[-1][0]:.1e}" if ill else ""))
    with torch.no_grad(): deterministic_state(model); scale_norms(model, norm_scale)  # undo the training step's BatchNorm updates
    return model, clip


def scale_norms(model, factor):
    """BatchNorm weights and biases of the backbone's convolutions times `factor`: a small residual
    stream keeps the gaussian mode's scores x_i . x_j, taken on the raw input, out of saturation."""
    for k, t in model.state_dict().items():
        if (k.endswith(".bn.weight") or k.endswith(".bn.bias")) and "non_local" not in k: t.mul_(factor)


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
case("frozen_3x3x3", inflate_style="3x3x3", non_local=R50_NL, frozen_stages=1, norm_scale=0.1)
case("norm_eval", non_local=R50_NL, mode="dot_product", norm_eval=True)

# The full nl_i3d_r50's state_dict listing, as ../shared/spec has it.
full = shared.nl_i3d_r50()
with open(os.path.join(args.out, "nl_i3d_r50_state_dict.txt"), "w") as f:
    f.write("# nl_i3d_r50 (400 classes) state_dict from the reference: key, shape, dtype\n")
    for k, v in full.state_dict().items():
        f.write(f"{k} {list(v.shape)} {str(v.dtype).replace('torch.', '')}\n")
    f.write(f"# parameters {sum(p.numel() for p in full.parameters())}\n")
print("fixtures written to", os.path.normpath(args.out))
