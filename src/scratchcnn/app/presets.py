"""Ready-made models: every seed experiment's exact architecture and hyper-parameters, and a
stronger scratchcnn preset per data set.

A preset is a :class:`Preset`: a function building the model for a given input shape and
number of classes, plus the training settings that go with it. ``build_model(name_or_spec,
input_shape, num_classes)`` also accepts a spec string (see :mod:`scratchcnn.app.spec`).
"""
from dataclasses import dataclass, field

from ..errors import ConfigError
from ..model import Sequential
from ..nn import BatchNorm1D, BatchNorm2D, Conv2D, Dense, Dropout, Flatten, GlobalAvgPool2D, MaxPool2D, ReLU
from ..nn.residual import basic_block


@dataclass
class Preset:
    name: str
    description: str
    build: callable
    train: dict = field(default_factory=dict)      # epochs, batch_size, lr, optimizer, momentum, ...
    dataset: str = "digits"                        # the data set the seed used (or is meant for)
    data: dict = field(default_factory=dict)       # loader options: classes, per_class, grayscale
    seed_result: str = ""                          # what the seed project reported


def _flat(c, h, w):
    return c * h * w


def seed_a_simple(input_shape, num_classes):
    """A simple: Conv(8, 3x3, same) ReLU MaxPool2 Flatten FC(8*H/2*W/2 -> classes)."""
    c, h, w = input_shape
    return Sequential(Conv2D(c, 8, 3, padding="same"), ReLU(), MaxPool2D(2), Flatten(),
                      Dense(_flat(8, h // 2, w // 2), num_classes, init="glorot"), input_shape=input_shape)


def seed_a_complex(input_shape, num_classes):
    """A complex: [Conv32 ReLU]x2 Pool [Conv64 ReLU]x2 Pool FC(64*H/4*W/4 -> 128) ReLU FC(128 -> classes)."""
    c, h, w = input_shape
    return Sequential(Conv2D(c, 32, 3, padding="same"), ReLU(), Conv2D(32, 32, 3, padding="same"), ReLU(),
                      MaxPool2D(2),
                      Conv2D(32, 64, 3, padding="same"), ReLU(), Conv2D(64, 64, 3, padding="same"), ReLU(),
                      MaxPool2D(2), Flatten(),
                      Dense(_flat(64, h // 4, w // 4), 128), ReLU(), Dense(128, num_classes, init="glorot"),
                      input_shape=input_shape)


def seed_b(input_shape, num_classes):
    """B: Conv(1->2, k3) ReLU Conv(2->4, k3) ReLU MaxPool Flatten Dense(64->32) ReLU Dense(32->classes).

    The seed's write-up gives "MaxPool(4)" and "Dense(64->32)" for 8x8 inputs; the only layout in
    which both convolutions, the pool and a 64-wide Dense fit is padding 1 on the convolutions and
    a 2x2 pool (4 maps of 4x4 = 64), which is what this preset uses."""
    c, h, w = input_shape
    return Sequential(Conv2D(c, 2, 3, padding=1), ReLU(), Conv2D(2, 4, 3, padding=1), ReLU(), MaxPool2D(2),
                      Flatten(), Dense(_flat(4, h // 2, w // 2), 32), ReLU(),
                      Dense(32, num_classes, init="glorot"), input_shape=input_shape)


def seed_c(input_shape, num_classes):
    """C: Conv(8 filters 3x3, valid) MaxPool2 softmax head (Flatten, Dense -> classes)."""
    c, h, w = input_shape
    return Sequential(Conv2D(c, 8, 3), MaxPool2D(2), Flatten(),
                      Dense(_flat(8, (h - 2) // 2, (w - 2) // 2), num_classes, init="glorot"),
                      input_shape=input_shape)


def seed_d(input_shape, num_classes):
    """D: Conv(32 filters 7x7, stride 1, padding 1) ReLU Flatten Dense(32*(H-4)*(W-4) -> classes)."""
    c, h, w = input_shape
    return Sequential(Conv2D(c, 32, 7, stride=1, padding=1), ReLU(), Flatten(),
                      Dense(_flat(32, h - 4, w - 4), num_classes, init="glorot"), input_shape=input_shape)


def seed_e(input_shape, num_classes):
    """E: Conv(1 map, 3x3, pad 1) ReLU Conv(1 map, 3x3, pad 1) ReLU MaxPool2 Flatten Dense(32) ReLU Dense(classes)."""
    c, h, w = input_shape
    return Sequential(Conv2D(c, 1, 3, padding=1), ReLU(), Conv2D(1, 1, 3, padding=1), ReLU(), MaxPool2D(2),
                      Flatten(), Dense(_flat(1, h // 2, w // 2), 32), ReLU(),
                      Dense(32, num_classes, init="glorot"), input_shape=input_shape)


def _strong_blocks(c):
    """Seed A complex's two blocks with BatchNorm: two 3x3 'same' convolutions (no bias), 32 then
    64 maps, each followed by BatchNorm and ReLU, each block ending in a 2x2 max-pool."""
    layers, cin = [], c
    for cout in (32, 64):
        layers += [Conv2D(cin, cout, 3, padding="same", bias=False), BatchNorm2D(cout), ReLU(),
                   Conv2D(cout, cout, 3, padding="same", bias=False), BatchNorm2D(cout), ReLU(), MaxPool2D(2)]
        cin = cout
    return layers


def strong_cnn(input_shape, num_classes):
    """scratchcnn's stronger model for 28x28 images (MNIST, Fashion-MNIST): seed A's complex
    layout (two blocks of two 3x3 'same' convolutions, 32 then 64 maps, each block ending in a
    2x2 max-pool) with BatchNorm after every convolution, Dropout, a 256-wide BatchNorm'd Dense,
    Dropout, the classifier. Convolutions and the hidden Dense have no bias (BatchNorm's shift
    replaces it)."""
    c, h, w = input_shape
    layers = _strong_blocks(c)
    layers += [Flatten(), Dropout(0.3), Dense(_flat(64, h // 4, w // 4), 256, bias=False),
               BatchNorm1D(256), ReLU(), Dropout(0.3), Dense(256, num_classes, init="glorot")]
    return Sequential(*layers, input_shape=input_shape)


def strong_plus_cnn(input_shape, num_classes):
    """The record model for 28x28 images: :func:`strong_cnn`'s two blocks (32 then 64 maps at
    28x28 and 14x14), then one more 3x3 'same' convolution with 128 maps at 7x7 (BatchNorm, ReLU;
    cheap at that size: as many multiply-adds as the 32-to-64-map convolution at 14x14), Dropout 0.2,
    a 6272-256 BatchNorm'd Dense, Dropout 0.2, the classifier."""
    c, h, w = input_shape
    layers = _strong_blocks(c)
    layers += [Conv2D(64, 128, 3, padding="same", bias=False), BatchNorm2D(128), ReLU(),
               Flatten(), Dropout(0.2), Dense(_flat(128, h // 4, w // 4), 256, bias=False),
               BatchNorm1D(256), ReLU(), Dropout(0.2), Dense(256, num_classes, init="glorot")]
    return Sequential(*layers, input_shape=input_shape)


def strong_light_cnn(input_shape, num_classes):
    """A lighter stronger model for 28x28 images, about 4x fewer multiply-adds than
    :func:`strong_cnn`: one 3x3 convolution per block (32 then 64 maps, BatchNorm, ReLU, 2x2
    max-pool), Dropout, a 256-wide BatchNorm'd Dense, Dropout, the classifier."""
    c, h, w = input_shape
    return Sequential(Conv2D(c, 32, 3, padding="same", bias=False), BatchNorm2D(32), ReLU(), MaxPool2D(2),
                      Conv2D(32, 64, 3, padding="same", bias=False), BatchNorm2D(64), ReLU(), MaxPool2D(2),
                      Flatten(), Dropout(0.3), Dense(_flat(64, h // 4, w // 4), 256, bias=False),
                      BatchNorm1D(256), ReLU(), Dropout(0.3), Dense(256, num_classes, init="glorot"),
                      input_shape=input_shape)


def strong_cifar(input_shape, num_classes):
    """scratchcnn's stronger model for 32x32 RGB (CIFAR-10): three VGG-style blocks of two 3x3
    convolutions with BatchNorm (32, 64, 128 maps), max-pooling, global average pooling, Dropout."""
    c, h, w = input_shape
    layers, cin = [], c
    for cout in (32, 64, 128):
        layers += [Conv2D(cin, cout, 3, padding="same", bias=False), BatchNorm2D(cout), ReLU(),
                   Conv2D(cout, cout, 3, padding="same", bias=False), BatchNorm2D(cout), ReLU(), MaxPool2D(2)]
        cin = cout
    layers += [GlobalAvgPool2D(), Dropout(0.3), Dense(128, num_classes, init="glorot")]
    return Sequential(*layers, input_shape=input_shape)


def resnet(input_shape, num_classes, stem, stages, stem_pool=False):
    """A ResNet of basic blocks (He et al. 2016): a 3x3 stem convolution with ``stem`` maps
    (BatchNorm, ReLU; then a 2x2 max-pool with ``stem_pool``), then ``stages``, a list of
    ``(channels, blocks)``: each stage after the first starts with a stride-2 block (a 1x1
    projection shortcut), every block is followed by a ReLU; global average pooling, the
    classifier."""
    c, h, w = input_shape
    layers = [Conv2D(c, stem, 3, padding=1, bias=False), BatchNorm2D(stem), ReLU()]
    if stem_pool:
        layers.append(MaxPool2D(2))
    cin = stem
    for i, (cout, blocks) in enumerate(stages):
        for b in range(blocks):
            layers += [basic_block(cin, cout, 2 if (i > 0 and b == 0) else 1), ReLU()]
            cin = cout
    layers += [GlobalAvgPool2D(), Dense(cin, num_classes, init="glorot")]
    return Sequential(*layers, input_shape=input_shape)


def resnet_small(input_shape, num_classes):
    """The small ResNet for 28x28 images (MNIST, Fashion-MNIST): a 32-map stem at 28x28 and a
    max-pool to 14x14, one 64-map block at 14x14, two 128-map blocks at 7x7 (the first with a
    stride-2 projection), global average pooling, the classifier: 0.58 M parameters, 37 M
    multiply-adds per image."""
    return resnet(input_shape, num_classes, 32, [(64, 1), (128, 2)], stem_pool=True)


def resnet20(input_shape, num_classes):
    """ResNet-20 for 32x32 images (CIFAR-10; He et al. 2016, section 4.2): a 16-map stem, three
    stages of three basic blocks with 16, 32 and 64 maps (32x32, 16x16, 8x8), global average
    pooling, the classifier: 0.27 M parameters."""
    return resnet(input_shape, num_classes, 16, [(16, 3), (32, 3), (64, 3)])


def small_cnn(input_shape, num_classes):
    """A small, quick CNN (the default of ``scratchcnn train``): Conv16 BN ReLU Conv32 BN ReLU Pool
    GlobalAvg-free Flatten Dense(classes); about a minute on the 8x8 digits."""
    c, h, w = input_shape
    return Sequential(Conv2D(c, 16, 3, padding="same", bias=False), BatchNorm2D(16), ReLU(),
                      Conv2D(16, 32, 3, padding="same", bias=False), BatchNorm2D(32), ReLU(), MaxPool2D(2),
                      Flatten(), Dropout(0.2), Dense(_flat(32, h // 2, w // 2), num_classes, init="glorot"),
                      input_shape=input_shape)


_SGD = {"optimizer": "sgd", "momentum": 0.0}
PRESETS = {p.name: p for p in [
    Preset("seed-a-simple", "Seed A simple: conv8 3x3 same, pool, dense; SGD lr 0.05, batch 10, 30 epochs",
           seed_a_simple, dict(_SGD, epochs=30, batch_size=10, lr=0.05), "mnist",
           seed_result="MNIST 97.67%, 'minutes'"),
    Preset("seed-a-complex", "Seed A complex: conv32 x2, pool, conv64 x2, pool, fc128, fc; SGD lr 0.05, batch 10",
           seed_a_complex, dict(_SGD, epochs=30, batch_size=10, lr=0.05), "mnist",
           seed_result="MNIST 99.33%, 'hours'"),
    Preset("seed-b", "Seed B: conv2, conv4, pool, dense32, dense; SGD lr 0.1, batch 128, 10 epochs",
           seed_b, dict(_SGD, epochs=10, batch_size=128, lr=0.1), "digits",
           seed_result="loss not converged after 10 epochs (no accuracy reported)"),
    Preset("seed-c", "Seed C: conv8 3x3, pool, softmax; 1 epoch, per-image SGD (batch 1), lr 0.005",
           seed_c, dict(_SGD, epochs=1, batch_size=1, lr=0.005), "mnist",
           seed_result="MNIST 0.90 acc/P/R/F1, ~2 h; CIFAR-10 (gray) 0.30"),
    Preset("seed-d", "Seed D: conv32 7x7 pad 1, dense; SGD lr 0.01, batch 64, 50 epochs",
           seed_d, dict(_SGD, epochs=50, batch_size=64, lr=0.01), "mnist",
           seed_result="MNIST 97.7% after ~25 epochs (stopped by hand: too slow)"),
    Preset("seed-e", "Seed E: two 1-map 3x3 convs, pool, dense32, dense3; per-sample SGD lr 0.001, 50 epochs",
           seed_e, dict(_SGD, epochs=50, batch_size=1, lr=0.001), "mnist",
           data={"classes": [0, 1, 2], "per_class": 25, "test_per_class": 10},
           seed_result="MNIST 0/1/2 subset: 70% acc, weighted P 0.73 / R 0.70 / F1 0.70, ~41 s"),
    Preset("small", "A small BatchNorm CNN, Adam lr 2e-3 with cosine schedule: the quick default",
           small_cnn, dict(optimizer="adam", epochs=30, batch_size=32, lr=2e-3, schedule="cosine"), "digits"),
    Preset("strong", "stronger CNN for 28x28 (MNIST, Fashion-MNIST): BatchNorm, Dropout, Adam + cosine, "
           "shift and flip augmentation", strong_cnn,
           dict(optimizer="adam", epochs=15, batch_size=64, lr=2e-3, schedule="cosine", augment="shift2-flip"),
           "fashion-mnist"),
    Preset("strong-plus", "the record CNN for 28x28: 'strong' and a 128-map convolution at 7x7, Dropout 0.2, "
           "Adam + cosine, batch 128, label smoothing 0.1, shift and flip augmentation", strong_plus_cnn,
           dict(optimizer="adam", epochs=18, batch_size=128, lr=2e-3, schedule="cosine", augment="shift2-flip",
                label_smoothing=0.1), "fashion-mnist"),
    Preset("strong-light", "the lighter stronger CNN for 28x28 (one conv per block, ~4x less work than "
           "'strong'): BatchNorm, Dropout, Adam + cosine, shift and flip augmentation", strong_light_cnn,
           dict(optimizer="adam", epochs=20, batch_size=64, lr=2e-3, schedule="cosine", augment="shift2-flip"),
           "fashion-mnist"),
    Preset("strong-mnist", "the stronger CNN for MNIST digits (no flips: digits are not mirror-symmetric)",
           strong_cnn, dict(optimizer="adam", epochs=12, batch_size=64, lr=2e-3, schedule="cosine",
                            augment="shift2"), "mnist"),
    Preset("resnet-small", "small ResNet for 28x28 (MNIST, Fashion-MNIST): 32-map stem, a 64-map block, two "
           "128-map blocks, global pooling; SGD Nesterov + cosine, weight decay, shift, flip and random erasing",
           resnet_small, dict(optimizer="sgd", momentum=0.9, nesterov=True, epochs=12, batch_size=128, lr=0.1,
                              weight_decay=5e-4, schedule="cosine", augment="shift2-flip-erase"),
           "fashion-mnist"),
    Preset("resnet-small-mnist", "the small ResNet for MNIST digits (no flips: digits are not mirror-symmetric)",
           resnet_small, dict(optimizer="sgd", momentum=0.9, nesterov=True, epochs=8, batch_size=128, lr=0.1,
                              weight_decay=5e-4, schedule="cosine", augment="shift2"), "mnist"),
    Preset("resnet20-cifar", "ResNet-20 for CIFAR-10 (3 stages of 3 basic blocks, 16/32/64 maps): SGD + cosine, "
           "weight decay, crop and flip augmentation", resnet20,
           dict(optimizer="sgd", momentum=0.9, nesterov=True, epochs=40, batch_size=128, lr=0.1,
                weight_decay=5e-4, schedule="cosine", augment="crop4-flip"), "cifar10"),
    Preset("strong-cifar", "stronger CNN for CIFAR-10: 3 VGG blocks with BatchNorm, global pooling, Adam + "
           "cosine, crop and flip augmentation", strong_cifar,
           dict(optimizer="adam", epochs=30, batch_size=64, lr=2e-3, schedule="cosine", augment="crop4-flip"),
           "cifar10"),
]}


def get_preset(name):
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown preset {name!r}; presets: {', '.join(PRESETS)}") from None
