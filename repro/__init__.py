"""repro: reproduce Lee et al. (ICLR 2021), "Understanding the Effects of Data
Parallelism and Sparsity on Neural Network Training", from declarative specs."""

__version__ = "0.1.0"
