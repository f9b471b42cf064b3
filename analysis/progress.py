"""Progress: the one vocabulary every long loop reports in, and a relay from a part's steps to the whole.

Every long run (a dream, a comparison, a study, a video, a featviz render) takes an OnStep,
called as on_step(step, total, preview) after each unit of work, and a ShouldCancel, polled
between units. The CLI's tqdm bar (analysis.cli) and the dashboard's run panel
(dashboard/progress.py) are its two consumers, so a new capability that speaks these two
types gets both for free.

A run made of parts (compare's two models, the stats' models, bias' images, an animation's
frames, featviz's batches, a grid replay's cells, a video's frames, a sequential layer sweep)
hands each part an OnStep from one Relay. The whole then reports a single count that only
rises and ends at its total, whatever each part believes its own total is. Cancelling needs
no relay: each part polls the very ShouldCancel the whole was given, so a cancel stops the
part in flight and the caller stops before the next one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

OnStep = Callable[[int, int, "torch.Tensor | None"], None]
"""on_step(step, total, preview): `step` of `total` done; preview, when not None, a (3, H, W) picture in [0, 1]."""

ShouldCancel = Callable[[], bool]
"""should_cancel(): True once the user asked to stop; a loop polls it between units of work."""


@dataclass(frozen=True)
class Relay:
    """One progress count over a whole run, fed by its parts. Does nothing when on_step is None."""

    on_step: OnStep | None
    total: int

    def report(self, done: int, preview: torch.Tensor | None = None) -> None:
        """The whole has `done` of its steps behind it (the caller's own marks: a finished frame, a resumed part)."""
        if self.on_step is not None:
            self.on_step(done, self.total, preview)

    def part(self, offset: int, span: int, previews: bool = True, last: bool = True) -> OnStep | None:
        """An OnStep for the part that covers steps offset + 1 .. offset + span of the whole.

        The part's step s of its own total t becomes offset + ceil(s * span / t): a part need not
        count in the whole's units (dream_batch counts one octave loop when it batches and one per
        image when it does not), and still ends exactly at offset + span. With t == span it is
        offset + s. previews=False drops the part's previews; last=False holds back its final step
        for a caller that reports it itself (report), with the finished picture as the preview.
        """
        on_step, total = self.on_step, self.total
        if on_step is None:
            return None

        def relayed(step: int, part_total: int, preview: torch.Tensor | None) -> None:
            if not last and step >= part_total:
                return
            on_step(offset + -(-step * span // max(1, part_total)), total, preview if previews else None)

        return relayed

    def nth(self, index: int, per_part: int, previews: bool = True, last: bool = True) -> OnStep | None:
        """The OnStep of part `index` (from 0) when every part is `per_part` steps of the whole."""
        return self.part(index * per_part, per_part, previews, last)
