"""Running one source now: fetch, map, ingest page by page, log, advance the watermark."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from glob import glob
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from tailormail.clock import parse_time, to_ms
from tailormail.deliver.webhooks import AddressPolicy, Backoff, Resolver, make_client, system_resolver
from tailormail.errors import ConfigError, TailormailError, ValidationError
from tailormail.ingest.files import BadRow, FileReader, detect_format
from tailormail.ingest.messages import Message, parse_message
from tailormail.ingest.pull import PullRequest, iter_pages
from tailormail.ingest.readahead import read_ahead
from tailormail.store import sync as q
from tailormail.sync.mapping import RecordMapper
from tailormail.sync.runs import RunLog
from tailormail.sync.sources import Source, SyncConfig

Item = tuple[Any, str | None]
"""A record and where it came from (file:line), if known."""

if TYPE_CHECKING:
    from tailormail.runtime import Runtime


@dataclass
class PullOptions:
    """What a caller may inject: the backoff wait, progress, the resolver (tests, CLI)."""

    sleep: Callable[[float], None] = time.sleep
    on_progress: Callable[[int], None] | None = None
    resolver: Resolver = system_resolver


def run_source(
    runtime: Runtime, config: SyncConfig, source: Source, *, trigger: str = "manual", options: PullOptions | None = None
) -> dict[str, Any]:
    """Pull one source now; return its finished run log."""
    options = options or PullOptions()
    with runtime.store.begin() as conn:
        q.register(conn, source.name, "source", to_ms(runtime.clock.now()))
        state = q.get_state(conn, source.name) or {}
    log = RunLog(runtime.store, runtime.clock, source.name, "source", trigger)
    start_mark = state.get("watermark")
    mapper = RecordMapper(source.name, source.mapping)
    mark = _Watermark(start_mark)
    skip_upto = start_mark if source.kind == "file" else None
    batches = _batches(runtime, config, source, start_mark, options, log)
    try:
        # The next page is fetched, mapped and validated on a thread while this one is stored
        # (SQLite works without the GIL, so on two cores the two really run at once).
        for batch in read_ahead(_prepare(runtime, mapper, batch, skip_upto) for batch in batches):
            _store(runtime, batch, log, mark)
            if options.on_progress:
                options.on_progress(batch.read)
    except (TailormailError, httpx.HTTPError, OSError) as exc:
        return log.finish(error=str(exc), watermark=start_mark)
    with runtime.store.begin() as conn:
        q.set_state(conn, source.name, watermark=mark.value)
    return log.finish(watermark=mark.value)


def _batches(
    runtime: Runtime, config: SyncConfig, source: Source, watermark: str | None, options: PullOptions, log: RunLog
) -> Iterator[list[Item]]:
    if source.kind == "file":
        yield from _file_batches(runtime, source)
        return
    request = _pull_request(source, watermark)
    allow = config.allow_private if source.allow_private is None else source.allow_private
    with make_client(AddressPolicy(allow_private=allow), timeout=source.timeout, resolver=options.resolver) as client:

        def note(page: int, attempt: int, error: str, delay: float) -> None:
            log.retry(f"page {page}: {error}; retry {attempt} in {delay:.1f}s")

        for records in iter_pages(client, request, sleep=options.sleep, on_retry=note):
            yield [(record, None) for record in records]


def _pull_request(source: Source, watermark: str | None) -> PullRequest:
    headers = dict(source.headers)
    if source.auth_env:
        import os

        secret = os.environ.get(source.auth_env)
        if not secret:
            raise ConfigError(
                f"source {source.name!r}: environment variable {source.auth_env} is not set",
                hint=f"export {source.auth_env}=... (the {source.auth_header} header value)",
            )
        headers[source.auth_header] = source.auth_prefix + secret
    params = dict(source.params)
    if source.watermark_param and watermark:
        params[source.watermark_param] = watermark
    return PullRequest(
        url=source.url,
        params=params,
        headers=headers,
        records=source.records,
        pagination=source.pagination,
        retries=source.retries,
        backoff=Backoff(base=source.backoff_seconds, cap=300.0),
    )


def _file_batches(runtime: Runtime, source: Source) -> Iterator[list[Item]]:
    root = runtime.settings.workspace
    paths = _absolute_glob(source.path) if source.path.startswith("/") else sorted(root.glob(source.path))
    if not paths:
        raise ConfigError(
            f"source {source.name!r}: no file matches {source.path}", hint="check path (relative to the workspace)"
        )
    items = (
        _item(path, line, row)
        for path in paths
        for line, row in FileReader(path, detect_format(path, source.format or None)).rows()
    )
    while batch := list(islice(items, source.batch_size)):
        yield batch


def _absolute_glob(pattern: str) -> list[Path]:
    return [Path(p) for p in sorted(glob(pattern))]


def _item(path: Path, line: int, row: dict[str, Any] | BadRow) -> Item:
    where = f"{path.name}:{line}"
    if isinstance(row, BadRow):
        return ValidationError(row.reason, field=row.field, source=str(path), line=line), where
    return row, where


@dataclass
class _Prepared:
    """A batch mapped and validated, ready to store."""

    read: int
    now_ms: int
    messages: list[Message]
    updated: list[str | None]
    """The updated value of each good record (the watermark moves once they are stored)."""
    stale: int
    """Records at or before the watermark (file sources), skipped."""
    errors: list[tuple[str, Any, str | None]]
    """(reason, offending record, where) of each bad record, in order."""


def _prepare(runtime: Runtime, mapper: RecordMapper, batch: list[Item], skip_upto: str | None) -> _Prepared:
    """Map and validate each record of a batch (the store is not touched: this runs ahead on a thread)."""
    now_ms = to_ms(runtime.clock.now())
    out = _Prepared(read=len(batch), now_ms=now_ms, messages=[], updated=[], stale=0, errors=[])
    message, add, seen = mapper.message, out.messages.append, out.updated.append
    for record, where in batch:
        try:
            if isinstance(record, ValidationError):
                raise record
            updated = mapper.updated_value(record) if isinstance(record, dict) else None
            if skip_upto is not None and updated is not None and not _Watermark.newer(updated, skip_upto):
                out.stale += 1
                continue
            add(parse_message(message(record, updated), received_ms=now_ms))
            seen(updated)
        except ValidationError as exc:
            out.errors.append((exc.message, record if not isinstance(record, ValidationError) else None, where))
    return out


def _store(runtime: Runtime, batch: _Prepared, log: RunLog, mark: _Watermark) -> None:
    """Log the batch's bad records, store the good ones in one transaction, move the watermark."""
    for reason, record, where in batch.errors:
        log.record_error(reason, record, where)
    result = runtime.ingestor.ingest(batch.messages, now_ms=batch.now_ms)
    for updated in batch.updated:
        mark.see(updated)
    log.add(read=batch.read, written=result.stored, skipped=result.duplicates + batch.stale)


class _Watermark:
    """The highest ``updated`` value seen, compared as a time when it is one."""

    def __init__(self, start: str | None) -> None:
        self.value = start
        self._key = _order(start) if start is not None else None

    def see(self, value: str | None) -> None:
        if value is None or value == self.value:
            return
        key = _order(value)
        if self._key is None or key > self._key:
            self.value, self._key = value, key

    @staticmethod
    def newer(value: str, than: str) -> bool:
        return _order(value) > _order(than)


@lru_cache(maxsize=4096)
def _order(value: str) -> tuple[int, float, str]:
    """How watermark values compare (cached: a page's records share few distinct times)."""
    try:
        return (0, float(value), "")
    except ValueError:
        pass
    try:
        return (0, float(to_ms(parse_time(value))), "")
    except ValueError:
        return (1, 0.0, value)
