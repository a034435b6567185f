#!/usr/bin/env python3
"""Makes the optimiser fixture of the training tests (Tests/NLTrainTests/Fixtures/sgd.safetensors):
torch.optim.SGD, with torch.nn.utils.clip_grad_norm_ where a case clips, over three steps with a
different learning rate each, on three parameters of the kinds the project tells apart (a conv
weight, a bias, a BatchNorm weight). Weight decay off for biases and norms is two param groups,
as mmcv's paramwise_cfg (norm_decay_mult=0, bias_decay_mult=0) builds them.

For each case C: C.init.<p>, C.grad.<step>.<p> (the gradient before clipping), C.final.<p> and
C.momentum.<p>; the metadata holds each case's settings and the learning rates.

Needs torch and safetensors (never in CI; the fixture is committed):
    /tmp/torch/bin/python scripts/make_train_fixtures.py
"""
import json, os
import torch
from safetensors.torch import save_file

here = os.path.dirname(os.path.abspath(__file__))
out = os.path.join(here, "..", "Tests", "NLTrainTests", "Fixtures", "sgd.safetensors")
LRS = [0.1, 0.05, 0.02]
SHAPES = {"weight": (4, 3, 1, 1, 1), "bias": (4,), "norm": (4,)}
CASES = {
    "plain": dict(momentum=0.9, nesterov=False, weight_decay=1e-4, decay_norm_and_bias=True, clip=0.0),
    "nesterov": dict(momentum=0.9, nesterov=True, weight_decay=1e-3, decay_norm_and_bias=True, clip=0.0),
    "no_norm_decay_clipped": dict(momentum=0.8, nesterov=False, weight_decay=1e-2, decay_norm_and_bias=False, clip=0.5),
}

g = torch.Generator().manual_seed(0)
tensors, meta = {}, {"lrs": " ".join(map(str, LRS))}
for case, o in CASES.items():
    params = {k: torch.randn(s, generator=g).requires_grad_() for k, s in SHAPES.items()}
    for k, p in params.items(): tensors[f"{case}.init.{k}"] = p.detach().clone()
    decayed = [params["weight"]] + ([params["bias"], params["norm"]] if o["decay_norm_and_bias"] else [])
    groups = [{"params": decayed, "weight_decay": o["weight_decay"]}]
    if not o["decay_norm_and_bias"]: groups.append({"params": [params["bias"], params["norm"]], "weight_decay": 0.0})
    opt = torch.optim.SGD(groups, lr=LRS[0], momentum=o["momentum"], nesterov=o["nesterov"])
    for step, lr in enumerate(LRS):
        for group in opt.param_groups: group["lr"] = lr
        for k, p in params.items():
            p.grad = torch.randn(p.shape, generator=g)
            tensors[f"{case}.grad.{step}.{k}"] = p.grad.clone()
        if o["clip"] > 0: torch.nn.utils.clip_grad_norm_(list(params.values()), o["clip"])
        opt.step()
    for k, p in params.items():
        tensors[f"{case}.final.{k}"] = p.detach().clone()
        tensors[f"{case}.momentum.{k}"] = opt.state[p]["momentum_buffer"].clone()
    meta[case] = json.dumps(o)
save_file({k: v.contiguous() for k, v in tensors.items()}, out, metadata=meta)
print("wrote", os.path.normpath(out))
