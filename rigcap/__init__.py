"""rigcap: markerless multi-camera motion capture.

The packages ``calibration``, ``triangulate``, ``capture`` and ``viewer`` hold
the work; this package holds only the command line and the shared error type,
so importing it never pulls in OpenCV, ZeroMQ or Open3D.
"""

__version__ = "0.1.0"
