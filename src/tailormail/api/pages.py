"""The few HTML pages a recipient sees: unsubscribe confirmation and preferences."""

from __future__ import annotations

from html import escape

from tailormail.track.hits import Preferences

_STYLE = (
    "body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:32rem;margin:3rem auto;"
    "padding:0 1rem;color:#222;line-height:1.5}button{background:#222;color:#fff;border:0;border-radius:4px;"
    "padding:.6rem 1.2rem;font-size:1rem;cursor:pointer}label{display:block;margin:.3rem 0}"
)


def page(title: str, body: str) -> str:
    """A small self-contained HTML page."""
    return (
        f"<!doctype html><html lang=en><head><meta charset=utf-8><meta name=viewport "
        f"content='width=device-width,initial-scale=1'><title>{escape(title)}</title><style>{_STYLE}</style>"
        f"</head><body><h1>{escape(title)}</h1>{body}</body></html>"
    )


def confirm_unsubscribe(address: str, token: str) -> str:
    """Asks before unsubscribing: a GET (a link scanner, a prefetch) must never unsubscribe anyone."""
    body = (
        f"<p>Stop all marketing email to <strong>{escape(address)}</strong>?</p>"
        f"<form method=post action='/u/{escape(token)}'><button type=submit>Unsubscribe</button></form>"
        f"<p><a href='/p/{escape(token)}'>Choose what you receive instead</a></p>"
    )
    return page("Unsubscribe", body)


def unsubscribed(address: str, token: str) -> str:
    """Confirms that nothing more will be sent."""
    body = (
        f"<p><strong>{escape(address)}</strong> will get no more marketing email from us.</p>"
        f"<p>Changed your mind? <a href='/p/{escape(token)}'>Manage your preferences</a>.</p>"
    )
    return page("You are unsubscribed", body)


def preferences_form(prefs: Preferences, token: str, saved: bool = False) -> str:
    """Subscribe or unsubscribe by topic, or from everything."""
    topics = "".join(
        f"<label><input type=checkbox name=topic value='{escape(t)}' {'checked' if on else ''}> "
        f"{escape(t.replace('_', ' ').capitalize())}</label>"
        for t, on in prefs.topics.items()
    )
    body = (
        ("<p><em>Saved.</em></p>" if saved else "")
        + f"<p>Email for <strong>{escape(prefs.address)}</strong>. Send me:</p>"
        + f"<form method=post action='/p/{escape(token)}'>{topics}"
        + f"<label><input type=checkbox name=all_off value=1 {'checked' if prefs.unsubscribed else ''}> "
        + "Nothing at all (unsubscribe from everything)</label><p><button type=submit>Save</button></p></form>"
    )
    return page("Email preferences", body)
