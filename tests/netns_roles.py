"""The two hosts of tests/test_netns_hosts.py, each run in its own network namespace (``ip netns exec``).

``camera SUB_ENDPOINT SECONDS [SECRET SERVER_PUBLIC]``: a camera host: a Backbone (its XPUB on
SUB_ENDPOINT, a CURVE client when keys are given) and a Publisher sending a 2-camera synthetic studio's
kp2d at 30 fps for SECONDS.  ``fusion SUB_ENDPOINT SECONDS SECRET ALLOWED_DIR``: the fusion machine: a
FusionNode (CURVE server with the allow-list) for SECONDS, then its counts as one JSON line.
"""

from __future__ import annotations

import json
import sys
import time

FPS = 30.0


def studio():
    from rigcap.studio.studio import SyntheticStudio

    return SyntheticStudio(n_cameras=2, fps=FPS, duration_s=20.0, seed=3)


def camera(sub_endpoint: str, seconds: float, keys_args: list[str]) -> None:
    from rigcap.wire import Backbone, Publisher, free_tcp_endpoint
    from rigcap.wire.security import ClientKeys

    keys = ClientKeys(*keys_args) if keys_args else None
    pub_endpoint = free_tcp_endpoint()  # on this host's loopback: the cameras publish into the backbone
    st = studio()
    with Backbone(pub_endpoint, sub_endpoint, keys=keys):
        pub = Publisher(pub_endpoint)
        t0 = time.monotonic()
        f = 0
        while time.monotonic() - t0 < seconds:
            now = time.time_ns()
            for c, cam in enumerate(st.rig.names):
                pub.publish_kp2d(cam, f, now, st.keypoints(c, f % st.n_frames)[None], st.skeleton)
            f += 1
            time.sleep(max(0.0, t0 + f / FPS - time.monotonic()))
        pub.close()
    print(json.dumps({"frames_sent": f}), flush=True)


def fusion(sub_endpoint: str, seconds: float, secret: str, allowed: str) -> None:
    from rigcap.wire import free_tcp_endpoint
    from rigcap.wire.security import ServerKeys
    from triangulate.fusion_node import FusionNode
    from triangulate.fusion_options import FusionOptions

    import numpy as np

    st = studio()
    errors_m = []

    def against_truth(inst, node):  # the fused joints vs the studio's exact 3D of that frame
        frame = inst.frames[inst.cameras[0]] % st.n_frames
        d = np.linalg.norm(inst.raw_points - st.points3d[frame], axis=-1)
        errors_m.append(d[np.isfinite(d)])

    node = FusionNode(st.rig, sub_endpoint, free_tcp_endpoint(), FusionOptions(fps=FPS, smoothing=False),
                      skeleton=st.skeleton, keys=ServerKeys(secret, allowed), instant_hooks=[against_truth])
    s = node.run(duration_s=seconds)
    out = {k: s[k] for k in ("messages_in", "instants_out", "auth_refused", "malformed")}
    out["mpjpe_mm"] = 1000 * float(np.mean(np.concatenate(errors_m))) if errors_m else None
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    role, endpoint, secs, *rest = sys.argv[1:]
    (camera if role == "camera" else fusion)(endpoint, float(secs), *([rest] if role == "camera" else rest))
