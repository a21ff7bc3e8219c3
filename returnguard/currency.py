"""Currency conversion for rules stated in US dollars (seed 002: amounts over 5,000 USD).

Rates are a configuration table (units of currency per 1 USD), overridable per deployment; the Glue
rules job reads the same table from `external/rates/` when the lake has one.
"""

from __future__ import annotations

from collections.abc import Mapping

DEFAULT_RATES_PER_USD: dict[str, float] = {
    "USD": 1.0,
    "INR": 83.0,
    "EUR": 0.92,
    "GBP": 0.79,
    "AED": 3.6725,
    "SGD": 1.34,
    "JPY": 150.0,
}


# The currencies the API accepts: those it can convert. The request model's `currency` enum (and so
# docs/openapi.yaml and the API Gateway request model) is this tuple.
CURRENCIES: tuple[str, ...] = tuple(DEFAULT_RATES_PER_USD)


class UnknownCurrency(ValueError):
    code = "unknown_currency"


def to_usd(amount: float, currency: str, rates: Mapping[str, float] | None = None) -> float:
    table = DEFAULT_RATES_PER_USD if rates is None else rates
    rate = table.get(currency.upper())
    if rate is None or rate <= 0:
        raise UnknownCurrency(f"no USD rate for currency {currency!r}")
    return amount / rate
