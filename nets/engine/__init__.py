"""The spectra engine: Hessian-vector products, blocks, Lanczos, SLQ, densities, JS, results files.

It knows nothing of the model zoo or the training studies; :mod:`nets` re-exports its public API.
"""
