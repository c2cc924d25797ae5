"""Forget cached roles when what they are made of changes.

Signals rather than calls in each service: the Django admin and the cascades
of a deleted user or organization change memberships too. Bulk `update()`s
send no signal; the services that run one on these tables forget explicitly.
"""

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from .models import Membership, Organization, User
from .role_cache import principal_facts_forget


@receiver([post_save, post_delete], sender=Membership, dispatch_uid="tenants_roles_membership")
def _membership_changed(sender, instance, **kwargs):
    principal_facts_forget([instance.user_id])


@receiver([post_save, post_delete], sender=Organization, dispatch_uid="tenants_roles_organization")
def _organization_changed(sender, instance, created=False, **kwargs):
    if created:
        return  # nobody holds a role in it yet
    principal_facts_forget(
        Membership.objects.filter(organization_id=instance.pk).values_list("user_id", flat=True)
    )


@receiver([post_save, post_delete], sender=User, dispatch_uid="tenants_roles_user")
def _user_changed(sender, instance, created=False, **kwargs):
    if not created:
        principal_facts_forget([instance.pk])
