"""lagom's three models in PyTorch, under the names lagom writes to model.safetensors, and the
evaluation of such a file on a test set read exactly as lagom reads it.

    torch_models.py MODEL.safetensors DATA_DIR [DATASET]

DATASET is fashion-mnist (default), mnist (IDX files, plain or .gz) or cifar10 (test_batch.bin).
The model (mlp, cnn or resnet20) comes from the file's metadata; the state dict is loaded with
strict=True, so every name and shape must match. Prints the test accuracy and loss; lagom's own
figure for the same file is `lagom eval --model MODEL.safetensors` (docs/outputs.md).
Needs torch, numpy and safetensors (pip install torch numpy safetensors).
"""
import gzip, os, sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

NORM = {  # per-channel mean and std of pixel/255, as src/data/dataset.rs
    "fashion-mnist": ([0.2860], [0.3530]),
    "mnist": ([0.1307], [0.3081]),
    "cifar10": ([0.4914, 0.4822, 0.4465], [0.2470, 0.2435, 0.2616]),
}


class Mlp(nn.Module):
    def __init__(s, inputs, classes, hidden=256):
        super().__init__()
        s.hidden = nn.Linear(inputs, hidden)
        s.out = nn.Linear(hidden, classes)

    def forward(s, x):
        return s.out(F.relu(s.hidden(x.flatten(1))))


class Cnn(nn.Module):  # two conv-ReLU-2x2-max-pool stages (16, 32 channels), then 128 hidden
    def __init__(s, channels, side, classes):
        super().__init__()
        s.conv1 = nn.Conv2d(channels, 16, 3, padding=1)
        s.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        s.hidden = nn.Linear(32 * (side // 4) * (side // 4), 128)
        s.out = nn.Linear(128, classes)

    def forward(s, x):
        x = F.max_pool2d(F.relu(s.conv1(x)), 2)
        x = F.max_pool2d(F.relu(s.conv2(x)), 2)
        return s.out(F.relu(s.hidden(x.flatten(1))))


class ConvBn(nn.Module):
    def __init__(s, cin, cout, kernel, stride):
        super().__init__()
        s.conv = nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False)
        s.bn = nn.BatchNorm2d(cout)

    def forward(s, x):
        return s.bn(s.conv(x))


class Block(nn.Module):
    def __init__(s, cin, cout, stride):
        super().__init__()
        s.conv1 = ConvBn(cin, cout, 3, stride)
        s.conv2 = ConvBn(cout, cout, 3, 1)
        s.shortcut = ConvBn(cin, cout, 1, stride) if stride != 1 or cin != cout else None

    def forward(s, x):
        y = s.conv2(F.relu(s.conv1(x)))
        return F.relu(y + (x if s.shortcut is None else s.shortcut(x)))


class ResNet20(nn.Module):
    def __init__(s, channels, classes):
        super().__init__()
        s.stem = ConvBn(channels, 16, 3, 1)
        cin = 16
        for stage, cout in enumerate([16, 32, 64]):
            blocks = nn.Module()
            for i in range(3):
                stride = 2 if i == 0 and stage > 0 else 1
                blocks.add_module(f"block{i}", Block(cin, cout, stride))
                cin = cout
            s.add_module(f"stage{stage + 1}", blocks)
        s.fc = nn.Linear(64, classes)

    def forward(s, x):
        y = F.relu(s.stem(x))
        for stage in (s.stage1, s.stage2, s.stage3):
            for i in range(3):
                y = getattr(stage, f"block{i}")(y)
        return s.fc(y.mean((2, 3)))


def read_idx(path):
    opener = gzip.open if not os.path.exists(path) else open
    with opener(path if os.path.exists(path) else path + ".gz", "rb") as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * dims).reshape(shape)


def test_set(data_dir, dataset):
    if dataset == "cifar10":
        raw = np.fromfile(os.path.join(data_dir, "test_batch.bin"), np.uint8).reshape(-1, 3073)
        labels, images = raw[:, 0], raw[:, 1:].reshape(-1, 3, 32, 32)
    else:
        images = read_idx(os.path.join(data_dir, "t10k-images-idx3-ubyte"))[:, None]
        labels = read_idx(os.path.join(data_dir, "t10k-labels-idx1-ubyte"))
    mean, std = (torch.tensor(v).view(1, -1, 1, 1) for v in NORM[dataset])
    x = (torch.from_numpy(images.astype(np.float32)) / 255.0 - mean) / std
    return x, torch.from_numpy(labels.astype(np.int64))


def main():
    from safetensors import safe_open  # here, so that the models import without safetensors
    from safetensors.torch import load_file

    path, data_dir = sys.argv[1], sys.argv[2]
    dataset = sys.argv[3] if len(sys.argv) > 3 else "fashion-mnist"
    with safe_open(path, "pt") as f:
        name = f.metadata()["lagom_model"]
    state = load_file(path)
    x, y = test_set(data_dir, dataset)
    channels, side, classes = x.shape[1], x.shape[2], int(state["fc.bias" if name == "resnet20" else "out.bias"].numel())
    net = {"mlp": lambda: Mlp(channels * side * side, classes),
           "cnn": lambda: Cnn(channels, side, classes),
           "resnet20": lambda: ResNet20(channels, classes)}[name]()
    net.load_state_dict(state, strict=True)
    net.eval()
    correct, loss = 0, 0.0
    with torch.no_grad():
        for i in range(0, len(y), 250):
            logits = net(x[i:i + 250])
            loss += F.cross_entropy(logits, y[i:i + 250], reduction="sum").item()
            correct += (logits.argmax(1) == y[i:i + 250]).sum().item()
    print(f"{path}: {name} in PyTorch {torch.__version__}: test accuracy {100 * correct / len(y):.2f} %, "
          f"loss {loss / len(y):.4f}, on {len(y)} test examples of {dataset}")


if __name__ == "__main__":
    main()
