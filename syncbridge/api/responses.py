"""The API's JSON responses: UTF-8, except that text UTF-8 cannot encode is sent escaped.

A stored payload may hold a lone surrogate (INV_013: the Python API stores a payload as given).
FastAPI's default path serializes through pydantic's core straight to UTF-8 and fails on one, so
one such job made every listing that held it answer 500. This response class is set on the API
routers (which also takes them off that path); it writes UTF-8 as before and, only when that
fails, ASCII JSON, whose ``\\ud800`` escapes read back as exactly the stored text.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi.responses import JSONResponse


class Utf8SafeJSONResponse(JSONResponse):
    def render(self, content: Any) -> bytes:
        try:
            return super().render(content)
        except UnicodeEncodeError:
            return json.dumps(
                content, ensure_ascii=True, allow_nan=False, indent=None, separators=(",", ":")
            ).encode("ascii")
