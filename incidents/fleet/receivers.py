"""Receivers of the resilience runtime's reports (resilience.signals), connected by IncidentsConfig.ready():
each report becomes what the console keeps of it (incidents/fleet/reports.py) or a live message."""

from django.dispatch import receiver

from incidents.fleet.reports import console_source, event_record, recovery_record, transition_record, windows_record
from incidents.live import outbox
from resilience import signals


@receiver(signals.breaker_transitioned, dispatch_uid="record-breaker-transition")
def record_transition(*, breaker_name, from_state, to_state, mode, generation, reason, process, at, **_signal):
    """A transition of one of the console's own processes, reported under the console's source."""
    transition_record(
        source=console_source(),
        breaker_name=breaker_name,
        from_state=from_state,
        to_state=to_state,
        mode=mode,
        generation=generation,
        reason=reason,
        process=process,
        at=at,
    )


@receiver(signals.breaker_windows_reported, dispatch_uid="record-breaker-windows")
def record_windows(*, process, windows, at, **_signal):
    windows_record(process=process, windows=windows, at=at)


@receiver(signals.config_refused, dispatch_uid="record-config-refused")
def record_refused_config(*, event, **_signal):
    event_record(source=console_source(), event=event)


@receiver(signals.recovery_reported, dispatch_uid="record-recovery")
def record_recovery(*, kind, payload, process, **_signal):
    recovery_record(source=console_source(), kind=kind, payload=payload, process=process)


@receiver(signals.degradation_changed, dispatch_uid="publish-degradation-change")
def publish_degradation_change(*, payload, **_signal):
    outbox.publish(topic="degradation.changed", key="degradation", payload=payload)


@receiver(signals.config_changed, dispatch_uid="publish-config-change")
def publish_config_change(*, version, **_signal):
    """Browsers watching the console hear of a config change on the live stream (sent inside the saving
    transaction, so the message exists exactly when the change does)."""
    outbox.publish(topic="config.changed", key="resilience-config", payload={"version": version})
