#!/usr/bin/env python3
"""Converts an mmaction2 checkpoint (.pth) of a Recognizer3D (I3D / NL I3D / GC I3D ResNet) into the
project's safetensors weights, which `nlmodel forward --ckpt`, `[model] pretrained` and
`nltrain --init` read.

    python3 scripts/convert/convert_mmaction2_checkpoint.py i3d_nl_dot_product_r50.pth nl_i3d_dot.safetensors

mmaction2 saves {'meta': ..., 'state_dict': {...}, 'optimizer': ...}; the state_dict keys
(backbone.*, cls_head.*) are already the project's, so the conversion keeps the model tensors, makes
them contiguous float32 (int64 for num_batches_tracked), and drops everything else (the optimizer,
mmaction2 2.x's data_preprocessor buffers). Check the result against PyTorch with
scripts/convert/check_against_pytorch.py --ckpt OUT (and the matching --mode and --classes).
Needs torch and safetensors: pip install torch safetensors."""
import argparse
import torch
from safetensors.torch import save_file

ap = argparse.ArgumentParser()
ap.add_argument("pth"); ap.add_argument("output")
a = ap.parse_args()
checkpoint = torch.load(a.pth, map_location="cpu", weights_only=False)
state = checkpoint.get("state_dict", checkpoint)
state = {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}
kept = {k: (v.float() if v.is_floating_point() else v).contiguous() for k, v in state.items()
        if k.startswith(("backbone.", "cls_head."))}
dropped = sorted(set(state) - set(kept))
save_file(kept, a.output, metadata={"converted_from": a.pth})
print(f"wrote {a.output}: {len(kept)} tensors" + (f"; dropped {len(dropped)}: {', '.join(dropped[:5])}" if dropped else ""))
