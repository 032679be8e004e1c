"""The shared image layer (modelgate.vision): limits, scaling, bomb guard, and what reaches the provider."""

from __future__ import annotations

import base64
import io
import struct
import zlib
from collections.abc import Callable
from typing import Any

import pytest
from PIL import Image

from modelgate.errors import BadRequest
from modelgate.protocol.chat import ChatRequest
from modelgate.vision import image_tokens, normalise_data_url, prepare_images
from tests.fakes.anthropic_upstream import FakeAnthropicThread
from tests.providers.sent import only_sent
from tests.support.live import LiveServer


def encoded(width: int, height: int, fmt: str = "PNG", mode: str = "RGB") -> bytes:
    out = io.BytesIO()
    Image.new(mode, (width, height), color=(200, 10, 10) if mode == "RGB" else 1).save(out, fmt)
    return out.getvalue()


def data_url(raw: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(raw).decode()}"


def decoded_size(url: str) -> tuple[str, tuple[int, int]]:
    header, _, data = url.partition(",")
    with Image.open(io.BytesIO(base64.b64decode(data))) as img:
        return header, img.size


def png_claiming(width: int, height: int) -> bytes:
    """A valid small PNG whose header claims width x height (a decompression-bomb shape)."""
    raw = encoded(1, 1)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return raw[:8] + struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk)) + raw[33:]


def request_with(*urls: str) -> ChatRequest:
    parts: list[Any] = [{"type": "text", "text": "look"}]
    parts += [{"type": "image_url", "image_url": {"url": u}} for u in urls]
    return ChatRequest.model_validate({"messages": [{"role": "user", "content": parts}]})


def test_long_edge_scaled_to_1568_keeping_aspect() -> None:
    header, size = decoded_size(normalise_data_url(data_url(encoded(3136, 1000)), "img"))
    assert header == "data:image/png;base64"
    assert size == (1568, 500)


@pytest.mark.parametrize(("fmt", "mime"), [("JPEG", "image/jpeg"), ("GIF", "image/gif"), ("WEBP", "image/webp")])
def test_formats_kept_and_media_type_corrected(fmt: str, mime: str) -> None:
    # Declared as PNG, really another format: the real media type goes on.
    header, size = decoded_size(normalise_data_url(data_url(encoded(2000, 2000, fmt), "image/png"), "img"))
    assert header == f"data:{mime};base64"
    assert size == (1568, 1568)


def test_small_image_untouched() -> None:
    url = data_url(encoded(640, 480))
    assert normalise_data_url(url, "img") == url


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (
            "data:image/png;base64,@@@@",
            "messages[0].content[1] (image 1): the data URL's base64 data cannot be decoded.",
        ),
        ("data:image/png," + "abc", "messages[0].content[1] (image 1): a data URL must be base64 encoded"),
        (data_url(b"not an image at all"), "messages[0].content[1] (image 1): not a decodable JPEG, PNG, GIF or WebP"),
        (data_url(encoded(10, 10, "BMP")), "messages[0].content[1] (image 1): format BMP is not supported"),
        (
            data_url(encoded(8001, 2, mode="1")),
            "messages[0].content[1] (image 1): the image is 8001x2 px; each image may",
        ),
        (data_url(png_claiming(9000, 9000)), "messages[0].content[1] (image 1): the image is 9000x9000 px"),
        (data_url(png_claiming(20000, 20000)), "messages[0].content[1] (image 1): not a decodable"),
        (data_url(png_claiming(10000, 10000)), "messages[0].content[1] (image 1): not a decodable"),
        (
            data_url(encoded(100, 100)[:-40]),
            "messages[0].content[1] (image 1): the image data is truncated or corrupt.",
        ),
        ("http://example.com/cat.png", "messages[0].content[1] (image 1): image_url must be a base64 data URL"),
        ("file:///etc/passwd", "messages[0].content[1] (image 1): image_url must be a base64 data URL"),
    ],
)
async def test_bad_images_named_by_position(url: str, message: str) -> None:
    with pytest.raises(BadRequest) as info:
        await prepare_images(request_with(url))
    assert info.value.status == 400
    assert info.value.message.startswith("Bad request: " + message), info.value.message


async def test_position_counts_across_messages() -> None:
    good = data_url(encoded(4, 4))
    req = ChatRequest.model_validate(
        {
            "messages": [
                {"role": "user", "content": [{"type": "image_url", "image_url": {"url": good}}]},
                {"role": "assistant", "content": "ok"},
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "x"},
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                    ],
                },
            ]
        }
    )
    with pytest.raises(BadRequest) as info:
        await prepare_images(req)
    assert info.value.message.startswith("Bad request: messages[2].content[1] (image 2): not a decodable")


async def test_image_count_limits() -> None:
    small = data_url(encoded(2, 2))
    with pytest.raises(BadRequest) as info:
        await prepare_images(request_with(*[small] * 101))
    assert info.value.message == "Bad request: 101 images in one request; at most 100 are allowed."
    wide = data_url(encoded(2001, 1))
    await prepare_images(request_with(*[small] * 19, wide))  # 20 images: 2001 px is fine (scaled)
    with pytest.raises(BadRequest) as many:
        await prepare_images(request_with(*[small] * 20, wide))
    assert many.value.message == (
        "Bad request: messages[0].content[21] (image 21): the image is 2001x1 px; with more than 20 images, "
        "each may be at most 2000x2000 px."
    )


async def test_https_urls_pass_untouched_and_tokens_counted() -> None:
    req = request_with("https://example.com/cat.png", data_url(encoded(3000, 1500)))
    await prepare_images(req)
    parts = req.messages[0].content
    assert isinstance(parts, list)
    assert parts[1].image_url.url == "https://example.com/cat.png"  # type: ignore[union-attr]
    assert decoded_size(parts[2].image_url.url)[1] == (1568, 784)  # type: ignore[union-attr]
    assert image_tokens(req) == -(-1568 * 784 // 750)


def test_scaled_image_reaches_anthropic(
    server: LiveServer, anthropic_fake: FakeAnthropicThread, anthropic_endpoint: Callable[..., str]
) -> None:
    name = anthropic_endpoint()
    with server.client() as c:
        resp = c.post(
            f"/serving-endpoints/{name}/invocations",
            json={
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "text", "text": f"describe {name}"},
                            {"type": "image_url", "image_url": {"url": data_url(encoded(4000, 2000, "JPEG"))}},
                            {"type": "image_url", "image_url": {"url": "https://example.com/dog.webp"}},
                        ],
                    }
                ]
            },
        )
        assert resp.status_code == 200, resp.text
        bad = c.post(
            f"/serving-endpoints/{name}/invocations",
            json={"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:x"}}]}]},
        )
    assert bad.status_code == 400
    assert bad.json()["error_code"] == "BAD_REQUEST"
    assert "messages[0].content[0] (image 1)" in bad.json()["message"]
    content = only_sent(anthropic_fake, name)["messages"][0]["content"]
    assert content[0] == {"type": "text", "text": f"describe {name}"}
    source = content[1]["source"]
    assert (source["type"], source["media_type"]) == ("base64", "image/jpeg")
    with Image.open(io.BytesIO(base64.b64decode(source["data"]))) as img:
        assert (img.format, img.size) == ("JPEG", (1568, 784))
    assert content[2] == {"type": "image", "source": {"type": "url", "url": "https://example.com/dog.webp"}}
