"""AWS credentials for the `amazon-bedrock` provider, and the SigV4 signature of each request.

Either the endpoint's own keys (access key id + secret, and a session token for temporary credentials), read
through their SecretValues on every request so a rotated secret takes effect, or, when the config gives no
keys (Databricks' `instance_profile_arn` form), botocore's default credential chain on the modelgate host:
environment variables, shared config and credentials files, web identity, the container credentials endpoint
and the EC2 instance profile. Chain credentials that expire are refreshed by botocore; its resolution and
refresh do blocking HTTP (IMDS, STS), so they run in a worker thread.
"""

from __future__ import annotations

import asyncio

import botocore.session
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials, ReadOnlyCredentials
from botocore.exceptions import BotoCoreError

from modelgate.errors import BadRequest, TemporarilyUnavailable
from modelgate.redaction import SecretMask
from modelgate.secrets import SecretValue

SERVICE = "bedrock"


class BedrockCredentials:
    """Where one endpoint's AWS credentials come from: its keys if it has them, else the default chain."""

    def __init__(
        self,
        access_key: SecretValue | None,
        secret_key: SecretValue | None,
        session_token: SecretValue | None,
        mask: SecretMask | None = None,
    ) -> None:
        self.access_key = access_key
        self.secret_key = secret_key
        self.session_token = session_token
        # The endpoint's own keys are masked as their SecretValues resolve; the chain's when they are fetched.
        self.mask = mask if mask is not None else SecretMask()
        self._chain: Credentials | None = None
        self._lock = asyncio.Lock()

    async def current(self) -> ReadOnlyCredentials:
        if self.access_key is not None and self.secret_key is not None:
            token = self.session_token.get() if self.session_token else None
            return ReadOnlyCredentials(self.access_key.get(), self.secret_key.get(), token or None)
        resolved = self._chain
        if resolved is not None and not _refresh_due(resolved):
            return resolved.get_frozen_credentials()  # current: no I/O, no thread hop
        async with self._lock:
            try:
                if self._chain is None:
                    self._chain = await asyncio.to_thread(_default_chain)
                chain: Credentials = self._chain
                frozen: ReadOnlyCredentials = await asyncio.to_thread(chain.get_frozen_credentials)
            except BotoCoreError as exc:
                raise TemporarilyUnavailable(
                    f"The AWS default credential chain failed to provide credentials ({type(exc).__name__}).",
                    retry_after=1,
                ) from None
            # New or refreshed chain credentials (refreshes happen here, not on the path above).
            for value in (frozen.access_key, frozen.secret_key, frozen.token):
                if value:
                    self.mask.add(value, derived=True)
            return frozen


def _refresh_due(creds: Credentials) -> bool:
    """Whether reading `creds` may block on a refresh (only botocore's refreshable credentials ever do)."""
    refresh_needed = getattr(creds, "refresh_needed", None)
    return bool(refresh_needed()) if callable(refresh_needed) else False


def _default_chain() -> Credentials:
    creds = botocore.session.get_session().get_credentials()
    if creds is None:
        raise BadRequest(
            "amazon_bedrock_config gives no AWS keys and the server's default AWS credential chain found none "
            "(environment, shared credentials file, container or instance profile). Give aws_access_key_id and "
            "aws_secret_access_key, or run modelgate where that chain has credentials."
        )
    return creds


def sign(url: str, body: bytes, accept: str, credentials: ReadOnlyCredentials, region: str) -> dict[str, str]:
    """SigV4 headers for POSTing `body` to `url`; a session token goes in `X-Amz-Security-Token` (signed)."""
    request = AWSRequest(
        method="POST", url=url, data=body, headers={"Content-Type": "application/json", "Accept": accept}
    )
    creds = Credentials(credentials.access_key, credentials.secret_key, credentials.token)
    SigV4Auth(creds, SERVICE, region).add_auth(request)
    return {k: v for k, v in request.headers.items()}
