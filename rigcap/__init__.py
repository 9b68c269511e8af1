"""rigcap: markerless multi-camera motion capture.

The work lives in the design card's packages ``calibration``, ``triangulate``,
``capture`` and ``viewer``.  This package holds two floors:

* the ground floor every package may import: :mod:`rigcap.errors` (the shared
  error types) and :mod:`rigcap.wire` (the ZeroMQ protocol), which import none
  of the packages; and :mod:`rigcap.studio` (the synthetic studio), which sits
  on ``calibration`` and ``triangulate`` and is imported by ``capture`` (the
  synthetic camera) and by tests and benchmarks;
* the top floor that wires the packages together: :mod:`rigcap.live_session`,
  :mod:`rigcap.demo` and the command line (:mod:`rigcap.cli`,
  ``rigcap/commands/``).

Importing ``rigcap`` itself pulls in nothing heavy (no OpenCV, ZeroMQ, Open3D).
"""

__version__ = "0.1.0"
