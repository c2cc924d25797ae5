"""Simplified Chinese as the mainland writes figures: Django's formats, but with
a comma every three digits (Django's zh_Hans has no separator at all, so
11900049119 showed raw in reports and 3011 of 200000 on the work record)."""

from django.conf.locale.zh_Hans.formats import *  # noqa: F403

THOUSAND_SEPARATOR = ","
NUMBER_GROUPING = 3
