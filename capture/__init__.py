"""Camera sources, the 2D pose model, the ZeroMQ wire protocol, per-camera
processes, session recording, supervision, and the synthetic studio."""
