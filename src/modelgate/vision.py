"""The shared image input layer: every chat request's images are checked and normalised before any provider.

Images arrive as `image_url` content parts. A base64 data URL is decoded here (JPEG, PNG, GIF or WebP only),
checked and, when its long edge exceeds 1568 px, scaled down preserving the aspect ratio and re-encoded in
its own format; the data URL's media type is corrected to the real one. An https URL is left as it is, for
providers that fetch URLs themselves: modelgate never fetches a URL from a request.

Limits: at most 100 images per request; no image over 8000 px on either edge; with more than 20 images,
none over 2000 px. Dimensions are read from the header before any pixel is decoded, so a decompression bomb
(a tiny file that claims a huge raster) is refused without being expanded. Any failure is a 400 that names
the image's position. Usage counts each image as ceil(width * height / 750) tokens (after scaling).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
import math
import warnings
from dataclasses import dataclass
from typing import Any

from PIL import Image, UnidentifiedImageError

from modelgate.errors import BadRequest
from modelgate.protocol.chat import ChatRequest, ImagePart

MAX_IMAGES = 100
MAX_EDGE = 8000
MANY_IMAGES = 20
MANY_IMAGES_MAX_EDGE = 2000
SCALE_EDGE = 1568
TOKENS_PER_PIXEL_DIVISOR = 750
FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "GIF": "image/gif", "WEBP": "image/webp"}


@dataclass
class _Located:
    where: str  # "messages[1].content[2] (image 1)"
    part: ImagePart


def _images(request: ChatRequest) -> list[_Located]:
    found: list[_Located] = []
    for m, msg in enumerate(request.messages):
        if isinstance(msg.content, list):
            for c, part in enumerate(msg.content):
                if isinstance(part, ImagePart):
                    found.append(_Located(f"messages[{m}].content[{c}] (image {len(found) + 1})", part))
    return found


def has_images(request: Any) -> bool:
    """Whether a request has any content-part list (where images live); cheap enough for every query."""
    if isinstance(request, ChatRequest):
        for message in request.messages:
            if isinstance(message.content, list):
                return True
    return False


async def prepare_images(request: Any) -> Any:
    """Check and normalise the images of a chat request in place (other requests pass untouched)."""
    if not isinstance(request, ChatRequest):
        return request
    images = _images(request)
    if not images:
        return request
    if len(images) > MAX_IMAGES:
        raise BadRequest(f"Bad request: {len(images)} images in one request; at most {MAX_IMAGES} are allowed.")
    max_edge = MANY_IMAGES_MAX_EDGE if len(images) > MANY_IMAGES else MAX_EDGE
    inline = []
    for image in images:
        url = image.part.image_url.url
        if url.startswith("data:"):
            inline.append(image)
        elif not url.startswith("https://"):
            raise BadRequest(
                f"Bad request: {image.where}: image_url must be a base64 data URL (data:image/png;base64,...) "
                "or an https URL."
            )
    if inline:
        await asyncio.to_thread(_normalise_all, inline, max_edge, len(images))
    return request


def _normalise_all(images: list[_Located], max_edge: int, count: int) -> None:
    for image in images:
        image.part.image_url.url = normalise_data_url(image.part.image_url.url, image.where, max_edge, count)


def _decode_data_url(url: str, where: str) -> bytes:
    header, sep, data = url.partition(",")
    if not sep or not header.endswith(";base64"):
        raise BadRequest(f"Bad request: {where}: a data URL must be base64 encoded ('data:image/png;base64,...').")
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest(f"Bad request: {where}: the data URL's base64 data cannot be decoded.") from None


def _open(raw: bytes, where: str) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(raw))
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise BadRequest(f"Bad request: {where}: not a decodable JPEG, PNG, GIF or WebP image.") from None
    if img.format not in FORMATS:
        raise BadRequest(f"Bad request: {where}: format {img.format} is not supported; use JPEG, PNG, GIF or WebP.")
    return img


def normalise_data_url(url: str, where: str, max_edge: int = MAX_EDGE, count: int = 1) -> str:
    """The data URL checked, scaled down if needed, and labelled with its real media type."""
    raw = _decode_data_url(url, where)
    img = _open(raw, where)
    fmt = img.format or "PNG"
    width, height = img.size
    if max(width, height) > max_edge:
        why = f"with more than {MANY_IMAGES} images, each" if max_edge == MANY_IMAGES_MAX_EDGE else "each image"
        raise BadRequest(
            f"Bad request: {where}: the image is {width}x{height} px; {why} may be at most {max_edge}x{max_edge} px."
        )
    try:
        if max(width, height) > SCALE_EDGE:
            scale = SCALE_EDGE / max(width, height)
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            img.draft(img.mode, size)  # JPEG: decode at a reduced scale directly
            img = img.resize(size, Image.Resampling.LANCZOS)
            raw = _encode(img, fmt)
        else:
            img.load()  # proves the pixel data decodes
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        raise BadRequest(f"Bad request: {where}: the image data is truncated or corrupt.") from None
    return f"data:{FORMATS[fmt]};base64,{base64.b64encode(raw).decode()}"


def _encode(img: Image.Image, fmt: str) -> bytes:
    out = io.BytesIO()
    if fmt == "JPEG":
        if img.mode not in ("RGB", "L", "CMYK"):
            img = img.convert("RGB")
        img.save(out, "JPEG", quality=90)
    else:
        img.save(out, fmt)
    return out.getvalue()


def image_tokens(request: Any) -> int:
    """Estimated prompt tokens of a request's inline images: ceil(w * h / 750) each (https URLs: unknown, 0)."""
    if not isinstance(request, ChatRequest):
        return 0
    total = 0
    for image in _images(request):
        url = image.part.image_url.url
        if not url.startswith("data:"):
            continue
        try:
            width, height = _open(_decode_data_url(url, image.where), image.where).size
        except BadRequest:
            continue
        total += math.ceil(width * height / TOKENS_PER_PIXEL_DIVISOR)
    return total
