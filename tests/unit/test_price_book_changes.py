"""Which prices a new price book may not leave out (``pricing.dropped_in_use``): those
that recent usage is billed under, unless the new book still prices that usage, and
those that a team's custom prices were agreed on."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import UTC, datetime, timedelta

from creditledger.domain.pricing import (
    Price,
    PriceBook,
    Subject,
    TeamPricing,
    custom_subjects,
    dropped_in_use,
    dropped_prices,
    prices_in_use,
)

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def p(
    meter: str, *, model: str | None = "llama", gpu: str | None = None, product: str = "serverless"
) -> Price:
    return Price(product, model, gpu, meter, 1, 1)


LLAMA_IN, LLAMA_OUT = p("input_tokens"), p("output_tokens")
MISTRAL = p("input_tokens", model="mistral")
H100 = p("gpu_seconds", model=None, gpu="h100", product="dedicated")
LLAMA_ON_H100 = p("gpu_seconds", gpu="h100", product="dedicated")
CURRENT = PriceBook(T0, (LLAMA_IN, LLAMA_OUT, MISTRAL, H100, LLAMA_ON_H100))


def in_use(
    new: tuple[Price, ...], used: Sequence[Subject], custom: Collection[Subject] = ()
) -> list[Price]:
    book = PriceBook(T0, new)
    return dropped_in_use(dropped_prices(CURRENT, book), book, used, custom)


def test_a_new_book_drops_the_prices_whose_key_it_leaves_out() -> None:
    new = PriceBook(T0, (LLAMA_IN, p("output_tokens", model="mistral")))
    assert dropped_prices(CURRENT, new) == (LLAMA_OUT, MISTRAL, H100, LLAMA_ON_H100)
    assert dropped_prices(None, new) == ()


def test_a_price_of_a_model_used_recently_is_in_use() -> None:
    assert in_use((LLAMA_IN, H100, LLAMA_ON_H100), [("serverless", "llama", None)]) == [LLAMA_OUT]


def test_a_price_nobody_used_recently_may_go() -> None:
    assert in_use((LLAMA_IN, LLAMA_OUT), [("serverless", "llama", None)]) == []


def test_a_gpu_price_is_in_use_by_any_model_run_on_that_gpu() -> None:
    used = [("dedicated", "my-finetune", "h100")]
    assert in_use((LLAMA_IN, LLAMA_OUT, MISTRAL, LLAMA_ON_H100), used) == [H100]


def test_a_specific_price_may_go_when_a_general_one_still_prices_its_usage() -> None:
    used = [("dedicated", "llama", "h100")]
    assert in_use((LLAMA_IN, LLAMA_OUT, MISTRAL, H100), used) == []
    assert in_use((LLAMA_IN, LLAMA_OUT, MISTRAL), used) == [H100, LLAMA_ON_H100]


def test_a_price_a_team_has_custom_prices_for_is_in_use() -> None:
    custom = {("serverless", "mistral", None)}
    assert in_use((LLAMA_IN, LLAMA_OUT, H100, LLAMA_ON_H100), [], custom) == [MISTRAL]


def test_custom_prices_count_in_force_and_scheduled_not_replaced() -> None:
    old = TeamPricing(T0, prices=(p("requests", model="old"),))
    now = TeamPricing(T0 + timedelta(days=1), prices=(p("requests", model="now"),))
    later = TeamPricing(T0 + timedelta(days=9), prices=(p("requests", model="later"),))
    discount_only = TeamPricing(T0 + timedelta(days=2), discount_bp=500)

    subjects = custom_subjects([[old, now, later], [discount_only]], T0 + timedelta(days=3))

    assert subjects == {("serverless", "now", None), ("serverless", "later", None)}


def test_the_refusal_names_the_prices_in_use() -> None:
    error = prices_in_use([LLAMA_OUT, H100])
    assert error.code == "prices_in_use"
    assert "serverless/llama/output_tokens" in error.message
    assert "dedicated/h100/gpu_seconds" in error.message
    assert "allow_removals=true" in error.message
    many = prices_in_use([p(f"m{i}") for i in range(12)])
    assert "and 2 more" in many.message
