"""Reading values out of JSON columns, spelled for SQLite or PostgreSQL.

Every helper takes the column, a path of keys and the dialect name and
returns a SQLAlchemy expression; path keys and compared values are always
bound parameters.  Values are typed: ``number`` is NULL unless the JSON value
is a number, ``text`` is NULL unless it is a string, so a trait holding
``"abc"`` never breaks a numeric comparison (PostgreSQL would raise on the cast).
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import JSON, Float, and_, case, cast, func, literal, or_
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.sql.elements import ColumnElement

Path = tuple[str, ...]


def _sqlite_path(path: Path) -> str:
    """``$."a"."b"``: quoted keys, so dots or spaces inside a key stay literal."""
    return "$" + "".join("." + json.dumps(key) for key in path)


def json_type(col: Any, path: Path, dialect: str) -> ColumnElement[Any]:
    """The JSON type name at ``path`` (NULL when absent); dialect-specific names."""
    if dialect == "postgresql":
        return func.json_typeof(func.json_extract_path(col, *path))
    return func.json_type(col, _sqlite_path(path))


def is_number(col: Any, path: Path, dialect: str) -> ColumnElement[bool]:
    """The value at ``path`` is a JSON number."""
    kind = json_type(col, path, dialect)
    return kind == "number" if dialect == "postgresql" else kind.in_(("integer", "real"))


def is_text(col: Any, path: Path, dialect: str) -> ColumnElement[bool]:
    """The value at ``path`` is a JSON string."""
    return json_type(col, path, dialect) == ("string" if dialect == "postgresql" else "text")


def number(col: Any, path: Path, dialect: str) -> ColumnElement[Any]:
    """The numeric value at ``path``, NULL if absent or not a number."""
    if dialect == "postgresql":
        raw: Any = cast(func.json_extract_path_text(col, *path), Float)
    else:
        raw = func.json_extract(col, _sqlite_path(path))
    return case((is_number(col, path, dialect), raw), else_=None)


def text(col: Any, path: Path, dialect: str) -> ColumnElement[Any]:
    """The string value at ``path``, NULL if absent or not a string."""
    if dialect == "postgresql":
        raw: Any = func.json_extract_path_text(col, *path)
    else:
        raw = func.json_extract(col, _sqlite_path(path))
    return case((is_text(col, path, dialect), raw), else_=None)


def present(col: Any, path: Path, dialect: str) -> ColumnElement[bool]:
    """A value (not JSON null) is stored at ``path``."""
    kind = json_type(col, path, dialect)
    return and_(kind.is_not(None), kind != "null")


def is_bool(col: Any, path: Path, value: bool, dialect: str) -> ColumnElement[bool]:
    """The value at ``path`` is the JSON boolean ``value``."""
    if dialect == "postgresql":
        return and_(
            json_type(col, path, dialect) == "boolean", func.json_extract_path_text(col, *path) == str(value).lower()
        )
    return json_type(col, path, dialect) == ("true" if value else "false")


def empty(col: Any, path: Path, dialect: str) -> ColumnElement[bool]:
    """Absent, null, an empty string, an empty list or an empty object."""
    if dialect == "postgresql":
        as_jsonb = cast(func.json_extract_path(col, *path), JSONB)
        return or_(as_jsonb.is_(None), as_jsonb.in_([cast(literal(v), JSONB) for v in ('""', "[]", "{}", "null")]))
    kind = json_type(col, path, dialect)
    raw = func.json_extract(col, _sqlite_path(path))
    return or_(
        kind.is_(None),
        kind == "null",
        and_(kind == "text", raw == ""),
        and_(kind == "array", raw == "[]"),
        and_(kind == "object", raw == "{}"),
    )


def contains(col: Any, path: Path, value: Any, dialect: str) -> ColumnElement[bool]:
    """A string at ``path`` contains ``value``, or a list at ``path`` has it as an element."""
    as_text = text(col, path, dialect)
    kind = json_type(col, path, dialect)
    if dialect == "postgresql":
        element = cast(literal(json.dumps([value])), JSONB)
        in_list = and_(kind == "array", cast(func.json_extract_path(col, *path), JSONB).contains(element))
        return or_(func.strpos(as_text, str(value)) > 0, in_list)
    raw = func.json_extract(col, _sqlite_path(path))
    # json_extract gives a list as minified JSON: look for ,"value", between commas.
    framed = "," + func.substr(raw, 2, func.length(raw) - 2) + ","
    needle = "," + func.json_quote(literal(value)) + ","
    return or_(func.instr(as_text, str(value)) > 0, and_(kind == "array", func.instr(framed, needle) > 0))


def with_object(col: Any, key: str, values: dict[str, Any], dialect: str) -> ColumnElement[Any]:
    """``col`` (a JSON object) with ``key`` set to an object of ``values`` (SQL expressions)."""
    pairs: list[Any] = [item for name, value in values.items() for item in (literal(name), value)]
    if dialect == "postgresql":
        merged = cast(col, JSONB).op("||")(func.jsonb_build_object(literal(key), func.jsonb_build_object(*pairs)))
        return cast(merged, JSON)
    return func.json_set(col, _sqlite_path((key,)), func.json_object(*pairs))
