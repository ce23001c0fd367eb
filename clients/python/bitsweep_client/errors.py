"""The one exception the client raises for a failed call."""

from __future__ import annotations

from typing import Optional

import grpc

# What the CLI adds to an UNAUTHENTICATED answer (cli/client_commands.cc ExplainAuthError).
_NO_TOKEN_HINT = (
    "this coordinator requires a client token and none was given (pass token=... or set "
    "$BITSWEEP_CLIENT_TOKEN; the coordinator's --client-token names the ones it accepts)")
_REFUSED_TOKEN_HINT = (
    "the token from token=... or $BITSWEEP_CLIENT_TOKEN was refused (the coordinator accepts "
    "the ones of its --client-token)")


class BitsweepError(Exception):
    """A call the coordinator (or the channel to it) refused.

    ``code`` is the ``grpc.StatusCode`` (``code.name`` is e.g. ``"NOT_FOUND"``), ``message`` the
    server's message as it sent it, ``hint`` a suggestion of the client's own, or ``""``.
    ``str(error)`` is ``"NOT_FOUND: sweep 99 not found"`` (with the hint after it, if any).
    """

    def __init__(self, code: grpc.StatusCode, message: str, hint: str = "") -> None:
        self.code = code
        self.message = message
        self.hint = hint
        text = f"{code.name}: {message}"
        super().__init__(f"{text}: {hint}" if hint else text)

    @classmethod
    def from_rpc_error(cls, error: grpc.RpcError, token_given: bool) -> "BitsweepError":
        code: Optional[grpc.StatusCode] = error.code() if hasattr(error, "code") else None
        message: str = (error.details() if hasattr(error, "details") else None) or ""
        if code is None:
            code = grpc.StatusCode.UNKNOWN
            message = message or str(error)
        hint = ""
        if code == grpc.StatusCode.UNAUTHENTICATED:
            hint = _REFUSED_TOKEN_HINT if token_given else _NO_TOKEN_HINT
        return cls(code, message, hint)
