"""Alerting and source API routes: rules, alerts, silences, channels, the notification log, sources and their keys."""

from rest_framework.routers import SimpleRouter

from incidents.api import alerting, sources

router = SimpleRouter()
router.register("alert-rules", alerting.AlertRuleViewSet, basename="alert-rule")
router.register("alerts", alerting.AlertViewSet, basename="alert")
router.register("silences", alerting.SilenceViewSet, basename="silence")
router.register("notification-channels", alerting.NotificationChannelViewSet, basename="notification-channel")
router.register("notification-log", alerting.NotificationViewSet, basename="notification-log")
router.register("sources", sources.SourceViewSet, basename="source")
# Any id text reaches the view, which answers 404 in the API's shape rather than Django's HTML page.
router.register(r"sources/(?P<source_id>[^/.]+)/keys", sources.IngestKeyViewSet, basename="source-key")

urlpatterns = router.urls
