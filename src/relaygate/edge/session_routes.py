"""``GET`` and ``DELETE /v1/sessions/{id}``: a key reads or forgets its own session's turns.

Sessions are scoped to the key that wrote them: another key's session id answers 404, exactly
like one that never existed, so a key cannot even learn that the id is in use.
"""

from __future__ import annotations

import orjson

from relaygate.auth.keys import extract_api_key
from relaygate.core.context import RequestContext
from relaygate.core.errors import GatewayError, NotFoundError, clip
from relaygate.dialects.base import Dialect
from relaygate.edge.handler import new_request_id, send_error
from relaygate.services import Services
from relaygate.sessions.codec import message_json
from relaygate.web.request import Request, Send
from relaygate.web.responses import send_json

SESSION_PREFIX = "/v1/sessions/"


async def handle_session(
    services: Services, request: Request, send: Send, dialect: Dialect
) -> None:
    """Answer ``GET`` (the stored turns) or ``DELETE`` (forget them) for the caller's key."""
    ctx = RequestContext(new_request_id(request), "sessions", dialect.name)
    session_id = request.path[len(SESSION_PREFIX) :]
    try:
        key = services.keys.authenticate(extract_api_key(request.headers))
        if request.method == "DELETE":
            if not await services.sessions.forget(key.id, session_id):
                raise _not_found(session_id)
            await send_json(send, 200, orjson.dumps({"id": session_id, "deleted": True}))
            return
        turns = await services.sessions.turns(key.id, session_id)
        if not turns:
            raise _not_found(session_id)
        payload = {
            "id": session_id,
            "object": "session",
            "turns": [
                {"messages": [message_json(m) for m in t.messages], "tokens": t.tokens}
                for t in turns
            ],
        }
        await send_json(send, 200, orjson.dumps(payload))
    except GatewayError as err:
        await send_error(ctx, send, dialect, err, services.redactor)


def _not_found(session_id: str) -> NotFoundError:
    return NotFoundError(f"No session '{clip(session_id)}' for this key")
