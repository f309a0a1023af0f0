"""A training step of lagom's models in PyTorch — forward, cross-entropy, backward, SGD with
momentum — timed: the PyTorch side of benches/step_vs_torch.sh.

    torch_step.py MODEL [BATCH] [STEPS] [DEVICE]

MODEL is mlp or cnn (Fashion-MNIST's 1×28×28 inputs, 10 classes) or resnet20 (CIFAR-10's 3×32×32),
the networks of torch_models.py, which mirror lagom's layer for layer. Prints `it I total Ts` for
each step (the first is a warm-up). Threads: OMP_NUM_THREADS.
"""
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_models import Cnn, Mlp, ResNet20  # noqa: E402

name = sys.argv[1]
bs = int(sys.argv[2]) if len(sys.argv) > 2 else 128
steps = int(sys.argv[3]) if len(sys.argv) > 3 else 6
dev = torch.device(sys.argv[4] if len(sys.argv) > 4 else "cpu")
channels, side = (3, 32) if name == "resnet20" else (1, 28)
net = {"mlp": lambda: Mlp(channels * side * side, 10),
       "cnn": lambda: Cnn(channels, side, 10),
       "resnet20": lambda: ResNet20(channels, 10)}[name]().to(dev)
print("model", name, "params", sum(p.numel() for p in net.parameters()), "device", dev)
sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
x = torch.randn(bs, channels, side, side, device=dev)
y = torch.zeros(bs, dtype=torch.long, device=dev)
for it in range(steps):
    sync(); t = time.time()
    loss = F.cross_entropy(net(x), y); opt.zero_grad(); loss.backward(); opt.step()
    sync(); print(f"it {it} total {time.time() - t:.5f}s")
