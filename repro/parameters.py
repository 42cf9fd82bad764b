"""Trainable-parameter counts of repro.models' networks, in closed form and without TensorFlow.

`repro plan` prints them; importing Keras only to count weights whose number follows from the
layer sizes cost seconds per call. The formulas mirror repro.models layer by layer and
tests/test_parameters.py checks them against the built Keras models for every input shape a
spec can name (and a few more), so a change to one side that the other misses fails there.
"""


def _conv(k, c_in, c_out):
    """A k x k convolution with bias."""
    return k * k * c_in * c_out + c_out


def _dense(n_in, n_out):
    return n_in * n_out + n_out


def simple_cnn(input_shape, classes=10):
    """conv5x5-32 VALID, pool 2, conv5x5-64 VALID, pool 2, flatten, dense (models.simple_cnn)."""
    h, w, c = input_shape
    for _ in range(2):  # a VALID 5x5 convolution loses 4 pixels, a 2x2/2 VALID pool halves (floor)
        h, w = (h - 4) // 2, (w - 4) // 2
    if h < 1 or w < 1:
        raise ValueError(f"simple_cnn needs inputs of at least 12 x 12 pixels, got {input_shape}")
    return _conv(5, c, 32) + _conv(5, 32, 64) + _dense(h * w * 64, classes)


def resnet8(input_shape, classes=10, base=16):
    """Stem, an identity block and two stride-2 blocks, global pooling, dense (models.resnet8).

    The shortcuts (average pooling, zero channels) have no weights and the global pooling
    removes the spatial size: only the channel count of the input matters."""
    c = input_shape[-1]
    n = _conv(3, c, base) + 2 * _conv(3, base, base)
    f_in = base
    for filters in (2 * base, 4 * base):
        n += _conv(3, f_in, filters) + _conv(3, filters, filters)
        f_in = filters
    return n + _dense(f_in, classes)


COUNTS = {"simple_cnn": simple_cnn, "resnet8": resnet8}


def parameter_count(name, input_shape):
    """Trainable parameters of model `name` ("simple_cnn" | "resnet8") on `input_shape` (H, W, C)."""
    if name not in COUNTS:
        raise ValueError(f"unknown model {name!r}: known {', '.join(COUNTS)}")
    return COUNTS[name](tuple(input_shape))
