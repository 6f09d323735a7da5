"""django-q2's admin pages, for superusers only, with schedules limited to the console's own tasks.

A schedule names a function the worker imports and calls, and its keyword arguments can carry
django-q options (`hook`, `chain`, `q_options`) that name more functions: whoever may write one
runs code on the worker. So every django_q page wants a superuser whatever permissions a group
holds, and the schedule form accepts only the functions of `TASK_MODULES`, called with arguments
that fit them, and no hook.
"""

import ast
import inspect
from collections.abc import Callable
from importlib import import_module

import django_q.admin as q_admin
from django import forms
from django.contrib import admin, messages
from django_q.models import Failure, OrmQ, Schedule, Success
from django_q.tasks import async_task

# The modules whose public functions are the console's tasks.
TASK_MODULES = ("incidents.tasks",)
# Keyword arguments django-q reads as options of the task instead of passing them on.
QUEUE_OPTIONS = frozenset(
    {
        "hook",
        "group",
        "save",
        "sync",
        "cached",
        "ack_failure",
        "iter_count",
        "iter_cached",
        "chain",
        "broker",
        "cluster",
        "timeout",
        "task_name",
        "q_options",
        "broker_name",
    }
)


def console_tasks() -> dict[str, Callable]:
    """The console's task functions by dotted path."""
    tasks = {}
    for module_name in TASK_MODULES:
        module = import_module(module_name)
        for name, value in vars(module).items():
            if inspect.isfunction(value) and value.__module__ == module_name and not name.startswith("_"):
                tasks[f"{module_name}.{name}"] = value
    return tasks


def parse_args(text: str) -> tuple:
    """Read a schedule's args the way the scheduler does: a Python literal, one value or a tuple."""
    if not text.strip():
        return ()
    try:
        value = ast.literal_eval(text)
    except (SyntaxError, ValueError) as error:
        raise forms.ValidationError(f"args must be Python literals, e.g. 1, 'a' ({error})") from None
    return value if type(value) is tuple else (value,)


def parse_kwargs(text: str) -> dict:
    """Read a schedule's kwargs the way the scheduler does: a dict literal, or `name=value, ...`."""
    if not text.strip():
        return {}
    try:
        value = ast.literal_eval(text)
    except (SyntaxError, ValueError):
        value = _keyword_pairs(text)
    if not isinstance(value, dict) or not all(isinstance(key, str) for key in value):
        raise forms.ValidationError("kwargs must map argument names to values")
    return value


def _keyword_pairs(text: str) -> dict:
    refusal = forms.ValidationError("kwargs must be a dict literal or name=value pairs of Python literals")
    try:
        call = ast.parse(f"f({text})", mode="eval").body
    except SyntaxError:
        raise refusal from None
    if not isinstance(call, ast.Call) or call.args or any(keyword.arg is None for keyword in call.keywords):
        raise refusal
    try:
        return {keyword.arg: ast.literal_eval(keyword.value) for keyword in call.keywords}
    except ValueError:
        raise refusal from None


class ScheduleForm(forms.ModelForm):
    """A schedule of one of the console's tasks, with arguments the task takes."""

    func = forms.ChoiceField(help_text="One of the console's task functions.")

    class Meta:
        model = Schedule
        fields = (
            "name",
            "func",
            "args",
            "kwargs",
            "schedule_type",
            "minutes",
            "repeats",
            "next_run",
            "cron",
            "cluster",
            "intended_date_kwarg",
        )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["func"].choices = [(path, path) for path in sorted(console_tasks())]

    def clean_args(self):
        parse_args(self.cleaned_data.get("args") or "")
        return self.cleaned_data.get("args")

    def clean_kwargs(self):
        options = sorted(QUEUE_OPTIONS & set(parse_kwargs(self.cleaned_data.get("kwargs") or "")))
        if options:
            raise forms.ValidationError(f"kwargs may not set queue options ({', '.join(options)})")
        return self.cleaned_data.get("kwargs")

    def clean(self):
        cleaned = super().clean()
        func = console_tasks().get(cleaned.get("func") or "")
        if func is None or self.has_error("args") or self.has_error("kwargs"):
            return cleaned
        kwargs = parse_kwargs(cleaned.get("kwargs") or "")
        if cleaned.get("intended_date_kwarg"):
            kwargs[cleaned["intended_date_kwarg"]] = "date"
        try:
            inspect.signature(func).bind(*parse_args(cleaned.get("args") or ""), **kwargs)
        except TypeError as error:
            self.add_error(None, f"args, kwargs and intended_date_kwarg must fit {cleaned['func']}: {error}")
        return cleaned


class SuperusersOnly:
    """Every page and action of this admin for superusers only, whatever permissions are granted."""

    def has_module_permission(self, request) -> bool:
        return request.user.is_active and request.user.is_superuser

    def has_view_permission(self, request, obj=None) -> bool:
        return request.user.is_superuser and super().has_view_permission(request, obj)

    def has_add_permission(self, request, *args) -> bool:
        return request.user.is_superuser and super().has_add_permission(request, *args)

    def has_change_permission(self, request, obj=None) -> bool:
        return request.user.is_superuser and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        return request.user.is_superuser and super().has_delete_permission(request, obj)


@admin.action(description="Resubmit selected tasks to queue (console tasks only)", permissions=["change"])
def resubmit_console_tasks(model_admin, request, queryset) -> None:
    """Queue the selected tasks again, skipping any that is not a console task or carries a hook."""
    known = console_tasks()
    resubmitted = skipped = 0
    for task in queryset:
        if task.func not in known or task.hook:
            skipped += 1
            continue
        async_task(task.func, *(task.args or ()), group=task.group, cluster=task.cluster, **(task.kwargs or {}))
        if isinstance(task, Failure):
            task.delete()
        resubmitted += 1
    model_admin.message_user(
        request, f"{resubmitted} resubmitted, {skipped} skipped (not a console task).", messages.INFO
    )


class ScheduleAdmin(SuperusersOnly, q_admin.ScheduleAdmin):
    form = ScheduleForm


class SuccessAdmin(SuperusersOnly, q_admin.TaskAdmin):
    actions = [resubmit_console_tasks]


class FailureAdmin(SuperusersOnly, q_admin.FailAdmin):
    actions = [resubmit_console_tasks]


class QueueAdmin(SuperusersOnly, q_admin.QueueAdmin):
    pass


def register(site: admin.AdminSite = admin.site) -> None:
    """Put these admins in place of django_q's own (the queue's only where django_q shows it)."""
    for model, model_admin in ((Schedule, ScheduleAdmin), (Success, SuccessAdmin), (Failure, FailureAdmin)):
        if site.is_registered(model):
            site.unregister(model)
        site.register(model, model_admin)
    if site.is_registered(OrmQ):
        site.unregister(OrmQ)
        site.register(OrmQ, QueueAdmin)
