"""Camera model, rig file and ChArUco calibration.

Imports none of rigcap's other packages: every other stage builds on this one.
"""

from calibration.camera import Camera
from calibration.rig import Rig
from calibration.rigfile import load_rig, save_rig

__all__ = ["Camera", "Rig", "load_rig", "save_rig"]
