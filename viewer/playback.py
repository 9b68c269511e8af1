"""The replay timeline: where playback is, as plain state (no window), so it is tested directly.

The window's buttons and slider only call :meth:`Playback.toggle`,
:meth:`Playback.step`, :meth:`Playback.seek` and set :attr:`Playback.speed`;
every tick the window calls :meth:`Playback.advance` with the wall-clock time
elapsed and shows :attr:`Playback.frame`.
"""

from __future__ import annotations

from dataclasses import dataclass

SPEEDS = (0.1, 0.25, 0.5, 1.0, 2.0, 4.0)
MAX_TICK_S = 0.1  # a stalled tick (window dragged, machine busy) never jumps playback ahead by more


@dataclass
class Playback:
    """``n_frames`` at ``fps``; loops by default.  ``playhead`` is in seconds of recorded time."""

    n_frames: int
    fps: float
    loop: bool = True
    playing: bool = True
    speed: float = 1.0
    playhead: float = 0.0

    @property
    def frame(self) -> int:
        i = int(self.playhead * self.fps + 1e-6)
        return i % self.n_frames if self.loop else min(max(i, 0), self.n_frames - 1)

    def advance(self, wall_dt: float) -> int:
        """Move on by ``wall_dt`` seconds of wall clock times :attr:`speed` (when playing); the frame."""
        if self.playing:
            self.playhead += min(max(wall_dt, 0.0), MAX_TICK_S) * self.speed
            if not self.loop and self.playhead * self.fps >= self.n_frames - 1:
                self.playhead = (self.n_frames - 1) / self.fps
                self.playing = False
            elif self.loop:
                self.playhead %= self.n_frames / self.fps
        return self.frame

    def seek(self, frame: int) -> int:
        """Jump to ``frame`` (clamped to the file), keeping play/pause as it is."""
        self.playhead = min(max(int(frame), 0), self.n_frames - 1) / self.fps
        return self.frame

    def step(self, frames: int) -> int:
        """Pause and move ``frames`` frames (negative: back); wraps when looping."""
        self.playing = False
        target = self.frame + int(frames)
        return self.seek(target % self.n_frames if self.loop else target)

    def toggle(self) -> bool:
        self.playing = not self.playing
        return self.playing
