"""What a file handed in as weights is, read without unpickling it.

``torch.load(weights_only=True)`` refuses everything that is not tensors in plain containers,
but its refusal says only "unpickling error", whatever the file was. These functions look at
the bytes (never executing any) so the refusal can say what the file is instead:

- a checkpoint is a zip archive (``torch.save`` since PyTorch 1.6), a pickle stream (the legacy
  format of PyTorch 0.2-1.5: magic number, protocol, system info, then the object, each a
  protocol-2 pickle) or, from before 0.1.10, a tar archive; anything else (a JPEG, a text file)
  is no checkpoint at all;
- a pickled whole model (``torch.save(model)``, such as CSAIL's ``whole_resnet18_places365.pth.tar``)
  names its module classes as pickle globals (``torchvision.models.resnet.ResNet``,
  ``torch.nn.modules.conv.Conv2d``); unpickling it would import and run that code.
"""

from __future__ import annotations

import pickletools
import zipfile
from pathlib import Path

ZIP, PICKLE, TAR = "zip", "pickle", "tar"

_OTHER_KINDS = (
    (b"\xff\xd8\xff", "a JPEG image"), (b"\x89PNG", "a PNG image"), (b"GIF8", "a GIF image"),
    (b"%PDF", "a PDF document"), (b"\x1f\x8b", "a gzip archive"), (b"\x89HDF", "an HDF5 file (Keras weights?)"),
    (b"RIFF", "a RIFF file (WebP, WAV or AVI)"), (b"\x00\x00\x00", "a video or other binary file"),
)
_LEGACY_PICKLES = 4  # magic number, protocol version, system info, the object
_PLAIN_MODULES = ("torch._utils", "torch.", "collections", "builtins", "_codecs", "copyreg", "numpy")


def checkpoint_kind(path: Path) -> str | None:
    """ZIP, PICKLE or TAR for what torch.load can read, None for anything else."""
    with open(path, "rb") as handle:
        head = handle.read(512)
    if head.startswith(b"PK\x03\x04"):
        return ZIP
    if head[:1] == b"\x80":  # PROTO opcode: a pickle of protocol 2 or later
        return PICKLE
    if head[257:262] == b"ustar":
        return TAR
    return None


def describe_non_checkpoint(path: Path) -> str:
    """What the bytes look like, for the message that refuses them."""
    with open(path, "rb") as handle:
        head = handle.read(512)
    if not head:
        return "an empty file"
    for magic, what in _OTHER_KINDS:
        if head.startswith(magic):
            return what
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return "neither a zip archive nor a pickle stream"
    return "a text file"


def _globals_in(stream: object) -> list[str]:
    """The 'module.name' of every GLOBAL / STACK_GLOBAL in one pickle, read opcode by opcode (nothing runs)."""
    found, strings = [], []
    for opcode, arg, _ in pickletools.genops(stream):
        if opcode.name == "GLOBAL":
            found.append(str(arg).replace(" ", "."))
        elif opcode.name == "STACK_GLOBAL" and len(strings) >= 2:
            found.append(f"{strings[-2]}.{strings[-1]}")
        elif isinstance(arg, str) and ("UNICODE" in opcode.name or "STRING" in opcode.name):
            strings.append(str(arg))
    return found


def pickled_globals(path: Path) -> list[str]:
    """Every global the file's pickles name, in order; what cannot be parsed ends the list."""
    found: list[str] = []
    try:
        if checkpoint_kind(path) == ZIP:
            with zipfile.ZipFile(path) as archive:
                name = next((n for n in archive.namelist() if n.endswith("data.pkl")), None)
                if name is not None:
                    with archive.open(name) as stream:
                        found += _globals_in(stream)
        else:
            with open(path, "rb") as stream:
                for _ in range(_LEGACY_PICKLES):
                    found += _globals_in(stream)
    except (ValueError, EOFError, OSError, zipfile.BadZipFile, UnicodeDecodeError):
        pass  # a damaged or cut pickle: what was read so far is all there is
    return found


def pickled_model_class(path: Path) -> str | None:
    """The class of a pickled whole model (its first non-torch global), or None if the file is no pickled module."""
    names = pickled_globals(path)
    if not any(name.startswith("torch.nn.modules.") for name in names):
        return None
    return next((name for name in names if not name.startswith(_PLAIN_MODULES)),
                next(name for name in names if name.startswith("torch.nn.modules.")))
