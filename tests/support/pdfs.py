"""PDF files for tests, made here: pages of rendered bills, a text page, and broken ones."""
from __future__ import annotations

import io


def assemble(objects: list[bytes], trailer: bytes = b"") -> bytes:
    """A PDF of ``objects`` (object 1 the catalog), with a correct cross-reference table."""
    out = io.BytesIO()
    out.write(b"%PDF-1.7\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % number + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    out.write(b"trailer\n<< /Size %d /Root 1 0 R %s>>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, trailer, xref))
    return out.getvalue()


def text_pdf(lines: list[str], size: tuple[int, int] = (300, 400), *, rotate: int = 0,
             invisible: bool = False, picture: float = 0.0) -> bytes:
    """One page of text in Helvetica 14: a born-digital bill with a text layer. A tab in a
    line starts a second column at x = 200; ``invisible``: render mode 3, as a scanner's OCR
    layer; ``rotate``: the page's /Rotate; ``picture``: the share of the page a grey picture
    covers, drawn first, from the bottom."""
    stream = b""
    if picture:
        stream += b"q %d 0 0 %.2f 0 0 cm /Im1 Do Q " % (size[0], size[1] * picture)
    stream += b"BT /F1 14 Tf %s" % (b"3 Tr " if invisible else b"")
    for number, line in enumerate(lines):
        for x, piece in zip((20, 200), line.split("\t")):
            y = size[1] - 40 - 18 * number
            stream += b"1 0 0 1 %d %d Tm (%s) Tj " % (x, y, piece.encode("latin-1"))
    stream += b"ET"
    return assemble([
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %d %d] /Rotate %d /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> /XObject << /Im1 6 0 R >> >> >>" % (*size, rotate),
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Type /XObject /Subtype /Image /Width 2 /Height 2 /ColorSpace /DeviceGray /BitsPerComponent 8 "
        b"/Length 4 >>\nstream\n\x80\xc0\xc0\x80\nendstream",
    ])


def pages_pdf(images: list[bytes]) -> bytes:
    """One page per image (PNG or JPEG bytes), each at 150 dpi."""
    import cv2
    import numpy as np
    import pypdfium2 as pdfium

    document = pdfium.PdfDocument.new()
    for data in images:
        gray = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
        assert gray is not None
        width, height = gray.shape[1] * 72 / 150, gray.shape[0] * 72 / 150
        page = document.new_page(width, height)
        picture = pdfium.PdfImage.new(document)
        picture.load_jpeg(io.BytesIO(cv2.imencode(".jpg", gray)[1].tobytes()), inline=True)
        picture.set_matrix(pdfium.PdfMatrix().scale(width, height))
        page.insert_obj(picture)
        page.gen_content()
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def joined_pdf(parts: list[bytes]) -> bytes:
    """The pages of ``parts``, in order, as one PDF."""
    import pypdfium2 as pdfium

    document = pdfium.PdfDocument.new()
    for data in parts:
        document.import_pages(pdfium.PdfDocument(data))
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def empty_pdf() -> bytes:
    return assemble([b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [] /Count 0 >>"])


def huge_page_pdf() -> bytes:
    """A few hundred bytes declaring a page 14,400 points a side: 40,000 pixels at 200 dpi."""
    return assemble([b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
                     b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 14400 14400] >>"])


def encrypted_pdf() -> bytes:
    """A PDF with a standard security handler whose user password is not empty."""
    owner, user = b"a" * 64, b"b" * 64
    return assemble([b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
                     b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] >>",
                     b"<< /Filter /Standard /V 1 /R 2 /O <" + owner + b"> /U <" + user + b"> /P -4 >>"],
                    trailer=b"/Encrypt 4 0 R /ID [<0123456789abcdef0123456789abcdef> <0123456789abcdef0123456789abcdef>] ")
