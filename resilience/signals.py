"""What the resilience side reports, for whoever keeps it.

resilience never imports incidents: the incidents app connects receivers to these signals in
its AppConfig (incidents/fleet/receivers.py) and turns the reports into history rows, events
of the console's own source and live messages. Each signal is sent with `sender=None` on the
thread, and inside the transaction, where the report is written today: the recorder thread of
resilience.process_runtime for the runtime's reports, the saving transaction for config_changed.
Receivers raise on failure. The recorder thread logs a failed report and goes on; a failure of a
config_changed receiver fails the save, as a failed live message did before.
"""

from django.dispatch import Signal

# A breaker of this process changed state.
# breaker_name, from_state, to_state, mode (str), generation (int), reason (str), process (str), at (datetime).
breaker_transitioned = Signal()

# This process's window figures of its breakers. process (str), windows (list of dicts, one per breaker:
# breaker, state, mode, calls, failures, slow_calls, not_permitted), at (datetime).
breaker_windows_reported = Signal()

# An entry of the saved config could not be applied (its last good config is kept), reported once per
# process. event (a native event dict, server_name included).
config_refused = Signal()

# A recovery outcome or alert. kind ("recovery.outcome" or "recovery.alert"), payload (dict), process (str).
recovery_reported = Signal()

# The degradation level of this process's runtime changed. payload (dict: level, previous, reason, process).
degradation_changed = Signal()

# Saved configuration changed: sent inside the saving transaction, with the new version (int).
config_changed = Signal()
