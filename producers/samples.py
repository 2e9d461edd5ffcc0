"""Sample bills rendered from text: for the demo, benchmarks and tests (known content)."""
from __future__ import annotations

import io
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
)


def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    for candidate in FONT_CANDIDATES:
        if Path(candidate).exists():
            return ImageFont.truetype(candidate, size)
    return ImageFont.load_default(size=size)  # Pillow's bundled scalable font


def render_bill(lines: list[str], *, size: int = 22, width: int = 560, fmt: str = "PNG") -> bytes:
    face = font(size)
    line_height = int(size * 1.6)
    page = Image.new("L", (width, 40 + line_height * len(lines)), 255)
    draw = ImageDraw.Draw(page)
    for row, text in enumerate(lines):
        draw.text((24, 20 + row * line_height), text, fill=0, font=face)
    buffer = io.BytesIO()
    page.save(buffer, fmt)
    return buffer.getvalue()


SHOPS = ("GOLDEN MART SDN BHD", "KEDAI RUNCIT AH SENG", "RESTORAN NASI KANDAR 99", "MR. HARDWARE TRADING",
         "BAKERY CORNER (KL) SDN BHD", "SPEED PHARMACY")
ADDRESSES = (("NO. 12, JALAN MAJU 3,", "81100 JOHOR BAHRU, JOHOR."), ("LOT 5, JALAN SS 6/5,", "47301 PETALING JAYA."),
             ("NO. 8, TAMAN DAYA,", "43200 CHERAS, SELANGOR."))
ITEMS = (("MILO 1KG", 18.90), ("BREAD WHOLEMEAL", 3.20), ("NASI LEMAK", 4.50), ("TEH TARIK", 2.00),
         ("PVC PIPE 1/2IN", 7.80), ("PANADOL 10S", 6.30), ("EGGS GRADE A 10", 5.60), ("MINERAL WATER", 1.20))


def sample_bill_lines(index: int, run: int = 0) -> list[str]:
    """A plausible receipt: shop, address, invoice, date, items, total (deterministic per index and run)."""
    shop = SHOPS[index % len(SHOPS)]
    picked = [ITEMS[(index * 3 + k) % len(ITEMS)] for k in range(2 + index % 3)]
    total = sum(price for _, price in picked)
    street, town = ADDRESSES[index % len(ADDRESSES)]
    lines = [shop, street, town, f"INVOICE NO: {run % 100000:05d}-{index + 1}",
             f"DATE: {1 + index % 28:02d}/03/2018 10:{index % 60:02d}"]
    lines += [f"{name} {price:.2f}" for name, price in picked]
    lines += [f"TOTAL: {total:.2f}", "THANK YOU"]
    return lines


def sample_bills(count: int, run: int = 0) -> list[bytes]:
    """``run`` varies the invoice numbers, so each demo run sends images never seen before."""
    return [render_bill(sample_bill_lines(i, run)) for i in range(count)]
