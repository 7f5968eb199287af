"""Numbers a client sends: never a boolean, always finite and bounded.

DRF's ``FloatField`` reads JSON ``true`` as 1.0 (``float(True)``), so ``"budget": true``
was a budget of one sample; its ``IntegerField`` refuses a boolean only by accident (it
parses ``str(True)``). :class:`StrictFloatField` and :class:`StrictIntegerField` refuse
booleans by name; both are finite by construction (DRF's float field refuses NaN, the
infinities and integers too large for a float). Every number in job params, pilot runs
and predictions uses them, with both ``min_value`` and ``max_value``
(``tests/api/test_input_limits.py`` checks that no serializer leaves one out).

Bounds shared by several serializers live here: :data:`MAX_SEED` and :func:`SeedField`,
:data:`MAX_MODEL_PARAMETERS`, and :func:`check_budget` for a budget in its unit
(:data:`curation.laws.MAX_BUDGET`).
"""
from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from curation.laws import MAX_BUDGET, check_budget_bounds
from curation.steps import MAX_SEED

#: Model parameters, for a budget in flops: 1e15 is ~1000 times the largest models trained so far.
MAX_MODEL_PARAMETERS = 1e15

class _RefusesBooleans:
    """Refuses JSON ``true``/``false`` before the number field reads them."""

    default_error_messages = {"boolean": "A number is required, not a boolean (true/false)."}

    def to_internal_value(self, data):
        if isinstance(data, bool):
            self.fail("boolean")
        return super().to_internal_value(data)


class StrictFloatField(_RefusesBooleans, serializers.FloatField):
    """DRF's ``FloatField`` (finite) that refuses booleans; with ``exclusive_min`` the value must be
    greater than ``min_value`` (the schema says ``exclusiveMinimum``: api/core/schema.py)."""

    default_error_messages = {"min_exclusive": "Ensure this value is greater than {min_value}."}

    def __init__(self, *, exclusive_min: bool = False, **kwargs):
        self.exclusive_min = exclusive_min
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if self.exclusive_min and value <= self.min_value:
            self.fail("min_exclusive", min_value=self.min_value)
        return value


class StrictIntegerField(_RefusesBooleans, serializers.IntegerField):
    """DRF's ``IntegerField`` that refuses booleans by name."""


@extend_schema_field({"type": "object", "minProperties": 1, "additionalProperties": {
    "type": "number", "minimum": 0, "maximum": 1}})
class MixtureField(serializers.DictField):
    """``{pool: weight}``: documented as weights in [0, 1]; :func:`curation.pools.validate_mixture`
    checks them against the pools (known, finite, summing to 1) and names the one at fault."""

    def __init__(self, **kwargs):
        super().__init__(child=serializers.JSONField(), **kwargs)


def SeedField(**kwargs) -> StrictIntegerField:  # noqa: N802 - reads as a field class at its call sites
    """A random seed, ``0 <= seed < 2**32`` (default 0; ``seed: 10**30`` used to fail at the prune stage)."""
    kwargs.setdefault("default", 0)
    kwargs.setdefault("help_text", "random seed, 0 <= seed < 2**32")
    return StrictIntegerField(min_value=0, max_value=MAX_SEED, **kwargs)


def BudgetField(**kwargs) -> StrictFloatField:  # noqa: N802
    """A training budget in its unit, > 0; the bound of the unit is checked by :func:`check_budget`."""
    return StrictFloatField(min_value=0.0, exclusive_min=True, max_value=max(MAX_BUDGET.values()), **kwargs)


def check_budget(data: dict, *, unit_field: str = "budget_unit") -> None:
    """Refuse ``data["budget"]`` outside ``(0, MAX_BUDGET[unit]]``, naming ``budget``."""
    if "budget" not in data:
        return
    try:
        check_budget_bounds(data["budget"], data.get(unit_field, "samples"))
    except ValueError as exc:
        raise serializers.ValidationError({"budget": str(exc)}) from None
