"""The ceiling of the server: a raw ASGI app that parses the JSON body and answers.

No framework and no validation: what uvicorn itself costs per request, plus
``json.loads`` and a constant response.
"""

import json
from typing import Any

PREDICTION = json.dumps(
    {
        "label": "setosa",
        "probabilities": {"setosa": 0.98, "versicolor": 0.02, "virginica": 0.0},
    }
).encode()
READY = b'{"status":"ready"}'


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = b""
    more_body = True
    while more_body:
        message = await receive()
        body += message.get("body", b"")
        more_body = message.get("more_body", False)
    status, content = 200, READY
    if scope["method"] == "POST":
        try:
            json.loads(body)
            content = PREDICTION
        except ValueError:
            status, content = 400, b'{"detail":"malformed JSON"}'
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(content)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": content})
