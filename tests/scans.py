"""Test scans for the batch tests: OpenScan-named synthetic stacks with EXIF and ICC."""
from __future__ import annotations

import functools
import hashlib
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image, ImageCms, TiffImagePlugin

SHAPE = (64, 80)
N_FRAMES = 4
FAST = dict(scale_factor=1, device="cpu")


@functools.cache
def frames_for(seed: int, gray: bool = False, dtype=np.uint8) -> tuple:
    from napari_focus_stack.synthetic import make_stack

    return tuple(make_stack("pcb", shape=SHAPE, n_frames=N_FRAMES, seed=seed, gray=gray, dtype=dtype).frames)


@functools.cache
def srgb_icc() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def camera_exif(orientation: int | None = None) -> bytes:
    ex = Image.Exif()
    ex[0x010F] = "OpenScan"  # Make
    ex[0x0110] = "Arducam IMX519"  # Model
    ex.get_ifd(0x8769)[0x920A] = TiffImagePlugin.IFDRational(474, 100)  # FocalLength 4.74 mm
    if orientation:
        ex[0x0112] = orientation
    return ex.tobytes()


def save_frame(path: Path, frame: np.ndarray, orientation: int | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() in (".tif", ".tiff"):
        tifffile.imwrite(path, frame, photometric="rgb" if frame.ndim == 3 else "minisblack")
    else:
        Image.fromarray(frame).save(path, quality=95, exif=camera_exif(orientation), icc_profile=srgb_icc())
    return path


def make_scan(folder: Path, poses=3, name="Ella_0", ext="jpg", orientation=None, first_pose=0) -> list[Path]:
    """OpenScan-named frames ``<name>_<pose>-<frame>.<ext>``, one synthetic stack per pose."""
    paths = []
    for pose in range(first_pose, first_pose + poses):
        for i, frame in enumerate(frames_for(pose % 3), start=1):
            paths.append(save_frame(folder / f"{name}_{pose}-{i}.{ext}", frame, orientation))
    return paths


def outputs(folder: Path) -> dict[str, bytes]:
    """Result files (not inputs, reports or state) by name."""
    return {
        p.name: p.read_bytes()
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and "-" not in p.stem and not p.name.startswith("batch-report")
    }


def digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def by_stack(result) -> dict[str, dict]:
    return {e["stack"]: e for e in result.stacks}


def temp_files(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.startswith(".") and p.is_file()]


def truncate(path: Path) -> None:
    """Cut a file in half, as an interrupted copy does."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def openscan3_position(folder: Path, position: int, scan: int = 1, seed: int | None = None) -> list[Path]:
    """The frames of one OpenScan3 position, ``scanNN_PPP_fsKK.jpg``, in `folder`.

    Synthetic; each seed (default: the position, modulo 3) has its own scene and frame-to-frame motion.
    """
    return [
        save_frame(folder / f"scan{scan:02d}_{position:03d}_fs{k:02d}.jpg", frame)
        for k, frame in enumerate(frames_for(position % 3 if seed is None else seed))
    ]


def stacked(out: Path, position: int, scan: int = 1, ext: str = "jpg") -> Path:
    """Where a batch with OpenScan naming writes an OpenScan3 position, `out` being the project folder."""
    return out / f"scan{scan:02d}" / "stacked" / f"stacked_scan{scan:02d}_{position:03d}.{ext}"


def hidden_files(folder: Path) -> list[str]:
    """Temporary (hidden) files anywhere below `folder`, the state folder included (its own files are not hidden)."""
    return [str(p.relative_to(folder)) for p in folder.rglob(".*") if p.is_file()]
