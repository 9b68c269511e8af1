"""Open3D scene of a rig and a skeleton: live, replay and headless snapshots."""
