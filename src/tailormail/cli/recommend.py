"""`tailormail recommend`: evaluate the recommender and show what a person gets."""

from __future__ import annotations

from typing import Annotated

import typer

from tailormail.cli.common import JsonOption, WorkspaceOption, console, print_json, print_table, runtime_for
from tailormail.clock import from_ms, parse_time, to_ms
from tailormail.content.recommend import RecommendSettings, evaluate, recommend_for
from tailormail.errors import NotFound, ValidationError
from tailormail.store import profiles as profile_q

app = typer.Typer(help="Product recommendations: offline evaluation and per-person results.", no_args_is_help=True)


@app.command("evaluate")
def evaluate_command(
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="Split time (ISO 8601). Default: the last event minus the horizon.")
    ] = None,
    horizon_days: Annotated[int, typer.Option(help="Days after the split whose purchases are the truth.")] = 30,
    k: Annotated[int, typer.Option("-k", help="How many products each person is shown.")] = 4,
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Hit rate at k on a time split, against the popularity baseline."""
    try:
        as_of_ms = to_ms(parse_time(as_of)) if as_of else None
    except ValueError as error:
        raise ValidationError(f"--as-of {as_of!r} is not a time", field="as_of", hint="use 2026-03-01T00:00") from error
    with runtime_for(workspace) as rt, rt.store.read() as conn:
        result = evaluate(
            conn,
            as_of_ms=as_of_ms,
            horizon_days=horizon_days,
            k=k,
            names=rt.settings.events,
            settings=RecommendSettings.of(rt.settings),
        )
    if as_json:
        print_json(result.as_dict())
        return
    split = from_ms(result.as_of_ms).isoformat(timespec="minutes")
    title = f"Hit rate at {k}: trained up to {split}, purchases in the next {horizon_days} days"
    print_table(
        title,
        ["recommender", "people scored", "hits", "hit rate"],
        [
            ["co-occurrence", result.people, result.hits, f"{result.hit_rate:.1%}"],
            ["popularity baseline", result.people, result.baseline_hits, f"{result.baseline_hit_rate:.1%}"],
        ],
    )
    lift = "n/a (baseline hit nothing)" if result.lift is None else f"{result.lift:.2f}x"
    console.print(f"{result.buyers} people bought in the window; {result.people} had history to score. Lift: {lift}")


@app.command("show")
def show(
    user_id: Annotated[str, typer.Argument(help="The person's user id.")],
    k: Annotated[int, typer.Option("-k", help="How many products.")] = 4,
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
) -> None:
    """The products one person would be recommended now, and why."""
    with runtime_for(workspace) as rt, rt.store.read() as conn:
        profile = profile_q.get_profile(conn, user_id=user_id)
        if profile is None:
            raise NotFound(f"no profile with user id {user_id!r}", hint="check the id with `tailormail profiles`")
        products = recommend_for(
            conn,
            [profile["id"]],
            k=k,
            now_ms=to_ms(rt.clock.now()),
            names=rt.settings.events,
            settings=RecommendSettings.of(rt.settings),
        )[profile["id"]]
    if as_json:
        print_json([{**p.as_context(), "reason": p.reason} for p in products])
        return
    rows = [[i, p.product_id, p.name, p.category or "", p.price, p.reason] for i, p in enumerate(products, 1)]
    print_table(f"Recommendations for {user_id}", ["#", "product", "name", "category", "price", "why"], rows)
