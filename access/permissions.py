"""Role checks for API views: reads need `read_role`, writes `write_role`, named actions their own."""

from rest_framework import exceptions, permissions

from access.roles import Role, role_of


class RolePermission(permissions.BasePermission):
    """Allow a request when the user's role reaches what the view asks for this method or action.

    Views set `read_role` (default viewer), `write_role` (default admin) and optionally
    `action_roles = {"acknowledge": Role.TRIAGER}`. An authenticated user below the role is
    refused with 403, except on single objects they may not even read: 404, so ids outside
    their reach reveal nothing.
    """

    def has_permission(self, request, view) -> bool:
        role = role_of(request.user)
        if role == Role.NONE:
            return False  # DRF answers 401 with the authentication header
        if role >= required_role(request, view):
            return True
        if role < getattr(view, "read_role", Role.VIEWER) and _names_one_object(view):
            raise exceptions.NotFound()  # the user may not even see it: do not confirm it exists
        return False


def _names_one_object(view) -> bool:
    return bool(view.kwargs.get(getattr(view, "lookup_url_kwarg", None) or getattr(view, "lookup_field", "pk")))


def required_role(request, view) -> Role:
    action = getattr(view, "action", None)
    action_roles = getattr(view, "action_roles", {})
    if action in action_roles:
        return action_roles[action]
    if request.method in permissions.SAFE_METHODS:
        return getattr(view, "read_role", Role.VIEWER)
    return getattr(view, "write_role", Role.ADMIN)
