"""HTTP pulls: page through a JSON endpoint and yield its records.

The client is passed in (sync builds one that enforces the outbound address
policy); failing pages are retried with exponential backoff through an
injected ``sleep`` so tests never wait.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin

import httpx
import jmespath

from tailormail.deliver.webhooks import RETRYABLE_STATUS, Backoff, ForbiddenAddress
from tailormail.errors import ConfigError, TailormailError

_DOTTED = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")

RetryNote = Callable[[int, int, str, float], None]
"""Told (page number, retry number, the error, seconds waited) before each retry."""


class PullError(TailormailError):
    """A page could not be fetched or read, even after its retries."""

    code = "pull_failed"


class Selector:
    """A compiled record selector: a dotted path (fast) or any JMESPath expression."""

    def __init__(self, expression: str) -> None:
        self.expression = expression
        self.get = accessor(expression)
        """The compiled lookup itself (callers in a loop use it to skip this wrapper)."""

    def __call__(self, data: Any) -> Any:
        """The selected value, or None when a step is missing."""
        return self.get(data)


def accessor(expression: str) -> Callable[[Any], Any]:
    """A function giving ``expression``'s value in a record (None when a step is missing), parsed once.

    Dotted paths become plain ``dict.get`` steps; anything else is compiled JMESPath.
    """
    if not _DOTTED.match(expression):
        try:
            return jmespath.compile(expression).search
        except jmespath.exceptions.ParseError as exc:
            raise ConfigError(f"selector {expression!r} is not valid JMESPath: {exc}") from None
    parts = expression.split(".")
    if len(parts) == 1:  # the common case: a top-level field
        name = parts[0]

        def top(data: Any) -> Any:
            return data.get(name) if isinstance(data, dict) else None

        return top
    if len(parts) == 2:
        outer, inner = parts

        def pair(data: Any) -> Any:
            data = data.get(outer) if isinstance(data, dict) else None
            return data.get(inner) if isinstance(data, dict) else None

        return pair

    def path(data: Any) -> Any:
        for part in parts:
            if not isinstance(data, dict):
                return None
            data = data.get(part)
        return data

    return path


@dataclass(frozen=True)
class Pagination:
    """How to ask for the next page of an HTTP source."""

    type: str = "none"
    """none, cursor (a token from the body), page (a page number) or link (a next URL in the body or Link header)."""
    param: str = "cursor"
    """Query parameter carrying the cursor or the page number."""
    next: str = ""
    """Selector of the next cursor or next link in the body (link: empty means the Link header)."""
    size_param: str = ""
    """Query parameter for the page size (optional)."""
    size: int = 1000
    start: int = 1
    """First page number (page pagination)."""
    max_pages: int = 100_000
    """A stop against a server that never says it is done."""


@dataclass
class PullRequest:
    """Everything needed to page through one endpoint."""

    url: str
    params: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    records: str = ""
    pagination: Pagination = field(default_factory=Pagination)
    retries: int = 3
    backoff: Backoff = field(default_factory=lambda: Backoff(base=1.0, cap=60.0))


def iter_pages(
    client: httpx.Client,
    request: PullRequest,
    *,
    sleep: Callable[[float], None],
    on_retry: RetryNote | None = None,
) -> Iterator[list[Any]]:
    """Yield the record list of each page in order, following the pagination."""
    pages = request.pagination
    select_records = Selector(request.records) if request.records else None
    select_next = Selector(pages.next) if pages.next else None
    url, params = request.url, dict(request.params)
    if pages.type == "page":
        params[pages.param] = str(pages.start)
        if pages.size_param:
            params[pages.size_param] = str(pages.size)
    for number in range(1, pages.max_pages + 1):
        response = _get(client, url, params, request, number, sleep, on_retry)
        body = _json(response, number)
        records = select_records(body) if select_records else body
        if records is None:
            records = []
        if not isinstance(records, list):
            raise PullError(f"page {number}: records selector {request.records!r} did not give a list")
        yield records
        following = _next(pages, response, body, select_next, records, params)
        if following is None:
            return
        url, params = (urljoin(str(response.url), following), {}) if pages.type == "link" else (url, following)


def _next(
    pages: Pagination,
    response: httpx.Response,
    body: Any,
    select_next: Selector | None,
    records: list[Any],
    params: dict[str, str],
) -> Any:
    """The next page's link (link) or query parameters (cursor, page); None when done."""
    if pages.type == "none" or not records:
        return None
    if pages.type == "page":
        # Only an empty page ends: a selector may filter records, so a short page proves nothing.
        return {**params, pages.param: str(int(params[pages.param]) + 1)}
    token = select_next(body) if select_next else None
    if pages.type == "link" and not select_next:
        token = response.links.get("next", {}).get("url")
    if token in (None, ""):
        return None
    return str(token) if pages.type == "link" else {**params, pages.param: str(token)}


def _get(
    client: httpx.Client,
    url: str,
    params: dict[str, str],
    request: PullRequest,
    number: int,
    sleep: Callable[[float], None],
    on_retry: RetryNote | None,
) -> httpx.Response:
    """GET one page, retrying transient failures with backoff."""
    for attempt in range(request.retries + 1):
        try:
            response = client.get(url, params=params or None, headers=request.headers)
            if response.is_success:
                return response
            error = f"HTTP {response.status_code}: {response.text[:200]}"
            if response.status_code not in RETRYABLE_STATUS:
                raise PullError(f"page {number}: {error}", hint="check the URL, the auth header and the parameters")
        except ForbiddenAddress:
            raise
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        if attempt == request.retries:
            raise PullError(f"page {number}: {error} (after {request.retries} retries)")
        delay = request.backoff.delay(attempt + 1)
        if on_retry:
            on_retry(number, attempt + 1, error, delay)
        sleep(delay)
    raise AssertionError("unreachable")


def _json(response: httpx.Response, number: int) -> Any:
    try:
        return response.json()
    except ValueError:
        raise PullError(
            f"page {number}: the response is not JSON ({response.headers.get('content-type', 'no content type')})"
        ) from None
