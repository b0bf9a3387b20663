"""Money as integer minor units with a currency; JPY has no minor unit."""

from babel.numbers import format_currency, get_currency_precision


def minor_to_major(amount: int, currency: str = "JPY") -> float:
    return amount / (10 ** get_currency_precision(currency))


def format_money(amount: int | None, currency: str = "JPY", locale: str = "ja") -> str:
    if amount is None:
        return "—"
    return format_currency(
        minor_to_major(amount, currency), currency, locale="ja_JP" if locale == "ja" else "en_US"
    )
