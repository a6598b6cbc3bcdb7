"""PNG screenshots of an HTML email with headless Chromium (Debian's ``chromium``).

Chromium runs once per screenshot with its own throw-away profile folder and
every background service turned off, so it never phones home and two runs
never share state.  Remote images are not fetched when the machine is offline;
the layout is still what a reader sees.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tailormail.errors import TailormailError

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
"""Executables tried in order on PATH (then /usr/bin/chromium)."""

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--mute-audio",
)


@dataclass(frozen=True)
class Viewport:
    """A screen a reader looks at the email on."""

    name: str
    width: int
    height: int


VIEWPORTS = (Viewport("desktop", 600, 1400), Viewport("mobile", 375, 1400))
"""600 px is the classic email width; 375 px is a common phone width."""


def find_chromium() -> str | None:
    """The Chromium executable, or None when none is installed."""
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None


def screenshot(chromium: str, html_file: Path, png_file: Path, viewport: Viewport, timeout_s: float = 60.0) -> Path:
    """Write a PNG of ``html_file`` at ``viewport``; raise TailormailError when Chromium fails."""
    with tempfile.TemporaryDirectory(prefix="tailormail-chromium-") as profile:
        command = [
            chromium,
            *FLAGS,
            f"--user-data-dir={profile}",
            f"--screenshot={png_file.resolve()}",
            f"--window-size={viewport.width},{viewport.height}",
            html_file.resolve().as_uri(),
        ]
        try:
            done = subprocess.run(command, capture_output=True, timeout=timeout_s, check=False)
        except subprocess.TimeoutExpired as error:
            raise TailormailError(f"Chromium took over {timeout_s:.0f} s on {html_file.name}") from error
    if done.returncode != 0 or not png_file.exists():
        detail = done.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no output"]
        raise TailormailError(f"Chromium could not screenshot {html_file.name}: {detail[0]}", hint=f"ran {chromium}")
    trim_bottom(png_file)
    return png_file


def trim_bottom(png_file: Path, margin: int = 24) -> None:
    """Cut the empty band below the email (the window is taller than most emails)."""
    from PIL import Image, ImageChops

    with Image.open(png_file) as image:
        rgb = image.convert("RGB")
    background = Image.new("RGB", rgb.size, rgb.getpixel((rgb.width - 1, rgb.height - 1)))
    box = ImageChops.difference(rgb, background).getbbox()
    if box is not None and box[3] + margin < rgb.height:
        rgb.crop((0, 0, rgb.width, box[3] + margin)).save(png_file)


def png_size(png_file: Path) -> tuple[int, int]:
    """(width, height) read from a PNG's header."""
    header = png_file.read_bytes()[:24]
    return int.from_bytes(header[16:20], "big"), int.from_bytes(header[20:24], "big")
