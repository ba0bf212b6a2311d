"""Edge CNNs defined in PyTorch, for the ONNX import tests and the benchmarks.

    for name, (factory, example) in models(size="test").items():
        module = torch_export.seeded(factory)      # BatchNorm statistics made non-trivial
        model = torch_export.export(module, example)

size="test": tiny widths and images (each runs in milliseconds);
size="bench": realistic edge sizes (MobileNetV2 x0.5 at 128x128, MobileNetV3-small-like
at 128x128, a ResNet-18-like net at 64x64, keyword spotting over 40 MFCC x 49 frames).

The architectures follow the published ones in structure (inverted residuals with
depthwise convs and ReLU6; hardswish and hardsigmoid squeeze-excite; basic residual
blocks with a strided 1x1 downsample; DS-CNN-style keyword spotting in 2-D and 1-D),
written here from the papers' block diagrams, not copied from torchvision.
"""
import torch
from torch import nn


def _divisible(value, divisor=8):
    return max(divisor, int(value + divisor / 2) // divisor * divisor)


def conv_bn(cin, cout, kernel, stride=1, groups=1, act=nn.ReLU6, dims=2):
    conv = nn.Conv2d if dims == 2 else nn.Conv1d
    bn = nn.BatchNorm2d if dims == 2 else nn.BatchNorm1d
    layers = [conv(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False), bn(cout)]
    if act is not None:
        layers.append(act())
    return nn.Sequential(*layers)


# ---------------------------------------------------------------- MobileNetV2

class InvertedResidual(nn.Module):
    def __init__(self, cin, cout, stride, expand):
        super().__init__()
        hidden = cin * expand
        layers = [conv_bn(cin, hidden, 1)] if expand != 1 else []
        layers += [conv_bn(hidden, hidden, 3, stride, groups=hidden), conv_bn(hidden, cout, 1, act=None)]
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        y = self.body(x)
        return x + y if self.residual else y


class MobileNetV2(nn.Module):
    # (expand, channels, repeats, stride) of the paper's table 2
    SETTINGS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                (6, 160, 3, 2), (6, 320, 1, 1)]

    def __init__(self, width=1.0, classes=1000, settings=None, last=1280):
        super().__init__()
        cin = _divisible(32 * width)
        layers = [conv_bn(3, cin, 3, 2)]
        for expand, channels, repeats, stride in settings or self.SETTINGS:
            cout = _divisible(channels * width)
            for i in range(repeats):
                layers.append(InvertedResidual(cin, cout, stride if i == 0 else 1, expand))
                cin = cout
        last = _divisible(last * max(1.0, width))
        layers.append(conv_bn(cin, last, 1))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(last, classes)

    def forward(self, x):
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


# ---------------------------------------------------------------- MobileNetV3

class SqueezeExcite(nn.Module):
    """x * hardsigmoid(fc2(relu(fc1(mean(x))))), the fcs as 1x1 convs."""

    def __init__(self, channels, squeeze):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.fc2 = nn.Conv2d(squeeze, channels, 1)
        self.relu = nn.ReLU()
        self.gate = nn.Hardsigmoid()

    def forward(self, x):
        return x * self.gate(self.fc2(self.relu(self.fc1(self.pool(x)))))


class Bneck(nn.Module):
    def __init__(self, cin, kernel, hidden, cout, se, act, stride):
        super().__init__()
        layers = [conv_bn(cin, hidden, 1, act=act)] if hidden != cin else []
        layers.append(conv_bn(hidden, hidden, kernel, stride, groups=hidden, act=act))
        if se:
            layers.append(SqueezeExcite(hidden, _divisible(hidden // 4)))
        layers.append(conv_bn(hidden, cout, 1, act=None))
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        y = self.body(x)
        return x + y if self.residual else y


class MobileNetV3(nn.Module):
    # MobileNetV3-Small (kernel, expanded, out, SE, activation, stride)
    SMALL = [(3, 16, 16, True, "RE", 2), (3, 72, 24, False, "RE", 2), (3, 88, 24, False, "RE", 1),
             (5, 96, 40, True, "HS", 2), (5, 240, 40, True, "HS", 1), (5, 240, 40, True, "HS", 1),
             (5, 120, 48, True, "HS", 1), (5, 144, 48, True, "HS", 1), (5, 288, 96, True, "HS", 2),
             (5, 576, 96, True, "HS", 1), (5, 576, 96, True, "HS", 1)]

    def __init__(self, width=1.0, classes=1000, settings=None, last=1024):
        super().__init__()
        cin = _divisible(16 * width)
        layers = [conv_bn(3, cin, 3, 2, act=nn.Hardswish)]
        for kernel, hidden, cout, se, act, stride in settings or self.SMALL:
            hidden, cout = _divisible(hidden * width), _divisible(cout * width)
            layers.append(Bneck(cin, kernel, hidden, cout, se, nn.Hardswish if act == "HS" else nn.ReLU,
                                stride))
            cin = cout
        layers.append(conv_bn(cin, 6 * cin, 1, act=nn.Hardswish))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Linear(6 * cin, last), nn.Hardswish(), nn.Linear(last, classes))

    def forward(self, x):
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


# ---------------------------------------------------------------- ResNet

class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = conv_bn(cin, cout, 3, stride, act=nn.ReLU)
        self.conv2 = conv_bn(cout, cout, 3, act=None)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = conv_bn(cin, cout, 1, stride, act=None)
        self.relu = nn.ReLU()

    def forward(self, x):
        shortcut = x if self.down is None else self.down(x)
        return self.relu(self.conv2(self.conv1(x)) + shortcut)


class ResNet(nn.Module):
    def __init__(self, widths=(64, 128, 256, 512), blocks=(2, 2, 2, 2), classes=1000):
        super().__init__()
        self.stem = nn.Sequential(conv_bn(3, widths[0], 7, 2, act=nn.ReLU), nn.MaxPool2d(3, 2, 1))
        layers, cin = [], widths[0]
        for i, (width, count) in enumerate(zip(widths, blocks)):
            for j in range(count):
                layers.append(BasicBlock(cin, width, 2 if j == 0 and i > 0 else 1))
                cin = width
        self.layers = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.layers(self.stem(x))), 1))


# ---------------------------------------------------------------- keyword spotting

class KWS2d(nn.Module):
    """DS-CNN: a strided 10x4 conv over [1, mfcc, frames], depthwise-separable blocks,
    average pooling, a classifier."""

    def __init__(self, channels=64, blocks=4, classes=12):
        super().__init__()
        layers = [nn.Conv2d(1, channels, (10, 4), (2, 2), (5, 1), bias=False), nn.BatchNorm2d(channels),
                  nn.ReLU()]
        for _ in range(blocks):
            layers += [conv_bn(channels, channels, 3, groups=channels, act=nn.ReLU),
                       conv_bn(channels, channels, 1, act=nn.ReLU)]
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, classes)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.features(x)), 1))


class Residual1d(nn.Module):
    """relu(bn(conv(relu(bn(conv(x))))) + x) over [N, C, L] (TC-ResNet style)."""

    def __init__(self, channels):
        super().__init__()
        self.body = nn.Sequential(conv_bn(channels, channels, 3, act=nn.ReLU, dims=1),
                                  conv_bn(channels, channels, 3, act=None, dims=1))
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.body(x) + x)


class KWS1d(nn.Module):
    """Temporal convs over [mfcc, frames] (MFCCs as channels): Conv1d + BatchNorm1d +
    ReLU, a residual block, MaxPool1d and AvgPool1d, global average pooling, a classifier."""

    def __init__(self, mfcc=40, channels=(64, 96, 128), classes=12):
        super().__init__()
        layers, cin = [], mfcc
        for i, cout in enumerate(channels):
            layers += [conv_bn(cin, cout, 3, act=nn.ReLU, dims=1)]
            if i == 0:
                layers.append(Residual1d(cout))
            layers.append(nn.MaxPool1d(2) if i % 2 == 0 else nn.AvgPool1d(3, 2, 1))
            cin = cout
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool1d(1)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.features(x)), 1))


def models(size="test"):
    """{name: (factory, example input tensor)}; see the module doc for the sizes."""
    if size not in ("test", "bench"):
        raise ValueError(f"size must be 'test' or 'bench', got {size!r}")
    g = torch.Generator().manual_seed(0)

    def image(*shape):
        return torch.randn(*shape, generator=g)

    if size == "test":
        v2 = [(1, 8, 1, 1), (6, 12, 2, 2), (6, 16, 2, 2)]
        v3 = [(3, 16, 8, True, "RE", 2), (3, 24, 16, False, "RE", 2), (5, 48, 16, True, "HS", 1)]
        return {
            "mobilenetv2": (lambda: MobileNetV2(0.5, 10, v2, last=64), image(1, 3, 32, 32)),
            "mobilenetv3": (lambda: MobileNetV3(1.0, 10, v3, last=32), image(1, 3, 32, 32)),
            "resnet": (lambda: ResNet((8, 16), (1, 1), 10), image(1, 3, 32, 32)),
            "kws": (lambda: KWS2d(16, 2, 12), image(1, 1, 40, 49)),
            "kws1d": (lambda: KWS1d(40, (16, 24), 12), image(1, 40, 49)),
        }
    return {
        "mobilenetv2": (lambda: MobileNetV2(0.5, 1000), image(1, 3, 128, 128)),
        "mobilenetv3": (lambda: MobileNetV3(1.0, 1000), image(1, 3, 128, 128)),
        "resnet": (lambda: ResNet((32, 64, 128, 256), (2, 2, 2, 2), 100), image(1, 3, 64, 64)),
        "kws": (lambda: KWS2d(64, 4, 12), image(1, 1, 40, 49)),
        "kws1d": (lambda: KWS1d(40, (64, 96, 128), 12), image(1, 40, 49)),
    }
