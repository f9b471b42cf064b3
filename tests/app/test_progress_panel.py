"""The live progress panel redraws a running job every POLL_SECONDS: those redraws must stay cheap."""

from __future__ import annotations

import torch
from PIL import Image
from streamlit.testing.v1 import AppTest

from dashboard import progress

SLOT = "panel.job"


def _panel_page() -> None:
    from dashboard import progress

    progress.panel("panel.job", on_done=lambda result: None)


def _counted(save, encodes: list[tuple[int, int]]):
    def counted(image, fp, filename, *args, **kwargs):
        encodes.append(image.size)
        return save(image, fp, filename, *args, **kwargs)
    return counted


def test_the_panel_encodes_each_preview_once_however_often_it_redraws(monkeypatch):
    """Each redraw used to hand the same preview to st.image as a picture, which Streamlit encoded
    again (JPEG): twice a second for the same pixels. Now a preview is encoded when it is new."""
    Image.init()
    encodes: list[tuple[int, int]] = []
    for kind in ("PNG", "JPEG"):
        monkeypatch.setitem(Image.SAVE, kind, _counted(Image.SAVE[kind], encodes))
    start = torch.rand(3, 48, 64, generator=torch.Generator().manual_seed(0))
    job = progress.Job("Dreaming", status="running", total=40, preview=start)
    at = AppTest.from_function(_panel_page, default_timeout=60)
    at.session_state[SLOT] = job
    for _ in range(3):  # three polls of the same start image
        at.run()
        assert not at.exception, at.exception
    assert at.image[0].value is not None
    assert encodes == [(64, 48)]

    job.on_step(5, 40, torch.rand(3, 24, 32, generator=torch.Generator().manual_seed(1)))
    job.on_step(6, 40, None)  # a step without a preview keeps the last one
    for _ in range(3):
        at.run()
    assert encodes == [(64, 48), (32, 24)]
