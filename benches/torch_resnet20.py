"""ResNet-20 in PyTorch: the reference lagom's ResNet-20 step is measured against.

Same network as src/model/resnet.rs (3x3 stem, 3 stages x 3 basic blocks at 16/32/64 channels,
1x1 conv + BN shortcuts where the shape changes, global average pooling, linear), the same
SGD-momentum step on a fixed random batch. Usage: torch_resnet20.py [BATCH] [STEPS] [DEVICE];
DEVICE is cpu (default) or cuda[:N] (each timed step then waits for the GPU to finish); threads
from OMP_NUM_THREADS (default 2), as benches/step_vs_torch.sh sets it. Prints one line per step.
"""
import os, sys, time, torch, torch.nn as nn, torch.nn.functional as F
torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
class Block(nn.Module):
    def __init__(s, cin, cout, stride):
        super().__init__()
        s.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False); s.b1 = nn.BatchNorm2d(cout)
        s.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False); s.b2 = nn.BatchNorm2d(cout)
        s.sc = None
        if stride != 1 or cin != cout:
            s.sc = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
    def forward(s, x):
        y = F.relu(s.b1(s.c1(x))); y = s.b2(s.c2(y))
        return F.relu(y + (x if s.sc is None else s.sc(x)))
class Net(nn.Module):
    def __init__(s):
        super().__init__()
        s.c = nn.Conv2d(3, 16, 3, 1, 1, bias=False); s.b = nn.BatchNorm2d(16)
        L = []; cin = 16
        for st, cout in enumerate([16, 32, 64]):
            for i in range(3):
                L.append(Block(cin, cout, 2 if (i == 0 and st > 0) else 1)); cin = cout
        s.blocks = nn.Sequential(*L); s.fc = nn.Linear(64, 10)
    def forward(s, x):
        y = s.blocks(F.relu(s.b(s.c(x))))
        return s.fc(y.mean((2, 3)))
bs = int(sys.argv[1]) if len(sys.argv) > 1 else 128
steps = int(sys.argv[2]) if len(sys.argv) > 2 else 6
dev = torch.device(sys.argv[3] if len(sys.argv) > 3 else "cpu")
sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
net = Net().to(dev); print("params", sum(p.numel() for p in net.parameters()), "device", dev)
opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
x = torch.randn(bs, 3, 32, 32, device=dev); y = torch.zeros(bs, dtype=torch.long, device=dev)
for it in range(steps):
    sync(); t = time.time()
    loss = F.cross_entropy(net(x), y); opt.zero_grad(); loss.backward(); opt.step()
    sync(); print(f"it {it} total {time.time()-t:.5f}s")
