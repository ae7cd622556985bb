"""The simulator's data folder (input/output/temp) and ComfyUI's output file naming."""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from dataclasses import dataclass, field

from PIL import Image, ImageDraw

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff")


@dataclass
class DataDirs:
    """Folders the simulator reads and writes, like ComfyUI's --input/--output/--temp dirs."""

    root: str
    owns_root: bool = False
    _counters: dict[tuple[str, str], int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def create(cls, root: str | None) -> DataDirs:
        """Use `root` (created if needed) or a fresh temporary folder."""
        owns = root is None
        path = os.path.abspath(root or tempfile.mkdtemp(prefix="comfysim-"))
        dirs = cls(path, owns)
        for sub in ("input", "output", "temp"):
            os.makedirs(os.path.join(path, sub), exist_ok=True)
        dirs.wipe_temp()
        dirs.seed_example()
        return dirs

    @property
    def input(self) -> str:
        return os.path.join(self.root, "input")

    @property
    def output(self) -> str:
        return os.path.join(self.root, "output")

    @property
    def temp(self) -> str:
        return os.path.join(self.root, "temp")

    def by_type(self, kind: str | None) -> str | None:
        """Folder for a /view or /upload `type` value (None for unknown types)."""
        return {"input": self.input, "output": self.output, "temp": self.temp}.get(kind or "")

    def wipe_temp(self) -> None:
        """ComfyUI empties its temp folder at start-up."""
        shutil.rmtree(self.temp, ignore_errors=True)
        os.makedirs(self.temp, exist_ok=True)
        with self._lock:
            self._counters = {k: v for k, v in self._counters.items() if k[0] != self.temp}

    def seed_example(self) -> None:
        """Real ComfyUI ships input/example.png; make a small stand-in if missing."""
        path = os.path.join(self.input, "example.png")
        if not os.path.exists(path):
            img = Image.new("RGB", (64, 64), (40, 90, 160))
            ImageDraw.Draw(img).ellipse((12, 12, 52, 52), fill=(240, 200, 60))
            img.save(path, format="PNG")

    def input_images(self) -> list[str]:
        """LoadImage's combo list: top-level image files of the input folder, sorted."""
        try:
            names = os.listdir(self.input)
        except FileNotFoundError:
            return []
        return sorted(
            n
            for n in names
            if n.lower().endswith(IMAGE_EXTENSIONS) and os.path.isfile(os.path.join(self.input, n))
        )

    def annotated_input(self, name: str) -> str:
        """Path of a LoadImage value; 'name [output]' / '[temp]' pick another folder."""
        base = self.input
        for tag, folder in (
            (" [output]", self.output),
            (" [temp]", self.temp),
            (" [input]", self.input),
        ):
            if name.endswith(tag):
                name, base = name[: -len(tag)], folder
        return os.path.join(base, name)

    def reserve(self, base_dir: str, prefix: str, count: int) -> tuple[str, str, str, int]:
        """Reserve `count` file numbers for `prefix`; return (folder, subfolder, name, first)."""
        subfolder, filename = os.path.split(os.path.normpath(prefix))
        subfolder = subfolder.replace("\\", "/")
        folder = os.path.abspath(os.path.join(base_dir, subfolder))
        if os.path.commonpath((base_dir, folder)) != base_dir:
            raise ValueError(
                "**** ERROR: Saving image outside the output folder is not allowed."
                f"\n full_output_folder: {folder}\n         output_dir: {base_dir}"
                f"\n         commonpath: {os.path.commonpath((base_dir, folder))}"
            )
        key = (base_dir, os.path.join(subfolder, filename))
        with self._lock:
            first = self._counters.get(key)
            if first is None:
                # Scan once, then count in memory: a directory scan per save would be O(n^2).
                first = _highest_counter(folder, filename) + 1
            self._counters[key] = first + count
        os.makedirs(folder, exist_ok=True)
        return folder, subfolder, filename, first

    def cleanup(self) -> None:
        """Remove the folder if the simulator created it."""
        if self.owns_root:
            shutil.rmtree(self.root, ignore_errors=True)


def _highest_counter(folder: str, filename: str) -> int:
    """The largest N of files named `<filename>_<N>_...` in `folder` (0 if none).

    Plain string tests rather than a regex: every prompt may bring a new
    prefix, and compiling a pattern per prefix cost more than the scan.
    """
    head = filename + "_"
    best = 0
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return 0
    for name in names:
        if name.startswith(head):
            digits, sep, _ = name[len(head) :].partition("_")
            if sep and digits.isdecimal():
                best = max(best, int(digits))
    return best
