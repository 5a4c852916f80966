"""Post a digest to an incoming webhook (Slack and Teams accept a JSON body with ``text``)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

TIMEOUT_SECONDS = 5.0


def post(url: str, text: str) -> str | None:
    """None when delivered (2xx), else one line saying what went wrong (the caller logs it and retries later)."""
    request = urllib.request.Request(url, data=json.dumps({"text": text}).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
            return None if 200 <= response.status < 300 else f"webhook answered HTTP {response.status}"
    except urllib.error.HTTPError as exc:
        return f"webhook answered HTTP {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        return f"webhook unreachable: {getattr(exc, 'reason', exc)}"
