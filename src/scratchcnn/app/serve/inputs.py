"""Turn an untrusted request body into a decoded Pillow image, or a clear 4xx error.

Three ways to send an image (PNG or JPEG, any size up to the limits below):

- ``multipart/form-data`` with the file in the field ``file`` (an HTML form or ``fetch``
  with ``FormData``), optionally a field ``center`` ("1"/"true");
- ``application/json``: ``{"image": "data:image/png;base64,...", "center": true}``
  (a canvas' ``toDataURL()``; plain base64 is accepted too);
- the raw bytes with ``Content-Type: image/png`` or ``image/jpeg``.

``?center=1`` in the query string works for all three. Every failure raises
:class:`BadRequest` (status and message), which the application answers as
``{"detail": message}``: never a 500 or a traceback.
"""
import base64
import binascii
import io
import json
import warnings

from PIL import Image

from ...fileio import json_depth_exceeds

MAX_UPLOAD_BYTES = 10 * 1024 * 1024   # a request body larger than this gets 413
MAX_IMAGE_PIXELS = 25_000_000         # width * height above this gets 413 (decompression bombs)
MAX_IMAGE_SIDE = 16_384               # so does a side longer than this
MAX_JSON_DEPTH = 16                   # a JSON body nested deeper than this gets 400, unparsed
IMAGE_TYPES = ("image/png", "image/jpeg")
FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "MPO": "image/jpeg"}  # MPO: a phone's JPEG


class BadRequest(Exception):
    """A client error: ``status`` (400, 413, 415) and a message for a person to read."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status
        self.message = message


def _truthy(value):
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def media_type(content_type):
    """``"multipart/form-data; boundary=x"`` -> ``"multipart/form-data"``."""
    return (content_type or "").split(";")[0].strip().lower()


def json_body(body):
    """The JSON object of a request body, checked: UTF-8, parseable, an object with ``"image"``.

    The body's nesting is measured before it is parsed: a document nested deeper than
    :data:`MAX_JSON_DEPTH` is refused (400) without letting the parser recurse into it."""
    try:
        text = body.decode("utf-8") if isinstance(body, (bytes, bytearray)) else str(body)
    except UnicodeDecodeError as exc:
        raise BadRequest(400, f"malformed JSON body: not UTF-8 ({exc.reason} at byte {exc.start})") from None
    if json_depth_exceeds(text, MAX_JSON_DEPTH):
        raise BadRequest(400, f"the JSON body nests deeper than {MAX_JSON_DEPTH} levels; send "
                              f'{{"image": "data:image/png;base64,...", "center": false}}')
    try:
        obj = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError, ValueError) as exc:
        raise BadRequest(400, f"malformed JSON body: {exc}") from None
    if not isinstance(obj, dict) or "image" not in obj:
        raise BadRequest(400, 'the JSON body must be an object {"image": "data:image/png;base64,...", '
                              '"center": false}')
    return obj


def image_from_json(obj):
    """``(image bytes, center)`` from a JSON body's object (:func:`json_body`):
    ``{"image": data URL or base64, "center": bool}``."""
    text = obj["image"]
    if not isinstance(text, str):
        raise BadRequest(400, f'"image" must be a string (a data URL or base64), got {type(text).__name__}')
    if text.startswith("data:"):
        header, _, text = text.partition(",")
        kind = media_type(header[5:])
        if kind not in IMAGE_TYPES:
            raise BadRequest(415, f"the data URL holds {kind or 'nothing'!r}; send image/png or image/jpeg")
        if not header.endswith(";base64"):
            raise BadRequest(400, "the data URL must be base64-encoded (data:image/png;base64,...)")
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest(400, '"image" is not valid base64') from None
    center = obj.get("center", False)
    if not isinstance(center, (bool, int, float, str)) and center is not None:
        raise BadRequest(400, f'"center" must be true or false, got {type(center).__name__}')
    return data, _truthy(center)


def decode_image(data, max_pixels=MAX_IMAGE_PIXELS, max_side=MAX_IMAGE_SIDE):
    """Decode PNG or JPEG ``data`` (bytes) into a loaded Pillow image.

    The header is read first and the image size checked *before* any pixel is
    decompressed, so a tiny file claiming 100000 x 100000 pixels costs nothing."""
    if not data:
        raise BadRequest(400, "the upload is empty: send a PNG or JPEG image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise BadRequest(413, f"the image is too large (limit {max_pixels:,} pixels): {exc}") from None
    except Exception:  # Pillow raises many types on garbage; all mean "not an image"
        raise BadRequest(400, "the upload is not an image Pillow can read: send a PNG or JPEG file") from None
    if image.format not in FORMATS:
        raise BadRequest(415, f"unsupported image format {image.format}: send a PNG or JPEG file")
    width, height = image.size
    if width < 1 or height < 1 or width * height > max_pixels or max(width, height) > max_side:
        raise BadRequest(413, f"the image is {width} x {height} pixels; the limit is {max_pixels:,} pixels "
                              f"and {max_side} pixels a side")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image.load()
    except Exception:
        raise BadRequest(400, f"the {image.format} image is corrupted or truncated") from None
    return image


async def read_image(request):
    """``(Pillow image, center)`` from a Starlette ``request`` in any of the three forms above."""
    kind = media_type(request.headers.get("content-type"))
    center = _truthy(request.query_params.get("center", "0"))
    if kind == "multipart/form-data":
        async with request.form(max_files=2, max_fields=8, max_part_size=MAX_UPLOAD_BYTES) as form:
            upload = form.get("file")
            if upload is None or isinstance(upload, str):
                raise BadRequest(400, 'the form has no file: send the image in the field "file"')
            data = await upload.read()
            center = center or _truthy(form.get("center", "0"))
    elif kind == "application/json":
        obj = json_body(await request.body())
        request.state.json_body = obj          # parsed once: /api/explain reads its "class" here
        data, center_json = image_from_json(obj)
        center = center or center_json
    elif kind in IMAGE_TYPES:
        data = await request.body()
    else:
        raise BadRequest(415, f"unsupported content type {kind or '(none)'!r}: send multipart/form-data "
                              f"(field 'file'), application/json or image/png / image/jpeg")
    return decode_image(data), center


class BodySizeLimit:
    """ASGI middleware: answer 413 to a request whose body exceeds ``max_bytes``.

    The declared ``Content-Length`` is checked first; a body sent in chunks without
    one is counted as it arrives, buffered, then replayed to the application."""

    def __init__(self, app, max_bytes=MAX_UPLOAD_BYTES):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            return await self._reject(scope, receive, send)
        chunks, total = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":   # the client went away
                return
            chunk = message.get("body", b"")
            total += len(chunk)
            if total > self.max_bytes:
                return await self._reject(scope, receive, send)
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body, replayed = b"".join(chunks), False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _reject(self, scope, receive, send):
        from starlette.responses import JSONResponse
        mib = self.max_bytes / (1024 * 1024)
        response = JSONResponse({"detail": f"the upload is too large: the limit is {mib:g} MiB"}, status_code=413)
        await response(scope, receive, send)
