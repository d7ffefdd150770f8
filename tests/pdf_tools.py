"""PDF checks for tests: rasterize with pdftoppm and measure ink, extract text with pdftotext (Debian
poppler-utils). Missing tools skip the test locally and fail it under CI=true."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _need_poppler() -> None:
    if shutil.which("pdftoppm") is None:
        if _CI:
            pytest.fail("CI=true but pdftoppm is missing (install Debian poppler-utils)")
        pytest.skip("pdftoppm not installed (Debian poppler-utils); PDF pages cannot be rasterized")


def ink_per_page(pdf_path, tmp_path) -> list[float]:
    """Share of non-white pixels of each page, rasterized by pdftoppm (greyscale PGM read by hand)."""
    _need_poppler()
    prefix = tmp_path / f"page_{pdf_path.stem}"
    subprocess.run(["pdftoppm", "-r", "40", "-gray", str(pdf_path), str(prefix)], check=True, timeout=60)
    shares = []
    for page in sorted(tmp_path.glob(f"{prefix.name}-*.pgm")):
        data = page.read_bytes()
        head = re.match(rb"P5\s+(\d+)\s+(\d+)\s+255\s", data)  # binary greyscale, 8 bits
        assert head, data[:20]
        w, h = int(head.group(1)), int(head.group(2))
        pixels = data[head.end():head.end() + w * h]
        assert len(pixels) == w * h
        dark = w * h - len(pixels.translate(None, bytes(range(200))))  # pixels darker than light grey
        shares.append(dark / (w * h))
    return shares


def pdf_text(pdf_path) -> str:
    _need_poppler()
    return subprocess.run(["pdftotext", "-enc", "UTF-8", str(pdf_path), "-"], check=True, capture_output=True,
                          text=True, timeout=60).stdout
