"""leanecd: lean CNNs on 2-point autocorrelations of DFT electron charge densities.

The companion library of the book. One module per pipeline step::

    io -> cells -> renormalize -> correlations -> models/train -> metrics/plots

with ``data`` (datasets) and ``dft`` (the project's own GPAW dataset generator).
"""

__version__ = "0.1.0"
