"""The speed yardstick: one training step of mmaction2's own NL I3D R50 in PyTorch on this machine's
CPU, as mmaction2 trains it (SGD with momentum 0.9 and weight decay 1e-4, gradients clipped at 40,
dropout on). Run it beside `nlbench step` with the same shape, one right after the other
(scripts/bench/compare_step_with_pytorch.sh does), and compare the two. Needs PyTorch and mmaction2
(scripts/reference/mmaction2_models.py says how to install them); never run by CI.

    python3 scripts/bench/pytorch_step.py --batch 2 --frames 8 --size 112 [--threads 2] [--mode embedded_gaussian] [--precision bf16]

--precision bf16 runs forward and loss under torch.autocast("cpu", dtype=torch.bfloat16), PyTorch's
mixed precision (convolutions and matrix products in bfloat16, float32 weights), as nlbench step
--precision bf16 runs the project's.

Prints the train-step FLOPs (PyTorch's FlopCounterMode), the median step time over --steps timed
steps, GFLOP/s, clips/s and peak RSS, in the form of nlbench step's line."""
import argparse, os, resource, sys, time
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "reference"))
import torch
from torch.utils.flop_counter import FlopCounterMode
from mmaction2_models import nl_i3d_r50

ap = argparse.ArgumentParser()
ap.add_argument("--batch", type=int, default=2); ap.add_argument("--frames", type=int, default=8)
ap.add_argument("--size", type=int, default=112); ap.add_argument("--classes", type=int, default=400)
ap.add_argument("--threads", type=int, default=os.cpu_count()); ap.add_argument("--steps", type=int, default=3)
ap.add_argument("--mode", default="embedded_gaussian"); ap.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
a = ap.parse_args()
mixed = a.precision == "bf16"
torch.manual_seed(0); torch.set_num_threads(a.threads)
model = nl_i3d_r50(num_classes=a.classes, mode=a.mode).train()
optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
x = torch.randn(a.batch, 3, a.frames, a.size, a.size); y = torch.randint(0, a.classes, (a.batch,))

def step():
    optimizer.zero_grad()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=mixed):
        loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=40, norm_type=2)
    optimizer.step()

with FlopCounterMode(display=False) as counter:
    torch.nn.functional.cross_entropy(model(x), y).backward()
flops = counter.get_total_flops()
step()
times = []
for _ in range(a.steps):
    start = time.perf_counter(); step(); times.append(time.perf_counter() - start)
median = sorted(times)[len(times) // 2]
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(f"pytorch {torch.__version__} {a.precision} threads={a.threads} batch={a.batch} frames={a.frames} size={a.size}: "
      f"train-step {flops/1e9:.1f} GFLOP, median {median:.3f} s, {flops/median/1e9:.1f} GFLOP/s, "
      f"{a.batch/median:.2f} clips/s, peak RSS {rss:.0f} MiB")
