"""PDF checks for tests: rasterize each page and measure ink, extract the text -- with PDFium through
pypdfium2 (a locked dev dependency whose wheel bundles the library: no system package needed)."""

from __future__ import annotations

import numpy as np
import pypdfium2 as pdfium

DPI = 40


def ink_per_page(pdf_path, tmp_path=None) -> list[float]:
    """Share of non-white pixels (darker than light grey) of each page, rendered in greyscale at 40 dpi."""
    doc = pdfium.PdfDocument(str(pdf_path))
    try:
        shares = []
        for page in doc:
            bitmap = page.render(scale=DPI / 72, grayscale=True)
            pixels = np.asarray(bitmap.to_numpy())
            if pixels.ndim == 3:  # some builds hand back a channel axis even for greyscale
                pixels = pixels.min(axis=2)
            shares.append(float((pixels < 200).mean()))
            bitmap.close()
            page.close()
        return shares
    finally:
        doc.close()


def pdf_text(pdf_path) -> str:
    """The text of every page, pages separated by form feeds (as pdftotext does)."""
    doc = pdfium.PdfDocument(str(pdf_path))
    try:
        parts = []
        for page in doc:
            text = page.get_textpage()
            parts.append(text.get_text_range())
            text.close()
            page.close()
        return "\f".join(parts)
    finally:
        doc.close()
