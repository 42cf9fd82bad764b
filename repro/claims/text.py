"""How numbers appear in a verdict's text: sparsities, table cells, a statistic with its interval."""
import math


def fmt_s(s):
    """Sparsity as a short string: 0.9 -> '0.9'."""
    return f"{float(s):g}"


def fmt(x, digits=2):
    """A number for a table cell."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "nan"
    if isinstance(x, float) and math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return f"{x:.{digits}f}"


def fmt_iv(stat, iv, digits=2):
    """'0.84 [0.71, 0.97]': a statistic with its interval."""
    return f"{fmt(stat, digits)} [{fmt(iv[0], digits)}, {fmt(iv[1], digits)}]"
