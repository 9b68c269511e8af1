"""Robust multi-view triangulation, filtering, skeletons, file formats and exports.

Imports :mod:`calibration` (the camera model) and nothing else of rigcap's.
"""
