#!/usr/bin/env python3
"""Checks `nlmodel forward` against mmaction2 1.2.0's own network (the project's reference for the concatenation mode) on the same weights and clip: inference
logits, and in training mode (batch statistics, no dropout) the loss and every gradient.

    python3 scripts/convert/check_against_pytorch.py [--ckpt WEIGHTS.safetensors] [--mode embedded_gaussian]
        [--clip 2,8,112,112] [--classes 400] [--nlmodel .build/release/nlmodel]

Without --ckpt it saves the reference's own initial state_dict (seeded) and uses it, which checks that
a PyTorch state_dict loads into the project; with --ckpt (a converted mmaction2 checkpoint, or one the
project wrote) it loads that file into the reference with strict=True first, which checks the other way.
The reference runs in float64; PyTorch's own float32 error is printed beside the project's, since with
batch statistics some gradients nearly cancel and no float32 computation resolves them. Errors are
max|a - b| / max|b| per tensor. Needs torch and safetensors."""
import argparse, os, subprocess, sys, tempfile
import torch, torch.nn.functional as F
from safetensors.torch import load_file, save_file

here = os.path.dirname(os.path.abspath(__file__))
ap = argparse.ArgumentParser()
ap.add_argument("--ckpt"); ap.add_argument("--mode", default="embedded_gaussian")
ap.add_argument("--clip", default="2,8,112,112"); ap.add_argument("--classes", type=int, default=400)
ap.add_argument("--nlmodel", default=os.path.join(here, "..", "..", ".build", "release", "nlmodel"))
a = ap.parse_args()
sys.path.insert(0, os.path.join(here, "..", "reference"))

torch.manual_seed(0)
if a.mode == "concatenation":  # mmcv's NonLocal3d cannot run this mode in 3D: the project's own reference
    from reference_models import Recognizer3D
    model = Recognizer3D(a.classes, dropout=0.0, depth=50, base=64, inflate=((1, 1, 1), (1, 0, 1, 0), (1, 0, 1, 0, 1, 0), (0, 1, 0)),
                         non_local=((0, 0, 0), (0, 1, 0, 1), (0, 1, 0, 1, 0, 1), (0, 0, 0)),
                         nl_cfg=dict(mode=a.mode, use_scale=False, sub_sample=True), context=((0, 0, 0), (0,) * 4, (0,) * 6, (0, 0, 0)))
else:  # mmaction2's own network
    from mmaction2_models import nl_i3d_r50
    model = nl_i3d_r50(num_classes=a.classes, mode=a.mode)
    model.cls_head.dropout = torch.nn.Identity()
tmp = tempfile.mkdtemp()
weights = a.ckpt or os.path.join(tmp, "reference.safetensors")
if a.ckpt:
    state = {k: v for k, v in load_file(a.ckpt).items() if not k.startswith("optimizer.")}
    model.load_state_dict(state, strict=True)
    print(f"{a.ckpt} loads into the reference with strict=True")
else:
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, weights)
n, t, h, w = map(int, a.clip.split(","))
clip = torch.randn(n, 3, t, h, w); labels = torch.randint(0, a.classes, (n,))
save_file({"clip": clip, "labels": labels}, os.path.join(tmp, "input.safetensors"))

def nlmodel(*extra):
    out = os.path.join(tmp, "output.safetensors")
    subprocess.run([a.nlmodel, "forward", "--model", "nl_i3d_r50", "--set", f"model.non_local_mode={a.mode}",
                    "--set", f"model.num_classes={a.classes}", "--ckpt", weights, "--input", os.path.join(tmp, "input.safetensors"),
                    "--output", out, *extra], check=True)
    return load_file(out)

def err(x, y): return ((x.double() - y.double()).abs().max() / y.double().abs().max()).item()

def reference(dtype):
    m = nl_i3d_r50(num_classes=a.classes, mode=a.mode).to(dtype)
    m.cls_head.dropout.p = 0.0
    m.load_state_dict(model.state_dict())
    m.eval()
    with torch.no_grad(): logits = m(clip.to(dtype))
    m.train()
    loss = F.cross_entropy(m(clip.to(dtype)), labels); loss.backward()
    return logits, loss.item(), {k: p.grad for k, p in m.named_parameters()}

exact, f32 = reference(torch.float64), reference(torch.float32)
ours_eval = nlmodel()["logits"]
print(f"inference logits: relative error {err(ours_eval, exact[0]):.2e} (PyTorch float32: {err(f32[0], exact[0]):.2e})")
ours = nlmodel("--train-mode", "--backward")
print(f"training loss: ours {ours['loss'].item():.7f}, PyTorch float32 {f32[1]:.7f}, float64 {exact[1]:.7f}")
rows = [(err(ours["grad." + k], g), err(f32[2][k], g), k) for k, g in exact[2].items() if g.abs().max() > 1e-9]
print(f"gradients: {len(rows)} compared with float64; ours within 1e-3 or 4x PyTorch float32's error: "
      f"{sum(o <= max(1e-3, 4 * p) for o, p, _ in rows)}")
for o, p, k in sorted(rows, reverse=True)[:5]: print(f"  ours {o:.2e}  PyTorch float32 {p:.2e}  {k}")
print(f"median: ours {sorted(r[0] for r in rows)[len(rows) // 2]:.2e}, PyTorch float32 {sorted(r[1] for r in rows)[len(rows) // 2]:.2e}")
