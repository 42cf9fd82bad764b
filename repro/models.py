"""The paper's two networks as Keras 3 models (exact layouts from the authors' code).

No batch norm, dropout or weight decay. Initial values are NOT drawn by Keras: `initial_weights`
draws them from the trial seed so that trial i starts from the same point at every batch size
and sparsity, independent of model-construction order.
"""
import math

import keras
import numpy as np

from .spec import MODELS  # noqa: F401 (re-exported: one definition, the spec vocabulary)
PARAMETERS = {"simple_cnn": 62_346, "resnet8": 75_050}  # docs/facts.md; checked by tests
# repro.parameters counts them in closed form without TensorFlow (for `repro plan`): a layer
# changed here must be changed there too (tests/test_parameters.py compares the two).


def simple_cnn(input_shape=(28, 28, 1), classes=10):
    """conv5x5-32 VALID, pool, conv5x5-64 VALID, pool, flatten, dense-10 (62,346 params on MNIST)."""
    x = inputs = keras.Input(input_shape)
    x = keras.layers.Conv2D(32, 5, padding="valid", activation="relu")(x)
    x = keras.layers.MaxPooling2D(2, 2)(x)
    x = keras.layers.Conv2D(64, 5, padding="valid", activation="relu")(x)
    x = keras.layers.MaxPooling2D(2, 2)(x)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(classes)(x)  # logits; no hidden dense layer
    return keras.Model(inputs, outputs, name="simple_cnn")


class ZeroPadChannels(keras.layers.Layer):
    """Concatenate zero channels: the parameter-free shortcut of the stride-2 blocks."""

    def __init__(self, extra, **kwargs):
        super().__init__(**kwargs)
        self.extra = extra

    def call(self, x):
        return keras.ops.pad(x, [[0, 0], [0, 0], [0, 0], [0, self.extra]])


def resnet8(input_shape=(32, 32, 3), classes=10, base=16):
    """Pre-activation ResNet-8 without batch norm (75,050 params on CIFAR-10)."""
    conv = lambda f, s=1: keras.layers.Conv2D(f, 3, strides=s, padding="same")  # noqa: E731
    relu = keras.layers.ReLU
    x = inputs = keras.Input(input_shape)
    x = conv(base)(x)  # stem, no activation
    # Block 1 (identity shortcut taken before the ReLU).
    h = conv(base)(relu()(x))
    h = conv(base)(relu()(h))
    x = keras.layers.Add()([x, h])
    for filters in (2 * base, 4 * base):  # blocks 2 and 3, stride 2
        x = relu()(x)
        shortcut = keras.layers.AveragePooling2D(2, 2, padding="same")(x)
        shortcut = ZeroPadChannels(filters - x.shape[-1])(shortcut)
        h = conv(filters, 2)(x)
        h = conv(filters)(relu()(h))
        x = keras.layers.Add()([shortcut, h])
    x = keras.layers.GlobalAveragePooling2D()(relu()(x))
    outputs = keras.layers.Dense(classes)(x)
    return keras.Model(inputs, outputs, name="resnet8")


def build(name, input_shape):
    """Build model `name` ("simple_cnn" | "resnet8") for inputs of `input_shape` (H, W, C)."""
    builders = {"simple_cnn": simple_cnn, "resnet8": resnet8}
    return builders[name](tuple(input_shape))


def parameter_count(name, input_shape):
    """Number of trainable parameters of model `name` on inputs of `input_shape`."""
    return int(sum(np.prod(v.shape) for v in build(name, input_shape).trainable_variables))


def initial_weights(model, seed):
    """Initial values for `model.trainable_variables` from `seed` alone.

    Kernels: TF1 variance scaling (fan-in, truncated normal, scale 1; the std is divided by
    0.8796... so the truncated distribution has variance 1/fan_in). Biases: zeros.
    The draws are TensorFlow's stateless truncated normal of (seed, tensor index): on the JAX
    backend repro.philox makes the same bits without TensorFlow.
    """
    draw_normal = _truncated_normal_tf if keras.backend.backend() == "tensorflow" else _truncated_normal_np
    values = []
    for j, v in enumerate(model.trainable_variables):
        shape = tuple(v.shape)
        if len(shape) == 1:  # bias
            values.append(np.zeros(shape, np.float32))
            continue
        fan_in = math.prod(shape[:-1])
        std = math.sqrt(1.0 / fan_in) / 0.87962566103423978
        values.append(draw_normal(shape, seed, j, std))
    return values


def _truncated_normal_tf(shape, seed, j, std):
    import tensorflow as tf
    draw = tf.random.stateless_truncated_normal(shape, seed=[seed, j], dtype=tf.float32)
    return (draw * std).numpy()


def _truncated_normal_np(shape, seed, j, std):
    """`_truncated_normal_tf`'s bits without TensorFlow (float32 product, as TensorFlow's)."""
    from . import philox
    return philox.stateless_truncated_normal(shape, (seed, j)) * np.float32(std)
