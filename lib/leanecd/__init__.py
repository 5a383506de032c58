"""leanecd: lean CNNs on 2-point autocorrelations of DFT electron charge densities.

The companion library of the book. One module per pipeline step::

    data -> field/io -> cells -> renormalize -> correlations -> models/train -> runs -> metrics/tables/plots

with ``registry`` (model, target and source names), ``splits`` (test split and folds),
``baselines``, and ``dft`` (the project's own GPAW dataset generator). The book's
appendix "the library, a map" (``book/library.md``) draws the whole house.
"""

__version__ = "0.1.0"
