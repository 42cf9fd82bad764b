"""How numbers appear in a verdict's text: sparsities, table cells, a statistic with its interval.
The numbers are repro.fmt's (`fixed`): a value that is not there reads fmt.MISSING, as on the
report."""
from .. import fmt as fmt_mod


def fmt_s(s):
    """Sparsity as a short string: 0.9 -> '0.9'."""
    return f"{float(s):g}"


def fmt(x, digits=2):
    """A number for a table cell: `digits` decimals (repro.fmt.fixed)."""
    return fmt_mod.fixed(x, digits=digits)


def fmt_iv(stat, iv, digits=2):
    """'0.84 [0.71, 0.97]': a statistic with its interval."""
    return f"{fmt(stat, digits)} [{fmt(iv[0], digits)}, {fmt(iv[1], digits)}]"
