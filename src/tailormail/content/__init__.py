"""Content: templates (Liquid, Handlebars), blocks with variants, MJML layout, per-recipient rendering.

Compile once (``compile_template``), personalize at the leaves (``render_batch``,
or ``render_for`` against the store).  See README, "Templates, blocks and variants".
"""

from tailormail.content.batch import Addressee, DataSources, load_recipients, render_for
from tailormail.content.compile import CompiledTemplate, LinkSlot, compile_template
from tailormail.content.context import Recipient, build_context
from tailormail.content.engines import TemplateError
from tailormail.content.mime import message_id_for
from tailormail.content.render import (
    Envelope,
    LinkSigner,
    RenderResult,
    choose_variants,
    render_batch,
    render_one,
    unsigned,
)
from tailormail.content.templates import template_names

__all__ = [
    "Addressee",
    "CompiledTemplate",
    "DataSources",
    "Envelope",
    "LinkSigner",
    "LinkSlot",
    "Recipient",
    "RenderResult",
    "TemplateError",
    "build_context",
    "choose_variants",
    "compile_template",
    "load_recipients",
    "message_id_for",
    "render_batch",
    "render_for",
    "render_one",
    "template_names",
    "unsigned",
]
