"""Alert summary and runbook templates: Django's template language, restricted and bounded.

A rule's templates are rendered when it is saved and for every notification, so a
500-character template must not be able to run for hours: with Django's full language,
six nested `{% for %}` loops over string literals make 10^12 iterations, and filters
such as `ljust:"999999999"`, `floatformat:"100000"` or chained `urlencode`/`add` make
output grow without bound; `{% include %}`, `{% load %}` and `{% debug %}` reach past
the alert altogether. These templates get an engine of their own with only the tags
and filters below, at most MAX_LOOP_ITERATIONS loop iterations per render (all loops
together) and at most MAX_OUTPUT_CHARS characters of output.
"""

import re
from functools import lru_cache

from django.template import (
    Context,
    Engine,
    Library,
    Node,
    NodeList,
    Template,
    TemplateSyntaxError,
    defaultfilters,
    defaulttags,
)

MAX_LOOP_ITERATIONS = 1_000
MAX_OUTPUT_CHARS = 4_000
MAX_DECIMAL_PLACES = 20

# Tags and filters whose cost and output are bounded by their input: nothing here repeats,
# pads, joins, escapes into longer text, loads templates or reads beyond the context.
TAGS = ("if", "for", "with", "firstof", "now", "comment", "verbatim", "templatetag", "spaceless", "autoescape")
FILTERS = (
    "capfirst",
    "cut",
    "default",
    "default_if_none",
    "divisibleby",
    "first",
    "floatformat",
    "last",
    "length",
    "lower",
    "pluralize",
    "safe",
    "title",
    "truncatechars",
    "truncatewords",
    "upper",
    "yesno",
)
ALLOWED = f"alert templates may use the tags {', '.join(TAGS)} and the filters {', '.join(FILTERS)}"


class TemplateLimitExceeded(Exception):
    """A render went past one of the bounds."""


register = Library()


class _CountIteration(Node):
    """Spend one iteration of the render's budget; placed first in every loop body."""

    def render(self, context) -> str:
        context.iterations_left -= 1
        if context.iterations_left < 0:
            raise TemplateLimitExceeded(f"loops may run at most {MAX_LOOP_ITERATIONS} iterations in all")
        return ""


def _bounded_for(parser, token):
    node = defaulttags.do_for(parser, token)
    node.nodelist_loop = NodeList([_CountIteration(), *node.nodelist_loop])
    return node


_DECIMALS = re.compile(r"-?(\d+)[gu]{0,2}")


def _floatformat(value, arg=-1):
    # Django pads to any number of decimal places: floatformat:"100000" is 100,000 digits.
    places = abs(int(arg)) if isinstance(arg, int | float) and arg == arg and abs(arg) != float("inf") else None
    if isinstance(arg, str) and (found := _DECIMALS.fullmatch(arg)):
        digits = found.group(1).lstrip("0") or "0"
        places = int(digits) if len(digits) < 5 else MAX_DECIMAL_PLACES + 1
    if places is not None and places > MAX_DECIMAL_PLACES:
        raise TemplateLimitExceeded(f"floatformat shows at most {MAX_DECIMAL_PLACES} decimal places")
    return defaultfilters.floatformat(value, arg)


for _name in TAGS:
    register.tag(_name, _bounded_for if _name == "for" else defaulttags.register.tags[_name])
for _name in FILTERS:
    register.filters[_name] = _floatformat if _name == "floatformat" else defaultfilters.register.filters[_name]
_floatformat.is_safe = True


class _AlertEngine(Engine):
    default_builtins = []  # only this module's library: no {% load %}, {% include %}, {% url %}, {% debug %}


@lru_cache(maxsize=1)
def _engine() -> Engine:
    return _AlertEngine(loaders=[], libraries={}, builtins=[__name__], autoescape=False)


@lru_cache(maxsize=256)
def _compiled(text: str) -> Template:
    return _engine().from_string(text)


class _ReadOnlyDict(dict):
    """A dict whose changing methods a template cannot call: {{ labels.clear }} renders nothing."""

    def _refuse(self, *args, **kwargs):
        raise TypeError("alert template values are read-only")

    _refuse.alters_data = True  # what Django's template engine checks before calling a method
    clear = pop = popitem = setdefault = update = _refuse


class _BoundedContext(Context):
    def __init__(self, values: dict):
        values = {name: _ReadOnlyDict(value) if isinstance(value, dict) else value for name, value in values.items()}
        # Autoescaping is for HTML; these texts go to chat, pagers and mail as plain text.
        super().__init__(values, autoescape=False)
        self.iterations_left = MAX_LOOP_ITERATIONS


def render_alert_template(text: str, values: dict) -> str:
    """Render `text` with `values`, raising TemplateSyntaxError or TemplateLimitExceeded past the bounds."""
    if not text:
        return ""
    output = _compiled(text).render(_BoundedContext(values)).strip()
    if len(output) > MAX_OUTPUT_CHARS:
        raise TemplateLimitExceeded(f"the rendered text may be at most {MAX_OUTPUT_CHARS} characters")
    return output


def alert_template_problem(text: str, example: dict) -> str | None:
    """Why `text` cannot be an alert template (rendered with the worst-case `example`), or None."""
    try:
        render_alert_template(text, example)
    except TemplateSyntaxError as error:
        return f"template error: {error}; {ALLOWED}"
    except TemplateLimitExceeded as error:
        return f"template too costly: {error}, counted with the longest rule name and labels an alert can have"
    except Exception as error:  # anything else that fails here would fail at every send
        return f"template error when rendered: {type(error).__name__}: {error}"
    return None
