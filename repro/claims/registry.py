"""Every claim the tool can check, listed by hand. Their names are the claim vocabulary of
``repro.spec.CLAIMS`` (a spec's ``claims`` list is checked against it); a test keeps the two
equal. The order is the order ``verify --table`` checks them in by default."""
from . import kstar, metaparams, smoothness, sparsity
from .base import Claim

REGISTRY: dict[str, Claim] = {c.name: c for c in (
    kstar.LINEAR_SCALING,
    kstar.PLATEAU,
    kstar.DIMINISHING_RETURNS,
    sparsity.SPARSE_SLOWER,
    sparsity.SPARSE_C1_LARGER,
    sparsity.SPARSE_RATIO_BAND,
    sparsity.SPARSE_CRITICAL_BATCH_NO_SMALLER,
    sparsity.C1_INCREASING_WITH_SPARSITY,
    metaparams.BEST_LR_NONDECREASING,
    metaparams.MOMENTUM_BEATS_SGD,
    metaparams.FEASIBLE_LR_RANGE_SHRINKS,
    smoothness.LIPSCHITZ_INCREASING,
    smoothness.C1_DECOMPOSITION,
    smoothness.NOISE_SCALE_VS_CRITICAL_BATCH,
    smoothness.SPARSE_LOSS_HIGHER,
)}

# Claims a K* table alone can decide (``verify --table``): no per-trial metaparameters,
# no smoothness runs, no second panel.
TABLE_CLAIMS = tuple(name for name, c in REGISTRY.items() if c.table_ok)
SMOOTHNESS_CLAIMS = tuple(name for name, c in REGISTRY.items() if c.smoothness)
# claim -> {key: (types, required)}; `source` and `why` are required for every claim.
GOLDEN_SCHEMA = {name: dict(c.tolerance_schema) for name, c in REGISTRY.items()}


def get(name):
    """The Claim called `name`, or None when no check of that name exists."""
    return REGISTRY.get(name)
